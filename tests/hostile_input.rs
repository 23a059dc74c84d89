//! Property tests over every parser that sees bytes from outside: whatever arrives, the
//! answer is a value or an error, never a panic, and the security-relevant properties hold
//! (a token is never left in a log path, header values round-trip, routes keep their names).
//! (Coverage-guided fuzzing with cargo-fuzz needs sanitizer builds too slow for this CI's
//! budget; these run in seconds on every test run.)

use figment::providers::Env;
use jellyfin_sso_proxy::config::{Config, Protocol, ProviderConfig};
use jellyfin_sso_proxy::cookie::Cookies;
use jellyfin_sso_proxy::jellyfin::credentials::{has_credentials, presented_token};
use jellyfin_sso_proxy::jellyfin::{mediabrowser_header, parse_mediabrowser_header};
use jellyfin_sso_proxy::proxy::headers::redacted_path;
use jellyfin_sso_proxy::sso::route::SsoRoute;
use proptest::prelude::*;

fn header_map(pairs: &[(String, String)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (http::header::HeaderName::from_bytes(k.as_bytes()), http::HeaderValue::from_str(v)) {
            h.append(k, v);
        }
    }
    h
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn authorization_headers_parse_or_refuse(s in ".{0,300}") {
        let _ = parse_mediabrowser_header(&s);
    }

    #[test]
    fn authorization_values_round_trip(device in ".{0,60}", token in "[A-Za-z0-9]{1,40}") {
        let h = mediabrowser_header(&[("Device", &device), ("Token", &token)]);
        let parsed = parse_mediabrowser_header(&h).expect("our own header parses");
        prop_assert_eq!(parsed, vec![("Device".to_string(), device), ("Token".to_string(), token)]);
    }

    #[test]
    fn credentials_and_cookies_from_any_headers(pairs in proptest::collection::vec(("(authorization|x-emby-authorization|x-emby-token|x-mediabrowser-token|cookie|x-other)", "[ -~]{0,120}"), 0..6), query in "[ -~]{0,80}") {
        let h = header_map(&pairs);
        let uri: http::Uri = format!("/x?{}", query.replace(' ', "%20").replace('#', "%23")).parse().unwrap_or_else(|_| "/x".parse().unwrap());
        if let Some(t) = presented_token(&h, &uri) {
            prop_assert!(!t.is_empty());
            prop_assert!(has_credentials(&h, &uri), "a presented token counts as credentials");
        }
        let _ = Cookies::parse(&h);
    }

    #[test]
    fn routes_parse_any_path(method in "(GET|POST|DELETE|HEAD|PUT|CONNECT)", path in "/[ -~]{0,120}") {
        let m = http::Method::from_bytes(method.as_bytes()).unwrap();
        let _ = SsoRoute::parse(&m, &path, "");
        let _ = SsoRoute::parse(&m, &path, "/jellyfin");
    }

    #[test]
    fn provider_names_survive_routing(name in "[A-Za-z0-9_.-]{1,40}", upper in any::<bool>()) {
        let path = if upper { format!("/SSO/OID/START/{name}") } else { format!("/sso/oid/start/{name}") };
        prop_assert_eq!(SsoRoute::parse(&http::Method::GET, &path, ""), Some(SsoRoute::Start { protocol: Protocol::Oidc, provider: name }));
    }

    #[test]
    fn log_paths_never_keep_a_token(secret in "[A-Za-z0-9]{16,40}", key in "(api_key|ApiKey|APIKEY|api%5Fkey|token|code|state)", other in "[a-z]{1,8}") {
        let uri: http::Uri = format!("/Items?{other}=1&{key}={secret}&x=2").parse().unwrap();
        let logged = redacted_path(&uri);
        prop_assert!(!logged.contains(&secret), "{}", logged);
    }

    #[test]
    fn config_text_loads_or_names_problems(text in "[ -~\n]{0,400}") {
        let dir = std::env::temp_dir();
        let _ = Config::from_parts(Some(&text), "fuzz.yaml", &dir, Env::prefixed("JSP_PROPTEST_UNUSED_"));
    }

    #[test]
    fn admin_json_validates_or_refuses(json in arb_json(), saml in any::<bool>()) {
        let protocol = if saml { Protocol::Saml } else { Protocol::Oidc };
        let _ = ProviderConfig::from_plugin_json(protocol, "p", &json, std::path::Path::new("/nonexistent"));
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let keys = prop_oneof![
        Just("oidEndpoint".to_string()), Just("oidClientId".to_string()), Just("oidSecret".to_string()), Just("enabled".to_string()),
        Just("roles".to_string()), Just("samlEndpoint".to_string()), Just("samlCertificate".to_string()), Just("folderRoleMapping".to_string()),
        Just("clockSkew".to_string()), "[a-zA-Z]{1,12}",
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[ -~]{0,40}".prop_map(serde_json::Value::from),
        Just(serde_json::Value::from("https://idp.example.com")),
    ];
    leaf.prop_recursive(3, 32, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(keys.clone(), inner, 0..6).prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The SAML POST path (form value → base64 → inflate/XML → the library) refuses anything
/// that is not a valid signed response, whatever the bytes.
#[test]
fn saml_responses_of_any_bytes_are_refused_without_panic() {
    use jellyfin_sso_proxy::config::provider::SamlConfig;
    use jellyfin_sso_proxy::sso::saml::SamlIdp;
    let cert = rcgen::generate_simple_self_signed(vec!["idp".into()]).unwrap().cert;
    let cfg = SamlConfig {
        name: "p".into(),
        enabled: true,
        sso_url: Some(url::Url::parse("https://idp.example/sso").unwrap()),
        sp_entity_id: "sp".into(),
        idp_entity_id: Some("https://idp.example".into()),
        certificates: vec![cert.der().to_vec()],
        metadata: None,
        sp_key: None,
        sign_requests: false,
        require_encrypted_assertions: false,
        allow_cbc_encryption: false,
        role_attribute: "Role".into(),
        username_attribute: None,
        clock_skew: std::time::Duration::from_secs(60),
        grants: Default::default(),
        display_name: None,
        slo_url: None,
        session: Default::default(),
    };
    let keys = tempfile::tempdir().unwrap();
    let key = jellyfin_sso_proxy::sso::saml_keys::SpKeys::new(keys.path()).get(None).unwrap();
    let idp = SamlIdp::new(cfg, |p| format!("https://media.example{p}"), key, reqwest::Client::new()).unwrap();
    let (_, tracker) = tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(idp.start("r")).unwrap();
    let replay = saml::InMemoryReplayCache::new(100);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 512, ..ProptestConfig::default() });
    let strategy = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2000).prop_map(|b| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b)),
        "[<>a-zA-Z0-9:=\" /!-]{0,600}".prop_map(|x| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, x)),
        "[ -~]{0,200}",
    ];
    runner
        .run(&strategy, |input| {
            prop_assert!(idp.finish(&input, "r", &tracker, &replay).is_err());
            Ok(())
        })
        .unwrap();
}
