//! Per-call cost of instrumenting a function, side by side in one process:
//! bare, `#[instrumented]` (metrics only; metrics + span with no subscriber),
//! hand-written code with static pre-resolved `prometheus` children and
//! `std::time::Instant`, naive `with_label_values` per call, `#[autometrics]` (the backend
//! this build was compiled with), and `#[tracing::instrument]`; on one thread and on two
//! threads calling the same function.
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
