//! The request id every log line of a request carries, and how it gets there.
//!
//! A request's future runs inside [`InRequest`], which puts the request's id in a thread-local
//! for the length of each poll; the formatters in [`super::format`] read it and write it the
//! way a `request{id=…}` tracing span would be written (human `request{id=…}:` prefix, JSON
//! `span`/`spans` entries). It replaced such a span: creating, entering, leaving and closing
//! a span cost about a tenth of the proxy's instructions per forwarded request (callgrind,
//! docs/benchmarks.md), and a thread-local costs a few instructions per poll. Like a span on
//! a future, it does not follow work spawned onto other tasks.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

/// A short id for one request, unique within this process run (never 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(u64);

impl RequestId {
    pub fn next() -> RequestId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        RequestId(NEXT.fetch_add(1, Ordering::Relaxed).max(1))
    }

    /// The id of the request being handled on this thread right now, if any.
    pub fn current() -> Option<RequestId> {
        match CURRENT.with(Cell::get) {
            0 => None,
            n => Some(RequestId(n)),
        }
    }

    #[cfg(test)]
    pub(crate) fn from_raw(n: u64) -> RequestId {
        RequestId(n)
    }
}

/// Lowercase hex, at least 8 digits (as `{:08x}`), written without the formatting machinery.
impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; 16];
        let (mut n, mut i) = (self.0, buf.len());
        while n != 0 || buf.len() - i < 8 {
            i -= 1;
            buf[i] = HEX[(n & 15) as usize];
            n >>= 4;
        }
        f.write_str(std::str::from_utf8(&buf[i..]).unwrap_or("?"))
    }
}

thread_local! {
    /// The id of the request whose future is being polled on this thread; 0 when none is.
    static CURRENT: Cell<u64> = const { Cell::new(0) };
}

/// Puts the previous id back when a poll ends, also when it unwinds.
struct Restore(u64);

impl Drop for Restore {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// Run `f` with `id` as the current request (the synchronous form of [`InRequest`]).
pub fn with_request<R>(id: RequestId, f: impl FnOnce() -> R) -> R {
    let _restore = Restore(CURRENT.with(|c| c.replace(id.0)));
    f()
}

pin_project_lite::pin_project! {
    /// A request's future: while it is polled, [`RequestId::current`] is its id.
    pub struct InRequest<F> {
        id: RequestId,
        #[pin]
        inner: F,
    }
}

impl<F> InRequest<F> {
    pub fn new(id: RequestId, inner: F) -> InRequest<F> {
        InRequest { id, inner }
    }
}

impl<F: Future> Future for InRequest<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        with_request(*this.id, || this.inner.poll(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_is_zero_padded_lowercase_hex() {
        for n in [1, 42, 0xabc, 0xffff_ffff, 0x1_0000_0000, 0xdead_beef_cafe, u64::MAX] {
            assert_eq!(RequestId(n).to_string(), format!("{n:08x}"));
        }
    }

    #[test]
    fn the_id_is_current_only_while_its_future_is_polled_and_nests() {
        let (outer, inner) = (RequestId::next(), RequestId::next());
        assert_eq!(RequestId::current(), None);
        let seen = with_request(outer, || {
            let a = RequestId::current();
            let b = with_request(inner, RequestId::current);
            (a, b, RequestId::current())
        });
        assert_eq!(seen, (Some(outer), Some(inner), Some(outer)));
        assert_eq!(RequestId::current(), None);

        // A future that waits once: the id is there on both polls and gone in between.
        let mut polls = Vec::new();
        let mut fut = Box::pin(InRequest::new(outer, std::future::poll_fn(|cx| {
            polls.push(RequestId::current());
            if polls.len() < 2 {
                cx.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(RequestId::current(), None);
        assert!(fut.as_mut().poll(&mut cx).is_ready());
        drop(fut);
        assert_eq!(polls, vec![Some(outer), Some(outer)]);
    }

    #[test]
    fn a_panicking_poll_leaves_no_id_behind() {
        let r = std::panic::catch_unwind(|| with_request(RequestId::next(), || panic!("boom")));
        assert!(r.is_err());
        assert_eq!(RequestId::current(), None);
    }
}
