//! Live reload of `proxy.yaml` in the proxy binary (SIGHUP, and a change of the file), with
//! the real OpenID Provider (npm `oidc-provider`) and the Jellyfin double: providers added,
//! changed and removed while API providers stay; grants applied at once; a broken file or a
//! change that needs a restart refused whole, with the line named in the log; logins in
//! progress, open connections and websockets untouched; the log level changed live.

mod support;

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use jellyfin_double::{DoubleOptions, JellyfinDouble};
use serde_json::{json, Value};
use support::browser::{absolute, completion_data, Browser, Page};
use support::oidc_provider::{OpAccount, OpClient, OpConfig, OpenIdProvider};
use support::{free_port, http1_client, ProxyProcess};
use tokio_tungstenite::tungstenite::Message;

const KEY: &str = "test-api-key";
const RELOADED: &str = "configuration reloaded";
const REFUSED: &str = "configuration reload refused";

/// The double, the OP (one client that may return to providers `first`, `second` and `api`)
/// and where the proxy will listen.
struct World {
    jf: JellyfinDouble,
    op: OpenIdProvider,
    port: u16,
    dir: tempfile::TempDir,
}

fn account(login: &str, groups: &[&str]) -> OpAccount {
    OpAccount { login: login.into(), password: "pw".into(), claims: json!({"preferred_username": &login[2..], "groups": groups}), userinfo_only: vec![] }
}

async fn world() -> World {
    let port = free_port();
    let mut client = OpClient::basic(port, "first");
    client.redirect_uris = ["first", "second", "api"].iter().map(|p| format!("https://127.0.0.1:{port}/sso/OID/redirect/{p}")).collect();
    let accounts = vec![account("u-alice", &["jellyfin-users"]), account("u-mallory", &["other"])];
    let op = OpenIdProvider::start(&OpConfig { clients: vec![client], accounts, par: false, ..Default::default() }).await;
    World { jf: JellyfinDouble::start(DoubleOptions::default()).await, op, port, dir: tempfile::tempdir().unwrap() }
}

impl World {
    /// A whole `proxy.yaml`: `top` is added at the top level before `providers:`, which
    /// holds `providers` (from [`World::provider`]). The file is checked for changes every
    /// `interval`.
    fn yaml(&self, level: &str, interval: &str, top: &str, providers: &str) -> String {
        format!(
            "listen: 127.0.0.1:{port}\npublic_url: https://127.0.0.1:{port}\nlog:\n  level: \"{level}\"\ntls:\n  reload_interval: {interval}\njellyfin:\n  url: {jf}\n  api_key: {KEY}\n{top}providers:\n  oid:\n{providers}",
            port = self.port,
            jf = self.jf.url(),
        )
    }

    /// A provider section at the test OP letting in the members of `roles`.
    fn provider(&self, name: &str, roles: &str) -> String {
        format!(
            "    {name}:\n      oidEndpoint: {}\n      oidClientId: jellyfin\n      oidSecret: s3cret\n      disableHttps: true\n      roleClaim: groups\n      oidScopes: [groups]\n      enableAuthorization: true\n      roles: [{roles}]\n      enableAllFolders: true\n",
            self.op.issuer
        )
    }

    async fn start(&self, yaml: &str) -> ProxyProcess {
        ProxyProcess::start_yaml(self.dir.path(), self.port, yaml).await
    }
}

/// Replace the file atomically (as editors and config management do) and send SIGHUP; wait
/// for the reload's result line (`needle`) and return it.
async fn reload(proxy: &ProxyProcess, yaml: &str, needle: &str) -> String {
    let seen = proxy.log_lines(needle).len();
    write_atomically(proxy, yaml);
    proxy.signal("HUP");
    proxy.wait_log(needle, seen).await.pop().unwrap()
}

fn write_atomically(proxy: &ProxyProcess, yaml: &str) {
    let tmp = proxy.dir.join(".proxy.yaml.new");
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, proxy.dir.join("proxy.yaml")).unwrap();
}

fn is_callback(u: &str) -> bool {
    u.contains("/sso/OID/redirect/")
}

/// Start at the proxy and sign in at the OP as `login`; returns the browser and the callback
/// URL the OP sent it to (not yet fetched: the login is in progress).
async fn to_callback(proxy: &ProxyProcess, provider: &str, login: &str) -> (Browser, String) {
    let mut b = Browser::new();
    let page = b.follow(&proxy.url(&format!("/sso/OID/start/{provider}")), is_callback).await;
    let page = if page.status.is_redirection() { page } else { b.submit_form(&page, &[("login", login), ("password", "pw")], is_callback).await };
    assert!(page.status.is_redirection(), "expected a redirect to the callback, got {} {}\n{}", page.status, page.url, page.body);
    let cb = absolute(&page.url, page.headers["location"].to_str().unwrap());
    (b, cb)
}

/// Finish a login in progress: the callback, then the completion page's call.
async fn finish(proxy: &ProxyProcess, mut b: Browser, cb: &str) -> Result<Value, Page> {
    let page = b.get(cb).await;
    if page.status != 200 {
        return Err(page);
    }
    let data = completion_data(&page);
    let body = json!({"deviceId": "dev-reload", "deviceName": "Chrome", "appName": "Jellyfin Web", "appVersion": "10.10.7", "data": data["handle"]});
    let done = b.post_json(&proxy.url(data["authUrl"].as_str().unwrap()), &body).await;
    if done.status != 200 {
        return Err(done);
    }
    Ok(serde_json::from_str(&done.body).unwrap())
}

async fn login(proxy: &ProxyProcess, provider: &str, login: &str) -> Result<Value, Page> {
    let (b, cb) = to_callback(proxy, provider, login).await;
    finish(proxy, b, &cb).await
}

async fn names(proxy: &ProxyProcess) -> Vec<String> {
    http1_client().get(proxy.url("/sso/OID/GetNames")).send().await.unwrap().json().await.unwrap()
}

async fn start_status(proxy: &ProxyProcess, provider: &str) -> u16 {
    http1_client().get(proxy.url(&format!("/sso/OID/start/{provider}"))).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn providers_and_grants_follow_the_file_and_api_providers_stay() {
    let w = world().await;
    let proxy = w.start(&w.yaml("info", "1h", "", &w.provider("first", "jellyfin-users"))).await;
    // A provider added through the admin API, kept in the durable state.
    let api = json!({"oidEndpoint": w.op.issuer, "oidClientId": "jellyfin", "oidSecret": "s3cret", "enabled": true, "disableHttps": true});
    let r = http1_client().post(proxy.url("/sso/OID/Add/api")).header("authorization", format!("MediaBrowser Token=\"{KEY}\"")).json(&api).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let alice = login(&proxy, "first", "u-alice").await.unwrap_or_else(|p| panic!("{} {}", p.status, p.body));
    assert_eq!(alice["User"]["Name"], "alice");
    assert_eq!(start_status(&proxy, "second").await, 404);

    // Added to the file, then SIGHUP: a new provider, signed in with at the real OP.
    let two = format!("{}{}", w.provider("first", "jellyfin-users"), w.provider("second", "jellyfin-users"));
    let line = reload(&proxy, &w.yaml("info", "1h", "", &two), RELOADED).await;
    assert!(line.contains("oid/second") && line.contains("SIGHUP"), "{line}");
    let r = login(&proxy, "second", "u-alice").await.unwrap_or_else(|p| panic!("{} {}", p.status, p.body));
    assert_eq!(r["User"]["Name"], "alice");

    // The role gate of `first` changed: it applies to the next login at once.
    let gate = format!("{}{}", w.provider("first", "other"), w.provider("second", "jellyfin-users"));
    let line = reload(&proxy, &w.yaml("info", "1h", "", &gate), RELOADED).await;
    assert!(line.contains("oid/first"), "the changed provider is named: {line}");
    let refused = login(&proxy, "first", "u-alice").await.expect_err("alice no longer has a permitted role");
    assert_eq!(refused.status, 401, "{}", refused.body);
    let mallory = login(&proxy, "first", "u-mallory").await.unwrap_or_else(|p| panic!("{} {}", p.status, p.body));
    assert_eq!(mallory["User"]["Name"], "mallory");

    // Removed from the file: gone; the API provider is untouched and still signs people in.
    let line = reload(&proxy, &w.yaml("info", "1h", "", &w.provider("first", "other")), RELOADED).await;
    assert!(line.contains("removed") && line.contains("oid/second"), "{line}");
    assert_eq!(start_status(&proxy, "second").await, 404);
    assert_eq!(names(&proxy).await, ["api", "first"]);
    let r = login(&proxy, "api", "u-alice").await.unwrap_or_else(|p| panic!("{} {}", p.status, p.body));
    assert_eq!(r["User"]["Name"], "alice");
}

#[tokio::test]
async fn a_broken_file_or_a_change_that_needs_a_restart_is_refused_whole_with_its_line() {
    let w = world().await;
    let good = w.yaml("info", "1h", "", &w.provider("first", "jellyfin-users"));
    let proxy = w.start(&good).await;
    let both = format!("{}{}", w.provider("first", "jellyfin-users"), w.provider("second", "jellyfin-users"));

    // Not YAML at all.
    let seen = proxy.log_lines("configuration reload: ").len();
    reload(&proxy, &format!("{good}sso: [unclosed\n"), REFUSED).await;
    let problems = proxy.log_lines("configuration reload: ");
    let problem = &problems[seen..];
    assert!(problem.iter().any(|l| l.contains("not valid YAML") && l.contains("line")), "{problem:?}");
    assert_eq!(names(&proxy).await, ["first"], "the running configuration stays");

    // A bad value next to a good change: nothing is applied, and the line is named.
    let bad = w.yaml("info", "1h", "sso:\n  flow_ttl: banana\n", &both);
    let line_no = bad.lines().position(|l| l.contains("flow_ttl")).unwrap() + 1;
    let seen = proxy.log_lines("configuration reload: ").len();
    let refused = reload(&proxy, &bad, REFUSED).await;
    assert!(refused.contains("the file has problems"), "{refused}");
    let problem = &proxy.log_lines("configuration reload: ")[seen..];
    assert!(problem.iter().any(|l| l.contains("sso.flow_ttl") && l.contains(&format!("proxy.yaml line {line_no}"))), "{problem:?}");
    assert_eq!(names(&proxy).await, ["first"], "the provider added next to the bad value is not applied either");
    login(&proxy, "first", "u-alice").await.unwrap_or_else(|p| panic!("the old configuration keeps signing people in: {} {}", p.status, p.body));

    // A new listen address (with a new provider): refused with the reason, nothing applied,
    // still serving where it was.
    let moved = w.yaml("info", "1h", "", &both).replacen(&format!("listen: 127.0.0.1:{}", w.port), &format!("listen: 127.0.0.1:{}", free_port()), 1);
    let seen = proxy.log_lines("configuration reload: ").len();
    let refused = reload(&proxy, &moved, REFUSED).await;
    assert!(refused.contains("a restart is needed"), "{refused}");
    let problem = &proxy.log_lines("configuration reload: ")[seen..];
    assert!(problem.iter().any(|l| l.contains("listen: changed, but needs a restart") && l.contains("proxy.yaml line 1")), "{problem:?}");
    assert_eq!(names(&proxy).await, ["first"]);

    // Fixed: the same change without the move goes into service.
    reload(&proxy, &w.yaml("info", "1h", "", &both), RELOADED).await;
    assert_eq!(names(&proxy).await, ["first", "second"]);
}

#[tokio::test]
async fn logins_in_progress_finish_after_a_reload_or_get_a_page_when_their_provider_went() {
    let w = world().await;
    let both = format!("{}{}", w.provider("first", "jellyfin-users"), w.provider("second", "jellyfin-users"));
    let proxy = w.start(&w.yaml("info", "1h", "", &both)).await;
    // Two people are at the identity provider when the file changes: `first` now lets
    // mallory's role in, `second` is gone.
    let (mallory, mallory_cb) = to_callback(&proxy, "first", "u-mallory").await;
    let (alice, alice_cb) = to_callback(&proxy, "second", "u-alice").await;
    reload(&proxy, &w.yaml("info", "1h", "", &w.provider("first", "jellyfin-users, other")), RELOADED).await;

    let r = finish(&proxy, mallory, &mallory_cb).await.unwrap_or_else(|p| panic!("the login started before the reload finishes: {} {}", p.status, p.body));
    assert_eq!(r["User"]["Name"], "mallory", "and the new role gate decided it");
    let page = finish(&proxy, alice, &alice_cb).await.expect_err("its provider is gone");
    assert_eq!(page.status, 400);
    assert!(page.body.contains("stopped offering"), "a readable page: {}", page.body);
    assert!(w.jf.user_by_name("alice").is_none(), "nobody was signed in");
}

#[tokio::test]
async fn open_connections_and_websockets_survive_and_the_level_and_file_change_reload_without_sighup() {
    let w = world().await;
    let provider = w.provider("first", "jellyfin-users");
    // Access lines off at first; the file is checked every 200 ms.
    let proxy = w.start(&w.yaml("info,access=off", "200ms", "", &provider)).await;

    let tls = support::tls_client::connect(proxy.addr, b"http/1.1").await;
    let (mut ws, resp) = tokio_tungstenite::client_async(format!("wss://127.0.0.1:{}/socket?api_key=secret", w.port), tls).await.expect("websocket through the proxy");
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("before"));
    // One HTTP/1.1 connection kept open across the reload.
    let tls = support::tls_client::connect(proxy.addr, b"http/1.1").await;
    let (mut conn, driver) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(driver);
    assert_eq!(get(&mut conn, "/System/Info/Public").await, 200);
    get(&mut conn, "/Items/before-the-reload").await;

    // No SIGHUP: the new file is noticed on disk.
    let seen = proxy.log_lines(RELOADED).len();
    write_atomically(&proxy, &w.yaml("info", "200ms", "", &provider));
    let line = proxy.wait_log(RELOADED, seen).await.pop().unwrap();
    assert!(line.contains("trigger=\"file changed\"") && line.contains("log_level=\"changed\""), "{line}");

    get(&mut conn, "/Items/after-the-reload").await;
    proxy.wait_log("/Items/after-the-reload", 0).await;
    assert!(proxy.log_lines("/Items/before-the-reload").is_empty(), "access lines were off before the reload");

    ws.send(Message::text("after")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("after"), "the websocket opened before the reload still works");
    assert_eq!(get(&mut conn, "/System/Info/Public").await, 200, "the connection opened before the reload still works");
}

/// A log line without its terminal colours.
async fn get(conn: &mut hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>>, path: &str) -> u16 {
    let req = http::Request::get(path).header("host", "localhost").body(Empty::new()).unwrap();
    let resp = conn.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    resp.into_body().collect().await.unwrap();
    status
}
