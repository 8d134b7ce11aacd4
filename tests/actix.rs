//! actix-web handlers with `#[instrumented]` in either attribute order, `/metrics`, and
//! the per-worker request gauge, through actix-web's own test harness.

mod common;

use actix_web::{App, HttpResponse, Responder, get, post, test, web};
use common::{calls, value};

// Route macro first: the documented order.
#[get("/route-first/{id}")]
#[observe::instrumented]
async fn route_first(id: web::Path<u32>) -> impl Responder {
    format!("id {id}")
}

// `#[instrumented]` first: also works, because actix keeps the attribute on the function.
#[observe::instrumented]
#[post("/instrumented-first")]
async fn instrumented_first(body: String) -> Result<HttpResponse, actix_web::Error> {
    if body.is_empty() {
        return Err(actix_web::error::ErrorBadRequest("empty body"));
    }
    Ok(HttpResponse::Ok().body(body))
}

#[actix_web::test]
async fn handlers_metrics_and_worker_gauge() {
    let app = test::init_service(
        App::new()
            .wrap(observe::metrics::WorkerMetrics)
            .service(route_first)
            .service(instrumented_first)
            .configure(observe::metrics::configure),
    )
    .await;

    let resp = test::call_service(
        &app,
        test::TestRequest::get().uri("/route-first/7").to_request(),
    )
    .await;
    assert!(resp.status().is_success());
    assert_eq!(test::read_body(resp).await, "id 7");
    let ok = test::TestRequest::post()
        .uri("/instrumented-first")
        .set_payload("x")
        .to_request();
    assert!(test::call_service(&app, ok).await.status().is_success());
    let bad = test::TestRequest::post()
        .uri("/instrumented-first")
        .to_request();
    assert_eq!(test::call_service(&app, bad).await.status(), 400);

    assert_eq!(calls("route_first", "ok"), 1.0);
    assert_eq!(calls("instrumented_first", "ok"), 1.0);
    assert_eq!(calls("instrumented_first", "error"), 1.0);

    let resp =
        test::call_service(&app, test::TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        observe::metrics::TEXT_CONTENT_TYPE
    );
    let body = test::read_body(resp).await;
    let text = std::str::from_utf8(&body).unwrap();
    // Three requests before this one, all on the test's single worker thread.
    let worker = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_owned();
    assert_eq!(
        value(
            text,
            "observe_worker_requests_total",
            &[("worker", &worker)]
        ),
        4.0
    );
    // The /metrics request itself is the one in flight.
    assert_eq!(
        value(
            text,
            "observe_worker_requests_in_flight",
            &[("worker", &worker)]
        ),
        1.0
    );
    let (ok, out) = common::promtool_check(text);
    assert!(ok && out.is_empty(), "promtool: {out}");
}
