//! What a health check is: its definition (emitted by `#[health_check]` and registered
//! at link time), what it returns, and the state it borrows.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The result of one run of a check.
///
/// A check returns `Result<(), E>` with `E: Display`, or this type for a check that can
/// also report `Degraded` (serving, but impaired).
///
/// ```
/// use observe_runtime::health::HealthStatus;
/// let status = HealthStatus::Degraded("replica lag 4s".into());
/// assert!(status.is_serving());
/// assert!(!HealthStatus::Fail("down".into()).is_serving());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthStatus {
    /// Healthy.
    Pass,
    /// Working, but impaired; never fails readiness on its own.
    Degraded(String),
    /// Not working, with the reason.
    Fail(String),
}

impl HealthStatus {
    /// `Pass` or `Degraded`.
    ///
    /// ```
    /// assert!(observe_runtime::health::HealthStatus::Pass.is_serving());
    /// ```
    pub fn is_serving(&self) -> bool {
        !matches!(self, HealthStatus::Fail(_))
    }
}

/// Converts what a check function returns into a [`HealthStatus`].
///
/// ```
/// use observe_runtime::health::{HealthStatus, IntoHealthStatus};
/// let ok: Result<(), String> = Ok(());
/// assert_eq!(ok.into_health_status(), HealthStatus::Pass);
/// let err: Result<(), std::io::Error> = Err(std::io::Error::other("refused"));
/// assert_eq!(err.into_health_status(), HealthStatus::Fail("refused".into()));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a health check result",
    note = "a `#[health_check]` function returns `Result<(), E>` with `E: Display`, \
            `HealthStatus`, or `Result<HealthStatus, E>`"
)]
pub trait IntoHealthStatus {
    /// The status.
    fn into_health_status(self) -> HealthStatus;
}

impl IntoHealthStatus for HealthStatus {
    fn into_health_status(self) -> HealthStatus {
        self
    }
}

impl<E: fmt::Display> IntoHealthStatus for Result<(), E> {
    fn into_health_status(self) -> HealthStatus {
        match self {
            Ok(()) => HealthStatus::Pass,
            Err(e) => HealthStatus::Fail(e.to_string()),
        }
    }
}

impl<E: fmt::Display> IntoHealthStatus for Result<HealthStatus, E> {
    fn into_health_status(self) -> HealthStatus {
        match self {
            Ok(status) => status,
            Err(e) => HealthStatus::Fail(e.to_string()),
        }
    }
}

/// A state type a check borrows, by `TypeId` (a function: `TypeId::of` is not `const`).
#[derive(Clone, Copy)]
pub struct StateType {
    /// Its `TypeId`.
    pub id: fn() -> TypeId,
    /// Its name, for errors.
    pub name: &'static str,
}

impl fmt::Debug for StateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// State registered once at start-up, looked up by type (like actix's `app_data`).
///
/// ```
/// let state = observe_runtime::health::StateMap::default();
/// assert!(state.get::<String>().is_none());
/// ```
#[derive(Clone, Default)]
pub struct StateMap {
    by_type: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl fmt::Debug for StateMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateMap")
            .field("types", &self.by_type.len())
            .finish()
    }
}

impl StateMap {
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.by_type.insert(TypeId::of::<T>(), Arc::new(value));
    }

    pub(crate) fn contains(&self, id: TypeId) -> bool {
        self.by_type.contains_key(&id)
    }

    /// The registered `T`, shared. `None` only if start-up validation was bypassed.
    ///
    /// ```
    /// let state = observe_runtime::health::StateMap::default();
    /// assert!(state.get::<u32>().is_none());
    /// ```
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.by_type
            .get(&TypeId::of::<T>())
            .cloned()
            .and_then(|any| any.downcast::<T>().ok())
    }
}

/// A boxed check run.
pub type CheckFuture = Pin<Box<dyn Future<Output = HealthStatus> + Send + 'static>>;

/// Every `#[health_check]` linked into the binary (the macro adds each one; generated
/// code names it as `observe::__private::CHECKS`).
#[linkme::distributed_slice]
pub static CHECKS: [&'static CheckDef];

/// A check as `#[health_check]` declares it. Not built by hand.
#[derive(Debug)]
pub struct CheckDef {
    /// Its name in probes and metrics.
    pub name: &'static str,
    /// A failure fails `/readyz`.
    pub critical: bool,
    /// Hard limit of one run; the run is cancelled past it.
    pub timeout: Duration,
    /// Refreshed in the background this often; also the cache lifetime.
    pub interval: Option<Duration>,
    /// Consecutive failures before the reported status turns to failed.
    pub failure_threshold: u32,
    /// Consecutive successes before a failed check is reported passing again.
    pub success_threshold: u32,
    /// Gates `/startupz` until it has passed once.
    pub startup: bool,
    /// Groups, for `/readyz?group=…` style selections.
    pub groups: &'static [&'static str],
    /// When this check fails, the dependent one reports `skipped`.
    pub depends_on: Option<&'static str>,
    /// Module of the definition.
    pub module: &'static str,
    /// Source file of the definition.
    pub file: &'static str,
    /// Source line of the definition.
    pub line: u32,
    /// The state types its parameters borrow.
    pub state: &'static [StateType],
    /// Starts one run, given the registered state.
    pub run: fn(&StateMap) -> CheckFuture,
}

impl CheckDef {
    /// `file:line` of the definition.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// Runs a synchronous check on tokio's blocking pool, off the async workers; a panic
/// becomes a failure with its message.
pub fn run_blocking<F>(check: F) -> CheckFuture
where
    F: FnOnce() -> HealthStatus + Send + 'static,
{
    Box::pin(async move {
        match tokio::task::spawn_blocking(check).await {
            Ok(status) => status,
            Err(e) if e.is_panic() => HealthStatus::Fail(format!(
                "panicked: {}",
                panic_message(e.into_panic().as_ref())
            )),
            Err(_) => HealthStatus::Fail("cancelled".into()),
        }
    })
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}
