//! The connection watchdog's two wake-ups, its tick and the stop signal, as one future that
//! costs a flag check and a coarse clock read on the polls it did not cause.
//!
//! A connection's task is woken by its socket a few times per request, and a `select!` over
//! the connection, a `tokio::time::Interval` and `watch::Receiver::changed` polled all three
//! each time: the interval's timer entry and the watch's waiter list, about 650 instructions
//! per forwarded request (callgrind, docs/benchmarks.md). Here both are polled with a waker of
//! our own, which notes that it was called before waking the task; on any other poll, and
//! until the next tick is due, [`Alarms::poll_next`] answers `Pending` at once. Their wakers
//! stay registered between polls, so nothing is missed.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::sync::watch;
use tokio::time::{Instant, Interval};

use crate::clock::coarse_ms;

/// What woke the watchdog.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Alarm {
    /// Shutdown was asked for (once).
    Stop,
    /// A tick: time to look at the connection's clocks.
    Tick,
}

/// The tick every `period` (at least 100 ms) and the stop signal of one connection.
pub(super) struct Alarms {
    tick: Interval,
    period_ms: u64,
    due_ms: u64,
    stop: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    flag: Arc<Flag>,
    waker: Waker,
}

struct Flag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Alarms {
    pub fn new(period: Duration, mut stop: watch::Receiver<bool>) -> Alarms {
        let period = period.max(Duration::from_millis(100));
        let mut tick = tokio::time::interval_at(Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let flag = Arc::new(Flag { woken: AtomicBool::new(true), task: AtomicWaker::new() });
        let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
        Alarms {
            tick,
            period_ms,
            due_ms: coarse_ms().saturating_add(period_ms),
            // A dropped sender (the server is gone) is a stop too, as with `changed()` itself.
            stop: Some(Box::pin(async move {
                let _ = stop.changed().await;
            })),
            waker: Waker::from(flag.clone()),
            flag,
        }
    }

    /// The next alarm; `Pending` without polling anything unless one of them woke the task
    /// or the tick is due by the coarse clock.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Alarm> {
        let now = coarse_ms();
        if !self.flag.woken.swap(false, Ordering::AcqRel) && now < self.due_ms {
            return Poll::Pending;
        }
        self.flag.task.register(cx.waker());
        let mut ours = Context::from_waker(&self.waker);
        let alarm = match self.stop.as_mut().map(|stop| stop.as_mut().poll(&mut ours)) {
            Some(Poll::Ready(())) => {
                self.stop = None;
                Alarm::Stop
            }
            _ => match self.tick.poll_tick(&mut ours) {
                Poll::Ready(_) => {
                    self.due_ms = now.saturating_add(self.period_ms);
                    Alarm::Tick
                }
                Poll::Pending => return Poll::Pending,
            },
        };
        // What fired has no waker registered for its next time until it is polled again:
        // the next poll must poll both.
        self.flag.woken.store(true, Ordering::Release);
        Poll::Ready(alarm)
    }

    /// [`Alarms::poll_next`] as a future.
    pub async fn next(&mut self) -> Alarm {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ticks_come_and_a_stop_comes_once() {
        let (tx, rx) = watch::channel(false);
        let mut alarms = Alarms::new(Duration::from_millis(100), rx);
        assert_eq!(alarms.next().await, Alarm::Tick);
        assert_eq!(alarms.next().await, Alarm::Tick);
        tx.send(true).unwrap();
        assert_eq!(alarms.next().await, Alarm::Stop);
        assert_eq!(alarms.next().await, Alarm::Tick);
    }

    /// Polled over and over by other wake-ups (as a busy connection's task is), the alarms
    /// still fire: their own wakers stay registered between the polls they skip.
    #[tokio::test]
    async fn polls_it_did_not_cause_do_not_lose_a_wake_up() {
        let (tx, rx) = watch::channel(false);
        let mut alarms = Alarms::new(Duration::from_secs(3600), rx);
        let noisy = async {
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            tx.send(true).unwrap();
            std::future::pending::<()>().await
        };
        let got = tokio::time::timeout(Duration::from_secs(5), async {
            tokio::select! {
                a = alarms.next() => a,
                _ = noisy => unreachable!(),
            }
        })
        .await;
        assert_eq!(got, Ok(Alarm::Stop));
    }

    #[tokio::test]
    async fn a_dropped_sender_is_a_stop() {
        let (tx, rx) = watch::channel(false);
        let mut alarms = Alarms::new(Duration::from_secs(3600), rx);
        drop(tx);
        assert_eq!(alarms.next().await, Alarm::Stop);
    }
}
