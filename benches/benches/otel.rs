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
use observe::opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// Allocations so far.
static ALLOCS: AtomicU64 = AtomicU64::new(0);

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
        .with_span_processor(observe_benches::DiscardSpans)
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

async fn hello() -> &'static str {
    "hello"
}

/// Times one in-process service under the benchmark's request for `flags`.
fn bench_service<S, B>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &actix_web::rt::SystemRunner,
    name: &str,
    service: &S,
    flags: &'static str,
) where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(observe_benches::drive(service, iters, || {
                observe_benches::hello_request_with_flags(flags)
            }))
        })
    });
}

/// Per-request cost with tracing on: the hello-world app bare, wrapped in
/// `observe::Middleware` (a server span whose parent is extracted from the request by
/// the global propagator, observe's W3C one) and wrapped in tracing-actix-web (built
/// without its `opentelemetry` feature here, so it makes a span but extracts nothing),
/// under observe's layer and an SDK tracer provider that drops finished spans, for a
/// sampled and an unsampled incoming `traceparent`.
fn http_traced(c: &mut Criterion) {
    use actix_web::{App, test, web};

    observe::opentelemetry::global::set_text_map_propagator(
        observe::propagation::W3cTraceContext::new(),
    );
    // The SDK's default sampler follows the parent; `observe::init()` declares it so.
    observe::propagation::set_parent_based_sampling(true);
    let provider = SdkTracerProvider::builder()
        .with_span_processor(observe_benches::DiscardSpans)
        .build();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(
        observe::telemetry::layer(provider.tracer("bench"), tracing::Level::INFO),
    ));
    let rt = actix_web::rt::System::new();
    let mut group = c.benchmark_group("http_traced");
    group.measurement_time(Duration::from_secs(3));
    tracing::dispatcher::with_default(&dispatch, || {
        let bare = rt.block_on(test::init_service(
            App::new().route("/hello/{name}", web::get().to(hello)),
        ));
        let observed = rt.block_on(test::init_service(
            App::new()
                .wrap(observe::Middleware::new())
                .route("/hello/{name}", web::get().to(hello)),
        ));
        let tracing_actix = rt.block_on(test::init_service(
            App::new()
                .wrap(tracing_actix_web::TracingLogger::default())
                .route("/hello/{name}", web::get().to(hello)),
        ));
        for (trace, flags) in [("sampled", "01"), ("unsampled", "00")] {
            bench_service(&mut group, &rt, &format!("{trace}/bare"), &bare, flags);
            bench_service(
                &mut group,
                &rt,
                &format!("{trace}/observe_middleware"),
                &observed,
                flags,
            );
            bench_service(
                &mut group,
                &rt,
                &format!("{trace}/tracing_actix_web"),
                &tracing_actix,
                flags,
            );
        }
    });
    group.finish();
}

criterion_group!(benches, bench, propagation, http_traced);
criterion_main!(benches);
