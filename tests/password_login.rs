//! Jellyfin's password endpoints behind the proxy: every path form is intercepted, bodies are
//! forwarded byte for byte, the brute-force guard locks out the guesser and not the user,
//! and each `password_login` policy refuses exactly what it should, as Jellyfin's own 401.

mod support;

use serde_json::json;
use support::apps::{password_login, sign_in_at, start, Apps};

const TRUST: &str = "trusted_proxies: [127.0.0.1/32]\n";

fn jellyfin_calls(s: &Apps) -> usize {
    s.jf.calls().iter().filter(|c| c.path.to_ascii_lowercase().contains("authenticate")).count()
}

#[tokio::test]
async fn forwarded_unchanged_and_bounded() {
    let s = start(TRUST).await;
    s.jf.add_user("carol", "carol-pw", false);
    s.jf.clear_calls();
    let (st, _, body) = password_login(&s, "/Users/AuthenticateByName", "carol", "carol-pw", "1.2.3.4", "d1").await;
    assert_eq!(st, 200, "{body}");
    let call = s.jf.calls().into_iter().find(|c| c.path == "/Users/AuthenticateByName").unwrap();
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&call.body).unwrap(), json!({"Username": "carol", "Pw": "carol-pw"}), "the body as sent");
    let carol = s.jf.user_id("carol").unwrap();
    let (st, _, body) = password_login(&s, &format!("/Users/{carol}/Authenticate?pw=carol-pw"), "", "", "1.2.3.4", "d1").await;
    assert_eq!(st, 200, "the obsolete endpoint is forwarded too: {body}");
    let big = "x".repeat(17 * 1024);
    let (st, _, _) = password_login(&s, "/Users/AuthenticateByName", "carol", &big, "1.2.3.4", "d1").await;
    assert_eq!(st, 413);
}

#[tokio::test]
async fn the_guard_locks_out_the_guesser_not_the_user() {
    let s = start(TRUST).await;
    s.jf.add_user("carol", "carol-pw", false);
    for i in 0..5 {
        let (st, _, _) = password_login(&s, "/Users/AuthenticateByName", "carol", &format!("guess{i}"), "6.6.6.6", "evil").await;
        assert_eq!(st, 401, "Jellyfin refuses guess {i}");
    }
    let (st, _, _) = password_login(&s, "/Users/AuthenticateByName", "carol", "guess5", "6.6.6.6", "evil").await;
    assert_eq!(st, 401, "the sixth failure is still Jellyfin's answer, and locks");
    s.jf.clear_calls();
    let (st, retry, body) = password_login(&s, "/emby/users/authenticatebyname/", "CAROL", "carol-pw", "6.6.6.6", "evil").await;
    assert_eq!(st, 429, "{body}");
    assert_eq!(body, "Error processing request.", "Jellyfin's error text");
    let retry: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=5).contains(&retry), "{retry}");
    assert_eq!(jellyfin_calls(&s), 0, "a locked attempt never reaches Jellyfin, even with the right password");
    let (st, _, body) = password_login(&s, "/Users/AuthenticateByName", "carol", "carol-pw", "1.2.3.4", "home").await;
    assert_eq!(st, 200, "carol from home is not locked out: {body}");
    let line = s.proxy.app.sso.state().ephemeral.count(jellyfin_sso_proxy::state::Kind::Rate("password-fail")).await.unwrap();
    assert!(line > 0 && line < 10, "bounded, a few keys: {line}");
}

#[tokio::test]
async fn app_passwords_only_refuses_linked_users_jellyfin_passwords() {
    let s = start(&format!("{TRUST}password_login:\n  mode: app_passwords_only\n")).await;
    let (_, auth) = sign_in_at(&s, "/sso/OID/start/corp", "u-alice", "web").await;
    s.jf.add_user("carol", "carol-pw", false);
    s.jf.clear_calls();
    let (st, _, body) = password_login(&s, "/Users/AuthenticateByName", "alice", "anything", "1.2.3.4", "d").await;
    assert_eq!((st, body.as_str()), (401, "Error processing request."));
    assert_eq!(jellyfin_calls(&s), 0, "refused by the proxy");
    let (st, _, _) = password_login(&s, "/Users/AuthenticateByName", "carol", "carol-pw", "1.2.3.4", "d").await;
    assert_eq!(st, 200, "a user without a link keeps the Jellyfin password");
    let token = auth["AccessToken"].as_str().unwrap();
    let made: serde_json::Value = support::http1_client()
        .post(s.proxy.url("/sso/app-passwords"))
        .header("Authorization", format!("MediaBrowser Token=\"{token}\""))
        .json(&json!({"name": "script"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (st, _, body) = password_login(&s, "/Users/AuthenticateByName", "alice", made["password"].as_str().unwrap(), "1.2.3.4", "d").await;
    assert_eq!(st, 200, "{body}");
    let r: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(r["User"]["Name"], "alice");
    assert_eq!(r["SessionInfo"]["DeviceId"], "d");
    assert_eq!(r["ServerId"], s.jf.server_id());
    let alice = s.jf.user_id("alice").unwrap();
    let pw: String = url::form_urlencoded::byte_serialize(made["password"].as_str().unwrap().as_bytes()).collect();
    let (st, _, body) = password_login(&s, &format!("/Users/{alice}/Authenticate?pw={pw}"), "", "", "1.2.3.4", "d2").await;
    assert_eq!(st, 200, "the app password works at the obsolete endpoint: {body}");
}

#[tokio::test]
async fn sso_only_with_break_glass_users_and_networks() {
    let s = start(&format!("{TRUST}password_login:\n  mode: sso_only\n  break_glass: [Root]\n  break_glass_networks: [10.0.0.0/8]\n")).await;
    s.jf.add_user("root", "root-pw", true);
    s.jf.add_user("carol", "carol-pw", false);
    s.jf.clear_calls();
    let root = s.jf.user_id("root").unwrap();
    for (path, user, xff) in [
        ("/Users/AuthenticateByName", "carol", "10.1.1.1"),
        ("/Users/AuthenticateByName", "root", "1.2.3.4"),
        ("/MEDIABROWSER/Users/AuthenticateByName", "carol", "10.1.1.1"),
        (&format!("/Users/{root}/Authenticate?pw=root-pw") as &str, "", "1.2.3.4"),
    ] {
        let (st, _, body) = password_login(&s, path, user, "x", xff, "d").await;
        assert_eq!((st, body.as_str()), (401, "Error processing request."), "{path} {user} {xff}");
    }
    assert_eq!(jellyfin_calls(&s), 0, "every refusal is the proxy's");
    let (st, _, body) = password_login(&s, "/Users/AuthenticateByName", "root", "root-pw", "10.1.1.1", "d").await;
    assert_eq!(st, 200, "break-glass from its network: {body}");
}

#[test]
fn the_policy_is_validated() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("proxy.yaml");
    std::fs::write(&f, "jellyfin:\n  url: http://127.0.0.1:1\npassword_login:\n  mode: sometimes\n  break_glass_networks: [nope]\n  colour: red\n").unwrap();
    let err = jellyfin_sso_proxy::config::Config::load(&f, true).unwrap_err().to_string();
    for needle in ["password_login.mode", "password_login.break_glass_networks.0", "password_login.colour"] {
        assert!(err.contains(needle), "{needle} in {err}");
    }
}
