//! `observe::Middleware`: route-template labels, bounded cardinality, timing to the end of
//! the response body, active requests.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::Method;
use actix_web::{App, HttpResponse, test, web};
use common::{count, value};

/// GET series, less the declared `GET /declared/{id}`: the other tests in this binary run
/// concurrently and use PUT, DELETE, PATCH and OPTIONS, except
/// `declared_routes_are_at_zero_before_traffic`, whose declared route may appear at any
/// moment.
fn series(text: &str) -> usize {
    let name = "http_server_request_duration_seconds_count";
    count(text, name, &[("http_request_method", "GET")])
        - count(
            text,
            name,
            &[
                ("http_request_method", "GET"),
                ("http_route", "/declared/{id}"),
            ],
        )
}

async fn slow_body() -> HttpResponse {
    // The handler returns at once; the body takes 60 ms to produce.
    HttpResponse::Ok().body(SlowBody {
        sleep: Box::pin(actix_web::rt::time::sleep(Duration::from_millis(60))),
        done: false,
    })
}

/// A body that yields one chunk after a delay.
struct SlowBody {
    sleep: Pin<Box<actix_web::rt::time::Sleep>>,
    done: bool,
}

impl MessageBody for SlowBody {
    type Error = actix_web::Error;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<web::Bytes, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                self.done = true;
                Poll::Ready(Some(Ok(web::Bytes::from_static(b"done"))))
            }
        }
    }
}

#[actix_web::test]
async fn routes_methods_body_timing_and_unmatched_paths() {
    let app = test::init_service(
        App::new()
            .wrap(observe::Middleware::new())
            .route("/users/{id}", web::get().to(|| async { "user" }))
            .route("/slow", web::get().to(slow_body)),
    )
    .await;

    for id in [1, 2, 3] {
        let req = test::TestRequest::get()
            .uri(&format!("/users/{id}"))
            .to_request();
        assert_eq!(test::call_and_read_body(&app, req).await, "user");
    }
    let text = observe::metrics::render();
    let users = [
        ("http_request_method", "GET"),
        ("http_route", "/users/{id}"),
        ("http_response_status_code", "200"),
    ];
    assert_eq!(
        value(&text, "http_server_request_duration_seconds_count", &users),
        3.0
    );
    assert_eq!(
        count(
            &text,
            "http_server_request_duration_seconds_count",
            &[("http_route", "/users/1")]
        ),
        0
    );

    // An unknown method on a known route: `_OTHER`, and actix answers 405.
    let req = test::TestRequest::default()
        .method(Method::from_bytes(b"PROPFIND").unwrap())
        .uri("/users/1")
        .to_request();
    let status = test::call_service(&app, req).await.status().as_u16();
    let text = observe::metrics::render();
    assert_eq!(
        value(
            &text,
            "http_server_request_duration_seconds_count",
            &[
                ("http_request_method", "_OTHER"),
                ("http_route", "/users/{id}"),
                ("http_response_status_code", &status.to_string())
            ]
        ),
        1.0
    );

    // 10,000 random unmatched paths add one series, however many there are.
    let req = test::TestRequest::get().uri("/first-miss").to_request();
    assert_eq!(test::call_service(&app, req).await.status(), 404);
    let before = series(&observe::metrics::render());
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..10_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let req = test::TestRequest::get()
            .uri(&format!("/scan/{seed:x}/admin.php"))
            .to_request();
        assert_eq!(test::call_service(&app, req).await.status(), 404);
    }
    let text = observe::metrics::render();
    assert_eq!(series(&text), before, "unmatched paths created series");
    assert_eq!(
        value(
            &text,
            "http_server_request_duration_seconds_count",
            &[
                ("http_route", "<unmatched>"),
                ("http_response_status_code", "404")
            ]
        ),
        10_001.0
    );

    // Timed to the end of the body, not to the handler's return.
    let req = test::TestRequest::get().uri("/slow").to_request();
    assert_eq!(test::call_and_read_body(&app, req).await, "done");
    let text = observe::metrics::render();
    let slow = [("http_route", "/slow")];
    let sum = value(&text, "http_server_request_duration_seconds_sum", &slow);
    assert!(sum >= 0.06, "measured {sum}s, the body took 60 ms");
    assert_eq!(
        value(
            &text,
            "http_server_request_duration_seconds_bucket",
            &[("http_route", "/slow"), ("le", "0.05")]
        ),
        0.0
    );

    for method in ["GET", "_OTHER", "POST"] {
        assert_eq!(
            value(
                &text,
                "http_server_active_requests",
                &[("http_request_method", method)]
            ),
            0.0,
            "{method} back to zero"
        );
    }
    let (ok, out) = common::promtool_check(&text);
    assert!(ok && out.is_empty(), "promtool: {out}");
}

#[actix_web::test]
async fn a_request_in_progress_is_active_until_its_body_ends() {
    let app = test::init_service(
        App::new()
            .wrap(observe::Middleware::new())
            .route("/stream", web::put().to(slow_body)),
    )
    .await;
    let req = test::TestRequest::put().uri("/stream").to_request();
    let response = test::call_service(&app, req).await;
    // The handler has returned; the body has not been produced yet.
    let text = observe::metrics::render();
    assert_eq!(
        value(
            &text,
            "http_server_active_requests",
            &[("http_request_method", "PUT")]
        ),
        1.0
    );
    assert_eq!(test::read_body(response).await, "done");
    let text = observe::metrics::render();
    assert_eq!(
        value(
            &text,
            "http_server_active_requests",
            &[("http_request_method", "PUT")]
        ),
        0.0
    );
}

#[actix_web::test]
async fn aborted_requests_and_dropped_bodies_are_counted_once() {
    use actix_web::dev::Service;
    let app = test::init_service(
        App::new()
            .wrap(observe::Middleware::new())
            .route(
                "/hang",
                web::delete().to(std::future::pending::<HttpResponse>),
            )
            .route("/stream", web::patch().to(slow_body)),
    )
    .await;
    let aborted = |text: &str, method| {
        value(
            text,
            "observe_http_requests_aborted_total",
            &[("http_request_method", method)],
        )
    };
    let active = |text: &str, method| {
        value(
            text,
            "http_server_active_requests",
            &[("http_request_method", method)],
        )
    };

    // The client goes away while the handler still runs: no response, no duration.
    let before = aborted(&observe::metrics::render(), "DELETE");
    let req = test::TestRequest::delete().uri("/hang").to_request();
    let call = app.call(req);
    let gave_up = actix_web::rt::time::timeout(Duration::from_millis(20), call).await;
    assert!(gave_up.is_err(), "the handler never answers");
    let text = observe::metrics::render();
    assert_eq!(aborted(&text, "DELETE"), before + 1.0);
    assert_eq!(active(&text, "DELETE"), 0.0);
    assert_eq!(
        count(
            &text,
            "http_server_request_duration_seconds_count",
            &[("http_request_method", "DELETE")]
        ),
        0,
        "an aborted request has no duration"
    );

    // The response exists but its body is dropped unread: recorded once, not aborted.
    let req = test::TestRequest::patch().uri("/stream").to_request();
    let response = test::call_service(&app, req).await;
    assert_eq!(active(&observe::metrics::render(), "PATCH"), 1.0);
    drop(response);
    let text = observe::metrics::render();
    assert_eq!(active(&text, "PATCH"), 0.0);
    assert_eq!(aborted(&text, "PATCH"), 0.0);
    assert_eq!(
        value(
            &text,
            "http_server_request_duration_seconds_count",
            &[("http_request_method", "PATCH"), ("http_route", "/stream")]
        ),
        1.0
    );
}

#[actix_web::test]
async fn an_error_from_an_inner_middleware_is_recorded_with_its_status() {
    use actix_web::dev::Service;
    let app = test::init_service(
        App::new()
            .wrap_fn(|req, srv| {
                let refuse = req.path() == "/refuse";
                let fut = srv.call(req);
                async move {
                    if refuse {
                        Err(actix_web::error::ErrorServiceUnavailable("closed"))
                    } else {
                        fut.await
                    }
                }
            })
            .wrap(observe::Middleware::new())
            .route("/refuse", web::method(Method::OPTIONS).to(HttpResponse::Ok)),
    )
    .await;
    let req = test::TestRequest::default()
        .method(Method::OPTIONS)
        .uri("/refuse")
        .to_request();
    let status = match app.call(req).await {
        Ok(res) => res.status().as_u16(),
        Err(error) => error.as_response_error().status_code().as_u16(),
    };
    assert_eq!(status, 503);
    let text = observe::metrics::render();
    // The error replaced the response, so no route is known: the constant label.
    assert_eq!(
        value(
            &text,
            "http_server_request_duration_seconds_count",
            &[
                ("http_request_method", "OPTIONS"),
                ("http_route", "<unmatched>"),
                ("http_response_status_code", "503")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "http_server_active_requests",
            &[("http_request_method", "OPTIONS")]
        ),
        0.0
    );
}

/// Declared routes have their series at zero before the first request (an alert on a
/// fresh pod sees 0, not "no data"), in an exposition promtool accepts; responses are
/// then recorded under their status.
#[actix_web::test]
async fn declared_routes_are_at_zero_before_traffic() {
    let app = test::init_service(
        App::new()
            .wrap(
                observe::Middleware::new().routes(["GET /declared/{id}", "POST /declared/charge"]),
            )
            .route("/declared/{id}", web::get().to(|| async { "item" }))
            .route("/declared/charge", web::post().to(|| async { "charged" })),
    )
    .await;
    let text = observe::metrics::render();
    for (method, route) in [("GET", "/declared/{id}"), ("POST", "/declared/charge")] {
        assert_eq!(
            value(
                &text,
                "http_server_request_duration_seconds_count",
                &[
                    ("http_request_method", method),
                    ("http_route", route),
                    ("http_response_status_code", ""),
                ],
            ),
            0.0,
            "{method} {route} at zero before traffic"
        );
    }
    let (ok, out) = common::promtool_check(&text);
    assert!(ok, "{out}");
    let req = test::TestRequest::get().uri("/declared/7").to_request();
    assert_eq!(test::call_and_read_body(&app, req).await, "item");
    let text = observe::metrics::render();
    let labels = |status| {
        [
            ("http_request_method", "GET"),
            ("http_route", "/declared/{id}"),
            ("http_response_status_code", status),
        ]
    };
    assert_eq!(
        value(
            &text,
            "http_server_request_duration_seconds_count",
            &labels("200")
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "http_server_request_duration_seconds_count",
            &labels("")
        ),
        0.0
    );
}
