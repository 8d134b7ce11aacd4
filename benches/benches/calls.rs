//! Per-call cost of instrumenting a function, side by side in one process:
//! bare, `#[instrumented]` (metrics only; metrics + span with no subscriber),
//! hand-written code with static pre-resolved `prometheus` children and
//! `std::time::Instant`, naive `with_label_values` per call, `#[autometrics]` (the backend
//! this build was compiled with), and `#[tracing::instrument]`; on one thread and on two
//! threads calling the same function. The `async_` rows are `async fn`s with a `?`, each
//! call polled once to completion: bare, `#[instrumented]` without and with its span
//! (no `.await` in the body: run in place), and the same three whose body awaits a ready
//! future (`#[instrumented]` polls those inside `Timed`); their added cost is over
//! `async_bare`. The `try_` rows are synchronous functions with a `?`: bare, with
//! `#[instrumented(fields(x))]` (a span the function builds itself) and with
//! `#[tracing::instrument(skip_all, fields(x))]`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use once_cell::sync::Lazy;
use prometheus::{Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts};

/// The work every variant does: small, so the instrumentation dominates.
#[inline(always)]
fn work(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(7)
}

#[inline(never)]
fn bare(x: u64) -> u64 {
    work(x)
}

#[observe::instrumented(span = false)]
#[inline(never)]
fn observe_metrics(x: u64) -> u64 {
    work(x)
}

#[observe::instrumented]
#[inline(never)]
fn observe_full(x: u64) -> u64 {
    work(x)
}

/// The step that can fail in the `async` rows: never does here.
#[derive(Debug)]
struct Overflow;

#[inline(always)]
fn checked(x: u64) -> Result<u64, Overflow> {
    if x == u64::MAX {
        Err(Overflow)
    } else {
        Ok(work(x))
    }
}

async fn bare_try(x: u64) -> Result<u64, Overflow> {
    let y = checked(x)?;
    Ok(y)
}

#[observe::instrumented(span = false)]
async fn metrics_try(x: u64) -> Result<u64, Overflow> {
    let y = checked(x)?;
    Ok(y)
}

#[observe::instrumented]
async fn full_try(x: u64) -> Result<u64, Overflow> {
    let y = checked(x)?;
    Ok(y)
}

async fn bare_await(x: u64) -> Result<u64, Overflow> {
    let y = std::future::ready(checked(x)?).await;
    Ok(y)
}

#[observe::instrumented(span = false)]
async fn metrics_await(x: u64) -> Result<u64, Overflow> {
    let y = std::future::ready(checked(x)?).await;
    Ok(y)
}

#[observe::instrumented]
async fn full_await(x: u64) -> Result<u64, Overflow> {
    let y = std::future::ready(checked(x)?).await;
    Ok(y)
}

/// A synchronous function with a `?` and a field of its own: its span is built by the
/// function (`fields(…)`), the call kept where a `?` leaves it.
#[inline(never)]
fn try_bare(x: u64) -> u64 {
    sync_try(x).unwrap_or(0)
}

#[inline(always)]
fn sync_try(x: u64) -> Result<u64, Overflow> {
    let y = checked(x)?;
    Ok(y)
}

#[observe::instrumented(fields(x))]
#[inline(never)]
fn fields_try(x: u64) -> Result<u64, Overflow> {
    let y = checked(x)?;
    Ok(y)
}

#[inline(never)]
fn try_instrumented_fields(x: u64) -> u64 {
    fields_try(x).unwrap_or(0)
}

#[tracing::instrument(skip_all, fields(x))]
#[inline(never)]
fn tracing_fields_try(x: u64) -> Result<u64, Overflow> {
    let y = checked(x)?;
    Ok(y)
}

#[inline(never)]
fn try_tracing_instrument_fields(x: u64) -> u64 {
    tracing_fields_try(x).unwrap_or(0)
}

/// Polls `future` once; every future here is ready at its first poll.
#[inline(always)]
fn poll_once(future: impl Future<Output = Result<u64, Overflow>>) -> u64 {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Ok(v)) => v,
        _ => 0,
    }
}

/// One `fn(u64) -> u64` per async function, polling its future once.
macro_rules! polled {
    ($($name:ident => $async_fn:ident),* $(,)?) => {$(
        #[inline(never)]
        fn $name(x: u64) -> u64 {
            poll_once($async_fn(x))
        }
    )*};
}

polled! {
    async_bare => bare_try,
    async_instrumented_metrics => metrics_try,
    async_instrumented_metrics_span => full_try,
    async_await_bare => bare_await,
    async_await_instrumented_metrics => metrics_await,
    async_await_instrumented_metrics_span => full_await,
}

static REGISTRY: Lazy<prometheus::Registry> = Lazy::new(prometheus::Registry::new);

static HAND_CALLS: Lazy<IntCounter> = Lazy::new(|| {
    let vec = IntCounterVec::new(
        Opts::new("hand_calls_total", "calls"),
        &["function", "module", "result"],
    )
    .unwrap();
    REGISTRY.register(Box::new(vec.clone())).unwrap();
    vec.with_label_values(&["hand", "calls", "ok"])
});

static HAND_DURATION: Lazy<Histogram> = Lazy::new(|| {
    let vec = HistogramVec::new(
        HistogramOpts::new("hand_duration_seconds", "duration"),
        &["function", "module"],
    )
    .unwrap();
    REGISTRY.register(Box::new(vec.clone())).unwrap();
    vec.with_label_values(&["hand", "calls"])
});

/// The best one can write by hand with `prometheus`: children resolved once.
#[inline(never)]
fn hand_written(x: u64) -> u64 {
    let start = Instant::now();
    let out = work(x);
    HAND_CALLS.inc();
    HAND_DURATION.observe(start.elapsed().as_secs_f64());
    out
}

static NAIVE_CALLS: Lazy<IntCounterVec> = Lazy::new(|| {
    let vec = IntCounterVec::new(
        Opts::new("naive_calls_total", "calls"),
        &["function", "module", "result"],
    )
    .unwrap();
    REGISTRY.register(Box::new(vec.clone())).unwrap();
    vec
});

static NAIVE_DURATION: Lazy<HistogramVec> = Lazy::new(|| {
    let vec = HistogramVec::new(
        HistogramOpts::new("naive_duration_seconds", "duration"),
        &["function", "module"],
    )
    .unwrap();
    REGISTRY.register(Box::new(vec.clone())).unwrap();
    vec
});

/// What most code does: resolve the label set (a hash and a lock) on every call.
#[inline(never)]
fn naive(x: u64) -> u64 {
    let start = Instant::now();
    let out = work(x);
    NAIVE_CALLS
        .with_label_values(&["naive", "calls", "ok"])
        .inc();
    NAIVE_DURATION
        .with_label_values(&["naive", "calls"])
        .observe(start.elapsed().as_secs_f64());
    out
}

#[cfg(any(feature = "autometrics-default", feature = "autometrics-prometheus"))]
#[autometrics::autometrics]
#[inline(never)]
fn autometrics_fn(x: u64) -> u64 {
    work(x)
}

#[tracing::instrument(skip_all)]
#[inline(never)]
fn tracing_instrument(x: u64) -> u64 {
    work(x)
}

type Variant = (&'static str, fn(u64) -> u64);

fn variants() -> Vec<Variant> {
    // `mut` is needed only when an autometrics backend feature adds a variant.
    #[cfg_attr(
        not(any(feature = "autometrics-default", feature = "autometrics-prometheus")),
        allow(unused_mut)
    )]
    let mut all: Vec<Variant> = vec![
        ("bare", bare),
        ("instrumented_metrics", observe_metrics),
        ("instrumented_metrics_span", observe_full),
        ("hand_written", hand_written),
        ("naive_with_label_values", naive),
        ("tracing_instrument", tracing_instrument),
        ("try_bare", try_bare),
        ("try_instrumented_fields", try_instrumented_fields),
        (
            "try_tracing_instrument_fields",
            try_tracing_instrument_fields,
        ),
        ("async_bare", async_bare),
        ("async_instrumented_metrics", async_instrumented_metrics),
        (
            "async_instrumented_metrics_span",
            async_instrumented_metrics_span,
        ),
        ("async_await_bare", async_await_bare),
        (
            "async_await_instrumented_metrics",
            async_await_instrumented_metrics,
        ),
        (
            "async_await_instrumented_metrics_span",
            async_await_instrumented_metrics_span,
        ),
    ];
    #[cfg(all(
        feature = "autometrics-default",
        not(feature = "autometrics-prometheus")
    ))]
    all.push(("autometrics_default_backend", autometrics_fn));
    #[cfg(all(
        feature = "autometrics-prometheus",
        not(feature = "autometrics-default")
    ))]
    all.push(("autometrics_prometheus_backend", autometrics_fn));
    #[cfg(all(feature = "autometrics-prometheus", feature = "autometrics-default"))]
    all.push(("autometrics_both_backends", autometrics_fn));
    all
}

fn single_thread(c: &mut Criterion) {
    observe::metrics::init();
    let mut group = c.benchmark_group("one_thread");
    for (name, f) in variants() {
        group.bench_function(name, |b| {
            let mut x = 0u64;
            b.iter(|| {
                x = x.wrapping_add(1);
                black_box(f(black_box(x)))
            });
        });
    }
    group.finish();
}

fn two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("two_threads");
    for (name, f) in variants() {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                observe_benches::contended(2, iters, || {
                    black_box(f(black_box(7)));
                })
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(30);
    targets = single_thread, two_threads
}
criterion_main!(benches);
