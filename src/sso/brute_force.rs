//! The brute-force guard of Jellyfin's password endpoints: exponential back-off per client
//! address, per (user name, address) and per user name.
//!
//! Each key allows some failures for free, then every further failure locks the key for
//! twice as long as the last (5 s, 10 s, 20 s, … at most 15 minutes). The per-name key
//! allows many more failures than the per-(name, address) key, and an address that signed
//! in as that user successfully in the last 30 days is exempt from it, so an attacker
//! guessing one user's password from elsewhere locks out only themselves. Counters are kept
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

#[derive(Serialize, Deserialize, Default)]
struct Entry {
    failures: u32,
    locked_until: u64,
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

    /// `Err(retry_after)` while any key of this attempt is locked.
    pub async fn check(&self, ip: IpAddr, user: &str) -> Result<Result<(), Duration>, StateError> {
        let now = now_ms();
        let known = self.known(ip, user).await?;
        let mut wait = 0;
        for (key, _) in Self::keys(ip, user) {
            if known && key.starts_with("user|") {
                continue;
            }
            wait = wait.max(self.entry(&key).await?.locked_until.saturating_sub(now));
        }
        Ok(if wait > 0 { Err(Duration::from_millis(wait)) } else { Ok(()) })
    }

    /// A wrong password from `ip` for `user`.
    pub async fn failed(&self, ip: IpAddr, user: &str) -> Result<(), StateError> {
        let _g = self.lock.lock().await;
        let now = now_ms();
        for (key, free) in Self::keys(ip, user) {
            let mut e = self.entry(&key).await?;
            e.failures = e.failures.saturating_add(1);
            let lock = lock_for(e.failures, free);
            if !lock.is_zero() {
                e.locked_until = now + lock.as_millis() as u64;
            }
            let ttl = Duration::from_millis(e.locked_until.saturating_sub(now)) + MEMORY;
            self.ephemeral.set(FAILS, &digest(&key), serde_json::to_vec(&e).expect("entry serializes"), ttl).await?;
        }
        Ok(())
    }

    /// A successful login: this (name, address) starts afresh and the address is known.
    pub async fn succeeded(&self, ip: IpAddr, user: &str) -> Result<(), StateError> {
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

    #[tokio::test]
    async fn an_attacker_locks_only_their_own_address() {
        let g = Guard::new(Arc::new(MemoryEphemeral::new(Caps::default())));
        let (attacker, alice_home): (IpAddr, IpAddr) = ("6.6.6.6".parse().unwrap(), "1.2.3.4".parse().unwrap());
        for _ in 0..FREE_PER_USER_ADDRESS {
            assert!(g.check(attacker, "Alice").await.unwrap().is_ok());
            g.failed(attacker, "Alice").await.unwrap();
        }
        assert!(g.check(attacker, "alice").await.unwrap().is_ok(), "the free failures are free");
        g.failed(attacker, "alice").await.unwrap();
        let wait = g.check(attacker, "ALICE").await.unwrap().unwrap_err();
        assert!(wait > Duration::from_secs(3) && wait <= FIRST_LOCK);
        assert!(g.check(alice_home, "alice").await.unwrap().is_ok(), "alice elsewhere is not locked out");
        assert!(g.check(attacker, "bob").await.unwrap().is_ok(), "below the address limit, other names are fine");
        // Past the per-name limit, only addresses that signed in before stay open.
        g.succeeded(alice_home, "alice").await.unwrap();
        for i in 0..FREE_PER_USER {
            g.failed(format!("9.9.{}.{}", i / 200, i % 200).parse().unwrap(), "alice").await.unwrap();
        }
        assert!(g.check("8.8.8.8".parse().unwrap(), "alice").await.unwrap().is_err(), "a new address waits");
        assert!(g.check(alice_home, "alice").await.unwrap().is_ok(), "a known address does not");
    }
}
