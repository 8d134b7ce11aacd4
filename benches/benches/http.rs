//! Per-request cost of HTTP middlewares, in-process through actix-web's test harness
//! (stable on a noisy machine): a bare hello-world app, then the same app wrapped in
//! `observe::Middleware`, actix-web-prom, tracing-actix-web, and the last two together.
//! No tracing subscriber is installed: `observe::Middleware` then records its metrics
//! and makes no span (there is nobody to see one) and extracts nothing. The cost with
//! tracing on is the `http_traced` group of `benches/otel.rs`.
//! Every request's body is read to the end, so body-end timing is included.
#![allow(missing_docs)]

use std::time::Duration;

use actix_web::dev::ServiceResponse;
use actix_web::{App, test, web};
use criterion::{Criterion, criterion_group, criterion_main};

async fn hello() -> &'static str {
    "hello"
}

fn app() -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new().route("/hello/{name}", web::get().to(hello))
}

macro_rules! bench_app {
    ($group:expr, $rt:expr, $name:expr, $app:expr) => {{
        let service = $rt.block_on(test::init_service($app));
        $group.bench_function($name, |b| {
            b.iter_custom(|iters| {
                $rt.block_on(observe_benches::drive(
                    &service,
                    iters,
                    observe_benches::hello_request,
                ))
            })
        });
    }};
}

fn middlewares(c: &mut Criterion) {
    let rt = actix_web::rt::System::new();
    let prom = actix_web_prom::PrometheusMetricsBuilder::new("bench")
        .registry(prometheus::Registry::new())
        .endpoint("/metrics")
        .build()
        .expect("actix-web-prom builds");
    let mut group = c.benchmark_group("http_request");
    bench_app!(group, rt, "bare", app());
    bench_app!(
        group,
        rt,
        "observe_middleware",
        app().wrap(observe::Middleware::new())
    );
    bench_app!(group, rt, "actix_web_prom", app().wrap(prom.clone()));
    bench_app!(
        group,
        rt,
        "tracing_actix_web",
        app().wrap(tracing_actix_web::TracingLogger::default())
    );
    bench_app!(
        group,
        rt,
        "actix_web_prom_and_tracing_actix_web",
        app()
            .wrap(prom.clone())
            .wrap(tracing_actix_web::TracingLogger::default())
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30);
    targets = middlewares
}
criterion_main!(benches);
