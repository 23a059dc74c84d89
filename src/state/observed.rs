//! A decorator around both halves of the state that reports every failed operation to a
//! callback, so an operator can count backend errors without the state layer knowing who
//! counts them (it imports no metrics and no protocol).
//!
//! What is reported: an error of the backend itself (unreachable, a database error, a broken
//! record). Not reported: answers that are part of the interface's contract, i.e. a full
//! bounded store ([`StateError::Full`]) and a take-once entry that is unknown, expired or
//! bound to another browser.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use super::durable::{AppPassword, Durable, ImportBatch, LegacyLink, Link, MintedSession, StoredProvider};
use super::ephemeral::{Ephemeral, Kind, TakeError};
use super::StateError;

/// Called with the store (`"durable"` or `"ephemeral"`) and its backend's name.
pub type OnError = Arc<dyn Fn(&'static str, &'static str) + Send + Sync>;

struct Reporter {
    store: &'static str,
    backend: &'static str,
    on_error: OnError,
}

impl Reporter {
    fn check<T>(&self, r: Result<T, StateError>) -> Result<T, StateError> {
        if let Err(e) = &r {
            if !matches!(e, StateError::Full { .. }) {
                (self.on_error)(self.store, self.backend);
            }
        }
        r
    }
}

pub(super) struct ObservedEphemeral {
    inner: Arc<dyn Ephemeral>,
    r: Reporter,
}

pub(super) struct ObservedDurable {
    inner: Arc<dyn Durable>,
    r: Reporter,
}

impl ObservedEphemeral {
    pub(super) fn new(inner: Arc<dyn Ephemeral>, backend: &'static str, on_error: OnError) -> ObservedEphemeral {
        ObservedEphemeral { inner, r: Reporter { store: "ephemeral", backend, on_error } }
    }
}

impl ObservedDurable {
    pub(super) fn new(inner: Arc<dyn Durable>, backend: &'static str, on_error: OnError) -> ObservedDurable {
        ObservedDurable { inner, r: Reporter { store: "durable", backend, on_error } }
    }
}

#[async_trait]
impl Ephemeral for ObservedEphemeral {
    async fn put_once(&self, kind: Kind, id: &str, browser: &str, ttl: Duration, value: Vec<u8>) -> Result<(), StateError> {
        self.r.check(self.inner.put_once(kind, id, browser, ttl, value).await)
    }
    async fn take(&self, kind: Kind, id: &str, browser: Option<&str>) -> Result<Vec<u8>, TakeError> {
        let r = self.inner.take(kind, id, browser).await;
        if let Err(TakeError::Backend(e)) = &r {
            if !matches!(e, StateError::Full { .. }) {
                (self.r.on_error)(self.r.store, self.r.backend);
            }
        }
        r
    }
    async fn list(&self, kind: Kind) -> Result<Vec<(Duration, Vec<u8>)>, StateError> {
        self.r.check(self.inner.list(kind).await)
    }
    async fn count(&self, kind: Kind) -> Result<usize, StateError> {
        self.r.check(self.inner.count(kind).await)
    }
    async fn set(&self, kind: Kind, key: &[u8; 32], value: Vec<u8>, ttl: Duration) -> Result<(), StateError> {
        self.r.check(self.inner.set(kind, key, value, ttl).await)
    }
    async fn get(&self, kind: Kind, key: &[u8; 32]) -> Result<Option<Vec<u8>>, StateError> {
        self.r.check(self.inner.get(kind, key).await)
    }
    async fn replace(&self, kind: Kind, key: &[u8; 32], expected: Option<&[u8]>, value: Vec<u8>, ttl: Duration) -> Result<bool, StateError> {
        self.r.check(self.inner.replace(kind, key, expected, value, ttl).await)
    }
    async fn delete(&self, kind: Kind, key: &[u8; 32]) -> Result<bool, StateError> {
        self.r.check(self.inner.delete(kind, key).await)
    }
    async fn first_seen(&self, kind: Kind, key: &str, until: SystemTime) -> Result<bool, StateError> {
        self.r.check(self.inner.first_seen(kind, key, until).await)
    }
    async fn hit(&self, kind: Kind, key: &str, window: Duration) -> Result<u64, StateError> {
        self.r.check(self.inner.hit(kind, key, window).await)
    }
    async fn unhit(&self, kind: Kind, key: &str) -> Result<(), StateError> {
        self.r.check(self.inner.unhit(kind, key).await)
    }
    async fn sweep(&self) -> Result<usize, StateError> {
        self.r.check(self.inner.sweep().await)
    }
}

#[async_trait]
impl Durable for ObservedDurable {
    async fn link(&self, protocol: &str, provider: &str, subject: &str) -> Result<Option<Link>, StateError> {
        self.r.check(self.inner.link(protocol, provider, subject).await)
    }
    async fn links_of_user(&self, user_id: &str) -> Result<Vec<Link>, StateError> {
        self.r.check(self.inner.links_of_user(user_id).await)
    }
    async fn put_link(&self, link: Link) -> Result<(), StateError> {
        self.r.check(self.inner.put_link(link).await)
    }
    async fn remove_link(&self, protocol: &str, provider: &str, user_id: &str, subject: &str) -> Result<u64, StateError> {
        self.r.check(self.inner.remove_link(protocol, provider, user_id, subject).await)
    }
    async fn remove_links_of_user(&self, user_id: &str) -> Result<u64, StateError> {
        self.r.check(self.inner.remove_links_of_user(user_id).await)
    }
    async fn legacy_link(&self, protocol: &str, provider: &str, name: &str) -> Result<Option<LegacyLink>, StateError> {
        self.r.check(self.inner.legacy_link(protocol, provider, name).await)
    }
    async fn legacy_links_of_user(&self, user_id: &str) -> Result<Vec<LegacyLink>, StateError> {
        self.r.check(self.inner.legacy_links_of_user(user_id).await)
    }
    async fn claim_legacy_link(&self, protocol: &str, provider: &str, name: &str, subject: &str, at: u64) -> Result<Option<LegacyLink>, StateError> {
        self.r.check(self.inner.claim_legacy_link(protocol, provider, name, subject, at).await)
    }
    async fn providers(&self) -> Result<Vec<StoredProvider>, StateError> {
        self.r.check(self.inner.providers().await)
    }
    async fn provider(&self, protocol: &str, name: &str) -> Result<Option<StoredProvider>, StateError> {
        self.r.check(self.inner.provider(protocol, name).await)
    }
    async fn put_provider(&self, provider: StoredProvider) -> Result<(), StateError> {
        self.r.check(self.inner.put_provider(provider).await)
    }
    async fn remove_provider(&self, protocol: &str, name: &str) -> Result<bool, StateError> {
        self.r.check(self.inner.remove_provider(protocol, name).await)
    }
    async fn import(&self, batch: ImportBatch) -> Result<(), StateError> {
        self.r.check(self.inner.import(batch).await)
    }
    async fn record_mint(&self, mint: MintedSession) -> Result<(), StateError> {
        self.r.check(self.inner.record_mint(mint).await)
    }
    async fn mints_of_user(&self, user_id: &str) -> Result<Vec<MintedSession>, StateError> {
        self.r.check(self.inner.mints_of_user(user_id).await)
    }
    async fn mint(&self, user_id: &str, device_id: &str) -> Result<Option<MintedSession>, StateError> {
        self.r.check(self.inner.mint(user_id, device_id).await)
    }
    async fn remove_mint(&self, user_id: &str, device_id: &str) -> Result<bool, StateError> {
        self.r.check(self.inner.remove_mint(user_id, device_id).await)
    }
    async fn mints_by_sid(&self, provider: &str, sid: &str) -> Result<Vec<MintedSession>, StateError> {
        self.r.check(self.inner.mints_by_sid(provider, sid).await)
    }
    async fn mints_by_subject(&self, protocol: &str, provider: &str, subject: &str) -> Result<Vec<MintedSession>, StateError> {
        self.r.check(self.inner.mints_by_subject(protocol, provider, subject).await)
    }
    async fn mints_older_than(&self, provider: &str, minted_before: u64) -> Result<Vec<MintedSession>, StateError> {
        self.r.check(self.inner.mints_older_than(provider, minted_before).await)
    }
    async fn set_validated(&self, user_id: &str, device_id: &str, at: u64) -> Result<bool, StateError> {
        self.r.check(self.inner.set_validated(user_id, device_id, at).await)
    }
    async fn add_app_password(&self, password: AppPassword) -> Result<(), StateError> {
        self.r.check(self.inner.add_app_password(password).await)
    }
    async fn app_passwords_of_user(&self, user_id: &str) -> Result<Vec<AppPassword>, StateError> {
        self.r.check(self.inner.app_passwords_of_user(user_id).await)
    }
    async fn app_password(&self, id: &str) -> Result<Option<AppPassword>, StateError> {
        self.r.check(self.inner.app_password(id).await)
    }
    async fn remove_app_password(&self, id: &str) -> Result<bool, StateError> {
        self.r.check(self.inner.remove_app_password(id).await)
    }
    async fn touch_app_password(&self, id: &str, device: &str, at: u64) -> Result<bool, StateError> {
        self.r.check(self.inner.touch_app_password(id, device, at).await)
    }
    async fn remove_app_passwords_of_user(&self, user_id: &str) -> Result<u64, StateError> {
        self.r.check(self.inner.remove_app_passwords_of_user(user_id).await)
    }
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<String>> {
        self.inner.changes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Caps, MemoryEphemeral};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn backend_errors_are_reported_and_contract_answers_are_not() {
        let seen = Arc::new(AtomicUsize::new(0));
        let s = seen.clone();
        let on_error: OnError = Arc::new(move |store, backend| {
            assert_eq!((store, backend), ("ephemeral", "memory"));
            s.fetch_add(1, Ordering::Relaxed);
        });
        let caps = Caps { flows: 1, ..Caps::default() };
        let e = ObservedEphemeral::new(Arc::new(MemoryEphemeral::new(caps)), "memory", on_error);
        e.put_once(Kind::Flow, "a", "c", Duration::from_secs(60), b"v".to_vec()).await.unwrap();
        assert!(matches!(e.put_once(Kind::Flow, "b", "c", Duration::from_secs(60), b"v".to_vec()).await, Err(StateError::Full { .. })));
        assert_eq!(e.take(Kind::Flow, "nope", Some("c")).await, Err(TakeError::Unknown));
        assert_eq!(e.take(Kind::Flow, "a", Some("c")).await.unwrap(), b"v");
        assert_eq!(seen.load(Ordering::Relaxed), 0, "a full store and an unknown entry are answers, not failures");
        let r = Reporter { store: "ephemeral", backend: "memory", on_error: e.r.on_error.clone() };
        let _ = r.check::<()>(Err(StateError::Unavailable { backend: "redis", detail: "down".into() }));
        assert_eq!(seen.load(Ordering::Relaxed), 1);
    }
}
