//! Health: `#[health_check]` functions registered at link time, an engine that runs them
//! concurrently within a probe budget, and the Kubernetes probe endpoints.
//!
//! - **Liveness** (`/livez`, `/healthz`) never runs a dependency check.
//! - **Readiness** (`/readyz`) runs every check concurrently; a critical failure is 503,
//!   non-critical failures only are 200 `degraded`. Results are cached (a check's
//!   `interval`, or 1 s) and concurrent probes share one run, so probes cannot stampede
//!   a dependency; a failing check is re-run once per lifetime while probes ask, so
//!   recovery shows within one interval, and the background schedule backs off.
//! - **Start-up** (`/startupz`) fails until the application calls
//!   [`Health::mark_started`] and every `startup` check has passed once.

mod builder;
pub mod checks;
mod connect;
mod definition;
mod engine;
pub mod liveness;
pub(crate) mod metrics;
mod report;
mod runner;

pub use builder::{HealthBuilder, HealthError};
#[doc(hidden)]
pub use definition::{CHECKS, CheckDef, CheckFuture, StateType, run_blocking};
pub use definition::{HealthStatus, IntoHealthStatus, StateMap};
pub use engine::{DEFAULT_BUDGET, DEFAULT_FLUSH_TIMEOUT, DEFAULT_TTL, Health, MAX_BACKOFF};
pub use report::{CheckReport, CheckState, Overall, Probe, Transition};
#[cfg(feature = "otel")]
pub(crate) use runner::Untraced;
