//! Request smuggling probes: a raw upstream records exactly the bytes the proxy sends it,
//! and each probe checks that Jellyfin would see one well-formed request per client request
//! (or that the client got a 400 and Jellyfin saw nothing of it). Body framing is always
//! rebuilt by the proxy, so what reaches the upstream is never the client's ambiguity.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{tls_client, TestProxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A Jellyfin stand-in that records raw bytes and answers each request `200 ok`. It frames
/// requests itself (Content-Length or chunked) so it can count them.
struct RawUpstream {
    url: String,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl RawUpstream {
    async fn start() -> RawUpstream {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    loop {
                        let n = match tokio::time::timeout(Duration::from_millis(300), s.read(&mut chunk)).await {
                            Ok(Ok(0)) | Ok(Err(_)) => return,
                            Ok(Ok(n)) => n,
                            Err(_) => 0,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        sink.lock().unwrap().extend_from_slice(&chunk[..n]);
                        // Answer once per complete request head + body we can frame.
                        while let Some(len) = complete_request(&buf) {
                            buf.drain(..len);
                            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                        }
                        if n == 0 && buf.is_empty() {
                            continue;
                        }
                    }
                });
            }
        });
        RawUpstream { url, seen }
    }

    fn take(&self) -> String {
        String::from_utf8_lossy(&std::mem::take(&mut *self.seen.lock().unwrap())).into_owned()
    }
}

/// Length of the first complete request in `buf`, framed by Content-Length or chunked.
fn complete_request(buf: &[u8]) -> Option<usize> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if head.contains("transfer-encoding: chunked") {
        let body = &buf[head_end..];
        let end = body.windows(5).position(|w| w == b"0\r\n\r\n")? + 5;
        return Some(head_end + end);
    }
    let len = head.lines().find_map(|l| l.strip_prefix("content-length:")).map(|v| v.trim().parse::<usize>().unwrap_or(0)).unwrap_or(0);
    (buf.len() >= head_end + len).then_some(head_end + len)
}

/// Requests in `raw` as the upstream frames them: their request lines.
fn request_lines(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = raw.as_bytes();
    while let Some(len) = complete_request(rest) {
        out.push(String::from_utf8_lossy(rest).lines().next().unwrap_or("").to_string());
        rest = &rest[len..];
    }
    assert!(rest.iter().all(|b| b.is_ascii_whitespace()), "bytes the upstream cannot frame: {:?}", String::from_utf8_lossy(rest));
    out
}

async fn send_raw(proxy: &TestProxy, bytes: &[u8]) -> String {
    let mut tls = tls_client::connect(proxy.addr, b"http/1.1").await;
    tls.write_all(bytes).await.unwrap();
    tls.flush().await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), tls.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn smuggling_probes_reach_jellyfin_as_one_request_or_not_at_all() {
    let up = RawUpstream::start().await;
    let proxy = TestProxy::start(&up.url, "").await;
    let smuggled = "GET /admin/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let probes: Vec<(&str, String)> = vec![
        ("CL.TE", format!("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n{smuggled}", 5 + smuggled.len())),
        ("TE.CL", format!("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len())),
        ("two Content-Lengths", format!("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{smuggled}", smuggled.len())),
        ("Content-Length list", format!("POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0, {}\r\nConnection: close\r\n\r\n{smuggled}", smuggled.len())),
        ("obfuscated TE (space)", format!("POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\nConnection: close\r\n\r\n0\r\n\r\n{smuggled}")),
        ("obfuscated TE (xchunked)", format!("POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\nContent-Length: 3\r\nConnection: close\r\n\r\n0\r\n\r\n{smuggled}")),
        ("TE: chunked, identity", format!("POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\nConnection: close\r\n\r\n0\r\n\r\n{smuggled}")),
        ("TE with tab", format!("POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\tchunked\r\nContent-Length: 3\r\nConnection: close\r\n\r\n0\r\n\r\n{smuggled}")),
        ("absolute-form target", "GET http://internal.example/admin HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".to_string()),
        ("bare LF line ends", format!("GET /a HTTP/1.1\nHost: h\nContent-Length: {}\n\n{smuggled}", smuggled.len())),
        ("pipelined pair", "GET /one HTTP/1.1\r\nHost: h\r\n\r\nGET /two HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".to_string()),
    ];
    for (what, raw) in probes {
        let answer = send_raw(&proxy, raw.as_bytes()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let seen = up.take();
        let lines = request_lines(&seen);
        assert!(!seen.contains("/admin/smuggled HTTP/1.1\r\nHost: x") || lines.iter().all(|l| !l.starts_with("GET /admin/smuggled")), "{what}: a smuggled request reached Jellyfin: {seen:?}");
        let answered: usize = answer.matches("HTTP/1.1 ").count();
        eprintln!("probe {what}: answer {:?}, upstream saw {lines:?}", answer.lines().next());
        if answer.starts_with("HTTP/1.1 400") || answer.is_empty() {
            assert!(lines.is_empty(), "{what}: refused, yet Jellyfin saw {lines:?}");
        } else {
            assert_eq!(lines.len(), answered, "{what}: client got {answered} answers, Jellyfin saw {lines:?}\n{answer}");
        }
        for l in &lines {
            assert!(!l.contains("internal.example"), "{what}: absolute-form target passed on: {l}");
        }
    }
}
