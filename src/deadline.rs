//! Timeouts of seconds for the hot path: [`within`] is `tokio::time::timeout` for a deadline
//! that may be late by a tenth of a second, at a fraction of its cost per request.
//!
//! Every forwarded request waits for Jellyfin's headers under `limits.upstream_header_timeout`.
//! tokio's timer made, armed and cancelled an entry of its wheel for each one, with two reads
//! of the precise clock: about 3 % of a forwarded request's instructions (callgrind,
//! docs/benchmarks.md). Here a waiting future takes a slot in its thread's table (a lock no
//! other thread takes but the ticker, a push, a waker clone) and gives it back when dropped.
//! One ticker thread for the process wakes every [`TICK`] while any slot is taken, wakes the
//! futures whose time has passed, and sleeps on a condition variable while none is.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::clock::coarse_ms;

/// How often the ticker looks for deadlines that have passed.
pub const TICK: Duration = Duration::from_millis(100);

/// The deadline passed before the future was ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// Run `fut` until it is ready or `limit` has passed (give or take [`TICK`] and the coarse
/// clock's few milliseconds), like `tokio::time::timeout`.
pub fn within<F: Future>(limit: Duration, fut: F) -> Within<F> {
    let limit_ms = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX);
    Within { fut, at_ms: coarse_ms().saturating_add(limit_ms), slot: None }
}

pin_project_lite::pin_project! {
    /// The future of [`within`].
    pub struct Within<F> {
        #[pin]
        fut: F,
        at_ms: u64,
        slot: Option<Slot>,
    }
}

impl<F: Future> Future for Within<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if coarse_ms() >= *this.at_ms {
            return Poll::Ready(Err(Elapsed));
        }
        match this.slot {
            Some(slot) => slot.keep_waker(cx.waker()),
            None => *this.slot = Some(Slot::take(*this.at_ms, cx.waker())),
        }
        Poll::Pending
    }
}

/// One thread's waiting futures. Only its own thread and the ticker lock it (and a thread a
/// future was moved to, when it drops it).
#[derive(Default)]
struct Table {
    entries: Vec<Option<(u64, Waker)>>,
    free: Vec<usize>,
    taken: usize,
}

struct Shard(Mutex<Table>);

/// A taken slot of a thread's table; given back when dropped.
struct Slot {
    shard: Arc<Shard>,
    index: usize,
}

impl Slot {
    fn take(at_ms: u64, waker: &Waker) -> Slot {
        let shard = SHARD.with(Arc::clone);
        let index = {
            let mut t = shard.0.lock().expect("deadline table");
            t.taken += 1;
            match t.free.pop() {
                Some(i) => {
                    t.entries[i] = Some((at_ms, waker.clone()));
                    i
                }
                None => {
                    t.entries.push(Some((at_ms, waker.clone())));
                    t.entries.len() - 1
                }
            }
        };
        ticker().busy();
        Slot { shard, index }
    }

    /// The task polling the future may change (hyper moves none of ours, but a future may be).
    fn keep_waker(&mut self, waker: &Waker) {
        let mut t = self.shard.0.lock().expect("deadline table");
        if let Some((_, w)) = t.entries[self.index].as_mut() {
            if !w.will_wake(waker) {
                *w = waker.clone();
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut t = self.shard.0.lock().expect("deadline table");
        if t.entries[self.index].take().is_some() {
            t.taken -= 1;
        }
        t.free.push(self.index);
    }
}

thread_local! {
    static SHARD: Arc<Shard> = {
        let shard = Arc::new(Shard(Mutex::new(Table::default())));
        ticker().shards.lock().expect("deadline shards").push(Arc::downgrade(&shard));
        shard
    };
}

/// The ticker: every thread's table, and whether it sleeps for want of anything to watch.
struct Ticker {
    shards: Mutex<Vec<Weak<Shard>>>,
    asleep: AtomicBool,
    wake: Condvar,
    lock: Mutex<()>,
}

impl Ticker {
    /// A slot was taken: wake the ticker if it sleeps (one atomic load when it does not).
    fn busy(&self) {
        if self.asleep.load(Ordering::Acquire) {
            let _g = self.lock.lock().expect("deadline ticker");
            self.asleep.store(false, Ordering::Release);
            self.wake.notify_one();
        }
    }

    /// Wake the futures whose deadline has passed; `true` while any slot is taken.
    fn tick(&self, now_ms: u64) -> bool {
        let mut shards = self.shards.lock().expect("deadline shards");
        shards.retain(|s| s.strong_count() > 0);
        let mut any = false;
        for shard in shards.iter().filter_map(Weak::upgrade) {
            let t = shard.0.lock().expect("deadline table");
            any |= t.taken > 0;
            for (at_ms, waker) in t.entries.iter().flatten() {
                if *at_ms <= now_ms {
                    waker.wake_by_ref();
                }
            }
        }
        any
    }

    fn run(&self) {
        loop {
            std::thread::sleep(TICK);
            if self.tick(coarse_ms()) {
                continue;
            }
            // Nothing to watch: sleep until a slot is taken. A slot taken between the tick and
            // here finds `asleep` set and wakes us, since both sides hold `lock`.
            let mut g = self.lock.lock().expect("deadline ticker");
            self.asleep.store(true, Ordering::Release);
            if self.tick(coarse_ms()) {
                self.asleep.store(false, Ordering::Release);
                continue;
            }
            while self.asleep.load(Ordering::Acquire) {
                g = self.wake.wait(g).expect("deadline ticker");
            }
        }
    }
}

fn ticker() -> &'static Ticker {
    static TICKER: OnceLock<&'static Ticker> = OnceLock::new();
    TICKER.get_or_init(|| {
        let t: &'static Ticker = Box::leak(Box::new(Ticker { shards: Mutex::new(Vec::new()), asleep: AtomicBool::new(false), wake: Condvar::new(), lock: Mutex::new(()) }));
        std::thread::Builder::new().name("deadlines".into()).spawn(move || t.run()).expect("the deadline ticker thread starts");
        t
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn a_ready_future_is_not_cut_off() {
        assert_eq!(within(Duration::from_secs(5), async { 7 }).await, Ok(7));
        let r = within(Duration::from_secs(5), tokio::time::sleep(Duration::from_millis(50))).await;
        assert_eq!(r, Ok(()));
    }

    #[tokio::test]
    async fn a_future_that_waits_too_long_is_cut_off_near_its_deadline() {
        let started = Instant::now();
        let r = within(Duration::from_millis(300), std::future::pending::<()>()).await;
        assert_eq!(r, Err(Elapsed));
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(290), "cut off early, after {took:?}");
    }

    #[test]
    fn slots_are_given_back_and_reused() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            for _ in 0..3 {
                let futs: Vec<_> = (0..50).map(|_| Box::pin(within(Duration::from_secs(60), std::future::pending::<()>()))).collect();
                let mut futs = futs;
                // One poll each takes a slot.
                std::future::poll_fn(|cx| {
                    for f in futs.iter_mut() {
                        assert!(f.as_mut().poll(cx).is_pending());
                    }
                    Poll::Ready(())
                })
                .await;
                assert_eq!(SHARD.with(|s| s.0.lock().unwrap().taken), 50);
                drop(futs);
                let t = SHARD.with(|s| s.0.lock().unwrap().entries.len());
                assert_eq!(SHARD.with(|s| s.0.lock().unwrap().taken), 0);
                assert!(t <= 50, "slots were not reused: {t}");
            }
        });
    }

    #[test]
    fn a_future_dropped_on_another_thread_gives_its_slot_back() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let mut fut = Box::pin(within(Duration::from_secs(60), std::future::pending::<()>()));
        rt.block_on(std::future::poll_fn(|cx| {
            assert!(fut.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        }));
        assert_eq!(SHARD.with(|s| s.0.lock().unwrap().taken), 1);
        std::thread::spawn(move || drop(fut)).join().unwrap();
        assert_eq!(SHARD.with(|s| s.0.lock().unwrap().taken), 0);
    }
}
