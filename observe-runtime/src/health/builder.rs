//! `HealthBuilder`: state by type, budget, selection; `build` checks every declared
//! check's state, dependencies and name before anything runs.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;

use super::definition::{CheckDef, StateMap};
use super::engine::{DEFAULT_BUDGET, Health, Inner};
use super::runner::{Reported, State, TrackedCheck};

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
    trace_checks: bool,
}

impl fmt::Debug for HealthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HealthBuilder")
            .field("budget", &self.budget)
            .finish_non_exhaustive()
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
            trace_checks: false,
        }
    }
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

    /// Exports each check run as a trace (a root `health_check` span, with whatever the
    /// check itself calls below it). Off by default: background checks and probes would
    /// send a steady stream of traces per pod that no request caused. Without it, check
    /// runs are visible as metrics (`health_check_*`) and, at `debug` level, as one log
    /// line per run; nothing a check calls is traced.
    ///
    /// ```
    /// let builder = observe_runtime::health::Health::builder().trace_checks(true);
    /// # drop(builder);
    /// ```
    pub fn trace_checks(mut self, on: bool) -> Self {
        self.trace_checks = on;
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
                    .map(|def| TrackedCheck {
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
                trace_checks: self.trace_checks,
                started: AtomicBool::new(false),
                shutting_down: AtomicBool::new(false),
                transitions,
                metrics,
                warnings,
            }),
        })
    }
}
