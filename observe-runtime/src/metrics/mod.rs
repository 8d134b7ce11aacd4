//! Metrics: the store behind `#[instrumented]` (per-call-site cells, the clock,
//! exemplar slots, the in-flight table), process metrics, worker slots and build info.
//! Nothing here knows a wire format: [`crate::exposition`] reads these values at scrape
//! time.

pub(crate) mod call;
pub(crate) mod callsite;
pub(crate) mod classify;
pub(crate) mod clock;
pub(crate) mod exemplar;
#[cfg(feature = "inflight")]
pub(crate) mod inflight;
pub(crate) mod meta;
pub(crate) mod objective;
pub(crate) mod process;
pub(crate) mod site;
pub(crate) mod workers;

use std::sync::OnceLock;

pub use objective::{Objective, RouteObjective, route_objectives};

/// Identity of the running build, exposed as `build_info{…} 1`.
///
/// Usually filled by `observe::build_info!()` in the binary crate, which reads the
/// version at compile time.
///
/// ```
/// observe_runtime::metrics::set_build_info(observe_runtime::metrics::BuildInfo {
///     service_name: "payments".into(),
///     version: "1.4.2".into(),
///     commit: "3f9c2e1".into(),
///     branch: "main".into(),
/// });
/// assert!(observe_runtime::exposition::render().contains(r#"version="1.4.2""#));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildInfo {
    /// `service_name` label; defaults to `OTEL_SERVICE_NAME`, else the executable name.
    pub service_name: String,
    /// `version` label.
    pub version: String,
    /// `commit` label.
    pub commit: String,
    /// `branch` label.
    pub branch: String,
}

pub(crate) static BUILD_INFO: OnceLock<BuildInfo> = OnceLock::new();

/// Sets the build identity once; later calls are ignored and return `false`.
///
/// ```
/// use observe_runtime::metrics::{set_build_info, BuildInfo};
/// let first = set_build_info(BuildInfo { version: "2.0.0".into(), ..BuildInfo::default() });
/// let second = set_build_info(BuildInfo { version: "3.0.0".into(), ..BuildInfo::default() });
/// assert!(first && !second);
/// ```
pub fn set_build_info(info: BuildInfo) -> bool {
    BUILD_INFO.set(info).is_ok()
}

/// The build identity, when one was set.
#[cfg(feature = "otel")]
pub(crate) fn build_info() -> Option<BuildInfo> {
    BUILD_INFO.get().cloned()
}

/// The build identity as `build_info` shows it: unset fields empty, the service name
/// from `OTEL_SERVICE_NAME` or the executable when not given.
pub(crate) fn build_info_or_default() -> BuildInfo {
    let mut info = BUILD_INFO.get().cloned().unwrap_or_default();
    if info.service_name.is_empty() {
        info.service_name = default_service_name();
    }
    info
}

pub(crate) fn default_service_name() -> String {
    if let Ok(name) = std::env::var("OTEL_SERVICE_NAME")
        && !name.is_empty()
    {
        return name;
    }
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown_service".into())
}
