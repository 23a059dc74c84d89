//! Clients that Jellyfin 12 locks out: the double behaves like 12.0 (`EnableLegacyAuthorization`
//! off, and `/socket` authenticating its caller as Jellyfin's does), so each legacy credential
//! form is refused when sent to it directly, refused through the proxy with the default
//! `jellyfin.legacy_auth: pass`, and served through the proxy with `translate`: every header
//! form, the `api_key` query, a websocket with `api_key`, and a request with both a legacy and
//! a modern credential (forwarded with the modern one only); the access log redacts them all.

mod support;

use futures_util::{SinkExt, StreamExt};
use jellyfin_double::{DoubleOptions, JellyfinDouble};
use serde_json::{json, Value};
use support::{http1_client, TestProxy};
use tokio_tungstenite::tungstenite::Message;

const DEVICE: &str = "Client=\"Infuse\", Device=\"Apple TV\", DeviceId=\"infuse-1\", Version=\"8.0\"";

/// A Jellyfin 12 double with user `leg`, and that user's token (signed in the modern way).
async fn jellyfin12() -> (JellyfinDouble, String) {
    let jf = JellyfinDouble::start(DoubleOptions { version: "12.0.0".into(), legacy_auth: false, ..DoubleOptions::default() }).await;
    jf.set_socket_auth(true);
    jf.add_user("leg", "pw", false);
    let r: Value = reqwest::Client::new()
        .post(format!("{}/Users/AuthenticateByName", jf.url()))
        .header("authorization", format!("MediaBrowser {DEVICE}"))
        .json(&json!({"Username": "leg", "Pw": "pw"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = r["AccessToken"].as_str().expect("signed in").to_string();
    (jf, token)
}

/// One way of presenting a token: (description, headers, query).
type Form = (&'static str, Vec<(&'static str, String)>, String);

/// Each legacy form.
fn legacy_forms(token: &str) -> Vec<Form> {
    vec![
        ("X-Emby-Authorization", vec![("x-emby-authorization", format!("MediaBrowser {DEVICE}, Token=\"{token}\""))], String::new()),
        ("Emby scheme", vec![("authorization", format!("Emby {DEVICE}, Token=\"{token}\""))], String::new()),
        ("X-Emby-Token", vec![("x-emby-token", token.to_string())], String::new()),
        ("X-MediaBrowser-Token", vec![("x-mediabrowser-token", token.to_string())], String::new()),
        ("api_key query", vec![], format!("?api_key={token}")),
    ]
}

async fn me(client: &reqwest::Client, base: &str, headers: &[(&str, String)], query: &str) -> (u16, Value) {
    let mut b = client.get(format!("{base}/Users/Me{query}"));
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    let r = b.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn each_legacy_form_is_refused_directly_and_served_through_the_proxy_with_translate() {
    let (jf, token) = jellyfin12().await;
    let pass = TestProxy::start(&jf.url(), "").await;
    let translate = TestProxy::start(&jf.url(), "  legacy_auth: translate\n").await;
    let direct = reqwest::Client::new();
    let client = http1_client();
    for (form, headers, query) in legacy_forms(&token) {
        assert_eq!(me(&direct, &jf.url(), &headers, &query).await.0, 401, "{form}: Jellyfin 12 refuses it");
        assert_eq!(me(&client, &pass.url(""), &headers, &query).await.0, 401, "{form}: `pass` forwards it unchanged");
        jf.clear_calls();
        let (status, user) = me(&client, &translate.url(""), &headers, &query).await;
        assert_eq!((status, user["Name"].as_str()), (200, Some("leg")), "{form}: translated");
        let call = jf.calls().into_iter().find(|c| c.path == "/Users/Me").unwrap();
        for legacy in ["x-emby-authorization", "x-emby-token", "x-mediabrowser-token"] {
            assert!(call.header(legacy).is_none(), "{form}: {legacy} is not forwarded");
        }
        assert!(!call.query.contains("api_key"), "{form}: {}", call.query);
        if query.is_empty() {
            let auth = call.authorization.clone().expect("Authorization: MediaBrowser");
            assert!(auth.starts_with("MediaBrowser ") && auth.contains(&format!("Token=\"{token}\"")), "{form}: {auth}");
        } else {
            assert_eq!(call.query, format!("ApiKey={token}"));
        }
        if form == "X-Emby-Authorization" {
            // The same parameters: the device keeps its identity.
            let auth = call.authorization.clone().unwrap();
            assert!(auth.contains("Client=\"Infuse\"") && auth.contains("DeviceId=\"infuse-1\""), "{auth}");
        }
    }
}

#[tokio::test]
async fn with_both_a_legacy_and_a_modern_credential_only_the_modern_one_is_forwarded() {
    let (jf, token) = jellyfin12().await;
    let proxy = TestProxy::start(&jf.url(), "  legacy_auth: translate\n").await;
    let client = http1_client();
    let modern = format!("MediaBrowser Token=\"{token}\"");
    let (status, user) = me(&client, &proxy.url(""), &[("authorization", modern.clone()), ("x-emby-token", "stale".into())], "?api_key=stale").await;
    assert_eq!((status, user["Name"].as_str()), (200, Some("leg")));
    let call = jf.calls().into_iter().rfind(|c| c.path == "/Users/Me").unwrap();
    assert_eq!(call.authorization.as_deref(), Some(modern.as_str()));
    assert!(call.header("x-emby-token").is_none() && call.query.is_empty(), "{call:?}");

    // The modern query key wins over a legacy header that names another token.
    let (status, _) = me(&client, &proxy.url(""), &[("x-emby-authorization", "MediaBrowser Token=\"stale\"".into())], &format!("?ApiKey={token}")).await;
    assert_eq!(status, 200);
    let call = jf.calls().into_iter().rfind(|c| c.path == "/Users/Me").unwrap();
    assert!(call.header("x-emby-authorization").is_none() && call.authorization.is_none(), "{call:?}");
    assert_eq!(call.query, format!("ApiKey={token}"));
}

#[tokio::test]
async fn a_websocket_with_api_key_is_translated() {
    let (jf, token) = jellyfin12().await;
    // Directly, Jellyfin 12 refuses the handshake.
    let direct = tokio_tungstenite::connect_async(format!("ws://{}/socket?api_key={token}", jf.addr)).await;
    assert!(direct.is_err(), "a legacy api_key opens no socket on Jellyfin 12");

    let proxy = TestProxy::start(&jf.url(), "  legacy_auth: translate\n").await;
    let tls = support::tls_client::connect(proxy.addr, b"http/1.1").await;
    let url = format!("wss://127.0.0.1:{}/socket?api_key={token}&deviceId=infuse-1", proxy.addr.port());
    let (mut ws, resp) = tokio_tungstenite::client_async(url, tls).await.expect("handshake through the proxy");
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("ping")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("ping"));
    let call = jf.calls().into_iter().rfind(|c| c.path == "/socket").unwrap();
    assert_eq!(call.query, format!("ApiKey={token}&deviceId=infuse-1"));
}

/// The access log line is written from the request as the client sent it: the legacy query
/// token is redacted and no header value is logged, translated or not.
#[tokio::test]
async fn access_log_redacts_every_legacy_form_when_translating() {
    let (jf, token) = jellyfin12().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = support::ProxyProcess::start(dir.path(), &jf.url(), "  legacy_auth: translate\n").await;
    let client = http1_client();
    for (form, headers, query) in legacy_forms(&token) {
        let (status, _) = me(&client, &proxy.url(""), &headers, &query).await;
        assert_eq!(status, 200, "{form}");
    }
    let mut logged = false;
    for _ in 0..50 {
        logged = proxy.stderr_lines.lock().unwrap().iter().filter(|l| l.contains("/Users/Me")).count() >= 5;
        if logged {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(logged, "five access lines");
    let lines = proxy.stderr_lines.lock().unwrap().clone();
    assert!(lines.iter().all(|l| !l.contains(&token)), "the token is never logged: {lines:#?}");
    assert!(lines.iter().any(|l| l.contains("/Users/Me?api_key=REDACTED")), "{lines:#?}");
}
