//! Inside an unsampled trace, `#[instrumented]` calls cost the OpenTelemetry layer
//! nothing: no span is built, no attribute formatted, nothing allocated. Counted with a
//! global allocator, against the stock `tracing-opentelemetry` layer in the same
//! process (which allocates for every span and lets the SDK drop it).
//! (The `heap` feature no longer picks the allocator, so this runs in every build.)
#![cfg(feature = "otel")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use observe::opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use observe::opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// Counts the allocations of a thread that asked for it (the test harness's own thread
/// allocates while a test runs).
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn count_this_thread() {
    if COUNTED.try_with(std::cell::Cell::get).unwrap_or(false) {
        ALLOCS.fetch_add(1, Relaxed);
    }
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_this_thread();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_this_thread();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[observe::instrumented(fields(order = ?order))]
fn price(order: &str) -> usize {
    order.len()
}

fn allocations_per_100_calls(dispatch: &tracing::Dispatch, sampled: bool) -> u64 {
    tracing::dispatcher::with_default(dispatch, || {
        let root = tracing::info_span!("request");
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
        let parent = opentelemetry::Context::new().with_remote_span_context(remote);
        root.set_parent(parent).unwrap();
        let _entered = root.enter();
        for _ in 0..100 {
            price("warm-up");
        }
        let before = ALLOCS.load(Relaxed);
        COUNTED.with(|c| c.set(true));
        for _ in 0..100 {
            std::hint::black_box(price("order-1234"));
        }
        COUNTED.with(|c| c.set(false));
        ALLOCS.load(Relaxed) - before
    })
}

#[test]
fn unsampled_children_allocate_nothing_in_the_layer() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let ours = tracing::Dispatch::new(tracing_subscriber::registry().with(
        observe::telemetry::layer(provider.tracer("t"), tracing::Level::INFO),
    ));
    let stock = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("t"))),
    );
    assert_eq!(allocations_per_100_calls(&ours, false), 0);
    assert!(
        allocations_per_100_calls(&stock, false) >= 100,
        "the stock layer allocates per span: the comparison is meaningful"
    );
    // Sampled traces are still recorded in full by our layer.
    exporter.reset();
    assert!(allocations_per_100_calls(&ours, true) > 0);
    let spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.iter().filter(|s| s.name == "price").count(), 200);
}
