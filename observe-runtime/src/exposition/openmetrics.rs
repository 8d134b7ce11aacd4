//! The OpenMetrics 1.0 text format: what differs from Prometheus text 0.0.4.
//!
//! - a counter *family* is named without `_total`; its sample keeps the suffix (a user
//!   counter named without `_total` gets it on the sample, as client_golang does);
//! - `HELP` escapes `"` too; `untyped` is `unknown`;
//! - histogram bucket lines may carry an exemplar (` # {trace_id="…"} value ts`);
//! - the exposition ends with `# EOF`.

use std::fmt::Write;

use prometheus::proto::{MetricFamily, MetricType};

use super::format_float as float;
use crate::registry::push_label;

/// The family name OpenMetrics wants for a metric of `kind` called `name`.
pub(crate) fn family_name<'a>(name: &'a str, kind: &str) -> &'a str {
    if kind == "counter" {
        name.strip_suffix("_total").unwrap_or(name)
    } else {
        name
    }
}

/// The `# HELP` and `# TYPE` lines of a family, in either format: OpenMetrics names a
/// counter family without `_total`.
pub(crate) fn write_header(out: &mut String, om: bool, name: &str, kind: &str, help: &str) {
    if om {
        // OpenMetrics escapes `"` in HELP too (text 0.0.4 does not).
        let shown = family_name(name, kind);
        let _ = writeln!(out, "# HELP {shown} {}", escape_help(help));
        let _ = writeln!(out, "# TYPE {shown} {kind}");
    } else {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
    }
}

/// `HELP` text escaped for OpenMetrics (`\`, newline and `"`).
pub(crate) fn escape_help(help: &str) -> String {
    let mut out = String::with_capacity(help.len());
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

fn labels(pairs: &[prometheus::proto::LabelPair], extra: Option<(&str, &str)>) -> String {
    let mut text = String::new();
    for lp in pairs {
        push_label(&mut text, lp.name(), lp.value());
    }
    if let Some((k, v)) = extra {
        push_label(&mut text, k, v);
    }
    if text.is_empty() {
        text
    } else {
        format!("{{{text}}}")
    }
}

/// Writes the `prometheus` crate's families in OpenMetrics text.
pub(crate) fn write_families(out: &mut String, families: &[MetricFamily]) {
    for mf in families {
        let name = mf.name();
        let kind = match mf.get_field_type() {
            MetricType::COUNTER => "counter",
            MetricType::GAUGE => "gauge",
            MetricType::HISTOGRAM => "histogram",
            MetricType::SUMMARY => "summary",
            MetricType::UNTYPED => "unknown",
        };
        let family = family_name(name, kind);
        if !mf.help().is_empty() {
            let _ = writeln!(out, "# HELP {family} {}", escape_help(mf.help()));
        }
        let _ = writeln!(out, "# TYPE {family} {kind}");
        for m in mf.get_metric() {
            let l = m.get_label();
            match mf.get_field_type() {
                MetricType::COUNTER => {
                    let _ = writeln!(
                        out,
                        "{family}_total{} {}",
                        labels(l, None),
                        float(m.get_counter().get_value())
                    );
                }
                MetricType::GAUGE => {
                    let _ = writeln!(
                        out,
                        "{name}{} {}",
                        labels(l, None),
                        float(m.get_gauge().get_value())
                    );
                }
                #[allow(deprecated)] // the only accessor prometheus 0.14 has for it
                MetricType::UNTYPED => {
                    let _ = writeln!(
                        out,
                        "{name}{} {}",
                        labels(l, None),
                        float(m.get_untyped().get_value())
                    );
                }
                MetricType::HISTOGRAM => {
                    let h = m.get_histogram();
                    let mut inf_seen = false;
                    for b in h.get_bucket() {
                        let le = float(b.upper_bound());
                        inf_seen |= b.upper_bound() == f64::INFINITY;
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {}",
                            labels(l, Some(("le", &le))),
                            b.cumulative_count()
                        );
                    }
                    if !inf_seen {
                        let _ = writeln!(
                            out,
                            "{name}_bucket{} {}",
                            labels(l, Some(("le", "+Inf"))),
                            h.get_sample_count()
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{name}_sum{} {}",
                        labels(l, None),
                        float(h.get_sample_sum())
                    );
                    let _ = writeln!(
                        out,
                        "{name}_count{} {}",
                        labels(l, None),
                        h.get_sample_count()
                    );
                }
                MetricType::SUMMARY => {
                    let s = m.get_summary();
                    for q in s.get_quantile() {
                        let quantile = float(q.quantile());
                        let _ = writeln!(
                            out,
                            "{name}{} {}",
                            labels(l, Some(("quantile", &quantile))),
                            float(q.value())
                        );
                    }
                    let _ = writeln!(
                        out,
                        "{name}_sum{} {}",
                        labels(l, None),
                        float(s.sample_sum())
                    );
                    let _ = writeln!(out, "{name}_count{} {}", labels(l, None), s.sample_count());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_help_escapes_quotes_and_text_does_not() {
        let mut om = String::new();
        write_header(&mut om, true, "x_total", "counter", "under \"<overflow>\"");
        assert_eq!(om, "# HELP x under \\\"<overflow>\\\"\n# TYPE x counter\n");
        let mut text = String::new();
        write_header(
            &mut text,
            false,
            "x_total",
            "counter",
            "under \"<overflow>\"",
        );
        assert_eq!(
            text,
            "# HELP x_total under \"<overflow>\"\n# TYPE x_total counter\n"
        );
    }

    #[test]
    fn counters_lose_total_on_the_family_only() {
        assert_eq!(family_name("jobs_total", "counter"), "jobs");
        assert_eq!(family_name("jobs", "counter"), "jobs");
        assert_eq!(family_name("queue_total", "gauge"), "queue_total");
        let registry = prometheus::Registry::new();
        let c = prometheus::IntCounter::new("jobs", "Jobs \"done\".").unwrap();
        registry.register(Box::new(c.clone())).unwrap();
        c.inc_by(3);
        let mut out = String::new();
        write_families(&mut out, &registry.gather());
        assert_eq!(
            out,
            "# HELP jobs Jobs \\\"done\\\".\n# TYPE jobs counter\njobs_total 3\n"
        );
    }
}
