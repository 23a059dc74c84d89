//! The login in a real browser: headless Chromium (Debian `chromium`, driven by npm
//! `playwright-core`) goes from the proxy's start URL through the real OpenID Provider's login
//! page and the completion page to the Jellyfin web client, signed in.

mod support;

use serde_json::{json, Value};
use jellyfin_double::{DoubleOptions, JellyfinDouble};
use support::oidc_provider::{OpAccount, OpClient, OpConfig, OpenIdProvider};
use support::TestProxy;

async fn run_browser(start_url: &str, login: &str, password: &str, linking_page: bool) -> Value {
    let mut envs = vec![("START_URL", start_url.to_string()), ("LOGIN", login.to_string()), ("PASSWORD", password.to_string())];
    if linking_page {
        envs.push(("LINKING_PAGE", "1".into()));
    }
    support::node::run(&support::node::idp_dir().join("browser-login.mjs"), &envs, None, "BROWSER_RESULT").await
}

/// The web client is signed in with a token the double issued for the browser's own device id,
/// as user `name`.
fn assert_signed_in(r: &Value, proxy: &TestProxy, jf: &JellyfinDouble, name: &str) {
    assert!(r.get("error").is_none(), "browser: {r:#}");
    assert_eq!(r["url"], proxy.url("/web/index.html"));
    assert!(r["text"].as_str().unwrap().contains("Jellyfin Web Double"), "the double's web client page loaded");
    assert_eq!(r["autoLogin"], "true");
    let servers = r["credentials"]["Servers"].as_array().expect("jellyfin_credentials.Servers");
    assert_eq!(servers.len(), 1);
    let server = &servers[0];
    assert_eq!(server["Id"], jf.server_id());
    assert_eq!(server["ManualAddress"], proxy.url(""));
    assert_eq!(server["LastConnectionMode"], 2);
    let token = server["AccessToken"].as_str().unwrap();
    let device_id = r["deviceId"].as_str().expect("the page created _deviceId2");
    let session = jf.sessions().into_iter().find(|s| s.token == token).expect("the double issued this token");
    assert_eq!(session.device_id, device_id, "the Quick Connect session belongs to this browser's device id");
    assert_eq!(session.client, "Jellyfin Web");
    let user = jf.user_by_name(name).expect("user provisioned");
    assert_eq!(server["UserId"], user["Id"]);
}

/// Log in through provider `name` configured with `provider_yaml`, as `login`; check the web
/// client is signed in with a token the double issued for the browser's own device id.
async fn browser_login(name: &str, provider_yaml: &str, groups: Value, linking_page: bool) -> Value {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let listener = TestProxy::reserve();
    let port = listener.local_addr().unwrap().port();
    let op = OpenIdProvider::start(&OpConfig {
        clients: vec![OpClient::basic(port, name)],
        accounts: vec![OpAccount {
            login: "u-carol".into(),
            password: "pw".into(),
            claims: json!({"preferred_username": "carol", "groups": groups}),
            userinfo_only: vec![],
        }],
        par: true,
        ..Default::default()
    })
    .await;
    let yaml = format!(
        "jellyfin:\n  url: {}\n  api_key: test-api-key\nproviders:\n  oid:\n    {name}:\n      oidEndpoint: {}\n      oidClientId: jellyfin\n      oidSecret: s3cret\n      enabled: true\n      disableHttps: true\n{provider_yaml}",
        jf.url(),
        op.issuer
    );
    let proxy = TestProxy::start_on(listener, tempfile::tempdir().unwrap(), &yaml).await;
    let r = run_browser(&proxy.url(&format!("/sso/OID/start/{name}")), "u-carol", "pw", linking_page).await;
    if linking_page {
        // Removing the link revoked the Jellyfin session minted through it.
        assert!(r.get("error").is_none(), "browser: {r:#}");
        let token = r["credentials"]["Servers"][0]["AccessToken"].as_str().expect("signed in before the link was removed");
        assert!(jf.sessions().iter().all(|s| s.token != token), "the unlinked identity's session is revoked");
    } else {
        assert_signed_in(&r, &proxy, &jf, "carol");
    }
    r
}

#[tokio::test]
async fn chromium_signs_in_through_the_real_op() {
    browser_login("test", "", json!([]), false).await;
}

/// The self-service page at the plugin's old path lists the signed-in user's link (made by
/// the login), offers each provider, and removes the link.
#[tokio::test]
async fn linking_page_lists_and_removes_the_users_link_in_chromium() {
    let r = browser_login("test", "", json!([]), true).await;
    assert!(r["linksBefore"].as_str().unwrap().contains("test (OID): u-carol"), "{r:#}");
    assert_eq!(r["linkButtons"], json!(["/sso/OID/start/test?isLinking=true"]));
    let devices = r["devices"].as_str().unwrap();
    assert!(devices.contains("test (browser)") && devices.contains("Jellyfin Web"), "your devices: {devices}");
    assert!(r["linksAfter"].as_str().unwrap().contains("No linked identities yet."), "{r:#}");
}

/// The Pocket ID guide (shared/seeds/000), step for step: provider `test_resource`, a group in
/// `roles`, role claim `groups`, extra scope `groups`, scheme override `https`.
#[tokio::test]
async fn seed_000_pocket_id_story_in_chromium() {
    let yaml = "      roles: [jellyfin-users]\n      roleClaim: groups\n      oidScopes: [groups]\n      schemeOverride: https\n";
    browser_login("test_resource", yaml, json!(["jellyfin-users"]), false).await;
}

/// SAML in a real browser: the IdP (npm `samlify`, plain http on another port, so another
/// site) auto-posts the response cross-site to the ACS, where only the SameSite=None flow
/// cookie arrives; the completion page then signs the web client in.
#[tokio::test]
async fn chromium_signs_in_through_the_real_saml_idp() {
    use support::saml_idp::{saml_setup, SamlAccount};
    let account = SamlAccount { login: "sam".into(), password: "pw".into(), name_id: "sam@idp".into(), attributes: json!({"Role": ["media"]}) };
    let s = saml_setup("corp", "both", vec![account], "      roles: [media]\n").await;
    let r = run_browser(&s.proxy.url("/sso/SAML/start/corp"), "sam", "pw", false).await;
    assert_signed_in(&r, &s.proxy, &s.jf, "sam@idp");
}
