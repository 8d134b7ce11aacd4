//! Shared pieces of observe's benchmarks: a two-thread contention driver.

use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Runs `f` `iters` times on each of `threads` threads started together, and returns the
/// longest per-thread time: per-call cost under contention, comparable to one thread's.
///
/// ```
/// let elapsed = observe_benches::contended(2, 1_000, || { std::hint::black_box(1 + 1); });
/// assert!(elapsed > std::time::Duration::ZERO);
/// ```
pub fn contended(threads: usize, iters: u64, f: impl Fn() + Sync) -> Duration {
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for _ in 0..iters {
                        f();
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .max()
            .unwrap_or_default()
    })
}
