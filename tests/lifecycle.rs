//! The proxy binary as an operator runs it: first-run certificate, reload on SIGHUP without
//! dropping open connections, graceful SIGTERM, and the plain-HTTP redirect listener.

mod support;

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use jellyfin_double::{DoubleOptions, JellyfinDouble};
use support::{http1_client, tls_client, ProxyProcess};

async fn h1_get(sender: &mut hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>>, path: &str) -> u16 {
    let req = http::Request::get(path).header("host", "localhost").body(Empty::new()).unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    resp.into_body().collect().await.unwrap();
    status
}

/// `log.format: json`: every line one object; the access lines of a request carry its id as
/// the `request` span (`span` and `spans`), as they did when the id was a tracing span, and
/// lines written outside a request carry none.
/// The binary runs on jemalloc with the settings of `src/main.rs` (`_rjem_malloc_conf`): its
/// background thread, which hands freed pages back, exists only if jemalloc read them.
#[tokio::test]
async fn the_binary_runs_jemalloc_with_its_background_thread() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = ProxyProcess::start(dir.path(), &jf.url(), "").await;
    let pid = proxy.child.id().unwrap();
    let names: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect();
    assert!(names.iter().any(|n| n.starts_with("jemalloc_bg_thd")), "threads: {names:?}");
}

#[tokio::test]
async fn json_log_lines_carry_each_request_id_as_its_span() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = ProxyProcess::start(dir.path(), &jf.url(), "log:\n  level: info\n  format: json\n").await;
    let tls = tls_client::connect(proxy.addr, b"http/1.1").await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    assert_eq!(h1_get(&mut sender, "/System/Info/Public").await, 200);
    assert_eq!(h1_get(&mut sender, "/nope/at/all").await, 404);
    let lines = proxy.wait_log("\"target\":\"access\"", 1).await;
    let mut ids = Vec::new();
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(v["span"]["name"], "request", "{line}");
        assert_eq!(v["spans"], serde_json::json!([v["span"].clone()]), "{line}");
        let id = v["span"]["id"].as_str().unwrap().to_string();
        assert!(id.len() >= 8 && id.chars().all(|c| c.is_ascii_hexdigit()), "{line}");
        ids.push((v["path"].as_str().unwrap().to_string(), v["status"].as_u64().unwrap(), id));
    }
    assert_eq!(ids.len(), 2, "{lines:?}");
    assert_eq!((ids[0].0.as_str(), ids[0].1, ids[1].0.as_str(), ids[1].1), ("/System/Info/Public", 200, "/nope/at/all", 404));
    assert_ne!(ids[0].2, ids[1].2, "each request has its own id");
    let serving: serde_json::Value = serde_json::from_str(&proxy.log_lines("\"serving\"")[0]).unwrap();
    assert_eq!(serving["level"], "INFO");
    assert!(serving.get("span").is_none() && serving.get("spans").is_none(), "{serving}");
}

#[tokio::test]
async fn generated_certificate_is_served_and_reloaded_on_sighup_keeping_open_connections() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = ProxyProcess::start(dir.path(), &jf.url(), "").await;
    assert!(dir.path().join("certs/cert.pem").exists() && dir.path().join("certs/key.pem").exists());
    assert!(proxy.log_contains("self-signed"), "first run warns about the generated certificate");

    // An open keep-alive connection with the first certificate.
    let tls = tls_client::connect(proxy.addr, b"http/1.1").await;
    let first = tls_client::peer_leaf(&tls);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    assert_eq!(h1_get(&mut sender, "/System/Info/Public").await, 200);
    // stderr is a pipe here, as under systemd or in a log file: plain text, no colour codes,
    // and the access line carries the request's id.
    let access = proxy.wait_log("method=GET path=\"/System/Info/Public\"", 0).await;
    assert!(access.iter().any(|l| l.contains(" request{id=") && l.contains("status=200")), "{access:?}");
    assert!(!proxy.log_contains("\x1b["), "no terminal colour codes in a piped log");

    // Replace the files with a new pair and send SIGHUP.
    let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("certs/key.pem"), pair.key_pair.serialize_pem()).unwrap();
    std::fs::write(dir.path().join("certs/cert.pem"), pair.cert.pem()).unwrap();
    proxy.signal("HUP");
    let mut second = first.clone();
    for _ in 0..50 {
        let tls = tls_client::connect(proxy.addr, b"http/1.1").await;
        second = tls_client::peer_leaf(&tls);
        if second != first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(second, first, "new connections get the new certificate");
    assert_eq!(second, pair.cert.der().to_vec());
    // The old connection still works.
    assert_eq!(h1_get(&mut sender, "/System/Info/Public").await, 200);
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_request_finish() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut proxy = ProxyProcess::start(dir.path(), &jf.url(), "").await;
    jf.set_latency(Duration::from_millis(1500));
    let url = proxy.url("/System/Info/Public");
    let in_flight = tokio::spawn(async move { http1_client().get(url).send().await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(Duration::from_millis(400)).await;
    proxy.signal("TERM");
    let status = in_flight.await.unwrap().expect("request completed despite SIGTERM");
    assert_eq!(status, 200);
    let exit = tokio::time::timeout(Duration::from_secs(10), proxy.child.wait()).await.expect("proxy exits").unwrap();
    assert!(exit.success(), "{exit:?}");
    // And it no longer accepts.
    assert!(tokio::net::TcpStream::connect(proxy.addr).await.is_err());
}

#[tokio::test]
async fn http_redirect_listener_answers_308_to_public_url() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let port = support::free_port();
    let proxy = ProxyProcess::start(dir.path(), &jf.url(), &format!("http_redirect_listen: 127.0.0.1:{port}\n")).await;
    let resp = http1_client().get(format!("http://127.0.0.1:{port}/web/index.html?x=1")).header("Host", "evil.example").send().await.unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(resp.headers()["location"], proxy.url("/web/index.html?x=1").as_str());
}

/// A second proxy on the same address fails with the reason, even though the first one's
/// listeners use SO_REUSEPORT (which would otherwise let the two share the port).
#[tokio::test]
async fn a_second_proxy_on_the_same_address_is_refused() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let first = ProxyProcess::start(dir.path(), &jf.url(), "").await;
    let second = tokio::process::Command::new(env!("CARGO_BIN_EXE_jellyfin-sso-proxy"))
        .arg("--config")
        .arg(dir.path().join("proxy.yaml"))
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), second.wait_with_output())
        .await
        .expect("the second proxy started serving on the first one's address")
        .unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains(&format!("cannot listen on {}", first.addr)), "{err}");
    // The first one still serves every request.
    let c = support::http1_client();
    for _ in 0..20 {
        assert_eq!(c.get(first.url("/System/Info/Public")).send().await.unwrap().status(), 200);
    }
}

/// A Jellyfin that accepts connections and never answers must not delay serving: the port is
/// bound and requests are answered at once, and the check of Jellyfin runs in the background.
#[tokio::test]
async fn a_hung_jellyfin_does_not_delay_start_up() {
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", hung.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let proxy = support::ProxyProcess::start(dir.path(), &url, "  api_key: k\n").await;
    let served_after = started.elapsed();
    let r = support::http1_client().get(proxy.url("/sso/health")).send().await.unwrap();
    assert_eq!(r.status(), 503, "Jellyfin is not answering");
    // The old start-up waited 3 × 60 s for Jellyfin before binding; now it is the time to
    // spawn a process. (Generous bound: this is a behaviour check, not a benchmark.)
    assert!(served_after < Duration::from_secs(15), "serving after {served_after:?}");
    drop(hung);
}
