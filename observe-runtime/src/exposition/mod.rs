//! Exposition: what `/metrics` serves, built from every source at scrape time.
//!
//! Families written by [`render`]:
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
//!
//! Everything registered in `prometheus`' default registry (or in a registry passed to
//! [`register_registry`]) follows; a family whose name we already wrote is skipped and
//! logged once, so the output never holds a duplicate family.

pub(crate) mod collector;
pub(crate) mod openmetrics;

use std::collections::HashSet;
use std::fmt::Write;
use std::sync::Mutex;

use crate::metrics::site::Outcome;
use crate::metrics::{BUILD_INFO, default_service_name, process, workers};
use crate::registry::{self, push_label};

/// `Content-Type` of the Prometheus text exposition format 0.0.4.
///
/// ```
/// assert!(observe_runtime::metrics::TEXT_CONTENT_TYPE.starts_with("text/plain; version=0.0.4"));
/// ```
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `Content-Type` of the OpenMetrics 1.0 text format (served with exemplars).
///
/// ```
/// assert!(observe_runtime::metrics::OPENMETRICS_CONTENT_TYPE.starts_with("application/openmetrics-text"));
/// ```
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4: what every scraper reads; no exemplars.
    Text,
    /// OpenMetrics 1.0 text: counters' families without `_total`, exemplars (trace ids)
    /// on histogram buckets, `# EOF` at the end.
    OpenMetrics,
}

impl Format {
    /// The format a scraper asks for in its `Accept` header: OpenMetrics when it lists
    /// `application/openmetrics-text` (Prometheus does, first, when it can store
    /// exemplars), else the classic text.
    ///
    /// ```
    /// use observe_runtime::metrics::Format;
    /// let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    /// assert_eq!(Format::negotiate(prometheus), Format::OpenMetrics);
    /// assert_eq!(Format::negotiate("text/plain"), Format::Text);
    /// assert_eq!(Format::negotiate("application/openmetrics-text;q=0"), Format::Text);
    /// ```
    pub fn negotiate(accept: &str) -> Format {
        let wants = accept.split(',').any(|part| {
            let mut params = part.split(';').map(str::trim);
            params
                .next()
                .is_some_and(|t| t.eq_ignore_ascii_case("application/openmetrics-text"))
                && !params.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                })
        });
        if wants {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The `Content-Type` of this format.
    ///
    /// ```
    /// use observe_runtime::metrics::{Format, TEXT_CONTENT_TYPE};
    /// assert_eq!(Format::Text.content_type(), TEXT_CONTENT_TYPE);
    /// ```
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => TEXT_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

static EXTRA_REGISTRIES: Mutex<Vec<prometheus::Registry>> = Mutex::new(Vec::new());

/// Gathers a `prometheus::Registry` of the application's into [`render`]'s output, in
/// addition to `prometheus`' default registry (which is always gathered).
///
/// ```
/// let registry = prometheus::Registry::new();
/// let jobs = prometheus::IntCounter::new("jobs_done_total", "Jobs done.").unwrap();
/// registry.register(Box::new(jobs.clone())).unwrap();
/// observe_runtime::metrics::register_registry(registry);
/// jobs.inc();
/// assert!(observe_runtime::metrics::render().contains("jobs_done_total 1"));
/// ```
pub fn register_registry(registry: prometheus::Registry) {
    EXTRA_REGISTRIES
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .push(registry);
}

/// Renders every metric in the Prometheus text format 0.0.4.
///
/// ```
/// let text = observe_runtime::metrics::render();
/// assert!(text.contains("# TYPE build_info gauge"));
/// ```
pub fn render() -> String {
    render_as(Format::Text)
}

/// Renders every metric in `format`; OpenMetrics carries exemplars.
///
/// ```
/// use observe_runtime::metrics::{render_as, Format};
/// let text = render_as(Format::OpenMetrics);
/// assert!(text.contains("# TYPE function_calls counter"));
/// assert!(text.ends_with("# EOF\n"));
/// ```
pub fn render_as(format: Format) -> String {
    let om = format == Format::OpenMetrics;
    let plan = registry::plan();
    let mut out = String::with_capacity(1024 + plan.groups.len() * 1536);
    let mut written: HashSet<&str> = HashSet::new();
    let snapshots: Vec<_> = plan.groups.iter().map(|g| g.snapshot()).collect();

    family(
        &mut out,
        &mut written,
        om,
        "function_calls_total",
        "counter",
        "Calls of instrumented functions, by result (ok, error, cancelled).",
    );
    for (group, snap) in plan.groups.iter().zip(&snapshots) {
        let outcomes: &[Outcome] = if group.is_async {
            &[Outcome::Ok, Outcome::Error, Outcome::Cancelled]
        } else {
            &[Outcome::Ok, Outcome::Error]
        };
        for &outcome in outcomes {
            let _ = writeln!(
                out,
                "function_calls_total{{{},result=\"{}\"}} {}",
                group.labels,
                outcome.label(),
                snap.outcomes[outcome as usize]
            );
        }
    }

    family(
        &mut out,
        &mut written,
        om,
        "function_calls_duration_seconds",
        "histogram",
        "Duration of instrumented function calls in seconds.",
    );
    for (group, snap) in plan.groups.iter().zip(&snapshots) {
        let mut cumulative = 0u64;
        for (i, count) in snap.buckets.iter().enumerate() {
            cumulative += count;
            let le = group
                .buckets
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |le| format_float(*le));
            let exemplar = match snap.exemplars.get(i) {
                Some(Some(e)) if om => e.suffix(),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "function_calls_duration_seconds_bucket{{{},le=\"{le}\"}} {cumulative}{exemplar}",
                group.labels,
            );
        }
        let _ = writeln!(
            out,
            "function_calls_duration_seconds_sum{{{}}} {}",
            group.labels,
            format_float(snap.sum_ns as f64 / 1e9)
        );
        let _ = writeln!(
            out,
            "function_calls_duration_seconds_count{{{}}} {}",
            group.labels,
            snap.count()
        );
    }

    family(
        &mut out,
        &mut written,
        om,
        "function_calls_concurrent",
        "gauge",
        "Calls of instrumented functions in progress.",
    );
    let mut in_flight_total = 0;
    for (group, snap) in plan.groups.iter().zip(&snapshots) {
        in_flight_total += snap.in_flight;
        let _ = writeln!(
            out,
            "function_calls_concurrent{{{}}} {}",
            group.labels, snap.in_flight
        );
    }

    family(
        &mut out,
        &mut written,
        om,
        "observe_instrumented_calls_in_flight",
        "gauge",
        "Instrumented calls in progress across all functions.",
    );
    let _ = writeln!(
        out,
        "observe_instrumented_calls_in_flight {in_flight_total}"
    );

    let workers = workers::samples();
    if !workers.is_empty() {
        family(
            &mut out,
            &mut written,
            om,
            "observe_worker_requests_in_flight",
            "gauge",
            "HTTP requests in progress on each server worker thread.",
        );
        for (name, in_flight, _) in &workers {
            let mut labels = String::new();
            push_label(&mut labels, "worker", name);
            let _ = writeln!(
                out,
                "observe_worker_requests_in_flight{{{labels}}} {in_flight}"
            );
        }
        family(
            &mut out,
            &mut written,
            om,
            "observe_worker_requests_total",
            "counter",
            "HTTP requests started on each server worker thread.",
        );
        for (name, _, total) in &workers {
            let mut labels = String::new();
            push_label(&mut labels, "worker", name);
            let _ = writeln!(out, "observe_worker_requests_total{{{labels}}} {total}");
        }
    }

    family(
        &mut out,
        &mut written,
        om,
        "build_info",
        "gauge",
        "Build information of the running service (always 1).",
    );
    let info = BUILD_INFO.get().cloned().unwrap_or_default();
    let mut labels = String::new();
    push_label(&mut labels, "version", &info.version);
    push_label(&mut labels, "commit", &info.commit);
    push_label(&mut labels, "branch", &info.branch);
    let service = if info.service_name.is_empty() {
        default_service_name()
    } else {
        info.service_name
    };
    push_label(&mut labels, "service_name", &service);
    push_label(&mut labels, "observe_version", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(out, "build_info{{{labels}}} 1");

    let mut seen: HashSet<String> = written.iter().map(|s| (*s).to_owned()).collect();
    collector::collect_all(&mut collector::Exposition::new(&mut out, &mut seen, om));

    // The user's own metrics. Families we wrote win; `process_*` from the user's registry
    // (prometheus' `process` feature) replace ours rather than duplicate them.
    let mut user = prometheus::gather();
    for registry in EXTRA_REGISTRIES
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .iter()
    {
        user.extend(registry.gather());
    }
    let user_has_process = user.iter().any(|f| f.name().starts_with("process_"));
    if !user_has_process {
        let samples = process::collect();
        for s in &samples {
            seen.insert(s.name.to_owned());
        }
        process::write(&mut out, &samples, om);
    }
    let user: Vec<_> = user
        .into_iter()
        .filter(|f| {
            if seen.insert(f.name().to_owned()) {
                true
            } else {
                warn_duplicate_once(f.name());
                false
            }
        })
        .collect();
    if om {
        openmetrics::write_families(&mut out, &user);
        out.push_str("# EOF\n");
    } else if !user.is_empty() {
        use prometheus::Encoder as _;
        let mut buf = Vec::new();
        if let Err(e) = prometheus::TextEncoder::new().encode(&user, &mut buf) {
            tracing::error!(target: "observe", "encoding the prometheus registry failed: {e}");
        }
        out.push_str(&String::from_utf8_lossy(&buf));
    }
    out
}

fn family<'a>(
    out: &mut String,
    written: &mut HashSet<&'a str>,
    om: bool,
    name: &'a str,
    kind: &str,
    help: &str,
) {
    written.insert(name);
    openmetrics::write_header(out, om, name, kind, help);
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

/// Formats a float as Prometheus does: integers without a fraction, `+Inf`, `NaN`.
pub(crate) fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}
