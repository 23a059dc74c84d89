//! Counting failed attempts per key (a browser session, a client address, a user name) in a
//! fixed window, for the guessing limits of device linking and the password endpoint.
//!
//! An attempt is *reserved* before the guarded call and *refunded* when it succeeds, both
//! under one lock, so concurrent requests can never make more guesses than the limit (the
//! state layer's rate counter only adds, and a success must not count). Counters live in the
//! ephemeral state under `Kind::Rate(..)` with the key's SHA-256, so memory stays bounded by
//! the state's caps and no user name or address is kept in clear.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::state::{digest, Ephemeral, Kind, StateError};

#[derive(Serialize, Deserialize)]
struct Window {
    /// Failed (or in-flight) attempts in this window.
    n: u64,
    /// End of the window, Unix milliseconds.
    ends: u64,
}

pub struct Attempts {
    ephemeral: Arc<dyn Ephemeral>,
    kind: Kind,
    limit: u64,
    window: Duration,
    lock: Mutex<()>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Attempts {
    /// At most `limit` failed attempts per key within `window`.
    pub fn new(ephemeral: Arc<dyn Ephemeral>, kind: Kind, limit: u64, window: Duration) -> Attempts {
        Attempts { ephemeral, kind, limit, window, lock: Mutex::new(()) }
    }

    async fn read(&self, key: &[u8; 32], now: u64) -> Result<Window, StateError> {
        let w = self.ephemeral.get(self.kind, key).await?.and_then(|b| serde_json::from_slice::<Window>(&b).ok());
        Ok(w.filter(|w| w.ends > now).unwrap_or(Window { n: 0, ends: now + self.window.as_millis() as u64 }))
    }

    async fn write(&self, key: &[u8; 32], w: &Window, now: u64) -> Result<(), StateError> {
        let ttl = Duration::from_millis(w.ends.saturating_sub(now).max(1));
        self.ephemeral.set(self.kind, key, serde_json::to_vec(w).expect("window serializes"), ttl).await
    }

    /// Reserve one attempt for each of `keys`. `Ok(Err(retry_after))` when any key has used
    /// its limit (nothing is reserved then).
    pub async fn reserve(&self, keys: &[String]) -> Result<Result<(), Duration>, StateError> {
        let _g = self.lock.lock().await;
        let now = now_ms();
        let mut windows = Vec::with_capacity(keys.len());
        for k in keys {
            let d = digest(k);
            let w = self.read(&d, now).await?;
            if w.n >= self.limit {
                return Ok(Err(Duration::from_millis(w.ends - now)));
            }
            windows.push((d, w));
        }
        for (d, mut w) in windows {
            w.n += 1;
            self.write(&d, &w, now).await?;
        }
        Ok(Ok(()))
    }

    /// Give back the attempt reserved for each of `keys` (it succeeded).
    pub async fn refund(&self, keys: &[String]) -> Result<(), StateError> {
        let _g = self.lock.lock().await;
        let now = now_ms();
        for k in keys {
            let d = digest(k);
            let mut w = self.read(&d, now).await?;
            if w.n > 0 {
                w.n -= 1;
                self.write(&d, &w, now).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Caps, MemoryEphemeral};

    #[tokio::test]
    async fn limit_per_key_and_refunds() {
        let a = Attempts::new(Arc::new(MemoryEphemeral::new(Caps::default())), Kind::Rate("t"), 2, Duration::from_secs(60));
        let (s, ip, other) = ("s1".to_string(), "ip1".to_string(), "ip2".to_string());
        assert!(a.reserve(&[s.clone(), ip.clone()]).await.unwrap().is_ok());
        a.refund(&[s.clone(), ip.clone()]).await.unwrap();
        assert!(a.reserve(&[s.clone(), ip.clone()]).await.unwrap().is_ok());
        assert!(a.reserve(&[s.clone(), ip.clone()]).await.unwrap().is_ok());
        let wait = a.reserve(&[s.clone(), other.clone()]).await.unwrap().unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60));
        assert!(a.reserve(&["s2".to_string(), other.clone()]).await.unwrap().is_ok(), "other keys are untouched");
        assert!(a.reserve(&["s3".to_string(), ip]).await.unwrap().is_err(), "the address is at its limit too");
    }
}
