//! OTLP export to a real receiver, and interop with a non-Rust OpenTelemetry SDK.
//!
//! The service under test is this test binary re-run as a child process (test
//! `child_service`), set up by `observe::init()` from the standard `OTEL_*` variables
//! only. The receiver is Python, decoding OTLP/HTTP with the official protobuf
//! definitions (`opentelemetry-proto`); the client that starts the trace and the
//! downstream service that continues it use the Python OpenTelemetry SDK's propagator
//! (tests/python/otel_peer.py).
//!
//! The batch processor's delay is set to ten minutes, so every span is still queued when
//! SIGTERM arrives: the receiver gets them only if the shutdown path flushes them.
#![cfg(all(feature = "otlp", feature = "awc"))]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, get, web};
use observe::http::Propagate;

const REQUESTS: usize = 200;

#[get("/hello")]
async fn hello() -> &'static str {
    // An application's own event, inside the request: a log record of its trace.
    tracing::info!(target: "otlp_test", greeting = "hello", "saying hello");
    "hello"
}

#[get("/call")]
#[observe::instrumented]
async fn call(downstream: web::Data<String>) -> HttpResponse {
    let mut response = awc::Client::default()
        .get(downstream.get_ref().as_str())
        .propagate()
        .send()
        .await
        .expect("downstream answers");
    let body = response.body().await.expect("downstream body");
    HttpResponse::Ok().body(body)
}

/// What the service's health check reaches (its state).
struct Downstream(String);

#[observe::instrumented]
async fn ping_downstream(url: &str) -> Result<(), String> {
    observe::health::checks::http_get(url).await
}

/// A check that calls an instrumented function and makes an outgoing request, every
/// 100 ms: none of it may be exported as a trace (probes and checks make no traces).
#[observe::health_check(interval = "100ms", timeout = "500ms")]
async fn downstream_reachable(downstream: &Downstream) -> Result<(), String> {
    ping_downstream(&downstream.0).await
}

/// The service: runs only when the parent test starts this binary with
/// `OBSERVE_OTLP_CHILD=1`; otherwise it returns at once.
#[test]
fn child_service() {
    if std::env::var("OBSERVE_OTLP_CHILD").is_err() {
        return;
    }
    let telemetry = observe::init()
        .install()
        .expect("init from OTEL_* variables");
    let downstream = std::env::var("DOWNSTREAM").unwrap();
    #[cfg(feature = "otlp-metrics")]
    let _instruments = std::env::var("OBSERVE_OTEL_INSTRUMENTS")
        .is_ok()
        .then(|| otel_instruments::record(&telemetry));
    actix_web::rt::System::new()
        .block_on(async move {
            let health = observe::health::Health::builder()
                .select(["downstream_reachable"])
                .state(Downstream(downstream.clone()))
                .build()
                .unwrap();
            health.start_background();
            let server = HttpServer::new(move || {
                App::new()
                    .wrap(observe::Middleware::new())
                    .app_data(web::Data::new(downstream.clone()))
                    .service(hello)
                    .service(call)
                    .configure(observe::metrics::configure)
            })
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")?;
            println!("LISTENING {}", server.addrs()[0]);
            observe::health::Shutdown::new(health)
                .drain(Duration::ZERO)
                .run(server.run())
                .await
        })
        .unwrap();
    drop(telemetry);
    println!("STOPPED");
}

/// A child process, killed when dropped, and every line of its stdout read so far.
struct Killed {
    child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Killed {
    fn new(child: Child) -> Self {
        Killed {
            child,
            lines: Default::default(),
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads lines of `child`'s stdout (keeping them all) until one contains `prefix`;
/// returns what follows it.
fn wait_for_line(child: &mut Killed, prefix: &str) -> String {
    let stdout = child.child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = prefix.to_owned();
    let kept = child.lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest may print `test child_service ... ` before the line.
            if let Some(at) = line.find(&wanted) {
                let _ = tx.send(line[at + wanted.len()..].trim().to_owned());
            }
            kept.lock().unwrap().push(line);
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("no `{prefix}` line within 60 s"))
}

/// Starts this binary as the service, with the common settings and `env`; returns it and
/// the address it listens on.
fn start_service(env: &[(&str, String)]) -> (Killed, std::net::SocketAddr) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "child_service",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("OBSERVE_OTLP_CHILD", "1")
        .env("OTEL_SERVICE_NAME", "otlp-test")
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .env("OTEL_BSP_MAX_QUEUE_SIZE", "4096")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "600000")
        .env("OBSERVE_LOG_FORMAT", "off")
        .env("DOWNSTREAM", "http://127.0.0.1:9/unused")
        .stdout(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = Killed::new(command.spawn().unwrap());
    let addr = wait_for_line(&mut child, "LISTENING ").parse().unwrap();
    (child, addr)
}

/// SIGTERM, then waits (60 s at most) for a clean exit.
fn stop_service(child: &mut Killed) {
    let kill = Command::new("kill")
        .args(["-TERM", &child.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the service did not stop within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "the service exited with {status}");
}

/// Starts a Python receiver (`receiver` or `grpc-receiver`) writing to a fresh file;
/// returns it, its port and the file.
fn start_receiver(mode: &str) -> (Killed, String, std::path::PathBuf) {
    start_receiver_with(mode, &[])
}

/// [`start_receiver`] with more arguments (`--tls CERT KEY`, `--client-ca CA`).
fn start_receiver_with(mode: &str, extra: &[String]) -> (Killed, String, std::path::PathBuf) {
    let peer = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/otel_peer.py");
    // Tests run in parallel in one process: each receiver gets a file of its own.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let out = std::env::temp_dir().join(format!("observe-{mode}-{}-{n}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let mut receiver = Killed::new(
        Command::new("python3")
            .args([peer, mode, out.to_str().unwrap()])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs"),
    );
    let port = wait_for_line(&mut receiver, "PORT ");
    (receiver, port, out)
}

fn records(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("receiver writes JSON lines"))
        .collect()
}

#[test]
fn every_span_reaches_a_real_receiver_and_the_trace_crosses_python() {
    if std::env::var("OBSERVE_OTLP_CHILD").is_ok() {
        return;
    }
    let peer = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/otel_peer.py");
    let (_receiver, port, out) = start_receiver("receiver");

    let (mut child, addr) = start_service(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        ),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "x-api-key=secret%20value".into(),
        ),
        ("DOWNSTREAM", format!("http://127.0.0.1:{port}/downstream")),
    ]);

    for _ in 0..REQUESTS {
        assert_eq!(common::http_get(addr, "/hello", "").0, 200);
    }
    // A trace started by the Python SDK, through us, to a Python downstream.
    let client = Command::new("python3")
        .args([peer, "client", &format!("http://{addr}/call")])
        .output()
        .unwrap();
    assert!(
        client.status.success(),
        "{}",
        String::from_utf8_lossy(&client.stderr)
    );
    let python: serde_json::Value = serde_json::from_slice(&client.stdout).unwrap();
    assert_eq!(python["status"], 200);
    assert_eq!(python["body"], "downstream ok");

    // Nothing has been exported yet: the batch delay is ten minutes. Meanwhile the
    // health check runs every 100 ms (instrumented call, outgoing request).
    std::thread::sleep(Duration::from_millis(800));
    let before = records(&out)
        .iter()
        .filter(|r| r.get("name").is_some())
        .count();
    assert_eq!(before, 0, "spans were exported before shutdown");

    stop_service(&mut child);

    let all = records(&out);
    let spans: Vec<&serde_json::Value> = all.iter().filter(|r| r.get("name").is_some()).collect();
    let hellos: Vec<_> = spans.iter().filter(|s| s["name"] == "GET /hello").collect();
    assert_eq!(
        hellos.len(),
        REQUESTS,
        "one server span per request, none lost"
    );
    assert!(hellos.iter().all(|s| s["kind"] == 2), "SPAN_KIND_SERVER");
    // Only our spans: none of the exporter's own HTTP stack (no export feedback loop).
    let foreign: Vec<&str> = spans
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        // "GET": the client span of /call's outgoing request.
        .filter(|n| !["GET /hello", "GET /call", "call", "GET", "HTTP request"].contains(n))
        .collect();
    assert!(foreign.is_empty(), "unexpected spans exported: {foreign:?}");
    // Checks ran all along, yet every exported span belongs to a request's trace.
    let request_traces: std::collections::HashSet<&str> = spans
        .iter()
        .filter(|s| s["kind"] == 2)
        .map(|s| s["trace_id"].as_str().unwrap())
        .collect();
    assert!(
        spans
            .iter()
            .all(|s| request_traces.contains(s["trace_id"].as_str().unwrap())),
        "a span outside any request was exported"
    );
    assert!(spans.iter().all(|s| s["service_name"] == "otlp-test"));
    assert!(
        spans.iter().all(|s| s["api_key"] == "secret value"),
        "OTEL_EXPORTER_OTLP_HEADERS is sent, percent-decoded"
    );

    let trace_id = python["trace_id"].as_str().unwrap();
    let server = spans
        .iter()
        .find(|s| s["name"] == "GET /call")
        .expect("server span of /call");
    assert_eq!(
        server["trace_id"], trace_id,
        "the Python trace is continued"
    );
    assert_eq!(
        server["parent_span_id"], python["span_id"],
        "the Python span is the parent"
    );
    // The health check called the downstream too, many times, outside any trace.
    let calls: Vec<&serde_json::Value> = all.iter().filter_map(|r| r.get("downstream")).collect();
    assert!(
        calls.iter().filter(|d| d["valid"] == false).count() >= 3,
        "the check ran for several intervals, untraced: {calls:?}"
    );
    let traced: Vec<&&serde_json::Value> = calls.iter().filter(|d| d["valid"] == true).collect();
    assert_eq!(
        traced.len(),
        1,
        "only /call's request carried a trace: {calls:?}"
    );
    let downstream = traced[0];
    assert_eq!(
        downstream["trace_id"], trace_id,
        "the downstream sees the same trace"
    );
    let ours: Vec<&str> = spans
        .iter()
        .filter(|s| s["trace_id"] == trace_id)
        .map(|s| s["span_id"].as_str().unwrap())
        .collect();
    assert!(
        ours.contains(&downstream["parent_span_id"].as_str().unwrap()),
        "the downstream's parent is one of our exported spans: {downstream} not in {ours:?}"
    );

    // Metrics over OTLP (feature `otlp-metrics`): the last push at shutdown carries the
    // same counts as /metrics.
    #[cfg(feature = "otlp-metrics")]
    {
        let metric = |name: &str| {
            all.iter()
                .rev()
                .find(|r| r["metric"] == name)
                .unwrap_or_else(|| panic!("no OTLP metric {name}"))
        };
        let http = metric("http_server_request_duration_seconds");
        assert_eq!(http["kind"], "histogram");
        let hello_series = http["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["http_route"] == "/hello")
            .expect("the /hello series");
        assert_eq!(hello_series["count"], REQUESTS as u64);
        let buckets: u64 = hello_series["bucket_counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .sum();
        assert_eq!(
            buckets, REQUESTS as u64,
            "bucket counts add up to the count"
        );
        let calls = metric("function_calls");
        assert_eq!(calls["kind"], "sum");
        let ok = calls["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["function"] == "call" && p["result"] == "ok")
            .expect("call's ok series");
        assert_eq!(ok["value"], 1.0);
    }
    let _ = std::fs::remove_file(&out);
}

/// The receiver's TLS arguments: its certificate, and client certificates required.
fn tls_args(pki: &common::Pki) -> Vec<String> {
    vec![
        "--tls".into(),
        common::Pki::path(&pki.server_cert),
        common::Pki::path(&pki.server_key),
        "--client-ca".into(),
        common::Pki::path(&pki.ca),
    ]
}

/// The service's TLS settings: trust `ca`, present the client certificate, gzip.
fn tls_env(pki: &common::Pki, ca: &std::path::Path, port: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("https://127.0.0.1:{port}"),
        ),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", common::Pki::path(ca)),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
            common::Pki::path(&pki.client_cert),
        ),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            common::Pki::path(&pki.client_key),
        ),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".into()),
        ("RUST_LOG", "info".into()),
    ]
}

/// Spans, metrics and log records over OTLP/HTTP with mTLS and gzip to a real TLS
/// receiver (Python's `ssl`, client certificates required), certificates made by the
/// test; a log written inside a request arrives with that request's trace and span id.
#[cfg(feature = "otlp-metrics")]
#[test]
fn spans_metrics_and_logs_over_mutual_tls_with_gzip() {
    if std::env::var("OBSERVE_OTLP_CHILD").is_ok() {
        return;
    }
    let pki = common::Pki::new("otlp-http");
    let (_receiver, port, out) = start_receiver_with("receiver", &tls_args(&pki));
    let (mut child, addr) = start_service(&tls_env(&pki, &pki.ca, &port));
    for _ in 0..5 {
        assert_eq!(common::http_get(addr, "/hello", "").0, 200);
    }
    stop_service(&mut child);
    let all = records(&out);
    let errors: Vec<_> = all
        .iter()
        .filter(|r| r.get("tls_error").is_some())
        .collect();
    assert!(errors.is_empty(), "TLS handshakes failed: {errors:?}");
    for path in ["/v1/traces", "/v1/metrics", "/v1/logs"] {
        assert!(
            all.iter().any(|r| r["gzip"] == path),
            "{path} was not sent gzipped"
        );
    }
    let servers: Vec<_> = all.iter().filter(|r| r["name"] == "GET /hello").collect();
    assert_eq!(servers.len(), 5, "every span arrived over TLS");
    assert!(
        all.iter()
            .any(|r| r["metric"] == "http_server_request_duration_seconds"),
        "metrics arrived over TLS"
    );
    let hellos: Vec<_> = all.iter().filter(|r| r["log"] == "saying hello").collect();
    assert_eq!(hellos.len(), 5, "one log record per request: {hellos:?}");
    for log in &hellos {
        assert_eq!(log["severity"], 9, "INFO: {log}");
        assert_eq!(log["service_name"], "otlp-test", "the resource: {log}");
        assert!(
            servers
                .iter()
                .any(|s| s["trace_id"] == log["trace_id"] && s["span_id"] == log["span_id"]),
            "the log record carries its request's trace and span: {log}"
        );
    }
    // The access lines are log records too, in their requests' traces.
    let access: Vec<_> = all
        .iter()
        .filter(|r| r["target"] == "observe::access")
        .collect();
    assert_eq!(access.len(), 5, "{access:?}");
    let _ = std::fs::remove_file(&out);
}

/// Trusting the wrong CA: nothing hangs or crashes; each signal's failed exports are
/// counted on `/metrics` and said in a log line.
#[cfg(feature = "otlp-metrics")]
#[test]
fn a_wrong_ca_is_counted_and_logged() {
    if std::env::var("OBSERVE_OTLP_CHILD").is_ok() {
        return;
    }
    let pki = common::Pki::new("otlp-wrong-ca");
    let (_receiver, port, out) = start_receiver_with("receiver", &tls_args(&pki));
    let mut env = tls_env(&pki, &pki.other_ca, &port);
    env.extend([
        ("OBSERVE_LOG_FORMAT", "json".to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ("OTEL_BLRP_SCHEDULE_DELAY", "100".to_owned()),
        ("OTEL_METRIC_EXPORT_INTERVAL", "300".to_owned()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000".to_owned()),
    ]);
    let (mut child, addr) = start_service(&env);
    for _ in 0..5 {
        assert_eq!(common::http_get(addr, "/hello", "").0, 200);
    }
    let dropped = |signal: &str| {
        let (_, _, text) = common::http_get(addr, "/metrics", "");
        common::value(
            &text,
            "observe_telemetry_dropped_total",
            &[("signal", signal), ("reason", "export_failed")],
        )
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while ["traces", "metrics", "logs"]
        .iter()
        .any(|s| dropped(s) == 0.0)
    {
        assert!(
            Instant::now() < deadline,
            "failed exports not counted: traces {} metrics {} logs {}",
            dropped("traces"),
            dropped("metrics"),
            dropped("logs")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(dropped("traces") >= 5.0, "the 5 server spans at least");
    let started = Instant::now();
    stop_service(&mut child);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "shutdown took {:?}",
        started.elapsed()
    );
    let lines = child.lines();
    let warning = lines
        .iter()
        .find(|l| l.contains("spans dropped (export_failed)"))
        .unwrap_or_else(|| panic!("no log line about the lost spans: {lines:#?}"));
    assert!(
        warning.contains("certificate") || warning.contains("UnknownIssuer"),
        "the line says why: {warning}"
    );
    assert!(
        records(&out)
            .iter()
            .all(|r| r.get("name").is_none() && r.get("log").is_none()),
        "nothing got through"
    );
    let _ = std::fs::remove_file(&out);
}

/// The same over OTLP/gRPC: TLS with the test's CA and a client certificate, gzip.
#[cfg(feature = "grpc")]
#[test]
fn grpc_spans_and_logs_over_mutual_tls_with_gzip() {
    if std::env::var("OBSERVE_OTLP_CHILD").is_ok() {
        return;
    }
    let pki = common::Pki::new("otlp-grpc");
    let (_receiver, port, out) = start_receiver_with("grpc-receiver", &tls_args(&pki));
    let mut env = tls_env(&pki, &pki.ca, &port);
    env.extend([("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned())]);
    let (mut child, addr) = start_service(&env);
    for _ in 0..5 {
        assert_eq!(common::http_get(addr, "/hello", "").0, 200);
    }
    stop_service(&mut child);
    let all = records(&out);
    let servers: Vec<_> = all.iter().filter(|r| r["name"] == "GET /hello").collect();
    assert_eq!(servers.len(), 5, "every span arrived over gRPC and TLS");
    assert!(
        all.iter()
            .any(|r| r["metric"] == "http_server_request_duration_seconds"),
        "the metrics push arrived over gRPC and TLS"
    );
    let hellos: Vec<_> = all.iter().filter(|r| r["log"] == "saying hello").collect();
    assert_eq!(hellos.len(), 5, "every log record arrived: {hellos:?}");
    assert!(
        hellos
            .iter()
            .all(|l| servers.iter().any(|s| s["trace_id"] == l["trace_id"]))
    );
    let _ = std::fs::remove_file(&out);
}

/// The log lines of the service in JSON mode: JSON on every line (observe's own messages
/// included), one access line per request with its trace id, no span-close lines unless
/// asked for.
#[test]
fn logs_are_json_with_one_access_line_per_request() {
    if std::env::var("OBSERVE_OTLP_CHILD").is_ok() {
        return;
    }
    for spans in [false, true] {
        let mut env = vec![
            ("OBSERVE_LOG_FORMAT", "json".to_owned()),
            ("RUST_LOG", "info".to_owned()),
        ];
        if spans {
            env.push(("OBSERVE_LOG_SPANS", "close".to_owned()));
        }
        let (mut child, addr) = start_service(&env);
        for _ in 0..3 {
            assert_eq!(common::http_get(addr, "/hello", "").0, 200);
        }
        assert_eq!(common::http_get(addr, "/nowhere", "").0, 404);
        stop_service(&mut child);
        // What libtest and the test's own child prints around the service's logs.
        let harness = |l: &str| {
            l.is_empty()
                || [
                    "running ",
                    "test ",
                    "LISTENING",
                    "STOPPED",
                    "successes",
                    "----",
                ]
                .iter()
                .any(|p| l.starts_with(p))
        };
        let logs: Vec<serde_json::Value> = child
            .lines()
            .iter()
            .map(|l| l.trim_start_matches("test child_service ... ").trim())
            .filter(|l| !harness(l) && *l != "ok")
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
            })
            .collect();
        let message =
            |v: &serde_json::Value| v["fields"]["message"].as_str().unwrap_or("").to_owned();
        let access: Vec<&serde_json::Value> = logs
            .iter()
            .filter(|v| v["target"] == "observe::access")
            .collect();
        assert_eq!(access.len(), 4, "one access line per request: {access:?}");
        for line in &access {
            assert_eq!(line["fields"]["http.request.method"], "GET", "{line}");
            assert!(
                line["fields"]["duration_ms"].as_f64().unwrap() >= 0.0,
                "{line}"
            );
            assert_eq!(
                line["trace_id"].as_str().map(str::len),
                Some(32),
                "access lines carry the trace id: {line}"
            );
        }
        assert_eq!(
            access
                .iter()
                .filter(|l| l["fields"]["http.route"] == "/hello"
                    && l["fields"]["http.response.status_code"] == 200)
                .count(),
            3
        );
        assert!(
            access
                .iter()
                .any(|l| l["fields"]["http.route"] == "<unmatched>"
                    && l["fields"]["http.response.status_code"] == 404)
        );
        assert!(
            logs.iter()
                .any(|v| message(v).contains("SIGTERM: readiness failing")),
            "the shutdown message is a log line: {logs:?}"
        );
        let closes = logs.iter().filter(|v| message(v) == "close").count();
        if spans {
            assert!(closes >= 4, "OBSERVE_LOG_SPANS=close: {closes} close lines");
        } else {
            assert_eq!(closes, 0, "span-close lines only when asked for");
        }
    }
}

/// The gRPC exporter (feature `grpc`) runs on a small runtime of its own, so it still
/// works after actix's `System` has returned: every span reaches a real OTLP/gRPC
/// receiver (Python `grpcio` with the official stubs) at shutdown, with the headers.
#[cfg(feature = "grpc")]
#[test]
fn grpc_export_loses_nothing_at_shutdown() {
    if std::env::var("OBSERVE_OTLP_CHILD").is_ok() {
        return;
    }
    let (_receiver, port, out) = start_receiver("grpc-receiver");
    let (mut child, addr) = start_service(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=grpc-secret".into()),
    ]);
    const N: usize = 50;
    for _ in 0..N {
        assert_eq!(common::http_get(addr, "/hello", "").0, 200);
    }
    stop_service(&mut child);
    let all = records(&out);
    let spans: Vec<&serde_json::Value> = all.iter().filter(|r| r.get("name").is_some()).collect();
    let hellos = spans.iter().filter(|s| s["name"] == "GET /hello").count();
    assert_eq!(
        hellos, N,
        "one server span per request over gRPC, none lost"
    );
    assert!(spans.iter().all(|s| s["api_key"] == "grpc-secret"));
    // The metrics push too speaks gRPC when the protocol says so (it used to POST
    // OTLP/HTTP to the gRPC port): the final push carries the 50 requests.
    let duration = all
        .iter()
        .find(|r| r["metric"] == "http_server_request_duration_seconds")
        .unwrap_or_else(|| panic!("no metrics over gRPC in {} records", all.len()));
    assert_eq!(duration["api_key"], "grpc-secret");
    assert_eq!(duration["kind"], "histogram");
    let hello_count: u64 = duration["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["http_route"] == "/hello")
        .map(|p| p["count"].as_u64().unwrap())
        .sum();
    assert_eq!(hello_count, N as u64);
    let _ = std::fs::remove_file(&out);
}

/// Issue 15, item 8: a collector that accepts connections and never answers. After
/// SIGTERM the service exits within the drain (0 here) plus the flush budget (5 s by
/// default), not after the exporters' own timeouts (36 s before), and the spans, log
/// records and metric points it could not send are counted and logged once each.
#[cfg(feature = "otlp-metrics")]
#[test]
fn a_collector_that_never_answers_cannot_hold_shutdown() {
    if std::env::var("OBSERVE_OTLP_CHILD").is_ok() {
        return;
    }
    // Accepts, reads nothing, answers nothing; keeps every connection open.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(50).flatten() {
            keep.lock().unwrap().push(stream);
        }
    });
    let (mut child, addr) = start_service(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        ),
        ("OBSERVE_LOG_FORMAT", "json".into()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "30000".into()),
    ]);
    const N: usize = 20;
    for _ in 0..N {
        assert_eq!(common::http_get(addr, "/hello", "").0, 200);
    }
    let started = Instant::now();
    stop_service(&mut child);
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(6500),
        "exit took {took:?} after SIGTERM (flush budget 5 s)"
    );
    assert!(
        took >= Duration::from_millis(4500),
        "exit took only {took:?}: the collector was not waited for at all"
    );
    let lines = child.lines();
    for (signal, what) in [
        ("traces", "spans"),
        ("logs", "log records"),
        ("metrics", "metric data points"),
    ] {
        let said: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains(&format!("{what} dropped (shutdown_timeout)")))
            .collect();
        assert_eq!(said.len(), 1, "one line for {signal}: {lines:#?}");
        let line: serde_json::Value = serde_json::from_str(said[0]).unwrap();
        let dropped = line["fields"]["dropped"]
            .as_u64()
            .or_else(|| line["dropped"].as_u64())
            .unwrap_or_else(|| panic!("a count: {line}"));
        if signal == "traces" {
            assert!(dropped >= N as u64, "{dropped} spans counted, {N} requests");
        } else {
            assert!(dropped > 0, "{line}");
        }
    }
    assert!(
        !held.lock().unwrap().is_empty(),
        "the exporters did connect"
    );
}

/// Issue 15, item 5: 5,000 unparsable requests from a stranger. actix-http writes an
/// ERROR line for each connection it gives up on; under `observe::init()` they are
/// counted in `http_server_connection_errors_total{kind="malformed"}` and written as at
/// most one line per 10 s, with the count.
#[test]
fn malformed_requests_are_counted_not_logged_one_by_one() {
    if std::env::var("OBSERVE_OTLP_CHILD").is_ok() {
        return;
    }
    use std::io::{Read, Write};
    let (mut child, addr) = start_service(&[("OBSERVE_LOG_FORMAT", "json".into())]);
    let started = Instant::now();
    let mut sent = 0;
    while sent < 5000 && started.elapsed() < Duration::from_secs(60) {
        let Ok(mut s) = std::net::TcpStream::connect(addr) else {
            continue;
        };
        let _ = s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nBad Header\x01: \x02\r\n\r\n");
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        if sent == 0 {
            assert!(
                reply.starts_with(b"HTTP/1.1 400"),
                "{}",
                String::from_utf8_lossy(&reply)
            );
        }
        sent += 1;
    }
    assert_eq!(sent, 5000, "sent within 60 s");
    let (_, _, text) = common::http_get(addr, "/metrics", "");
    let counted = common::value(
        &text,
        "http_server_connection_errors_total",
        &[("kind", "malformed")],
    );
    stop_service(&mut child);
    let lines = child.lines();
    let from_actix = lines
        .iter()
        .filter(|l| l.contains("actix_http::h1::dispatcher"))
        .count();
    let ours: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("HTTP connection error(s) of kind malformed"))
        .collect();
    assert_eq!(from_actix, 0, "actix's own lines are replaced");
    assert!(
        counted >= 1000.0,
        "{counted} malformed requests counted of 5,000"
    );
    let took = started.elapsed().as_secs() as usize;
    assert!(
        !ours.is_empty() && ours.len() <= took / 10 + 1,
        "{} lines in {took} s: {ours:#?}",
        ours.len()
    );
}

/// `OTEL_TRACES_SAMPLER=always_off` (read by the SDK) and `OTEL_SDK_DISABLED=true` (which
/// the SDK ignores and observe honours): the service runs, nothing is exported.
#[test]
fn the_sampler_and_sdk_disabled_are_honoured() {
    if std::env::var("OBSERVE_OTLP_CHILD").is_ok() {
        return;
    }
    for (variable, value) in [
        ("OTEL_TRACES_SAMPLER", "always_off"),
        ("OTEL_SDK_DISABLED", "true"),
    ] {
        let (_receiver, port, out) = start_receiver("receiver");
        let (mut child, addr) = start_service(&[
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                format!("http://127.0.0.1:{port}"),
            ),
            ("OTEL_METRICS_EXPORTER", "none".into()),
            (variable, value.into()),
        ]);
        for _ in 0..20 {
            assert_eq!(common::http_get(addr, "/hello", "").0, 200);
        }
        stop_service(&mut child);
        let spans: Vec<_> = records(&out)
            .into_iter()
            .filter(|r| r.get("name").is_some())
            .collect();
        assert!(
            spans.is_empty(),
            "{variable}={value}: {} spans exported",
            spans.len()
        );
        let _ = std::fs::remove_file(&out);
    }
}

/// Every kind of OpenTelemetry instrument, with values the parent test knows.
#[cfg(feature = "otlp-metrics")]
mod otel_instruments {
    use observe::opentelemetry::metrics::{
        ObservableCounter, ObservableGauge, ObservableUpDownCounter,
    };
    use observe::opentelemetry::{KeyValue, global};

    /// The observable instruments stay registered while these live.
    pub struct Kept(
        ObservableCounter<u64>,
        ObservableUpDownCounter<i64>,
        ObservableGauge<f64>,
    );

    pub fn record(telemetry: &observe::Telemetry) -> Kept {
        let meter = telemetry.meter("payments");
        let charges = meter
            .u64_counter("payments.charges")
            .with_description("Charges made.")
            .build();
        charges.add(3, &[KeyValue::new("card", "visa")]);
        charges.add(2, &[KeyValue::new("card", "amex")]);
        let volume = meter.f64_counter("payments.volume").with_unit("By").build();
        volume.add(1.5, &[]);
        let queue = meter.i64_up_down_counter("payments.queue").build();
        queue.add(5, &[]);
        queue.add(-2, &[]);
        let latency = meter
            .f64_histogram("payments.latency")
            .with_unit("s")
            .with_boundaries(vec![0.01, 0.1])
            .build();
        for v in [0.005, 0.05, 0.5] {
            latency.record(v, &[KeyValue::new("route", "/charge")]);
        }
        let temperature = meter
            .f64_gauge("payments.temperature")
            .with_unit("Cel")
            .build();
        temperature.record(21.5, &[]);
        // The global meter, as code that never sees the guard writes it.
        let global = global::meter("payments.async");
        Kept(
            global
                .u64_observable_counter("payments.polls")
                .with_callback(|o| o.observe(7, &[]))
                .build(),
            global
                .i64_observable_up_down_counter("payments.connections")
                .with_callback(|o| o.observe(4, &[]))
                .build(),
            global
                .f64_observable_gauge("payments.load")
                .with_unit("1")
                .with_callback(|o| o.observe(0.25, &[]))
                .build(),
        )
    }
}

/// OpenTelemetry instruments of every kind appear on `/metrics` under the names the
/// Prometheus compatibility specification gives (checked by the real promtool), and the
/// OTLP push at shutdown carries the same values under their own names, scopes and units,
/// with the resource.
#[cfg(feature = "otlp-metrics")]
#[test]
fn opentelemetry_instruments_reach_metrics_and_the_otlp_push() {
    if std::env::var("OBSERVE_OTLP_CHILD").is_ok() {
        return;
    }
    let (_receiver, port, out) = start_receiver("receiver");
    let (mut child, addr) = start_service(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{port}"),
        ),
        ("OBSERVE_OTEL_INSTRUMENTS", "1".into()),
    ]);
    let (status, _, text) = common::http_get(addr, "/metrics", "");
    assert_eq!(status, 200);
    let (ok, why) = common::promtool_check(&text);
    assert!(ok, "promtool check metrics: {why}\n{text}");
    let scope = |name: &'static str| ("otel_scope_name", name);
    let expect = [
        (
            "payments_charges_total",
            vec![("card", "visa"), scope("payments")],
            3.0,
        ),
        (
            "payments_charges_total",
            vec![("card", "amex"), scope("payments")],
            2.0,
        ),
        ("payments_volume_bytes_total", vec![scope("payments")], 1.5),
        ("payments_queue", vec![scope("payments")], 3.0),
        (
            "payments_latency_seconds_bucket",
            vec![("route", "/charge"), scope("payments"), ("le", "0.01")],
            1.0,
        ),
        (
            "payments_latency_seconds_bucket",
            vec![("route", "/charge"), scope("payments"), ("le", "0.1")],
            2.0,
        ),
        (
            "payments_latency_seconds_bucket",
            vec![("route", "/charge"), scope("payments"), ("le", "+Inf")],
            3.0,
        ),
        (
            "payments_latency_seconds_sum",
            vec![("route", "/charge"), scope("payments")],
            0.555,
        ),
        (
            "payments_latency_seconds_count",
            vec![("route", "/charge"), scope("payments")],
            3.0,
        ),
        (
            "payments_temperature_celsius",
            vec![scope("payments")],
            21.5,
        ),
        ("payments_polls_total", vec![scope("payments.async")], 7.0),
        ("payments_connections", vec![scope("payments.async")], 4.0),
        ("payments_load_ratio", vec![scope("payments.async")], 0.25),
    ];
    for (name, labels, value) in &expect {
        assert_eq!(
            common::value(&text, name, labels),
            *value,
            "{name}{labels:?}\n{text}"
        );
    }
    assert!(
        text.contains("# TYPE payments_charges_total counter"),
        "{text}"
    );
    assert!(text.contains("# TYPE payments_queue gauge"), "{text}");
    assert!(
        text.contains("# TYPE payments_latency_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("# HELP payments_charges_total Charges made."),
        "{text}"
    );
    assert!(
        text.contains("# HELP payments_queue OpenTelemetry instrument payments.queue."),
        "{text}"
    );
    assert_eq!(
        common::value(&text, "target_info", &[("service_name", "otlp-test")]),
        1.0,
        "the resource is target_info\n{text}"
    );
    // The same instruments in OpenMetrics, read by prometheus_client's strict parser.
    let (status, _, om) = common::http_get(
        addr,
        "/metrics",
        "Accept: application/openmetrics-text; version=1.0.0\r\n",
    );
    assert_eq!(status, 200);
    assert!(
        om.contains("# UNIT payments_latency_seconds seconds"),
        "{om}"
    );
    assert!(
        om.contains("payments_charges_total{card=\"visa\",otel_scope_name=\"payments\"} 3"),
        "{om}"
    );
    let parsed = common::openmetrics_parse(&om);
    assert!(
        parsed.status.success(),
        "{}\n{om}",
        String::from_utf8_lossy(&parsed.stderr)
    );

    stop_service(&mut child);
    let all = records(&out);
    let metric = |name: &str| {
        all.iter()
            .rev()
            .find(|r| r["metric"] == name)
            .unwrap_or_else(|| panic!("no OTLP metric {name} in {all:?}"))
    };
    let point = |name: &str, key: &str, value: &str| {
        let m = metric(name);
        m["points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| key.is_empty() || p[key] == value)
            .unwrap_or_else(|| panic!("no point {key}={value} in {m}"))
            .clone()
    };
    assert_eq!(point("payments.charges", "card", "visa")["value"], 3.0);
    assert_eq!(point("payments.charges", "card", "amex")["value"], 2.0);
    let charges = metric("payments.charges");
    assert_eq!(charges["kind"], "sum");
    assert_eq!(charges["monotonic"], true);
    assert_eq!(charges["scope"], "payments");
    assert_eq!(charges["resource"]["service.name"], "otlp-test");
    assert_eq!(metric("payments.volume")["unit"], "By");
    assert_eq!(point("payments.queue", "", "")["value"], 3.0);
    assert_eq!(metric("payments.queue")["monotonic"], false);
    let latency = point("payments.latency", "route", "/charge");
    assert_eq!(latency["count"], 3);
    assert_eq!(latency["sum"], 0.555);
    assert_eq!(latency["bucket_counts"], serde_json::json!([1, 1, 1]));
    assert_eq!(latency["explicit_bounds"], serde_json::json!([0.01, 0.1]));
    assert_eq!(metric("payments.latency")["unit"], "s");
    assert_eq!(point("payments.temperature", "", "")["value"], 21.5);
    assert_eq!(metric("payments.temperature")["kind"], "gauge");
    assert_eq!(point("payments.polls", "", "")["value"], 7.0);
    assert_eq!(metric("payments.polls")["scope"], "payments.async");
    assert_eq!(point("payments.connections", "", "")["value"], 4.0);
    assert_eq!(point("payments.load", "", "")["value"], 0.25);
    assert!(
        all.iter().all(|r| r["metric"] != "target_info"),
        "target_info is the resource, not a metric"
    );
    // No scope labels leak into OTLP attributes.
    assert!(
        point("payments.polls", "", "")
            .get("otel_scope_name")
            .is_none()
    );
    let _ = std::fs::remove_file(&out);
}
