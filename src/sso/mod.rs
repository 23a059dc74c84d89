//! The `/sso/` endpoints: the SSO plugin's HTTP API, served by the proxy.
//!
//! For now this is the health endpoint; the OIDC and SAML flows, the admin API and the
//! completion page are added as their own modules beside it.

pub mod error;
pub mod flows;
pub mod oidc;
pub mod identity;

use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::{full, Body};
use crate::config::Config;
use crate::pages;
use crate::proxy::Upstream;

pub struct Sso {
    config: Arc<Config>,
    upstream: Upstream,
}

impl Sso {
    pub fn new(config: Arc<Config>, upstream: Upstream) -> Sso {
        Sso { config, upstream }
    }

    pub async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        let path = req.uri().path().strip_prefix(self.config.public_url.base_path()).unwrap_or("");
        let rest = path.strip_prefix("/sso").unwrap_or("");
        match (req.method(), rest) {
            (&Method::GET | &Method::HEAD, "/health") => self.health().await,
            _ => pages::error_response(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing at this address.",
                pages::wants_json(req.headers()),
            ),
        }
    }

    /// `GET /sso/health`: 200 when the proxy is up and Jellyfin answers, 503 otherwise.
    async fn health(&self) -> Response<Body> {
        let probe = self.upstream.probe(Duration::from_secs(3)).await;
        let (jellyfin_ok, detail) = match &probe {
            Ok(s) if s.is_success() => (true, None),
            Ok(s) => (false, Some(format!("answered {s}"))),
            Err(e) => (false, Some(e.clone())),
        };
        let body = serde_json::json!({
            "proxy": "up",
            "jellyfin": if jellyfin_ok { "up" } else { "down" },
            "jellyfinUrl": self.upstream.display(),
            "detail": detail,
        });
        let mut r = Response::new(full(body.to_string()));
        *r.status_mut() = if jellyfin_ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}
