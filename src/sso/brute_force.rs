//! The brute-force guard of Jellyfin's password endpoints: exponential back-off per client
//! address, per (user name, address) and per user name.
//!
//! Each key allows some failures for free, then every further failure locks the key for
//! twice as long as the last (5 s, 10 s, 20 s, … at most 15 minutes). The per-name key
//! allows many more failures than the per-(name, address) key, and an address that signed
//! in as that user successfully in the last 30 days is exempt from it, so an attacker
//! guessing one user's password from elsewhere locks out only themselves. Attempts whose
//! outcome is not known yet count as pending: once a key's failures plus pending attempts
//! reach its free failures, further attempts wait for those outcomes, so a burst of parallel
//! guesses gets no more tries than a sequence would (a pending mark lapses after
//! [`PENDING_FOR`] if its outcome never arrives). Counters are kept
//! in the ephemeral state under `Kind::Rate(..)` by SHA-256 (bounded by its caps; names and
//! addresses are not kept in clear). Every change of a key is a compare-and-set
//! ([`Ephemeral::replace`]) retried on conflict, so proxies sharing one Redis count every
//! attempt exactly once: parallel guesses spread over several proxies get no more tries than
//! they would from one (a per-process lock only keeps this process's writers from
//! contending with each other).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::state::{digest, Ephemeral, Kind, StateError};

const FAILS: Kind = Kind::Rate("password-fail");
const KNOWN: Kind = Kind::Rate("password-known");
/// Failures are forgotten this long after the last one (or after the lock ends).
const MEMORY: Duration = Duration::from_secs(15 * 60);
const FIRST_LOCK: Duration = Duration::from_secs(5);
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
const KNOWN_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// Free failures per client address, per (name, address), per name.
pub const FREE_PER_ADDRESS: u32 = 10;
pub const FREE_PER_USER_ADDRESS: u32 = 5;
pub const FREE_PER_USER: u32 = 50;

/// How many times a compare-and-set is retried against other writers before giving up.
const CAS_TRIES: usize = 64;

/// How long an attempt counts as pending without an outcome (a dropped connection).
pub const PENDING_FOR: Duration = Duration::from_secs(60);

#[derive(Serialize, Deserialize, Default)]
struct Entry {
    failures: u32,
    locked_until: u64,
    /// When each attempt still waiting for its outcome stops counting (Unix ms).
    #[serde(default)]
    pending: Vec<u64>,
}

impl Entry {
    fn live_pending(&mut self, now: u64) -> u32 {
        self.pending.retain(|t| *t > now);
        self.pending.len() as u32
    }
    fn settle_one(&mut self) {
        if !self.pending.is_empty() {
            self.pending.remove(0);
        }
    }
}

pub struct Guard {
    ephemeral: Arc<dyn Ephemeral>,
    lock: Mutex<()>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// How long a key is locked after its `failures`-th failure, `free` of them allowed.
pub fn lock_for(failures: u32, free: u32) -> Duration {
    if failures <= free {
        return Duration::ZERO;
    }
    let doublings = (failures - free - 1).min(20);
    (FIRST_LOCK * 2u32.pow(doublings)).min(MAX_LOCK)
}

impl Guard {
    pub fn new(ephemeral: Arc<dyn Ephemeral>) -> Guard {
        Guard { ephemeral, lock: Mutex::new(()) }
    }

    fn keys(ip: IpAddr, user: &str) -> Vec<(String, u32)> {
        let user = user.to_lowercase();
        let mut k = vec![(format!("ip|{ip}"), FREE_PER_ADDRESS)];
        if !user.is_empty() {
            k.push((format!("user-ip|{user}|{ip}"), FREE_PER_USER_ADDRESS));
            k.push((format!("user|{user}"), FREE_PER_USER));
        }
        k
    }

    async fn known(&self, ip: IpAddr, user: &str) -> Result<bool, StateError> {
        Ok(self.ephemeral.get(KNOWN, &digest(&format!("{}|{ip}", user.to_lowercase()))).await?.is_some())
    }

    async fn entry(&self, key: &str) -> Result<(Entry, Option<Vec<u8>>), StateError> {
        let raw = self.ephemeral.get(FAILS, &digest(key)).await?;
        let entry = raw.as_deref().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default();
        Ok((entry, raw))
    }

    /// Change `key`'s entry with `change` as one compare-and-set, read again and retried while
    /// another writer (another proxy) got there first. `change` answers `false` to leave the
    /// entry as it is (then nothing is written and the answer is `false`).
    async fn update(&self, key: &str, now: u64, mut change: impl FnMut(&mut Entry) -> bool) -> Result<bool, StateError> {
        for _ in 0..CAS_TRIES {
            let (mut e, raw) = self.entry(key).await?;
            if !change(&mut e) {
                return Ok(false);
            }
            let until = e.locked_until.max(e.pending.iter().copied().max().unwrap_or(0));
            let ttl = Duration::from_millis(until.saturating_sub(now)) + MEMORY;
            let value = serde_json::to_vec(&e).expect("entry serializes");
            if self.ephemeral.replace(FAILS, &digest(key), raw.as_deref(), value, ttl).await? {
                return Ok(true);
            }
            tokio::task::yield_now().await;
        }
        Err(StateError::Backend(format!("the password guard's counter stayed contended for {CAS_TRIES} tries")))
    }

    /// How long an attempt must wait on the entry `e` of a key allowing `free` failures.
    fn wait_on(e: &mut Entry, free: u32, now: u64) -> u64 {
        let pending = e.live_pending(now);
        let mut wait = e.locked_until.saturating_sub(now);
        if pending > 0 && e.failures.saturating_add(pending) >= free {
            wait = wait.max(1000);
        }
        wait
    }

    /// Start an attempt from `ip` for `user`: `Err(retry_after)` while any of its keys is
    /// locked, or has used its free failures counting the attempts still pending. Every
    /// started attempt must end in [`Guard::failed`], [`Guard::succeeded`] or
    /// [`Guard::abandoned`] (or lapse after [`PENDING_FOR`]).
    pub async fn begin(&self, ip: IpAddr, user: &str) -> Result<Result<(), Duration>, StateError> {
        let _g = self.lock.lock().await;
        let now = now_ms();
        let known = self.known(ip, user).await?;
        let keys: Vec<(String, u32)> = Self::keys(ip, user).into_iter().filter(|(key, _)| !(known && key.starts_with("user|"))).collect();
        // Look first, so the answer names the longest wait of all keys.
        let mut wait = 0;
        for (key, free) in &keys {
            wait = wait.max(Self::wait_on(&mut self.entry(key).await?.0, *free, now));
        }
        if wait > 0 {
            return Ok(Err(Duration::from_millis(wait)));
        }
        // Then take a pending slot on each, checking again in the same compare-and-set: an
        // attempt on another proxy may have taken the last free one since.
        for (i, (key, free)) in keys.iter().enumerate() {
            let taken = self
                .update(key, now, |e| {
                    if Self::wait_on(e, *free, now) > 0 {
                        return false;
                    }
                    e.pending.push(now + PENDING_FOR.as_millis() as u64);
                    true
                })
                .await?;
            if !taken {
                for (key, _) in &keys[..i] {
                    self.settle(key, now).await?;
                }
                return Ok(Err(Duration::from_millis(1000)));
            }
        }
        Ok(Ok(()))
    }

    async fn settle(&self, key: &str, now: u64) -> Result<(), StateError> {
        self.update(key, now, |e| {
            e.settle_one();
            true
        })
        .await
        .map(drop)
    }

    /// The attempt was a wrong password.
    pub async fn failed(&self, ip: IpAddr, user: &str) -> Result<(), StateError> {
        let _g = self.lock.lock().await;
        let now = now_ms();
        for (key, free) in Self::keys(ip, user) {
            self.update(&key, now, |e| {
                e.settle_one();
                e.failures = e.failures.saturating_add(1);
                let lock = lock_for(e.failures, free);
                if !lock.is_zero() {
                    e.locked_until = now + lock.as_millis() as u64;
                }
                true
            })
            .await?;
        }
        Ok(())
    }

    /// The attempt ended without a verdict on the password (an error, a refusal for another
    /// reason): it stops counting as pending.
    pub async fn abandoned(&self, ip: IpAddr, user: &str) -> Result<(), StateError> {
        let _g = self.lock.lock().await;
        let now = now_ms();
        for (key, _) in Self::keys(ip, user) {
            self.settle(&key, now).await?;
        }
        Ok(())
    }

    /// A successful login: this (name, address) starts afresh and the address is known.
    pub async fn succeeded(&self, ip: IpAddr, user: &str) -> Result<(), StateError> {
        drop(self.abandoned(ip, user).await);
        let _g = self.lock.lock().await;
        let user = user.to_lowercase();
        self.ephemeral.delete(FAILS, &digest(&format!("user-ip|{user}|{ip}"))).await?;
        self.ephemeral.set(KNOWN, &digest(&format!("{user}|{ip}")), vec![1], KNOWN_FOR).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Caps, MemoryEphemeral};

    #[test]
    fn back_off_doubles_and_is_capped() {
        assert_eq!(lock_for(5, 5), Duration::ZERO);
        assert_eq!(lock_for(6, 5), Duration::from_secs(5));
        assert_eq!(lock_for(7, 5), Duration::from_secs(10));
        assert_eq!(lock_for(9, 5), Duration::from_secs(40));
        assert_eq!(lock_for(1000, 5), MAX_LOCK);
    }

    /// One finished attempt: begin, then `fail` or succeed.
    async fn attempt(g: &Guard, ip: &str, user: &str, fail: bool) -> Result<(), Duration> {
        let ip: IpAddr = ip.parse().unwrap();
        g.begin(ip, user).await.unwrap()?;
        if fail {
            g.failed(ip, user).await.unwrap();
        } else {
            g.succeeded(ip, user).await.unwrap();
        }
        Ok(())
    }

    #[tokio::test]
    async fn an_attacker_locks_only_their_own_address() {
        let g = Guard::new(Arc::new(MemoryEphemeral::new(Caps::default())));
        for _ in 0..=FREE_PER_USER_ADDRESS {
            assert!(attempt(&g, "6.6.6.6", "Alice", true).await.is_ok(), "the free failures, and the one that locks");
        }
        let wait = attempt(&g, "6.6.6.6", "ALICE", true).await.unwrap_err();
        assert!(wait > Duration::from_secs(3) && wait <= FIRST_LOCK);
        assert!(attempt(&g, "1.2.3.4", "alice", false).await.is_ok(), "alice elsewhere is not locked out");
        assert!(attempt(&g, "6.6.6.6", "bob", true).await.is_ok(), "below the address limit, other names are fine");
        // Past the per-name limit, only addresses that signed in before stay open.
        // 6 failures so far; a spread-out attack gets the rest of the name's free failures.
        let mut tried = 0;
        for i in 0..FREE_PER_USER {
            if attempt(&g, &format!("9.9.{}.{}", i / 200, i % 200), "alice", true).await.is_err() {
                break;
            }
            tried += 1;
        }
        let so_far = FREE_PER_USER_ADDRESS + 1;
        assert_eq!(tried, FREE_PER_USER - so_far + 1, "the one past the free failures locks the name for new addresses");
        assert!(attempt(&g, "8.8.8.8", "alice", true).await.is_err(), "a new address waits");
        assert!(attempt(&g, "1.2.3.4", "alice", false).await.is_ok(), "a known address does not");
    }

    #[tokio::test]
    async fn a_parallel_burst_gets_no_more_tries_than_a_sequence() {
        let g = Guard::new(Arc::new(MemoryEphemeral::new(Caps::default())));
        let ip: IpAddr = "6.6.6.6".parse().unwrap();
        for _ in 0..FREE_PER_USER_ADDRESS {
            assert!(g.begin(ip, "carol").await.unwrap().is_ok());
        }
        let wait = g.begin(ip, "carol").await.unwrap().unwrap_err();
        assert_eq!(wait, Duration::from_secs(1), "wait for the pending outcomes");
        for _ in 0..FREE_PER_USER_ADDRESS {
            g.abandoned(ip, "carol").await.unwrap();
        }
        assert!(g.begin(ip, "carol").await.unwrap().is_ok(), "abandoned attempts cost nothing");
    }

    /// A store whose reads take a while, as a network round trip does: every reader of a
    /// burst reads before any writes, so a read-modify-write would lose updates.
    struct SlowReads(MemoryEphemeral);

    #[async_trait::async_trait]
    impl Ephemeral for SlowReads {
        async fn put_once(&self, kind: Kind, id: &str, browser: &str, ttl: Duration, value: Vec<u8>) -> Result<(), StateError> {
            self.0.put_once(kind, id, browser, ttl, value).await
        }
        async fn take(&self, kind: Kind, id: &str, browser: Option<&str>) -> Result<Vec<u8>, crate::state::TakeError> {
            self.0.take(kind, id, browser).await
        }
        async fn list(&self, kind: Kind) -> Result<Vec<(Duration, Vec<u8>)>, StateError> {
            self.0.list(kind).await
        }
        async fn count(&self, kind: Kind) -> Result<usize, StateError> {
            self.0.count(kind).await
        }
        async fn set(&self, kind: Kind, key: &[u8; 32], value: Vec<u8>, ttl: Duration) -> Result<(), StateError> {
            self.0.set(kind, key, value, ttl).await
        }
        async fn get(&self, kind: Kind, key: &[u8; 32]) -> Result<Option<Vec<u8>>, StateError> {
            let v = self.0.get(kind, key).await;
            tokio::time::sleep(Duration::from_millis(2)).await;
            v
        }
        async fn replace(&self, kind: Kind, key: &[u8; 32], expected: Option<&[u8]>, value: Vec<u8>, ttl: Duration) -> Result<bool, StateError> {
            self.0.replace(kind, key, expected, value, ttl).await
        }
        async fn delete(&self, kind: Kind, key: &[u8; 32]) -> Result<bool, StateError> {
            self.0.delete(kind, key).await
        }
        async fn first_seen(&self, kind: Kind, key: &str, until: SystemTime) -> Result<bool, StateError> {
            self.0.first_seen(kind, key, until).await
        }
        async fn hit(&self, kind: Kind, key: &str, window: Duration) -> Result<u64, StateError> {
            self.0.hit(kind, key, window).await
        }
        async fn unhit(&self, kind: Kind, key: &str) -> Result<(), StateError> {
            self.0.unhit(kind, key).await
        }
        async fn sweep(&self) -> Result<usize, StateError> {
            self.0.sweep().await
        }
    }

    /// Two guards on one store stand for two proxies on one Redis: each has its own lock, so
    /// only the store's compare-and-set keeps their counts right.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_burst_spread_over_two_proxies_gets_one_allowance() {
        let store: Arc<dyn Ephemeral> = Arc::new(SlowReads(MemoryEphemeral::new(Caps::default())));
        let guards = [Arc::new(Guard::new(store.clone())), Arc::new(Guard::new(store.clone()))];
        let ip: IpAddr = "6.6.6.6".parse().unwrap();
        let barrier = Arc::new(tokio::sync::Barrier::new(40));
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let (g, barrier) = (guards[i % 2].clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    g.begin(ip, "dave").await.unwrap().is_ok()
                })
            })
            .collect();
        let mut started = 0;
        for t in tasks {
            started += t.await.unwrap() as u32;
        }
        assert_eq!(started, FREE_PER_USER_ADDRESS, "as many as one proxy would let through at once");
        for _ in 0..started {
            guards[0].failed(ip, "dave").await.unwrap();
        }
        let (e, _) = guards[1].entry(&format!("user-ip|dave|{ip}")).await.unwrap();
        assert_eq!((e.failures, e.pending.len()), (FREE_PER_USER_ADDRESS, 0), "every failure counted, every pending settled");
        assert!(guards[1].begin(ip, "dave").await.unwrap().is_ok(), "the one past the free failures");
        guards[1].failed(ip, "dave").await.unwrap();
        assert!(guards[0].begin(ip, "dave").await.unwrap().is_err(), "now locked on the other proxy too");
    }
}
