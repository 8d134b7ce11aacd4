//! The clock of the hot path.
//!
//! Two `std::time::Instant::now()` reads cost about 46 ns on this project's reference
//! machine, most of an instrumented call. `quanta` reads the TSC when the CPU has an
//! invariant one (and falls back to the OS monotonic clock when it does not); a raw read
//! plus one scaled subtraction costs a fraction of that.

//!
//! `quanta::Clock::raw` is not inlined across crates: every read was a call through the
//! GOT, and made the hot path's entry and exit non-leaf functions (registers saved and
//! restored around it). When `quanta` reads the TSC, [`raw`] reads it itself, inline.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use once_cell::sync::Lazy;

static CLOCK: Lazy<quanta::Clock> = Lazy::new(|| {
    let clock = quanta::Clock::new();
    TSC.store(reads_tsc(&clock), Relaxed);
    clock
});

/// Set once `CLOCK` is known to read the TSC: [`raw`] then executes `rdtsc` itself.
/// Before that (and where it does not) readings come from `CLOCK`, the same source.
static TSC: AtomicBool = AtomicBool::new(false);

/// Whether `clock.raw()` is the TSC: its reading falls between two `rdtsc` taken around
/// it, three times in a row (a monotonic clock in nanoseconds never does: its scale and
/// origin differ from the counter's).
#[cfg(target_arch = "x86_64")]
fn reads_tsc(clock: &quanta::Clock) -> bool {
    (0..3).all(|_| {
        // SAFETY: `rdtsc` exists on every x86-64 CPU.
        let before = unsafe { core::arch::x86_64::_rdtsc() };
        let reading = clock.raw();
        // SAFETY: as above.
        let after = unsafe { core::arch::x86_64::_rdtsc() };
        before <= reading && reading <= after
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn reads_tsc(_: &quanta::Clock) -> bool {
    false
}

/// Calibrates the clock now instead of on the first instrumented call.
pub fn init() {
    Lazy::force(&CLOCK);
}

/// A raw, monotonic timestamp; only meaningful to [`nanos_between`].
#[inline(always)]
pub fn raw() -> u64 {
    #[cfg(target_arch = "x86_64")]
    if TSC.load(Relaxed) {
        // SAFETY: `rdtsc` exists on every x86-64 CPU; `CLOCK` reads the same counter.
        return unsafe { core::arch::x86_64::_rdtsc() };
    }
    CLOCK.raw()
}

/// Whether [`raw`] reads the TSC inline (after the clock's first use).
#[cfg(test)]
fn reads_tsc_inline() -> bool {
    Lazy::force(&CLOCK);
    TSC.load(Relaxed)
}

/// Nanoseconds between two [`raw`] timestamps (0 if `end` precedes `start`).
#[inline(always)]
pub fn nanos_between(start: u64, end: u64) -> u64 {
    if end <= start {
        return 0;
    }
    CLOCK.delta_as_nanos(start, end)
}

/// The number of raw ticks in `duration` (for deadlines compared with [`raw`] readings).
pub fn ticks(duration: std::time::Duration) -> u64 {
    const PROBE: u64 = 1 << 32;
    let nanos_per_probe = CLOCK.delta_as_nanos(0, PROBE).max(1) as u128;
    (duration.as_nanos() * PROBE as u128 / nanos_per_probe).min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_readings_and_the_clocks_agree() {
        let tsc = reads_tsc_inline();
        if cfg!(target_arch = "x86_64")
            && std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|info| {
                ["constant_tsc", "nonstop_tsc", "rdtscp"]
                    .iter()
                    .all(|flag| info.contains(flag))
            })
        {
            assert!(tsc, "an invariant TSC is read inline");
        }
        // Both sources, interleaved, stay monotonic and measure what `Instant` measures.
        let wall = std::time::Instant::now();
        let start = raw();
        let quanta_start = CLOCK.raw();
        assert!(
            start <= quanta_start,
            "same source: {start} then {quanta_start}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        let end = raw();
        let elapsed = nanos_between(start, end);
        let wall = wall.elapsed().as_nanos() as u64;
        assert!(quanta_start <= end);
        assert!(
            elapsed >= 19_000_000 && elapsed <= wall + 1_000_000,
            "{elapsed} ns measured, {wall} ns by Instant"
        );
    }
}
