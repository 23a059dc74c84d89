//! Counting failed attempts per key (a browser session, a client address) in a fixed window,
//! for the guessing limit of device linking.
//!
//! An attempt is *reserved* before the guarded call and *refunded* when it succeeds. Both are
//! single atomic operations of the ephemeral state (`hit`, `unhit`: one `INCR`/`DECR` script
//! on Redis), not a read-modify-write, so concurrent requests, on one proxy or on several
//! sharing the state, can never make more guesses than the limit: of two attempts racing for
//! the last one, the second sees the count past the limit and takes its hit back. Counters
//! live under `Kind::Rate(..)` keyed by the key's SHA-256, so memory stays bounded by the
//! state's caps and no address is kept in clear.

use std::sync::Arc;
use std::time::Duration;

use crate::state::{digest, Ephemeral, Kind, StateError};

pub struct Attempts {
    ephemeral: Arc<dyn Ephemeral>,
    kind: Kind,
    limit: u64,
    window: Duration,
}

fn key_of(k: &str) -> String {
    digest(k).iter().map(|b| format!("{b:02x}")).collect()
}

impl Attempts {
    /// At most `limit` failed attempts per key within `window`.
    pub fn new(ephemeral: Arc<dyn Ephemeral>, kind: Kind, limit: u64, window: Duration) -> Attempts {
        Attempts { ephemeral, kind, limit, window }
    }

    /// Reserve one attempt for each of `keys`. `Ok(Err(retry_after))` when any key has used
    /// its limit (nothing stays reserved then; the wait is the window, an upper bound).
    pub async fn reserve(&self, keys: &[String]) -> Result<Result<(), Duration>, StateError> {
        let mut counted: Vec<String> = Vec::with_capacity(keys.len());
        for k in keys {
            let key = key_of(k);
            let n = self.ephemeral.hit(self.kind, &key, self.window).await;
            let over = match n {
                Ok(n) => n > self.limit,
                Err(e) => {
                    self.take_back(&counted).await;
                    return Err(e);
                }
            };
            counted.push(key);
            if over {
                self.take_back(&counted).await;
                return Ok(Err(self.window));
            }
        }
        Ok(Ok(()))
    }

    async fn take_back(&self, keys: &[String]) {
        for key in keys {
            if let Err(e) = self.ephemeral.unhit(self.kind, key).await {
                tracing::warn!(error = %e, "an attempt could not be taken back; it counts until its window ends");
            }
        }
    }

    /// Give back the attempt reserved for each of `keys` (it succeeded).
    pub async fn refund(&self, keys: &[String]) -> Result<(), StateError> {
        for k in keys {
            self.ephemeral.unhit(self.kind, &key_of(k)).await?;
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
        // The refused attempt took its hit back: it did not use up `other`'s allowance.
        assert!(a.reserve(&["s2".to_string(), other.clone()]).await.unwrap().is_ok(), "other keys are untouched");
        assert!(a.reserve(&["s3".to_string(), ip]).await.unwrap().is_err(), "the address is at its limit too");
        assert!(a.reserve(&["s4".to_string(), other.clone()]).await.unwrap().is_ok(), "refusals cost the other keys nothing");
        assert!(a.reserve(&["s5".to_string(), other]).await.unwrap().is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_reservations_never_pass_the_limit() {
        let a = Arc::new(Attempts::new(Arc::new(MemoryEphemeral::new(Caps::default())), Kind::Rate("t"), 5, Duration::from_secs(60)));
        let tasks: Vec<_> = (0..40).map(|_| {
            let a = a.clone();
            tokio::spawn(async move { a.reserve(&["ip".to_string()]).await.unwrap().is_ok() })
        }).collect();
        let mut passed = 0;
        for t in tasks {
            passed += t.await.unwrap() as usize;
        }
        assert_eq!(passed, 5);
    }
}
