//! Errors at each boundary, and the one place that turns an error into an HTTP response.
//!
//! Each boundary has its own `thiserror` enum ([`ProxyError`] for forwarding; the Jellyfin
//! client and SSO flows add theirs). Every enum implements [`HttpError`], which says which
//! status follows from where the error came from (upstream → 502/504, client → 4xx, us →
//! 500) and what a person may be told. [`respond`] renders that as a page or JSON and
//! attaches the reason to the response, so the access log line carries it: one log line per
//! failed request, never a panic.

use std::time::Duration;

use http::{HeaderMap, Response, StatusCode};

use crate::body::Body;
use crate::pages;

/// What the rest of the crate needs to know to answer for an error.
pub trait HttpError: std::error::Error {
    fn status(&self) -> StatusCode;
    /// A short title for the page, safe to show anyone.
    fn title(&self) -> &'static str;
    /// A sentence for the person reading the page; never secrets or internal detail.
    fn public_message(&self) -> String;
    /// For 429 and 503: when to try again (sent as `Retry-After`).
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

/// The reason a response is an error, carried in the response extensions to the access log.
#[derive(Debug, Clone)]
pub struct ErrorNote(pub String);

/// Render `err` for the client whose request had `headers`, and attach the log reason.
pub fn respond(err: &dyn HttpError, request_headers: &HeaderMap) -> Response<Body> {
    respond_as(err, pages::wants_json(request_headers))
}

/// Render `err` as JSON (API clients) or an HTML page (browsers), with the log reason attached.
pub fn respond_as(err: &dyn HttpError, json: bool) -> Response<Body> {
    let mut resp = pages::error_response(err.status(), err.title(), &err.public_message(), json);
    if let Some(after) = err.retry_after() {
        resp.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(after.as_secs().max(1)));
    }
    resp.extensions_mut().insert(ErrorNote(error_chain(err)));
    resp
}

/// `err: source: source…`, for logs.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let next = e.to_string();
        if !s.contains(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        cur = e.source();
    }
    s
}

/// Forwarding to Jellyfin failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("Jellyfin at {upstream} is unreachable")]
    Unreachable { upstream: String, source: crate::proxy::pool::PoolError },
    #[error("Jellyfin at {upstream} did not send response headers within {timeout:?}")]
    Timeout { upstream: String, timeout: Duration },
    #[error("Jellyfin at {upstream} broke the exchange")]
    Upstream { upstream: String, source: crate::proxy::pool::PoolError },
    #[error("cannot forward this request: {0}")]
    BadRequest(String),
    #[error("method {0} is not forwarded")]
    MethodNotAllowed(&'static str),
    #[error("Jellyfin at {upstream} switched protocols for a request that did not ask to")]
    UnexpectedUpgrade { upstream: String },
}

impl HttpError for ProxyError {
    fn status(&self) -> StatusCode {
        match self {
            ProxyError::Unreachable { .. } | ProxyError::Upstream { .. } | ProxyError::UnexpectedUpgrade { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }
    fn title(&self) -> &'static str {
        match self {
            ProxyError::Unreachable { .. } => "Jellyfin is not reachable",
            ProxyError::Timeout { .. } => "Jellyfin is taking too long",
            ProxyError::Upstream { .. } | ProxyError::UnexpectedUpgrade { .. } => "Jellyfin answered badly",
            ProxyError::MethodNotAllowed(_) => "Method not allowed",
            ProxyError::BadRequest(_) => "Bad request",
        }
    }
    fn public_message(&self) -> String {
        match self {
            ProxyError::Unreachable { .. } => "The media server is not answering right now. It may be restarting; try again in a minute.".into(),
            ProxyError::Timeout { .. } => "The media server did not answer in time. Try again in a moment.".into(),
            ProxyError::Upstream { .. } | ProxyError::UnexpectedUpgrade { .. } => "The connection to the media server broke. Try again in a moment.".into(),
            ProxyError::MethodNotAllowed(m) => format!("{m} requests are not accepted here."),
            ProxyError::BadRequest(m) => m.clone(),
        }
    }
}
