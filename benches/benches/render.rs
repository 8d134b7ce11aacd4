//! `/metrics` render time, side by side in one process: observe's whole exposition
//! (gather into the family model, then encode) for a quickstart-sized service and for
//! 10,000 HTTP series, against the same 10,000 histogram series encoded by
//! prometheus-client and by the `prometheus` crate's `TextEncoder`.
//!
//! The 10,000 series are real ones: 100 route templates × 10 methods × 10 status codes
//! sent through `observe::Middleware` (cap raised to 10,000), each a histogram of the 14
//! default buckets plus `+Inf` with 3 labels; the other encoders get the same label sets
//! and bucket bounds, one observation each.
#![allow(missing_docs)]

use std::hint::black_box;

use actix_web::http::Method;
use actix_web::{App, HttpRequest, HttpResponse, test, web};
use criterion::{Criterion, criterion_group, criterion_main};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

const ROUTES: usize = 100;
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "PROPFIND",
];
const STATUSES: [u16; 10] = [200, 201, 204, 301, 304, 400, 404, 409, 500, 503];
const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

#[observe::instrumented]
fn charge(x: u64) -> Result<u64, String> {
    if x == 0 { Err("zero".into()) } else { Ok(x) }
}

#[observe::instrumented(span = false)]
async fn refund(x: u64) -> u64 {
    x
}

async fn answer(req: HttpRequest) -> HttpResponse {
    let status = req.query_string().parse::<u16>().unwrap_or(200);
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
}

/// Sends one request per (route, method, status) through the middleware.
fn fill_http_series() {
    actix_web::rt::System::new().block_on(async {
        let mut app = App::new().wrap(observe::Middleware::new().max_series(20_000));
        for r in 0..ROUTES {
            app = app.route(&format!("/r{r}/{{id}}"), web::route().to(answer));
        }
        let service = test::init_service(app).await;
        for r in 0..ROUTES {
            for method in METHODS {
                for status in STATUSES {
                    let req = test::TestRequest::default()
                        .method(Method::from_bytes(method.as_bytes()).unwrap())
                        .uri(&format!("/r{r}/7?{status}"))
                        .to_request();
                    let res = test::call_service(&service, req).await;
                    black_box(test::read_body(res).await);
                }
            }
        }
    });
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct HttpLabels {
    http_request_method: String,
    http_route: String,
    http_response_status_code: u16,
}

fn prometheus_client_registry() -> prometheus_client::registry::Registry {
    let mut registry = prometheus_client::registry::Registry::default();
    let family = Family::<HttpLabels, Histogram>::new_with_constructor(|| {
        Histogram::new(BUCKETS.iter().copied())
    });
    for r in 0..ROUTES {
        for method in METHODS {
            for status in STATUSES {
                family
                    .get_or_create(&HttpLabels {
                        http_request_method: method.to_owned(),
                        http_route: format!("/r{r}/{{id}}"),
                        http_response_status_code: status,
                    })
                    .observe(0.001);
            }
        }
    }
    registry.register(
        "http_server_request_duration",
        "Duration of HTTP server requests.",
        family,
    );
    registry
}

fn prometheus_registry() -> prometheus::Registry {
    let registry = prometheus::Registry::new();
    let vec = prometheus::HistogramVec::new(
        prometheus::HistogramOpts::new(
            "http_server_request_duration_seconds",
            "Duration of HTTP server requests.",
        )
        .buckets(BUCKETS.to_vec()),
        &[
            "http_request_method",
            "http_route",
            "http_response_status_code",
        ],
    )
    .unwrap();
    registry.register(Box::new(vec.clone())).unwrap();
    for r in 0..ROUTES {
        for method in METHODS {
            for status in STATUSES {
                vec.with_label_values(&[method, &format!("/r{r}/{{id}}"), &status.to_string()])
                    .observe(0.001);
            }
        }
    }
    registry
}

fn render(c: &mut Criterion) {
    let mut group = c.benchmark_group("render");
    // A quickstart-sized service: two instrumented functions, build info, process.
    observe::build_info!();
    let _ = black_box(charge(1));
    actix_web::rt::System::new().block_on(refund(2));
    group.bench_function("observe_quickstart", |b| {
        b.iter(|| black_box(observe::metrics::render()))
    });

    fill_http_series();
    let series = observe::metrics::render()
        .lines()
        .filter(|l| l.starts_with("http_server_request_duration_seconds_count{"))
        .count();
    assert_eq!(
        series,
        ROUTES * METHODS.len() * STATUSES.len(),
        "10,000 series"
    );
    group.bench_function("observe_10k_series", |b| {
        b.iter(|| black_box(observe::metrics::render()))
    });
    let pc = prometheus_client_registry();
    group.bench_function("prometheus_client_10k_series", |b| {
        b.iter(|| {
            let mut out = String::new();
            encode(&mut out, &pc).unwrap();
            black_box(out)
        })
    });
    let prom = prometheus_registry();
    group.bench_function("prometheus_10k_series", |b| {
        b.iter(|| {
            use prometheus::Encoder as _;
            let mut out = Vec::new();
            prometheus::TextEncoder::new()
                .encode(&prom.gather(), &mut out)
                .unwrap();
            black_box(out)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = render
}
criterion_main!(benches);
