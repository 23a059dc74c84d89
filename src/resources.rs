//! Process resources a proxy holding many connections needs to manage itself: the open-files
//! limit (one descriptor per connection, so `limits.max_connections` must fit under it), and
//! handing memory freed by closed connections back to the operating system.
//!
//! glibc's allocator keeps freed memory in its per-thread arenas, and a page once touched
//! stays resident until it is given back explicitly, so after a burst of connections closes
//! the process would keep its peak size (docs/benchmarks.md, "Idle connections").
//! [`return_memory_forever`] asks glibc to return free pages (`malloc_trim`) when the number
//! of open connections has fallen well below its recent high, or when many connections have
//! parked (an idle HTTP/1.1 connection gives back its HTTP buffers, `server/conn.rs`) since the
//! last time, which is cheap and rare.
//!
//! The binary's own allocations go to jemalloc (`src/main.rs`), whose background thread
//! returns freed pages by itself within about a second; the trim still covers what C code
//! (SQLite) allocates through glibc, and every allocation of a program that uses the library
//! with glibc's allocator (the integration tests).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Raise the soft open-files limit to the hard limit (as servers do at start), and say so when
/// `connections` plus a reserve for upstream connections, state and logs still does not fit.
pub fn raise_open_files_limit(connections: usize) {
    // SAFETY: getrlimit/setrlimit only read and write the struct given.
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    let need = connections as u64 + RESERVED_FILES;
    if lim.rlim_cur < need {
        tracing::warn!(
            open_files = lim.rlim_cur,
            max_connections = connections,
            "the open-files limit is below limits.max_connections + {RESERVED_FILES}: raise it (systemd LimitNOFILE=, ulimit -n) or lower max_connections; accepts fail beyond it"
        );
    }
}

/// Descriptors kept for everything but client connections (upstream pool, state, logs).
const RESERVED_FILES: u64 = 1024;

/// Open client connections across all accept loops, and the high mark since memory was last
/// returned. One per process, as the allocator is.
pub struct MemoryReturn {
    open: AtomicUsize,
    high: AtomicUsize,
    parked: AtomicUsize,
}

static CONNECTIONS: MemoryReturn = MemoryReturn::new();

/// Return memory once the open connections have fallen this far below their high mark.
const DROP_TO_RETURN: usize = 256;
/// How often the open count is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(2);

/// A client connection was accepted: it is counted until the guard is dropped.
pub fn connection_opened() -> ConnectionCount {
    CONNECTIONS.opened()
}

/// An idle connection freed its HTTP state (parked).
pub fn connection_parked() {
    CONNECTIONS.parked.fetch_add(1, Ordering::Relaxed);
}

/// Watch the open connections forever and hand free memory back after many closed.
pub async fn return_memory_forever() {
    let mut tick = tokio::time::interval(CHECK_EVERY);
    loop {
        tick.tick().await;
        if CONNECTIONS.due() {
            let _ = tokio::task::spawn_blocking(trim).await;
        }
    }
}

impl Default for MemoryReturn {
    fn default() -> MemoryReturn {
        MemoryReturn::new()
    }
}

impl MemoryReturn {
    pub const fn new() -> MemoryReturn {
        MemoryReturn { open: AtomicUsize::new(0), high: AtomicUsize::new(0), parked: AtomicUsize::new(0) }
    }

    fn opened(&'static self) -> ConnectionCount {
        let now = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.high.fetch_max(now, Ordering::Relaxed);
        ConnectionCount(self)
    }

    /// Whether enough connections closed since the high mark, or parked since the last
    /// time, that returning memory is worth it; if so both marks are reset.
    fn due(&self) -> bool {
        let open = self.open.load(Ordering::Relaxed);
        let high = self.high.load(Ordering::Relaxed);
        let closed = high >= 64 && high.saturating_sub(open) >= DROP_TO_RETURN.min(high / 2);
        let parked = self.parked.load(Ordering::Relaxed) >= DROP_TO_RETURN;
        if closed || parked {
            self.high.store(open, Ordering::Relaxed);
            self.parked.store(0, Ordering::Relaxed);
            return true;
        }
        false
    }
}

/// Decrements the open count when a connection ends.
pub struct ConnectionCount(&'static MemoryReturn);

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Give free memory back to the operating system.
fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_returned_only_after_a_real_drop() {
        let m: &'static MemoryReturn = Box::leak(Box::new(MemoryReturn::new()));
        let mut held: Vec<_> = (0..1000).map(|_| m.opened()).collect();
        assert!(!m.due(), "nothing closed yet");
        held.truncate(900);
        assert!(!m.due(), "100 of 1000 closed is ordinary churn");
        held.truncate(700);
        assert!(m.due(), "300 closed");
        assert!(!m.due(), "the high mark was reset to 700");
        held.clear();
        assert!(m.due(), "all closed");
        let few: Vec<_> = (0..10).map(|_| m.opened()).collect();
        drop(few);
        assert!(!m.due(), "a handful of connections is not worth a trim");
        for _ in 0..DROP_TO_RETURN - 1 {
            m.parked.fetch_add(1, Ordering::Relaxed);
        }
        assert!(!m.due(), "not yet enough parked");
        m.parked.fetch_add(1, Ordering::Relaxed);
        assert!(m.due(), "{DROP_TO_RETURN} parked");
        assert!(!m.due(), "the parked count was reset");
    }
}
