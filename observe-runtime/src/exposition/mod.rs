//! Exposition: what `/metrics` serves and the OTLP push sends, built from every source at
//! scrape time into one family model ([`Family`]), then encoded.
//!
//! Sources, in order: `#[instrumented]` sites, the in-flight total, worker slots,
//! `build_info`; then registered collectors (HTTP series, health checks, admin denials,
//! OpenTelemetry SDK instruments); `process_*`; the application's `prometheus` registries.
//! A family whose name was already taken is skipped and logged once, so the output never
//! holds a duplicate family (`process_*` from a user registry replace ours instead).
//!
//! Families written by observe itself:
//!
//! | family | type | labels |
//! |---|---|---|
//! | `function_calls_total` | counter | `function`, `module`, `result` (`ok`, `error`, `cancelled` for futures), static labels |
//! | `function_calls_duration_seconds` | histogram | `function`, `module`, static labels |
//! | `function_calls_concurrent` | gauge | `function`, `module`, static labels |
//! | `observe_instrumented_calls_in_flight` | gauge | — |
//! | `observe_worker_requests_in_flight`, `observe_worker_requests_total` | gauge, counter | `worker` |
//! | `build_info` | gauge (1) | `version`, `commit`, `branch`, `service_name`, `observe_version` |
//! | `process_*` | as in every Prometheus client | — |

mod builtin;
pub(crate) mod collector;
mod family;
mod format;
pub(crate) mod json;
mod openmetrics;
mod text;
#[cfg(feature = "otel")]
pub(crate) mod throttle;
mod users;

use std::collections::HashSet;
use std::sync::Mutex;

pub use family::{Bucket, Family, Kind, Origin, Series, Str, Value, label};
pub use format::{Format, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};
pub use users::register_registry;

/// A number as the exposition writes it (`le="0.25"`), so a rule can name a bucket.
pub(crate) use text::float as float_text;

/// Every family, from every source, as one snapshot: what [`render_as`] encodes and the
/// OTLP push converts.
///
/// ```
/// #[observe::instrumented]
/// fn work() {}
/// work();
/// let families = observe_runtime::exposition::gather();
/// let calls = families.iter().find(|f| f.name == "function_calls_total").unwrap();
/// assert!(!calls.series.is_empty());
/// ```
pub fn gather() -> Vec<Family> {
    let mut out = Vec::with_capacity(64);
    builtin::families(&mut out);
    collector::collect_all(&mut out);
    let user = users::gather();
    // `process_*` from the user's registry (prometheus' `process` feature) replace ours.
    if !user.iter().any(|f| f.name.starts_with("process_")) {
        builtin::process(&mut out);
    }
    out.extend(user);
    let mut seen: HashSet<Str> = HashSet::with_capacity(out.len());
    out.retain(|f| {
        if seen.insert(f.name.clone()) {
            true
        } else {
            warn_duplicate_once(&f.name);
            false
        }
    });
    out
}

/// Prepares the runtime off the hot path: calibrates the clock and reads the registry.
///
/// Optional; the first instrumented call or scrape does the same work otherwise.
///
/// ```
/// observe_runtime::exposition::init();
/// ```
pub fn init() {
    crate::metrics::clock::init();
    let _ = crate::registry::plan();
}

/// Renders every metric in the Prometheus text format 0.0.4.
///
/// ```
/// let text = observe_runtime::exposition::render();
/// assert!(text.contains("# TYPE build_info gauge"));
/// ```
pub fn render() -> String {
    render_as(Format::Text)
}

/// Renders every metric in `format`; OpenMetrics carries exemplars.
///
/// ```
/// use observe_runtime::exposition::{render_as, Format};
/// let text = render_as(Format::OpenMetrics);
/// assert!(text.contains("# TYPE function_calls counter"));
/// assert!(text.ends_with("# EOF\n"));
/// ```
pub fn render_as(format: Format) -> String {
    encode(&gather(), format)
}

/// Encodes families in `format`.
///
/// ```
/// use observe_runtime::exposition::{encode, Family, Format, Kind};
/// let up = Family::new("up", Kind::Gauge, "Up.").with(vec![], 1.0);
/// assert_eq!(encode(&[up], Format::Text), "# HELP up Up.\n# TYPE up gauge\nup 1\n");
/// ```
pub fn encode(families: &[Family], format: Format) -> String {
    match format {
        Format::Text => text::encode(families),
        Format::OpenMetrics => openmetrics::encode(families),
    }
}

fn warn_duplicate_once(name: &str) {
    static WARNED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(|poison| poison.into_inner());
    if !warned.iter().any(|w| w == name) {
        warned.push(name.to_owned());
        tracing::warn!(
            target: "observe",
            "metric family `{name}` is registered twice (by observe or another registry); \
             only the first is exposed"
        );
    }
}
