//! An in-process copy of account-link lookups, for the SQLite backend.
//!
//! Every login looks its link up ([`super::Durable::link`]); through sqlx that is a hop to a
//! SQLite worker thread and back plus a read transaction, the largest part of what the
//! embedded database added to a login's CPU (docs/benchmarks.md). Links change rarely (a
//! first login, linking, unlinking), and with SQLite one proxy process owns the file (a
//! second copy cannot bind the port and stops), so a copy in memory stays exact if every
//! write of links empties it. PostgreSQL is shared by several proxies and has no such copy.
//!
//! Exactness under concurrency: a lookup that misses notes the cache's generation before it
//! reads the database, and its answer is kept only if no write emptied the cache meanwhile;
//! a writer empties it (and moves the generation on) after its write is committed. So a value
//! read before a write can never be kept after it. Bounded: at [`CAP`] entries it starts over.

use std::collections::HashMap;
use std::sync::Mutex;

use super::durable::Link;

/// Most lookups kept (answers "no link" included).
pub const CAP: usize = 10_000;

type Key = (String, String, String);

#[derive(Default)]
struct Inner {
    generation: u64,
    links: HashMap<Key, Option<Link>>,
}

#[derive(Default)]
pub struct LinkCache {
    inner: Mutex<Inner>,
}

fn key(protocol: &str, provider: &str, subject: &str) -> Key {
    (protocol.to_string(), provider.to_string(), subject.to_string())
}

impl LinkCache {
    /// The kept answer, or the generation to hand to [`LinkCache::fill`] after reading.
    pub fn get(&self, protocol: &str, provider: &str, subject: &str) -> Result<Option<Link>, u64> {
        let g = self.inner.lock().expect("link cache lock");
        match g.links.get(&key(protocol, provider, subject)) {
            Some(found) => Ok(found.clone()),
            None => Err(g.generation),
        }
    }

    /// Keep what the database answered, unless a write happened since `generation`.
    pub fn fill(&self, generation: u64, protocol: &str, provider: &str, subject: &str, found: Option<Link>) {
        let mut g = self.inner.lock().expect("link cache lock");
        if g.generation != generation {
            return;
        }
        if g.links.len() >= CAP {
            g.links.clear();
        }
        g.links.insert(key(protocol, provider, subject), found);
    }

    /// Forget everything: called after every write of links (committed or failed).
    pub fn invalidate(&self) {
        let mut g = self.inner.lock().expect("link cache lock");
        g.generation += 1;
        g.links.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(user: &str) -> Link {
        Link { protocol: "oid".into(), provider: "p".into(), subject: "s".into(), user_id: user.into(), linked_at: 1 }
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_kept() {
        let c = LinkCache::default();
        let generation = c.get("oid", "p", "s").unwrap_err();
        c.fill(generation, "oid", "p", "s", None);
        assert_eq!(c.get("oid", "p", "s").unwrap(), None, "a missing link is kept too");
        c.invalidate();
        // A lookup read the old answer, then a write committed and emptied the cache.
        let before = c.get("oid", "p", "s").unwrap_err();
        c.invalidate();
        c.fill(before, "oid", "p", "s", None);
        assert!(c.get("oid", "p", "s").is_err(), "the stale answer was dropped");
        let now = c.get("oid", "p", "s").unwrap_err();
        c.fill(now, "oid", "p", "s", Some(link("u1")));
        assert_eq!(c.get("oid", "p", "s").unwrap().unwrap().user_id, "u1");
        assert!(c.get("oid", "p", "other").is_err());
    }

    #[test]
    fn bounded() {
        let c = LinkCache::default();
        for i in 0..(CAP + 5) {
            let g = c.get("oid", "p", &i.to_string()).unwrap_err();
            c.fill(g, "oid", "p", &i.to_string(), None);
        }
        assert!(c.inner.lock().unwrap().links.len() <= CAP);
    }
}
