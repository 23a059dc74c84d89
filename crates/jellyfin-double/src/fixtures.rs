//! What the proxy's own tests need that is NOT Jellyfin: a web page under `/web/`, an image to
//! fetch (`/test/avatar.png`), a websocket echo (`/socket`), a large media file with Range
//! support (`/media/big.bin`), and echoes of the headers and body received (`/echo/headers`,
//! `/echo/body`). They test the proxy's forwarding (streaming, ranges, upgrades, header
//! rules) against a known upstream, and are kept apart so the Jellyfin parts stay a reference.

use std::sync::Mutex;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};

use crate::reply::{empty, full, json_resp, respond, Body, BoxError};
use crate::server::{record, Inner, Req};

/// What `GET /test/avatar.png` serves (not Jellyfin: an image for `avatarUrlFormat` tests).
pub const TEST_AVATAR: &[u8] = b"\x89PNG\r\n\x1a\ntest-avatar-bytes";

/// The content of `/media/big.bin`: byte `i` is `(i * 31 + i / 7) mod 256`. It depends on the
/// position and has no small power-of-two period, so an off-by-one range or a swapped chunk shows.
pub fn media_byte(i: u64) -> u8 {
    (i.wrapping_mul(31).wrapping_add(i / 7)) as u8
}

/// The endpoints that stream, answered before the body is read (and recorded without a body);
/// any other request is handed back.
pub(crate) fn streaming(state: &Mutex<Inner>, req: Request<Incoming>) -> Result<Response<Body>, Request<Incoming>> {
    match (req.method().as_str(), req.uri().path().to_ascii_lowercase().as_str()) {
        (_, "/echo/body") => {
            record(&mut state.lock().unwrap(), req.method(), req.uri(), req.headers(), &[]);
            let ct = req.headers().get("content-type").cloned();
            let mut resp = Response::new(req.into_body().map_err(BoxError::from).boxed());
            if let Some(ct) = ct {
                resp.headers_mut().insert("content-type", ct);
            }
            Ok(resp)
        }
        ("GET" | "HEAD", "/media/big.bin") => {
            let size = {
                let mut g = state.lock().unwrap();
                record(&mut g, req.method(), req.uri(), req.headers(), &[]);
                g.opts.media_size
            };
            Ok(media(&req, size))
        }
        ("GET", "/socket") => {
            let mut g = state.lock().unwrap();
            record(&mut g, req.method(), req.uri(), req.headers(), &[]);
            // Jellyfin's WebSocketManager.WebSocketRequestHandler: AuthService.Authenticate,
            // and no socket for a caller who is not authenticated.
            if g.socket_auth {
                let query = url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned())).fold(
                    std::collections::HashMap::new(),
                    |mut m, (k, v)| {
                        m.entry(k).or_insert(v);
                        m
                    },
                );
                if !crate::auth::authorize(&mut g, req.headers(), &query).caller.authenticated() {
                    return Ok(empty(StatusCode::UNAUTHORIZED));
                }
            }
            drop(g);
            Ok(websocket(req))
        }
        _ => Err(req),
    }
}

/// The endpoints of this module (see `server::route`); 404 for any other path under its prefix.
pub(crate) fn route(r: &Req) -> Response<Body> {
    let Req { method, segs, path, raw_query, headers, .. } = r;
    match (method.as_str(), *segs) {
        // Not Jellyfin: the web client's entry page (jellyfin-web is served under /web/).
        ("GET" | "HEAD", ["web"] | ["web", "index.html"]) => respond(
            StatusCode::OK,
            "<!doctype html><html><head><title>Jellyfin</title></head><body><h1>Jellyfin Web Double</h1></body></html>",
            "text/html; charset=utf-8",
        ),
        // Not Jellyfin: an image to fetch (for `avatarUrlFormat` tests).
        ("GET", ["test", "avatar.png"]) => respond(StatusCode::OK, TEST_AVATAR, "image/png"),
        // Not Jellyfin: what the double received (method, path, uri, headers; repeated headers
        // joined with ", ").
        (_, ["echo", "headers"]) => {
            let mut h = Map::new();
            for (k, val) in headers.iter() {
                let val = String::from_utf8_lossy(val.as_bytes()).into_owned();
                match h.get_mut(k.as_str()) {
                    Some(Value::String(prev)) => {
                        prev.push_str(", ");
                        prev.push_str(&val);
                    }
                    _ => {
                        h.insert(k.as_str().to_string(), json!(val));
                    }
                }
            }
            let uri = if raw_query.is_empty() { path.to_string() } else { format!("{path}?{raw_query}") };
            json_resp(StatusCode::OK, &json!({"method": method.as_str(), "path": path, "uri": uri, "headers": h}))
        }
        _ => empty(StatusCode::NOT_FOUND),
    }
}

/// `/media/big.bin`: `media_size` bytes of `media_byte`, streamed in 64 KiB chunks (never held
/// whole). One range (`bytes=a-b`, `a-`, `-n`) → 206 with Content-Range; unsatisfiable → 416 with
/// `Content-Range: bytes */size`; `If-Range` compared with the strong ETag; several ranges are
/// answered with the whole file (allowed by RFC 9110).
fn media(req: &Request<Incoming>, size: u64) -> Response<Body> {
    let etag = format!("\"big-{size}\"");
    let mut range = req.headers().get("range").and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Some(ir) = req.headers().get("if-range").and_then(|v| v.to_str().ok()) {
        if ir.trim() != etag {
            range = None;
        }
    }
    let (start, end, status) = match range.as_deref().and_then(|r| r.trim().strip_prefix("bytes=")) {
        None => (0, size, StatusCode::OK),
        Some(spec) if spec.contains(',') => (0, size, StatusCode::OK),
        Some(spec) => {
            let (a, b) = spec.split_once('-').unwrap_or((spec, "x"));
            let parsed = match (a.trim(), b.trim()) {
                ("", n) => n.parse::<u64>().ok().filter(|n| *n > 0).map(|n| (size.saturating_sub(n), size)),
                (a, "") => a.parse::<u64>().ok().map(|a| (a, size)),
                (a, b) => match (a.parse::<u64>(), b.parse::<u64>()) {
                    (Ok(a), Ok(b)) if b >= a => Some((a, (b + 1).min(size))),
                    _ => None,
                },
            };
            match parsed {
                Some((s, e)) if s < e && s < size => (s, e, StatusCode::PARTIAL_CONTENT),
                _ => {
                    return Response::builder()
                        .status(StatusCode::RANGE_NOT_SATISFIABLE)
                        .header("content-range", format!("bytes */{size}"))
                        .header("accept-ranges", "bytes")
                        .body(full(Bytes::new()))
                        .unwrap()
                }
            }
        }
    };
    let mut b = Response::builder()
        .status(status)
        .header("content-type", "application/octet-stream")
        .header("accept-ranges", "bytes")
        .header("etag", &etag)
        .header("content-length", (end - start).to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        b = b.header("content-range", format!("bytes {start}-{}/{size}", end - 1));
    }
    if req.method() == Method::HEAD {
        return b.body(full(Bytes::new())).unwrap();
    }
    const CHUNK: u64 = 64 * 1024;
    let stream = futures_util::stream::unfold(start, move |pos| async move {
        if pos >= end {
            return None;
        }
        let n = CHUNK.min(end - pos);
        let chunk: Vec<u8> = (pos..pos + n).map(media_byte).collect();
        Some((Ok::<_, BoxError>(Frame::data(Bytes::from(chunk))), pos + n))
    });
    b.body(BodyExt::boxed(StreamBody::new(stream))).unwrap()
}

/// `/socket`: a websocket (hyper upgrade + tokio-tungstenite) that echoes text and binary
/// messages and answers a close with a close.
fn websocket(mut req: Request<Incoming>) -> Response<Body> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{handshake::derive_accept_key, protocol::Role, Message};
    let upgrade = req.headers().get("upgrade").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = req.headers().get("sec-websocket-key").cloned().filter(|_| upgrade) else { return empty(StatusCode::BAD_REQUEST) };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(msg)) = ws.next().await {
            if matches!(msg, Message::Text(_) | Message::Binary(_)) && ws.send(msg).await.is_err() {
                break;
            }
            // Close and ping: tungstenite queues the reply and flushes it on the next read,
            // which then ends the stream, so keep reading.
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
        .body(full(Bytes::new()))
        .unwrap()
}
