//! The operator's listener (`metrics.listen`) of the real proxy binary: the Prometheus
//! exposition after real traffic (a forwarded request, the SSO routes, a login the real OpenID
//! Provider refuses by role and one it completes, a Quick Connect mint), `/healthz` and
//! `/readyz` while the Jellyfin double is down and up, the listener never on the public port,
//! and no listener at all by default.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use jellyfin_double::{DoubleOptions, JellyfinDouble};
use jellyfin_sso_proxy::config::Config;
use serde_json::{json, Value};
use support::browser::{absolute, completion_data, Browser};
use support::oidc_provider::{OpAccount, OpClient, OpConfig, OpenIdProvider};
use support::{free_port, http1_client, ProxyProcess};

pub const KEY: &str = "test-api-key";

pub struct Setup {
    pub jf: JellyfinDouble,
    pub _op: OpenIdProvider,
    pub proxy: ProxyProcess,
    pub metrics_port: u16,
    pub dir: tempfile::TempDir,
}

fn account(login: &str, groups: &[&str]) -> OpAccount {
    let name = login.trim_start_matches("u-");
    OpAccount { login: login.into(), password: "pw".into(), claims: json!({"preferred_username": name, "groups": groups}), userinfo_only: vec![] }
}

/// The double, the real OP with provider `corp` (role `jellyfin-users` required, app
/// passwords allowed) and the proxy binary with `top_yaml` added (e.g. `metrics:`).
pub async fn setup(top_yaml: &str) -> Setup {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let port = free_port();
    let op = OpenIdProvider::start(&OpConfig {
        clients: vec![OpClient::basic(port, "corp")],
        accounts: vec![account("u-alice", &["jellyfin-users"]), account("u-mallory", &["other"])],
        par: false,
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let metrics_port = free_port();
    let yaml = format!(
        "  api_key: {KEY}\n{}providers:\n  oid:\n    corp:\n      oidEndpoint: {}\n      oidClientId: jellyfin\n      oidSecret: s3cret\n      disableHttps: true\n      roleClaim: groups\n      oidScopes: [groups]\n      roles: [jellyfin-users]\n      appPasswords: true\n",
        top_yaml.replace("{metrics_port}", &metrics_port.to_string()),
        op.issuer
    );
    let proxy = ProxyProcess::start_on_port(dir.path(), port, &jf.url(), &yaml).await;
    Setup { jf, _op: op, proxy, metrics_port, dir }
}

pub const METRICS_ON: &str = "metrics:\n  listen: 127.0.0.1:{metrics_port}\n";

/// Follow a login of `login` to the callback; returns the browser and the callback's URL
/// (it carries the authorization code).
pub async fn to_callback(proxy: &ProxyProcess, login: &str) -> (Browser, String) {
    let mut b = Browser::new();
    let is_callback = |u: &str| u.contains("/sso/OID/redirect/");
    let page = b.follow(&proxy.url("/sso/OID/start/corp"), is_callback).await;
    let page = b.submit_form(&page, &[("login", login), ("password", "pw")], is_callback).await;
    let cb = absolute(&page.url, page.headers["location"].to_str().unwrap());
    (b, cb)
}

/// A complete browser login of `login` for `device_id`: the browser and the AuthenticationResult.
pub async fn sign_in(proxy: &ProxyProcess, login: &str, device_id: &str) -> (Browser, Value, String) {
    let (mut b, cb) = to_callback(proxy, login).await;
    let page = b.get(&cb).await;
    assert_eq!(page.status, 200, "completion page: {}", page.body);
    let data = completion_data(&page);
    let body = json!({"deviceId": device_id, "deviceName": "Chrome", "appName": "Jellyfin Web", "appVersion": "10.10.7", "data": data["handle"]});
    let r = b.post_json(&proxy.url(data["authUrl"].as_str().unwrap()), &body).await;
    assert_eq!(r.status, 200, "Auth: {}", r.body);
    (b, serde_json::from_str(&r.body).unwrap(), cb)
}

async fn get(url: &str) -> (u16, String, String) {
    let r = reqwest::get(url).await.unwrap_or_else(|e| panic!("{url}: {e}"));
    let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (r.status().as_u16(), ct, r.text().await.unwrap())
}

async fn scrape(port: u16) -> String {
    let (status, ct, text) = get(&format!("http://127.0.0.1:{port}/metrics")).await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    text
}

/// The value of the series `series` (name and labels exactly as exposed); 0 when absent.
fn value(text: &str, series: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' '))).map_or(0.0, |v| v.parse().unwrap())
}

/// The TCP ports process `pid` listens on (its sockets in `/proc/PID/fd` matched against
/// the LISTEN entries of `/proc/net/tcp{,6}`).
fn listening_ports(pid: u32) -> BTreeSet<u16> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_string))
        .collect();
    let mut ports = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        for line in std::fs::read_to_string(table).unwrap_or_default().lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                ports.insert(u16::from_str_radix(f[1].rsplit(':').next().unwrap(), 16).unwrap());
            }
        }
    }
    ports
}

#[tokio::test]
async fn counters_move_with_real_traffic_and_logins() {
    let s = setup(METRICS_ON).await;
    let client = http1_client();
    // A forwarded 200, and /metrics on the public port, which is Jellyfin's (the double's).
    assert_eq!(client.get(s.proxy.url("/System/Info/Public")).send().await.unwrap().status(), 200);
    s.jf.clear_calls();
    let public = client.get(s.proxy.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(!public.contains("jsp_"), "the exposition is not on the public port: {public}");
    assert!(s.jf.calls().iter().any(|c| c.path == "/metrics"), "/metrics on the public port was forwarded to Jellyfin");
    // A login refused by the role gate, then one that signs in and mints.
    let (mut b, cb) = to_callback(&s.proxy, "u-mallory").await;
    assert_eq!(b.get(&cb).await.status, 401);
    let (_b, auth, _) = sign_in(&s.proxy, "u-alice", "web-1").await;
    assert!(auth["AccessToken"].as_str().is_some());
    // A login started and not finished is pending.
    let mut b = Browser::new();
    assert_eq!(b.get(&s.proxy.url("/sso/OID/start/corp")).await.status, 302);
    // Not TLS at all on the TLS port: a failed handshake.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(s.proxy.addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let _ = tcp.read(&mut [0u8; 512]).await;
    }

    // The failed handshake is counted just after the proxy's alert reaches the client: wait
    // for it (bounded) rather than race it.
    let mut m = scrape(s.metrics_port).await;
    for _ in 0..50 {
        if value(&m, r#"jsp_tls_handshake_failures_total{reason="invalid_message"}"#) >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        m = scrape(s.metrics_port).await;
    }
    let reqs = |route: &str, method: &str, status: &str| value(&m, &format!(r#"jsp_http_requests_total{{route="{route}",method="{method}",status="{status}"}}"#));
    assert_eq!(reqs("forwarded", "GET", "2xx"), 1.0, "/System/Info/Public: {m}");
    assert_eq!(reqs("forwarded", "GET", "4xx"), 1.0, "the double's 404 for /metrics: {m}");
    assert!(reqs("sso", "GET", "3xx") >= 3.0, "three logins started: {m}");
    assert!(reqs("sso", "GET", "4xx") >= 1.0, "mallory's callback: {m}");
    assert_eq!(reqs("sso", "POST", "2xx"), 1.0, "alice's Auth: {m}");
    assert_eq!(value(&m, r#"jsp_logins_total{provider="corp",protocol="oid",result="refused",reason="not_allowed"}"#), 1.0, "{m}");
    assert_eq!(value(&m, r#"jsp_logins_total{provider="corp",protocol="oid",result="success",reason=""}"#), 1.0, "{m}");
    assert_eq!(value(&m, r#"jsp_quick_connect_mints_total{how="browser"}"#), 1.0, "{m}");
    assert_eq!(value(&m, "jsp_pending_flows"), 1.0, "{m}");
    assert_eq!(value(&m, "jsp_proxy_sessions"), 1.0, "{m}");
    assert!(value(&m, "jsp_open_connections") >= 1.0, "the client's pooled connection is open: {m}");
    assert_eq!(value(&m, r#"jsp_tls_handshake_failures_total{reason="invalid_message"}"#), 1.0, "{m}");
    // The histograms exist and saw the requests.
    assert!(value(&m, r#"jsp_http_request_duration_seconds_count{route="forwarded"}"#) >= 2.0, "{m}");
    assert!(value(&m, r#"jsp_http_request_duration_seconds_count{route="sso"}"#) >= 5.0, "{m}");
    assert!(m.contains(r#"jsp_http_request_duration_seconds_bucket{le="+Inf",route="sso"}"#), "{m}");
    assert!(value(&m, "jsp_upstream_header_seconds_count") >= 2.0, "{m}");
    assert!(value(&m, r#"jsp_idp_request_duration_seconds_count{provider="corp"}"#) >= 4.0, "discovery, keys, two token calls, userinfo: {m}");
    assert_eq!(value(&m, r#"jsp_idp_request_errors_total{provider="corp"}"#), 0.0, "{m}");
    assert_eq!(value(&m, r#"jsp_config_reloads_total{result="failure"}"#), 0.0, "{m}");
    let expiry = value(&m, "jsp_tls_certificate_expiry_timestamp_seconds");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(expiry > now, "the generated certificate's expiry {expiry} is in the future");
    // Bounded labels: no user name, path or id became a label.
    for leak in ["alice", "mallory", "/System", "/sso", "web-1"] {
        assert!(!m.contains(leak), "{leak} in the exposition:\n{m}");
    }
    // The listener is there and separate from the public port.
    let ports = listening_ports(s.proxy.child.id().unwrap());
    assert_eq!(ports, BTreeSet::from([s.proxy.addr.port(), s.metrics_port]));
}

#[tokio::test]
async fn readyz_follows_jellyfin_and_healthz_says_alive() {
    // Jellyfin's port, with nothing on it yet.
    let jf_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jf_addr = jf_listener.local_addr().unwrap();
    drop(jf_listener);
    let dir = tempfile::tempdir().unwrap();
    let mport = free_port();
    let proxy = ProxyProcess::start(dir.path(), &format!("http://{jf_addr}"), &format!("metrics:\n  listen: 127.0.0.1:{mport}\n")).await;
    let readyz = || async { get(&format!("http://127.0.0.1:{mport}/readyz")).await };
    let until = |want: u16| async move {
        for _ in 0..100 {
            let (st, _, body) = get(&format!("http://127.0.0.1:{mport}/readyz")).await;
            if st == want {
                return serde_json::from_str::<Value>(&body).unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("/readyz never answered {want}");
    };

    let (st, ct, body) = readyz().await;
    assert_eq!((st, ct.as_str()), (503, "application/json"), "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["ready"], false);
    assert_eq!(v["checks"], json!({"jellyfin": "down", "durable": "ok", "ephemeral": "ok"}));
    let (st, _, body) = get(&format!("http://127.0.0.1:{mport}/healthz")).await;
    assert_eq!((st, body.as_str()), (200, "ok\n"), "alive although Jellyfin is down");
    // A forwarded request now has nowhere to go: a connect error.
    assert_eq!(http1_client().get(proxy.url("/System/Info/Public")).send().await.unwrap().status(), 502);
    assert_eq!(value(&scrape(mport).await, r#"jsp_upstream_errors_total{kind="connect"}"#), 1.0);

    // Jellyfin comes up on its port: ready.
    let jf = JellyfinDouble::start_on(tokio::net::TcpListener::bind(jf_addr).await.unwrap(), DoubleOptions::default()).await;
    let v = until(200).await;
    assert_eq!(v, json!({"ready": true, "checks": {"jellyfin": "ok", "durable": "ok", "ephemeral": "ok"}}));
    // And goes away again: not ready, still alive.
    jf.shutdown();
    let v = until(503).await;
    assert_eq!(v["checks"]["jellyfin"], "down");
    assert_eq!(get(&format!("http://127.0.0.1:{mport}/healthz")).await.0, 200);
    assert_eq!(get(&format!("http://127.0.0.1:{mport}/nothing")).await.0, 404);
}

#[tokio::test]
async fn no_listener_and_nothing_counted_by_default() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = ProxyProcess::start(dir.path(), &jf.url(), "").await;
    assert_eq!(http1_client().get(proxy.url("/System/Info/Public")).send().await.unwrap().status(), 200);
    assert_eq!(listening_ports(proxy.child.id().unwrap()), BTreeSet::from([proxy.addr.port()]), "only the public port");
    assert!(!proxy.log_contains("/readyz"), "no metrics listener announced");
}

fn load(yaml: &str) -> Result<Config, String> {
    Config::from_parts(Some(yaml), "proxy.yaml", Path::new("/tmp"), figment::providers::Env::prefixed("JSP_TEST_UNUSED_")).map_err(|e| e.to_string())
}

#[test]
fn metrics_listen_is_validated_with_field_and_line() {
    assert!(load("listen: 127.0.0.1:8443\n").unwrap().metrics.listen.is_none(), "off by default");
    let on = load("listen: 127.0.0.1:8443\nmetrics:\n  listen: 127.0.0.1:9464\n").unwrap();
    assert_eq!(on.metrics.listen, Some("127.0.0.1:9464".parse().unwrap()));
    let bad = load("listen: 127.0.0.1:8443\nmetrics:\n  listen: everywhere\n").unwrap_err();
    assert!(bad.contains("metrics.listen") && bad.contains("line 3") && bad.contains("127.0.0.1:9464"), "{bad}");
    for clash in ["0.0.0.0:8443", "127.0.0.1:8443"] {
        let e = load(&format!("listen: 0.0.0.0:8443\nmetrics:\n  listen: {clash}\n")).unwrap_err();
        assert!(e.contains("metrics.listen") && e.contains("public port") && e.contains("line 3"), "{e}");
    }
    let e = load("listen: 127.0.0.1:8443\nhttp_redirect_listen: 0.0.0.0:8080\nmetrics:\n  listen: 127.0.0.1:8080\n").unwrap_err();
    assert!(e.contains("http_redirect_listen"), "{e}");
    let e = load("metrics:\n  listen: 127.0.0.1:9464\n  path: /m\n").unwrap_err();
    assert!(e.contains("metrics.path"), "unknown keys are named: {e}");
}

/// The audit log (`log.audit`) after a refused login, a real login, an app password created,
/// used and revoked, and a provider added through the admin API: valid JSON lines with each
/// event and its fields, and none of the secrets that went by.
#[tokio::test]
async fn the_audit_log_records_every_event_as_json_lines_without_secrets() {
    let s = setup("log:\n  level: info\n  audit: audit/audit.jsonl\n").await;
    let (mut b, refused_cb) = to_callback(&s.proxy, "u-mallory").await;
    assert_eq!(b.get(&refused_cb).await.status, 401);
    let (b, auth, cb) = sign_in(&s.proxy, "u-alice", "web-1").await;
    let token = auth["AccessToken"].as_str().unwrap().to_string();
    let cookie = b.cookie("__Host-jsp-session").expect("session cookie");
    let client = http1_client();
    let as_alice = format!("MediaBrowser Token=\"{token}\"");
    let made: Value = client.post(s.proxy.url("/sso/app-passwords")).header("Authorization", &as_alice).json(&json!({"name": "Infuse"})).send().await.unwrap().json().await.unwrap();
    let (pw, id) = (made["password"].as_str().unwrap().to_string(), made["id"].as_str().unwrap().to_string());
    let used = client
        .post(s.proxy.url("/Users/AuthenticateByName"))
        .header("Authorization", "MediaBrowser Client=\"Infuse\", Device=\"iPad\", DeviceId=\"ipad-1\", Version=\"7.8\"")
        .json(&json!({"Username": "alice", "Pw": pw}))
        .send()
        .await
        .unwrap();
    assert_eq!(used.status(), 200);
    let used_token = used.json::<Value>().await.unwrap()["AccessToken"].as_str().unwrap().to_string();
    let del = client.delete(s.proxy.url(&format!("/sso/app-passwords/{id}"))).header("Authorization", &as_alice).send().await.unwrap();
    assert_eq!(del.status(), 200);
    let provider = json!({"oidEndpoint": "https://idp.example.com", "oidClientId": "other", "oidSecret": "extra-secret-value", "enabled": true});
    let added = client.post(s.proxy.url("/sso/OID/Add/extra")).header("Authorization", format!("MediaBrowser Token=\"{KEY}\"")).json(&provider).send().await.unwrap();
    assert_eq!(added.status(), 200, "{}", added.text().await.unwrap());

    let text = std::fs::read_to_string(s.dir.path().join("audit/audit.jsonl")).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    for l in &lines {
        assert!(l["time"].as_str().is_some_and(|t| t.ends_with('Z')) && l["event"].is_string(), "{l}");
    }
    let find = |pred: &dyn Fn(&Value) -> bool| lines.iter().find(|l| pred(l)).cloned().unwrap_or_else(|| panic!("no such event in:\n{text}"));
    let refused = find(&|l| l["event"] == "login" && l["result"] == "refused");
    assert_eq!((&refused["reason"], &refused["user"], &refused["provider"], &refused["protocol"]), (&json!("not_allowed"), &json!("mallory"), &json!("corp"), &json!("oid")));
    assert_eq!(refused["client"], "127.0.0.1");
    let rid = refused["request_id"].as_str().unwrap();
    assert!(rid.len() == 8 && s.proxy.log_contains(rid), "the request id {rid} is the access line's");
    // Jellyfin prints user ids with and without dashes; compare them as it does.
    let norm = |v: &Value| v.as_str().unwrap_or_default().replace('-', "").to_lowercase();
    let alice = json!(norm(&json!(s.jf.user_id("alice").unwrap())));
    let is_alice = |l: &Value| json!(norm(&l["user_id"])) == alice;
    let ok = find(&|l| l["event"] == "login" && l["result"] == "success");
    assert!(is_alice(&ok), "{ok}");
    assert_eq!((&ok["user"], &ok["provider"]), (&json!("alice"), &json!("corp")));
    assert!(ok["request_id"].is_string() && ok["client"] == "127.0.0.1");
    find(&|l| l["event"] == "mint" && l["how"] == "browser" && l["device_id"] == "web-1" && is_alice(l));
    find(&|l| l["event"] == "app_password.created" && l["app_password"] == json!(id) && is_alice(l));
    find(&|l| l["event"] == "app_password.used" && l["app_password"] == json!(id) && l["device_id"] == "ipad-1" && l["user"] == "alice");
    find(&|l| l["event"] == "mint" && l["how"] == "app-password" && l["device_id"] == "ipad-1");
    find(&|l| l["event"] == "revocation" && l["why"] == "app_password_revoked" && l["device_id"] == "ipad-1");
    find(&|l| l["event"] == "app_password.revoked" && l["app_password"] == json!(id));
    let admin = find(&|l| l["event"] == "admin");
    assert_eq!((&admin["action"], &admin["target"], &admin["protocol"], &admin["user"]), (&json!("provider.added"), &json!("extra"), &json!("oid"), &json!("api key")));
    // Nothing secret that passed through the proxy is in it.
    let code = url::Url::parse(&cb).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let refused_code = url::Url::parse(&refused_cb).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    for secret in [pw.as_str(), &pw[pw.len() - 43..], &token, &used_token, &cookie, &code, &refused_code, "s3cret", KEY, "extra-secret-value"] {
        assert!(!text.contains(secret), "a secret ({secret}) is in the audit log:\n{text}");
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(s.dir.path().join("audit/audit.jsonl")).unwrap().permissions().mode() & 0o777, 0o600);
}
