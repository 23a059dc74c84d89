//! What one proxy refuses, the other refuses too: two proxies on one real Redis + PostgreSQL
//! (tests/support/pair.rs), an attacker alternating between them. Starting logins per client
//! address (`sso.max_pending_flows_per_client`), guessing Quick Connect codes at `/sso/link`
//! and guessing passwords at `AuthenticateByName` each get one proxy's allowance in all, not
//! one per proxy. And a back-channel logout from the real OpenID Provider that reaches B ends
//! a session made on A: the token is revoked at Jellyfin and A stops injecting it.

mod support;

use std::time::{Duration, Instant};

use jellyfin_double::{DoubleOptions, JellyfinDouble};
use serde_json::{json, Value};
use support::browser::{absolute, completion_data, Browser};
use support::oidc_provider::{OpAccount, OpClient, OpConfig, OpenIdProvider};
use support::pair::{pair, ports, Pair};
use support::{http1_client, servers, TestProxy};

const KEY: &str = "test-api-key";

struct Setup {
    jf: JellyfinDouble,
    op: OpenIdProvider,
    p: Pair,
}

/// The double, the real OP (its back-channel logout pointed at B when `logout_to_b`) and A + B.
async fn setup(extra_yaml: &str, logout_to_b: bool) -> Setup {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let ports = ports();
    let cfg = OpConfig {
        clients: vec![OpClient::basic(ports.public, "op")],
        accounts: vec![OpAccount { login: "u-alice".into(), password: "pw".into(), claims: json!({"preferred_username": "alice"}), userinfo_only: vec![] }],
        par: false,
        ..Default::default()
    };
    let op = if logout_to_b {
        let uri = format!("https://127.0.0.1:{}/sso/OID/backchannel-logout/op", ports.b_port);
        OpenIdProvider::start_with(&cfg, json!({"jellyfin": {"backchannel_logout_uri": uri, "backchannel_logout_session_required": true}})).await
    } else {
        OpenIdProvider::start(&cfg).await
    };
    let yaml = format!(
        "jellyfin:\n  url: {}\n  api_key: {KEY}\n{extra_yaml}providers:\n  oid:\n    op:\n      oidEndpoint: {}\n      oidClientId: jellyfin\n      oidSecret: s3cret\n      disableHttps: true\n      enableAllFolders: true\n",
        jf.url(),
        op.issuer
    );
    let p = pair(ports, &servers::shared_fresh(), &yaml).await;
    Setup { jf, op, p }
}

/// Sign in through `at` (start, OP, callback, completion all there), starting at `start`:
/// the browser holding the session cookie and the AuthenticationResult.
async fn sign_in(at: &TestProxy, start: &str) -> (Browser, Value) {
    let mut b = Browser::new();
    let is_callback = |u: &str| u.contains("/sso/OID/redirect/");
    let page = b.follow(&at.url(start), is_callback).await;
    let page = b.submit_form(&page, &[("login", "u-alice"), ("password", "pw")], is_callback).await;
    let page = b.get(&absolute(&page.url, page.headers["location"].to_str().unwrap())).await;
    assert_eq!(page.status, 200, "completion page: {}", page.body);
    let data = completion_data(&page);
    let body = json!({"deviceId": "browser-1", "deviceName": "Chrome", "appName": "Jellyfin Web", "appVersion": "10.10.7", "data": data["handle"]});
    let done = b.post_json(&at.url(data["authUrl"].as_str().unwrap()), &body).await;
    assert_eq!(done.status, 200, "{}", done.body);
    (b, serde_json::from_str(&done.body).unwrap())
}

/// The proxy an attacker uses for attempt `i`: A, B, A, B, …
fn alternate(p: &Pair, i: usize) -> &TestProxy {
    if i % 2 == 0 {
        &p.a
    } else {
        &p.b
    }
}

#[tokio::test]
async fn starting_logins_from_one_address_is_capped_across_both_proxies() {
    let s = setup("sso:\n  max_pending_flows_per_client: 4\n", false).await;
    let start = |proxy: &TestProxy| {
        let url = proxy.url("/sso/OID/start/op");
        async move { http1_client().get(url).header("accept", "text/html").send().await.unwrap() }
    };
    for i in 0..4 {
        assert_eq!(start(alternate(&s.p, i)).await.status(), 302, "start {i} is within the one allowance");
    }
    for proxy in [&s.p.a, &s.p.b] {
        let refused = start(proxy).await;
        assert_eq!(refused.status(), 429, "the fifth start is refused on either proxy");
        assert!(refused.headers().contains_key("retry-after"));
    }
}

fn csrf_of(form: &str) -> String {
    form.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string()
}

/// `POST /sso/link` to `proxy` with the session cookie of `b`.
async fn link(proxy: &TestProxy, b: &Browser, csrf: &str, code: &str) -> u16 {
    let cookie = format!("__Host-jsp-session={}", b.cookie("__Host-jsp-session").unwrap());
    let r = http1_client().post(proxy.url("/sso/link")).header("cookie", cookie).form(&[("code", code), ("csrf", csrf)]).send().await.unwrap();
    r.status().as_u16()
}

#[tokio::test]
async fn quick_connect_code_guesses_get_one_allowance_across_both_proxies() {
    let s = setup("", false).await;
    let (b, _) = sign_in(&s.p.a, "/sso/link/start/OID/op").await;
    let cookie = format!("__Host-jsp-session={}", b.cookie("__Host-jsp-session").unwrap());
    let form = http1_client().get(s.p.b.url("/sso/link")).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let csrf = csrf_of(&form.text().await.unwrap());
    s.jf.clear_calls();
    let authorize_calls = || s.jf.calls().iter().filter(|c| c.path.eq_ignore_ascii_case("/QuickConnect/Authorize")).count();
    for i in 0..5 {
        assert_eq!(link(alternate(&s.p, i), &b, &csrf, "000000").await, 404, "wrong code {i} is answered");
    }
    for proxy in [&s.p.a, &s.p.b] {
        assert_eq!(link(proxy, &b, &csrf, "000000").await, 429, "the sixth guess is refused on either proxy");
    }
    assert_eq!(authorize_calls(), 5, "refused guesses never reach Jellyfin");
}

/// `POST /Users/AuthenticateByName` to `proxy`.
async fn password(proxy: &TestProxy, user: &str, pw: &str) -> u16 {
    let r = http1_client()
        .post(proxy.url("/Users/AuthenticateByName"))
        .header("Authorization", "MediaBrowser Client=\"Infuse\", Device=\"iPad\", DeviceId=\"evil\", Version=\"7.8\"")
        .json(&json!({"Username": user, "Pw": pw}))
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

#[tokio::test]
async fn password_guesses_get_one_allowance_across_both_proxies() {
    let s = setup("", false).await;
    s.jf.add_user("carol", "carol-pw", false);
    // One proxy allows five failures for free, and the sixth (which locks): so do both.
    for i in 0..6 {
        assert_eq!(password(alternate(&s.p, i), "carol", &format!("guess{i}")).await, 401, "guess {i} is Jellyfin's answer");
    }
    s.jf.clear_calls();
    for proxy in [&s.p.a, &s.p.b] {
        assert_eq!(password(proxy, "carol", "carol-pw").await, 429, "locked on either proxy, even with the right password");
    }
    assert!(!s.jf.calls().iter().any(|c| c.path.to_ascii_lowercase().contains("authenticatebyname")), "a locked attempt never reaches Jellyfin");
}

/// The same at once: a burst of parallel guesses spread over both proxies gets what one proxy
/// would give a burst (its free failures, and at most the one that locks), because every
/// count is a compare-and-set on the shared store.
#[tokio::test]
async fn a_parallel_burst_of_password_guesses_gets_one_allowance_across_both_proxies() {
    let s = setup("", false).await;
    s.jf.add_user("erin", "erin-pw", false);
    s.jf.clear_calls();
    let p = std::sync::Arc::new(s.p);
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let p = p.clone();
            tokio::spawn(async move { password(alternate(&p, i), "erin", &format!("guess{i}")).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let reached = s.jf.calls().iter().filter(|c| c.path.to_ascii_lowercase().contains("authenticatebyname")).count();
    assert!((5..=6).contains(&reached), "{reached} guesses reached Jellyfin: {answers:?}");
    assert_eq!(answers.iter().filter(|a| **a == 401).count(), reached, "{answers:?}");
    assert!(answers.iter().all(|a| *a == 401 || *a == 429), "{answers:?}");
}

#[tokio::test]
async fn a_back_channel_logout_received_by_b_ends_the_session_made_on_a() {
    let s = setup("", true).await;
    let (mut b, auth) = sign_in(&s.p.a, "/sso/OID/start/op").await;
    let token = auth["AccessToken"].as_str().unwrap().to_string();
    let user = auth["User"]["Id"].as_str().unwrap().to_string();
    let me = |b: &Browser| {
        let (url, cookie) = (s.p.a.url("/Users/Me"), format!("__Host-jsp-session={}", b.cookie("__Host-jsp-session").unwrap()));
        async move { http1_client().get(url).header("cookie", cookie).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(me(&b).await, 200, "A injects the session's token");
    assert!(s.jf.sessions().iter().any(|x| x.token == token));

    // Sign out at the OP (its own confirmation form); it posts the logout token to B.
    let page = b.get(&format!("{}/session/end", s.op.issuer)).await;
    let xsrf = page.body.split("name=\"xsrf\" value=\"").nth(1).unwrap_or_else(|| panic!("no logout form: {}", page.body)).split('"').next().unwrap().to_string();
    let action = page.body.split("action=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let form = vec![("xsrf".to_string(), xsrf), ("logout".to_string(), "yes".to_string())];
    b.request(reqwest::Method::POST, &absolute(&page.url, &action), Some(&form), None).await;

    let deadline = Instant::now() + Duration::from_secs(5);
    while s.jf.sessions().iter().any(|x| x.token == token) {
        assert!(Instant::now() < deadline, "the token made on A is still alive at Jellyfin");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    while !s.p.a.app.sso.state().durable.mints_of_user(&user).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "A still holds the record");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.jf.clear_calls();
    assert_eq!(me(&b).await, 401, "A no longer injects anything for this browser");
    let injected = s.jf.calls().iter().any(|c| c.path.eq_ignore_ascii_case("/Users/Me") && c.authorization.as_deref().is_some_and(|a| a.contains(&token)));
    assert!(!injected, "the revoked token was not even sent");
}
