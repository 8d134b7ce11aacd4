//! Service-level objectives: the labels autometrics' rules select, the generated rules
//! (checked and unit-tested by `promtool`, evaluated live by a real Prometheus), the
//! generated dashboard (every query run against a Prometheus that scraped the quickstart)
//! and the status page (rendered by a real headless Chromium).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use observe::slo::Objective;

const CHECKOUT: Objective = Objective::new("checkout")
    .success_rate(99.9)
    .latency(0.25, 99.0);
/// A threshold every call misses: its latency indicator is all bad.
const SLOWPOKE: Objective = Objective::new("slowpoke").latency(0.01, 99.0);
const PAY: Objective = Objective::new("pay").success_rate(99.0);

#[observe::instrumented(objective = CHECKOUT)]
fn checkout(n: u64) -> Result<u64, String> {
    if n.is_multiple_of(10) {
        Err(format!("{n} declined"))
    } else {
        Ok(n)
    }
}

#[observe::instrumented(objective = SLOWPOKE)]
fn slowpoke() {
    std::thread::sleep(Duration::from_millis(20));
}

#[observe::instrumented]
fn always_fails() -> Result<(), String> {
    Err("no".into())
}

/// Blocks until `RELEASE` is set: a call kept in flight for the status page.
static RELEASE: AtomicU64 = AtomicU64::new(0);

#[observe::instrumented]
fn held_open() {
    let deadline = Instant::now() + Duration::from_secs(120);
    while RELEASE.load(Ordering::Relaxed) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
}

static FLIPS: AtomicU64 = AtomicU64::new(0);

/// Fails every third run, so its history has both colours.
#[observe::health_check(interval = "200ms")]
fn flaky() -> Result<(), String> {
    if FLIPS.fetch_add(1, Ordering::Relaxed) % 3 == 2 {
        Err("every third run fails".into())
    } else {
        Ok(())
    }
}

fn attach_route_objective() {
    let _ = observe::Middleware::new().objective("GET /pay/{id}", PAY);
}

/// A child process killed (and its directory removed) when dropped.
struct Killed(Child, Option<PathBuf>);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if let Some(dir) = &self.1 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn temp_dir(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("observe-slo-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A real Prometheus scraping `targets` every second and evaluating `rule_files` every
/// second.
fn prometheus(
    what: &str,
    targets: &[(&str, String)],
    rule_files: &[PathBuf],
) -> (Killed, std::net::SocketAddr) {
    let dir = temp_dir(what);
    let mut config =
        String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n");
    for f in rule_files {
        config.push_str(&format!("  - {}\n", f.display()));
    }
    config.push_str("scrape_configs:\n");
    for (job, target) in targets {
        config.push_str(&format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
        ));
    }
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
    let port = common::free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", file.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus runs (Debian's `prometheus` package)");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    (Killed(child, Some(dir)), addr)
}

/// `/api/v1/query` for `expr`: the result vector, or an error with Prometheus' answer.
fn query(prom: std::net::SocketAddr, expr: &str) -> Result<Vec<serde_json::Value>, String> {
    let mut encoded = String::new();
    for b in expr.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    if std::net::TcpStream::connect(prom).is_err() {
        return Err("Prometheus is not listening yet".into());
    }
    let (status, _, body) = common::http_get(prom, &format!("/api/v1/query?query={encoded}"), "");
    if status != 200 {
        return Err(format!("{status}: {body}"));
    }
    let answer: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if answer["status"] != "success" {
        return Err(body);
    }
    Ok(answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default())
}

/// Waits up to `secs` for `expr` to return at least one series.
fn wait_for_data(prom: std::net::SocketAddr, expr: &str, secs: u64) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let last = query(prom, expr);
        if let Ok(result) = &last
            && !result.is_empty()
        {
            return result.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no data within {secs} s for\n{expr}\nlast answer: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn number(sample: &serde_json::Value) -> f64 {
    sample["value"][1].as_str().unwrap().parse().unwrap()
}

// ---------------------------------------------------------------------------------------
// The exposition: autometrics' objective labels.

#[test]
fn objective_labels_are_autometrics_labels() {
    let _ = checkout(1);
    let text = observe::metrics::render();
    let calls = common::value(
        &text,
        "function_calls_total",
        &[
            ("function", "checkout"),
            ("objective_name", "checkout"),
            ("objective_percentile", "99.9"),
            ("result", "ok"),
        ],
    );
    assert!(calls >= 1.0, "{text}");
    // The latency target on the histogram, its threshold written as the `le` it names.
    let fast = common::value(
        &text,
        "function_calls_duration_seconds_bucket",
        &[
            ("function", "checkout"),
            ("objective_name", "checkout"),
            ("objective_latency_threshold", "0.25"),
            ("objective_percentile", "99"),
            ("le", "0.25"),
        ],
    );
    assert!(fast >= 1.0, "{text}");
    // A latency-only objective puts no objective label on the counter (autometrics
    // does the same): its success rate is not an objective.
    assert!(
        !text.lines().any(
            |l| l.starts_with("function_calls_total{function=\"slowpoke\"")
                && l.contains("objective_")
        ),
        "{text}"
    );
    let (ok, report) = common::promtool_check(&text);
    assert!(ok, "{report}");
}

// ---------------------------------------------------------------------------------------
// The generated rules: promtool.

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .expect("promtool runs (Debian's `prometheus` package)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The `summary` and `description` lines (YAML scalars, verbatim) of the alert of
/// `severity` in the group named `group`.
fn annotations(rules: &str, group: &str, severity: &str) -> (String, String) {
    let start = rules
        .find(&format!("- name: \"{group}\"\n"))
        .unwrap_or_else(|| panic!("no group {group} in\n{rules}"));
    let rest = &rules[start + 1..];
    let body = &rest[..rest.find("\n- name: ").unwrap_or(rest.len())];
    for alert in body.split("  - alert: ErrorBudgetBurn\n").skip(1) {
        if !alert.contains(&format!("      severity: {severity}\n")) {
            continue;
        }
        let line = |key: &str| {
            alert
                .lines()
                .find_map(|l| l.strip_prefix(&format!("      {key}: ")))
                .unwrap_or_else(|| panic!("no {key} in {alert}"))
                .to_owned()
        };
        return (line("summary"), line("description"));
    }
    panic!("no {severity} alert in group {group}:\n{body}");
}

/// Cumulative counter values, one a minute, from `(minutes, increase per minute)`
/// segments, in promtool's expanding notation.
fn counter(segments: &[(u64, u64)]) -> String {
    let mut parts = Vec::new();
    let mut value = 0;
    for (i, (minutes, per_minute)) in segments.iter().enumerate() {
        if i == 0 {
            parts.push(format!("0+{per_minute}x{minutes}"));
            value = per_minute * minutes;
        } else {
            parts.push(format!(
                "{}+{per_minute}x{}",
                value + per_minute,
                minutes - 1
            ));
            value += per_minute * minutes;
        }
    }
    parts.join(" ")
}

struct Case {
    name: &'static str,
    /// `(series, values)`.
    series: Vec<(String, String)>,
    eval: &'static str,
    /// `(group, severity, extra labels of the alert)` expected to fire at `eval`.
    alerts: Vec<(&'static str, &'static str)>,
    /// `(expr, labels, value)`.
    exprs: Vec<(&'static str, &'static str, f64)>,
}

const FN_LABELS: &str = r#"job="svc",instance="a",function="checkout",module="shop""#;
const ROUTE_LABELS: &str =
    r#"job="svc",instance="a",http_request_method="GET",http_route="/pay/{id}""#;

fn calls(ok: &[(u64, u64)], errors: &[(u64, u64)]) -> Vec<(String, String)> {
    let base = format!(r#"{FN_LABELS},objective_name="checkout",objective_percentile="99.9""#);
    vec![
        (
            format!(r#"function_calls_total{{{base},result="ok"}}"#),
            counter(ok),
        ),
        (
            format!(r#"function_calls_total{{{base},result="error"}}"#),
            counter(errors),
        ),
    ]
}

/// A steady error ratio of `errors` in 10,000 calls a minute for `minutes`.
fn steady(errors: u64, minutes: u64) -> Vec<(String, String)> {
    calls(&[(minutes, 10_000 - errors)], &[(minutes, errors)])
}

/// `fast` of 1,000 calls a minute within 250 ms, for `minutes`.
fn latency(fast: u64, minutes: u64) -> Vec<(String, String)> {
    let base = format!(
        r#"{FN_LABELS},objective_name="checkout",objective_percentile="99",objective_latency_threshold="0.25""#
    );
    vec![
        (
            format!(r#"function_calls_duration_seconds_bucket{{{base},le="0.25"}}"#),
            counter(&[(minutes, fast)]),
        ),
        (
            format!(r#"function_calls_duration_seconds_bucket{{{base},le="+Inf"}}"#),
            counter(&[(minutes, 1000)]),
        ),
        (
            format!(r#"function_calls_duration_seconds_count{{{base}}}"#),
            counter(&[(minutes, 1000)]),
        ),
    ]
}

/// `fives` 5xx responses in 1,000 requests a minute (none: no 5xx series at all).
fn route(fives: u64, minutes: u64) -> Vec<(String, String)> {
    let mut series = vec![(
        format!(
            r#"http_server_request_duration_seconds_count{{{ROUTE_LABELS},http_response_status_code="200"}}"#
        ),
        counter(&[(minutes, 1000 - fives)]),
    )];
    if fives > 0 {
        series.push((
            format!(r#"http_server_request_duration_seconds_count{{{ROUTE_LABELS},http_response_status_code="503"}}"#),
            counter(&[(minutes, fives)]),
        ));
    }
    series
}

const ERRORS: &str = "observe-slo-checkout-errors-99.9";
const LATENCY: &str = "observe-slo-checkout-latency-99-0.25";
const ROUTE: &str = "observe-slo-pay-errors-99-GET-/pay/{id}";

#[test]
fn generated_rules_pass_promtool_and_fire_at_their_burn_rates() {
    attach_route_objective();
    let rules = observe::slo::rules_yaml();
    let dir = temp_dir("rules");
    let file = dir.join("rules.yml");
    std::fs::write(&file, &rules).unwrap();

    // `promtool check rules`: valid, no lint finding.
    let (ok, report) = promtool(&["check", "rules", file.to_str().unwrap()]);
    assert!(ok, "{report}\n{rules}");
    assert!(report.contains("SUCCESS"), "{report}");
    assert!(
        !report.to_lowercase().contains("warn") && !report.contains("lint"),
        "{report}"
    );

    let cases = vec![
        // 15x for the last hour of 6: the 1 h / 5 m pair pages; 6 h stays at 2.5x.
        Case {
            name: "15x for an hour pages",
            series: calls(&[(300, 1000), (60, 985)], &[(300, 0), (60, 15)]),
            eval: "6h",
            alerts: vec![(ERRORS, "page"), (ERRORS, "ticket")],
            exprs: vec![],
        },
        // 14x: just below 14.4, and 6 h at 2.3x: no page, a ticket.
        Case {
            name: "14x for an hour does not page",
            series: calls(&[(300, 1000), (60, 986)], &[(300, 0), (60, 14)]),
            eval: "6h",
            alerts: vec![(ERRORS, "ticket")],
            exprs: vec![],
        },
        Case {
            name: "6.5x for 6 hours pages",
            series: steady(65, 360),
            eval: "6h",
            alerts: vec![(ERRORS, "page"), (ERRORS, "ticket")],
            exprs: vec![],
        },
        Case {
            name: "5.5x for 6 hours does not page",
            series: steady(55, 360),
            eval: "6h",
            alerts: vec![(ERRORS, "ticket")],
            exprs: vec![],
        },
        Case {
            name: "1.2x for 3 days opens a ticket",
            series: steady(12, 4320),
            eval: "3d",
            alerts: vec![(ERRORS, "ticket")],
            exprs: vec![],
        },
        Case {
            name: "0.8x for 3 days stays quiet",
            series: steady(8, 4320),
            eval: "3d",
            alerts: vec![],
            exprs: vec![],
        },
        Case {
            name: "half the budget rate leaves half the budget",
            series: steady(5, 360),
            eval: "6h",
            alerts: vec![],
            exprs: vec![(
                r#"round(100 * job:observe_slo_budget_remaining:ratio_30d{objective_name="checkout",sli="errors"})"#,
                r#"{job="svc",objective_name="checkout",objective_percentile="99.9",sli="errors"}"#,
                50.0,
            )],
        },
        Case {
            name: "7 % slower than 250 ms for 6 hours pages (latency, 99 %)",
            series: latency(930, 360),
            eval: "6h",
            alerts: vec![(LATENCY, "page"), (LATENCY, "ticket")],
            exprs: vec![],
        },
        Case {
            name: "5 % slower than 250 ms does not page",
            series: latency(950, 360),
            eval: "6h",
            alerts: vec![(LATENCY, "ticket")],
            exprs: vec![],
        },
        Case {
            name: "6.5 % 5xx on a route pages",
            series: route(65, 360),
            eval: "6h",
            alerts: vec![(ROUTE, "page"), (ROUTE, "ticket")],
            exprs: vec![],
        },
        Case {
            name: "a route that never answered 5xx records 0, not nothing",
            series: route(0, 60),
            eval: "1h",
            alerts: vec![],
            exprs: vec![(
                r#"job:observe_slo_bad_calls:ratio_rate5m{objective_name="pay"}"#,
                r#"job:observe_slo_bad_calls:ratio_rate5m{job="svc",objective_name="pay",objective_percentile="99",sli="errors",http_request_method="GET",http_route="/pay/{id}"}"#,
                0.0,
            )],
        },
    ];

    let mut test = format!(
        "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n",
        file.display()
    );
    for case in &cases {
        test.push_str(&format!(
            "  - name: {:?}\n    interval: 1m\n    input_series:\n",
            case.name
        ));
        for (series, values) in &case.series {
            test.push_str(&format!(
                "      - series: '{series}'\n        values: '{values}'\n"
            ));
        }
        test.push_str(&format!(
            "    alert_rule_test:\n      - eval_time: {}\n        alertname: ErrorBudgetBurn\n        exp_alerts:",
            case.eval
        ));
        if case.alerts.is_empty() {
            test.push_str(" []\n");
        } else {
            test.push('\n');
        }
        for (group, severity) in &case.alerts {
            let (summary, description) = annotations(&rules, group, severity);
            let (name, percentile, sli, route) = match *group {
                ERRORS => ("checkout", "99.9", "errors", false),
                LATENCY => ("checkout", "99", "latency", false),
                _ => ("pay", "99", "errors", true),
            };
            test.push_str(&format!(
                "          - exp_labels:\n              severity: {severity}\n              job: svc\n              objective_name: {name}\n              objective_percentile: \"{percentile}\"\n              sli: {sli}\n"
            ));
            if *group == LATENCY {
                test.push_str("              objective_latency_threshold: \"0.25\"\n");
            }
            if route {
                test.push_str("              http_request_method: GET\n              http_route: \"/pay/{id}\"\n");
            }
            test.push_str(&format!(
                "            exp_annotations:\n              summary: {summary}\n              description: {description}\n"
            ));
        }
        if !case.exprs.is_empty() {
            test.push_str("    promql_expr_test:\n");
            for (expr, labels, value) in &case.exprs {
                test.push_str(&format!(
                    "      - expr: '{expr}'\n        eval_time: {}\n        exp_samples:\n          - labels: '{labels}'\n            value: {value}\n",
                    case.eval
                ));
            }
        }
    }
    let test_file = dir.join("rules_test.yml");
    std::fs::write(&test_file, &test).unwrap();
    let (ok, report) = promtool(&["test", "rules", test_file.to_str().unwrap()]);
    assert!(ok, "{report}\n--- test file ---\n{test}");
    assert!(report.contains("SUCCESS"), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// A real Prometheus: autometrics' label contract and the generated rules, evaluated live.

/// Calls the objective functions for `secs`, ten calls every 100 ms (one in ten fails).
fn traffic(secs: u64) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut n = 1;
        while Instant::now() < deadline {
            for _ in 0..10 {
                let _ = checkout(n);
                n += 1;
            }
            slowpoke();
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

#[test]
fn autometrics_label_contract_and_generated_rules_evaluate_in_prometheus() {
    attach_route_objective();
    let admin = observe::admin::AdminServer::new()
        .addr("127.0.0.1:0")
        .start()
        .unwrap();
    let dir = temp_dir("rules-live");
    let ours = dir.join("observe.rules.yml");
    std::fs::write(&ours, observe::slo::rules_yaml()).unwrap();
    let mut rule_files = vec![
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/autometrics_contract.rules.yml"),
        ours,
    ];
    // autometrics' published rules file (autometrics-shared, not redistributed here),
    // when a copy is at hand.
    let published = std::env::var_os("OBSERVE_AUTOMETRICS_RULES").map(PathBuf::from);
    if let Some(path) = &published {
        rule_files.push(path.clone());
    }
    let traffic = traffic(40);
    let (_prom, prom) = prometheus(
        "live",
        &[("svc", admin.local_addr().to_string())],
        &rule_files,
    );

    // autometrics' success-rate selector: one call in ten fails.
    let errors = wait_for_data(
        prom,
        r#"autometrics_contract:success_rate_errors:ratio{objective_name="checkout"}"#,
        60,
    );
    let ratio = number(&errors[0]);
    assert!((0.05..=0.15).contains(&ratio), "{errors:?}");
    // autometrics' latency selector (the bucket whose `le` equals the threshold): every
    // `checkout` call is fast, every `slowpoke` call is slow.
    let fast = wait_for_data(
        prom,
        r#"autometrics_contract:latency_errors:ratio{objective_name="checkout"}"#,
        30,
    );
    assert_eq!(number(&fast[0]), 0.0, "{fast:?}");
    let slow = wait_for_data(
        prom,
        r#"autometrics_contract:latency_errors:ratio{objective_name="slowpoke"}"#,
        30,
    );
    assert_eq!(number(&slow[0]), 1.0, "{slow:?}");

    // The generated rules, live: the same numbers under their own names.
    let ours = wait_for_data(
        prom,
        r#"job:observe_slo_bad_calls:ratio_rate5m{objective_name="checkout",sli="errors"}"#,
        30,
    );
    assert!((0.05..=0.15).contains(&number(&ours[0])), "{ours:?}");
    let slow = wait_for_data(
        prom,
        r#"job:observe_slo_bad_calls:ratio_rate5m{objective_name="slowpoke",sli="latency"}"#,
        30,
    );
    assert_eq!(number(&slow[0]), 1.0, "{slow:?}");
    let budget = wait_for_data(
        prom,
        r#"job:observe_slo_budget_remaining:ratio_30d{objective_name="checkout",sli="errors"}"#,
        30,
    );
    // 10 % errors against a 0.1 % budget: spent a hundred times over.
    assert!(number(&budget[0]) < -50.0, "{budget:?}");
    // The page fires in Prometheus itself (the 5 m and 1 h windows hold only seconds).
    let firing = wait_for_data(
        prom,
        r#"ALERTS{alertname="ErrorBudgetBurn",objective_name="checkout",sli="errors",severity="page",alertstate="firing"}"#,
        30,
    );
    assert_eq!(firing[0]["metric"]["job"], "svc");

    if published.is_some() {
        let sloth = wait_for_data(
            prom,
            r#"slo:sli_error:ratio_rate5m{objective_name="checkout",sloth_slo="success-rate-99.9"}"#,
            30,
        );
        assert!((0.05..=0.15).contains(&number(&sloth[0])), "{sloth:?}");
        let sloth = wait_for_data(
            prom,
            r#"slo:sli_error:ratio_rate5m{objective_name="slowpoke",sloth_slo="latency-99"}"#,
            30,
        );
        assert_eq!(number(&sloth[0]), 1.0, "{sloth:?}");
    }
    traffic.join().unwrap();
    admin.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// The dashboard: every query, against a Prometheus that scraped the quickstart.

fn quickstart_binary() -> PathBuf {
    // target/<profile>/deps/slo-… -> target/<profile>/examples/quickstart
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let path = profile_dir.join("examples").join("quickstart");
    if !path.exists() {
        // `cargo test --test slo` alone does not build the examples.
        let status = Command::new(env!("CARGO"))
            .args(["build", "--example", "quickstart", "--all-features"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    path
}

/// Every `expr` of every panel, rows' collapsed panels included: `(panel title, expr)`.
fn dashboard_queries(dashboard: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(panels: &[serde_json::Value], out: &mut Vec<(String, String)>) {
        for panel in panels {
            if let Some(inner) = panel["panels"].as_array() {
                walk(inner, out);
            }
            for target in panel["targets"].as_array().into_iter().flatten() {
                out.push((
                    panel["title"].as_str().unwrap_or_default().to_owned(),
                    target["expr"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(dashboard["panels"].as_array().unwrap(), &mut out);
    out
}

#[test]
fn every_dashboard_query_returns_data_from_a_prometheus_that_scraped_the_quickstart() {
    let app = common::free_port();
    let admin = common::free_port();
    let child = Command::new(quickstart_binary())
        .env("APP_ADDR", format!("127.0.0.1:{app}"))
        .env("OBSERVE_ADMIN_ADDR", format!("127.0.0.1:{admin}"))
        .env("OTEL_SERVICE_NAME", "quickstart")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _quickstart = Killed(child, None);
    let app: std::net::SocketAddr = format!("127.0.0.1:{app}").parse().unwrap();
    let admin: std::net::SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();
    common::wait_until_connects(app);
    common::wait_until_connects(admin);

    // The inventory, as the admin server serves it.
    let (status, _, rules) = common::http_get(admin, "/debug/observe/rules.yml", "");
    assert_eq!(status, 200);
    assert!(rules.contains("objective_name: \"charges\""), "{rules}");
    assert!(
        rules.contains("http_route: \"/charge/{amount}\""),
        "{rules}"
    );
    let (status, head, dashboard) = common::http_get(admin, "/debug/observe/dashboard.json", "");
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("application/json"),
        "{head}"
    );
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).unwrap();
    let queries = dashboard_queries(&dashboard);
    for function in ["charge", "charge_handler", "index"] {
        assert!(
            queries
                .iter()
                .any(|(title, _)| title == &format!("{function}: latency")),
            "no row for {function}: {queries:?}"
        );
    }
    assert!(queries.len() >= 25, "{queries:?}");

    let dir = temp_dir("dashboard");
    let rules_file = dir.join("quickstart.rules.yml");
    std::fs::write(&rules_file, &rules).unwrap();
    let (_prom, prom) = prometheus(
        "quickstart",
        &[("quickstart", app.to_string())],
        &[rules_file],
    );

    // Traffic on every route and function, errors included (bounded: 10 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut sent = 0;
    while Instant::now() < deadline {
        for path in ["/", "/charge/42", "/charge/7", "/charge/0", "/charge/20000"] {
            let (status, _, _) = common::http_get(app, path, "");
            assert!(status == 200 || status == 422, "{path}: {status}");
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(sent > 50);

    // Grafana would substitute its variables; `job` at "All" is `.+`.
    for (title, expr) in &queries {
        let expr = expr.replace("$job", ".+");
        let result = wait_for_data(prom, &expr, 60);
        assert!(!result.is_empty(), "{title}: {expr}");
    }
    // The generated rules evaluate on the quickstart's series too.
    let budget = wait_for_data(
        prom,
        r#"job:observe_slo_budget_remaining:ratio_30d{objective_name="charges",sli="errors"}"#,
        30,
    );
    assert_eq!(budget[0]["metric"]["job"], "quickstart");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// The status page, in a real browser.

fn chromium(args: &[&str], url: &str) -> std::process::Output {
    let profile = temp_dir("chromium");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .expect("chromium runs (Debian's `chromium` package)");
    let _ = std::fs::remove_dir_all(&profile);
    out
}

#[test]
fn status_page_renders_in_headless_chromium() {
    attach_route_objective();
    // Calls: 9 in 10 checkouts succeed (the budget is spent), one function always fails,
    // one call stays in flight.
    for n in 1..=20 {
        let _ = checkout(n);
    }
    for _ in 0..3 {
        let _ = always_fails();
    }
    let held = std::thread::spawn(held_open);
    let health = observe::health::Health::builder()
        .select(["flaky"])
        .build()
        .unwrap();
    health.start_background();
    let admin = observe::admin::AdminServer::new()
        .addr("127.0.0.1:0")
        .health(health.clone())
        .start()
        .unwrap();
    // Several runs of the check, both outcomes among them.
    let deadline = Instant::now() + Duration::from_secs(30);
    while FLIPS.load(Ordering::Relaxed) < 4 {
        assert!(
            Instant::now() < deadline,
            "the flaky check did not run four times"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("http://{}/debug/observe/", admin.local_addr());

    let (status, head, _) = common::http_get(admin.local_addr(), "/debug/observe/", "");
    assert_eq!(status, 200);
    let head = head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/html"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    // Without its slash: redirected, so the page's relative links resolve.
    let (status, head, _) = common::http_get(admin.local_addr(), "/debug/observe", "");
    assert_eq!(status, 308, "{head}");

    let out = chromium(&["--dump-dom"], &url);
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "{}\n{dom}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Health: the check, its status and its runs, failures among them.
    assert!(
        dom.contains(r#"<tr class="check" data-check="flaky" data-status="#),
        "{dom}"
    );
    assert!(
        dom.contains(r#"class="run pass""#) && dom.contains(r#"class="run fail""#),
        "{dom}"
    );
    // Objectives, with the budget computed from the calls made here: 2 errors in 20 calls
    // against 0.1 % -> 1 - 0.1 / 0.001 = -99 (at least; other tests add calls).
    let row = dom
        .split("<tr ")
        .find(|r| r.contains(r#"data-objective="checkout" data-sli="errors""#))
        .unwrap_or_else(|| panic!("no checkout objective row: {dom}"));
    let left: f64 = row
        .split("data-budget-left=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(left < -50.0, "{row}");
    assert!(row.contains("spent:"), "{row}");
    assert!(
        dom.contains(r#"data-objective="pay" data-sli="errors""#),
        "{dom}"
    );
    assert!(dom.contains("GET /pay/{id}"), "{dom}");
    // The worst error ratio first.
    let top = dom.split("id=\"top-errors\"").nth(1).unwrap();
    let first = top.split("<tr class=\"function\"").nth(1).unwrap();
    assert!(first.contains(r#"data-function="always_fails""#), "{top}");
    assert!(dom.contains("id=\"top-latency\""), "{dom}");
    // The call held open.
    assert!(
        dom.contains(r#"<tr class="busy" data-function="held_open">"#),
        "{dom}"
    );
    // Links to the profiles, all relative: the page loads nothing from anywhere, and has
    // no script (its Content-Security-Policy, which Chromium enforces, would refuse both:
    // what renders here renders without JavaScript and without the network).
    assert!(dom.contains(r#"href="/debug/pprof/""#), "{dom}");
    assert!(!dom.contains("<script"), "{dom}");
    assert!(
        !dom.contains("src=\"http") && !dom.contains("href=\"http"),
        "{dom}"
    );

    // A screenshot, kept as a test artefact.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let out = chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1600",
            "--hide-scrollbars",
        ],
        &url,
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| {
        panic!(
            "no screenshot at {} ({e}): {}",
            shot.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(width, 1280);
    assert!(png.len() > 20_000, "a blank page? {} bytes", png.len());
    eprintln!("status page screenshot: {}", shot.display());

    RELEASE.store(1, Ordering::Relaxed);
    held.join().unwrap();
    admin.stop();
}
