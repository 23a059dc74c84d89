//! One client connection after its TLS handshake: the idle watchdog (by requests, so HTTP/2
//! pings do not keep a connection open, and by bytes, so a stalled body cannot hold a slot
//! forever), and parking of idle HTTP/1.1 keep-alive connections.
//!
//! Parking: hyper keeps an 8 KiB read buffer, an 8 KiB write buffer, its dispatcher and the
//! service's slot for as long as a connection lives, idle or not, which is most of what an idle
//! connection costs (docs/benchmarks.md, "Idle connections"). So an HTTP/1.1 connection with no
//! request in flight and no byte moved for [`PARK_AFTER`] asks hyper to close, with the close
//! of the TLS stream swallowed, takes the stream and any bytes hyper read ahead back
//! (`into_parts`), frees everything else, and waits for the client's next byte with only the
//! TLS stream; that byte and the rest are then served by a new hyper connection. Parking only
//! happens when hyper is between messages (it has served a request, and must finish closing in
//! the very poll after being asked, without moving a byte); otherwise the connection just closes after the exchange
//! in progress, as a graceful close would. A busy connection never parks, so the hot path
//! pays nothing but a timer tick a second.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::activity::{IdleIo, Shared, Tracked, Watch, ARMED, PARK_AFTER, RUNNING, SWALLOWED};
use super::alarm::{Alarm, Alarms};

/// Drive one connection through hyper-util's auto builder (HTTP/2, or HTTP/1.1 without ALPN);
/// on shutdown or when [`Watch`] says it is idle, ask it to close gracefully (in-flight
/// requests and streaming responses still complete); when it is dead, drop it.
pub(super) async fn serve_auto<I, S>(builder: auto::Builder<TokioExecutor>, io: I, svc: S, stop: watch::Receiver<bool>, watch: Watch, shared: Arc<Shared>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<Tracked>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(IdleIo::new(io, shared.clone())), svc);
    tokio::pin!(conn);
    let mut closing = false;
    let mut alarms = Alarms::new(watch.tick(), stop);
    while let Some(alarm) = next_alarm(conn.as_mut(), &mut alarms).await {
        match alarm {
            Alarm::Stop => {}
            Alarm::Tick if shared.must_drop(&watch) => return,
            Alarm::Tick if shared.quiet_for(watch.idle) && (watch.h2 || shared.bytes_idle() >= watch.idle) => {}
            Alarm::Tick => continue,
        }
        if !closing {
            closing = true;
            conn.as_mut().graceful_shutdown();
        }
    }
}

/// Drive a serving connection until its next alarm; `None` once it has ended (an error is
/// logged). The connection is polled first, so a ready request is never held up by a tick.
async fn next_alarm<F, E>(mut conn: Pin<&mut F>, alarms: &mut Alarms) -> Option<Alarm>
where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::select! {
        biased;
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with error");
            }
            None
        }
        a = alarms.next() => Some(a),
    }
}

enum Event<R> {
    Done(R),
    Alarm(Alarm),
}

/// Drive one HTTP/1.1 connection (ALPN `http/1.1`) with the same watchdog as [`serve_auto`],
/// parking it whenever it is idle between messages (module documentation).
pub(super) async fn serve_h1<I, S>(builder: http1::Builder, io: I, mut svc: S, stop: watch::Receiver<bool>, watch: Watch, shared: Arc<Shared>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<Tracked>, Error = Infallible> + Unpin + Send + 'static,
    S::Future: Send + 'static,
{
    let mut io = IdleIo::new(io, shared.clone());
    loop {
        // A hyper connection is between messages only once it has served one; before that
        // (woken by a byte, or replaying a head begun before the park) it can only be closed
        // by the header deadline, for a client that never completes its request.
        let served_before = shared.started.load(Ordering::Relaxed);
        // Serving: hyper holds the connection.
        let mut conn = Box::pin(builder.serve_connection(TokioIo::new(io), svc).with_upgrades());
        let mut alarms = Alarms::new(watch.tick(), stop.clone());
        let mut closing = false;
        let parts = loop {
            let Some(alarm) = next_alarm(conn.as_mut(), &mut alarms).await else { return };
            match alarm {
                Alarm::Stop => {
                    if !closing {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
                Alarm::Tick => {
                    if shared.must_drop(&watch) {
                        return;
                    }
                    if closing {
                        continue;
                    }
                    if shared.quiet_for(watch.idle) && shared.bytes_idle() >= watch.idle {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                        continue;
                    }
                    let served = shared.started.load(Ordering::Relaxed) != served_before;
                    if !(served && shared.quiet_for(PARK_AFTER) && shared.bytes_idle() >= PARK_AFTER) {
                        continue;
                    }
                    shared.park.store(ARMED, Ordering::Relaxed);
                    conn.as_mut().graceful_shutdown();
                    let polled = std::future::poll_fn(|cx| Poll::Ready(conn.as_mut().poll(cx))).await;
                    let swallowed = shared.park.swap(RUNNING, Ordering::Relaxed) == SWALLOWED;
                    match polled {
                        Poll::Ready(Ok(())) if swallowed => match Pin::into_inner(conn).into_parts() {
                            Some(parts) => break parts,
                            None => return,
                        },
                        Poll::Ready(r) => {
                            if let Err(e) = r {
                                tracing::debug!(error = %e, "connection ended with error");
                            }
                            return;
                        }
                        // Not between messages: it closes after this exchange.
                        Poll::Pending => closing = true,
                    }
                }
            }
        };
        svc = parts.service;
        io = parts.io.into_inner();
        if !parts.read_buf.is_empty() {
            io.rewind = parts.read_buf;
            continue;
        }
        drop(parts.read_buf);
        // Parked: only the TLS stream is held, until the client sends again.
        crate::resources::connection_parked();
        let mut alarms = Alarms::new(watch.idle / 4, stop.clone());
        let mut first = [0u8; 1];
        loop {
            let event = tokio::select! {
                r = io.read(&mut first) => Event::Done(r),
                a = alarms.next() => Event::Alarm(a),
            };
            match event {
                Event::Done(Ok(0) | Err(_)) => return,
                Event::Done(Ok(n)) => {
                    io.rewind = Bytes::copy_from_slice(&first[..n]);
                    shared.woke();
                    break;
                }
                Event::Alarm(Alarm::Tick) if shared.bytes_idle() < watch.idle => {}
                Event::Alarm(_) => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), io.shutdown()).await;
                    return;
                }
            }
        }
    }
}
