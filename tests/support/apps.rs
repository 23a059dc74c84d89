//! Shared set-up for the app tests (device linking, app passwords, the password endpoint):
//! the Jellyfin double, the real OpenID Provider with provider `corp` (app passwords on, at
//! most two per user, role `jellyfin-users` required) and the proxy, plus a signed-in browser.

use jellyfin_double::{DoubleOptions, JellyfinDouble};
use serde_json::{json, Value};

use super::browser::{completion_data, Browser, Page};
use super::oidc_provider::{OpAccount, OpClient, OpConfig, OpenIdProvider};
use super::TestProxy;

pub const KEY: &str = "test-api-key";

pub struct Apps {
    pub jf: JellyfinDouble,
    pub op: OpenIdProvider,
    pub proxy: TestProxy,
}

fn account(login: &str, claims: Value) -> OpAccount {
    OpAccount { login: login.into(), password: "pw".into(), claims, userinfo_only: vec![] }
}

/// Start everything; `top_yaml` is added at the top level of proxy.yaml.
pub async fn start(top_yaml: &str) -> Apps {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let listener = TestProxy::reserve();
    let port = listener.local_addr().unwrap().port();
    let op = OpenIdProvider::start(&OpConfig {
        clients: vec![OpClient::basic(port, "corp")],
        accounts: vec![
            account("u-alice", json!({"preferred_username": "alice", "groups": ["jellyfin-users"]})),
            account("u-bob", json!({"preferred_username": "bob", "groups": ["jellyfin-users"]})),
            account("u-mallory", json!({"preferred_username": "mallory", "groups": ["other"]})),
        ],
        par: false,
        ..Default::default()
    })
    .await;
    let yaml = format!(
        "jellyfin:\n  url: {}\n  api_key: {KEY}\n{top_yaml}providers:\n  oid:\n    corp:\n      oidEndpoint: {}\n      oidClientId: jellyfin\n      oidSecret: s3cret\n      disableHttps: true\n      roleClaim: groups\n      oidScopes: [groups]\n      roles: [jellyfin-users]\n      appPasswords: true\n      maxAppPasswords: 2\n",
        jf.url(),
        op.issuer
    );
    let proxy = TestProxy::start_on(listener, tempfile::tempdir().unwrap(), &yaml).await;
    Apps { jf, op, proxy }
}

/// Sign `login` in at `start` (a proxy path), as the completion page would for `device_id`.
/// Returns the browser (holding the session cookie) and the AuthenticationResult.
pub async fn sign_in_at(s: &Apps, start: &str, login: &str, device_id: &str) -> (Browser, Value) {
    let mut b = Browser::new();
    let is_callback = |u: &str| u.contains("/sso/OID/redirect/");
    let page = b.follow(&s.proxy.url(start), is_callback).await;
    let page = b.submit_form(&page, &[("login", login), ("password", "pw")], is_callback).await;
    let cb = super::browser::absolute(&page.url, page.headers["location"].to_str().unwrap());
    let page = b.get(&cb).await;
    assert_eq!(page.status, 200, "completion page: {}", page.body);
    let data = completion_data(&page);
    let body = json!({"deviceId": device_id, "deviceName": "Chrome", "appName": "Jellyfin Web", "appVersion": "10.10.7", "data": data["handle"]});
    let r = b.post_json(&s.proxy.url(data["authUrl"].as_str().unwrap()), &body).await;
    assert_eq!(r.status, 200, "Auth: {}", r.body);
    (b, serde_json::from_str(&r.body).unwrap())
}

/// The completion page's data after signing in at `start` (to check where it goes next).
pub async fn completion_of(s: &Apps, start: &str, login: &str) -> Value {
    let mut b = Browser::new();
    let is_callback = |u: &str| u.contains("/sso/OID/redirect/");
    let page = b.follow(&s.proxy.url(start), is_callback).await;
    let page = b.submit_form(&page, &[("login", login), ("password", "pw")], is_callback).await;
    let cb = super::browser::absolute(&page.url, page.headers["location"].to_str().unwrap());
    completion_data(&b.get(&cb).await)
}

/// A device starts Quick Connect at the double directly (as a TV would through the proxy).
pub async fn initiate(jf: &JellyfinDouble, device_id: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{}/QuickConnect/Initiate", jf.url()))
        .header("Authorization", format!("MediaBrowser Client=\"Jellyfin Roku\", Device=\"Roku\", DeviceId=\"{device_id}\", Version=\"2.0\""))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `POST /Users/AuthenticateByName` through the proxy from `xff` (a trusted proxy's client).
pub async fn password_login(s: &Apps, path: &str, user: &str, pw: &str, xff: &str, device_id: &str) -> (u16, Option<String>, String) {
    let r = super::http1_client()
        .post(s.proxy.url(path))
        .header("Authorization", format!("MediaBrowser Client=\"Infuse\", Device=\"iPad\", DeviceId=\"{device_id}\", Version=\"7.8\""))
        .header("X-Forwarded-For", xff)
        .json(&json!({"Username": user, "Pw": pw}))
        .send()
        .await
        .unwrap();
    let retry = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (r.status().as_u16(), retry, r.text().await.unwrap())
}

/// The signed-in form page at `/sso/link`.
pub async fn link_page(b: &mut Browser, s: &Apps) -> Page {
    let p = b.get(&s.proxy.url("/sso/link")).await;
    assert_eq!(p.status, 200);
    p
}
