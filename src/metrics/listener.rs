//! The operator's listener (`metrics.listen`): plain HTTP/1.1, never the public port, three
//! answers and nothing else.
//!
//! - `GET /metrics`: the Prometheus exposition ([`Metrics::render`]), after the read-at-scrape
//!   gauges were sampled ([`Probes::sample`]).
//! - `GET /healthz`: `200 ok` as long as the process serves at all (a liveness probe: restart
//!   the proxy when it fails).
//! - `GET /readyz`: `200` when every check of [`Probes::ready`] passes (Jellyfin answers, the
//!   state backends answer), else `503`; JSON naming each check (a readiness probe: send no
//!   traffic while it fails).
//!
//! It knows nothing of Jellyfin or the state: what to check is handed in as [`Probes`] by the
//! composition root. Connections are few and short: at most [`MAX_CONNECTIONS`] at once,
//! each closed after [`CONNECTION_TIME`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::{Metrics, CONTENT_TYPE};

/// Connections served at once; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 32;
/// The longest one connection may stay open.
pub const CONNECTION_TIME: Duration = Duration::from_secs(30);

/// One readiness check's verdict.
#[derive(Debug, Clone)]
pub struct Check {
    /// A stable name: `jellyfin`, `durable`, `ephemeral`.
    pub name: &'static str,
    /// `None` when it passed, else a short reason for the operator.
    pub problem: Option<String>,
}

/// What the listener asks the rest of the proxy, at request time.
#[async_trait::async_trait]
pub trait Probes: Send + Sync {
    /// The readiness checks.
    async fn ready(&self) -> Vec<Check>;
    /// Set the gauges that are read rather than counted ([`Metrics::sample`]).
    async fn sample(&self, metrics: &Metrics);
}

/// Serve `listener` until `shutdown` completes.
pub async fn run(listener: TcpListener, metrics: Metrics, probes: Arc<dyn Probes>, shutdown: impl Future<Output = ()>) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
        };
        let tcp = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((t, _)) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (metrics, probes) = (metrics.clone(), probes.clone());
        conns.spawn(async move {
            let _permit = permit;
            let svc = service_fn(move |req| {
                let (metrics, probes) = (metrics.clone(), probes.clone());
                async move { Ok::<_, std::convert::Infallible>(answer(&req, &metrics, probes.as_ref()).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), svc);
            let _ = tokio::time::timeout(CONNECTION_TIME, conn).await;
        });
    }
    conns.shutdown().await;
}

async fn answer(req: &Request<hyper::body::Incoming>, metrics: &Metrics, probes: &dyn Probes) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain; charset=utf-8", "GET only\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            probes.sample(metrics).await;
            reply(StatusCode::OK, CONTENT_TYPE, metrics.render())
        }
        "/healthz" => reply(StatusCode::OK, "text/plain; charset=utf-8", "ok\n".into()),
        "/readyz" => {
            let checks = probes.ready().await;
            let ready = checks.iter().all(|c| c.problem.is_none());
            let map: serde_json::Map<String, serde_json::Value> =
                checks.iter().map(|c| (c.name.to_string(), c.problem.as_deref().map_or("ok".into(), |p| p.into()))).collect();
            let body = serde_json::json!({ "ready": ready, "checks": map });
            reply(if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, "application/json", format!("{body}\n"))
        }
        _ => reply(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "not found: /metrics, /healthz, /readyz\n".into()),
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    r.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    r
}
