//! The one service every connection runs: `/sso/*` goes to the SSO endpoints, everything
//! else is forwarded to Jellyfin. It also writes the access log line, one per request,
//! with secrets redacted and the error reason attached when there was one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response};
use hyper::body::Incoming;

use crate::body::Body;
use crate::config::Config;
use crate::error::{self, ErrorNote};
use crate::pages;
use crate::proxy::{headers::redacted_path, Upstream};
use crate::sso::Sso;
use crate::store::{Store, StoreError};

/// Everything a request may need, shared by all connections.
pub struct App {
    pub config: Arc<Config>,
    pub upstream: Upstream,
    pub sso: Arc<Sso>,
}

impl App {
    /// Build the shared state: upstream pool, persisted state, SSO machinery. Must be called
    /// inside a tokio runtime (it starts the sweeper of expired logins and sessions).
    pub fn new(config: Arc<Config>) -> Result<App, StoreError> {
        let upstream = Upstream::new(&config.jellyfin.url, config.limits.upstream_connect_timeout, config.limits.upstream_header_timeout);
        let store = Arc::new(Store::open(&config.state_dir)?);
        let sso = Arc::new(Sso::new(config.clone(), upstream.clone(), store));
        tokio::spawn(sso.clone().sweep_forever());
        Ok(App { config, upstream, sso })
    }

    /// The same application with its own pool of connections to Jellyfin, for a worker
    /// thread: each worker's requests then use connections driven by that worker.
    pub fn for_worker(&self) -> App {
        let limits = &self.config.limits;
        App {
            config: self.config.clone(),
            upstream: Upstream::new(&self.config.jellyfin.url, limits.upstream_connect_timeout, limits.upstream_header_timeout),
            sso: self.sso.clone(),
        }
    }

    fn peer_trusted(&self, peer: &SocketAddr) -> bool {
        self.config.trusted_proxies.iter().any(|n| n.contains(&peer.ip()))
    }

    /// Is `path` under `{base}/sso/`?
    fn is_sso(&self, path: &str) -> bool {
        let base = self.config.public_url.base_path();
        path.strip_prefix(base).is_some_and(|rest| rest == "/sso" || rest.starts_with("/sso/"))
    }

    /// The plugin's self-service page, kept at its old path.
    fn is_linking_page(&self, path: &str) -> bool {
        path.strip_prefix(self.config.public_url.base_path()).is_some_and(|rest| rest.eq_ignore_ascii_case("/SSOViews/linking"))
    }
}

/// Handle one request from `peer`. Never fails: errors become responses here.
pub async fn handle(app: Arc<App>, mut req: Request<Incoming>, peer: SocketAddr) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let method = req.method().clone();
    let version = req.version();
    // The redacted path is only built when an access line will be written.
    let log_all = tracing::enabled!(target: "access", tracing::Level::INFO);
    let mut path = log_all.then(|| redacted_path(req.uri()));
    let uri = req.uri().clone();

    let resp = if app.is_linking_page(uri.path()) {
        crate::sso::linking_page::page(app.config.public_url.base_path())
    } else if app.is_sso(uri.path()) {
        app.sso.handle(req).await
    } else {
        // Only the format of a possible error page is needed from the request headers.
        let json = pages::wants_json(req.headers());
        app.sso.sessions.inject(&method, req.headers_mut(), &uri);
        match app.upstream.forward(req, peer, app.peer_trusted(&peer)).await {
            Ok(r) => r,
            Err(e) => error::respond_as(&e, json),
        }
    };

    let status = resp.status().as_u16();
    let ms = start.elapsed().as_secs_f64() * 1000.0;
    match resp.extensions().get::<ErrorNote>() {
        Some(ErrorNote(reason)) => {
            let path = path.get_or_insert_with(|| redacted_path(&uri));
            tracing::warn!(target: "access", %peer, %method, path, ?version, status, ms, error = %reason, "request failed")
        }
        None if log_all => tracing::info!(target: "access", %peer, %method, path = path.as_deref().unwrap_or(""), ?version, status, ms, "request"),
        None => {}
    }
    Ok(resp)
}
