//! What one client connection has done, as its serving loop ([`super::conn`]) and its IO see
//! it: when bytes last moved, which requests are in flight (a request lasts until its response
//! body is done), and the handshake by which an idle HTTP/1.1 connection parks. [`Watch`] says
//! when that activity makes a connection idle or dead; [`IdleIo`] notes every read and write
//! and swallows the close that parks; [`Tracked`] keeps a streaming response counted.
//! Times are [`crate::clock::coarse_ms`]: they are written on every read and write, and only
//! compared with timeouts of seconds.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::body::{Body, BoxError};

/// An HTTP/1.1 connection with nothing in flight and no byte moved for this long parks.
pub(super) const PARK_AFTER: Duration = Duration::from_secs(2);

/// When a connection counts as idle or dead.
#[derive(Clone, Copy)]
pub(super) struct Watch {
    /// No request in flight and none started or answered for this long: close gracefully.
    pub idle: Duration,
    /// Not one byte moved either way for this long, even with a request open (a stalled
    /// body, a client that stopped reading): drop it.
    pub dead: Duration,
    /// HTTP/1.1: no request in flight and no complete request head for this long (counted
    /// from the end of the previous request, the connection's start or its unparking): drop it.
    /// hyper has a header timer of its own, but it makes, arms and drops a timer entry for every
    /// request (about 1.5 % of a forwarded request's instructions, callgrind); the watchdog's tick
    /// does the same job for nothing per request.
    pub header: Duration,
    /// HTTP/2: the protocol's own keep-alive PINGs move bytes, so only requests count.
    pub h2: bool,
}

impl Watch {
    /// How often a serving connection's clocks are looked at: a quarter of the idle timeout,
    /// and for HTTP/1.1 also of the header deadline, at most every second ([`PARK_AFTER`] / 2,
    /// so an idle HTTP/1.1 connection parks in time).
    pub(super) fn tick(&self) -> Duration {
        if self.h2 {
            self.idle / 4
        } else {
            (self.idle / 4).min(self.header / 4).min(PARK_AFTER / 2)
        }
    }
}

pub(super) const RUNNING: u8 = 0;
/// [`super::conn::serve_h1`] asked hyper to close in order to park: the next `poll_shutdown` is swallowed.
pub(super) const ARMED: u8 = 1;
pub(super) const SWALLOWED: u8 = 2;
/// A byte moved while armed: hyper was not between messages, the close is real.
const SPOILED: u8 = 3;

/// What the parts of one connection share (one allocation): when bytes last moved, the
/// requests in flight (a request lasts until its response body is done) and when one last
/// started or ended, and the parking handshake with [`IdleIo`]. Times are
/// [`crate::clock::coarse_ms`]: they are written on every read and write, and only compared
/// with timeouts of seconds.
pub(super) struct Shared {
    bytes_ms: AtomicU64,
    request_ms: AtomicU64,
    in_flight: AtomicU64,
    /// Requests started on this connection, ever.
    pub(super) started: AtomicU64,
    pub(super) park: AtomicU8,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        let now = crate::clock::coarse_ms();
        Arc::new(Shared {
            bytes_ms: AtomicU64::new(now),
            request_ms: AtomicU64::new(now),
            in_flight: AtomicU64::new(0),
            started: AtomicU64::new(0),
            park: AtomicU8::new(RUNNING),
        })
    }
    fn now_ms(&self) -> u64 {
        crate::clock::coarse_ms()
    }
    fn since(&self, at: &AtomicU64) -> Duration {
        Duration::from_millis(self.now_ms().saturating_sub(at.load(Ordering::Relaxed)))
    }
    fn bytes_moved(&self) {
        self.bytes_ms.store(self.now_ms(), Ordering::Relaxed);
        if self.park.load(Ordering::Relaxed) == ARMED {
            self.park.store(SPOILED, Ordering::Relaxed);
        }
    }
    pub(super) fn bytes_idle(&self) -> Duration {
        self.since(&self.bytes_ms)
    }
    /// No request in flight, and none started or ended for `d`.
    pub(super) fn quiet_for(&self, d: Duration) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && self.since(&self.request_ms) >= d
    }
    /// An HTTP/1.1 connection is between requests exactly when none is in flight (one at a
    /// time, and a request counts until its response body is done): then it reads a head, and
    /// one that took longer than `watch.header` is a client that will not finish it.
    fn head_overdue(&self, watch: &Watch) -> bool {
        !watch.h2 && self.quiet_for(watch.header)
    }
    /// Dead (nothing moved for `watch.dead`) or overdue with its request head: the
    /// connection is to be dropped, and the log says why.
    pub(super) fn must_drop(&self, watch: &Watch) -> bool {
        if self.bytes_idle() >= watch.dead {
            tracing::debug!("connection dropped: nothing moved for {:?}", watch.dead);
            return true;
        }
        if self.head_overdue(watch) {
            tracing::debug!("connection dropped: no request head within {:?}", watch.header);
            return true;
        }
        false
    }
    /// A parked connection woke: its next head is due `watch.header` from now.
    pub(super) fn woke(&self) {
        self.request_ms.store(self.now_ms(), Ordering::Relaxed);
    }
    /// A request started; it is in flight until the guard is dropped.
    pub fn start(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.started.fetch_add(1, Ordering::Relaxed);
        self.request_ms.store(self.now_ms(), Ordering::Relaxed);
        RequestGuard(self.clone())
    }
}

pub(super) struct RequestGuard(Arc<Shared>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.request_ms.store(self.0.now_ms(), Ordering::Relaxed);
    }
}

/// A response body that keeps its request counted as in flight until it has been sent whole
/// (or dropped), so neither the watchdog nor parking mistakes a streaming response for idleness.
pub(super) struct Tracked {
    body: Body,
    guard: Option<RequestGuard>,
}

impl Tracked {
    pub fn new(body: Body, guard: RequestGuard) -> Tracked {
        Tracked { body, guard: Some(guard) }
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        let r = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(r, Poll::Ready(None | Some(Err(_)))) {
            self.guard = None;
        }
        r
    }
    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// An IO wrapper that notes activity on every read and write, replays bytes read ahead
    /// before a park, and swallows the close that parks.
    pub(super) struct IdleIo<I> {
        #[pin]
        inner: I,
        shared: Arc<Shared>,
        pub(super) rewind: Bytes,
    }
}

impl<I> IdleIo<I> {
    pub(super) fn new(inner: I, shared: Arc<Shared>) -> Self {
        IdleIo { inner, shared, rewind: Bytes::new() }
    }
}

impl<I: AsyncRead> AsyncRead for IdleIo<I> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        if !this.rewind.is_empty() {
            let n = this.rewind.len().min(buf.remaining());
            buf.put_slice(&this.rewind[..n]);
            this.rewind.advance(n);
            if this.rewind.is_empty() {
                // An emptied `Bytes` still holds its allocation (hyper's whole read buffer,
                // when it read ahead before a park): let it go.
                *this.rewind = Bytes::new();
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.shared.bytes_moved();
        }
        r
    }
}

impl<I: AsyncWrite> AsyncWrite for IdleIo<I> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.shared.bytes_moved();
        }
        r
    }
    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.shared.bytes_moved();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.project();
        if this.shared.park.compare_exchange(ARMED, SWALLOWED, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            return Poll::Ready(Ok(()));
        }
        this.inner.poll_shutdown(cx)
    }
}
