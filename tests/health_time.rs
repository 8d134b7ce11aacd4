//! The engine's time logic under tokio's paused clock: exact cache lifetimes, stale
//! serving, and exponential backoff of a failing check, with no real waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use observe::health::{CheckState, Health, Overall};
use tokio::time::advance;

struct Dependency {
    calls: AtomicU32,
    down: AtomicBool,
}

#[observe::health_check(critical)]
async fn dependency(dep: &Arc<Dependency>) -> Result<(), String> {
    dep.calls.fetch_add(1, Ordering::SeqCst);
    if dep.down.load(Ordering::SeqCst) {
        Err("down".into())
    } else {
        Ok(())
    }
}

async fn settle() {
    // Let spawned runs finish (they do not sleep, so no time passes).
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn cache_lifetime_stale_serving_and_backoff() {
    let dep = Arc::new(Dependency {
        calls: AtomicU32::new(0),
        down: AtomicBool::new(false),
    });
    let health = Health::builder()
        .select(["dependency"])
        .state(dep.clone())
        .runtime(tokio::runtime::Handle::current())
        .build()
        .unwrap();
    health.mark_started();
    let calls = || dep.calls.load(Ordering::SeqCst);
    let probe = || async {
        let p = health.readiness(&[], None).await;
        settle().await;
        p
    };

    assert_eq!(probe().await.overall, Overall::Ok);
    assert_eq!(calls(), 1);
    // Within the default 1 s lifetime: cached.
    advance(Duration::from_millis(999)).await;
    assert_eq!(probe().await.overall, Overall::Ok);
    assert_eq!(calls(), 1);
    // Past it: the stale pass is served at once and refreshed behind it.
    advance(Duration::from_millis(2)).await;
    assert_eq!(probe().await.overall, Overall::Ok);
    assert_eq!(calls(), 2);

    // Down. The last pass is 1.5 s old, inside the stale window (two lifetimes): this
    // probe still serves it while the refresh runs and fails; the next one reports it.
    dep.down.store(true, Ordering::SeqCst);
    advance(Duration::from_millis(1500)).await;
    assert_eq!(probe().await.overall, Overall::Ok);
    assert_eq!(calls(), 3);
    let p = probe().await;
    assert_eq!(p.overall, Overall::Failed, "{p:?}");
    assert_eq!(p.checks[0].state, CheckState::Fail);
    assert_eq!(calls(), 3, "within its lifetime: not run again");
    // A failing check is re-run by probes once per lifetime (1 s), however long it has
    // been failing: recovery is never hidden behind a backoff.
    for (wait, expected_calls) in [(900, 3), (200, 4), (900, 4), (200, 5), (999, 5), (2, 6)] {
        advance(Duration::from_millis(wait)).await;
        let p = probe().await;
        assert_eq!(p.overall, Overall::Failed);
        assert_eq!(calls(), expected_calls, "after {wait} ms more");
    }
    assert_eq!(health.runs("dependency"), Some(6));
}

struct Flaky {
    calls: AtomicU32,
    down: AtomicBool,
    at: std::sync::Mutex<Vec<tokio::time::Instant>>,
}

#[observe::health_check(critical, interval = "2s", timeout = "500ms")]
async fn flaky(dep: &Arc<Flaky>) -> Result<(), String> {
    dep.calls.fetch_add(1, Ordering::SeqCst);
    dep.at.lock().unwrap().push(tokio::time::Instant::now());
    if dep.down.load(Ordering::SeqCst) {
        Err("down".into())
    } else {
        Ok(())
    }
}

/// Issue 15, item 2: a dependency down for two minutes drives the background backoff to
/// its 30 s ceiling, jittered (retries spread within [half, whole] of each ceiling); once
/// it is back, `/readyz` (asked every 250 ms) is ready at most one interval (2 s) plus
/// the timeout after it recovered, although the backoff then stood at 30 s.
#[tokio::test(start_paused = true)]
async fn recovery_shows_within_one_interval_and_backoff_is_jittered() {
    let dep = Arc::new(Flaky {
        calls: AtomicU32::new(0),
        down: AtomicBool::new(true),
        at: Default::default(),
    });
    let health = Health::builder()
        .select(["flaky"])
        .state(dep.clone())
        .runtime(tokio::runtime::Handle::current())
        .build()
        .unwrap();
    health.mark_started();
    health.start_background();

    // Five minutes down, no probes: the background schedule alone, backing off (long
    // enough for a dozen waits at the ceiling: rounded to the 2 s tick, a jittered wait
    // takes one of ~8 values, so two or three of them are equal by chance too often).
    for _ in 0..3000 {
        advance(Duration::from_millis(100)).await;
        settle().await;
    }
    let runs = dep.at.lock().unwrap().clone();
    let gaps: Vec<Duration> = runs.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        runs.len() >= 12 && runs.len() <= 30,
        "{} runs: {gaps:?}",
        runs.len()
    );
    // Ceilings 2 s, 4 s, 8 s, 16 s, 30 s, 30 s …; the tick is 2 s, so a gap is the jittered
    // wait rounded up to the next tick: within [ceiling/2, ceiling + 2 s].
    let mut ceiling = Duration::from_secs(2);
    for gap in &gaps {
        assert!(
            *gap >= ceiling / 2 && *gap <= ceiling + Duration::from_millis(2100),
            "gap {gap:?} outside the jittered ceiling {ceiling:?}: {gaps:?}"
        );
        ceiling = (ceiling * 2).min(observe::health::MAX_BACKOFF);
    }
    assert!(
        gaps.iter().any(|g| *g >= Duration::from_secs(15)),
        "the backoff never grew: {gaps:?}"
    );
    // Not in lockstep: the waits at the ceiling differ from one another.
    let long: Vec<&Duration> = gaps
        .iter()
        .filter(|g| **g >= Duration::from_secs(15))
        .collect();
    assert!(
        long.len() < 2 || long.windows(2).any(|w| w[0] != w[1]),
        "{gaps:?}"
    );

    let p = health.readiness(&[], None).await;
    assert_eq!(p.overall, Overall::Failed, "{p:?}");

    // The dependency recovers.
    dep.down.store(false, Ordering::SeqCst);
    let recovered_at = tokio::time::Instant::now();
    let mut ready_after = None;
    for _ in 0..400 {
        let p = health.readiness(&[], None).await;
        settle().await;
        if p.overall == Overall::Ok {
            ready_after = Some(tokio::time::Instant::now() - recovered_at);
            break;
        }
        advance(Duration::from_millis(250)).await;
        settle().await;
    }
    let ready_after = ready_after.expect("never ready again");
    assert!(
        ready_after <= Duration::from_millis(2500),
        "ready {ready_after:?} after the dependency recovered (interval 2 s + timeout 500 ms)"
    );
}
