//! The interface to state that may be lost on restart: logins in progress, browser sessions,
//! caches, replay ids and rate counters.
//!
//! Values are bytes, not Rust types, so a shared network store (Redis) can hold them later;
//! callers serialise what they keep. Every entry expires, and every kind is bounded in number
//! by the backend. Four shapes of use, each with its own rule when full:
//!
//! - take-once ([`Ephemeral::put_once`] / [`Ephemeral::take`]): an entry bound to the browser
//!   that created it, removed by the first take whatever its outcome. Full → refused.
//! - key/value with a TTL ([`Ephemeral::set`] / [`Ephemeral::get`]): sessions and caches.
//!   Full → the entries closest to expiry are evicted, so a login is never refused.
//! - set-if-absent ([`Ephemeral::first_seen`]): replay caches. Full → refused, since
//!   forgetting an unexpired id would let it be replayed.
//! - rate counters ([`Ephemeral::hit`]): fixed windows. Full → refused (the caller decides,
//!   typically by treating it as over the limit).

use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::StateError;

/// What an entry is: a namespace of its own, with its own cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A login in progress (OIDC state, SAML request id).
    Flow,
    /// A finished login waiting for the page that picks it up.
    Completion,
    /// A browser session, keyed by the cookie's digest.
    Session,
    /// Which browser session holds the token minted for a Jellyfin device (so a revocation
    /// on any proxy ends it); kept apart from [`Kind::Session`] so sessions count right.
    DeviceSession,
    /// Who a Jellyfin token belongs to, keyed by the token's digest.
    Caller,
    /// SAML assertion ids seen, until their NotOnOrAfter.
    SamlAssertion,
    /// Logout token ids (`jti`) seen.
    LogoutJti,
    /// Rate counters; the name says what is counted (e.g. `"login-ip"`).
    Rate(&'static str),
}

impl Kind {
    /// The family's stable name (`"rate"` for every rate namespace; [`fmt::Display`] gives the
    /// full, unique name, e.g. `rate:login-ip`, usable as a key prefix in a network store).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Flow => "flow",
            Kind::Completion => "completion",
            Kind::Session => "session",
            Kind::DeviceSession => "device-session",
            Kind::Caller => "caller",
            Kind::SamlAssertion => "saml-assertion",
            Kind::LogoutJti => "logout-jti",
            Kind::Rate(_) => "rate",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Rate(name) => write!(f, "rate:{name}"),
            other => f.write_str(other.name()),
        }
    }
}

/// Why [`Ephemeral::take`] gave nothing. The entry is gone in every case.
#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    #[error("unknown or already used")]
    Unknown,
    #[error("expired")]
    Expired,
    #[error("started in another browser (cookie missing or different)")]
    WrongBrowser,
    #[error(transparent)]
    Backend(StateError),
}

impl From<StateError> for TakeError {
    fn from(e: StateError) -> TakeError {
        TakeError::Backend(e)
    }
}

impl PartialEq for TakeError {
    /// Backend errors never compare equal (so tests can `assert_eq!` the other outcomes).
    fn eq(&self, other: &Self) -> bool {
        matches!(
            (self, other),
            (TakeError::Unknown, TakeError::Unknown)
                | (TakeError::Expired, TakeError::Expired)
                | (TakeError::WrongBrowser, TakeError::WrongBrowser)
        )
    }
}

/// State that may be lost on restart. See the module documentation for the rules when full.
#[async_trait]
pub trait Ephemeral: Send + Sync {
    /// Store `value` under `id` (a [`super::random_token`]) for the browser whose cookie value
    /// is `browser` (kept only as its SHA-256), for `ttl`. Replaces an entry with the same id.
    /// When the kind is full, expired entries are swept first; if still full,
    /// [`StateError::Full`].
    async fn put_once(&self, kind: Kind, id: &str, browser: &str, ttl: Duration, value: Vec<u8>) -> Result<(), StateError>;

    /// Remove the entry `id` and return its value if it is fresh and `browser` is the cookie it
    /// was stored for (compared in constant time). Taking always removes: a wrong browser burns
    /// the entry, and a second take is [`TakeError::Unknown`].
    async fn take(&self, kind: Kind, id: &str, browser: Option<&str>) -> Result<Vec<u8>, TakeError>;

    /// Age and value of each live take-once entry of `kind` (for admin listings).
    async fn list(&self, kind: Kind) -> Result<Vec<(Duration, Vec<u8>)>, StateError>;

    /// How many live entries `kind` holds (take-once, key/value, replay and rate entries alike).
    async fn count(&self, kind: Kind) -> Result<usize, StateError>;

    /// Set `key` (a [`super::digest`]) to `value` for `ttl`. Never refuses: when the kind is full,
    /// expired entries are swept, then those closest to expiry are evicted.
    async fn set(&self, kind: Kind, key: &[u8; 32], value: Vec<u8>, ttl: Duration) -> Result<(), StateError>;

    /// The value of `key`, or `None` when absent or expired.
    async fn get(&self, kind: Kind, key: &[u8; 32]) -> Result<Option<Vec<u8>>, StateError>;

    /// Compare and set: set `key` to `value` for `ttl` only if its live value is `expected`
    /// (`None`: absent or expired), atomically, even across proxies sharing the backend;
    /// `false` when it was something else (read it again and retry). Full kinds evict as
    /// [`Ephemeral::set`] does.
    async fn replace(&self, kind: Kind, key: &[u8; 32], expected: Option<&[u8]>, value: Vec<u8>, ttl: Duration) -> Result<bool, StateError>;

    /// Remove `key`; `true` if it was there (expired or not).
    async fn delete(&self, kind: Kind, key: &[u8; 32]) -> Result<bool, StateError>;

    /// Atomically record `key` until `until`: `true` the first time, `false` while an earlier
    /// record is unexpired. When full of unexpired ids, [`StateError::Full`]: an id is never
    /// forgotten before `until`. (An `until` already past is not worth remembering: the caller
    /// must refuse expired items itself.)
    async fn first_seen(&self, kind: Kind, key: &str, until: SystemTime) -> Result<bool, StateError>;

    /// Count one hit on `key` and return the hits in the current fixed window of length
    /// `window` (which starts at the first hit after the previous window ended).
    async fn hit(&self, kind: Kind, key: &str, window: Duration) -> Result<u64, StateError>;

    /// Take back one hit on `key` in its current window (never below zero, the window's end
    /// unchanged): an attempt [`Ephemeral::hit`] counted that must not count after all.
    async fn unhit(&self, kind: Kind, key: &str) -> Result<(), StateError>;

    /// Drop the expired entries of every kind; returns how many were dropped.
    async fn sweep(&self) -> Result<usize, StateError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_distinct_names() {
        let kinds = [Kind::Flow, Kind::Completion, Kind::Session, Kind::DeviceSession, Kind::Caller, Kind::SamlAssertion, Kind::LogoutJti, Kind::Rate("x")];
        let names: std::collections::HashSet<_> = kinds.iter().map(|k| k.to_string()).collect();
        assert_eq!(names.len(), kinds.len());
        assert_eq!(Kind::Rate("login-ip").to_string(), "rate:login-ip");
    }

    #[test]
    fn take_errors_compare_except_backend() {
        assert_eq!(TakeError::Unknown, TakeError::Unknown);
        assert_ne!(TakeError::Unknown, TakeError::Expired);
        assert_ne!(TakeError::Backend(StateError::Backend("x".into())), TakeError::Backend(StateError::Backend("x".into())));
    }
}
