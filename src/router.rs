//! The one service every connection runs. It builds the request's [`RequestContext`] once,
//! parses the proxy's own routes once ([`SsoRoute`]), and sends `/sso/*` to the SSO
//! endpoints and everything else to Jellyfin (legacy credentials translated when configured,
//! the session injected, the login page's answers changed by [`crate::branding`]). It
//! answers `/sso/health` itself (it owns the upstream) and writes the access-log line, one
//! per request, from the request as the client sent it with secrets redacted, the request
//! id, and the error reason when there was one.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::body::Body;
use crate::config::{Config, LegacyAuth};
use crate::context::RequestContext;
use crate::audit::{self, Origin};
use crate::error::{self, ErrorNote};
use crate::health::JellyfinProbe;
use crate::logging::InRequest;
use crate::metrics::{Metrics, MethodLabel, RouteClass};
use crate::jellyfin::credentials::translate_legacy;
use crate::proxy::{headers::redacted_path, Upstream};
use crate::sso::http::json_response;
use crate::sso::password_login::Intercept;
use crate::sso::{Sso, SsoRoute};

/// Everything a request may need, shared by the connections of one worker.
pub struct App {
    pub upstream: Upstream,
    pub sso: Arc<Sso>,
    /// The metrics the SSO side was given (off unless `metrics.listen` is set).
    pub metrics: Metrics,
    health: JellyfinProbe,
}

impl App {
    /// The application for one worker: its own pool of connections to Jellyfin (`upstream`),
    /// the shared SSO side (which holds the configuration in service). Requests, connections
    /// and the upstream are counted in the metrics the SSO side reports to (`sso.obs`), so
    /// there is one set for the process.
    pub fn new(upstream: Upstream, sso: Arc<Sso>) -> App {
        let metrics = sso.obs.metrics.clone();
        let upstream = upstream.observed(metrics.clone());
        App { health: JellyfinProbe::new(upstream.clone()), upstream, sso, metrics }
    }

    /// The configuration in service now; a reload replaces it between two reads, so a
    /// request reads it once where it needs several settings together.
    pub fn config(&self) -> arc_swap::Guard<Arc<Config>> {
        self.sso.config()
    }

    /// `GET /sso/health`: 200 when the proxy is up and Jellyfin answers, 503 otherwise.
    /// Anonymous callers learn only up/down; the reason goes to the log.
    async fn health(&self) -> Response<Body> {
        let up = self.health.up().await;
        let body = serde_json::json!({ "proxy": "up", "jellyfin": if up { "up" } else { "down" } });
        json_response(if up { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body.to_string().into_bytes())
    }
}

/// A response answered with a browser's injected token: no shared cache may keep it, and no
/// cache may give it to a request with other cookies. `no-store` and `private` are kept;
/// anything else (e.g. `public, max-age=…`) becomes `private`, keeping the max-age.
fn mark_private(h: &mut http::HeaderMap) {
    use http::header::{HeaderValue, CACHE_CONTROL, VARY};
    let current = h.get(CACHE_CONTROL).and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if !(current.contains("no-store") || current.contains("private")) {
        let rest: Vec<&str> = current.split(',').map(str::trim).filter(|d| !d.is_empty() && *d != "public").collect();
        let value = std::iter::once("private").chain(rest).collect::<Vec<_>>().join(", ");
        h.insert(CACHE_CONTROL, HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("private")));
    }
    h.append(VARY, HeaderValue::from_static("Cookie"));
}

/// Handle one request from `peer`. Never fails: errors become responses here.
pub async fn handle(app: Arc<App>, req: Request<Incoming>, peer: SocketAddr) -> Result<Response<Body>, Infallible> {
    let ctx = RequestContext::new(req.headers(), peer, &app.config().trusted_proxies);
    // Every line written while this request is handled, the access line included, carries its id.
    let id = ctx.id;
    // With an audit log, its events know which request and client they belong to.
    if app.sso.obs.audit.enabled() {
        let origin = Origin { request_id: id.to_string(), client: ctx.client_ip };
        // Boxed: a task-local scope doubles the future, and only this branch needs it.
        return Ok(Box::pin(InRequest::new(id, audit::with_origin(origin, serve(app, req, ctx)))).await);
    }
    Ok(InRequest::new(id, serve(app, req, ctx)).await)
}

async fn serve(app: Arc<App>, mut req: Request<Incoming>, ctx: RequestContext) -> Response<Body> {
    let start = Instant::now();
    let method = req.method().clone();
    let version = req.version();
    // The redacted path is only built when an access line will be written.
    let log_all = tracing::enabled!(target: "access", tracing::Level::INFO);
    let mut path = log_all.then(|| redacted_path(req.uri()));
    let uri = req.uri().clone();

    let route = SsoRoute::parse(&method, uri.path(), app.config().public_url.base_path());
    // The browser session, fetched once on first use by the checks below.
    let session = app.sso.sessions.lookup(&ctx.cookies);
    // A browser whose provider sign-out is still due goes through /sso/logout first.
    // The session checks are boxed, and skipped without a session cookie: they can only act
    // on a session, and their futures would otherwise be part of every request's (which is
    // moved a few times per request: its size is a cost of every forwarded request).
    let pending = match &route {
        Some(SsoRoute::Logout | SsoRoute::Health) => None,
        _ if !session.has_cookie() => None,
        _ => Box::pin(app.sso.pending_provider_logout(&method, req.headers(), &session)).await,
    };
    let class = if pending.is_some() || route.is_some() { RouteClass::Sso } else { RouteClass::Forwarded };
    let resp = match (pending, route) {
        (Some(r), _) => r,
        (None, Some(route)) => {
            let mut resp = match route {
                SsoRoute::Health => Box::pin(app.health()).await,
                SsoRoute::LinkingPage => app.sso.linking_page(),
                // Boxed, here and on the other rare branches: the future of `serve` is moved a
                // few times per request, so it must not be as large as the largest handler.
                route => Box::pin(app.sso.handle(route, req, &ctx)).await,
            };
            crate::pages::secure_headers(resp.headers_mut());
            resp
        }
        (None, None) => {
            if app.config().jellyfin.legacy_auth == LegacyAuth::Translate {
                let mut target = req.uri().clone();
                if translate_legacy(req.headers_mut(), &mut target) {
                    *req.uri_mut() = target;
                }
            }
            // The web client signing out with this browser's minted token: forwarded
            // untouched, Jellyfin's answer passed back unchanged, the proxy's side ended after.
            let (signing_out, injected) = if session.has_cookie() {
                let signing_out = Box::pin(app.sso.web_client_signing_out(&method, &uri, req.headers(), &session)).await;
                (signing_out, Box::pin(session.inject(&method, req.headers_mut(), &uri)).await)
            } else {
                (None, false)
            };
            // Jellyfin's password endpoints pass the SSO side first (app passwords, policy, guard).
            let mut resp = match app.sso.intercept_password(req, &ctx).await {
                // Boxed too: inline, the forwarding future would be copied at each of the
                // few moves of this one (callgrind: most of the proxy's memcpy per request).
                Intercept::Forward(req) => Box::pin(crate::branding::forward(&app, req, &ctx)).await,
                Intercept::Answer(r) => r,
                Intercept::Buffered { parts, body, attempt } => {
                    Box::pin(async {
                        let r = app.upstream.forward_bytes(parts, body, &ctx).await;
                        app.sso.password_outcome(attempt, r.as_ref().ok().map(|r| r.status())).await;
                        r.unwrap_or_else(|e| error::respond_as(&e, ctx.wants_json))
                    })
                    .await
                }
            };
            if let Some(session) = signing_out.filter(|_| resp.status().is_success()) {
                Box::pin(app.sso.web_client_signed_out(&ctx, session)).await;
            }
            if injected {
                mark_private(resp.headers_mut());
            }
            resp
        }
    };

    let status = resp.status().as_u16();
    // The clock is read again only for the metrics or a log line.
    if app.metrics.enabled() {
        app.metrics.request(class, MethodLabel::of(&method), status, start.elapsed());
    }
    let ms = || start.elapsed().as_secs_f64() * 1000.0;
    let peer = ctx.peer;
    match resp.extensions().get::<ErrorNote>() {
        Some(ErrorNote(reason)) => {
            let path = path.get_or_insert_with(|| redacted_path(&uri));
            tracing::warn!(target: "access", %peer, %method, path, ?version, status, ms = ms(), error = %reason, "request failed")
        }
        None if log_all => tracing::info!(target: "access", %peer, %method, path = path.as_deref().unwrap_or(""), ?version, status, ms = ms(), "request"),
        None => {}
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_answers_are_private_to_the_browser() {
        for (before, after) in [(None, "private"), (Some("public, max-age=3600"), "private, max-age=3600"), (Some("no-store"), "no-store"), (Some("private"), "private")] {
            let mut h = http::HeaderMap::new();
            if let Some(b) = before {
                h.insert(http::header::CACHE_CONTROL, b.parse().unwrap());
            }
            mark_private(&mut h);
            assert_eq!(h[http::header::CACHE_CONTROL], after);
            assert_eq!(h[http::header::VARY], "Cookie");
        }
    }
}
