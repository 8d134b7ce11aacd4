//! The clock of the hot path.
//!
//! Two `std::time::Instant::now()` reads cost about 46 ns on this project's reference
//! machine, most of an instrumented call. `quanta` reads the TSC when the CPU has an
//! invariant one (and falls back to the OS monotonic clock when it does not); a raw read
//! plus one scaled subtraction costs a fraction of that.

use once_cell::sync::Lazy;

static CLOCK: Lazy<quanta::Clock> = Lazy::new(quanta::Clock::new);

/// Calibrates the clock now instead of on the first instrumented call.
pub fn init() {
    Lazy::force(&CLOCK);
}

/// A raw, monotonic timestamp; only meaningful to [`nanos_between`].
#[inline(always)]
pub fn raw() -> u64 {
    CLOCK.raw()
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
