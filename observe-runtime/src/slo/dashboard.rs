//! A Grafana dashboard generated from the inventory: objectives, functions, routes and
//! health checks, each query written against observe's own series.

use super::{Sli, rules};
use crate::exposition::json::{Json, obj};

/// Every query filters on the dashboard's `job` variable.
const JOB: &str = "job=~\"$job\"";

/// Grafana's panel grid is 24 units wide.
struct Layout {
    y: u32,
    x: u32,
    panels: Vec<Json>,
    next_id: u32,
}

impl Layout {
    /// Ends the current line of panels.
    fn newline(&mut self) {
        if self.x > 0 {
            self.y += 8;
            self.x = 0;
        }
    }

    fn row(&mut self, title: &str, collapsed: bool, inner: Vec<Json>) {
        self.newline();
        let id = self.id();
        self.panels.push(obj! {
            "type": "row",
            "id": id,
            "title": title,
            "collapsed": collapsed,
            "gridPos": obj! { "h": 1u32, "w": 24u32, "x": 0u32, "y": self.y },
            "panels": inner,
        });
        self.y += 1;
    }

    fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }

    /// Places a panel of width `w` on the current line (a new line when it is full) and
    /// returns it with its id and position.
    fn place(&mut self, w: u32, panel: Panel) -> Json {
        if self.x + w > 24 {
            self.y += 8;
            self.x = 0;
        }
        let id = self.id();
        let json = panel.json(id, self.x, self.y, w);
        self.x += w;
        json
    }

    fn add(&mut self, w: u32, panel: Panel) {
        let json = self.place(w, panel);
        self.panels.push(json);
    }
}

/// One panel: its kind, title, unit and queries `(expr, legend, exemplars)`.
struct Panel {
    kind: &'static str,
    title: String,
    unit: &'static str,
    targets: Vec<(String, String, bool)>,
    description: String,
}

impl Panel {
    fn new(kind: &'static str, title: impl Into<String>, unit: &'static str) -> Panel {
        Panel {
            kind,
            title: title.into(),
            unit,
            targets: Vec::new(),
            description: String::new(),
        }
    }

    fn query(mut self, expr: String, legend: &str, exemplars: bool) -> Panel {
        self.targets.push((expr, legend.to_owned(), exemplars));
        self
    }

    fn describe(mut self, text: impl Into<String>) -> Panel {
        self.description = text.into();
        self
    }

    fn json(self, id: u32, x: u32, y: u32, w: u32) -> Json {
        let targets: Vec<Json> = self
            .targets
            .into_iter()
            .enumerate()
            .map(|(i, (expr, legend, exemplar))| {
                obj! {
                    "datasource": datasource(),
                    "expr": expr,
                    "legendFormat": legend,
                    "exemplar": exemplar,
                    "range": true,
                    "refId": ((b'A' + i as u8) as char).to_string(),
                }
            })
            .collect();
        let mut defaults = vec![("unit", Json::from(self.unit))];
        if self.kind == "state-timeline" {
            defaults.push((
                "mappings",
                Json::Arr(vec![obj! {
                    "type": "value",
                    "options": obj! {
                        "0": obj! { "text": "failing", "color": "red" },
                        "1": obj! { "text": "passing", "color": "green" },
                    },
                }]),
            ));
        }
        obj! {
            "type": self.kind,
            "id": id,
            "title": self.title,
            "description": self.description,
            "datasource": datasource(),
            "gridPos": obj! { "h": 8u32, "w": w, "x": x, "y": y },
            "fieldConfig": obj! { "defaults": Json::Obj(defaults), "overrides": Vec::<Json>::new() },
            "options": obj! { "legend": obj! { "displayMode": "list", "placement": "bottom", "showLegend": true } },
            "targets": targets,
        }
    }
}

fn datasource() -> Json {
    obj! { "type": "prometheus", "uid": "${datasource}" }
}

/// A Grafana dashboard (JSON model, importable as is: a `datasource` variable picks the
/// Prometheus, a `job` variable the service) generated from the inventory:
///
/// - **Objectives**: per objective and target, the error budget left over 30 days and
///   the burn rate over 1 h and 6 h (computed from the raw series: no recording rule
///   needed);
/// - **Functions**: calls per second, error ratio, p99 latency (exemplars on: a point
///   links to its trace) and calls in flight, one series per function; then a collapsed
///   row per instrumented function with its calls by result and its p50/p99;
/// - **HTTP routes**: requests per second, 5xx ratio and p99 (exemplars on) by route,
///   and requests in progress;
/// - **Health checks**: each check's status over time, durations and failures.
///
/// ```
/// #[observe::instrumented]
/// fn render() {}
///
/// let dashboard = observe_runtime::slo::dashboard_json();
/// assert!(dashboard.contains(r#""title": "fn render""#));
/// assert!(dashboard.contains(r#""exemplar": true"#));
/// ```
pub fn dashboard_json() -> String {
    let info = crate::metrics::build_info_or_default();
    let mut layout = Layout {
        y: 0,
        x: 0,
        panels: Vec::new(),
        next_id: 0,
    };

    let slis = Sli::all();
    if !slis.is_empty() {
        layout.row("Objectives", false, Vec::new());
        for sli in &slis {
            let what = format!(
                "{} ({} {} %) on {}",
                sli.name(),
                sli.kind.label(),
                sli.percentile(),
                sli.source_text()
            );
            layout.add(
                6,
                Panel::new("stat", format!("Budget left, 30 d: {what}"), "percentunit")
                    .describe(format!(
                        "1 - (fraction of bad calls over 30 days) / (budget {}): 100 % untouched, 0 spent. The recording rule {} holds the same value.",
                        sli.budget_expr(),
                        rules::BUDGET_REMAINING
                    ))
                    .query(
                        format!("1 - ({}) / {}", sli.bad_ratio("30d", JOB), sli.budget_expr()),
                        "{{job}}",
                        false,
                    ),
            );
            layout.add(
                6,
                Panel::new("timeseries", format!("Burn rate: {what}"), "none")
                    .describe("How many times faster than the budget allows bad calls arrive; pages above 14.4 (1 h) or 6 (6 h).")
                    .query(
                        format!("({}) / {}", sli.bad_ratio("1h", JOB), sli.budget_expr()),
                        "1 h {{job}}",
                        false,
                    )
                    .query(
                        format!("({}) / {}", sli.bad_ratio("6h", JOB), sli.budget_expr()),
                        "6 h {{job}}",
                        false,
                    ),
            );
        }
    }

    layout.row("Functions", false, Vec::new());
    let calls = format!("function_calls_total{{{JOB}}}");
    layout.add(
        6,
        Panel::new("timeseries", "Calls per second", "reqps").query(
            format!("sum by (function, module) (rate({calls}[5m]))"),
            "{{function}}",
            false,
        ),
    );
    layout.add(
        6,
        Panel::new("timeseries", "Error ratio", "percentunit").query(
            format!(
                "sum by (function, module) (rate(function_calls_total{{{JOB},result=\"error\"}}[5m])) / sum by (function, module) (rate({calls}[5m]))"
            ),
            "{{function}}",
            false,
        ),
    );
    layout.add(
        6,
        Panel::new("timeseries", "Latency p99", "s").query(
            format!(
                "histogram_quantile(0.99, sum by (le, function, module) (rate(function_calls_duration_seconds_bucket{{{JOB}}}[5m])))"
            ),
            "{{function}}",
            true,
        ),
    );
    layout.add(
        6,
        Panel::new("timeseries", "Calls in flight", "short").query(
            format!("sum by (function, module) (function_calls_concurrent{{{JOB}}})"),
            "{{function}}",
            false,
        ),
    );
    for f in crate::registry::functions() {
        let sel = format!(
            "{JOB},function=\"{}\",module=\"{}\"",
            super::escape(f.function),
            super::escape(f.module)
        );
        layout.newline();
        // A collapsed row holds its panels, placed below it.
        let mut inner = Layout {
            y: layout.y + 1,
            x: 0,
            panels: Vec::new(),
            next_id: layout.next_id,
        };
        let rate = inner.place(
            12,
            Panel::new(
                "timeseries",
                format!("{}: calls by result", f.function),
                "reqps",
            )
            .query(
                format!("sum by (result) (rate(function_calls_total{{{sel}}}[5m]))"),
                "{{result}}",
                false,
            ),
        );
        let latency = inner.place(
            12,
            Panel::new("timeseries", format!("{}: latency", f.function), "s")
                .describe(format!("{} ({}:{})", f.module, f.file, f.line))
                .query(
                    format!(
                        "histogram_quantile(0.99, sum by (le) (rate(function_calls_duration_seconds_bucket{{{sel}}}[5m])))"
                    ),
                    "p99",
                    true,
                )
                .query(
                    format!(
                        "histogram_quantile(0.5, sum by (le) (rate(function_calls_duration_seconds_bucket{{{sel}}}[5m])))"
                    ),
                    "p50",
                    true,
                ),
        );
        layout.next_id = inner.next_id;
        layout.row(&format!("fn {}", f.function), true, vec![rate, latency]);
    }

    layout.row("HTTP routes", false, Vec::new());
    let requests = format!("http_server_request_duration_seconds_count{{{JOB}}}");
    let by = "http_request_method, http_route";
    layout.add(
        6,
        Panel::new("timeseries", "Requests per second", "reqps").query(
            format!("sum by ({by}) (rate({requests}[5m]))"),
            "{{http_request_method}} {{http_route}}",
            false,
        ),
    );
    layout.add(
        6,
        Panel::new("timeseries", "5xx ratio", "percentunit").query(
            format!(
                "(sum by ({by}) (rate(http_server_request_duration_seconds_count{{{JOB},http_response_status_code=~\"5..\"}}[5m])) or 0 * sum by ({by}) (rate({requests}[5m]))) / sum by ({by}) (rate({requests}[5m]))"
            ),
            "{{http_request_method}} {{http_route}}",
            false,
        ),
    );
    layout.add(
        6,
        Panel::new("timeseries", "Latency p99", "s").query(
            format!(
                "histogram_quantile(0.99, sum by (le, {by}) (rate(http_server_request_duration_seconds_bucket{{{JOB}}}[5m])))"
            ),
            "{{http_request_method}} {{http_route}}",
            true,
        ),
    );
    layout.add(
        6,
        Panel::new("timeseries", "Requests in progress", "short").query(
            format!("sum by (http_request_method) (http_server_active_requests{{{JOB}}})"),
            "{{http_request_method}}",
            false,
        ),
    );

    layout.row("Health checks", false, Vec::new());
    layout.add(
        12,
        Panel::new("state-timeline", "Health check status", "none")
            .describe("1 passing, 0 failing (after the check's thresholds).")
            .query(
                format!("max by (check) (health_check_status{{{JOB}}})"),
                "{{check}}",
                false,
            ),
    );
    layout.add(
        6,
        Panel::new("timeseries", "Check duration p99", "s").query(
            format!(
                "histogram_quantile(0.99, sum by (le, check) (rate(health_check_duration_seconds_bucket{{{JOB}}}[5m])))"
            ),
            "{{check}}",
            false,
        ),
    );
    layout.add(
        6,
        Panel::new("timeseries", "Check failures per second", "short").query(
            format!("sum by (check, reason) (rate(health_check_failures_total{{{JOB}}}[5m]))"),
            "{{check}} {{reason}}",
            false,
        ),
    );

    let uid: String = format!("observe-{}", info.service_name)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(40)
        .collect();
    let dashboard = obj! {
        "uid": uid,
        "title": format!("{} (observe)", info.service_name),
        "description": format!(
            "Generated by observe {} from the inventory of {} {}: regenerate with --observe-print dashboard or GET /debug/observe/dashboard.json.",
            env!("CARGO_PKG_VERSION"),
            info.service_name,
            info.version
        ),
        "tags": vec![Json::from("observe"), Json::from("slo")],
        "editable": true,
        "schemaVersion": 39u32,
        "version": 1u32,
        "refresh": "30s",
        "time": obj! { "from": "now-6h", "to": "now" },
        "templating": obj! {
            "list": vec![
                obj! {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                },
                obj! {
                    "name": "job",
                    "label": "Job",
                    "type": "query",
                    "datasource": datasource(),
                    "query": "label_values(build_info, job)",
                    "refresh": 2u32,
                    "includeAll": true,
                    "multi": true,
                    "allValue": ".+",
                },
            ],
        },
        "annotations": obj! { "list": Vec::<Json>::new() },
        "panels": layout.panels,
    };
    dashboard.pretty()
}
