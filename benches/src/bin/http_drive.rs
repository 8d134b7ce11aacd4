//! The in-process HTTP benchmark's request loop, for instruction counts: `MODE=bare` or
//! `observe`, `N` requests (default 20000) through actix-web's test harness. Run under
//! `valgrind --tool=callgrind --toggle-collect='*http_drive::requests*'` twice with
//! different `N`; the difference divided by the difference in `N` is instructions per
//! request. Counting only inside [`requests`] leaves out start-up, the clock's
//! calibration (one warm-up request makes it happen first) and background timers, whose
//! work under valgrind grows with wall time. `TRACE=01` (sampled) or `TRACE=00`
//! (unsampled) installs observe's layer over an SDK tracer provider that drops finished
//! spans, and the W3C propagator, and sends that `traceparent` flag.

use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, test, web};

async fn hello() -> &'static str {
    "hello"
}

/// The measured loop: everything it runs, runs inside this frame.
#[inline(never)]
fn requests<S, B>(rt: &actix_web::rt::SystemRunner, service: &S, n: u64, flags: &str)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    rt.block_on(observe_benches::drive(service, n, || {
        observe_benches::hello_request_with_flags(flags)
    }));
}

fn main() {
    let observe = std::env::var("MODE").as_deref() == Ok("observe");
    let n: u64 = std::env::var("N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let trace = std::env::var("TRACE").ok();
    let flags = trace.as_deref().unwrap_or("01");
    let _subscriber = trace.is_some().then(|| {
        use observe::opentelemetry::trace::TracerProvider as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        observe::opentelemetry::global::set_text_map_propagator(
            observe::propagation::W3cTraceContext::new(),
        );
        observe::propagation::set_parent_based_sampling(true);
        let provider = observe::opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_span_processor(observe_benches::DiscardSpans)
            .build();
        tracing::subscriber::set_default(tracing_subscriber::registry().with(
            observe::telemetry::layer(provider.tracer("drive"), tracing::Level::INFO),
        ))
    });
    let rt = actix_web::rt::System::new();
    let service = rt.block_on(test::init_service(
        App::new()
            .wrap(actix_web::middleware::Condition::new(
                observe,
                observe::Middleware::new(),
            ))
            .route("/hello/{name}", web::get().to(hello)),
    ));
    // Warm-up, outside the counted function: first-use initialisation happens here.
    rt.block_on(async {
        let response = test::call_service(&service, observe_benches::hello_request()).await;
        std::hint::black_box(test::read_body(response).await);
    });
    requests(&rt, &service, n, flags);
}
