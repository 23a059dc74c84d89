//! In-memory state of logins in progress: a bounded, expiring, take-once store bound to
//! the browser that started the login.
//!
//! Each entry is keyed by an unguessable id (the OIDC `state`, the SAML request id, or a
//! completion handle) and remembers a hash of the browser's flow cookie. Taking an entry
//! removes it whatever the outcome, so a state can be used once; a wrong cookie, an unknown
//! id and an expired entry are told apart for the log but all refuse. The store holds at
//! most `cap` entries: above it, new logins are refused (503) instead of growing memory.

use std::time::{Duration, Instant};

use base64::Engine;
use dashmap::DashMap;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// 32 random bytes, URL-safe base64: ids, cookie values, handles.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// Is this a value [`random_token`] could have produced? (Cheap shape check for cookies.)
pub fn looks_like_token(s: &str) -> bool {
    s.len() == 43 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TakeError {
    #[error("unknown or already used")]
    Unknown,
    #[error("expired")]
    Expired,
    #[error("started in another browser (flow cookie missing or different)")]
    WrongBrowser,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many logins in progress")]
pub struct StoreFull;

struct Entry<T> {
    created: Instant,
    browser: [u8; 32],
    value: T,
}

/// A bounded, expiring map from id to `T`, each entry taken at most once.
pub struct FlowStore<T> {
    map: DashMap<String, Entry<T>>,
    ttl: Duration,
    cap: usize,
}

impl<T> FlowStore<T> {
    pub fn new(ttl: Duration, cap: usize) -> Self {
        FlowStore { map: DashMap::new(), ttl, cap }
    }

    /// Store `value` for the browser holding `browser_cookie`; returns the new id.
    pub fn insert(&self, browser_cookie: &str, value: T) -> Result<String, StoreFull> {
        self.insert_as(random_token(), browser_cookie, value)
    }

    /// Store `value` under an id the caller drew from [`random_token`] (when the id must be
    /// known before the value exists, as the SAML RelayState is).
    pub fn insert_as(&self, id: String, browser_cookie: &str, value: T) -> Result<String, StoreFull> {
        if self.map.len() >= self.cap {
            self.sweep();
            if self.map.len() >= self.cap {
                return Err(StoreFull);
            }
        }
        self.map.insert(id.clone(), Entry { created: Instant::now(), browser: digest(browser_cookie), value });
        Ok(id)
    }

    /// Remove and return the entry `id` if it is fresh and belongs to `browser_cookie`.
    pub fn take(&self, id: &str, browser_cookie: Option<&str>) -> Result<T, TakeError> {
        let (_, entry) = self.map.remove(id).ok_or(TakeError::Unknown)?;
        if entry.created.elapsed() > self.ttl {
            return Err(TakeError::Expired);
        }
        let presented = digest(browser_cookie.ok_or(TakeError::WrongBrowser)?);
        if !bool::from(presented.ct_eq(&entry.browser)) {
            return Err(TakeError::WrongBrowser);
        }
        Ok(entry.value)
    }

    /// Drop expired entries; returns how many were dropped.
    pub fn sweep(&self) -> usize {
        let before = self.map.len();
        self.map.retain(|_, e| e.created.elapsed() <= self.ttl);
        before.saturating_sub(self.map.len())
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Ages and a projection of each pending entry (for the admin `States` listing).
    pub fn list<R>(&self, f: impl Fn(&T) -> R) -> Vec<(Duration, R)> {
        self.map.iter().filter(|e| e.created.elapsed() <= self.ttl).map(|e| (e.created.elapsed(), f(&e.value))).collect()
    }

    #[cfg(test)]
    fn age_all(&self, by: Duration) {
        for mut e in self.map.iter_mut() {
            e.created -= by;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_once_by_the_same_browser() {
        let s = FlowStore::new(Duration::from_secs(60), 10);
        let cookie = random_token();
        let id = s.insert(&cookie, 7).unwrap();
        assert!(looks_like_token(&id));
        assert_eq!(s.take(&id, Some(&cookie)), Ok(7));
        assert_eq!(s.take(&id, Some(&cookie)), Err(TakeError::Unknown), "replay refused");
    }

    #[test]
    fn another_browser_or_no_cookie_is_refused_and_burns_the_entry() {
        let s = FlowStore::new(Duration::from_secs(60), 10);
        let id = s.insert(&random_token(), ()).unwrap();
        assert_eq!(s.take(&id, Some(&random_token())), Err(TakeError::WrongBrowser));
        assert_eq!(s.take(&id, None), Err(TakeError::Unknown));
        let id = s.insert("c", ()).unwrap();
        assert_eq!(s.take(&id, None), Err(TakeError::WrongBrowser));
    }

    #[test]
    fn expired_entries_refuse_and_are_swept() {
        let s = FlowStore::new(Duration::from_secs(60), 10);
        let id = s.insert("c", ()).unwrap();
        s.insert("c", ()).unwrap();
        s.age_all(Duration::from_secs(61));
        assert_eq!(s.take(&id, Some("c")), Err(TakeError::Expired));
        assert_eq!(s.sweep(), 1);
        assert!(s.is_empty());
    }

    #[test]
    fn capacity_is_enforced_after_sweeping() {
        let s = FlowStore::new(Duration::from_secs(60), 2);
        s.insert("c", ()).unwrap();
        s.insert("c", ()).unwrap();
        assert_eq!(s.insert("c", ()), Err(StoreFull));
        s.age_all(Duration::from_secs(61));
        assert!(s.insert("c", ()).is_ok(), "expired entries make room");
    }
}
