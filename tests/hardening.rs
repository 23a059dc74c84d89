//! Hostile and broken clients: answers over HTTP/2 before a body is read, stalled bodies,
//! idle HTTP/2 connections, per-client limits on starting logins.

mod support;

use std::time::Duration;

use jellyfin_double::{DoubleOptions, JellyfinDouble};
use support::{http2_client, tls_client, TestProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "test-api-key";

/// Every `/sso/` POST route answers an HTTP/2 client with its status, whatever the body
/// (RFC 9113 §8.1): never a stream error because the answer came before the body was read.
#[tokio::test]
async fn sso_posts_over_http2_get_their_answer_not_a_stream_error() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let proxy = TestProxy::start_sso(&jf.url(), KEY, "").await;
    let client = http2_client();
    let big = vec![b'x'; 1024 * 1024];
    let routes = ["/sso/Unregister/x", "/sso/OID/Add/x", "/sso/SAML/Add/x", "/sso/OID/Link/test/abc", "/sso/OID/Auth/nope", "/sso/SAML/post/nope"];
    for route in routes {
        for body in [b"{}".to_vec(), big.clone()] {
            for _ in 0..5 {
                let r = client.post(proxy.url(route)).header("content-type", "application/json").body(body.clone()).send().await;
                let r = r.unwrap_or_else(|e| panic!("{route} with {} bytes: {e:?}", body.len()));
                assert_eq!(r.version(), reqwest::Version::HTTP_2);
                let status = r.status().as_u16();
                assert!([400, 401, 404, 413].contains(&status), "{route} ({} bytes): {status}", body.len());
                r.bytes().await.unwrap_or_else(|e| panic!("{route}: the answer's body must arrive too: {e:?}"));
            }
        }
    }
}

/// A POST whose body stops arriving is answered 408 within `limits.body_read_timeout`, and
/// the connection does not hold the proxy.
#[tokio::test]
async fn a_stalled_body_is_cut_off_with_408() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let proxy = TestProxy::start_sso(&jf.url(), KEY, "limits:\n  body_read_timeout: 1s\n").await;
    for path in ["/sso/SAML/post/test", "/sso/OID/Auth/test"] {
        let mut tls = tls_client::connect(proxy.addr, b"http/1.1").await;
        let head = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nRelayState=");
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        let mut buf = Vec::new();
        let started = std::time::Instant::now();
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            let mut chunk = [0u8; 4096];
            loop {
                match tls.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                }
            }
        })
        .await;
        assert!(read.is_ok(), "{path}: the proxy must answer a stalled body");
        let text = String::from_utf8_lossy(&buf);
        assert!(text.starts_with("HTTP/1.1 408"), "{path}: {text}");
        assert!(started.elapsed() < Duration::from_secs(5), "{path}: answered after {:?}", started.elapsed());
    }
}

/// `idle_timeout` closes an idle HTTP/2 connection although the protocol's keep-alive
/// PINGs keep bytes moving.
#[tokio::test]
async fn an_idle_http2_connection_is_closed() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let proxy = TestProxy::start(&jf.url(), "limits:\n  idle_timeout: 1s\n").await;
    let tls = tls_client::connect(proxy.addr, b"h2").await;
    let (mut send, conn) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(tls)).await.unwrap();
    let conn = tokio::spawn(conn);
    let req = http::Request::get(proxy.url("/System/Info/Public")).body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    drop(resp);
    let closed = tokio::time::timeout(Duration::from_secs(6), conn).await;
    assert!(closed.is_ok(), "the idle HTTP/2 connection is still open after 6 s with idle_timeout 1s");
}

/// Send raw HTTP/1.1 bytes over TLS and read the status line of the answer.
async fn raw_status(proxy: &TestProxy, request: &[u8]) -> String {
    let mut tls = tls_client::connect(proxy.addr, b"http/1.1").await;
    tls.write_all(request).await.unwrap();
    tls.flush().await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = tls.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.windows(2).any(|w| w == b"\r\n") {
                break;
            }
        }
    })
    .await;
    String::from_utf8_lossy(&buf).lines().next().unwrap_or("").to_string()
}

/// Requests that are ambiguous or not for Jellyfin are refused by the proxy, as the client's
/// fault, and never reach Jellyfin.
#[tokio::test]
async fn ambiguous_or_foreign_requests_are_client_errors() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let proxy = TestProxy::start(&jf.url(), "").await;
    let before = jf.calls().len();
    let cases: [(&str, &[u8], &str); 4] = [
        ("CONNECT", b"CONNECT jellyfin:8096 HTTP/1.1\r\nHost: jellyfin:8096\r\n\r\n", "405"),
        ("no Host", b"GET /System/Info/Public HTTP/1.1\r\n\r\n", "400"),
        ("two Hosts", b"GET /System/Info/Public HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n", "400"),
        ("malformed chunked body", b"POST /echo/body HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", "400"),
    ];
    for (what, bytes, status) in cases {
        let line = raw_status(&proxy, bytes).await;
        assert!(line.starts_with(&format!("HTTP/1.1 {status}")), "{what}: {line:?}");
    }
    let reached: Vec<String> = jf.calls()[before..].iter().map(|c| c.path.clone()).collect();
    assert!(!reached.iter().any(|p| p.contains("Info/Public")), "refused requests reached Jellyfin: {reached:?}");
    // And a well-formed request on the same proxy is served.
    let line = raw_status(&proxy, b"GET /System/Info/Public HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
    assert!(line.starts_with("HTTP/1.1 200"), "{line}");
}

/// Every page and answer the proxy makes itself is never framed, never sniffed, sends no
/// referrer, has a CSP that forbids framing, and is not cached unless it says so.
#[tokio::test]
async fn the_proxys_own_pages_carry_security_headers() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let proxy = TestProxy::start_sso(&jf.url(), KEY, "").await;
    let client = support::http1_client();
    for path in ["/sso/health", "/sso/OID/GetNames", "/SSOViews/linking", "/sso/nothing-here", "/sso/OID/start/nope", "/sso/SAML/metadata/nope"] {
        for accept in ["text/html", "application/json"] {
            let r = client.get(proxy.url(path)).header("accept", accept).send().await.unwrap();
            let h = r.headers();
            assert_eq!(h["x-frame-options"], "DENY", "{path}");
            assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
            assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
            assert!(h["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"), "{path}");
            assert!(h["cache-control"].to_str().unwrap().contains("no-store"), "{path}");
        }
    }
    // Jellyfin's own answers are passed as they are.
    let r = client.get(proxy.url("/System/Info/Public")).send().await.unwrap();
    assert!(r.headers().get("x-frame-options").is_none());
}

/// Slow clients are cut off by a documented limit while others are served: headers sent a
/// byte at a time (`header_read_timeout`), and a client that never reads its response
/// (nothing moves for longer than `idle_timeout` and `upstream_header_timeout`, plus 5 s).
#[tokio::test]
async fn slow_clients_are_cut_off_and_others_are_served() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let proxy = TestProxy::start(&jf.url(), "limits:\n  header_read_timeout: 2s\n  idle_timeout: 1s\n  upstream_header_timeout: 1s\n").await;

    // Slowloris: never finishes its headers.
    let mut slow = tls_client::connect(proxy.addr, b"http/1.1").await;
    let started = std::time::Instant::now();
    let mut closed = false;
    for b in b"GET /System/Info/Public HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
        if slow.write_all(&[*b]).await.is_err() || slow.flush().await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        if started.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    let mut rest = Vec::new();
    let eof = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await.is_ok();
    assert!(closed || eof, "a client trickling its headers is still connected after {:?}", started.elapsed());

    // A reader that stops reading a 100 MiB download.
    let mut stuck = tls_client::connect(proxy.addr, b"http/1.1").await;
    stuck.write_all(b"GET /media/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
    // Meanwhile someone else is served.
    let r = support::http1_client().get(proxy.url("/System/Info/Public")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_secs(9)).await;
    let mut total = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let drained = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stuck.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the connection was not dropped");
    assert!(total < 100 * 1024 * 1024, "the whole file arrived although the client stopped reading ({total} bytes)");
}

/// Longer than an HTTP/1.1 connection takes to park (2 s of quiet, checked every second).
const PARKED: Duration = Duration::from_millis(3500);

/// Read one HTTP/1.1 response with a `Content-Length` body from `tls`; `buf` keeps what was
/// read beyond it (a pipelined answer). `None` when the connection closed first.
async fn read_response(tls: &mut (impl AsyncReadExt + Unpin), buf: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_string();
                let len: usize = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())).unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    let body = buf[end + 4..end + 4 + len].to_vec();
                    buf.drain(..end + 4 + len);
                    return Some((head.lines().next().unwrap_or("").to_string(), body));
                }
            }
            match tls.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .expect("an answer within 10 s")
}

/// An idle HTTP/1.1 keep-alive connection gives its HTTP state back (it parks) and goes on
/// serving on the same connection: a request woken from a park, a head split across one, a
/// pipelined head begun before one, and a body after one all arrive whole.
#[tokio::test]
async fn an_idle_http1_connection_parks_and_keeps_serving() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let proxy = TestProxy::start(&jf.url(), "").await;
    let mut tls = tls_client::connect(proxy.addr, b"http/1.1").await;
    let mut buf = Vec::new();
    let get = b"GET /System/Info/Public HTTP/1.1\r\nHost: localhost\r\n\r\n";
    tls.write_all(get).await.unwrap();
    let (status, info) = read_response(&mut tls, &mut buf).await.expect("first answer");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    tokio::time::sleep(PARKED).await;
    // Woken by a whole request.
    tls.write_all(get).await.unwrap();
    let (status, again) = read_response(&mut tls, &mut buf).await.expect("the connection survives its park");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(again, info);
    tokio::time::sleep(PARKED).await;
    // Woken by half a head, the rest after another pause.
    tls.write_all(b"GET /System/Info/Public HTTP/1.1\r\nHo").await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(PARKED).await;
    tls.write_all(b"st: localhost\r\n\r\n").await.unwrap();
    let (status, again) = read_response(&mut tls, &mut buf).await.expect("a head split across a pause");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(again, info);
    // A whole request and the start of the next in one write: the connection parks holding
    // the begun head, which is replayed when the rest comes.
    let mut two = get.to_vec();
    two.extend_from_slice(b"GET /System/Info/Public HTTP/1.1\r\nHo");
    tls.write_all(&two).await.unwrap();
    tls.flush().await.unwrap();
    let (status, _) = read_response(&mut tls, &mut buf).await.expect("the pipelined first");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    tokio::time::sleep(PARKED).await;
    tls.write_all(b"st: localhost\r\n\r\n").await.unwrap();
    let (status, again) = read_response(&mut tls, &mut buf).await.expect("the head begun before the park");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(again, info);
    tokio::time::sleep(PARKED).await;
    // A body after a park.
    tls.write_all(b"POST /echo/body HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world").await.unwrap();
    let (status, body) = read_response(&mut tls, &mut buf).await.expect("a POST after a park");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(body, b"hello world");
    assert!(buf.is_empty(), "nothing more was sent: {:?}", String::from_utf8_lossy(&buf));
}

/// A connection whose request body was not read to its end never parks as if it were between
/// messages: what the client sends after the pause is never taken as a new request.
#[tokio::test]
async fn an_unread_body_is_not_taken_for_a_request_after_a_pause() {
    let jf = JellyfinDouble::start(DoubleOptions::default()).await;
    let proxy = TestProxy::start_sso(&jf.url(), KEY, "limits:\n  body_read_timeout: 1s\n").await;
    let mut tls = tls_client::connect(proxy.addr, b"http/1.1").await;
    // Answered (408) without its body read to the end; 20 of the 200 announced bytes are sent.
    tls.write_all(b"POST /sso/OID/Auth/nope HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\nstate=abc&code=12345").await.unwrap();
    tls.flush().await.unwrap();
    let mut buf = Vec::new();
    let answer = read_response(&mut tls, &mut buf).await;
    assert!(answer.as_ref().is_some_and(|(s, _)| !s.starts_with("HTTP/1.1 2")), "{answer:?}");
    tokio::time::sleep(PARKED).await;
    let before = jf.calls().len();
    // The rest of the announced body, shaped as a request.
    let smuggled = b"GET /System/Info/Public HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let _ = tls.write_all(smuggled).await;
    let _ = tls.flush().await;
    let mut chunk = [0u8; 4096];
    let after = tokio::time::timeout(Duration::from_secs(3), tls.read(&mut chunk)).await;
    let answered = matches!(after, Ok(Ok(n)) if n > 0 && chunk[..n].starts_with(b"HTTP/1.1 200"));
    assert!(!answered, "the rest of a body was answered as a request");
    assert!(jf.calls()[before..].iter().all(|c| !c.path.contains("Info/Public")), "the rest of a body reached Jellyfin as a request");
}
