//! End-to-end checks of the Jellyfin test double over HTTP, against the behaviour read from
//! Jellyfin's source (docs/jellyfin-api.md). The modules' unit tests cover what needs no socket.
//! Here: the helpers; `double.rs` what the proxy calls, `signed_in.rs` what jellyfin-web calls
//! once it holds a token.

mod double;
mod signed_in;

use std::time::Duration;

use jellyfin_double::{media_byte, DoubleOptions, JellyfinDouble, DEFAULT_AUTH, DEFAULT_RESET, INVALID_AUTH};
use serde_json::{json, Value};

const KEY: &str = "test-api-key";

fn admin() -> String {
    format!("MediaBrowser Token=\"{KEY}\"")
}

fn device(id: &str) -> String {
    format!("MediaBrowser Client=\"Jellyfin Web\", Device=\"Firefox\", DeviceId=\"{id}\", Version=\"10.10.7\"")
}

fn with_token(token: &str) -> String {
    format!("MediaBrowser Token=\"{token}\"")
}

async fn send(method: reqwest::Method, url: String, auth: Option<&str>, body: Option<Value>) -> (u16, String, Value) {
    let mut r = reqwest::Client::new().request(method, url);
    if let Some(a) = auth {
        r = r.header("Authorization", a);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    let text = resp.text().await.unwrap();
    (status, ct, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn get(jf: &JellyfinDouble, path: &str, auth: Option<&str>) -> (u16, String, Value) {
    send(reqwest::Method::GET, format!("{}{path}", jf.url()), auth, None).await
}

async fn post(jf: &JellyfinDouble, path: &str, auth: Option<&str>, body: Option<Value>) -> (u16, String, Value) {
    send(reqwest::Method::POST, format!("{}{path}", jf.url()), auth, body).await
}

/// Initiate on `dev`, authorize for `user_id` with `authorizer`, fetch the result.
async fn quick_connect(jf: &JellyfinDouble, dev: &str, user_id: &str, authorizer: &str) -> Value {
    let (st, _, r) = post(jf, "/QuickConnect/Initiate", Some(&device(dev)), None).await;
    assert_eq!(st, 200, "{r}");
    let code = r["Code"].as_str().unwrap();
    let (st, _, ok) = post(jf, &format!("/QuickConnect/Authorize?code={code}&userId={user_id}"), Some(authorizer), None).await;
    assert_eq!((st, ok), (200, json!(true)));
    let (st, _, res) = post(jf, "/Users/AuthenticateWithQuickConnect", None, Some(json!({"Secret": r["Secret"]}))).await;
    assert_eq!(st, 200, "{res}");
    res
}
