//! Sessions end when they should, against a provider whose keys the test holds (the hostile
//! OP, which signs logout tokens as told): back-channel logout verified to the letter (each
//! forgery a 400 with nothing revoked), front-channel logout, `/sso/logout` and the web
//! client's own sign-out with the provider's end-session redirect, the sessions API, the
//! max-age sweep, and revocation after a restart (the record is durable).

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jellyfin_double::{DoubleOptions, JellyfinDouble};
use serde_json::{json, Value};
use support::browser::{completion_data, Browser};
use support::hostile_op::{Forgery, HostileOp, SignWith, HOSTILE_SID};
use support::TestProxy;

const KEY: &str = "test-api-key";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

struct Setup {
    jf: JellyfinDouble,
    op: HostileOp,
    proxy: TestProxy,
    yaml: String,
}

async fn setup(extra: &str) -> Setup {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let op = HostileOp::start(Forgery::Honest, "jellyfin", "victim-sub").await;
    let yaml = format!(
        "jellyfin:\n  url: {}\n  api_key: {KEY}\nproviders:\n  oid:\n    evil:\n      oidEndpoint: {}\n      oidClientId: jellyfin\n      oidSecret: the-client-secret\n      disableHttps: true\n      doNotLoadProfile: true\n{extra}",
        jf.url(),
        op.issuer
    );
    let proxy = TestProxy::start_config(&yaml).await;
    Setup { jf, op, proxy, yaml }
}

/// Sign in through the OP on `device`; returns the browser (with its session cookie) and
/// the Jellyfin token.
async fn login(proxy: &TestProxy, device: &str) -> (Browser, String) {
    let mut b = Browser::new();
    let page = b.follow(&proxy.url("/sso/OID/start/evil"), |_| false).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let data = completion_data(&page);
    let body = json!({"deviceId": device, "deviceName": "Chrome", "appName": "Jellyfin Web", "appVersion": "10.10.7", "data": data["handle"]});
    let done = b.post_json(&proxy.url(data["authUrl"].as_str().unwrap()), &body).await;
    assert_eq!(done.status, 200, "{}", done.body);
    let r: Value = serde_json::from_str(&done.body).unwrap();
    (b, r["AccessToken"].as_str().unwrap().to_string())
}

/// `GET /Users/Me` through the proxy with `token`.
async fn me(proxy: &TestProxy, token: &str) -> u16 {
    let r = support::http1_client().get(proxy.url("/Users/Me")).header("authorization", format!("MediaBrowser Token=\"{token}\"")).send().await.unwrap();
    r.status().as_u16()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn claims(op: &HostileOp, jti: &str) -> Value {
    json!({"iss": op.issuer, "aud": "jellyfin", "iat": now(), "exp": now() + 120, "jti": jti, "sid": HOSTILE_SID, "events": {EVENT: {}}})
}

async fn backchannel(proxy: &TestProxy, token: &str) -> (u16, Value) {
    let r = support::http1_client().post(proxy.url("/sso/OID/backchannel-logout/evil")).form(&[("logout_token", token)]).send().await.unwrap();
    let status = r.status().as_u16();
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    (status, r.json().await.unwrap())
}

async fn mint_count(proxy: &TestProxy, user_id: &str) -> usize {
    proxy.app.sso.state().durable.mints_of_user(user_id).await.unwrap().len()
}

/// Wait (2 s at most) for the user's records to be gone: a background revocation removes
/// the record just after Jellyfin's session, so the token can fail a moment earlier.
async fn records_gone(proxy: &TestProxy, user_id: &str) -> usize {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let n = mint_count(proxy, user_id).await;
        if n == 0 || std::time::Instant::now() > deadline {
            return n;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn forged_logout_tokens_are_each_refused_with_nothing_revoked() {
    let s = setup("").await;
    let (_b, token) = login(&s.proxy, "dev-1").await;
    let user = s.jf.user_id("forged-admin").unwrap();
    assert_eq!(mint_count(&s.proxy, &user).await, 1);
    let m = &s.proxy.app.sso.state().durable.mints_of_user(&user).await.unwrap()[0];
    assert_eq!(m.sid.as_deref(), Some(HOSTILE_SID), "the ID token's sid is recorded with the mint");
    assert!(m.id_token.as_ref().is_some_and(|t| !t.windows(3).any(|w| w == b"eyJ")), "the ID token is kept, encrypted");

    // A token for another sid is fine (nothing to revoke), and burns its jti.
    let mut other = claims(&s.op, "used-jti");
    other["sid"] = json!("some-other-sid");
    assert_eq!(backchannel(&s.proxy, &s.op.sign(&other, SignWith::Published)).await.0, 200);

    let edit = |f: &dyn Fn(&mut Value)| {
        let mut c = claims(&s.op, &format!("jti-{}", rand_suffix()));
        f(&mut c);
        c
    };
    let forgeries: Vec<(&str, String)> = vec![
        ("bad signature", s.op.sign(&edit(&|_| {}), SignWith::Unpublished)),
        ("alg none", s.op.sign(&edit(&|_| {}), SignWith::NoneAlg)),
        ("HS256 with the client secret", s.op.sign(&edit(&|_| {}), SignWith::Hs256("the-client-secret"))),
        ("wrong aud", s.op.sign(&edit(&|c| c["aud"] = json!("someone-else")), SignWith::Published)),
        ("wrong iss", s.op.sign(&edit(&|c| c["iss"] = json!("http://evil.example")), SignWith::Published)),
        ("missing events", s.op.sign(&edit(&|c| drop(c.as_object_mut().unwrap().remove("events"))), SignWith::Published)),
        ("nonce present", s.op.sign(&edit(&|c| c["nonce"] = json!("n")), SignWith::Published)),
        ("neither sid nor sub", s.op.sign(&edit(&|c| drop(c.as_object_mut().unwrap().remove("sid"))), SignWith::Published)),
        ("replayed jti", s.op.sign(&claims(&s.op, "used-jti"), SignWith::Published)),
        ("iat far in the future", s.op.sign(&edit(&|c| c["iat"] = json!(now() + 3600)), SignWith::Published)),
        ("expired", s.op.sign(&edit(&|c| c["exp"] = json!(now() - 3600)), SignWith::Published)),
        ("not a JWT", "garbage".to_string()),
    ];
    for (what, forged) in &forgeries {
        let (status, body) = backchannel(&s.proxy, forged).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"], "invalid_request", "{what}: {body}");
        assert!(!body.to_string().contains(forged.as_str()), "the token is not echoed");
        assert_eq!(me(&s.proxy, &token).await, 200, "{what}: nothing revoked");
        assert_eq!(mint_count(&s.proxy, &user).await, 1, "{what}: the record stays");
    }
    let missing = support::http1_client().post(s.proxy.url("/sso/OID/backchannel-logout/evil")).form(&[("x", "y")]).send().await.unwrap();
    assert_eq!(missing.status(), 400);

    // The honest token revokes, at once.
    let (status, body) = backchannel(&s.proxy, &s.op.sign(&claims(&s.op, "honest"), SignWith::Published)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(me(&s.proxy, &token).await, 401, "the Jellyfin token no longer works");
    assert_eq!(mint_count(&s.proxy, &user).await, 0);
    assert!(s.jf.sessions().iter().all(|x| x.token != token));
}

fn rand_suffix() -> String {
    jellyfin_sso_proxy::state::random_token()
}

#[tokio::test]
async fn sub_only_logout_ends_every_session_of_that_subject_and_front_channel_needs_the_issuer() {
    let s = setup("").await;
    let (_b1, t1) = login(&s.proxy, "dev-1").await;
    let (_b2, t2) = login(&s.proxy, "dev-2").await;
    let mut c = claims(&s.op, "sub-only");
    c.as_object_mut().unwrap().remove("sid");
    c["sub"] = json!("victim-sub");
    assert_eq!(backchannel(&s.proxy, &s.op.sign(&c, SignWith::Published)).await.0, 200);
    assert_eq!((me(&s.proxy, &t1).await, me(&s.proxy, &t2).await), (401, 401));

    let (_b3, t3) = login(&s.proxy, "dev-3").await;
    let client = support::http1_client();
    let url = |iss: &str, sid: &str| s.proxy.url(&format!("/sso/OID/frontchannel-logout/evil?iss={}&sid={sid}", urlencode(iss)));
    assert_eq!(client.get(url("http://evil.example", HOSTILE_SID)).send().await.unwrap().status(), 400, "wrong iss");
    assert_eq!(client.get(s.proxy.url("/sso/OID/frontchannel-logout/evil")).send().await.unwrap().status(), 400, "no iss, no sid");
    assert_eq!(me(&s.proxy, &t3).await, 200);
    assert_eq!(client.get(url(&s.op.issuer, HOSTILE_SID)).send().await.unwrap().status(), 200);
    assert_eq!(me(&s.proxy, &t3).await, 401);
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn hint_claims(location: &str) -> (url::Url, Value) {
    let u = url::Url::parse(location).unwrap();
    let q: std::collections::HashMap<_, _> = u.query_pairs().into_owned().collect();
    let hint = q.get("id_token_hint").expect("id_token_hint");
    let payload = hint.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    (u, claims)
}

#[tokio::test]
async fn sso_logout_revokes_this_browser_and_sends_it_to_the_providers_end_session() {
    let s = setup("").await;
    let (mut b1, t1) = login(&s.proxy, "dev-1").await;
    let (_b2, t2) = login(&s.proxy, "dev-2").await;
    // A return target in the request is ignored.
    let page = b1.get(&s.proxy.url("/sso/logout?post_logout_redirect_uri=https://attacker.example/&return=https://attacker.example/")).await;
    assert_eq!(page.status, 302);
    let location = page.headers["location"].to_str().unwrap();
    let (u, hint) = hint_claims(location);
    assert_eq!(format!("{}{}", u.origin().ascii_serialization(), u.path()), format!("{}/logout", s.op.issuer));
    let q: std::collections::HashMap<_, _> = u.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], "jellyfin");
    assert_eq!(q["post_logout_redirect_uri"], s.proxy.url("/"));
    assert!(!location.contains("attacker"));
    assert_eq!((hint["sid"].as_str(), hint["aud"].as_str()), (Some(HOSTILE_SID), Some("jellyfin")));
    let cleared = page.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect::<Vec<_>>();
    assert!(cleared.iter().any(|c| c.starts_with("__Host-jsp-session=;") && c.contains("Max-Age=0")), "{cleared:?}");
    assert_eq!(me(&s.proxy, &t1).await, 401, "this browser's token is revoked");
    assert_eq!(me(&s.proxy, &t2).await, 200, "the other browser's is not");
    let user = s.jf.user_id("forged-admin").unwrap();
    let left = s.proxy.app.sso.state().durable.mints_of_user(&user).await.unwrap();
    assert_eq!(left.iter().map(|m| m.device_id.as_str()).collect::<Vec<_>>(), ["dev-2"]);

    // Without a session there is nothing to hint: Jellyfin's login page.
    let page = Browser::new().get(&s.proxy.url("/sso/logout")).await;
    assert_eq!(page.status, 302);
    assert_eq!(page.headers["location"], "/web/index.html#/login.html");
}

#[tokio::test]
async fn the_web_clients_sign_out_ends_the_proxy_session_and_with_sign_out_of_provider_the_next_page_load_too() {
    let s = setup("      signOutOfProvider: true\n").await;
    let (mut b, token) = login(&s.proxy, "dev-1").await;
    let auth = format!("MediaBrowser Token=\"{token}\"");
    let cookie = format!("__Host-jsp-session={}", b.cookie("__Host-jsp-session").unwrap());
    let client = support::http1_client();
    let r = client.post(s.proxy.url("/Sessions/Logout")).header("authorization", &auth).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 204, "Jellyfin's answer, unchanged");
    assert!(r.headers().get("set-cookie").is_none(), "the answer is passed through unchanged");
    assert_eq!(me(&s.proxy, &token).await, 401);
    let user = s.jf.user_id("forged-admin").unwrap();
    assert_eq!(mint_count(&s.proxy, &user).await, 0, "the record went with it");

    // An API call is not a page load: no redirect, and no token injected any more.
    let api = client.get(s.proxy.url("/Users/Me")).header("cookie", &cookie).header("sec-fetch-mode", "cors").send().await.unwrap();
    assert_eq!(api.status(), 401);
    // The next page load goes through the provider's logout, with this session's hint.
    let nav = b.request(reqwest::Method::GET, &s.proxy.url("/web/index.html"), None, None).await;
    assert_eq!(nav.status, 302, "{}", nav.body);
    assert_eq!(nav.headers["location"], "/sso/logout");
    let out = b.get(&s.proxy.url("/sso/logout")).await;
    let (_, hint) = hint_claims(out.headers["location"].to_str().unwrap());
    assert_eq!(hint["sid"], HOSTILE_SID);
    let again = b.request(reqwest::Method::GET, &s.proxy.url("/web/index.html"), None, None).await;
    assert_ne!(again.status, 302, "once only");

    // Without signOutOfProvider the proxy session simply ends.
    let s = setup("").await;
    let (mut b, token) = login(&s.proxy, "dev-1").await;
    let cookie = format!("__Host-jsp-session={}", b.cookie("__Host-jsp-session").unwrap());
    let r = client.post(s.proxy.url("/Sessions/Logout")).header("authorization", format!("MediaBrowser Token=\"{token}\"")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 204);
    let nav = b.request(reqwest::Method::GET, &s.proxy.url("/web/index.html"), None, None).await;
    assert_ne!(nav.status, 302);
    assert!(s.proxy.app.sso.sessions.get(&jellyfin_sso_proxy::cookie::Cookies { session: b.cookie("__Host-jsp-session"), ..Default::default() }).await.is_none());
}

#[tokio::test]
async fn sessions_api_lists_and_revokes_for_the_user_or_an_admin() {
    let s = setup("").await;
    let (_b1, t1) = login(&s.proxy, "dev-1").await;
    let (_b2, t2) = login(&s.proxy, "dev-2").await;
    let user = s.jf.user_id("forged-admin").unwrap();
    let client = support::http1_client();
    let as_user = |t: &str| format!("MediaBrowser Token=\"{t}\"");
    let r = client.get(s.proxy.url(&format!("/sso/sessions/{user}"))).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let other = s.jf.add_user("mallory", "pw", false);
    let mallory = support::jellyfin_password_login(&s.jf.url(), "mallory", "pw").await.unwrap();
    let r = client.get(s.proxy.url(&format!("/sso/sessions/{user}"))).header("authorization", as_user(&mallory)).send().await.unwrap();
    assert_eq!(r.status(), 403, "another user may not look");
    let r = client.delete(s.proxy.url(&format!("/sso/sessions/{user}"))).header("authorization", as_user(&mallory)).send().await.unwrap();
    assert_eq!(r.status(), 403, "nor revoke");
    assert!(!other.is_empty());

    let list: Value = client.get(s.proxy.url(&format!("/sso/sessions/{user}"))).header("authorization", as_user(&t1)).send().await.unwrap().json().await.unwrap();
    let devices: Vec<&str> = list.as_array().unwrap().iter().map(|x| x["deviceId"].as_str().unwrap()).collect();
    assert_eq!(devices, ["dev-1", "dev-2"]);
    assert_eq!(list[0]["provider"], "evil");
    assert_eq!(list[0]["how"], "browser");
    assert_eq!(list[0]["client"], "Jellyfin Web");
    assert!(list[0]["mintedAt"].as_u64().unwrap() > 0);
    assert!(!list.to_string().contains("idToken") && !list.to_string().contains(&t1), "no tokens in the listing");

    let r = client.delete(s.proxy.url(&format!("/sso/sessions/{user}/dev-2"))).header("authorization", format!("MediaBrowser Token=\"{KEY}\"")).send().await.unwrap();
    assert_eq!(r.status(), 200, "an API key is an admin");
    assert_eq!((me(&s.proxy, &t1).await, me(&s.proxy, &t2).await), (200, 401));
    let r = client.delete(s.proxy.url(&format!("/sso/sessions/{user}/dev-2"))).header("authorization", as_user(&t1)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r: Value = client.delete(s.proxy.url(&format!("/sso/sessions/{user}"))).header("authorization", as_user(&t1)).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["revoked"], 1);
    assert_eq!(me(&s.proxy, &t1).await, 401);
}

#[tokio::test]
async fn unlinking_and_unregistering_revoke_what_they_cut_off() {
    let s = setup("").await;
    let (_b, t1) = login(&s.proxy, "dev-1").await;
    let user = s.jf.user_id("forged-admin").unwrap();
    let client = support::http1_client();
    let admin = format!("MediaBrowser Token=\"{KEY}\"");
    let r = client.delete(s.proxy.url(&format!("/sso/OID/Link/evil/{user}/victim-sub"))).header("authorization", &admin).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(me(&s.proxy, &t1).await, 401, "the unlinked identity's session is gone");

    let (_b, t2) = login(&s.proxy, "dev-2").await;
    let r = client.post(s.proxy.url("/sso/Unregister/forged-admin")).header("authorization", &admin).json(&json!("Jellyfin.Server.Implementations.Users.DefaultAuthenticationProvider")).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(me(&s.proxy, &t2).await, 401);
    assert_eq!(mint_count(&s.proxy, &user).await, 0);
}

#[tokio::test]
async fn sessions_older_than_session_max_age_are_swept() {
    let s = setup("      sessionMaxAge: 2s\n").await;
    let (_b, token) = login(&s.proxy, "dev-1").await;
    assert_eq!(me(&s.proxy, &token).await, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while me(&s.proxy, &token).await == 200 {
        assert!(std::time::Instant::now() < deadline, "not swept within 8 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let user = s.jf.user_id("forged-admin").unwrap();
    assert_eq!(records_gone(&s.proxy, &user).await, 0);
}

#[tokio::test]
async fn a_restart_between_login_and_logout_still_revokes() {
    let s = setup("").await;
    let (_b, token) = login(&s.proxy, "dev-1").await;
    let dir = s.proxy.stop_keep_dir().await;
    let proxy = TestProxy::start_on(TestProxy::reserve(), dir, &s.yaml).await;
    assert_eq!(me(&proxy, &token).await, 200);
    let (status, body) = backchannel(&proxy, &s.op.sign(&claims(&s.op, "after-restart"), SignWith::Published)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(me(&proxy, &token).await, 401);
}
