//! The health engine and probe endpoints, with real checks: concurrency, timeouts that
//! really cancel, panics, dependencies, caching under a probe storm, hysteresis,
//! start-up, shutdown, formats, and the metrics. Each test selects its own checks.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use actix_web::{App, test};
use observe::admin::AccessPolicy;
use observe::health::{Health, HealthStatus, Overall};

// ---- checks ----

#[observe::health_check(critical, groups("storage"))]
async fn database() -> Result<(), String> {
    Ok(())
}

#[observe::health_check(critical, groups("payments"))]
async fn payment_gateway() -> Result<(), std::io::Error> {
    Err(std::io::Error::other("gateway returned 502"))
}

#[observe::health_check]
async fn cache() -> Result<(), String> {
    Err("connection refused".into())
}

#[observe::health_check(name = "replica")]
async fn replica_lag() -> HealthStatus {
    HealthStatus::Degraded("replica lag 4s".into())
}

static HUNG_DROPPED: AtomicBool = AtomicBool::new(false);

struct SetOnDrop(&'static AtomicBool);
impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[observe::health_check(critical, timeout = "200ms")]
async fn hangs() -> Result<(), String> {
    let _cancelled = SetOnDrop(&HUNG_DROPPED);
    tokio::time::sleep(Duration::from_secs(30)).await;
    Ok(())
}

#[observe::health_check(critical)]
async fn explodes() -> Result<(), String> {
    panic!("boom in check");
}

#[observe::health_check(critical)]
fn blocking_disk() -> Result<(), String> {
    // Plain functions run on the blocking pool, off the async workers.
    std::thread::sleep(Duration::from_millis(20));
    Ok(())
}

#[observe::health_check(critical, depends_on = "payment_gateway")]
async fn ledger(calls: &LedgerCalls) -> Result<(), String> {
    calls.0.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

struct LedgerCalls(AtomicU32);

struct SlowCalls(AtomicU32);

#[observe::health_check(critical)]
async fn slow_dependency(calls: &SlowCalls) -> Result<(), String> {
    calls.0.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

/// Shared with the test, which flips it.
struct Switch(Arc<AtomicBool>);

#[observe::health_check(
    critical,
    interval = "50ms",
    failure_threshold = 2,
    success_threshold = 2
)]
async fn flappy(switch: &Switch) -> Result<(), String> {
    if switch.0.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err("switched off".into())
    }
}

#[observe::health_check(startup)]
async fn migrations(done: &MigrationsDone) -> Result<(), String> {
    if done.0.load(Ordering::SeqCst) {
        Ok(())
    } else {
        Err("migrations running".into())
    }
}

struct MigrationsDone(Arc<AtomicBool>);

// ---- helpers ----

fn engine(names: &[&str]) -> observe::health::HealthBuilder {
    Health::builder()
        .select(names.iter().copied())
        .runtime(tokio::runtime::Handle::current())
}

async fn probe(health: &Health, uri: &str, loopback: bool) -> (u16, String) {
    let app = test::init_service(App::new().configure(observe::health::configure(
        Some(health.clone()),
        AccessPolicy::loopback_only(),
    )))
    .await;
    let mut req = test::TestRequest::get().uri(uri);
    if loopback {
        req = req.peer_addr("127.0.0.1:40000".parse().unwrap());
    } else {
        req = req.peer_addr("192.0.2.10:40000".parse().unwrap());
    }
    let resp = test::call_service(&app, req.to_request()).await;
    let status = resp.status().as_u16();
    let body = String::from_utf8(test::read_body(resp).await.to_vec()).unwrap();
    (status, body)
}

// ---- tests ----

#[actix_web::test]
async fn all_passing_is_ok_and_verbose_lists_each_check() {
    let health = engine(&["database", "blocking_disk"]).build().unwrap();
    health.mark_started();
    assert_eq!(probe(&health, "/readyz", false).await, (200, "ok\n".into()));
    let (status, body) = probe(&health, "/readyz?verbose", false).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "[+]blocking_disk ok\n[+]database ok\nreadyz check passed\n"
    );
}

#[actix_web::test]
async fn critical_failure_is_503_with_details_only_for_authorized_callers() {
    let health = engine(&["database", "payment_gateway", "cache"])
        .build()
        .unwrap();
    health.mark_started();
    let (status, body) = probe(&health, "/readyz", false).await;
    assert_eq!(status, 503);
    assert!(
        body.contains("[-]payment_gateway failed: reason withheld\n"),
        "{body}"
    );
    assert!(
        body.contains("[-]cache failed (non-critical): reason withheld\n"),
        "{body}"
    );
    assert!(body.ends_with("readyz check failed\n"), "{body}");
    let (status, body) = probe(&health, "/readyz", true).await;
    assert_eq!(status, 503);
    assert!(
        body.contains("[-]payment_gateway failed: gateway returned 502\n"),
        "{body}"
    );

    // Excluding the critical failure leaves only the non-critical one: degraded, 200.
    let (status, body) = probe(
        &health,
        "/readyz?exclude=payment_gateway&exclude=nope",
        true,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("[+]payment_gateway excluded: failed\n"),
        "{body}"
    );
    assert!(
        body.contains("warn: some health checks cannot be excluded: no matches for \"nope\""),
        "{body}"
    );
    assert!(body.ends_with("readyz check passed, degraded\n"), "{body}");
}

#[actix_web::test]
async fn degraded_and_non_critical_failures_answer_200_degraded() {
    let health = engine(&["database", "cache", "replica"]).build().unwrap();
    health.mark_started();
    let (status, body) = probe(&health, "/readyz", true).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("[+]replica degraded: replica lag 4s\n"),
        "{body}"
    );
    assert!(
        body.contains("[-]cache failed (non-critical): connection refused\n"),
        "{body}"
    );
}

#[actix_web::test]
async fn a_hanging_check_times_out_within_the_budget_and_is_cancelled() {
    let health = engine(&["database", "hangs"])
        .probe_budget(Duration::from_millis(500))
        .build()
        .unwrap();
    health.mark_started();
    let started = Instant::now();
    let (status, body) = probe(&health, "/readyz", true).await;
    let took = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("[-]hangs timeout: timed out after 200ms"),
        "{body}"
    );
    assert!(took < Duration::from_millis(500), "answered in {took:?}");
    // The run was aborted: its future was dropped, not left sleeping.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        HUNG_DROPPED.load(Ordering::SeqCst),
        "the hung check was not cancelled"
    );
}

#[actix_web::test]
async fn a_panicking_check_fails_and_the_server_keeps_serving() {
    let health = engine(&["database", "explodes"]).build().unwrap();
    health.mark_started();
    let (status, body) = probe(&health, "/readyz", true).await;
    assert_eq!(status, 503);
    assert!(
        body.contains("[-]explodes failed: panicked: boom in check"),
        "{body}"
    );
    let (status, _) = probe(&health, "/livez", true).await;
    assert_eq!(status, 200);
    let (status, _) = probe(&health, "/readyz/database", true).await;
    assert_eq!(status, 200);
}

#[actix_web::test]
async fn a_dependent_check_is_skipped_not_run() {
    let health = engine(&["payment_gateway", "ledger"])
        .state(LedgerCalls(AtomicU32::new(0)))
        .build()
        .unwrap();
    health.mark_started();
    // First probe: both run concurrently (the gateway's status is not known yet).
    let _ = probe(&health, "/readyz", true).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let runs_before = health.runs("ledger").unwrap();
    let (status, body) = probe(&health, "/readyz", true).await;
    assert_eq!(status, 503);
    assert!(
        body.contains("[-]ledger skipped: skipped: `payment_gateway` is failing"),
        "{body}"
    );
    assert_eq!(
        health.runs("ledger").unwrap(),
        runs_before,
        "a skipped check must not run"
    );
}

#[actix_web::test]
async fn concurrent_probes_share_one_run() {
    let health = engine(&["slow_dependency"])
        .state(SlowCalls(AtomicU32::new(0)))
        .build()
        .unwrap();
    health.mark_started();
    let probes = (0..200).map(|_| health.readiness(&[], None));
    let results = futures_util::future::join_all(probes).await;
    assert!(results.iter().all(|p| p.overall == Overall::Ok));
    assert_eq!(
        health.runs("slow_dependency"),
        Some(1),
        "200 probes, one run"
    );
    // Within the cache lifetime, more probes do not run it again either.
    for _ in 0..50 {
        assert_eq!(health.readiness(&[], None).await.overall, Overall::Ok);
    }
    assert_eq!(health.runs("slow_dependency"), Some(1));
}

#[actix_web::test]
async fn missing_state_is_a_start_up_error_naming_the_check_and_type() {
    struct Unrelated;
    let errors = engine(&["flappy", "ledger"])
        .state(Unrelated)
        .build()
        .unwrap_err();
    let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`flappy`") && m.contains("Switch")),
        "{messages:#?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`ledger`") && m.contains("LedgerCalls")),
        "{messages:#?}"
    );
    // `ledger` depends on a check that is not selected here.
    assert!(
        messages
            .iter()
            .any(|m| m.contains("depends on `payment_gateway`")),
        "{messages:#?}"
    );
    assert!(
        messages.iter().all(|m| m.contains("tests/health.rs:")),
        "{messages:#?}"
    );
}

#[actix_web::test]
async fn failure_and_success_thresholds_with_transitions() {
    let on = Arc::new(AtomicBool::new(true));
    let health = engine(&["flappy"])
        .state(Switch(on.clone()))
        .build()
        .unwrap();
    health.mark_started();
    let mut transitions = health.subscribe();
    let overall = || async { health.readiness(&[], None).await.overall };
    assert_eq!(overall().await, Overall::Ok);
    on.store(false, Ordering::SeqCst);
    // The cache lifetime is the 50 ms interval; failures back off 50 ms, then 100 ms.
    tokio::time::sleep(Duration::from_millis(80)).await;
    let _ = overall().await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(overall().await, Overall::Ok, "one failure, threshold two");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = overall().await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(overall().await, Overall::Failed, "two failures");
    let t = transitions.try_recv().expect("the failure was announced");
    assert_eq!((t.check, t.healthy), ("flappy", false));
    assert!(transitions.try_recv().is_err(), "announced once");

    on.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _ = overall().await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(
        overall().await,
        Overall::Failed,
        "one success, threshold two"
    );
    tokio::time::sleep(Duration::from_millis(80)).await;
    let _ = overall().await;
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(overall().await, Overall::Ok, "two successes");
    assert!(transitions.try_recv().unwrap().healthy);
}

#[actix_web::test]
async fn startup_waits_for_the_application_and_startup_checks() {
    let done = Arc::new(AtomicBool::new(false));
    let health = engine(&["database", "migrations"])
        .state(MigrationsDone(done.clone()))
        .build()
        .unwrap();
    let (status, body) = probe(&health, "/startupz", true).await;
    assert_eq!(status, 503);
    assert!(
        body.contains("[-]migrations failed: migrations running"),
        "{body}"
    );
    // Readiness fails while start-up does.
    let (status, body) = probe(&health, "/readyz", true).await;
    assert_eq!(status, 503);
    assert!(
        body.contains("[-]startup failed: start-up not complete"),
        "{body}"
    );
    done.store(true, Ordering::SeqCst);
    health.mark_started();
    tokio::time::sleep(Duration::from_millis(1100)).await; // past the failure's backoff
    let (status, body) = probe(&health, "/startupz", true).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(probe(&health, "/readyz", true).await.0, 200);
}

#[actix_web::test]
async fn shutdown_fails_readiness_not_liveness() {
    let health = engine(&["database"]).build().unwrap();
    health.mark_started();
    assert_eq!(probe(&health, "/readyz", true).await.0, 200);
    health.begin_shutdown();
    let (status, body) = probe(&health, "/readyz", true).await;
    assert_eq!(status, 503);
    assert!(
        body.contains("[-]shutdown failed: shutting down\n"),
        "{body}"
    );
    assert_eq!(probe(&health, "/livez", true).await.0, 200);
    assert_eq!(probe(&health, "/healthz", true).await.0, 200);
}

#[actix_web::test]
async fn formats_single_checks_and_bad_parameters() {
    let health = engine(&["database", "payment_gateway"]).build().unwrap();
    health.mark_started();
    let (status, body) = probe(&health, "/readyz?format=json", false).await;
    assert_eq!(status, 503);
    assert!(
        body.starts_with("{\"status\":\"failed\",\"process\":null,\"checks\":["),
        "{body}"
    );
    assert!(
        body.contains("\"name\":\"payment_gateway\",\"critical\":true,\"status\":\"failed\""),
        "{body}"
    );
    assert!(body.contains("\"error\":\"reason withheld\""), "{body}");
    assert!(body.contains("\"consecutive_failures\":1"), "{body}");

    let (status, body) = probe(&health, "/readyz/database", false).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "[+]database ok\nreadyz check passed\n")
    );
    let (status, body) = probe(&health, "/readyz/nothing", false).await;
    assert_eq!(status, 404);
    assert!(
        body.contains("no health check named `nothing`; checks: database, payment_gateway"),
        "{body}"
    );
    let (status, body) = probe(&health, "/readyz?format=xml", false).await;
    assert_eq!(status, 400);
    assert!(body.contains("unknown format `xml`"), "{body}");
    let (status, body) = probe(&health, "/readyz?verbos", false).await;
    assert_eq!(status, 400);
    assert!(body.contains("unknown query parameter `verbos`"), "{body}");
}

#[actix_web::test]
async fn health_metrics_are_exposed() {
    let health = engine(&["database", "payment_gateway", "hangs"])
        .probe_budget(Duration::from_millis(400))
        .build()
        .unwrap();
    health.mark_started();
    let _ = health.readiness(&[], None).await;
    let text = observe::metrics::render();
    let v = |name, labels: &[(&str, &str)]| common::value(&text, name, labels);
    assert_eq!(
        v(
            "health_check_status",
            &[("check", "database"), ("critical", "true")]
        ),
        1.0
    );
    assert_eq!(
        v("health_check_status", &[("check", "payment_gateway")]),
        0.0
    );
    assert!(
        v(
            "health_check_failures_total",
            &[("check", "payment_gateway"), ("reason", "error")]
        ) >= 1.0
    );
    assert!(
        v(
            "health_check_failures_total",
            &[("check", "hangs"), ("reason", "timeout")]
        ) >= 1.0
    );
    assert!(
        v(
            "health_check_duration_seconds_count",
            &[("check", "database")]
        ) >= 1.0
    );
    let (ok, out) = common::promtool_check(&text);
    assert!(ok && out.is_empty(), "promtool: {out}");
}

#[actix_web::test]
async fn groups_select_their_checks() {
    let health = engine(&["database", "payment_gateway"]).build().unwrap();
    health.mark_started();
    assert_eq!(health.groups(), vec!["payments", "storage"]);
    let (status, body) = probe(&health, "/readyz?group=storage&verbose", true).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "[+]database ok\nreadyz check passed\n")
    );
    let (status, body) = probe(&health, "/readyz?group=payments", true).await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.contains("database"), "{body}");
    let (status, body) = probe(&health, "/readyz?group=billing", true).await;
    assert_eq!(status, 404);
    assert!(
        body.contains("no health check is in group `billing`; groups: payments, storage"),
        "{body}"
    );
    let (status, _) = probe(&health, "/readyz?group=a&group=b", true).await;
    assert_eq!(status, 400);
}
