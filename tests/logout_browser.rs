//! The life of a session in a real browser against the real OpenID Provider (npm
//! `oidc-provider` with back-channel and RP-initiated logout): headless Chromium signs in,
//! signs out at `/sso/logout` and lands at the OP's end-session endpoint with the ID token
//! of *its* session; a logout at the OP posts a back-channel logout token and only that
//! browser's Jellyfin token stops working; re-validation with refresh tokens revokes a user
//! the OP disabled, and an unreachable OP revokes nothing.

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use jellyfin_double::{DoubleOptions, JellyfinDouble};
use serde_json::{json, Value};
use support::chromium::Chromium;
use support::oidc_provider::{OpAccount, OpClient, OpConfig, OpenIdProvider};
use support::TestProxy;

struct Setup {
    jf: JellyfinDouble,
    op: OpenIdProvider,
    proxy: TestProxy,
}

async fn setup(provider_yaml: &str, refresh: bool) -> Setup {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let listener = TestProxy::reserve();
    let port = listener.local_addr().unwrap().port();
    let cfg = OpConfig {
        clients: vec![OpClient {
            client_id: "jellyfin".into(),
            client_secret: Some("s3cret".into()),
            redirect_uris: vec![format!("https://127.0.0.1:{port}/sso/OID/redirect/test")],
            auth_method: "client_secret_basic".into(),
            require_par: false,
        }],
        accounts: vec![OpAccount { login: "u-carol".into(), password: "pw".into(), claims: json!({"preferred_username": "carol"}), userinfo_only: vec![] }],
        par: false,
        ..Default::default()
    };
    let mut extra = json!({
        "backchannel_logout_uri": format!("https://127.0.0.1:{port}/sso/OID/backchannel-logout/test"),
        "backchannel_logout_session_required": true,
        "post_logout_redirect_uris": [format!("https://127.0.0.1:{port}/")],
    });
    if refresh {
        extra["grant_types"] = json!(["authorization_code", "refresh_token"]);
    }
    let op = OpenIdProvider::start_with(&cfg, json!({ "jellyfin": extra })).await;
    let yaml = format!(
        "jellyfin:\n  url: {}\n  api_key: test-api-key\nproviders:\n  oid:\n    test:\n      oidEndpoint: {}\n      oidClientId: jellyfin\n      oidSecret: s3cret\n      disableHttps: true\n{provider_yaml}",
        jf.url(),
        op.issuer
    );
    let proxy = TestProxy::start_on(listener, tempfile::tempdir().unwrap(), &yaml).await;
    Setup { jf, op, proxy }
}

async fn login(c: &mut Chromium, s: &Setup, browser: &str) -> Value {
    let r = c.run(browser, "login", json!({"url": s.proxy.url("/sso/OID/start/test"), "login": "u-carol", "password": "pw"})).await;
    assert!(r["token"].is_string(), "{r:#}");
    r
}

async fn me(s: &Setup, token: &str) -> u16 {
    let r = support::http1_client().get(s.proxy.url("/Users/Me")).header("authorization", format!("MediaBrowser Token=\"{token}\"")).send().await.unwrap();
    r.status().as_u16()
}

/// Wait up to `limit` for `token` to answer `status` at /Users/Me through the proxy.
async fn until_status(s: &Setup, token: &str, status: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let now = me(s, token).await;
        if now == status {
            return;
        }
        assert!(Instant::now() < deadline, "still {now} after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The user's recorded sessions once `n` are left (the record goes just after Jellyfin's
/// session, so a revoked token can be seen a moment before its record is gone).
async fn mints_left(s: &Setup, user: &str, n: usize) -> Vec<jellyfin_sso_proxy::state::MintedSession> {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let m = s.proxy.app.sso.state().durable.mints_of_user(user).await.unwrap();
        if m.len() == n || Instant::now() > deadline {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn sid_of(s: &Setup, login: &Value) -> String {
    let m = s.proxy.app.sso.state().durable.mint(login["userId"].as_str().unwrap(), login["deviceId"].as_str().unwrap()).await.unwrap().expect("the login was recorded");
    m.sid.expect("the OP's sid is recorded")
}

fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn chromium_signs_out_at_sso_logout_and_reaches_the_ops_end_session_with_its_own_hint() {
    let s = setup("", false).await;
    let mut c = Chromium::start().await;
    let a = login(&mut c, &s, "A").await;
    let b = login(&mut c, &s, "B").await;
    let (sid_a, sid_b) = (sid_of(&s, &a).await, sid_of(&s, &b).await);
    assert_ne!(sid_a, sid_b, "two browsers, two OP sessions");

    let out = c.run("A", "proxyLogout", json!({"url": s.proxy.url("/sso/logout")})).await;
    let end = url::Url::parse(out["endSession"].as_str().unwrap_or_else(|| panic!("not sent to the OP: {out:#}"))).unwrap();
    assert_eq!(format!("{}{}", end.origin().ascii_serialization(), end.path()), format!("{}/session/end", s.op.issuer));
    let q: std::collections::HashMap<_, _> = end.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "jellyfin");
    assert_eq!(q["post_logout_redirect_uri"], s.proxy.url("/"));
    let hint = jwt_claims(&q["id_token_hint"]);
    assert_eq!(hint["sid"], sid_a.as_str(), "the hint is this browser's session's ID token, not another's");
    assert_eq!(hint["sub"], "u-carol");
    assert!(out["landed"].as_str().unwrap().starts_with(&s.proxy.url("/")), "the OP sent the browser back: {out:#}");

    assert_eq!(me(&s, a["token"].as_str().unwrap()).await, 401, "signed-out browser's token revoked");
    assert_eq!(me(&s, b["token"].as_str().unwrap()).await, 200, "the other browser stays signed in");
    assert!(s.jf.sessions().iter().any(|x| x.token == b["token"].as_str().unwrap()));
    c.quit().await;
}

#[tokio::test]
async fn a_logout_at_the_op_revokes_only_that_browser_through_the_back_channel() {
    let s = setup("", false).await;
    let mut c = Chromium::start().await;
    let a = login(&mut c, &s, "A").await;
    let b = login(&mut c, &s, "B").await;
    let (ta, tb) = (a["token"].as_str().unwrap(), b["token"].as_str().unwrap());
    assert_eq!((me(&s, ta).await, me(&s, tb).await), (200, 200));
    c.run("A", "opLogout", json!({"url": format!("{}/session/end", s.op.issuer)})).await;
    until_status(&s, ta, 401, Duration::from_secs(1)).await;
    assert_eq!(me(&s, tb).await, 200, "the browser with the other sid is untouched");
    let left = mints_left(&s, b["userId"].as_str().unwrap(), 1).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].device_id, b["deviceId"].as_str().unwrap());
    c.quit().await;
}

#[tokio::test]
async fn revalidation_revokes_a_user_the_op_disabled() {
    let s = setup("      revalidateInterval: 2s\n", true).await;
    let mut c = Chromium::start().await;
    let a = login(&mut c, &s, "A").await;
    c.quit().await;
    let token = a["token"].as_str().unwrap();
    let (user, device) = (a["userId"].as_str().unwrap(), a["deviceId"].as_str().unwrap());
    let m = s.proxy.app.sso.state().durable.mint(user, device).await.unwrap().unwrap();
    assert!(m.refresh_token.is_some(), "offline_access was asked for and the refresh token kept");
    // A refresh that works leaves the session alone and records it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = s.proxy.app.sso.state().durable.mint(user, device).await.unwrap().unwrap();
        if m.last_validated.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "never re-validated");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(me(&s, token).await, 200);
    s.op.disable("u-carol").await;
    until_status(&s, token, 401, Duration::from_secs(10)).await;
    assert!(mints_left(&s, user, 0).await.is_empty());
}

#[tokio::test]
async fn an_unreachable_op_revokes_nothing() {
    let s = setup("      revalidateInterval: 1s\n", true).await;
    let mut c = Chromium::start().await;
    let a = login(&mut c, &s, "A").await;
    c.quit().await;
    let token = a["token"].as_str().unwrap().to_string();
    let (user, device) = (a["userId"].as_str().unwrap().to_string(), a["deviceId"].as_str().unwrap().to_string());
    let Setup { jf: _jf, op, proxy } = s;
    let validated = |proxy: &TestProxy| {
        let durable = proxy.app.sso.state().durable.clone();
        let (user, device) = (user.clone(), device.clone());
        async move { durable.mint(&user, &device).await.unwrap().expect("still recorded") }
    };
    assert!(validated(&proxy).await.refresh_token.is_some(), "the session is one that re-validates");
    drop(op); // the OP process is killed
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = validated(&proxy).await.last_validated;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(validated(&proxy).await.last_validated, before, "re-validation was attempted (1 s interval) and did not succeed");
    let r = support::http1_client().get(proxy.url("/Users/Me")).header("authorization", format!("MediaBrowser Token=\"{token}\"")).send().await.unwrap();
    assert_eq!(r.status(), 200, "still signed in");
    assert_eq!(proxy.app.sso.state().durable.mints_of_user(a["userId"].as_str().unwrap()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn revalidation_takes_a_lost_admin_role_away_and_revokes_when_no_role_is_left() {
    let grants = "      revalidateInterval: 1s\n      roleClaim: groups\n      oidScopes: [groups]\n      roles: [media]\n      adminRoles: [admins]\n      enableAuthorization: true\n      enableAllFolders: true\n";
    let s = setup(grants, true).await;
    // Jellyfin refuses to take the rights of its last administrator (UserController.UpdateUserPolicy).
    s.jf.add_user("root", "pw", true);
    s.op.set_claims("u-carol", json!({"preferred_username": "carol", "groups": ["media", "admins"]})).await;
    let mut c = Chromium::start().await;
    let a = login(&mut c, &s, "A").await;
    c.quit().await;
    let (token, user) = (a["token"].as_str().unwrap(), a["userId"].as_str().unwrap());
    let is_admin = |s: &Setup| s.jf.user_policy(user).unwrap()["IsAdministrator"].as_bool().unwrap();
    assert!(is_admin(&s), "signed in as an administrator");

    s.op.set_claims("u-carol", json!({"preferred_username": "carol", "groups": ["media"]})).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while is_admin(&s) {
        assert!(Instant::now() < deadline, "the admin role was not taken away");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(me(&s, token).await, 200, "still allowed, so still signed in");

    s.op.set_claims("u-carol", json!({"preferred_username": "carol", "groups": []})).await;
    until_status(&s, token, 401, Duration::from_secs(10)).await;
}
