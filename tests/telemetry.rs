//! `observe::init()` end to end, in process: the providers, propagator and subscriber it
//! installs make the HTTP span the parent of nested `#[instrumented]` spans (sync, async,
//! across `.await` and `observe::spawn`), mark `Err` as an error, carry the resource, and
//! put the trace id on every log line written inside a span.
#![cfg(feature = "otel")]

use std::io::Write;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, get, test};
use opentelemetry::trace::{SpanId, Status, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor, SpanData};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// Log output captured in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The `traceparent` each `tax` call would send downstream.
static OUTGOING: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[observe::instrumented]
fn tax(amount: u64) -> u64 {
    tracing::info!(amount, "computing tax");
    let traceparent = observe::http::outgoing_headers()
        .into_iter()
        .find(|(k, _)| k == "traceparent")
        .map(|(_, v)| v)
        .unwrap_or_default();
    OUTGOING.lock().unwrap().push(traceparent);
    amount / 5
}

#[observe::instrumented]
async fn audit(amount: u64) -> u64 {
    tokio::task::yield_now().await;
    amount
}

#[derive(Debug)]
struct Declined;

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("declined")
    }
}

#[observe::instrumented]
async fn ledger() {
    tokio::task::yield_now().await;
}

#[observe::instrumented(err)]
async fn charge(amount: u64) -> Result<u64, Declined> {
    tokio::task::yield_now().await;
    let audited = observe::spawn(audit(amount)).await.unwrap();
    // A task spawned the plain way, with only the `tracing` span: still one trace.
    tokio::spawn(tracing::Instrument::in_current_span(ledger()))
        .await
        .unwrap();
    if amount == 0 {
        return Err(Declined);
    }
    Ok(audited + tax(amount))
}

#[get("/charge/{amount}")]
async fn charge_handler(amount: actix_web::web::Path<u64>) -> HttpResponse {
    match charge(amount.into_inner()).await {
        Ok(total) => HttpResponse::Ok().body(total.to_string()),
        Err(e) => HttpResponse::PaymentRequired().body(e.to_string()),
    }
}

/// A check that calls an instrumented function: traced only when asked for.
#[observe::health_check]
async fn ledger_reachable() -> Result<(), String> {
    tax(1);
    Ok(())
}

fn find<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        panic!(
            "no span {name} in {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        )
    })
}

// One test: `init()` installs process-wide globals once.
#[actix_web::test]
async fn init_wires_spans_logs_and_resource_together() {
    // A call before init: counted, not traced, and said so at init.
    assert_eq!(tax(10), 2);
    let exporter = InMemorySpanExporter::default();
    let logs = Captured::default();
    let writer = logs.clone();
    let telemetry = observe::init()
        .service("checkout", "9.8.7")
        .resource_attribute("deployment.environment.name", "test")
        .default_log_filter("info")
        .log_writer(move || writer.clone())
        .span_processor(SimpleSpanProcessor::new(exporter.clone()))
        .install()
        .expect("init installs");
    assert!(
        matches!(
            observe::init().install(),
            Err(observe::telemetry::InitError::AlreadyInstalled)
        ),
        "a second install is refused, not silently ignored"
    );

    let early = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        early.contains("1 instrumented call(s) started before observe::init()"),
        "{early}"
    );

    let app = test::init_service(
        App::new()
            .wrap(
                observe::Middleware::new()
                    .server_timing(true)
                    .trace_response(true),
            )
            .service(charge_handler),
    )
    .await;
    let mut trace_responses = Vec::new();
    for (amount, status) in [(100u64, 200u16), (0, 402)] {
        let req = test::TestRequest::get()
            .uri(&format!("/charge/{amount}"))
            .insert_header(("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01")))
            .to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status().as_u16(), status);
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .unwrap_or_else(|| panic!("{name} is on"))
                .to_str()
                .unwrap()
                .to_owned()
        };
        let trace_response = header("traceresponse");
        assert_eq!(
            header("server-timing"),
            format!("trace;desc={trace_response}"),
            "Level 2's server-timing form carries the same context"
        );
        trace_responses.push(trace_response);
        let _ = test::read_body(resp).await;
    }
    telemetry.force_flush();
    let spans = exporter.get_finished_spans().unwrap();

    let trace = TraceId::from_hex(TRACE_ID).unwrap();
    let servers: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.name == "GET /charge/{amount}")
        .collect();
    assert_eq!(servers.len(), 2, "one server span per request");
    for server in &servers {
        assert_eq!(server.span_context.trace_id(), trace);
        assert_eq!(server.parent_span_id, SpanId::from_hex(PARENT_ID).unwrap());
        // W3C traceresponse: our trace, the server span as the child id, sampled.
        let expected = format!("00-{TRACE_ID}-{}-01", server.span_context.span_id());
        assert!(
            trace_responses.contains(&expected),
            "{trace_responses:?} lacks {expected}"
        );
    }
    // The successful request: charge → (audit via spawn, tax) under its server span.
    let ok_server = servers
        .iter()
        .find(|s| {
            spans.iter().any(|c| {
                c.name == "tax" && {
                    let charge = spans
                        .iter()
                        .find(|p| p.span_context.span_id() == c.parent_span_id)
                        .unwrap();
                    charge.parent_span_id == s.span_context.span_id()
                }
            })
        })
        .expect("tax's parent is a charge under a server span");
    let charges: Vec<&SpanData> = spans.iter().filter(|s| s.name == "charge").collect();
    assert_eq!(charges.len(), 2);
    let ok_charge = charges
        .iter()
        .find(|c| c.parent_span_id == ok_server.span_context.span_id())
        .unwrap();
    assert_eq!(ok_charge.status, Status::Unset);
    let audits: Vec<&SpanData> = spans.iter().filter(|s| s.name == "audit").collect();
    assert_eq!(audits.len(), 2, "audit runs in both requests");
    for audit in &audits {
        assert!(
            charges
                .iter()
                .any(|c| c.span_context.span_id() == audit.parent_span_id),
            "the spawned task's span is a child of charge, not a new trace"
        );
        assert_eq!(audit.span_context.trace_id(), trace);
    }
    let ledgers: Vec<&SpanData> = spans.iter().filter(|s| s.name == "ledger").collect();
    assert_eq!(ledgers.len(), 2);
    assert!(ledgers.iter().all(|l| {
        charges
            .iter()
            .any(|c| c.span_context.span_id() == l.parent_span_id)
    }));
    let err_charge = charges
        .iter()
        .find(|c| c.span_context.span_id() != ok_charge.span_context.span_id())
        .unwrap();
    assert!(
        matches!(err_charge.status, Status::Error { .. }),
        "Err marks the span: {:?}",
        err_charge.status
    );

    // Resource: code-given name and version, extra attribute.
    let resource = telemetry.resource();
    assert_eq!(
        resource.get(&"service.name".into()).map(|v| v.to_string()),
        Some("checkout".into())
    );
    assert_eq!(
        resource
            .get(&"service.version".into())
            .map(|v| v.to_string()),
        Some("9.8.7".into())
    );
    assert_eq!(
        resource
            .get(&"deployment.environment.name".into())
            .map(|v| v.to_string()),
        Some("test".into())
    );

    // Logs: the event inside `tax` carries tax's own trace and span id.
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let tax_span = find(&spans, "tax");
    let line = text
        .lines()
        .find(|l| l.contains("computing tax"))
        .unwrap_or_else(|| panic!("no log line in:\n{text}"));
    assert!(
        line.contains(&format!("trace_id={TRACE_ID}"))
            && line.contains(&format!("span_id={}", tax_span.span_context.span_id())),
        "{line}"
    );
    // One access line per request, inside its server span's trace; no span-close lines
    // (not asked for).
    let access: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("observe::access"))
        .collect();
    assert_eq!(access.len(), 2, "{text}");
    for server in &servers {
        assert!(
            access.iter().any(|l| l
                .contains(&format!("span_id={}", server.span_context.span_id()))
                && l.contains(&format!("trace_id={TRACE_ID}"))),
            "{access:?}"
        );
    }
    assert!(
        access
            .iter()
            .any(|l| l.contains("http.response.status_code=402"))
    );
    assert!(!text.lines().any(|l| l.contains(" close ")), "{text}");

    // An unsampled trace: nothing reaches the OpenTelemetry layer, yet the trace id still
    // reaches the log line and the outgoing request, with the not-sampled flag.
    const UNSAMPLED: &str = "0af7651916cd43dd8448eb211c80319c";
    exporter.reset();
    OUTGOING.lock().unwrap().clear();
    let mut timings = Vec::new();
    for _ in 0..2 {
        let req = test::TestRequest::get()
            .uri("/charge/50")
            // Unsampled, with Level 2's random flag: both flags travel on.
            .insert_header(("traceparent", format!("00-{UNSAMPLED}-{PARENT_ID}-02")))
            .to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status().as_u16(), 200);
        timings.push(
            resp.headers()
                .get("server-timing")
                .expect("server-timing for unsampled requests too")
                .to_str()
                .unwrap()
                .to_owned(),
        );
        let _ = test::read_body(resp).await;
    }
    telemetry.force_flush();
    let leaked: Vec<_> = exporter
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.span_context.trace_id(), s.parent_span_id))
        .collect();
    assert!(
        leaked.is_empty(),
        "spans of an unsampled trace were exported: {leaked:?}"
    );
    let outgoing = OUTGOING.lock().unwrap().clone();
    assert_eq!(outgoing.len(), 2);
    // `init` declared the SDK's parent-based sampler, so the caller's decision is final:
    // no span of ours is recorded, yet each request is an operation of ours and sends
    // its own parent-id (W3C processing model), with the caller's trace and flags.
    for (sent, timing) in outgoing.iter().zip(&timings) {
        let parts: Vec<&str> = sent.split('-').collect();
        assert_eq!(parts.len(), 4, "{sent}");
        assert_eq!(
            (parts[0], parts[1], parts[3]),
            ("00", UNSAMPLED, "02"),
            "{sent}"
        );
        assert_ne!(parts[2], PARENT_ID, "the caller's parent-id was passed on");
        assert_ne!(parts[2], "0000000000000000");
        assert_eq!(
            timing,
            &format!("trace;desc={sent}"),
            "the response names it"
        );
    }
    assert_ne!(
        outgoing[0], outgoing[1],
        "two requests are two operations, with distinct ids"
    );
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let line = text.lines().rfind(|l| l.contains("computing tax")).unwrap();
    assert!(line.contains(&format!("trace_id={UNSAMPLED}")), "{line}");

    // Health-check runs make no traces by default, and one each with `trace_checks`.
    for traced in [false, true] {
        exporter.reset();
        let health = observe::health::Health::builder()
            .select(["ledger_reachable"])
            .trace_checks(traced)
            .build()
            .unwrap();
        health.mark_started();
        let report = health.readiness(&[], None).await;
        assert_eq!(report.overall, observe::health::Overall::Ok);
        // The run's span closes just after its result is published: wait for it (or,
        // untraced, long enough that it would have arrived).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let names = loop {
            telemetry.force_flush();
            let names: Vec<String> = exporter
                .get_finished_spans()
                .unwrap()
                .into_iter()
                .map(|s| s.name.into_owned())
                .collect();
            if names.len() >= 2 || std::time::Instant::now() > deadline {
                break names;
            }
            if !traced
                && std::time::Instant::now() + std::time::Duration::from_millis(1700) > deadline
            {
                break names;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        if traced {
            assert_eq!(names.len(), 2, "{names:?}");
            assert!(
                names.contains(&"health_check".to_owned()) && names.contains(&"tax".to_owned())
            );
        } else {
            assert!(names.is_empty(), "check runs were traced: {names:?}");
        }
    }
    drop(telemetry);
}
