//! The pool against a raw HTTP/1.1 server on loopback that counts its connections: reuse
//! after bodies of each framing, no reuse after a body cut short or a 101, a connection that
//! Jellyfin closed while idle, the idle cap and timeout, and a refused connect.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// What the raw server does after each response.
#[derive(Clone, Copy)]
enum After {
    KeepOpen,
    /// Close the connection without saying so, as a keep-alive timeout does.
    SilentClose,
}

struct Raw {
    origin: Uri,
    accepted: Arc<AtomicUsize>,
}

/// A server answering every request with `response` (whole bytes), counting connections.
async fn raw(response: &'static [u8], after: After) -> Raw {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin: Uri = format!("http://{}/", listener.local_addr().unwrap()).parse().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                    buf.drain(..end);
                    if sock.write_all(response).await.is_err() {
                        return;
                    }
                    if let After::SilentClose = after {
                        return;
                    }
                }
            });
        }
    });
    Raw { origin, accepted }
}

fn pool(origin: &Uri, max_idle: usize, idle_timeout: Duration) -> Pool {
    Pool::new(origin.clone(), Duration::from_secs(5), max_idle, idle_timeout)
}

fn get(origin: &Uri) -> Request<UpBody> {
    Request::get("/x").header(http::header::HOST, origin.authority().unwrap().as_str()).body(Either::Right(Full::new(Bytes::new()))).unwrap()
}

async fn read_all(p: &Pool, origin: &Uri) -> (StatusCode, Bytes) {
    let resp = p.send(get(origin)).await.unwrap();
    let status = resp.status();
    (status, resp.into_body().collect().await.unwrap().to_bytes())
}

const LENGTH: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
const EMPTY: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";

#[tokio::test]
async fn one_connection_serves_requests_in_turn_whatever_the_body_framing() {
    for (response, body) in [(LENGTH, &b"hello"[..]), (CHUNKED, b"hello"), (EMPTY, b"")] {
        let server = raw(response, After::KeepOpen).await;
        let p = pool(&server.origin, 8, Duration::from_secs(90));
        for _ in 0..5 {
            let (_, got) = read_all(&p, &server.origin).await;
            assert_eq!(&got[..], body);
        }
        assert_eq!(server.accepted.load(Ordering::SeqCst), 1, "{}", String::from_utf8_lossy(response));
        assert_eq!(p.idle_count(), 1);
    }
}

#[tokio::test]
async fn a_body_dropped_before_its_end_takes_its_connection_with_it() {
    let server = raw(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\nonly the start", After::KeepOpen).await;
    let p = pool(&server.origin, 8, Duration::from_secs(90));
    let resp = p.send(get(&server.origin)).await.unwrap();
    drop(resp);
    assert_eq!(p.idle_count(), 0);
    let resp = p.send(get(&server.origin)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(server.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_connection_closed_while_idle_is_not_used_again() {
    let server = raw(LENGTH, After::SilentClose).await;
    let p = pool(&server.origin, 8, Duration::from_secs(90));
    for i in 1..=4 {
        let (status, got) = read_all(&p, &server.origin).await;
        assert_eq!((status, &got[..]), (StatusCode::OK, &b"hello"[..]));
        assert_eq!(server.accepted.load(Ordering::SeqCst), i);
        // Sometimes before, sometimes after the pool sees the close: both must work.
        if i % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn switching_protocols_keeps_the_connection_out_of_the_pool() {
    let server = raw(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n", After::KeepOpen).await;
    let p = pool(&server.origin, 8, Duration::from_secs(90));
    let resp = p.send(get(&server.origin)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SWITCHING_PROTOCOLS);
    drop(resp);
    assert_eq!(p.idle_count(), 0);
}

#[tokio::test]
async fn idle_connections_are_capped_and_expire() {
    let server = raw(LENGTH, After::KeepOpen).await;
    let p = pool(&server.origin, 2, Duration::from_millis(200));
    // Three at once need three connections; only two are kept.
    let (a, b, c) = tokio::join!(p.send(get(&server.origin)), p.send(get(&server.origin)), p.send(get(&server.origin)));
    for r in [a, b, c] {
        r.unwrap().into_body().collect().await.unwrap();
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 3);
    assert_eq!(p.idle_count(), 2);
    // The sweeper closes them once idle for the timeout, with nobody asking.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(p.idle_count(), 0);
    read_all(&p, &server.origin).await;
    assert_eq!(server.accepted.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn each_idle_connection_is_closed_when_its_own_timeout_is_up() {
    let server = raw(LENGTH, After::KeepOpen).await;
    let p = pool(&server.origin, 8, Duration::from_millis(2000));
    // Two connections: one idle from 0 s, the other from 1.6 s (its body read only then).
    let (first, second) = tokio::join!(p.send(get(&server.origin)), p.send(get(&server.origin)));
    first.unwrap().into_body().collect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1600)).await;
    second.unwrap().into_body().collect().await.unwrap();
    assert_eq!((server.accepted.load(Ordering::SeqCst), p.idle_count()), (2, 2));
    // At 2.7 s the first is gone and the second kept; at 3.8 s, before a second full period
    // of the sweeper (4 s), the second is gone too (its time was up at 3.6 s).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(p.idle_count(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(p.idle_count(), 0);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let origin: Uri = format!("http://{}/", listener.local_addr().unwrap()).parse().unwrap();
    drop(listener);
    let p = pool(&origin, 8, Duration::from_secs(90));
    assert!(matches!(p.send(get(&origin)).await, Err(PoolError::Connect(_))));
}
