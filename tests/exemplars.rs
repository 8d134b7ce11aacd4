//! Exemplars end to end: histogram observations made inside a sampled span carry its
//! trace id as an OpenMetrics exemplar, on the function and HTTP histograms; never as a
//! label, never for an unsampled trace, never in the classic text format. The
//! OpenMetrics output is checked by prometheus_client's strict parser, and a real
//! Prometheus (Debian's 2.42, `--enable-feature=exemplar-storage`) scrapes it and
//! returns the exemplars from its query API.
#![cfg(feature = "otel")]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use actix_web::{App, HttpServer, get};

const SAMPLED: &str = "0af7651916cd43dd8448eb211c80319c";
const UNSAMPLED: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const OM_ACCEPT: &str =
    "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n";

#[observe::instrumented]
async fn settle(amount: u64) -> u64 {
    tokio::task::yield_now().await;
    amount * 2
}

#[get("/settle")]
async fn settle_handler() -> String {
    settle(21).await.to_string()
}

/// Fails by its `?`, which leaves the body without its exit: the call's drop records the
/// error, still inside the span.
#[observe::instrumented]
fn refund(amount: &str) -> Result<u64, std::num::ParseIntError> {
    let cents: u64 = amount.parse()?;
    Ok(cents)
}

#[get("/refund")]
async fn refund_handler() -> String {
    format!("{:?}", refund("ten").map_err(|_| "rejected"))
}

/// The same in a span the function builds itself (`fields(…)`).
#[observe::instrumented(fields(amount = %amount))]
fn void_charge(amount: &str) -> Result<u64, std::num::ParseIntError> {
    let cents: u64 = amount.parse()?;
    Ok(cents)
}

#[get("/void")]
async fn void_handler() -> String {
    format!("{:?}", void_charge("ten").map_err(|_| "rejected"))
}

fn openmetrics_exemplars(text: &str) -> Vec<(String, String)> {
    let out = common::openmetrics_parse(text);
    assert!(
        out.status.success(),
        "{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let (name, trace) = l.split_once(' ').unwrap();
            (name.to_owned(), trace.to_owned())
        })
        .collect()
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sampled_spans_become_exemplars_that_prometheus_stores() {
    let _telemetry = observe::init()
        .log_format(observe::telemetry::LogFormat::Off)
        .install()
        .unwrap();
    let (addr, _server) = common::serve_on_thread(|| {
        let server = HttpServer::new(|| {
            App::new()
                .wrap(observe::Middleware::new())
                .service(settle_handler)
                .service(refund_handler)
                .service(void_handler)
                .configure(observe::metrics::configure)
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        (server.addrs()[0], server.run())
    });

    // An unsampled trace first: it must never show up.
    for (trace, flags) in [(UNSAMPLED, "00"), (SAMPLED, "01")] {
        let header = format!("traceparent: 00-{trace}-b7ad6b7169203331-{flags}\r\n");
        let (status, _, body) = common::http_get(addr, "/settle", &header);
        assert_eq!((status, body.as_str()), (200, "42"));
        // After an unsampled observation a bucket rests for `exemplar::RETRY` (10 ms).
        std::thread::sleep(Duration::from_millis(50));
    }
    let header = format!("traceparent: 00-{SAMPLED}-b7ad6b7169203331-01\r\n");
    for path in ["/refund", "/void"] {
        let (status, _, body) = common::http_get(addr, path, &header);
        assert_eq!(
            (status, body.as_str()),
            (200, "Err(\"rejected\")"),
            "{path}"
        );
    }

    let (status, head, om) = common::http_get(addr, "/metrics", OM_ACCEPT);
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(om.ends_with("# EOF\n"));
    assert!(
        !om.contains(UNSAMPLED),
        "an unsampled trace became an exemplar"
    );
    let exemplars = openmetrics_exemplars(&om);
    for family in [
        "function_calls_duration_seconds_bucket",
        "http_server_request_duration_seconds_bucket",
    ] {
        assert!(
            exemplars.iter().any(|(n, t)| n == family && t == SAMPLED),
            "no exemplar with the sampled trace id on {family}: {exemplars:?}"
        );
    }
    // The calls that left by `?` counted as errors, their trace the exemplar.
    for function in ["refund", "void_charge"] {
        let label = format!("function=\"{function}\"");
        assert!(
            om.lines()
                .any(|l| l.starts_with("function_calls_duration_seconds_bucket{")
                    && l.contains(&label)
                    && l.contains(&format!(" # {{trace_id=\"{SAMPLED}\""))),
            "no exemplar on {function}'s series: {om}"
        );
        assert!(
            om.lines().any(|l| l.starts_with("function_calls_total{")
                && l.contains(&label)
                && l.contains("result=\"error\"")
                && l.ends_with(" 1")),
            "{function}'s error not counted: {om}"
        );
    }
    // Never a label; never in the classic format, which promtool still accepts.
    for line in om.lines().filter(|l| l.contains(SAMPLED)) {
        let (series, exemplar) = line.split_once(" # ").expect("only in an exemplar");
        assert!(!series.contains("trace_id"), "{line}");
        assert!(
            exemplar.starts_with(&format!("{{trace_id=\"{SAMPLED}\",span_id=\"")),
            "{line}"
        );
    }
    let (_, head, text) = common::http_get(addr, "/metrics", "");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4")
    );
    assert!(
        !text.contains("trace_id"),
        "exemplars leaked into the 0.0.4 format"
    );
    let (ok, report) = common::promtool_check(&text);
    assert!(ok, "{report}");

    // A real Prometheus with exemplar storage scrapes us and serves the exemplars back.
    let dir = std::env::temp_dir().join(format!("observe-exemplars-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: observe\n    static_configs:\n      - targets: ['{addr}']\n"
        ),
    )
    .unwrap();
    let port = common::free_port();
    let _prometheus = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--enable-feature=exemplar-storage")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus runs (Debian's `prometheus` package)"),
    );
    let prom: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = String::new();
    let found = loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let path = format!(
            "/api/v1/query_exemplars?query=function_calls_duration_seconds_bucket&start={}&end={}",
            now - 3600,
            now + 60
        );
        if std::net::TcpStream::connect(prom).is_ok() {
            let (status, _, body) = common::http_get(prom, &path, "");
            if status == 200 && body.contains(SAMPLED) {
                break body;
            }
            last = body;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus returned no exemplar with {SAMPLED} within 90 s; last answer: {last}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let answer: serde_json::Value = serde_json::from_str(&found).unwrap();
    let series = answer["data"].as_array().unwrap();
    let ours = series
        .iter()
        .find(|s| s["seriesLabels"]["function"] == "settle")
        .unwrap_or_else(|| panic!("no exemplar on settle's series: {found}"));
    assert!(
        ours["seriesLabels"].get("trace_id").is_none(),
        "the trace id is not a label"
    );
    assert!(
        ours["exemplars"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["labels"]["trace_id"] == SAMPLED),
        "{ours}"
    );
    assert!(!found.contains(UNSAMPLED));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_sample_prometheus_config_is_valid() {
    let out = Command::new("promtool")
        .args([
            "check",
            "config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/docs/prometheus.yml"),
        ])
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
