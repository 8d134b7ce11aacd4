//! The hard cap on HTTP series: past it, new routes go to `http_route="<overflow>"` and
//! are counted, so no traffic pattern grows the series count without bound.
//! (Its own test binary: the cap is process-wide.)

mod common;

use actix_web::{App, test, web};
use common::{count, value};

#[actix_web::test]
async fn new_routes_past_the_cap_share_one_overflow_series() {
    let mut app = App::new().wrap(observe::Middleware::new().max_series(5));
    for i in 0..50 {
        app = app.route(&format!("/r{i}"), web::get().to(|| async { "x" }));
    }
    let app = test::init_service(app).await;
    for round in 0..2 {
        for i in 0..50 {
            let req = test::TestRequest::get().uri(&format!("/r{i}")).to_request();
            assert_eq!(
                test::call_and_read_body(&app, req).await,
                "x",
                "round {round}"
            );
        }
    }
    let text = observe::metrics::render();
    let all = count(&text, "http_server_request_duration_seconds_count", &[]);
    assert_eq!(all, 6, "five series and one overflow series");
    assert_eq!(
        value(
            &text,
            "http_server_request_duration_seconds_count",
            &[("http_route", "<overflow>")]
        ),
        90.0
    );
    assert_eq!(
        value(&text, "observe_http_series_overflow_total", &[]),
        90.0
    );
    let (ok, out) = common::promtool_check(&text);
    assert!(ok && out.is_empty(), "promtool: {out}");
}
