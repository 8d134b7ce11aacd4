#![doc = include_str!("../README.md")]

#[doc = include_str!("../docs/health_check.md")]
pub use observe_macros::health_check;
#[doc = include_str!("../docs/instrumented.md")]
pub use observe_macros::instrumented;
#[cfg(feature = "actix")]
pub use observe_runtime::http::Middleware;
#[cfg(any(feature = "actix", feature = "otel"))]
pub use observe_runtime::propagation;
#[cfg(feature = "otel")]
pub use observe_runtime::telemetry::{self, Telemetry, init, spawn};
/// The OpenTelemetry API observe is built with, so application code names the same
/// version (two versions in one binary silently lose spans).
#[cfg(feature = "otel")]
pub use observe_runtime::telemetry::{opentelemetry, opentelemetry_sdk};
#[cfg(feature = "actix")]
pub use observe_runtime::{actix, admin, http};
pub use observe_runtime::{health, metrics, registry};

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

/// Items used by code that the macros generate. Not a stable API: it changes in any
/// release without notice.
#[doc(hidden)]
pub mod __private {
    pub use observe_runtime::__private::*;
}
