//! Trace context through the middleware: the incoming `traceparent` becomes the parent
//! of the server span, `#[instrumented]` spans are its children, and the outgoing request
//! the handler makes (with `awc` and with `reqwest`) carries the same trace to a real
//! downstream server on loopback. Spans are read from the SDK's in-memory exporter.
#![cfg(all(feature = "awc", feature = "reqwest"))]

mod common;

use actix_web::{App, HttpRequest, HttpResponse, get, test, web};
use observe::http::Propagate;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::{SpanKind, Status, TracerProvider as _};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider, SpanData};
use tracing_subscriber::layer::SubscriberExt;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

struct Telemetry {
    exporter: InMemorySpanExporter,
    _provider: SdkTracerProvider,
    _guard: tracing::subscriber::DefaultGuard,
}

fn telemetry() -> Telemetry {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("propagation-test")));
    let guard = tracing::subscriber::set_default(subscriber);
    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]));
    Telemetry {
        exporter,
        _provider: provider,
        _guard: guard,
    }
}

/// A downstream service on its own thread that answers with the `traceparent` it got.
fn downstream() -> std::net::SocketAddr {
    common::serve_on_thread(|| {
        let server = actix_web::HttpServer::new(|| {
            App::new()
                .route(
                    "/echo",
                    web::get().to(|req: HttpRequest| async move {
                        req.headers()
                            .get("traceparent")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("none")
                            .to_owned()
                    }),
                )
                .route(
                    "/fail",
                    web::get().to(|| async { HttpResponse::ServiceUnavailable().finish() }),
                )
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        (server.addrs()[0], server.run())
    })
    .0
}

#[get("/call/awc")]
#[observe::instrumented]
async fn call_with_awc(downstream: web::Data<std::net::SocketAddr>) -> HttpResponse {
    let mut response = awc::Client::default()
        .get(format!("http://{}/echo", downstream.get_ref()))
        .propagate()
        .send()
        .await
        .expect("downstream answers");
    let seen = response.body().await.expect("body");
    HttpResponse::Ok().body(format!(
        "{} {}",
        observe::http::trace_id().unwrap_or_default(),
        String::from_utf8_lossy(&seen)
    ))
}

#[get("/call/reqwest")]
#[observe::instrumented]
async fn call_with_reqwest(downstream: web::Data<std::net::SocketAddr>) -> HttpResponse {
    let seen = reqwest::Client::new()
        .get(format!("http://{}/echo", downstream.get_ref()))
        .propagate()
        .send()
        .await
        .expect("downstream answers")
        .text()
        .await
        .expect("body");
    HttpResponse::Ok().body(format!(
        "{} {}",
        observe::http::trace_id().unwrap_or_default(),
        seen
    ))
}

/// Two calls from one span, a 5xx and a refused connection.
#[get("/call/many")]
#[observe::instrumented]
async fn call_many(downstream: web::Data<std::net::SocketAddr>) -> HttpResponse {
    let client = reqwest::Client::new();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let body = client
            .get(format!("http://{}/echo", downstream.get_ref()))
            .propagate()
            .send()
            .await
            .expect("downstream answers")
            .text()
            .await
            .unwrap();
        seen.push(body);
    }
    let status = awc::Client::default()
        .get(format!("http://{}/fail", downstream.get_ref()))
        .propagate()
        .send()
        .await
        .expect("downstream answers")
        .status();
    assert_eq!(status.as_u16(), 503);
    let refused = client
        .get(format!("http://127.0.0.1:{}/", common::free_port()))
        .propagate()
        .send()
        .await;
    assert!(refused.is_err());
    HttpResponse::Ok().body(seen.join(" "))
}

fn find<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name:?} in {:?}", names(spans)))
}

fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|s| s.name.to_string()).collect()
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

#[actix_web::test]
async fn incoming_context_is_the_parent_and_goes_downstream() {
    let telemetry = telemetry();
    let app = test::init_service(
        App::new()
            .wrap(observe::Middleware::new())
            .app_data(web::Data::new(downstream()))
            .service(call_with_awc)
            .service(call_with_reqwest),
    )
    .await;

    for (client, path) in [("awc", "/call/awc"), ("reqwest", "/call/reqwest")] {
        let req = test::TestRequest::get()
            .uri(path)
            .insert_header(("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01")))
            .insert_header(("user-agent", "probe/1.0"))
            .peer_addr("10.1.2.3:4567".parse().unwrap())
            .to_request();
        let body = test::call_and_read_body(&app, req).await;
        let body = String::from_utf8_lossy(&body).into_owned();
        let (handler_trace, downstream_traceparent) = body.split_once(' ').unwrap();
        assert_eq!(
            handler_trace, TRACE_ID,
            "{client}: the handler sees the incoming trace"
        );

        let spans = telemetry.exporter.get_finished_spans().unwrap();
        let server = find(&spans, &format!("GET {path}"));
        let handler_name = format!("call_with_{client}");
        let handler = find(&spans, &handler_name);
        assert_eq!(server.span_kind, SpanKind::Server, "{client}");
        assert_eq!(server.span_context.trace_id().to_string(), TRACE_ID);
        assert_eq!(
            server.parent_span_id.to_string(),
            PARENT_ID,
            "{client}: remote parent"
        );
        assert_eq!(attribute(server, "http.route").as_deref(), Some(path));
        assert_eq!(
            attribute(server, "http.request.method").as_deref(),
            Some("GET")
        );
        assert_eq!(
            attribute(server, "http.response.status_code").as_deref(),
            Some("200")
        );
        for (key, value) in [
            ("url.path", path),
            ("url.scheme", "http"),
            ("network.protocol.version", "1.1"),
            ("client.address", "10.1.2.3"),
            ("user_agent.original", "probe/1.0"),
        ] {
            assert_eq!(
                attribute(server, key).as_deref(),
                Some(value),
                "{client}: {key}"
            );
        }
        assert_eq!(server.status, Status::Unset);
        assert_eq!(handler.span_context.trace_id().to_string(), TRACE_ID);
        assert_eq!(
            handler.parent_span_id,
            server.span_context.span_id(),
            "{client}: #[instrumented] is a child of the server span"
        );
        // A client span per call, under the handler; the downstream's parent is it.
        let call = spans
            .iter()
            .find(|s| s.span_kind == SpanKind::Client)
            .unwrap_or_else(|| panic!("{client}: no client span in {:?}", names(&spans)));
        assert_eq!(call.name, "GET", "{client}");
        assert_eq!(
            call.parent_span_id,
            handler.span_context.span_id(),
            "{client}"
        );
        assert_eq!(
            downstream_traceparent,
            format!("00-{TRACE_ID}-{}-01", call.span_context.span_id()),
            "{client}: the downstream's parent is the client span"
        );
        for (key, value) in [
            ("http.request.method", "GET"),
            ("server.address", "127.0.0.1"),
            ("http.response.status_code", "200"),
        ] {
            assert_eq!(
                attribute(call, key).as_deref(),
                Some(value),
                "{client}: {key}"
            );
        }
        assert!(attribute(call, "server.port").is_some(), "{client}");
        assert!(attribute(call, "url.full").unwrap().ends_with("/echo"));
        assert_eq!(call.status, Status::Unset);
        telemetry.exporter.reset();
    }
}

#[actix_web::test]
async fn each_call_is_a_client_span_with_its_own_parent_id_and_a_duration() {
    let telemetry = telemetry();
    let downstream = downstream();
    let app = test::init_service(
        App::new()
            .wrap(observe::Middleware::new())
            .app_data(web::Data::new(downstream))
            .service(call_many),
    )
    .await;
    let req = test::TestRequest::get()
        .uri("/call/many")
        .insert_header(("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01")))
        .to_request();
    let body = test::call_and_read_body(&app, req).await;
    let body = String::from_utf8_lossy(&body).into_owned();
    let sent: Vec<&str> = body.split(' ').collect();
    assert_eq!(sent.len(), 2);
    assert_ne!(sent[0], sent[1], "two calls, two parent-ids");
    let spans = telemetry.exporter.get_finished_spans().unwrap();
    let handler = find(&spans, "call_many");
    let calls: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Client)
        .collect();
    assert_eq!(calls.len(), 4, "{:?}", names(&spans));
    assert!(
        calls
            .iter()
            .all(|c| c.parent_span_id == handler.span_context.span_id())
    );
    for parent in &sent {
        assert!(
            calls
                .iter()
                .any(|c| *parent == format!("00-{TRACE_ID}-{}-01", c.span_context.span_id())),
            "{parent} is one of the client spans"
        );
    }
    let failed = calls
        .iter()
        .find(|c| attribute(c, "http.response.status_code").as_deref() == Some("503"))
        .expect("the 5xx call");
    assert!(
        matches!(failed.status, Status::Error { .. }),
        "a 5xx is an error"
    );
    assert_eq!(attribute(failed, "error.type").as_deref(), Some("503"));
    let refused = calls
        .iter()
        .find(|c| attribute(c, "http.response.status_code").is_none())
        .expect("the refused call");
    assert!(
        matches!(refused.status, Status::Error { .. }),
        "a transport error is an error"
    );
    assert_eq!(
        attribute(refused, "error.type").as_deref(),
        Some("transport")
    );

    // The duration histogram, by method, server address, status and error type.
    let text = observe::metrics::render();
    let count = |status: &str, error: &str| {
        common::value(
            &text,
            "http_client_request_duration_seconds_count",
            &[
                ("http_request_method", "GET"),
                ("server_address", "127.0.0.1"),
                ("http_response_status_code", status),
                ("error_type", error),
            ],
        )
    };
    assert!(count("200", "") >= 2.0, "{text}");
    assert!(count("503", "5xx") >= 1.0);
    assert!(count("", "transport") >= 1.0);
    let (ok, out) = common::promtool_check(&text);
    assert!(ok, "{out}");
}

#[actix_web::test]
async fn server_errors_mark_the_span_client_errors_do_not_and_probes_are_skipped() {
    let telemetry = telemetry();
    let app = test::init_service(
        App::new()
            .wrap(observe::Middleware::new())
            .route(
                "/fail",
                web::get().to(|| async { HttpResponse::InternalServerError().finish() }),
            )
            .route(
                "/missing",
                web::get().to(|| async { HttpResponse::NotFound().finish() }),
            )
            .route("/livez", web::get().to(|| async { "ok" })),
    )
    .await;
    for path in ["/fail", "/missing", "/livez", "/nowhere"] {
        let _ =
            test::call_and_read_body(&app, test::TestRequest::get().uri(path).to_request()).await;
    }
    let spans = telemetry.exporter.get_finished_spans().unwrap();
    assert!(matches!(
        find(&spans, "GET /fail").status,
        Status::Error { .. }
    ));
    assert_eq!(find(&spans, "GET /missing").status, Status::Unset);
    // Unmatched: named after the method alone; no http.route.
    let unmatched = find(&spans, "GET");
    assert_eq!(attribute(unmatched, "http.route"), None);
    assert_eq!(
        attribute(unmatched, "url.path").as_deref(),
        Some("/nowhere")
    );
    // A fresh trace when no traceparent came in.
    assert!(unmatched.span_context.is_valid());
    assert!(
        !names(&spans).iter().any(|n| n.contains("/livez")),
        "{:?}",
        names(&spans)
    );
    assert_eq!(spans.len(), 3, "{:?}", names(&spans));
}

/// Answers with the trace id the handler sees and the `traceparent` it would send on.
async fn outgoing() -> HttpResponse {
    let traceparent = observe::http::outgoing_headers()
        .into_iter()
        .find(|(k, _)| k == "traceparent")
        .map_or_else(|| "none".to_owned(), |(_, v)| v);
    HttpResponse::Ok().body(format!(
        "{} {traceparent}",
        observe::http::trace_id().unwrap_or_default()
    ))
}

/// Sends one request with an unsampled `traceparent` through observe's middleware and
/// layer over a provider with `sampler`, inside an outer middleware's span if `outer`;
/// returns the answer and the exported spans.
async fn unsampled_request(sampler: Sampler, outer: bool) -> (String, Vec<SpanData>) {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_sampler(sampler)
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry().with(observe::telemetry::layer(
        provider.tracer("unsampled-test"),
        tracing::Level::INFO,
    ));
    let _guard = tracing::subscriber::set_default(subscriber);
    // The same global propagator as `telemetry()`: tests in this binary run at once.
    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]));
    let app = test::init_service(
        App::new()
            .wrap(observe::Middleware::new())
            .wrap_fn(move |req, srv| {
                use actix_web::dev::Service as _;
                use tracing::Instrument as _;
                let span = if outer {
                    tracing::info_span!("outer")
                } else {
                    tracing::Span::none()
                };
                // The inner service is called and polled inside the span.
                let call = span.in_scope(|| srv.call(req));
                call.instrument(span)
            })
            .route("/out", web::get().to(outgoing)),
    )
    .await;
    let req = test::TestRequest::get()
        .uri("/out")
        .insert_header(("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-00")))
        .to_request();
    let body = test::call_and_read_body(&app, req).await;
    let _ = provider.force_flush();
    (
        String::from_utf8_lossy(&body).into_owned(),
        exporter.get_finished_spans().unwrap(),
    )
}

#[actix_web::test]
async fn an_unsampled_parent_is_final_only_under_a_parent_based_sampler() {
    // A sampler that ignores the parent, declared as such: the request is traced though
    // its caller's trace was not, and the downstream gets our span as its parent.
    observe::propagation::set_parent_based_sampling(false);
    let (body, spans) = unsampled_request(Sampler::AlwaysOn, false).await;
    let server = find(&spans, "GET /out");
    assert_eq!(server.parent_span_id.to_string(), PARENT_ID);
    assert_eq!(
        body,
        format!(
            "{TRACE_ID} 00-{TRACE_ID}-{}-01",
            server.span_context.span_id()
        )
    );

    // The SDK's default, parent-based: the caller's decision is final. Nothing of ours is
    // recorded; the trace id reaches the handler, and the downstream gets the trace,
    // still unsampled, with a parent-id of ours (W3C: a participant sends its own).
    observe::propagation::set_parent_based_sampling(true);
    let parent_based = || Sampler::ParentBased(Box::new(Sampler::AlwaysOn));
    let (body, spans) = unsampled_request(parent_based(), false).await;
    assert!(spans.is_empty(), "{:?}", names(&spans));
    assert!(
        body.starts_with(&format!("{TRACE_ID} 00-{TRACE_ID}-")),
        "{body}"
    );
    assert!(body.ends_with("-00"), "{body}");
    assert!(
        !body.contains(PARENT_ID),
        "the caller's parent-id was passed on: {body}"
    );

    // Inside an outer middleware's (sampled) span, the server span is still the incoming
    // trace's: made the usual way, its parent set from the headers, not recorded.
    let (body, spans) = unsampled_request(parent_based(), true).await;
    assert_eq!(names(&spans), ["outer"]);
    assert!(
        body.starts_with(&format!("{TRACE_ID} 00-{TRACE_ID}-")),
        "{body}"
    );
    assert!(body.ends_with("-00"), "{body}");
}
