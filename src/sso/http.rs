//! Request bodies in and small responses out, for the `/sso/` handlers.
//!
//! Bodies are read with a hard size limit (413 above it, by `Content-Length` or while
//! reading); JSON and url-encoded forms are parsed here so handlers get typed values.
//! Responses built here are never cached (`Cache-Control: no-store`).

use std::collections::HashMap;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use super::error::SsoError;
use crate::body::{empty, full, Body};
use crate::jellyfin::DeviceInfo;

/// Largest JSON body accepted by the `/sso/` POST endpoints.
pub const MAX_JSON_BODY: usize = 16 * 1024;

/// The body of `req`, at most `limit` bytes.
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, SsoError> {
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(SsoError::TooLarge(limit));
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(SsoError::TooLarge(limit)),
        Err(e) => Err(SsoError::BadRequest(format!("the request body could not be read: {e}"))),
    }
}

/// A url-encoded form body of at most `limit` bytes.
pub async fn read_form(req: Request<Incoming>, limit: usize) -> Result<HashMap<String, String>, SsoError> {
    let bytes = read_body(req, limit).await?;
    Ok(url::form_urlencoded::parse(&bytes).into_owned().collect())
}

/// A JSON body of at most [`MAX_JSON_BODY`] bytes.
pub async fn read_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, SsoError> {
    let bytes = read_body(req, MAX_JSON_BODY).await.map_err(|e| match e {
        SsoError::TooLarge(_) => SsoError::BadRequest(format!("the request body is larger than {MAX_JSON_BODY} bytes or broken")),
        other => other,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| SsoError::BadRequest(format!("malformed JSON body: {e}")))
}

/// Is `?name=true` (any case) in the query?
pub fn query_flag(req: &Request<Incoming>, name: &str) -> bool {
    url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()).any(|(k, v)| k.eq_ignore_ascii_case(name) && v.eq_ignore_ascii_case("true"))
}

pub fn query_map(req: &Request<Incoming>) -> HashMap<String, String> {
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
