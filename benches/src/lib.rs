//! Shared pieces of observe's benchmarks: a two-thread contention driver, and the
//! request the HTTP benchmarks send.

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

/// The request every HTTP benchmark sends: `GET /hello/world` with a `traceparent` to
/// extract.
///
/// ```
/// let req = observe_benches::hello_request();
/// assert_eq!(req.path(), "/hello/world");
/// ```
pub fn hello_request() -> actix_http::Request {
    actix_web::test::TestRequest::get()
        .uri("/hello/world")
        .insert_header((
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ))
        .to_request()
}
