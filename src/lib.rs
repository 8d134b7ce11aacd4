#![doc = include_str!("../README.md")]

#[doc = include_str!("../docs/health_check.md")]
pub use observe_macros::health_check;
#[doc = include_str!("../docs/instrumented.md")]
pub use observe_macros::instrumented;
#[cfg(feature = "actix")]
pub use observe_runtime::http::Middleware;
#[cfg(feature = "otel")]
pub use observe_runtime::telemetry::{Telemetry, init, spawn};
/// The OpenTelemetry API observe is built with, so application code names the same
/// version (two versions in one binary silently lose spans).
#[cfg(feature = "otel")]
pub use observe_runtime::telemetry::{opentelemetry, opentelemetry_sdk};

/// Service-level objectives: the [`Objective`](crate::slo::Objective) a function
/// (`#[instrumented(objective = …)]`) or a route ([`Middleware::objective`]) is held to,
/// and what observe generates from them: Prometheus rules, a Grafana dashboard and a
/// status page (served by the admin server under `/debug/observe/`).
///
/// ```
/// use observe::slo::Objective;
///
/// pub const CHARGE: Objective = Objective::new("charge").success_rate(99.9).latency(0.25, 99.0);
///
/// #[observe::instrumented(objective = CHARGE)]
/// fn charge(amount: u64) -> Result<u64, String> {
///     if amount == 0 { Err("nothing to charge".into()) } else { Ok(amount) }
/// }
///
/// let _ = charge(5);
/// let metrics = observe::metrics::render();
/// assert!(metrics.contains(r#"objective_name="charge",objective_percentile="99.9",result="ok"} 1"#));
/// assert!(metrics.contains(r#"objective_latency_threshold="0.25",objective_percentile="99",le="0.25"} 1"#));
/// assert!(observe::slo::rules_yaml().contains("alert: ErrorBudgetBurn"));
/// ```
///
/// [`Middleware::objective`]: https://docs.rs/observe/latest/observe/struct.Middleware.html#method.objective
pub mod slo {
    pub use observe_runtime::metrics::{Objective, RouteObjective, route_objectives};
    pub use observe_runtime::slo::{
        Slo, Source, dashboard_json, objectives, print_requested, rules_yaml, status_html,
    };
}

/// Metrics: what `/metrics` serves, and how to add to it.
///
/// `#[instrumented]` functions, HTTP series, health checks, process and worker metrics,
/// `build_info`, your own `prometheus` registries and OpenTelemetry instruments all
/// appear in one exposition ([`render`](crate::metrics::render)), served by
/// `metrics::configure` on your app (feature `actix`) or by the
/// [admin server](crate::admin::AdminServer).
pub mod metrics {
    pub use observe_runtime::exposition::init;
    pub use observe_runtime::exposition::{
        Format, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE, register_registry, render, render_as,
    };
    #[cfg(feature = "actix")]
    pub use observe_runtime::http::{WorkerMetrics, configure, metrics_handler};
    pub use observe_runtime::metrics::{BuildInfo, set_build_info};
}

/// The inventory of `#[instrumented]` functions linked into the binary, and its check.
pub mod registry {
    pub use observe_runtime::registry::{Conflict, FunctionInfo, functions, validate};
}

/// Health: `#[health_check]`s, the engine behind `/readyz`, liveness, and the phased
/// shutdown that drains before the server stops.
pub mod health {
    pub use observe_runtime::health::checks;
    pub use observe_runtime::health::liveness::{
        DEFAULT_STALE_AFTER as DEFAULT_LIVENESS_STALE_AFTER, HEARTBEAT_PERIOD,
        set_stale_after as set_liveness_stale_after, stale_after as liveness_stale_after,
    };
    pub use observe_runtime::health::{
        CheckReport, CheckState, DEFAULT_BUDGET, DEFAULT_FLUSH_TIMEOUT, DEFAULT_TTL, Health,
        HealthBuilder, HealthError, HealthStatus, IntoHealthStatus, MAX_BACKOFF, Overall, Probe,
        StateMap, Transition,
    };
    #[cfg(feature = "actix")]
    pub use observe_runtime::http::{
        DEFAULT_GRACEFUL_TIMEOUT, DEFAULT_READINESS_PERIOD, Shutdown, configure_probes as configure,
    };
}

/// HTTP: the actix-web middleware (server spans, route-template metrics) and trace
/// context for outgoing requests.
#[cfg(feature = "actix")]
pub mod http {
    pub use observe_runtime::http::{
        ClientSpan, DEFAULT_MAX_SERIES, DEFAULT_SKIP_PATHS, MAX_CLIENT_ADDRESSES, Middleware,
        OVERFLOW_ROUTE, Propagate, Traced, UNMATCHED_ROUTE, outgoing_headers, trace_id,
    };
}

#[cfg(feature = "actix")]
pub use observe_runtime::admin;
#[cfg(any(feature = "actix", feature = "otel"))]
pub use observe_runtime::propagation;
#[cfg(feature = "otel")]
pub use observe_runtime::telemetry;

/// Records the binary's name, version and (when the build sets `GIT_COMMIT` /
/// `GIT_BRANCH`) commit and branch as `build_info{…} 1`. Call it once in `main`.
///
/// The values are read when *your* crate compiles, so the version is your crate's.
///
/// ```
/// observe::build_info!();
/// assert!(observe::metrics::render().contains(&format!(
///     "version=\"{}\"",
///     env!("CARGO_PKG_VERSION")
/// )));
/// ```
#[macro_export]
macro_rules! build_info {
    () => {
        $crate::__private::set_build_info(
            ::core::env!("CARGO_PKG_NAME"),
            ::core::env!("CARGO_PKG_VERSION"),
            ::core::option_env!("GIT_COMMIT"),
            ::core::option_env!("GIT_BRANCH"),
        )
    };
}

/// Makes jemalloc this binary's allocator, with heap sampling on, so
/// `/debug/pprof/heap` (feature `heap`) can answer. Invoke it once, at the top level of
/// `main.rs`: a library never picks the allocator, the binary does. Without it the
/// endpoint answers 501 saying so; without the `heap` feature the macro is a compile
/// error that says which feature to turn on.
///
/// ```no_run
/// observe::heap_profiling!();
///
/// fn main() {
///     let _admin = observe::admin::AdminServer::from_env().unwrap().start().unwrap();
///     // GET /debug/pprof/heap now answers with jemalloc's profile.
/// }
/// ```
#[cfg(feature = "heap")]
#[macro_export]
macro_rules! heap_profiling {
    () => {
        #[global_allocator]
        static __OBSERVE_ALLOCATOR: $crate::__private::Jemalloc = $crate::__private::Jemalloc;
        #[allow(non_upper_case_globals)]
        #[unsafe(export_name = "_rjem_malloc_conf")]
        static __observe_malloc_conf: &[u8] = $crate::__private::MALLOC_CONF;
    };
}

/// Makes jemalloc this binary's allocator for heap profiles: needs the `heap` feature,
/// without which it is a compile error naming it.
///
/// ```compile_fail
/// observe::heap_profiling!();
/// fn main() {}
/// ```
#[cfg(not(feature = "heap"))]
#[macro_export]
macro_rules! heap_profiling {
    () => {
        ::core::compile_error!(
            "`observe::heap_profiling!()` needs the `heap` feature of observe: \
             observe = { features = [\"heap\"] }"
        );
    };
}

/// Items used by code that the macros generate. Not a stable API: it changes in any
/// release without notice.
#[doc(hidden)]
pub mod __private {
    pub use observe_runtime::__private::*;
}
