//! The bodies of the fuzz targets, one function per parser that sees bytes from outside.
//!
//! Each takes the fuzzer's bytes, runs the proxy's own code on them (through its public API,
//! or `jellyfin_sso_proxy::fuzzing` for the few private parsers) and asserts what must hold
//! whatever arrives: no panic, and the security properties of that parser (a rebuilt header
//! never presents a token the client did not send, a forged SAML message is never accepted,
//! a provider the admin API accepted is accepted again after a round trip, …).
//!
//! The same file is the fuzz crate's library (fuzz/Cargo.toml) and a module of the
//! `fuzz_corpus` integration test (tests/fuzz_corpus.rs), which replays every seed and every
//! kept crash through these functions on each `cargo test`.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use jellyfin_sso_proxy::branding::{rewrite_css, rewrite_json, Intercept};
use jellyfin_sso_proxy::config::provider::SamlConfig;
use jellyfin_sso_proxy::config::{Config, Protocol, ProviderConfig};
use jellyfin_sso_proxy::context::RequestContext;
use jellyfin_sso_proxy::cookie::{self, Cookies};
use jellyfin_sso_proxy::jellyfin::credentials::{has_credentials, mediabrowser_header, parse_mediabrowser_header, presented_token, translate_legacy};
use jellyfin_sso_proxy::sso::error::SsoError;
use jellyfin_sso_proxy::sso::login_page::Addition;
use jellyfin_sso_proxy::sso::oidc_login::Callback;
use jellyfin_sso_proxy::sso::saml::SamlIdp;
use jellyfin_sso_proxy::sso::saml_logout::verify_logout_request;

/// A target's body: the fuzzer's bytes in, a panic on a broken property.
pub type Target = fn(&[u8]);

#[path = "jellyfin_reference.rs"]
mod reference;

/// The targets by name (the directories under fuzz/seeds and fuzz/regressions).
pub const TARGETS: [(&str, Target); 8] = [
    ("authorization", authorization),
    ("cookies", cookies),
    ("saml", saml),
    ("oidc_callback", oidc_callback),
    ("branding", branding),
    ("config", config),
    ("admin_json", admin_json),
    ("logout_token", logout_token),
];

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// Lines of `data` as a request's headers and query: a line's first byte picks what it is
/// (`0` Authorization, `1` X-Emby-Authorization, `2` X-Emby-Token, `3` X-MediaBrowser-Token,
/// `4` Cookie, `5` X-Forwarded-For, `?` the query), the rest is the value. Values a client
/// could not send (not a valid header value, not a valid URI) are skipped.
fn request(data: &[u8]) -> (HeaderMap, Uri) {
    const NAMES: [&str; 6] = ["authorization", "x-emby-authorization", "x-emby-token", "x-mediabrowser-token", "cookie", "x-forwarded-for"];
    let mut headers = HeaderMap::new();
    let mut uri: Uri = "/Items".parse().unwrap();
    for line in data.split(|b| *b == b'\n') {
        let Some((&first, value)) = line.split_first() else { continue };
        if first == b'?' {
            if let Ok(u) = format!("/Items?{}", String::from_utf8_lossy(value)).parse() {
                uri = u;
            }
        } else if let Some(name) = first.checked_sub(b'0').and_then(|i| NAMES.get(i as usize)).copied() {
            if let Ok(v) = HeaderValue::from_bytes(value) {
                headers.append(HeaderName::from_static(name), v);
            }
        }
    }
    (headers, uri)
}

/// The `Authorization` header parser, the token lookup used by session injection and the admin
/// API, and the legacy-credential translation (jellyfin/credentials.rs), held to Jellyfin's own
/// reading of a request (jellyfin_reference.rs, from its AuthorizationContext.cs):
/// - the proxy parses every header value to exactly Jellyfin's parameters;
/// - the proxy presents the token Jellyfin 10.11 (legacy authorization on) reads;
/// - after translation, Jellyfin 12 (legacy off) reads the token it read before translation,
///   or, when it read none, the one the legacy-enabled Jellyfin read: never another, never
///   none instead of one; the legacy header's device parameters come along; nothing legacy is
///   left, and a second translation changes nothing.
pub fn authorization(data: &[u8]) {
    // The whole input as one header value, then each line alone.
    for value in std::iter::once(data).chain(data.split(|b| *b == b'\n')) {
        let value = text(value);
        let ours: Option<HashMap<String, String>> = parse_mediabrowser_header(&value).map(|p| p.into_iter().collect());
        let jellyfins = reference::get_authorization(value.trim_matches([' ', '\t']), true);
        assert_eq!(ours, jellyfins, "parsed unlike Jellyfin: {value:?}");
    }
    // Our own header, built from what was parsed, parses back to the same parameters (for
    // parameter names a client library uses).
    if let Some(params) = parse_mediabrowser_header(&text(data)) {
        let kept: Vec<(&str, &str)> = params.iter().filter(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric())).map(|(k, v)| (k.as_str(), v.as_str())).collect();
        if !kept.is_empty() {
            let rebuilt = parse_mediabrowser_header(&mediabrowser_header(&kept)).expect("our own header parses");
            let rebuilt: Vec<(&str, &str)> = rebuilt.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_eq!(rebuilt, kept, "parameters survive a rebuild");
        }
    }

    let (mut headers, mut uri) = request(data);
    let (old_params, old_token) = reference::read(&headers, &uri, true);
    let (_, modern_token) = reference::read(&headers, &uri, false);
    let before = presented_token(&headers, &uri);
    assert_eq!(before, old_token, "the proxy reads another token than Jellyfin");
    if before.is_some() {
        assert!(has_credentials(&headers, &uri));
    }
    let original = (headers.clone(), uri.clone());
    translate_legacy(&mut headers, &mut uri);
    for legacy in ["x-emby-authorization", "x-emby-token", "x-mediabrowser-token"] {
        assert!(!headers.contains_key(legacy), "{legacy} left after translation");
    }
    let first = headers.get("authorization").map(|v| text(v.as_bytes()));
    assert!(!first.as_deref().is_some_and(|v| v.trim_matches([' ', '\t']).get(..5).is_some_and(|s| s.eq_ignore_ascii_case("emby "))), "the Emby scheme left: {first:?}");
    assert!(!url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).any(|(k, _)| k.eq_ignore_ascii_case("api_key")), "api_key left: {uri}");
    let (new_params, after) = reference::read(&headers, &uri, false);
    let expected = modern_token.clone().or(old_token);
    assert_eq!(after, expected, "Jellyfin 12 reads another token after translation of {original:?}: {headers:?} {uri}");
    if modern_token.is_none() && expected.is_some() {
        // Read for the legacy token: its header's parameters with it (the plain-word ones).
        let new_params = new_params.unwrap_or_default();
        for (k, v) in old_params.unwrap_or_default().iter().filter(|(k, _)| *k != "Token" && !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')) {
            assert_eq!(new_params.get(k), Some(v), "parameter {k} lost in translation");
        }
    }
    let (h2, u2) = (headers.clone(), uri.clone());
    assert!(!translate_legacy(&mut headers, &mut uri), "a second translation finds something legacy");
    assert_eq!((headers, uri), (h2, u2), "a second translation changes nothing");
}

/// The proxy's cookies and the client address behind trusted proxies (cookie.rs, context.rs).
pub fn cookies(data: &[u8]) {
    let (headers, _) = request(data);
    let c = Cookies::parse(&headers);
    for v in [&c.flow, &c.saml_flow, &c.session].into_iter().flatten() {
        assert!(!v.is_empty() && !v.contains(';') && v.trim() == v, "cookie value {v:?}");
    }
    assert_eq!(c.session.as_deref(), cookie::get(&headers, cookie::SESSION).filter(|v| !v.is_empty()));
    let trusted: [ipnet::IpNet; 2] = ["127.0.0.0/8".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
    for peer in ["127.0.0.1:443", "203.0.113.9:443"] {
        let peer: SocketAddr = peer.parse().unwrap();
        let ctx = RequestContext::new(&headers, peer, &trusted);
        if !ctx.peer_trusted {
            assert_eq!(ctx.client_ip, peer.ip(), "an untrusted peer's forwarded header is ignored");
        } else if ctx.client_ip != peer.ip() {
            let named = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|s| s.trim().parse::<IpAddr>().ok() == Some(ctx.client_ip));
            assert!(named, "the client address {} comes from the forwarded chain", ctx.client_ip);
        }
    }
}

/// 2027-01-15: after every seed's IssueInstant, before the seed certificate expires.
pub fn saml_now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

struct Saml {
    idp: SamlIdp,
    tracker: saml::LoginTracker,
    replay: saml::InMemoryReplayCache,
}

fn saml_idp() -> &'static Saml {
    static IDP: OnceLock<Saml> = OnceLock::new();
    IDP.get_or_init(|| {
        // The certificate of the key that signed the seeds (fuzz/idp.crt), so the fuzzer
        // starts from messages that pass the certificate pinning and reach the digest and
        // signature checks.
        let pem: String = include_str!("idp.crt").lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(pem).unwrap();
        let cfg = SamlConfig {
            name: "test".into(),
            enabled: true,
            sso_url: Some(url::Url::parse("https://idp.example/realms/media/protocol/saml").unwrap()),
            slo_url: Some(url::Url::parse("https://idp.example/realms/media/protocol/saml").unwrap()),
            sp_entity_id: "jellyfin-proxy".into(),
            idp_entity_id: Some("https://idp.example/realms/media".into()),
            certificates: vec![der],
            metadata: None,
            sp_key: None,
            sign_requests: false,
            require_encrypted_assertions: false,
            allow_cbc_encryption: false,
            role_attribute: "Role".into(),
            username_attribute: None,
            clock_skew: Duration::from_secs(60),
            grants: Default::default(),
            display_name: None,
            session: Default::default(),
        };
        // Our SP key pair: a fixed one (fuzz/sp.key, fuzz/sp.crt, made once with openssl, RSA
        // 3072 like the generated ones). Generating it here took longer than libFuzzer's
        // per-input timeout, which the first input pays.
        let cert = saml::X509Certificate::from_pem(include_bytes!("sp.crt")).unwrap();
        let key = saml::KeyPair::from_pkcs8_pem(include_bytes!("sp.key")).unwrap().with_certificate(cert).unwrap();
        let idp = SamlIdp::new(cfg, |p| format!("https://media.example{p}"), key, reqwest::Client::new()).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (_, tracker) = runtime.block_on(idp.start("relay")).unwrap();
        Saml { idp, tracker, replay: saml::InMemoryReplayCache::new(100) }
    })
}

/// The SAML messages the proxy takes from outside, through the `saml` crate: the ACS form
/// (form → base64 → XML + signature), and IdP-initiated LogoutRequests (HTTP-Redirect:
/// query → base64 → inflate → XML; HTTP-POST). The first byte picks the entry; `1` and `3`
/// wrap raw XML the way an IdP would, so the fuzzer works on the XML itself. None is signed
/// by the pinned key for this moment (the ACS expects its own request id; logout requests
/// are checked at [`saml_now`], long after the seeds were signed), so every one is refused.
pub fn saml(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let s = saml_idp();
    let b64 = |x: &[u8]| base64::engine::general_purpose::STANDARD.encode(x);
    let now = saml_now();
    match mode % 5 {
        0 => {
            let form: std::collections::HashMap<String, String> = url::form_urlencoded::parse(rest).into_owned().collect();
            if let Some(response) = form.get("SAMLResponse") {
                let relay = form.get("RelayState").map(String::as_str).unwrap_or("relay");
                assert!(s.idp.finish(response, relay, &s.tracker, &s.replay).is_err(), "an unsigned SAMLResponse was accepted");
            }
        }
        1 => assert!(s.idp.finish(&b64(rest), "relay", &s.tracker, &s.replay).is_err(), "an unsigned SAMLResponse was accepted"),
        2 => assert!(verify_logout_request(&s.idp, saml::Binding::HttpRedirect, &text(rest), now).is_err(), "an unsigned LogoutRequest was accepted"),
        3 => {
            let mut deflate = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            deflate.write_all(rest).unwrap();
            let query = url::form_urlencoded::Serializer::new(String::new()).append_pair("SAMLRequest", &b64(&deflate.finish().unwrap())).finish();
            assert!(verify_logout_request(&s.idp, saml::Binding::HttpRedirect, &query, now).is_err(), "an unsigned LogoutRequest was accepted");
        }
        _ => assert!(verify_logout_request(&s.idp, saml::Binding::HttpPost, &b64(rest), now).is_err(), "an unsigned LogoutRequest was accepted"),
    }
}

/// The OIDC callback's query (`/sso/OID/redirect/{p}?code&state`, or `error`, and `iss`).
pub fn oidc_callback(data: &[u8]) {
    let query = text(data);
    let Ok(cb) = Callback::parse(&query) else {
        assert!(!url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "state"), "a state was there");
        return;
    };
    let issuer = "https://op.example/realms/media";
    let has = |name: &str| url::form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == name);
    for check in [true, false] {
        match cb.code("op", issuer, check) {
            Ok(_) => assert!(!has("error") && has("code")),
            Err(SsoError::IdpRefused { .. }) => assert!(has("error")),
            Err(SsoError::InvalidToken { .. }) => assert!(check && has("iss")),
            Err(SsoError::BadRequest(_)) => assert!(!has("code")),
            Err(e) => panic!("unexpected callback error {e}"),
        }
    }
}

/// The login page's branding answers (branding.rs): which requests are intercepted, and the
/// JSON / CSS rewrite of Jellyfin's answer (first line: the request path; the rest: the body).
pub fn branding(data: &[u8]) {
    let (path, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    if let Ok(uri) = Uri::try_from(path) {
        for base in ["", "/jellyfin"] {
            let _ = Intercept::of(&http::Method::GET, &uri, base);
        }
    }
    let add = Addition { html: Some("<div class=\"jsp-sso\"><a href=\"/sso/OID/start/op\">op</a></div>".into()), css: Some(".jsp-sso{}".into()) };
    // Every member as its exact text; a repeated name read as JSON parsers read it (the last).
    type Members = std::collections::BTreeMap<String, Box<serde_json::value::RawValue>>;
    let owned = ["LoginDisclaimer", "CustomCss"];
    let before = serde_json::from_slice::<Members>(body);
    let string = |m: &Members, k: &str| m.get(k).map(|v| serde_json::from_str::<String>(v.get()));
    match rewrite_json(body, &add) {
        Some(out) => {
            let (b, a) = (before.expect("rewritten only when it was a JSON object"), serde_json::from_slice::<Members>(&out).expect("the rewrite is a JSON object"));
            assert!(string(&a, "LoginDisclaimer").unwrap().unwrap().ends_with(add.html.as_deref().unwrap()));
            assert!(string(&a, "CustomCss").unwrap().unwrap().ends_with(add.css.as_deref().unwrap()));
            for (k, v) in b.iter().filter(|(k, _)| !owned.contains(&k.as_str())) {
                assert_eq!(a.get(k).map(|v| v.get()), Some(v.get()), "member {k} kept as it was");
            }
            let expected: std::collections::BTreeSet<&str> = b.keys().map(String::as_str).chain(owned).collect();
            assert_eq!(a.keys().map(String::as_str).collect::<std::collections::BTreeSet<_>>(), expected, "no member added but ours");
        }
        // Refused only when it is no JSON object, or the operator's text of ours is no text.
        None => assert!(before.is_err() || owned.iter().any(|k| before.as_ref().is_ok_and(|m| string(m, k).is_some_and(|s| s.is_err()) && m[*k].get().starts_with('"'))), "a JSON object passed unchanged: {:?}", String::from_utf8_lossy(body)),
    }
    if let Some(out) = rewrite_css(body, &add) {
        let out = String::from_utf8(out).unwrap();
        assert!(out.ends_with(add.css.as_deref().unwrap()) && out.starts_with(std::str::from_utf8(body).unwrap().trim_end()));
    }
}

/// `proxy.yaml` (config/): any text loads or names its problems, each with a path.
pub fn config(data: &[u8]) {
    let env = figment::providers::Env::prefixed("JSP_FUZZ_UNUSED_");
    let yaml = text(data);
    match Config::from_parts(Some(yaml.as_str()), "proxy.yaml", Path::new("/nonexistent/jsp-fuzz"), env) {
        Ok(c) => {
            let _ = c.providers().count();
        }
        Err(jellyfin_sso_proxy::config::ConfigError::Invalid(problems)) => assert!(!problems.is_empty() && problems.iter().all(|p| !p.to_string().is_empty())),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// The admin API's provider JSON (`ProviderConfig::from_plugin_json`, the first byte picks
/// OIDC or SAML): what is accepted is accepted again in the form the API hands back.
pub fn admin_json(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(rest) else { return };
    let protocol = if mode % 2 == 0 { Protocol::Oidc } else { Protocol::Saml };
    let dir = Path::new("/nonexistent/jsp-fuzz");
    if let Ok(p) = ProviderConfig::from_plugin_json(protocol, "p", &json, dir) {
        let shown = p.to_plugin_json();
        let again = ProviderConfig::from_plugin_json(protocol, "p", &shown, dir).unwrap_or_else(|e| panic!("the API's own answer is refused: {e:?}\n{shown}"));
        assert_eq!(again.to_plugin_json(), shown, "a round trip changes the provider");
    }
}

/// A back-channel `logout_token` up to the signature check, and its claims.
pub fn logout_token(data: &[u8]) {
    let now = 1_800_000_000;
    if let Ok(t) = jellyfin_sso_proxy::fuzzing::logout_token(&text(data), Some("https://op.example"), "jellyfin", now) {
        assert!(!t.jti.is_empty() && (t.sid.is_some() || t.sub.is_some()));
        assert!(t.remember_until >= now, "a jti is remembered at least until now");
    }
}
