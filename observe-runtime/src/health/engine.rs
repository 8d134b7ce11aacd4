//! The health engine: runs checks concurrently within a probe budget, each in a task of
//! its own under its timeout (a timed-out run is aborted: really cancelled), caches
//! results so probes cannot stampede a dependency, and reports through hysteresis.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::definition::{CheckDef, StateMap};
use super::metrics::HealthMetrics;
use super::report::{CheckState, Overall, Probe, Transition};
use super::runner::{TrackedCheck, evaluate, lock, spawn_run};

/// How long a result is reused when a check has no `interval`: probes arriving within
/// it share one run, so a probe storm reaches the dependency at most once a second.
///
/// ```
/// assert_eq!(observe_runtime::health::DEFAULT_TTL.as_secs(), 1);
/// ```
pub const DEFAULT_TTL: Duration = Duration::from_secs(1);
/// Default probe budget: 80% of the kubelet's default 1 s probe timeout.
///
/// ```
/// assert!(observe_runtime::health::DEFAULT_BUDGET < std::time::Duration::from_secs(1));
/// ```
pub const DEFAULT_BUDGET: Duration = Duration::from_millis(800);
/// Longest wait before the background schedule retries a failing check (the wait
/// doubles per failure from the check's lifetime, with jitter). Probes do not wait for
/// it: they re-run a failing check once per lifetime.
///
/// ```
/// assert_eq!(observe_runtime::health::MAX_BACKOFF.as_secs(), 30);
/// ```
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The default flush budget: how long telemetry may take to send what it holds once the
/// server has stopped (`observe::init().flush_timeout`, `OBSERVE_FLUSH_TIMEOUT`); past
/// it the process exits anyway and counts what was not sent. The generated manifest's
/// `terminationGracePeriodSeconds` leaves room for it.
///
/// ```
/// assert_eq!(observe_runtime::health::DEFAULT_FLUSH_TIMEOUT.as_secs(), 5);
/// ```
pub const DEFAULT_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct Inner {
    pub(super) checks: Vec<TrackedCheck>,
    pub(super) index: HashMap<&'static str, usize>,
    pub(super) state: StateMap,
    pub(super) budget: Duration,
    pub(super) runtime: tokio::runtime::Handle,
    /// Check runs are traced (see `HealthBuilder::trace_checks`).
    pub(super) trace_checks: bool,
    pub(super) started: AtomicBool,
    pub(super) shutting_down: AtomicBool,
    pub(super) transitions: broadcast::Sender<Transition>,
    pub(super) metrics: &'static HealthMetrics,
    pub(super) warnings: Vec<String>,
}

/// The health engine. Cheap to clone; every clone is the same engine.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
/// health.mark_started();
/// assert_eq!(health.readiness(&[], None).await.overall, observe_runtime::health::Overall::Ok);
/// # });
/// ```
#[derive(Clone)]
pub struct Health {
    pub(super) inner: Arc<Inner>,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("checks", &self.inner.index.len())
            .finish_non_exhaustive()
    }
}

impl Health {
    /// Names of the checks, sorted.
    ///
    /// ```
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// assert!(health.check_names().is_empty());
    /// ```
    pub fn check_names(&self) -> Vec<&'static str> {
        self.inner.checks.iter().map(|c| c.def.name).collect()
    }

    /// Warnings found at build time (a timeout above the probe budget).
    ///
    /// ```
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// assert!(health.warnings().is_empty());
    /// ```
    pub fn warnings(&self) -> &[String] {
        &self.inner.warnings
    }

    /// The probe budget.
    ///
    /// ```
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// assert_eq!(health.budget(), observe_runtime::health::DEFAULT_BUDGET);
    /// ```
    pub fn budget(&self) -> Duration {
        self.inner.budget
    }

    /// Declares application start-up complete (one of the two conditions of `/startupz`).
    ///
    /// ```
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// health.mark_started();
    /// ```
    pub fn mark_started(&self) {
        self.inner.started.store(true, Ordering::SeqCst);
    }

    /// Turns readiness to 503 (`shutting down`) for good; liveness is unaffected.
    ///
    /// ```
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// health.begin_shutdown();
    /// assert!(health.is_shutting_down());
    /// ```
    pub fn begin_shutdown(&self) {
        if !self.inner.shutting_down.swap(true, Ordering::SeqCst) {
            tracing::info!(target: "observe::health", "shutdown begun: readiness now fails");
        }
    }

    /// Whether shutdown has begun.
    ///
    /// ```
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// assert!(!health.is_shutting_down());
    /// ```
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::SeqCst)
    }

    /// Status transitions, as they happen.
    ///
    /// ```
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// let _transitions = health.subscribe();
    /// ```
    pub fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.inner.transitions.subscribe()
    }

    /// How many times each check has actually run (for tests and diagnostics).
    ///
    /// ```
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// assert_eq!(health.runs("no such check"), None);
    /// ```
    pub fn runs(&self, name: &str) -> Option<u64> {
        let i = *self.inner.index.get(name)?;
        Some(lock(&self.inner.checks[i].state).runs)
    }

    /// Starts background refreshes for checks with an `interval`, on the health runtime.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// health.start_background();
    /// # });
    /// ```
    pub fn start_background(&self) {
        for i in 0..self.inner.checks.len() {
            let Some(interval) = self.inner.checks[i].def.interval else {
                continue;
            };
            let inner = Arc::downgrade(&self.inner);
            self.inner.runtime.spawn(async move {
                let mut tick = tokio::time::interval(interval);
                loop {
                    tick.tick().await;
                    let Some(inner) = inner.upgrade() else { return };
                    let mut st = lock(&inner.checks[i].state);
                    let due =
                        st.in_flight.is_none() && st.retry_at.is_none_or(|t| Instant::now() >= t);
                    if due {
                        st.in_flight = Some(spawn_run(&inner, i));
                        st.runs += 1;
                    }
                }
            });
        }
    }

    /// Runs (or reads from cache) every check not in `exclude`, concurrently, within the
    /// probe budget. `only` restricts the probe to one check (`/readyz/{name}`).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// let probe = health.readiness(&["cache".to_owned()], None).await;
    /// # drop(probe);
    /// # });
    /// ```
    pub async fn readiness(&self, exclude: &[String], only: Option<&str>) -> Probe {
        self.readiness_of(exclude, |def| only.is_none_or(|name| def.name == name))
            .await
    }

    /// Readiness of the checks in `group` only (`groups("payments")`; `/readyz?group=`).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// let probe = health.group_readiness("payments", &[]).await;
    /// assert!(probe.checks.is_empty());
    /// # });
    /// ```
    pub async fn group_readiness(&self, group: &str, exclude: &[String]) -> Probe {
        self.readiness_of(exclude, |def| def.groups.contains(&group))
            .await
    }

    /// Every group some check declares, sorted.
    ///
    /// ```
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// assert!(health.groups().is_empty());
    /// ```
    pub fn groups(&self) -> Vec<&'static str> {
        let mut all: Vec<&'static str> = self
            .inner
            .checks
            .iter()
            .flat_map(|c| c.def.groups.iter().copied())
            .collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    async fn readiness_of(&self, exclude: &[String], select: impl Fn(&CheckDef) -> bool) -> Probe {
        let deadline = Instant::now() + self.inner.budget;
        let selected: Vec<usize> = (0..self.inner.checks.len())
            .filter(|&i| select(self.inner.checks[i].def))
            .collect();
        let evaluations = selected.iter().map(|&i| {
            let excluded = exclude.iter().any(|e| e == self.inner.checks[i].def.name);
            evaluate(&self.inner, i, deadline, excluded)
        });
        let checks = futures_util::future::join_all(evaluations).await;
        let process = if self.is_shutting_down() {
            Some("shutting down")
        } else if !self.startup_complete() {
            Some("start-up not complete")
        } else {
            None
        };
        let critical_failure = checks.iter().any(|c| c.critical && c.state.is_failure());
        let any_trouble = checks
            .iter()
            .any(|c| c.state.is_failure() || c.state == CheckState::Degraded);
        let overall = if process.is_some() || critical_failure {
            Overall::Failed
        } else if any_trouble {
            Overall::Degraded
        } else {
            Overall::Ok
        };
        Probe {
            overall,
            checks,
            process,
        }
    }

    fn startup_complete(&self) -> bool {
        self.inner.started.load(Ordering::SeqCst)
            && self
                .inner
                .checks
                .iter()
                .filter(|c| c.def.startup)
                .all(|c| lock(&c.state).passed_once)
    }

    /// The start-up probe: runs the `startup` checks that have not passed yet, then
    /// answers whether start-up is complete.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// assert_eq!(health.startup().await.overall, observe_runtime::health::Overall::Failed);
    /// health.mark_started();
    /// assert_eq!(health.startup().await.overall, observe_runtime::health::Overall::Ok);
    /// # });
    /// ```
    pub async fn startup(&self) -> Probe {
        let deadline = Instant::now() + self.inner.budget;
        let pending: Vec<usize> = (0..self.inner.checks.len())
            .filter(|&i| {
                let c = &self.inner.checks[i];
                c.def.startup && !lock(&c.state).passed_once
            })
            .collect();
        let checks = futures_util::future::join_all(
            pending
                .iter()
                .map(|&i| evaluate(&self.inner, i, deadline, false)),
        )
        .await;
        let started = self.inner.started.load(Ordering::SeqCst);
        let complete = self.startup_complete();
        Probe {
            overall: if complete {
                Overall::Ok
            } else {
                Overall::Failed
            },
            checks,
            process: (!started).then_some("start-up not declared complete"),
        }
    }
}
