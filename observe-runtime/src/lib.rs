//! Runtime of the [`observe`](https://docs.rs/observe) framework.
//!
//! Users depend on `observe`, which re-exports what is public here; the macros of
//! `observe-macros` reach this crate only through `observe::__private`.
//!
//! The modules are layers; each imports only the ones listed before it:
//!
//! - [`metrics`]: the per-call-site store, clock, exemplar slots, in-flight table,
//!   process metrics, worker slots, build info;
//! - [`registry`]: the link-time list of instrumented functions and its validation;
//! - [`exposition`]: the family model every source fills at scrape time, and its encoders
//!   (Prometheus text, OpenMetrics); the user's own `prometheus` registries;
//! - [`health`]: `#[health_check]` definitions and the engine that runs them (no actix);
//! - [`slo`]: service-level objectives: generated Prometheus rules, Grafana dashboard and
//!   status page;
//! - `propagation` (features `actix` or `otel`): the W3C Trace Context propagator and the
//!   header adapters;
//! - `http` (feature `actix`): actix-web glue: the middleware and its series, the scrape
//!   handler, probe endpoints, the access policy, shutdown;
//! - `pprof` (feature `pprof`): CPU profiles, heap profiles, thread stacks;
//! - `admin` (feature `actix`): the admin server and its gates;
//! - `telemetry` (feature `otel`): `init()`, OpenTelemetry providers, propagators, log
//!   lines with trace ids, OTLP export (feature `otlp`).

#[cfg(feature = "actix")]
pub mod admin;
pub mod exposition;
pub mod health;
#[cfg(feature = "actix")]
pub mod http;
pub mod metrics;
#[cfg(feature = "pprof")]
pub(crate) mod pprof;
#[cfg(any(feature = "actix", feature = "otel"))]
pub mod propagation;
pub mod registry;
pub mod slo;
#[cfg(feature = "otel")]
pub mod telemetry;

/// Items used by code that `observe`'s macros generate. Not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::metrics::call::{
        Call, CallIn, Timed, TimedUntraced, UntracedCall, enter, enter_untraced, enter_with_span,
        exit_result, exit_untraced, exit_untraced_result, timed, timed_in, timed_now,
        timed_untraced,
    };
    pub use crate::metrics::classify::result_outcome;
    pub use crate::metrics::objective::check_objective;
    pub use crate::metrics::site::{
        ASYNC, ASYNC_UNTRACED, Classifier, ClassifyOther, ClassifyResult, DEFAULT_BOUNDS_NS,
        DEFAULT_BUCKETS, FnKind, Outcome, SYNC, SYNC_UNTRACED, Site, SiteMeta, SiteOptions,
        SiteState, SpanSpec, bounds_ns, outcome_from,
    };
    pub use tracing::Level;

    pub use crate::health::CHECKS;
    #[cfg(feature = "heap")]
    pub use crate::pprof::{Jemalloc, MALLOC_CONF};
    pub use crate::registry::SITES;

    pub use crate::health::{
        CheckDef, CheckFuture, HealthStatus, IntoHealthStatus, StateMap, StateType, run_blocking,
    };
    pub use core::time::Duration;

    /// Converts a check's return value; the turbofish carries the user's return type, so
    /// a type that cannot be a check result is reported on it.
    #[inline]
    pub fn into_health_status<T: IntoHealthStatus>(value: T) -> HealthStatus {
        value.into_health_status()
    }
    pub use linkme;
    pub use tracing;

    use core::future::Future;

    /// Pins the output type of the body future so `?` in an `async` body infers its error
    /// conversion from the declared return type.
    #[inline(always)]
    pub fn typed_future<R, F: Future<Output = R>>(future: F) -> F {
        future
    }

    /// Calls the body closure; the turbofish on `R` gives the closure its return type so
    /// `?` and `return` inside the body infer as they do in the original function.
    #[inline(always)]
    pub fn call<R, F: FnOnce() -> R>(body: F) -> R {
        body()
    }

    /// Builds the [`crate::metrics::BuildInfo`] from the binary crate's compile-time
    /// values (see `observe::build_info!`).
    pub fn set_build_info(
        package: &str,
        version: &str,
        commit: Option<&str>,
        branch: Option<&str>,
    ) -> bool {
        let service_name = std::env::var("OTEL_SERVICE_NAME")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| package.to_owned());
        crate::metrics::set_build_info(crate::metrics::BuildInfo {
            service_name,
            version: version.to_owned(),
            commit: commit.unwrap_or_default().to_owned(),
            branch: branch.unwrap_or_default().to_owned(),
        })
    }
}
