//! A coarse monotonic clock in milliseconds, for bookkeeping that is written on every read and
//! write of a connection (the idle watchdog's "when did bytes last move").
//!
//! `CLOCK_MONOTONIC_COARSE` is the kernel's tick-resolution clock (a few milliseconds), read
//! from the vDSO without the TSC: a handful of instructions, where `Instant::now()` with its
//! arithmetic cost about a hundred, several times per forwarded request. Only for durations
//! measured in seconds; latencies use `Instant`.

/// Milliseconds on the coarse monotonic clock (since boot; only differences mean anything).
pub fn coarse_ms() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes to it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut ts) };
    if rc != 0 {
        // Not on this kernel (before 2.6.32): the precise clock, which every Linux has.
        // SAFETY: as above.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    }
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::coarse_ms;
    use std::time::{Duration, Instant};

    #[test]
    fn it_follows_the_precise_clock_within_its_resolution() {
        let (c0, i0) = (coarse_ms(), Instant::now());
        std::thread::sleep(Duration::from_millis(120));
        let (c1, i1) = (coarse_ms(), Instant::now());
        let precise = (i1 - i0).as_millis() as i64;
        let coarse = c1 as i64 - c0 as i64;
        assert!((coarse - precise).abs() <= 25, "coarse {coarse} ms, precise {precise} ms");
        assert!(c1 >= c0);
    }
}
