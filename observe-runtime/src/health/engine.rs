//! The health engine: runs checks concurrently within a probe budget, each in a task of
//! its own under its timeout (a timed-out run is aborted: really cancelled), caches
//! results so probes cannot stampede a dependency, and reports through hysteresis.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use super::definition::{CheckDef, HealthStatus, StateMap, panic_message};
use super::metrics::HealthMetrics;

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
/// Longest wait before retrying a failing check.
///
/// ```
/// assert_eq!(observe_runtime::health::MAX_BACKOFF.as_secs(), 30);
/// ```
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A start-up problem with the declared checks, naming the check and what is wrong.
///
/// ```
/// use observe_runtime::health::HealthError;
/// let e = HealthError::UnknownDependency { check: "ledger", location: "src/main.rs:9".into(), depends_on: "db" };
/// assert!(e.to_string().contains("depends on `db`"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthError {
    /// A check borrows state that was never registered with [`HealthBuilder::state`].
    MissingState {
        /// The check.
        check: &'static str,
        /// Where it is declared.
        location: String,
        /// The missing type.
        type_name: &'static str,
    },
    /// `depends_on` names no check.
    UnknownDependency {
        /// The check.
        check: &'static str,
        /// Where it is declared.
        location: String,
        /// The name it depends on.
        depends_on: &'static str,
    },
    /// Two checks share a name.
    DuplicateName {
        /// The name.
        name: &'static str,
        /// Where the first is declared.
        first: String,
        /// Where the second is declared.
        second: String,
    },
}

impl fmt::Display for HealthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HealthError::MissingState {
                check,
                location,
                type_name,
            } => write!(
                f,
                "health check `{check}` ({location}) borrows `{type_name}`, which was never \
                 registered: add `.state(value)` of that type to the health builder"
            ),
            HealthError::UnknownDependency {
                check,
                location,
                depends_on,
            } => write!(
                f,
                "health check `{check}` ({location}) depends on `{depends_on}`, which is not a check"
            ),
            HealthError::DuplicateName {
                name,
                first,
                second,
            } => write!(
                f,
                "two health checks are named `{name}`: at {first} and at {second}; give one `name = \"…\"`"
            ),
        }
    }
}

impl std::error::Error for HealthError {}

/// A check's reported status changed (after hysteresis). Logged once per change and
/// sent to [`Health::subscribe`] receivers.
///
/// ```
/// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
/// let mut transitions = health.subscribe();
/// assert!(transitions.try_recv().is_err()); // nothing has changed yet
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The check.
    pub check: &'static str,
    /// Whether it is critical.
    pub critical: bool,
    /// Passing (or degraded) now.
    pub healthy: bool,
    /// The failure, when not healthy.
    pub message: Option<String>,
}

/// How one check stands in one probe.
///
/// ```
/// use observe_runtime::health::CheckState;
/// assert_eq!(CheckState::Timeout.word(), "timeout");
/// assert!(CheckState::Skipped.is_failure() && !CheckState::Degraded.is_failure());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckState {
    /// Passing.
    Pass,
    /// Passing, impaired.
    Degraded,
    /// Failing (error or panic).
    Fail,
    /// No answer within its timeout or the probe's budget.
    Timeout,
    /// Not run because the check it depends on is failing.
    Skipped,
    /// Left out by `?exclude=`.
    Excluded,
}

impl CheckState {
    /// The word used in probe output.
    ///
    /// ```
    /// assert_eq!(observe_runtime::health::CheckState::Pass.word(), "ok");
    /// ```
    pub fn word(self) -> &'static str {
        match self {
            CheckState::Pass => "ok",
            CheckState::Degraded => "degraded",
            CheckState::Fail => "failed",
            CheckState::Timeout => "timeout",
            CheckState::Skipped => "skipped",
            CheckState::Excluded => "excluded",
        }
    }

    /// Counts against readiness when the check is critical.
    ///
    /// ```
    /// assert!(observe_runtime::health::CheckState::Fail.is_failure());
    /// ```
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            CheckState::Fail | CheckState::Timeout | CheckState::Skipped
        )
    }
}

/// One check's line in a probe.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
/// health.mark_started();
/// let probe = health.readiness(&[], None).await;
/// assert!(probe.checks.iter().all(|c: &observe_runtime::health::CheckReport| c.message.is_none()));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// The check.
    pub name: &'static str,
    /// Critical or not.
    pub critical: bool,
    /// Its state.
    pub state: CheckState,
    /// The failure or degradation message (may hold details: withheld from unauthorized
    /// callers by the endpoints).
    pub message: Option<String>,
    /// Duration of the run the report is based on.
    pub duration: Option<Duration>,
    /// When it last passed.
    pub last_success: Option<SystemTime>,
    /// Consecutive failed runs.
    pub consecutive_failures: u32,
    /// For an excluded check: what it would have reported, from the cache.
    pub excluded_state: Option<CheckState>,
}

/// The outcome of a readiness probe.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
/// health.mark_started();
/// assert_eq!(health.readiness(&[], None).await.overall, observe_runtime::health::Overall::Ok);
/// # });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overall {
    /// All checks pass.
    Ok,
    /// Only non-critical checks fail, or some are degraded: 200.
    Degraded,
    /// A critical check fails, start-up is not complete, or shutdown has begun: 503.
    Failed,
}

/// A readiness (or start-up) probe's result.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
/// let probe: observe_runtime::health::Probe = health.readiness(&[], None).await;
/// assert_eq!(probe.process, Some("start-up not complete"));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct Probe {
    /// The overall answer.
    pub overall: Overall,
    /// One report per check, in name order.
    pub checks: Vec<CheckReport>,
    /// `Some(reason)` when the process itself is not ready (shutting down, starting).
    pub process: Option<&'static str>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Pass,
    Degraded,
    Fail,
    Timeout,
    Panic,
}

#[derive(Clone, Debug)]
struct Observation {
    kind: Kind,
    message: Option<String>,
    duration: Duration,
    at: Instant,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Reported {
    Unknown,
    Up,
    Down,
}

struct State {
    last: Option<Observation>,
    reported: Reported,
    consecutive_failures: u32,
    consecutive_successes: u32,
    last_success: Option<SystemTime>,
    in_flight: Option<watch::Receiver<Option<Observation>>>,
    retry_at: Option<Instant>,
    passed_once: bool,
    runs: u64,
}

struct CheckRuntime {
    def: &'static CheckDef,
    state: Mutex<State>,
}

struct Inner {
    checks: Vec<CheckRuntime>,
    index: HashMap<&'static str, usize>,
    state: StateMap,
    budget: Duration,
    runtime: tokio::runtime::Handle,
    started: AtomicBool,
    shutting_down: AtomicBool,
    transitions: broadcast::Sender<Transition>,
    metrics: &'static HealthMetrics,
    warnings: Vec<String>,
}

/// Configures the health engine; [`build`](HealthBuilder::build) validates everything.
///
/// ```
/// use observe_runtime::health::Health;
///
/// struct Gateway;
/// let health = Health::builder().state(Gateway).build().expect("valid checks");
/// # drop(health);
/// ```
pub struct HealthBuilder {
    state: StateMap,
    budget: Duration,
    checks: Option<Vec<&'static CheckDef>>,
    runtime: Option<tokio::runtime::Handle>,
}

impl fmt::Debug for HealthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthBuilder")
            .field("budget", &self.budget)
            .finish_non_exhaustive()
    }
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
    inner: Arc<Inner>,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("checks", &self.inner.index.len())
            .finish_non_exhaustive()
    }
}

impl Health {
    /// A builder over every `#[health_check]` linked into the binary.
    ///
    /// ```
    /// let builder = observe_runtime::health::Health::builder();
    /// # drop(builder);
    /// ```
    pub fn builder() -> HealthBuilder {
        HealthBuilder {
            state: StateMap::default(),
            budget: DEFAULT_BUDGET,
            checks: None,
            runtime: None,
        }
    }
}

fn health_runtime() -> tokio::runtime::Handle {
    static RUNTIME: once_cell::sync::OnceCell<tokio::runtime::Handle> =
        once_cell::sync::OnceCell::new();
    RUNTIME
        .get_or_init(|| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("observe-health".to_owned())
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("the health runtime starts");
                    let _ = tx.send(rt.handle().clone());
                    rt.block_on(std::future::pending::<()>());
                })
                .expect("the health thread starts");
            rx.recv().expect("the health runtime handle")
        })
        .clone()
}

impl HealthBuilder {
    /// Registers state that checks borrow by type (`fn db(pool: &PgPool)`).
    ///
    /// ```
    /// struct Pool;
    /// let builder = observe_runtime::health::Health::builder().state(Pool);
    /// # drop(builder);
    /// ```
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.state.insert(value);
        self
    }

    /// The time a readiness probe may take in all (default 800 ms, below the kubelet's
    /// 1 s default). Every check's wait is clamped to what remains of it.
    ///
    /// ```
    /// let builder = observe_runtime::health::Health::builder()
    ///     .probe_budget(std::time::Duration::from_millis(600));
    /// # drop(builder);
    /// ```
    pub fn probe_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// Uses these checks instead of every linked `#[health_check]` (for tests).
    #[doc(hidden)]
    pub fn checks(mut self, checks: Vec<&'static CheckDef>) -> Self {
        self.checks = Some(checks);
        self
    }

    /// Uses only the linked checks with these names (for tests); an unknown name is an
    /// error from [`build`](Self::build) like any dependency on a missing check.
    #[doc(hidden)]
    pub fn select<'a>(mut self, names: impl IntoIterator<Item = &'a str>) -> Self {
        let names: Vec<&str> = names.into_iter().collect();
        self.checks = Some(
            super::definition::CHECKS
                .iter()
                .copied()
                .filter(|c| names.contains(&c.name))
                .collect(),
        );
        self
    }

    /// Runs checks on this runtime instead of observe's own health thread (tests with
    /// tokio's paused clock use the test's runtime).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// let builder = observe_runtime::health::Health::builder().runtime(tokio::runtime::Handle::current());
    /// # drop(builder);
    /// # });
    /// ```
    pub fn runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.runtime = Some(handle);
        self
    }

    /// Validates every check against the registered state and each other; returns every
    /// problem at once. Warns (once) when a check's timeout exceeds the probe budget.
    ///
    /// ```
    /// let health = observe_runtime::health::Health::builder().checks(vec![]).build();
    /// assert!(health.is_ok());
    /// ```
    pub fn build(self) -> Result<Health, Vec<HealthError>> {
        let mut defs: Vec<&'static CheckDef> = self
            .checks
            .unwrap_or_else(|| super::definition::CHECKS.iter().copied().collect());
        defs.sort_by(|a, b| (a.name, a.file, a.line).cmp(&(b.name, b.file, b.line)));
        let mut errors = Vec::new();
        let mut index = HashMap::new();
        for (i, def) in defs.iter().enumerate() {
            if let Some(&first) = index.get(def.name) {
                let first: &CheckDef = defs[first];
                errors.push(HealthError::DuplicateName {
                    name: def.name,
                    first: first.location(),
                    second: def.location(),
                });
            } else {
                index.insert(def.name, i);
            }
            for ty in def.state {
                if !self.state.contains((ty.id)()) {
                    errors.push(HealthError::MissingState {
                        check: def.name,
                        location: def.location(),
                        type_name: ty.name,
                    });
                }
            }
        }
        for def in &defs {
            if let Some(dep) = def.depends_on
                && !index.contains_key(dep)
            {
                errors.push(HealthError::UnknownDependency {
                    check: def.name,
                    location: def.location(),
                    depends_on: dep,
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut warnings = Vec::new();
        for def in &defs {
            if def.timeout > self.budget {
                let w = format!(
                    "health check `{}` ({}) has a timeout of {:?}, above the probe budget of {:?}: \
                     probes will report it as `timeout` before it can fail on its own",
                    def.name,
                    def.location(),
                    def.timeout,
                    self.budget
                );
                tracing::warn!(target: "observe::health", "{w}");
                warnings.push(w);
            }
        }
        let metrics = super::metrics::metrics();
        for def in &defs {
            metrics.declare(def.name, def.critical);
        }
        let (transitions, _) = broadcast::channel(64);
        Ok(Health {
            inner: Arc::new(Inner {
                checks: defs
                    .into_iter()
                    .map(|def| CheckRuntime {
                        def,
                        state: Mutex::new(State {
                            last: None,
                            reported: Reported::Unknown,
                            consecutive_failures: 0,
                            consecutive_successes: 0,
                            last_success: None,
                            in_flight: None,
                            retry_at: None,
                            passed_once: false,
                            runs: 0,
                        }),
                    })
                    .collect(),
                index,
                state: self.state,
                budget: self.budget,
                runtime: self.runtime.unwrap_or_else(health_runtime),
                started: AtomicBool::new(false),
                shutting_down: AtomicBool::new(false),
                transitions,
                metrics,
                warnings,
            }),
        })
    }
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn ttl(def: &CheckDef) -> Duration {
    def.interval.unwrap_or(DEFAULT_TTL)
}

fn backoff(def: &CheckDef, failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(6);
    (ttl(def) * 2u32.pow(exp)).min(MAX_BACKOFF)
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

fn report(rt: &CheckRuntime, st: &State) -> CheckReport {
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

fn is_down(inner: &Inner, name: &str) -> bool {
    inner
        .index
        .get(name)
        .is_some_and(|&i| lock(&inner.checks[i].state).reported == Reported::Down)
}

async fn evaluate(inner: &Arc<Inner>, i: usize, deadline: Instant, excluded: bool) -> CheckReport {
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
        let fresh = age.is_some_and(|a| a < ttl(rt.def));
        let backing_off = st.retry_at.is_some_and(|t| now < t);
        if fresh || backing_off {
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

async fn wait_for(mut rx: watch::Receiver<Option<Observation>>) {
    while rx.borrow_and_update().is_none() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Starts one run of check `i` on the health runtime. The caller holds the check's
/// state lock and records the run there (`in_flight`, `runs`).
fn spawn_run(inner: &Arc<Inner>, i: usize) -> watch::Receiver<Option<Observation>> {
    let (tx, rx) = watch::channel(None);
    let task_inner = inner.clone();
    let def = inner.checks[i].def;
    let span = tracing::info_span!(target: "observe::health", "health_check", check = def.name);
    let run = async move {
        let inner = task_inner;
        let start = Instant::now();
        let mut handle = tokio::spawn((def.run)(&inner.state));
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
        .spawn(tracing::Instrument::instrument(run, span));
    rx
}

fn record(inner: &Inner, i: usize, obs: Observation) {
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
            st.retry_at = Some(obs.at + backoff(def, st.consecutive_failures));
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
