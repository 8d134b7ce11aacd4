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

/// The request every HTTP benchmark sends: `GET /hello/world` with a sampled
/// `traceparent` to extract.
///
/// ```
/// let req = observe_benches::hello_request();
/// assert_eq!(req.path(), "/hello/world");
/// ```
pub fn hello_request() -> actix_http::Request {
    hello_request_with_flags("01")
}

/// [`hello_request`] with the `traceparent`'s flags given: `"01"` sampled, `"00"` not.
///
/// ```
/// use actix_web::HttpMessage as _;
/// let req = observe_benches::hello_request_with_flags("00");
/// assert!(req.headers().get("traceparent").unwrap().to_str().unwrap().ends_with("-00"));
/// ```
pub fn hello_request_with_flags(flags: &str) -> actix_http::Request {
    actix_web::test::TestRequest::get()
        .uri("/hello/world")
        .insert_header((
            "traceparent",
            format!("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}"),
        ))
        .to_request()
}

/// Sends `iters` requests made by `request` through `service`, each read to the end of
/// its body, and returns the time taken: the loop of every in-process HTTP benchmark.
///
/// ```
/// # actix_web::rt::System::new().block_on(async {
/// use actix_web::{App, test, web};
/// let service = test::init_service(App::new().route("/hello/{name}", web::get().to(|| async { "hi" }))).await;
/// let took = observe_benches::drive(&service, 10, observe_benches::hello_request).await;
/// assert!(took > std::time::Duration::ZERO);
/// # });
/// ```
pub async fn drive<S, B>(
    service: &S,
    iters: u64,
    request: impl Fn() -> actix_http::Request,
) -> Duration
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let start = Instant::now();
    for _ in 0..iters {
        let response = actix_web::test::call_service(service, request()).await;
        std::hint::black_box(actix_web::test::read_body(response).await);
    }
    start.elapsed()
}

/// A span processor that drops every finished span: tracing at full cost, without the
/// cost of an export.
///
/// ```
/// use observe::opentelemetry::trace::TracerProvider as _;
/// let provider = observe::opentelemetry_sdk::trace::SdkTracerProvider::builder()
///     .with_span_processor(observe_benches::DiscardSpans)
///     .build();
/// let _tracer = provider.tracer("bench");
/// ```
#[derive(Debug)]
pub struct DiscardSpans;

impl observe::opentelemetry_sdk::trace::SpanProcessor for DiscardSpans {
    fn on_start(
        &self,
        _: &mut observe::opentelemetry_sdk::trace::Span,
        _: &observe::opentelemetry::Context,
    ) {
    }
    fn on_end(&self, span: observe::opentelemetry_sdk::trace::SpanData) {
        std::hint::black_box(span);
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
