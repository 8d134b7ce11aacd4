//! Service-level objectives as code: from the objectives attached to functions
//! (`#[instrumented(objective = …)]`) and routes (`Middleware::objective`), observe
//! generates what teams otherwise write by hand, in sync with the code:
//!
//! - [`rules_yaml`]: Prometheus recording and alerting rules, multi-window
//!   multi-burn-rate as in the Google SRE workbook (page: 1 h and 5 m windows above 14.4×
//!   the budget rate, or 6 h and 30 m above 6×; ticket: 3 d and 6 h above 1×);
//! - [`dashboard_json`]: a Grafana dashboard: RED per function and per route, latency
//!   with exemplars, health checks over time, error budget remaining per objective;
//! - [`status_html`]: a status page for people (health checks with their recent runs,
//!   objectives with their budget left, the worst functions, calls in flight).
//!
//! The admin server serves the three under `/debug/observe/` (`rules.yml`,
//! `dashboard.json`, and the status page itself), behind its access policy; a binary
//! prints the first two with [`print_requested`].
//!
//! The series carry autometrics' objective labels (`objective_name`,
//! `objective_percentile`, `objective_latency_threshold`), so autometrics' own rules and
//! dashboards select them too.

mod dashboard;
mod rules;
mod status;

pub use dashboard::dashboard_json;
pub use rules::rules_yaml;
pub use status::status_html;

use crate::metrics::Objective;

/// What an objective is measured on.
///
/// ```
/// use observe_runtime::slo::Source;
/// let route = Source::Route { method: "GET".into(), route: "/pay/{id}".into() };
/// assert_ne!(route, Source::Functions(vec![("pay", "shop")]));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// Every instrumented function that carries the objective, as `(function, module)`.
    Functions(Vec<(&'static str, &'static str)>),
    /// One HTTP route.
    Route {
        /// `http_request_method`.
        method: String,
        /// `http_route`.
        route: String,
    },
}

/// One objective and what it is measured on, as [`objectives`] lists them.
///
/// ```
/// use observe_runtime::metrics::Objective;
/// use observe_runtime::slo::{Slo, Source};
/// const PAY: Objective = Objective::new("pay").success_rate(99.0);
/// let slo = Slo { objective: PAY, source: Source::Functions(vec![("pay", "shop")]) };
/// assert_eq!(slo.objective.name(), "pay");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Slo {
    /// The objective.
    pub objective: Objective,
    /// Where its calls come from.
    pub source: Source,
}

/// Every objective in the binary: those of instrumented functions (one entry per
/// objective, listing its functions), then those attached to routes.
///
/// ```
/// use observe_runtime::metrics::Objective;
/// const LOOKUP: Objective = Objective::new("lookup").success_rate(99.0);
///
/// #[observe::instrumented(objective = LOOKUP)]
/// fn lookup() -> Result<(), String> { Ok(()) }
///
/// let all = observe_runtime::slo::objectives();
/// let slo = all.iter().find(|s| s.objective == LOOKUP).unwrap();
/// assert!(matches!(&slo.source, observe_runtime::slo::Source::Functions(f) if f[0].0 == "lookup"));
/// ```
pub fn objectives() -> Vec<Slo> {
    let mut out: Vec<Slo> = Vec::new();
    for f in crate::registry::functions() {
        let Some(objective) = f.objective else {
            continue;
        };
        let existing = out.iter_mut().find(|s| s.objective == objective);
        match existing {
            Some(Slo {
                source: Source::Functions(list),
                ..
            }) => {
                if !list.contains(&(f.function, f.module)) {
                    list.push((f.function, f.module));
                }
            }
            _ => out.push(Slo {
                objective,
                source: Source::Functions(vec![(f.function, f.module)]),
            }),
        }
    }
    for r in crate::metrics::route_objectives() {
        out.push(Slo {
            objective: r.objective,
            source: Source::Route {
                method: r.method,
                route: r.route,
            },
        });
    }
    out
}

/// Which target of an objective an indicator measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Calls that failed (functions: `result="error"`; routes: a 5xx response).
    Errors,
    /// Calls slower than the latency threshold.
    Latency,
}

impl Kind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Errors => "errors",
            Kind::Latency => "latency",
        }
    }
}

/// One service-level indicator: an objective's target on its source, as the selectors of
/// its total and bad (or good) calls.
#[derive(Clone, Debug)]
pub(crate) struct Sli {
    pub slo: Slo,
    pub kind: Kind,
    /// The target, in percent of calls.
    pub percent: f64,
    /// The latency threshold, in seconds (latency only).
    pub threshold: Option<f64>,
}

impl Sli {
    /// Every indicator of every objective, each once: two objectives of one name that
    /// share a target (`charges` at 99.9 % with and without a latency target) select the
    /// same series, so they are one indicator (one set of rules, not two writing the
    /// same series).
    pub(crate) fn all() -> Vec<Sli> {
        let mut out: Vec<Sli> = Vec::new();
        let mut push = |sli: Sli| {
            let labels = sli.labels();
            if !out.iter().any(|o| o.labels() == labels) {
                out.push(sli);
            }
        };
        for slo in objectives() {
            if let Some(percent) = slo.objective.success_target() {
                push(Sli {
                    slo: slo.clone(),
                    kind: Kind::Errors,
                    percent,
                    threshold: None,
                });
            }
            if let Some((threshold, percent)) = slo.objective.latency_target() {
                push(Sli {
                    slo,
                    kind: Kind::Latency,
                    percent,
                    threshold: Some(threshold),
                });
            }
        }
        out
    }

    pub(crate) fn name(&self) -> &'static str {
        self.slo.objective.name()
    }

    pub(crate) fn percentile(&self) -> String {
        crate::exposition::float_text(self.percent)
    }

    /// The budget, as a PromQL expression: the fraction of calls allowed to be bad.
    pub(crate) fn budget_expr(&self) -> String {
        format!("(1 - {} / 100)", self.percentile())
    }

    /// The budget as a number.
    pub(crate) fn budget(&self) -> f64 {
        1.0 - self.percent / 100.0
    }

    /// The labels identifying this indicator's recorded series, as `(name, value)`: no
    /// two indicators share them.
    pub(crate) fn labels(&self) -> Vec<(&'static str, String)> {
        let mut labels = vec![
            ("objective_name", self.name().to_owned()),
            ("objective_percentile", self.percentile()),
            ("sli", self.kind.label().to_owned()),
        ];
        if let Some(threshold) = self.threshold {
            labels.push((
                "objective_latency_threshold",
                crate::exposition::float_text(threshold),
            ));
        }
        if let Source::Route { method, route } = &self.slo.source {
            labels.push(("http_request_method", method.clone()));
            labels.push(("http_route", route.clone()));
        }
        labels
    }

    /// `{k="v",…}` for the recorded series (routes' labels empty for functions, so a
    /// function's selector does not also match a route with the same objective).
    pub(crate) fn recorded_selector(&self) -> String {
        let mut labels = self.labels();
        if matches!(self.slo.source, Source::Functions(_)) {
            labels.push(("http_route", String::new()));
        }
        selector(&labels)
    }

    /// A human name of the source: `functions charge, refund` or `GET /charge/{id}`.
    pub(crate) fn source_text(&self) -> String {
        match &self.slo.source {
            Source::Functions(list) => {
                let names: Vec<&str> = list.iter().map(|(f, _)| *f).collect();
                format!(
                    "function{} {}",
                    if names.len() == 1 { "" } else { "s" },
                    names.join(", ")
                )
            }
            Source::Route { method, route } => format!("{method} {route}"),
        }
    }

    /// The labels every selector of this indicator has.
    pub(crate) fn base_labels(&self) -> Vec<(&'static str, String)> {
        match (&self.slo.source, self.kind) {
            (Source::Functions(_), Kind::Errors) => vec![
                ("objective_name", self.name().to_owned()),
                ("objective_percentile", self.percentile()),
            ],
            (Source::Functions(_), Kind::Latency) => self.latency_labels(),
            (Source::Route { method, route }, _) => vec![
                ("http_request_method", method.clone()),
                ("http_route", route.clone()),
            ],
        }
    }

    /// The family the indicator reads, as the exposition names it: a counter, or a
    /// histogram (its `_count`, and for latency the bucket at the threshold).
    pub(crate) fn family(&self) -> &'static str {
        match (&self.slo.source, self.kind) {
            (Source::Functions(_), Kind::Errors) => "function_calls_total",
            (Source::Functions(_), Kind::Latency) => "function_calls_duration_seconds",
            (Source::Route { .. }, _) => "http_server_request_duration_seconds",
        }
    }

    /// For an errors indicator, the label of a failed call and its value: `result` is
    /// `error` for functions; for routes, `http_response_status_code` starts with `5`
    /// (the second element is then a prefix).
    pub(crate) fn error_label(&self) -> (&'static str, &'static str) {
        match self.slo.source {
            Source::Functions(_) => ("result", "error"),
            Source::Route { .. } => ("http_response_status_code", "5"),
        }
    }

    /// The selector of every call (the denominator).
    pub(crate) fn total(&self) -> String {
        let family = self.family();
        let suffix = if family.ends_with("_total") {
            ""
        } else {
            "_count"
        };
        format!("{family}{suffix}{}", selector(&self.base_labels()))
    }

    /// The selector of bad calls (errors) or good calls (latency: the threshold's bucket).
    pub(crate) fn counted(&self) -> String {
        let mut labels = self.base_labels();
        match (&self.slo.source, self.kind) {
            (Source::Functions(_), Kind::Errors) => {
                let (name, value) = self.error_label();
                labels.push((name, value.to_owned()));
                format!("{}{}", self.family(), selector(&labels))
            }
            (Source::Route { .. }, Kind::Errors) => {
                let (name, prefix) = self.error_label();
                with_extra(&self.total(), &format!("{name}=~\"{prefix}..\""))
            }
            (_, Kind::Latency) => {
                let threshold = self.threshold.unwrap_or_default();
                labels.push(("le", crate::exposition::float_text(threshold)));
                format!("{}_bucket{}", self.family(), selector(&labels))
            }
        }
    }

    fn latency_labels(&self) -> Vec<(&'static str, String)> {
        vec![
            ("objective_name", self.name().to_owned()),
            ("objective_percentile", self.percentile()),
            (
                "objective_latency_threshold",
                crate::exposition::float_text(self.threshold.unwrap_or_default()),
            ),
        ]
    }

    /// PromQL: the fraction of bad calls over `window` (`5m`), by `job`; `extra` is added
    /// to every selector (the dashboard's `job=~"$job"`). On one line.
    pub(crate) fn bad_ratio(&self, window: &str, extra: &str) -> String {
        self.bad_ratio_lines(window, extra).join(" ")
    }

    /// The same expression, one operand or operator per line, indented.
    pub(crate) fn bad_ratio_lines(&self, window: &str, extra: &str) -> Vec<String> {
        let total = with_extra(&self.total(), extra);
        let counted = with_extra(&self.counted(), extra);
        let all = format!("sum by (job) (rate({total}[{window}]))");
        match self.kind {
            // A route's 5xx series appear with the first 5xx: until then, zero.
            Kind::Errors => vec![
                "(".to_owned(),
                format!("  sum by (job) (rate({counted}[{window}]))"),
                format!("  or 0 * {all}"),
                ")".to_owned(),
                "/".to_owned(),
                all,
            ],
            Kind::Latency => vec![
                "1 - (".to_owned(),
                format!("  sum by (job) (rate({counted}[{window}]))"),
                "  /".to_owned(),
                format!("  {all}"),
                ")".to_owned(),
            ],
        }
    }
}

/// Adds `extra` (`job=~"$job"`) to a selector ending in `}`.
fn with_extra(selector: &str, extra: &str) -> String {
    if extra.is_empty() {
        return selector.to_owned();
    }
    match selector.strip_suffix('}') {
        Some(head) if head.ends_with('{') => format!("{head}{extra}}}"),
        Some(head) => format!("{head},{extra}}}"),
        None => format!("{selector}{{{extra}}}"),
    }
}

/// A number for people: at most six decimals, no trailing zeros (`0.1`, not
/// `0.09999999999999432`).
pub(crate) fn short(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// `{a="x",b="y"}`.
pub(crate) fn selector(labels: &[(&str, String)]) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// A PromQL string's escapes.
pub(crate) fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Prints the generated rules or dashboard and returns `true` when the process was
/// started with `--observe-print rules` or `--observe-print dashboard`
/// (`--observe-print=rules` also works); returns `false` otherwise. Call it once the
/// objectives are attached (after building the [`Middleware`] that attaches route
/// objectives), and exit when it returns `true`:
///
/// ```no_run
/// if observe_runtime::slo::print_requested() {
///     return;
/// }
/// ```
///
/// An unknown value is reported on stderr and also returns `true`, so a typo never
/// starts the service by accident.
///
/// [`Middleware`]: https://docs.rs/observe/latest/observe/struct.Middleware.html
pub fn print_requested() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut what = None;
    for (i, arg) in args.iter().enumerate() {
        if let Some(v) = arg.strip_prefix("--observe-print=") {
            what = Some(v.to_owned());
        } else if arg == "--observe-print" {
            what = Some(args.get(i + 1).cloned().unwrap_or_default());
        }
    }
    let Some(what) = what else {
        return false;
    };
    match what.as_str() {
        "rules" => print!("{}", rules_yaml()),
        "dashboard" => print!("{}", dashboard_json()),
        other => eprintln!("error: --observe-print takes `rules` or `dashboard`, not {other:?}"),
    }
    true
}
