//! Request bodies in and small responses out, for the `/sso/` handlers.
//!
//! Bodies are read whole before a handler runs ([`buffer`]), with a hard size limit (413
//! above it, by `Content-Length` or while reading) and a deadline (408), so a stalled body
//! cannot hold a connection and no answer leaves an unread body behind. JSON and
//! url-encoded forms are parsed here so handlers get typed values.
//! Responses built here are never cached (`Cache-Control: no-store`).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;

use super::error::SsoError;
use crate::body::{empty, full, Body};
use crate::jellyfin::DeviceInfo;

/// Largest JSON body accepted by the `/sso/` POST endpoints.
pub const MAX_JSON_BODY: usize = 16 * 1024;
/// How much of a too-large body is still read (and thrown away) so the client sees the 413
/// instead of a reset stream (HTTP/2) or a broken pipe (HTTP/1.1).
const DRAIN_LIMIT: usize = 2 * 1024 * 1024;

/// A request to the proxy's own endpoints, its body already read (bounded, with a deadline).
pub type SsoRequest = Request<Bytes>;

/// Read the whole body of `req` (at most `limit` bytes, within `deadline`), so a handler can
/// answer without leaving an unread body behind; HTTP/2 clients otherwise see a stream
/// error instead of the answer. Too large → 413 (after draining what is reasonable); too
/// slow → 408; broken → 400.
pub async fn buffer(req: Request<Incoming>, limit: usize, deadline: Duration) -> Result<SsoRequest, SsoError> {
    let (parts, mut body) = req.into_parts();
    let declared = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > (limit + DRAIN_LIMIT) as u64) {
        return Err(SsoError::TooLarge(limit));
    }
    let read = async {
        let mut buf = Vec::new();
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| SsoError::BadRequest(format!("the request body could not be read: {e}")))?;
            if let Ok(data) = frame.into_data() {
                seen += data.len();
                if seen > limit + DRAIN_LIMIT {
                    break;
                }
                if seen <= limit {
                    buf.extend_from_slice(&data);
                }
            }
        }
        if seen > limit {
            return Err(SsoError::TooLarge(limit));
        }
        Ok(Bytes::from(buf))
    };
    let bytes = tokio::time::timeout(deadline, read).await.map_err(|_| SsoError::BodyTimeout(deadline))??;
    Ok(Request::from_parts(parts, bytes))
}

/// A url-encoded form body.
pub async fn read_form(req: SsoRequest, limit: usize) -> Result<HashMap<String, String>, SsoError> {
    if req.body().len() > limit {
        return Err(SsoError::TooLarge(limit));
    }
    Ok(url::form_urlencoded::parse(req.body()).into_owned().collect())
}

/// A JSON body of at most [`MAX_JSON_BODY`] bytes.
pub async fn read_json<T: serde::de::DeserializeOwned>(req: SsoRequest) -> Result<T, SsoError> {
    if req.body().len() > MAX_JSON_BODY {
        return Err(SsoError::BadRequest(format!("the request body is larger than {MAX_JSON_BODY} bytes or broken")));
    }
    serde_json::from_slice(req.body()).map_err(|e| SsoError::BadRequest(format!("malformed JSON body: {e}")))
}

/// Is `?name=true` (any case) in the query?
pub fn query_flag<B>(req: &Request<B>, name: &str) -> bool {
    url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).any(|(k, v)| k.eq_ignore_ascii_case(name) && v.eq_ignore_ascii_case("true"))
}

pub fn query_map<B>(req: &Request<B>) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).into_owned().collect()
}

/// `302 Found` to `location` (a URL the proxy built, never one from the request).
pub fn redirect(location: &str) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::FOUND;
    r.headers_mut().insert(LOCATION, HeaderValue::from_str(location).expect("URL is header-safe"));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub fn json_ok(value: &impl serde::Serialize) -> Response<Body> {
    json_response(StatusCode::OK, serde_json::to_vec(value).expect("JSON values serialize"))
}

/// What the completion page posts to `Auth` and `Link`: the device and the one-time handle.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthBody {
    device_id: String,
    #[serde(default)]
    device_name: String,
    #[serde(default)]
    app_name: String,
    #[serde(default)]
    app_version: String,
    pub data: String,
}

impl AuthBody {
    pub fn device(&self) -> Result<DeviceInfo, SsoError> {
        let clean = |s: &str, field: &str, default: &str| -> Result<String, SsoError> {
            let s = s.trim();
            let s = if s.is_empty() { default } else { s };
            if s.is_empty() || s.len() > 256 || s.chars().any(char::is_control) {
                return Err(SsoError::BadRequest(format!("field `{field}` is missing or malformed")));
            }
            Ok(s.to_string())
        };
        Ok(DeviceInfo {
            device_id: clean(&self.device_id, "deviceId", "")?,
            device: clean(&self.device_name, "deviceName", "Web Browser")?,
            client: clean(&self.app_name, "appName", "Jellyfin Web")?,
            version: clean(&self.app_version, "appVersion", "0.0.0")?,
        })
    }
}
