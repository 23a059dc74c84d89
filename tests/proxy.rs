//! The front door, end to end: a real proxy on port 0 in front of the Jellyfin double,
//! driven over TLS with HTTP/1.1 and HTTP/2 clients.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use jellyfin_double::{media_byte, DoubleOptions, JellyfinDouble};
use support::{http1_client, http2_client, sha256_hex, TestProxy};
use tokio_tungstenite::tungstenite::Message;

const MIB: usize = 1024 * 1024;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed).wrapping_add((i >> 11) as u8)).collect()
}

async fn double() -> JellyfinDouble {
    JellyfinDouble::start(DoubleOptions { media_size: 100 * MIB as u64, ..Default::default() }).await
}

/// Upload `body`, get it echoed back, and compare hashes.
async fn roundtrip(client: &reqwest::Client, proxy: &TestProxy, body: Vec<u8>, want_version: reqwest::Version) {
    let sent = sha256_hex(&body);
    let len = body.len();
    let resp = client.post(proxy.url("/echo/body")).body(body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), want_version);
    let got = resp.bytes().await.unwrap();
    assert_eq!(got.len(), len);
    assert_eq!(sha256_hex(&got), sent, "body changed in transit ({len} bytes)");
}

#[tokio::test]
async fn bodies_pass_through_byte_exact_over_http1_and_http2() {
    let jf = double().await;
    let proxy = TestProxy::start(&jf.url(), "").await;
    for (client, version) in [(http1_client(), reqwest::Version::HTTP_11), (http2_client(), reqwest::Version::HTTP_2)] {
        for size in [0, 1024, 100 * MIB] {
            roundtrip(&client, &proxy, pattern(size, size as u8), version).await;
        }
    }
    proxy.stop().await;
}

#[tokio::test]
async fn large_download_is_byte_exact() {
    let jf = double().await;
    let proxy = TestProxy::start(&jf.url(), "").await;
    for client in [http1_client(), http2_client()] {
        let mut resp = client.get(proxy.url("/media/big.bin")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut i: u64 = 0;
        while let Some(chunk) = resp.chunk().await.unwrap() {
            for b in chunk.iter() {
                assert_eq!(*b, media_byte(i), "byte {i}");
                i += 1;
            }
        }
        assert_eq!(i, 100 * MIB as u64);
    }
}

#[tokio::test]
async fn chunked_upload_streams_through() {
    let jf = double().await;
    let proxy = TestProxy::start(&jf.url(), "").await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..64).map(|i| Ok(pattern(64 * 1024, i))).collect();
    let expected: Vec<u8> = (0..64).flat_map(|i| pattern(64 * 1024, i)).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let resp = http1_client().post(proxy.url("/echo/body")).body(body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(sha256_hex(&resp.bytes().await.unwrap()), sha256_hex(&expected));
}

#[tokio::test]
async fn range_requests_return_exactly_the_slice() {
    let jf = double().await;
    let proxy = TestProxy::start(&jf.url(), "").await;
    let total = 100 * MIB as u64;
    for client in [http1_client(), http2_client()] {
        let resp = client.get(proxy.url("/media/big.bin")).header("Range", "bytes=1000-1999").send().await.unwrap();
        assert_eq!(resp.status(), 206);
        assert_eq!(resp.headers()["content-range"], format!("bytes 1000-1999/{total}").as_str());
        assert_eq!(resp.headers()["content-length"], "1000");
        let etag = resp.headers()["etag"].to_str().unwrap().to_string();
        let body = resp.bytes().await.unwrap();
        let want: Vec<u8> = (1000..2000).map(media_byte).collect();
        assert_eq!(body.as_ref(), want.as_slice());

        // Suffix range.
        let resp = client.get(proxy.url("/media/big.bin")).header("Range", "bytes=-10").send().await.unwrap();
        assert_eq!(resp.status(), 206);
        let want: Vec<u8> = (total - 10..total).map(media_byte).collect();
        assert_eq!(resp.bytes().await.unwrap().as_ref(), want.as_slice());

        // If-Range with the current ETag honours the range; a stale one gets the whole file.
        let resp = client.get(proxy.url("/media/big.bin")).header("Range", "bytes=5-9").header("If-Range", &etag).send().await.unwrap();
        assert_eq!(resp.status(), 206);
        let resp = client.get(proxy.url("/media/big.bin")).header("Range", "bytes=5-9").header("If-Range", "\"stale\"").send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.content_length(), Some(total));
        drop(resp);

        let resp = client.get(proxy.url("/media/big.bin")).header("Range", format!("bytes={total}-")).send().await.unwrap();
        assert_eq!(resp.status(), 416);
    }
}

#[tokio::test]
async fn websocket_echo_through_the_proxy_including_close() {
    let jf = double().await;
    let proxy = TestProxy::start(&jf.url(), "").await;
    let tls = support::tls_client::connect(proxy.addr, b"http/1.1").await;
    let url = format!("wss://127.0.0.1:{}/socket?api_key=secret", proxy.addr.port());
    let (mut ws, resp) = tokio_tungstenite::client_async(url, tls).await.expect("websocket handshake through proxy");
    assert_eq!(resp.status(), 101);
    ws.send(Message::text("hello jellyfin")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("hello jellyfin"));
    let big = pattern(200_000, 3);
    ws.send(Message::binary(big.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(big));
    ws.close(None).await.unwrap();
    // The close handshake completes: the server's close frame arrives, then the stream ends.
    let mut saw_close = false;
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(Message::Close(_)) => saw_close = true,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => {
                eprintln!("websocket ended with {e}");
                break;
            }
        }
    }
    assert!(saw_close, "server's close frame came back through the proxy");
}

#[tokio::test]
async fn hop_by_hop_stripped_forwarding_set_host_kept() {
    let jf = double().await;
    let proxy = TestProxy::start(&jf.url(), "").await;
    let resp = http1_client()
        .get(proxy.url("/echo/headers"))
        .header("Host", "media.example.com")
        .header("Connection", "keep-alive, X-Private-Hop")
        .header("X-Private-Hop", "1")
        .header("Keep-Alive", "timeout=5")
        .header("Proxy-Authorization", "Basic Zm9vOmJhcg==")
        .header("X-Forwarded-For", "6.6.6.6")
        .header("X-Custom", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let seen: serde_json::Value = resp.json().await.unwrap();
    let h = &seen["headers"];
    assert!(h.get("x-private-hop").is_none(), "{h}");
    assert!(h.get("keep-alive").is_none(), "{h}");
    assert!(h.get("proxy-authorization").is_none(), "{h}");
    assert_eq!(h["x-custom"], "kept");
    assert_eq!(h["host"], "media.example.com");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "an untrusted client's chain is replaced");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "media.example.com");

    // HTTP/2 has no Host header: the :authority becomes Host upstream.
    let resp = http2_client().get(proxy.url("/echo/headers")).send().await.unwrap();
    let seen: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(seen["headers"]["host"], format!("127.0.0.1:{}", proxy.addr.port()));
}

#[tokio::test]
async fn trusted_proxy_chain_is_extended() {
    let jf = double().await;
    let proxy = TestProxy::start(&jf.url(), "trusted_proxies: [127.0.0.0/8]\n").await;
    let resp = http1_client().get(proxy.url("/echo/headers")).header("X-Forwarded-For", "203.0.113.9").send().await.unwrap();
    let seen: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(seen["headers"]["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
}

#[tokio::test]
async fn upstream_down_gives_502_page_or_json() {
    let port = support::free_port();
    let proxy = TestProxy::start(&format!("http://127.0.0.1:{port}"), "").await;
    let c = http1_client();
    let resp = c.get(proxy.url("/web/index.html")).header("Accept", "text/html").send().await.unwrap();
    assert_eq!(resp.status(), 502);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let body = resp.text().await.unwrap();
    assert!(body.contains("Jellyfin is not reachable"), "{body}");
    let resp = c.get(proxy.url("/Users/Me")).header("Accept", "application/json").send().await.unwrap();
    assert_eq!(resp.status(), 502);
    let j: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(j["status"], 502);
    // The proxy is still healthy enough to say so.
    let resp = c.get(proxy.url("/sso/health")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let j: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(j["proxy"], "up");
    assert_eq!(j["jellyfin"], "down");
}

#[tokio::test]
async fn slow_upstream_gives_504() {
    let jf = double().await;
    let proxy = TestProxy::start(&jf.url(), "limits:\n  upstream_header_timeout: 300ms\n").await;
    jf.set_latency(Duration::from_secs(3));
    let resp = http1_client().get(proxy.url("/System/Info/Public")).header("Accept", "text/html").send().await.unwrap();
    assert_eq!(resp.status(), 504);
    assert!(resp.text().await.unwrap().contains("taking too long"));
}

#[tokio::test]
async fn health_reports_jellyfin_up() {
    let jf = double().await;
    let proxy = TestProxy::start(&jf.url(), "").await;
    let resp = http1_client().get(proxy.url("/sso/health")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let j: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(j["jellyfin"], "up");
}
