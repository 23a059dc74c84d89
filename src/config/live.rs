//! The configuration in service, swappable while the proxy runs.
//!
//! [`Live`] holds one `Arc<Config>`; everything that reads settings at the time it uses them
//! (per request, per new connection, per sweep) asks it, and a reload replaces the whole
//! value at once ([`Live::replace`]), so a reader sees either the old file or the new one,
//! never a mix. Settings bound at start never differ between the two
//! ([`super::restart`]), so reading them here is the same as reading the start-up value.
//! Reads are lock-free (`arc-swap`).

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};

use super::Config;

/// The configuration in service (cheap to clone: all clones see the same swaps).
#[derive(Clone)]
pub struct Live(Arc<ArcSwap<Config>>);

impl Live {
    pub fn new(config: Arc<Config>) -> Live {
        Live(Arc::new(ArcSwap::new(config)))
    }

    /// The configuration now, for a short read (do not hold it across long waits).
    pub fn get(&self) -> Guard<Arc<Config>> {
        self.0.load()
    }

    /// The configuration now, as an `Arc` to keep.
    pub fn snapshot(&self) -> Arc<Config> {
        self.0.load_full()
    }

    /// Put `next` in service; readers from now on see it.
    pub fn replace(&self, next: Arc<Config>) {
        self.0.store(next);
    }
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Live").field(&*self.get()).finish()
    }
}
