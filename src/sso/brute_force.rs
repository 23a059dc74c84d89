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
//! addresses are not kept in clear), updated under one lock.

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

    async fn entry(&self, key: &str) -> Result<Entry, StateError> {
        Ok(self.ephemeral.get(FAILS, &digest(key)).await?.and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default())
    }

    async fn store(&self, key: &str, e: &Entry, now: u64) -> Result<(), StateError> {
        let until = e.locked_until.max(e.pending.iter().copied().max().unwrap_or(0));
        let ttl = Duration::from_millis(until.saturating_sub(now)) + MEMORY;
        self.ephemeral.set(FAILS, &digest(key), serde_json::to_vec(e).expect("entry serializes"), ttl).await
    }

    /// Start an attempt from `ip` for `user`: `Err(retry_after)` while any of its keys is
    /// locked, or has used its free failures counting the attempts still pending. Every
    /// started attempt must end in [`Guard::failed`], [`Guard::succeeded`] or
    /// [`Guard::abandoned`] (or lapse after [`PENDING_FOR`]).
    pub async fn begin(&self, ip: IpAddr, user: &str) -> Result<Result<(), Duration>, StateError> {
        let _g = self.lock.lock().await;
        let now = now_ms();
        let known = self.known(ip, user).await?;
        let mut entries = Vec::new();
        let mut wait = 0;
        for (key, free) in Self::keys(ip, user) {
            let mut e = self.entry(&key).await?;
            let pending = e.live_pending(now);
            if known && key.starts_with("user|") {
                continue;
            }
            wait = wait.max(e.locked_until.saturating_sub(now));
            if pending > 0 && e.failures.saturating_add(pending) >= free {
                wait = wait.max(1000);
            }
            entries.push((key, e));
        }
        if wait > 0 {
            return Ok(Err(Duration::from_millis(wait)));
        }
        for (key, mut e) in entries {
            e.pending.push(now + PENDING_FOR.as_millis() as u64);
            self.store(&key, &e, now).await?;
        }
        Ok(Ok(()))
    }

    /// The attempt was a wrong password.
    pub async fn failed(&self, ip: IpAddr, user: &str) -> Result<(), StateError> {
        let _g = self.lock.lock().await;
        let now = now_ms();
        for (key, free) in Self::keys(ip, user) {
            let mut e = self.entry(&key).await?;
            e.settle_one();
            e.failures = e.failures.saturating_add(1);
            let lock = lock_for(e.failures, free);
            if !lock.is_zero() {
                e.locked_until = now + lock.as_millis() as u64;
            }
            self.store(&key, &e, now).await?;
        }
        Ok(())
    }

    /// The attempt ended without a verdict on the password (an error, a refusal for another
    /// reason): it stops counting as pending.
    pub async fn abandoned(&self, ip: IpAddr, user: &str) -> Result<(), StateError> {
        let _g = self.lock.lock().await;
        let now = now_ms();
        for (key, _) in Self::keys(ip, user) {
            let mut e = self.entry(&key).await?;
            e.settle_one();
            self.store(&key, &e, now).await?;
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
}
