//! Per-call cost with an OpenTelemetry layer installed, inside a sampled and inside an
//! unsampled trace: `#[instrumented]` beside `#[tracing::instrument]`, each under
//! observe's layer (`observe::telemetry::layer`: children of unsampled spans filtered
//! out) and under the stock `tracing_opentelemetry::layer()`. Same SDK tracer provider
//! (parent-based always-on sampler, a processor that drops spans: no export cost), one
//! process. A counting allocator reports allocations per call beside the times.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use observe::opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use observe::opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanProcessor};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// Allocations so far (counted only without the `jemalloc` feature).
static ALLOCS: AtomicU64 = AtomicU64::new(0);

#[cfg(not(feature = "jemalloc"))]
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::sync::atomic::Ordering::Relaxed;

    use super::ALLOCS;

    struct Counting;

    // SAFETY: forwards to the system allocator; only counts.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            ALLOCS.fetch_add(1, Relaxed);
            // SAFETY: same contract as ours.
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: same contract as ours.
            unsafe { System.dealloc(ptr, layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            ALLOCS.fetch_add(1, Relaxed);
            // SAFETY: same contract as ours.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;
}

#[derive(Debug)]
struct Discard;

impl SpanProcessor for Discard {
    fn on_start(
        &self,
        _: &mut observe::opentelemetry_sdk::trace::Span,
        _: &observe::opentelemetry::Context,
    ) {
    }
    fn on_end(&self, span: SpanData) {
        black_box(span);
    }
    fn force_flush(&self) -> observe::opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(
        &self,
        _: Duration,
    ) -> observe::opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

#[observe::instrumented(fields(x))]
#[inline(never)]
fn observe_fn(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(7)
}

#[tracing::instrument]
#[inline(never)]
fn tracing_fn(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(7)
}

fn root(sampled: bool) -> tracing::Span {
    let span = tracing::info_span!("root");
    let remote = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        },
        true,
        TraceState::default(),
    );
    let _ =
        span.set_parent(observe::opentelemetry::Context::new().with_remote_span_context(remote));
    span
}

fn bench(c: &mut Criterion) {
    let provider = SdkTracerProvider::builder()
        .with_span_processor(Discard)
        .build();
    let mut group = c.benchmark_group("otel");
    group.measurement_time(Duration::from_secs(3));
    let mut allocs = Vec::new();
    for layer in ["observe_layer", "stock_layer"] {
        let dispatch =
            if layer == "observe_layer" {
                tracing::Dispatch::new(tracing_subscriber::registry().with(
                    observe::telemetry::layer(provider.tracer("bench"), tracing::Level::INFO),
                ))
            } else {
                tracing::Dispatch::new(
                    tracing_subscriber::registry()
                        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"))),
                )
            };
        tracing::dispatcher::with_default(&dispatch, || {
            for sampled in [true, false] {
                let trace = if sampled { "sampled" } else { "unsampled" };
                let root = root(sampled);
                let _entered = root.enter();
                for (name, f) in [
                    ("instrumented", observe_fn as fn(u64) -> u64),
                    ("tracing_instrument", tracing_fn as fn(u64) -> u64),
                ] {
                    group.bench_function(format!("{layer}/{trace}/{name}"), |b| {
                        b.iter(|| f(black_box(7)))
                    });
                    for _ in 0..1_000 {
                        f(7);
                    }
                    let before = ALLOCS.load(Relaxed);
                    for _ in 0..10_000 {
                        f(black_box(7));
                    }
                    let per_call = (ALLOCS.load(Relaxed) - before) as f64 / 10_000.0;
                    allocs.push(format!(
                        "{layer}/{trace}/{name}: {per_call:.2} allocations/call"
                    ));
                }
            }
        });
    }
    group.finish();
    println!("\nallocations per call (after warm-up):");
    for line in allocs {
        println!("  {line}");
    }
}

/// Extraction plus injection of a typical header pair (a sampled `traceparent` and a
/// two-member `tracestate`): observe's W3C propagator against the SDK's.
fn propagation(c: &mut Criterion) {
    use std::collections::HashMap;

    use observe::opentelemetry::propagation::TextMapPropagator;

    let mut incoming = HashMap::new();
    incoming.insert(
        "traceparent".to_owned(),
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned(),
    );
    incoming.insert(
        "tracestate".to_owned(),
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".to_owned(),
    );
    let ours = observe::propagation::W3cTraceContext::new();
    let stock = observe::opentelemetry_sdk::propagation::TraceContextPropagator::new();
    let mut group = c.benchmark_group("propagation");
    group.measurement_time(Duration::from_secs(3));
    let propagators: [(&str, &dyn TextMapPropagator); 2] =
        [("observe_w3c", &ours), ("sdk_trace_context", &stock)];
    for (name, propagator) in propagators {
        group.bench_function(format!("extract_inject/{name}"), |b| {
            b.iter(|| {
                let cx = propagator.extract(black_box(&incoming));
                let mut out: HashMap<String, String> = HashMap::with_capacity(2);
                propagator.inject_context(&cx, &mut out);
                black_box(out)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench, propagation);
criterion_main!(benches);
