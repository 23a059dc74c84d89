//! The connection pool to Jellyfin: one origin, HTTP/1.1 connections kept open between requests.
//!
//! Why our own and not hyper-util's legacy `Client`: Jellyfin is a single origin and every
//! worker thread has its own [`Pool`], so a pool keyed by (scheme, authority) has nothing to
//! look up. The legacy client hashed that key with SipHash at each checkout and return and
//! spawned a task per response to give the connection back once it was ready again; profiled
//! at about 6,000 instructions per forwarded request (docs/benchmarks.md). Here the idle
//! connections are a stack behind an uncontended mutex (the most recently used first, the one
//! most likely still open), and a connection goes back when its response body has ended:
//! [`PooledBody`] sees the last frame, or its end without one.
//!
//! Rules:
//! - A request that fails on a reused connection before any of it was written (Jellyfin
//!   closed that idle connection meanwhile) goes to the next one, then to a new connection.
//!   Nothing else is retried: a request that was sent may have had its effect.
//! - At most `max_idle` connections are kept; those idle for `idle_timeout` are closed, by
//!   the next checkout or by a sweeper task that runs only while the pool holds any.
//! - A 101 answer's connection is never pooled: it belongs to the upgrade (websockets).

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::clock::coarse_ms;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use crate::body::BoxError;

/// A request body as forwarded: the client's, streaming, or bytes the proxy has read already.
pub type UpBody = Either<Incoming, Full<Bytes>>;

/// Why an exchange with Jellyfin produced no response.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// No connection could be made (refused, unreachable, TLS, connect timeout).
    #[error("cannot connect")]
    Connect(#[source] BoxError),
    /// The connection broke, or the request or response was malformed.
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

/// Jellyfin's connections for one worker. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    connector: HttpsConnector<HttpConnector>,
    /// `scheme://authority` of Jellyfin, what the connector dials.
    origin: Uri,
    max_idle: usize,
    idle_timeout: Duration,
    idle: Mutex<Idle>,
}

#[derive(Default)]
struct Idle {
    /// Oldest first; taken from and returned to the end.
    /// With when each was given back, on the coarse clock (ms): read twice per request, and
    /// only compared with a timeout of seconds.
    conns: Vec<(SendRequest<UpBody>, u64)>,
    sweeping: bool,
}

impl Pool {
    /// A pool dialling `origin` (`http://` or `https://`, web PKI roots) with TCP_NODELAY and
    /// `connect_timeout`.
    pub fn new(origin: Uri, connect_timeout: Duration, max_idle: usize, idle_timeout: Duration) -> Pool {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots().https_or_http().enable_http1().wrap_connector(http);
        Pool { inner: Arc::new(Inner { connector, origin, max_idle, idle_timeout, idle: Mutex::new(Idle::default()) }) }
    }

    /// Send `req` (origin-form URI, `Host` set) and return Jellyfin's response headers; the
    /// body streams, and its connection returns to the pool when the body has ended.
    pub async fn send(&self, mut req: Request<UpBody>) -> Result<Response<PooledBody>, PoolError> {
        while let Some(mut tx) = self.inner.take() {
            if tx.ready().await.is_err() {
                continue;
            }
            match tx.try_send_request(req).await {
                Ok(resp) => return Ok(self.wrap(resp, tx)),
                Err(mut e) => match e.take_message() {
                    // Never written: the connection was closed while idle. Try the next one.
                    Some(unsent) => req = unsent,
                    None => return Err(PoolError::Http(e.into_error())),
                },
            }
        }
        // Boxed: connecting is rare, and inline its future would make this one, which every
        // request moves a few times, more than twice the size (1,936 bytes against 904).
        let mut tx = Box::pin(self.connect()).await?;
        match tx.try_send_request(req).await {
            Ok(resp) => Ok(self.wrap(resp, tx)),
            Err(e) => Err(PoolError::Http(e.into_error())),
        }
    }

    /// How many idle connections are kept now.
    pub fn idle_count(&self) -> usize {
        self.inner.idle.lock().expect("pool lock").conns.len()
    }

    async fn connect(&self) -> Result<SendRequest<UpBody>, PoolError> {
        let mut connector = self.inner.connector.clone();
        poll_fn(|cx| connector.poll_ready(cx)).await.map_err(PoolError::Connect)?;
        let io = connector.call(self.inner.origin.clone()).await.map_err(PoolError::Connect)?;
        let (tx, conn) = http1::Builder::new().handshake(io).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended");
            }
        });
        Ok(tx)
    }

    fn wrap(&self, resp: Response<Incoming>, tx: SendRequest<UpBody>) -> Response<PooledBody> {
        let keep = resp.status() != StatusCode::SWITCHING_PROTOCOLS;
        let (parts, inner) = resp.into_parts();
        let mut body = PooledBody { inner, conn: keep.then(|| (tx, Arc::downgrade(&self.inner))) };
        if body.inner.is_end_stream() {
            body.release();
        }
        Response::from_parts(parts, body)
    }
}

impl Inner {
    /// The most recently returned idle connection that is still open, after closing the
    /// ones idle too long.
    fn take(&self) -> Option<SendRequest<UpBody>> {
        let mut idle = self.idle.lock().expect("pool lock");
        self.expire(&mut idle, coarse_ms());
        while let Some((tx, _)) = idle.conns.pop() {
            if !tx.is_closed() {
                return Some(tx);
            }
        }
        None
    }

    fn put(self: &Arc<Self>, tx: SendRequest<UpBody>) {
        if tx.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock");
        if idle.conns.len() >= self.max_idle {
            return;
        }
        if !idle.sweeping {
            // A body can be dropped where no runtime is (at shutdown): then nothing is kept.
            let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
            runtime.spawn(sweep(Arc::downgrade(self)));
            idle.sweeping = true;
        }
        idle.conns.push((tx, coarse_ms()));
    }

    fn expire(&self, idle: &mut Idle, now_ms: u64) {
        let fresh = idle.conns.iter().position(|(_, since)| Duration::from_millis(now_ms.saturating_sub(*since)) < self.idle_timeout).unwrap_or(idle.conns.len());
        idle.conns.drain(..fresh);
    }
}

/// Close connections idle too long while nothing else looks at the pool, each when its
/// `idle_timeout` is up; ends when the pool is empty.
async fn sweep(pool: Weak<Inner>) {
    let mut wait = match pool.upgrade() {
        Some(p) => p.idle_timeout,
        None => return,
    };
    loop {
        tokio::time::sleep(wait).await;
        let Some(p) = pool.upgrade() else { return };
        let mut idle = p.idle.lock().expect("pool lock");
        let now = coarse_ms();
        p.expire(&mut idle, now);
        idle.conns.retain(|(tx, _)| !tx.is_closed());
        // The oldest left is the next to expire.
        match idle.conns.first() {
            Some((_, since)) => wait = p.idle_timeout.saturating_sub(Duration::from_millis(now.saturating_sub(*since))),
            None => {
                idle.sweeping = false;
                return;
            }
        }
    }
}

/// Jellyfin's response body, which gives its connection back to the pool once it has ended.
/// Dropped before its end (the client went away), the connection is closed instead: what is
/// left of the response would be in the way of the next one.
pub struct PooledBody {
    inner: Incoming,
    conn: Option<(SendRequest<UpBody>, Weak<Inner>)>,
}

impl PooledBody {
    fn release(&mut self) {
        if let Some((tx, pool)) = self.conn.take() {
            if let Some(pool) = pool.upgrade() {
                pool.put(tx);
            }
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.release(),
            Poll::Ready(Some(Err(_))) => this.conn = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.release();
        }
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
