//! Listeners and connections: TLS accept with a handshake timeout, a cap on concurrent
//! connections, HTTP/2 and HTTP/1.1 (with upgrades), and graceful shutdown. What happens on
//! one connection after its handshake (the idle watchdog, parking idle HTTP/1.1 connections so
//! they hold next to no memory) is `conn`, and what it watches of the connection, `activity`.
//!
//! [`run`] takes an already bound listener and a shutdown future, so tests bind port 0 and
//! stop the server cleanly. On shutdown it stops accepting, asks every connection to finish
//! its in-flight requests, and waits up to the grace period before dropping the rest.

mod activity;
mod alarm;
mod conn;
mod tls_stream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Response, StatusCode};
use rustls::ServerConfig;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::body::empty;
use crate::config::{Limits, PublicUrl};
use crate::metrics::TlsFailure;
use crate::router::{self, App};
use activity::{Shared, Tracked, Watch};

/// Serve HTTPS on `listener` until `shutdown` completes, then drain within the grace period.
pub async fn run(listener: TcpListener, app: Arc<App>, tls: Arc<ServerConfig>, shutdown: impl Future<Output = ()>) {
    let permits = Arc::new(Semaphore::new(app.config().limits.max_connections));
    run_with_permits(listener, app, tls, permits, shutdown).await
}

/// [`run`], with the connection limit shared with other accept loops (one per worker thread).
pub async fn run_with_permits(listener: TcpListener, app: Arc<App>, tls: Arc<ServerConfig>, permits: Arc<Semaphore>, shutdown: impl Future<Output = ()>) {
    // The limits of the configuration in service, re-read when a reload replaced it: new
    // connections get the new limits, open ones keep theirs.
    let mut config: Arc<crate::config::Config> = Arc::clone(&*app.config());
    let mut builder = http_builder(&config.limits);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);

    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            p = permits.clone().acquire_owned() => p.expect("semaphore never closed"),
        };
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        {
            let now = app.config();
            if !Arc::ptr_eq(&*now, &config) {
                config = Arc::clone(&*now);
                builder = http_builder(&config.limits);
            }
        }
        let counted = crate::resources::connection_opened();
        let open = app.metrics.connection();
        // The handshake and set-up run in a box of their own, freed when serving starts, and
        // the serving future is boxed too: the task's allocation, which lives as long as the
        // connection, holds only the permit, the two guards and a pointer, and what an idle
        // connection keeps is the size of serving's state, not of the handshake's
        // (docs/benchmarks.md, idle connections).
        let setup = Box::pin(connection(tcp, peer, app.clone(), tls.clone(), builder.clone(), stop_rx.clone(), config.limits.clone()));
        conns.spawn(async move {
            let _guards = (permit, counted, open);
            if let Some(serving) = setup.await {
                serving.await;
            }
        });
    }

    drop(listener);
    let open = conns.len();
    let grace = app.config().limits.shutdown_grace;
    tracing::info!(open, ?grace, "shutting down: no new connections, finishing in-flight requests");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(left = conns.len(), "grace period over: closing remaining connections");
        conns.shutdown().await;
    }
}

/// A connection's serving, as the spawned task awaits it.
type Serving = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// The TLS handshake (within its timeout) and what serving the connection needs; `None` when
/// the handshake failed.
async fn connection(tcp: tokio::net::TcpStream, peer: SocketAddr, app: Arc<App>, tls: Arc<ServerConfig>, builder: Builders, stop_rx: watch::Receiver<bool>, limits: Limits) -> Option<Serving> {
    let stream = match tokio::time::timeout(limits.tls_handshake_timeout, tls_stream::accept(tcp, tls)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            app.metrics.tls_failed(TlsFailure::of(&e));
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return None;
        }
        Err(_) => {
            app.metrics.tls_failed(TlsFailure::Timeout);
            tracing::debug!(%peer, "TLS handshake timed out");
            return None;
        }
    };
    let alpn = stream.alpn_protocol();
    let (h1, h2) = (alpn == Some(b"http/1.1"), alpn == Some(b"h2"));
    let watch = Watch { idle: limits.idle_timeout, dead: limits.idle_timeout.max(limits.upstream_header_timeout) + DEAD_GRACE, header: limits.header_read_timeout, h2 };
    let shared = Shared::new();
    let counted = shared.clone();
    let svc = service_fn(move |req| {
        let guard = counted.start();
        let app = app.clone();
        // Boxed: hyper keeps a slot the size of the service's future in every
        // connection; a box makes that slot a pointer, and the request's future exists
        // only while the request does (docs/benchmarks.md, idle connections). The
        // router's future gets its own box, made on the first poll, so what hyper moves
        // here is small. The request stays counted until its response body is done.
        Box::pin(async move {
            let r = Box::pin(router::handle(app, req, peer)).await;
            r.map(|resp| resp.map(|body| Tracked::new(body, guard)))
        })
    });
    let stream = Box::new(stream);
    let Builders { auto, h1: h1_builder } = builder;
    Some(if h1 {
        drop(auto);
        Box::pin(conn::serve_h1(h1_builder, stream, svc, stop_rx, watch, shared))
    } else {
        drop(h1_builder);
        Box::pin(conn::serve_auto(auto, stream, svc, stop_rx, watch, shared))
    })
}

/// The HTTP settings of one configuration: HTTP/1.1 by ALPN is served by hyper's own
/// builder (so idle connections can be parked), HTTP/2 and connections without ALPN by
/// hyper-util's auto builder with the same HTTP/1.1 settings.
#[derive(Clone)]
struct Builders {
    auto: auto::Builder<TokioExecutor>,
    h1: http1::Builder,
}

fn http_builder(limits: &Limits) -> Builders {
    let mut b = auto::Builder::new(TokioExecutor::new());
    // HTTP/1.1's header deadline is the connection watchdog's (`conn::Watch::header`), not hyper's.
    b.http1()
        .header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.max(8192))
        // Flatten head and body into one buffer: with TLS, separate writes become separate
        // records, which costs small responses (docs/benchmarks.md).
        .writev(false)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(250)
        // Pings at least twice per idle period: a dead peer is noticed, and (since the idle
        // watchdog counts requests, not bytes, on HTTP/2) pings never keep a connection open.
        .keep_alive_interval(Some((limits.idle_timeout / 2).clamp(Duration::from_millis(250), Duration::from_secs(30))))
        .keep_alive_timeout(Duration::from_secs(20));
    let mut h1 = http1::Builder::new();
    h1.header_read_timeout(None)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .writev(false)
        .keep_alive(true);
    Builders { auto: b, h1 }
}

/// Added to the longest legitimate silence (idle or waiting for Jellyfin) before a
/// connection where nothing moves at all is dropped.
const DEAD_GRACE: Duration = Duration::from_secs(5);

/// Serve the optional plain-HTTP listener: every request gets 308 to the same path on
/// `public_url`'s origin (never to a host taken from the request).
pub async fn run_redirect(listener: TcpListener, public: PublicUrl, shutdown: impl Future<Output = ()>) {
    let origin = Arc::new(public.origin());
    let builder = hyper::server::conn::http1::Builder::new();
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            r = listener.accept() => match r { Ok((t, _)) => t, Err(_) => continue },
        };
        let origin = origin.clone();
        let builder = builder.clone();
        conns.spawn(async move {
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let origin = origin.clone();
                async move {
                    let pq = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
                    let location = format!("{origin}{pq}");
                    let mut r = Response::new(empty());
                    *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
                    if let Ok(v) = http::HeaderValue::from_str(&location) {
                        r.headers_mut().insert(http::header::LOCATION, v);
                    }
                    Ok::<_, std::convert::Infallible>(r)
                }
            });
            let _ = tokio::time::timeout(Duration::from_secs(60), builder.serve_connection(TokioIo::new(tcp), svc)).await;
        });
    }
    conns.shutdown().await;
}

/// Bind a listener with SO_REUSEADDR, as servers do, so a restart does not wait on TIME_WAIT.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    bind_with(addr, false)
}

/// `n` listeners on the same address with SO_REUSEPORT, one per worker thread: the kernel
/// spreads new connections over them. Returned as std listeners, to be registered with each
/// worker's own runtime.
///
/// SO_REUSEPORT alone would let a second copy of the proxy (same user) share the port and
/// silently take half the connections. So the first socket is bound *without* it (in use by
/// anyone, that fails as a plain bind does) and only then marked reusable, before it listens:
/// the others join its group, while any later socket that does not do the same (a second
/// proxy's first socket included) is refused with "address in use". There is no moment at
/// which the port is free. Port 0 resolves to one port for all.
pub fn bind_shared(addr: SocketAddr, n: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let first = new_socket(addr)?;
    first.bind(addr)?;
    let addr = first.local_addr()?;
    first.set_reuseport(true)?;
    let mut listeners = vec![first.listen(1024)?.into_std()?];
    for _ in 1..n.max(1) {
        listeners.push(bind_with(addr, true)?.into_std()?);
    }
    Ok(listeners)
}

fn new_socket(addr: SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    Ok(socket)
}

fn bind_with(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = new_socket(addr)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_shared_port_is_exclusive_to_its_group() {
        let group = bind_shared("127.0.0.1:0".parse().unwrap(), 2).unwrap();
        let addr = group[0].local_addr().unwrap();
        assert_eq!(group[1].local_addr().unwrap(), addr);
        // A second copy of the proxy (same user, same scheme) and a plain server are refused.
        assert_eq!(bind_shared(addr, 2).unwrap_err().kind(), std::io::ErrorKind::AddrInUse);
        assert_eq!(bind(addr).unwrap_err().kind(), std::io::ErrorKind::AddrInUse);
        // Both sockets of the group take connections.
        let mut accepted = [0; 2];
        for l in &group {
            l.set_nonblocking(true).unwrap();
        }
        for _ in 0..32 {
            let _c = std::net::TcpStream::connect(addr).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(2));
            for (i, l) in group.iter().enumerate() {
                if l.accept().is_ok() {
                    accepted[i] += 1;
                }
            }
        }
        assert_eq!(accepted[0] + accepted[1], 32, "{accepted:?}");
        assert!(accepted[0] > 0 && accepted[1] > 0, "the kernel spreads connections: {accepted:?}");
    }
}
