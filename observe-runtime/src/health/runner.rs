//! One check's life: its tracked state, a probe's evaluation of it (cache, single
//! flight, backoff, dependencies), the run in a task under its timeout, and recording
//! the result (hysteresis, metrics, transitions).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::time::Instant;

use super::definition::{CheckDef, HealthStatus, panic_message};
use super::engine::{DEFAULT_TTL, Inner, MAX_BACKOFF};
use super::report::{CheckReport, CheckState, Transition};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    Pass,
    Degraded,
    Fail,
    Timeout,
    Panic,
}

#[derive(Clone, Debug)]
pub(super) struct Observation {
    pub(super) kind: Kind,
    pub(super) message: Option<String>,
    pub(super) duration: Duration,
    pub(super) at: Instant,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Reported {
    Unknown,
    Up,
    Down,
}

pub(super) struct State {
    pub(super) last: Option<Observation>,
    pub(super) reported: Reported,
    pub(super) consecutive_failures: u32,
    pub(super) consecutive_successes: u32,
    pub(super) last_success: Option<SystemTime>,
    pub(super) in_flight: Option<watch::Receiver<Option<Observation>>>,
    pub(super) retry_at: Option<Instant>,
    pub(super) passed_once: bool,
    pub(super) runs: u64,
}

pub(super) struct TrackedCheck {
    pub(super) def: &'static CheckDef,
    pub(super) state: Mutex<State>,
}

pub(super) fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) fn ttl(def: &CheckDef) -> Duration {
    def.interval.unwrap_or(DEFAULT_TTL)
}

/// The ceiling of the wait before the background schedule retries a failing check:
/// its lifetime doubled per consecutive failure, at most [`MAX_BACKOFF`].
pub(super) fn backoff(def: &CheckDef, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(6);
    (ttl(def) * 2u32.pow(exp)).min(MAX_BACKOFF)
}

/// `ceiling` with "equal jitter": uniformly in [ceiling/2, ceiling], so replicas that
/// failed together (a shared database blip) do not retry in lockstep.
pub(super) fn jittered(ceiling: Duration) -> Duration {
    use std::hash::BuildHasher;
    // Each RandomState has keys of its own (seeded from the OS, then varied per
    // instance), so hashing nothing gives a fresh random number: no generator to keep.
    let random = std::collections::hash_map::RandomState::new().hash_one(());
    let unit = (random >> 11) as f64 / (1u64 << 53) as f64;
    ceiling / 2 + ceiling.mul_f64(unit / 2.0)
}

pub(super) fn report(rt: &TrackedCheck, st: &State) -> CheckReport {
    let def = rt.def;
    let (state, message) = match (st.reported, &st.last) {
        (_, None) => (CheckState::Timeout, Some("no result yet".to_owned())),
        (Reported::Up | Reported::Unknown, Some(last)) => match last.kind {
            Kind::Degraded => (CheckState::Degraded, last.message.clone()),
            Kind::Pass => (CheckState::Pass, None),
            // Failing, but under the failure threshold: still reported as passing.
            _ => (
                CheckState::Pass,
                Some(format!(
                    "{} consecutive failure(s), threshold {}: {}",
                    st.consecutive_failures,
                    def.failure_threshold,
                    last.message.clone().unwrap_or_default()
                )),
            ),
        },
        (Reported::Down, Some(last)) => match last.kind {
            Kind::Timeout => (CheckState::Timeout, last.message.clone()),
            Kind::Fail | Kind::Panic => (CheckState::Fail, last.message.clone()),
            // Recovering, under the success threshold: still reported as failing.
            Kind::Pass | Kind::Degraded => (
                CheckState::Fail,
                Some(format!(
                    "recovering: {} consecutive success(es), threshold {}",
                    st.consecutive_successes, def.success_threshold
                )),
            ),
        },
    };
    CheckReport {
        name: def.name,
        critical: def.critical,
        state,
        message,
        duration: st.last.as_ref().map(|l| l.duration),
        last_success: st.last_success,
        consecutive_failures: st.consecutive_failures,
        excluded_state: None,
    }
}

pub(super) fn is_down(inner: &Inner, name: &str) -> bool {
    inner
        .index
        .get(name)
        .is_some_and(|&i| lock(&inner.checks[i].state).reported == Reported::Down)
}

pub(super) async fn evaluate(
    inner: &Arc<Inner>,
    i: usize,
    deadline: Instant,
    excluded: bool,
) -> CheckReport {
    let rt = &inner.checks[i];
    if excluded {
        let st = lock(&rt.state);
        let mut r = report(rt, &st);
        r.excluded_state = Some(r.state);
        r.state = CheckState::Excluded;
        return r;
    }
    if let Some(dep) = rt.def.depends_on
        && is_down(inner, dep)
    {
        let st = lock(&rt.state);
        let mut r = report(rt, &st);
        r.state = CheckState::Skipped;
        r.message = Some(format!("skipped: `{dep}` is failing"));
        return r;
    }
    let rx = {
        let mut st = lock(&rt.state);
        let now = Instant::now();
        let age = st
            .last
            .as_ref()
            .map(|l| now.saturating_duration_since(l.at));
        // A result younger than the check's lifetime is served as it is. Backoff spaces
        // only the background schedule's retries: a probe re-runs a failing check once
        // per lifetime, so recovery shows within one interval plus the check's timeout.
        let fresh = age.is_some_and(|a| a < ttl(rt.def));
        if fresh {
            return report(rt, &st);
        }
        let rx = match &st.in_flight {
            Some(rx) => rx.clone(),
            None => {
                let rx = spawn_run(inner, i);
                st.in_flight = Some(rx.clone());
                st.runs += 1;
                rx
            }
        };
        // Stale while revalidate: a passing result up to one more lifetime old is served
        // at once while the refresh runs. A failing one is re-checked within the budget
        // (backoff already protects that dependency), so recovery shows without delay.
        let stale_pass = st.reported == Reported::Up
            && st
                .last
                .as_ref()
                .is_some_and(|l| matches!(l.kind, Kind::Pass | Kind::Degraded));
        if stale_pass && age.is_some_and(|a| a < ttl(rt.def) * 2) {
            return report(rt, &st);
        }
        rx
    };
    let wait = wait_for(rx);
    if tokio::time::timeout_at(deadline, wait).await.is_err() {
        let st = lock(&rt.state);
        let mut r = report(rt, &st);
        if st.last.is_none() || r.state == CheckState::Pass {
            r.state = CheckState::Timeout;
        }
        r.message = Some(format!(
            "no result within the probe budget of {:?}; the check keeps running",
            inner.budget
        ));
        return r;
    }
    let st = lock(&rt.state);
    report(rt, &st)
}

pub(super) async fn wait_for(mut rx: watch::Receiver<Option<Observation>>) {
    while rx.borrow_and_update().is_none() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Starts one run of check `i` on the health runtime. The caller holds the check's
/// state lock and records the run there (`in_flight`, `runs`).
pub(super) fn spawn_run(inner: &Arc<Inner>, i: usize) -> watch::Receiver<Option<Observation>> {
    let (tx, rx) = watch::channel(None);
    let task_inner = inner.clone();
    let def = inner.checks[i].def;
    let traced = inner.trace_checks;
    // A root span (never the child of the probe request that caused the run), made while
    // telemetry is suppressed unless check runs are traced: then observe's OpenTelemetry
    // layer leaves it, and everything the check calls, out.
    let span = untraced(
        traced,
        || tracing::info_span!(target: "observe::health", parent: None, "health_check", check = def.name),
    );
    let run = async move {
        let inner = task_inner;
        let start = Instant::now();
        let check = (def.run)(&inner.state);
        let check = tracing::Instrument::instrument(check, tracing::Span::current());
        let mut handle = tokio::spawn(quiet(traced, check));
        let (kind, message) = match tokio::time::timeout(def.timeout, &mut handle).await {
            Ok(Ok(HealthStatus::Pass)) => (Kind::Pass, None),
            Ok(Ok(HealthStatus::Degraded(m))) => (Kind::Degraded, Some(m)),
            Ok(Ok(HealthStatus::Fail(m))) => (Kind::Fail, Some(m)),
            Ok(Err(e)) if e.is_panic() => (
                Kind::Panic,
                Some(format!(
                    "panicked: {}",
                    panic_message(e.into_panic().as_ref())
                )),
            ),
            Ok(Err(_)) => (Kind::Fail, Some("cancelled".to_owned())),
            Err(_) => {
                // Dropping the task's future really cancels the check.
                handle.abort();
                (
                    Kind::Timeout,
                    Some(format!("timed out after {:?}", def.timeout)),
                )
            }
        };
        let observation = Observation {
            kind,
            message,
            duration: start.elapsed(),
            at: Instant::now(),
        };
        record(&inner, i, observation.clone());
        let _ = tx.send(Some(observation));
    };
    inner
        .runtime
        .spawn(quiet(traced, tracing::Instrument::instrument(run, span)));
    rx
}

/// Marks an OpenTelemetry context whose spans are not traced: observe's OpenTelemetry
/// layer leaves out every `tracing` span made under it. Unlike OpenTelemetry's own
/// telemetry suppression, log records still flow (a check's failure is still logged).
#[cfg(any(feature = "actix", feature = "otel"))]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Untraced;

/// `make()` run in an untraced context, unless `traced`.
fn untraced<T>(traced: bool, make: impl FnOnce() -> T) -> T {
    #[cfg(any(feature = "actix", feature = "otel"))]
    let _untraced = (!traced).then(|| {
        opentelemetry::Context::current()
            .with_value(Untraced)
            .attach()
    });
    #[cfg(not(any(feature = "actix", feature = "otel")))]
    let _ = traced;
    make()
}

/// `future` polled in an untraced context, unless `traced` (a check's own task does not
/// inherit the context of the task that spawned it).
#[cfg(any(feature = "actix", feature = "otel"))]
fn quiet<F: Future>(traced: bool, future: F) -> opentelemetry::context::WithContext<F> {
    use opentelemetry::context::FutureExt as _;
    let cx = if traced {
        opentelemetry::Context::new()
    } else {
        opentelemetry::Context::new().with_value(Untraced)
    };
    future.with_context(cx)
}

#[cfg(not(any(feature = "actix", feature = "otel")))]
fn quiet<F: Future>(_traced: bool, future: F) -> F {
    future
}

pub(super) fn record(inner: &Inner, i: usize, obs: Observation) {
    let rt = &inner.checks[i];
    let def = rt.def;
    let transition = {
        let mut st = lock(&rt.state);
        st.in_flight = None;
        let ok = matches!(obs.kind, Kind::Pass | Kind::Degraded);
        if ok {
            st.consecutive_successes += 1;
            st.consecutive_failures = 0;
            st.last_success = Some(SystemTime::now());
            st.passed_once = true;
            st.retry_at = None;
        } else {
            st.consecutive_failures += 1;
            st.consecutive_successes = 0;
            st.retry_at = Some(obs.at + jittered(backoff(def, st.consecutive_failures)));
        }
        let before = st.reported;
        st.reported = match before {
            Reported::Unknown => {
                if ok {
                    Reported::Up
                } else {
                    Reported::Down
                }
            }
            Reported::Up if !ok && st.consecutive_failures >= def.failure_threshold => {
                Reported::Down
            }
            Reported::Down if ok && st.consecutive_successes >= def.success_threshold => {
                Reported::Up
            }
            same => same,
        };
        let reason = match obs.kind {
            Kind::Pass | Kind::Degraded => None,
            Kind::Fail => Some("error"),
            Kind::Timeout => Some("timeout"),
            Kind::Panic => Some("panic"),
        };
        inner
            .metrics
            .observe(def.name, st.reported == Reported::Up, obs.duration, reason);
        tracing::debug!(
            target: "observe::health",
            check = def.name,
            outcome = reason.unwrap_or("pass"),
            duration_ms = obs.duration.as_secs_f64() * 1e3,
            "health check ran"
        );
        st.last = Some(obs.clone());
        // The first result is announced only when it is a failure: passing from the start
        // is not a recovery.
        let announce =
            before != st.reported && !(before == Reported::Unknown && st.reported == Reported::Up);
        announce.then(|| Transition {
            check: def.name,
            critical: def.critical,
            healthy: st.reported == Reported::Up,
            message: obs.message.clone(),
        })
    };
    if let Some(t) = transition {
        if t.healthy {
            tracing::info!(target: "observe::health", check = t.check, critical = t.critical, "health check passing");
        } else {
            tracing::warn!(
                target: "observe::health",
                check = t.check,
                critical = t.critical,
                reason = t.message.as_deref().unwrap_or(""),
                "health check failing"
            );
        }
        let _ = inner.transitions.send(t);
    }
}
