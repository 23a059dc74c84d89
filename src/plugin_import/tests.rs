//! The plugin's XML → providers and links, without a state: the fixtures of
//! tests/fixtures/plugin/ (built from the plugin's and a fork's classes) read and mapped.

use super::plugin::{self, Fate};
use super::{fragment, guid, xml};
use crate::config::{Config, Protocol, ProviderConfig};
use crate::state::StoredProvider;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plugin").join(name)).unwrap()
}

fn providers(text: &str) -> Vec<plugin::PluginProvider> {
    let root = xml::parse(text).unwrap();
    let mut out = Vec::new();
    for (protocol, map) in [(Protocol::Oidc, "OidConfigs"), (Protocol::Saml, "SamlConfigs")] {
        let Some(e) = root.child(map) else { continue };
        for (name, value, line) in plugin::map_items(e, &mut Vec::new()) {
            out.push(plugin::provider(protocol, &name, line, value.child("PluginConfiguration").unwrap()));
        }
    }
    out
}

#[test]
fn guids_in_every_form_dotnet_writes_become_jellyfins_form() {
    let n = "0f8fad5bd9cb469fa16570867728950e";
    for t in ["0F8FAD5B-D9CB-469F-A165-70867728950E", "{0f8fad5b-d9cb-469f-a165-70867728950e}", n, " 0f8fad5b-d9cb-469f-a165-70867728950e "] {
        assert_eq!(guid(t).as_deref(), Some(n), "{t}");
    }
    for t in ["", "alice", "0f8fad5b-d9cb-469f-a165-70867728950", "0f8fad5bd9cb-469f-a165-70867728950e", "zf8fad5bd9cb469fa16570867728950e"] {
        assert_eq!(guid(t), None, "{t}");
    }
}

#[test]
fn the_plugins_fields_are_mapped_or_dropped_with_a_reason() {
    let cert = rcgen::generate_simple_self_signed(vec!["idp".into()]).unwrap().cert;
    use base64::Engine;
    let text = fixture("SSO-Auth.xml")
        .replace("@ISSUER@", "https://id.example.com/realms/x")
        .replace("@SAML_CERT@", &base64::engine::general_purpose::STANDARD.encode(cert.der()))
        .replace("@ALICE@", "0F8FAD5B-D9CB-469F-A165-70867728950E");
    let ps = providers(&text);
    let oid = ps.iter().find(|p| p.protocol == Protocol::Oidc).unwrap();
    assert_eq!(oid.name, "test");
    assert_eq!(oid.json["oidEndpoint"], "https://id.example.com/realms/x");
    assert_eq!(oid.json["roles"], serde_json::json!(["jellyfin-users"]));
    assert_eq!(oid.json["disableHttps"], true);
    assert!(!oid.json.contains_key("schemeOverride") && !oid.json.contains_key("portOverride"));
    let fate = |p: &plugin::PluginProvider, e: &str| p.fields.iter().find(|(n, _, _)| n == e).map(|(_, _, f)| f.clone()).unwrap();
    assert!(matches!(fate(oid, "SchemeOverride"), Fate::Dropped(_)));
    assert!(matches!(fate(oid, "NewPath"), Fate::Dropped(why) if why.contains("new paths")));
    assert_eq!(fate(oid, "RoleClaim"), Fate::Mapped("roleClaim"));
    assert_eq!(oid.links.iter().map(|(n, _, _)| n.as_str()).collect::<Vec<_>>(), ["alice", "boss"]);
    assert!(!oid.links_keyed_by_sub && oid.problems.is_empty());

    let saml = ps.iter().find(|p| p.protocol == Protocol::Saml).unwrap();
    assert_eq!(saml.json["folderRoleMapping"], serde_json::json!([{"role": "kids", "folders": ["f137a2dd21bbc1b99aa5c0f6bf02a805"]}]));
    assert!(matches!(fate(saml, "NewPath"), Fate::Dropped(why) if why.contains("/sso/SAML/post/")));
    let mut json = saml.json.clone();
    json.insert("samlIdpEntityId".into(), "https://idp.example.com".into());
    let dir = std::path::Path::new("/nonexistent");
    ProviderConfig::from_plugin_json(Protocol::Saml, "corp", &serde_json::Value::Object(json.clone()), dir).unwrap();
    ProviderConfig::from_plugin_json(Protocol::Oidc, "test", &serde_json::Value::Object(oid.json.clone()), dir).unwrap();

    // The fragment is proxy.yaml: the same providers come out of the config loader.
    let stored = vec![
        StoredProvider { protocol: "oid".into(), name: "test".into(), json: serde_json::Value::Object(oid.json.clone()) },
        StoredProvider { protocol: "saml".into(), name: "corp".into(), json: serde_json::Value::Object(json) },
    ];
    let text = fragment::render(&stored, std::path::Path::new("SSO-Auth.xml"));
    let c = Config::from_parts(Some(&text), "proxy.yaml", dir, figment::providers::Env::prefixed("JSP_TEST_NEVER_SET_")).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let names: Vec<_> = c.providers().map(|p| (p.protocol(), p.name().to_string())).collect();
    assert_eq!(names, [(Protocol::Oidc, "test".to_string()), (Protocol::Saml, "corp".to_string())]);
}

#[test]
fn an_empty_username_claim_means_the_plugin_keyed_links_by_sub() {
    let text = fixture("SSO-Auth.xml").replace("<RoleClaim>groups</RoleClaim>", "<RoleClaim>groups</RoleClaim>\n          <DefaultUsernameClaim />");
    let ps = providers(&text);
    let oid = ps.iter().find(|p| p.protocol == Protocol::Oidc).unwrap();
    assert!(oid.links_keyed_by_sub);
    assert_eq!(oid.json["defaultUsernameClaim"], "sub", "people keep the names the plugin gave them");
}

#[test]
fn a_forks_fields_are_unknown_or_mapped_and_its_issuers_mark_subjects() {
    let ps = providers(&fixture("SSO-Auth.fork.xml"));
    let p = &ps[0];
    let unknown: Vec<_> = p.fields.iter().filter(|(_, _, f)| *f == Fate::Unknown).map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(unknown, ["BaseUrlOverride", "EnableBackChannelLogout", "HideLoginButton", "AllowExistingAccountLink", "CanonicalLinkLastLogins", "AcrValues", "MaxAge", "RoleClaimIsObjectMap"]);
    assert_eq!(p.json["displayName"], "Sign in with Forked & Co");
    assert_eq!(p.subject_keys, ["u-dave"]);
    let encrypted = fixture("SSO-Auth.fork.xml").replace("<OidSecret>jellyfin-secret</OidSecret>", "<OidSecret>ssoenc:v1:AAAA</OidSecret>");
    let p = &providers(&encrypted)[0];
    assert!(p.problems.iter().any(|(_, m)| m.contains("ssoenc")), "{:?}", p.problems);
    assert!(!p.json.contains_key("oidSecret"));
}
