//! The in-memory [`Ephemeral`] backend: one concurrent map per kind and shape of use, each
//! bounded by [`Caps`], everything lost on restart.
//!
//! Times are wall-clock milliseconds (so `first_seen`'s `until` compares with the rest); tests
//! move this backend's clock forward instead of sleeping. Caps are checked before inserting a
//! new key, so concurrent inserts can pass a cap by at most the number of callers racing.
//! What happens at a cap depends on the shape of use (see [`super::ephemeral`]): take-once,
//! replay and rate entries are refused after a sweep; key/value entries evict those closest to
//! expiry, so a browser session never refuses a login.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use dashmap::DashMap;
use subtle::ConstantTimeEq;

use super::ephemeral::{Ephemeral, Kind, TakeError};
use super::{digest, StateError};

/// How many entries each kind may hold. Every cap is at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Logins in progress ([`Kind::Flow`]).
    pub flows: usize,
    /// Finished logins waiting to be picked up ([`Kind::Completion`]).
    pub completions: usize,
    /// Browser sessions ([`Kind::Session`]).
    pub sessions: usize,
    /// Cached token owners ([`Kind::Caller`]).
    pub callers: usize,
    /// Replay ids, per kind ([`Kind::SamlAssertion`], [`Kind::LogoutJti`]).
    pub replay: usize,
    /// Rate counters, per namespace ([`Kind::Rate`]).
    pub rate: usize,
}

impl Default for Caps {
    fn default() -> Caps {
        Caps { flows: 10_000, completions: 10_000, sessions: 100_000, callers: 10_000, replay: 100_000, rate: 100_000 }
    }
}

impl Caps {
    pub fn of(&self, kind: Kind) -> usize {
        let cap = match kind {
            Kind::Flow => self.flows,
            Kind::Completion => self.completions,
            Kind::Session | Kind::DeviceSession => self.sessions,
            Kind::Caller => self.callers,
            Kind::SamlAssertion | Kind::LogoutJti => self.replay,
            Kind::Rate(_) => self.rate,
        };
        cap.max(1)
    }
}

struct Once {
    created: u64,
    expires: u64,
    browser: [u8; 32],
    value: Vec<u8>,
}

struct Kv {
    expires: u64,
    value: Vec<u8>,
}

struct Window {
    ends: u64,
    hits: u64,
}

/// Something that expires at a wall-clock millisecond.
trait Expires {
    fn expires(&self) -> u64;
}
impl Expires for Once {
    fn expires(&self) -> u64 {
        self.expires
    }
}
impl Expires for Kv {
    fn expires(&self) -> u64 {
        self.expires
    }
}
impl Expires for Window {
    fn expires(&self) -> u64 {
        self.ends
    }
}
impl Expires for u64 {
    fn expires(&self) -> u64 {
        *self
    }
}

type Table<K, V> = Arc<DashMap<K, V>>;

/// One map per kind, created on first use.
struct Tables<K, V>(DashMap<Kind, Table<K, V>>);

impl<K: Eq + Hash, V: Expires> Tables<K, V> {
    fn new() -> Self {
        Tables(DashMap::new())
    }
    fn of(&self, kind: Kind) -> Table<K, V> {
        if let Some(t) = self.0.get(&kind) {
            return t.clone();
        }
        self.0.entry(kind).or_insert_with(|| Arc::new(DashMap::new())).clone()
    }
    fn live(&self, kind: Kind, now: u64) -> usize {
        self.0.get(&kind).map(|t| t.iter().filter(|e| e.expires() > now).count()).unwrap_or(0)
    }
    fn sweep(&self, now: u64) -> usize {
        let tables: Vec<_> = self.0.iter().map(|t| t.value().clone()).collect();
        tables.iter().map(|t| sweep(t, now)).sum()
    }
}

fn sweep<K: Eq + Hash, V: Expires>(t: &DashMap<K, V>, now: u64) -> usize {
    let before = t.len();
    t.retain(|_, e| e.expires() > now);
    before.saturating_sub(t.len())
}

/// Room for one more new key in `t`, sweeping first; `false` when still full.
fn room<K: Eq + Hash, V: Expires>(t: &DashMap<K, V>, key: &K, cap: usize, now: u64) -> bool {
    if t.len() < cap || t.contains_key(key) {
        return true;
    }
    sweep(t, now);
    t.len() < cap
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The in-memory backend. See the module documentation.
pub struct MemoryEphemeral {
    caps: Caps,
    once: Tables<String, Once>,
    kv: Tables<[u8; 32], Kv>,
    seen: Tables<String, u64>,
    rate: Tables<String, Window>,
    /// Added to the wall clock; moved only by tests.
    skew_ms: AtomicU64,
}

impl MemoryEphemeral {
    /// Before a key/value write of `key`: when `kind` is full, evict the tenth of its entries
    /// closest to expiry, so that this is rare, rather than refuse.
    fn make_room(&self, kind: Kind, key: &[u8; 32], now: u64) {
        let (t, cap) = (self.kv.of(kind), self.caps.of(kind));
        if room(&t, key, cap, now) {
            return;
        }
        let mut by_expiry: Vec<([u8; 32], u64)> = t.iter().map(|e| (*e.key(), e.expires)).collect();
        let n = (cap / 10).clamp(1, by_expiry.len().max(1));
        if by_expiry.len() > n {
            by_expiry.select_nth_unstable_by_key(n - 1, |(_, expires)| *expires);
        }
        for (k, _) in by_expiry.into_iter().take(n) {
            t.remove(&k);
        }
    }

    pub fn new(caps: Caps) -> MemoryEphemeral {
        MemoryEphemeral {
            caps,
            once: Tables::new(),
            kv: Tables::new(),
            seen: Tables::new(),
            rate: Tables::new(),
            skew_ms: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        millis(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()).saturating_add(self.skew_ms.load(Ordering::Relaxed))
    }

    /// Move this store's clock forward by `by` (tests only: ages every entry at once).
    #[cfg(test)]
    pub(crate) fn advance(&self, by: Duration) {
        self.skew_ms.fetch_add(millis(by), Ordering::Relaxed);
    }
}

#[async_trait]
impl Ephemeral for MemoryEphemeral {
    async fn put_once(&self, kind: Kind, id: &str, browser: &str, ttl: Duration, value: Vec<u8>) -> Result<(), StateError> {
        let (t, now) = (self.once.of(kind), self.now());
        let id = id.to_owned();
        if !room(&t, &id, self.caps.of(kind), now) {
            return Err(StateError::Full { kind });
        }
        t.insert(id, Once { created: now, expires: now.saturating_add(millis(ttl)), browser: digest(browser), value });
        Ok(())
    }

    async fn take(&self, kind: Kind, id: &str, browser: Option<&str>) -> Result<Vec<u8>, TakeError> {
        let (_, entry) = self.once.of(kind).remove(id).ok_or(TakeError::Unknown)?;
        if entry.expires <= self.now() {
            return Err(TakeError::Expired);
        }
        let presented = digest(browser.ok_or(TakeError::WrongBrowser)?);
        if !bool::from(presented.ct_eq(&entry.browser)) {
            return Err(TakeError::WrongBrowser);
        }
        Ok(entry.value)
    }

    async fn list(&self, kind: Kind) -> Result<Vec<(Duration, Vec<u8>)>, StateError> {
        let now = self.now();
        let t = self.once.of(kind);
        let live = t.iter().filter(|e| e.expires > now);
        Ok(live.map(|e| (Duration::from_millis(now.saturating_sub(e.created)), e.value.clone())).collect())
    }

    async fn count(&self, kind: Kind) -> Result<usize, StateError> {
        let now = self.now();
        Ok(self.once.live(kind, now) + self.kv.live(kind, now) + self.seen.live(kind, now) + self.rate.live(kind, now))
    }

    async fn set(&self, kind: Kind, key: &[u8; 32], value: Vec<u8>, ttl: Duration) -> Result<(), StateError> {
        let now = self.now();
        self.make_room(kind, key, now);
        self.kv.of(kind).insert(*key, Kv { expires: now.saturating_add(millis(ttl)), value });
        Ok(())
    }

    async fn replace(&self, kind: Kind, key: &[u8; 32], expected: Option<&[u8]>, value: Vec<u8>, ttl: Duration) -> Result<bool, StateError> {
        let now = self.now();
        self.make_room(kind, key, now);
        let fresh = Kv { expires: now.saturating_add(millis(ttl)), value };
        // The entry holds its shard's lock: compare and set are one step.
        match self.kv.of(kind).entry(*key) {
            dashmap::Entry::Occupied(mut e) => {
                let current = (e.get().expires > now).then_some(e.get().value.as_slice());
                if current != expected {
                    return Ok(false);
                }
                e.insert(fresh);
            }
            dashmap::Entry::Vacant(e) => {
                if expected.is_some() {
                    return Ok(false);
                }
                e.insert(fresh);
            }
        }
        Ok(true)
    }

    async fn get(&self, kind: Kind, key: &[u8; 32]) -> Result<Option<Vec<u8>>, StateError> {
        let (t, now) = (self.kv.of(kind), self.now());
        let value = t.get(key).map(|e| (e.expires > now).then(|| e.value.clone()));
        match value {
            Some(Some(v)) => Ok(Some(v)),
            Some(None) => {
                t.remove_if(key, |_, e| e.expires <= now);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn delete(&self, kind: Kind, key: &[u8; 32]) -> Result<bool, StateError> {
        Ok(self.kv.of(kind).remove(key).is_some())
    }

    async fn first_seen(&self, kind: Kind, key: &str, until: SystemTime) -> Result<bool, StateError> {
        let (t, now) = (self.seen.of(kind), self.now());
        let until = millis(until.duration_since(UNIX_EPOCH).unwrap_or_default());
        if until <= now {
            return Ok(true);
        }
        let key = key.to_owned();
        if !room(&t, &key, self.caps.of(kind), now) {
            return Err(StateError::Full { kind });
        }
        let mut seen = t.entry(key).or_insert(0);
        if *seen > now {
            return Ok(false);
        }
        *seen = until;
        Ok(true)
    }

    async fn hit(&self, kind: Kind, key: &str, window: Duration) -> Result<u64, StateError> {
        let (t, now) = (self.rate.of(kind), self.now());
        let key = key.to_owned();
        if !room(&t, &key, self.caps.of(kind), now) {
            return Err(StateError::Full { kind });
        }
        let mut w = t.entry(key).or_insert(Window { ends: 0, hits: 0 });
        if w.ends <= now {
            *w = Window { ends: now.saturating_add(millis(window).max(1)), hits: 0 };
        }
        w.hits += 1;
        Ok(w.hits)
    }

    async fn unhit(&self, kind: Kind, key: &str) -> Result<(), StateError> {
        let now = self.now();
        if let Some(mut w) = self.rate.of(kind).get_mut(key) {
            if w.ends > now && w.hits > 0 {
                w.hits -= 1;
            }
        }
        Ok(())
    }

    async fn sweep(&self) -> Result<usize, StateError> {
        let now = self.now();
        Ok(self.once.sweep(now) + self.kv.sweep(now) + self.seen.sweep(now) + self.rate.sweep(now))
    }
}
