//! What the engine reports: a probe's answer, each check's report, transitions.

use std::time::{Duration, SystemTime};

/// A check's reported status changed (after hysteresis). Logged once per change and
/// sent to [`Health::subscribe`](super::Health::subscribe) receivers.
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
