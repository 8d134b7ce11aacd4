//! The status page: one HTML document for people, server-rendered from the same snapshot
//! `/metrics` serves, with its CSS inline: no script, no request to anything else.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, SystemTime};

use super::{Kind, Sli, Source};
use crate::exposition::{Family, Value};
use crate::health::metrics::{CheckView, HISTORY};

/// How many functions each "top" table lists.
const TOP: usize = 10;

/// The status page, as HTML: health checks with their last runs, objectives with their
/// error budget left (since the process started: Prometheus holds the 30-day figure),
/// the functions with the highest error ratio and the slowest p99, calls in flight, and
/// links to the other admin endpoints. Readable without JavaScript and without network
/// access; the admin server serves it at `/debug/observe/`.
///
/// ```
/// #[observe::instrumented]
/// fn settle() -> Result<(), String> { Err("declined".into()) }
/// let _ = settle();
///
/// let html = observe_runtime::slo::status_html();
/// assert!(html.starts_with("<!DOCTYPE html>"));
/// assert!(html.contains(r#"data-function="settle""#));
/// ```
pub fn status_html() -> String {
    let families = crate::exposition::gather();
    let info = crate::metrics::build_info_or_default();
    let checks = crate::health::metrics::metrics().views();
    let mut out = String::with_capacity(16 * 1024);
    let title = if info.version.is_empty() {
        format!("{} status", info.service_name)
    } else {
        format!("{} {} status", info.service_name, info.version)
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"refresh\" content=\"30\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        html(&title)
    );
    let _ = writeln!(
        out,
        "<header><h1>{}</h1><p class=\"meta\">version {} · commit {} · observe {} · rendered {} UTC · reloads every 30 s</p></header>\n<main>",
        html(&info.service_name),
        html(or_dash(&info.version)),
        html(or_dash(&info.commit)),
        env!("CARGO_PKG_VERSION"),
        utc(SystemTime::now())
    );
    health_section(&mut out, &checks);
    objectives_section(&mut out, &families);
    let stats = function_stats(&families);
    top_errors(&mut out, &stats);
    top_latency(&mut out, &stats);
    in_flight(&mut out, &stats, &families);
    links(&mut out);
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

const STYLE: &str = "
:root{color-scheme:light;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--mute:#59636e;--line:#d1d9e0}
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1f2328;background:#f6f8fa}
header{background:#fff;border-bottom:1px solid var(--line);padding:16px 24px}
h1{font-size:20px;margin:0}h2{font-size:16px;margin:0 0 8px}
.meta{color:var(--mute);margin:4px 0 0}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:16px;padding:16px 24px}
section{background:#fff;border:1px solid var(--line);border-radius:6px;padding:12px 16px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:middle}
th{color:var(--mute);font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.status{font-weight:600}.up{color:var(--ok)}.down{color:var(--bad)}.unknown{color:var(--mute)}
.runs{display:flex;gap:2px}.run{display:inline-block;width:8px;height:16px;border-radius:2px}
.run.pass{background:var(--ok)}.run.fail{background:var(--bad)}
.bar{background:#eaeef2;border-radius:3px;height:10px;width:120px;display:inline-block;vertical-align:middle}
.bar span{display:block;height:10px;border-radius:3px;background:var(--ok)}
.bar.low span{background:var(--warn)}.bar.spent span{background:var(--bad)}
.empty{color:var(--mute)}
ul.links{margin:0;padding-left:18px}
";

fn or_dash(s: &str) -> &str {
    if s.is_empty() { "–" } else { s }
}

fn health_section(out: &mut String, checks: &[CheckView]) {
    out.push_str("<section id=\"health\"><h2>Health checks</h2>\n");
    if checks.is_empty() {
        out.push_str("<p class=\"empty\">No health check is declared.</p></section>\n");
        return;
    }
    let _ = writeln!(
        out,
        "<table><thead><tr><th>check</th><th>critical</th><th>status</th><th>last {HISTORY} runs (oldest first)</th></tr></thead><tbody>"
    );
    for check in checks {
        let (class, text) = match check.up {
            Some(true) => ("up", "passing"),
            Some(false) => ("down", "failing"),
            None => ("unknown", "not run yet"),
        };
        let _ = write!(
            out,
            "<tr class=\"check\" data-check=\"{name}\" data-status=\"{class}\"><td>{name}</td><td>{critical}</td><td class=\"status {class}\">{text}</td><td><span class=\"runs\">",
            name = html(check.name),
            critical = if check.critical { "yes" } else { "no" },
        );
        for run in &check.runs {
            let what = match run.reason {
                None => "passed".to_owned(),
                Some(reason) => format!("failed ({reason})"),
            };
            let _ = write!(
                out,
                "<span class=\"run {}\" title=\"{} {} in {} ms\"></span>",
                if run.passed { "pass" } else { "fail" },
                utc(run.at),
                what,
                super::short(run.seconds * 1e3)
            );
        }
        out.push_str("</span></td></tr>\n");
    }
    out.push_str("</tbody></table></section>\n");
}

/// The sum of a counter or histogram count over the series of `family` whose labels
/// include every `(name, value)` of `want` (a value starting with `~5` matches `5xx`).
fn total(families: &[Family], family: &str, want: &[(&str, String)], le: Option<f64>) -> f64 {
    let Some(f) = families.iter().find(|f| f.name == family) else {
        return 0.0;
    };
    let mut sum = 0.0;
    for series in &f.series {
        let matches = want.iter().all(|(k, v)| {
            let value = series
                .labels
                .iter()
                .find(|(n, _)| n == k)
                .map_or("", |(_, v)| v.as_ref());
            match v.strip_prefix('~') {
                Some(prefix) => value.starts_with(prefix),
                None => value == v,
            }
        });
        if !matches {
            continue;
        }
        sum += match (&series.value, le) {
            (Value::Number(v), _) => *v,
            (Value::Histogram { count, .. }, None) => *count as f64,
            (Value::Histogram { buckets, .. }, Some(le)) => buckets
                .iter()
                .find(|b| b.le == le)
                .map_or(0.0, |b| b.cumulative as f64),
            _ => 0.0,
        };
    }
    sum
}

/// `(bad, all)` calls of an indicator since the process started: the series its rules
/// select, read from the snapshot.
fn counts(families: &[Family], sli: &Sli) -> (f64, f64) {
    let family = sli.family();
    let base = sli.base_labels();
    let all = total(families, family, &base, None);
    let bad = match sli.kind {
        Kind::Errors => {
            let (name, value) = sli.error_label();
            // `~` marks a prefix for `total`: a route's 5xx.
            let value = match sli.slo.source {
                Source::Functions(_) => value.to_owned(),
                Source::Route { .. } => format!("~{value}"),
            };
            let mut errors = base;
            errors.push((name, value));
            total(families, family, &errors, None)
        }
        Kind::Latency => all - total(families, family, &base, sli.threshold),
    };
    (bad, all)
}

fn objectives_section(out: &mut String, families: &[Family]) {
    out.push_str("<section id=\"objectives\"><h2>Objectives</h2>\n");
    let slis = Sli::all();
    if slis.is_empty() {
        out.push_str("<p class=\"empty\">No objective is defined: <code>#[instrumented(objective = …)]</code> or <code>Middleware::objective</code>.</p></section>\n");
        return;
    }
    out.push_str("<table><thead><tr><th>objective</th><th>target</th><th>on</th><th class=\"num\">calls</th><th class=\"num\">bad</th><th>budget left since start</th></tr></thead><tbody>\n");
    for sli in &slis {
        let (bad, all) = counts(families, sli);
        let left = if all > 0.0 {
            1.0 - (bad / all) / sli.budget()
        } else {
            1.0
        };
        let target = match sli.kind {
            Kind::Errors => format!("{} % succeed", sli.percentile()),
            Kind::Latency => format!(
                "{} % within {} ms",
                sli.percentile(),
                super::short(sli.threshold.unwrap_or_default() * 1e3)
            ),
        };
        let class = if left <= 0.0 {
            "spent"
        } else if left < 0.25 {
            "low"
        } else {
            "ok"
        };
        let width = (left.clamp(0.0, 1.0) * 100.0).round();
        let _ = writeln!(
            out,
            "<tr class=\"objective\" data-objective=\"{name}\" data-sli=\"{sli_kind}\" data-budget-left=\"{left:.4}\"><td>{name}</td><td>{target}</td><td>{source}</td><td class=\"num\">{all}</td><td class=\"num\">{bad}</td><td><span class=\"bar {class}\"><span style=\"width:{width}%\"></span></span> {pct}</td></tr>",
            name = html(sli.name()),
            sli_kind = sli.kind.label(),
            target = html(&target),
            source = html(&sli.source_text()),
            all = all as u64,
            bad = bad as u64,
            pct = if left >= 0.0 {
                format!("{} %", super::short((left * 1000.0).round() / 10.0))
            } else {
                format!(
                    "spent: {}× the budget",
                    super::short(((1.0 - left) * 10.0).round() / 10.0)
                )
            },
        );
    }
    out.push_str("</tbody></table><p class=\"meta\">Over 30 days: the recording rule <code>job:observe_slo_budget_remaining:ratio_30d</code> of <a href=\"rules.yml\">rules.yml</a>.</p></section>\n");
}

/// Per function (merged over its series): calls, errors, in flight, p99 estimate.
#[derive(Default)]
struct FnStats {
    calls: f64,
    errors: f64,
    in_flight: f64,
    /// Cumulative bucket counts by bound (seconds), merged.
    buckets: BTreeMap<u64, f64>,
    count: f64,
}

fn function_stats(families: &[Family]) -> BTreeMap<(String, String), FnStats> {
    let mut stats: BTreeMap<(String, String), FnStats> = BTreeMap::new();
    let key = |labels: &[(crate::exposition::Str, crate::exposition::Str)]| {
        let get = |k: &str| {
            labels
                .iter()
                .find(|(n, _)| n == k)
                .map_or(String::new(), |(_, v)| v.to_string())
        };
        (get("module"), get("function"))
    };
    for f in families {
        match f.name.as_ref() {
            "function_calls_total" => {
                for s in &f.series {
                    let entry = stats.entry(key(&s.labels)).or_default();
                    if let Value::Number(v) = s.value {
                        entry.calls += v;
                        if s.labels.iter().any(|(k, v)| k == "result" && v == "error") {
                            entry.errors += v;
                        }
                    }
                }
            }
            "function_calls_concurrent" => {
                for s in &f.series {
                    if let Value::Number(v) = s.value {
                        stats.entry(key(&s.labels)).or_default().in_flight += v;
                    }
                }
            }
            "function_calls_duration_seconds" => {
                for s in &f.series {
                    if let Value::Histogram { buckets, count, .. } = &s.value {
                        let entry = stats.entry(key(&s.labels)).or_default();
                        entry.count += *count as f64;
                        for b in buckets {
                            *entry.buckets.entry(b.le.to_bits()).or_default() +=
                                b.cumulative as f64;
                        }
                    }
                }
            }
            _ => {}
        }
    }
    stats
}

impl FnStats {
    /// The 0.99 quantile, interpolated inside its bucket as `histogram_quantile` does;
    /// `None` without calls. An answer in the `+Inf` bucket is the highest finite bound.
    fn p99(&self) -> Option<f64> {
        if self.count <= 0.0 {
            return None;
        }
        let rank = 0.99 * self.count;
        let mut bounds: Vec<(f64, f64)> = self
            .buckets
            .iter()
            .map(|(bits, c)| (f64::from_bits(*bits), *c))
            .collect();
        bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
        let (mut lower, mut below) = (0.0, 0.0);
        for (le, cumulative) in bounds {
            if cumulative >= rank {
                if le.is_infinite() {
                    return Some(lower);
                }
                let inside = cumulative - below;
                let fraction = if inside > 0.0 {
                    (rank - below) / inside
                } else {
                    1.0
                };
                return Some(lower + (le - lower) * fraction);
            }
            lower = le;
            below = cumulative;
        }
        Some(lower)
    }
}

fn top_errors(out: &mut String, stats: &BTreeMap<(String, String), FnStats>) {
    out.push_str("<section id=\"top-errors\"><h2>Top functions by error ratio</h2>\n");
    let mut rows: Vec<_> = stats.iter().filter(|(_, s)| s.calls > 0.0).collect();
    rows.sort_by(|a, b| {
        let ra = a.1.errors / a.1.calls;
        let rb = b.1.errors / b.1.calls;
        rb.total_cmp(&ra).then(b.1.calls.total_cmp(&a.1.calls))
    });
    if rows.is_empty() {
        out.push_str("<p class=\"empty\">No call yet.</p></section>\n");
        return;
    }
    out.push_str("<table><thead><tr><th>function</th><th>module</th><th class=\"num\">calls</th><th class=\"num\">errors</th><th class=\"num\">error ratio</th></tr></thead><tbody>\n");
    for ((module, function), s) in rows.into_iter().take(TOP) {
        let _ = writeln!(
            out,
            "<tr class=\"function\" data-function=\"{f}\"><td>{f}</td><td>{m}</td><td class=\"num\">{calls}</td><td class=\"num\">{errors}</td><td class=\"num\">{ratio} %</td></tr>",
            f = html(function),
            m = html(module),
            calls = s.calls as u64,
            errors = s.errors as u64,
            ratio = super::short((s.errors / s.calls * 1000.0).round() / 10.0),
        );
    }
    out.push_str("</tbody></table><p class=\"meta\">Since the process started.</p></section>\n");
}

fn top_latency(out: &mut String, stats: &BTreeMap<(String, String), FnStats>) {
    out.push_str("<section id=\"top-latency\"><h2>Top functions by p99 latency</h2>\n");
    let mut rows: Vec<_> = stats
        .iter()
        .filter_map(|(k, s)| s.p99().map(|p| (k, s, p)))
        .collect();
    rows.sort_by(|a, b| b.2.total_cmp(&a.2));
    if rows.is_empty() {
        out.push_str("<p class=\"empty\">No call yet.</p></section>\n");
        return;
    }
    out.push_str("<table><thead><tr><th>function</th><th>module</th><th class=\"num\">calls</th><th class=\"num\">p99</th></tr></thead><tbody>\n");
    for ((module, function), s, p99) in rows.into_iter().take(TOP) {
        let _ = writeln!(
            out,
            "<tr class=\"latency\" data-function=\"{f}\"><td>{f}</td><td>{m}</td><td class=\"num\">{calls}</td><td class=\"num\">{ms} ms</td></tr>",
            f = html(function),
            m = html(module),
            calls = s.count as u64,
            ms = super::short((p99 * 1e4).round() / 10.0),
        );
    }
    out.push_str("</tbody></table><p class=\"meta\">Since the process started, interpolated in its histogram bucket as <code>histogram_quantile</code> does.</p></section>\n");
}

fn in_flight(out: &mut String, stats: &BTreeMap<(String, String), FnStats>, families: &[Family]) {
    let total: f64 = stats.values().map(|s| s.in_flight).sum();
    let http = families
        .iter()
        .find(|f| f.name == "http_server_active_requests")
        .map(|f| {
            f.series
                .iter()
                .map(|s| match s.value {
                    Value::Number(v) => v,
                    _ => 0.0,
                })
                .sum::<f64>()
        });
    let _ = writeln!(
        out,
        "<section id=\"in-flight\"><h2>In flight</h2>\n<p><span id=\"calls-in-flight\" data-value=\"{n}\">{n}</span> instrumented call{} in progress{}.</p>",
        if total as u64 == 1 { "" } else { "s" },
        http.map_or(String::new(), |h| format!(
            ", {} HTTP request{}",
            h as u64,
            if h as u64 == 1 { "" } else { "s" }
        )),
        n = total as u64,
    );
    let busy: Vec<_> = stats.iter().filter(|(_, s)| s.in_flight > 0.0).collect();
    if !busy.is_empty() {
        out.push_str("<table><thead><tr><th>function</th><th>module</th><th class=\"num\">in flight</th></tr></thead><tbody>\n");
        for ((module, function), s) in busy {
            let _ = writeln!(
                out,
                "<tr class=\"busy\" data-function=\"{f}\"><td>{f}</td><td>{m}</td><td class=\"num\">{n}</td></tr>",
                f = html(function),
                m = html(module),
                n = s.in_flight as u64
            );
        }
        out.push_str("</tbody></table>\n");
    }
    out.push_str("</section>\n");
}

fn links(out: &mut String) {
    out.push_str(
        "<section id=\"links\"><h2>More</h2><ul class=\"links\">\n\
         <li><a href=\"/metrics\">/metrics</a>: every series, as Prometheus scrapes them</li>\n\
         <li><a href=\"/readyz?verbose\">/readyz?verbose</a>, <a href=\"/livez\">/livez</a>: the probes</li>\n\
         <li><a href=\"/debug/pprof/\">/debug/pprof/</a>: profiles (CPU, threads, heap and in-flight calls when built in)</li>\n\
         <li><a href=\"/debug/pprof/profile?seconds=10\">CPU profile, 10 s</a> (for <code>go tool pprof</code>) and <a href=\"/debug/pprof/flamegraph?seconds=10\">as a flame graph</a></li>\n\
         <li><a href=\"/debug/pprof/threads\">thread stacks</a></li>\n\
         <li><a href=\"rules.yml\">rules.yml</a>: the generated Prometheus rules</li>\n\
         <li><a href=\"dashboard.json\">dashboard.json</a>: the generated Grafana dashboard</li>\n\
         </ul></section>\n",
    );
}

/// `2026-12-01 04:05:06`.
fn utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Escapes text for HTML content and attribute values.
fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(SystemTime::UNIX_EPOCH), "1970-01-01 00:00:00");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_094_306);
        assert_eq!(utc(t), "2026-12-01 03:05:06");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            html("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn p99_interpolates_like_histogram_quantile() {
        let mut s = FnStats {
            count: 100.0,
            ..FnStats::default()
        };
        for (le, c) in [
            (0.1, 50.0),
            (0.2, 98.0),
            (0.4, 100.0),
            (f64::INFINITY, 100.0),
        ] {
            s.buckets.insert(f64::to_bits(le), c);
        }
        // Rank 99 lies halfway through the (0.2, 0.4] bucket's two observations.
        assert!((s.p99().unwrap() - 0.3).abs() < 1e-9);
    }
}
