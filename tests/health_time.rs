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
    assert_eq!(calls(), 3, "in backoff: not run again");
    // Failing checks back off 1 s, 2 s, 4 s from each failed run.
    for (wait, expected_calls) in [
        (900, 3),  // 1 s backoff not over
        (200, 4),  // over: second failure, backoff 2 s
        (1900, 4), // not over
        (200, 5),  // over: third failure, backoff 4 s
        (3900, 5),
        (200, 6),
    ] {
        advance(Duration::from_millis(wait)).await;
        let p = probe().await;
        assert_eq!(p.overall, Overall::Failed);
        assert_eq!(calls(), expected_calls, "after {wait} ms more");
    }
    assert_eq!(health.runs("dependency"), Some(6));
}
