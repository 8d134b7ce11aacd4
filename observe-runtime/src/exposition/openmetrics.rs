//! The OpenMetrics 1.0 text format: what differs from Prometheus text 0.0.4.
//!
//! - a counter *family* is named without `_total`; its sample keeps the suffix (a user
//!   counter named without `_total` gets it on the sample, as client_golang does);
//! - `HELP` escapes `"` too; `untyped` is `unknown`; `# UNIT` when the name ends in one;
//! - histogram bucket lines may carry an exemplar (` # {trace_id="…"} value ts`);
//! - the exposition ends with `# EOF`.

use std::fmt::Write;

use super::family::{Family, Kind, Value};
use super::text::{escape_help, float, push_float, series_name, sum_and_count};
use crate::metrics::exemplar::Exemplar;

/// The family name OpenMetrics wants for a metric of `kind` called `name`.
pub(crate) fn family_name(name: &str, kind: Kind) -> &str {
    if kind == Kind::Counter {
        name.strip_suffix("_total").unwrap_or(name)
    } else {
        name
    }
}

fn word(kind: Kind) -> &'static str {
    match kind {
        Kind::Unknown => "unknown",
        other => other.text_word(),
    }
}

/// Encodes `families` in OpenMetrics 1.0 text, exemplars included, ending with `# EOF`.
pub(crate) fn encode(families: &[Family]) -> String {
    let mut out = String::with_capacity(families.iter().map(|f| 96 + f.series.len() * 128).sum());
    for f in families {
        let family = family_name(&f.name, f.kind);
        let _ = writeln!(out, "# HELP {family} {}", escape_help(&f.help, true));
        let _ = writeln!(out, "# TYPE {family} {}", word(f.kind));
        if !f.unit.is_empty() && family.ends_with(&*f.unit) {
            let _ = writeln!(out, "# UNIT {family} {}", f.unit);
        }
        for series in &f.series {
            match &series.value {
                Value::Number(v) => {
                    let suffix = if f.kind == Kind::Counter {
                        "_total"
                    } else {
                        ""
                    };
                    let name = if f.kind == Kind::Counter {
                        family
                    } else {
                        &*f.name
                    };
                    series_name(&mut out, name, suffix, &series.labels, None);
                    push_float(&mut out, *v);
                    out.push('\n');
                }
                Value::Histogram {
                    buckets,
                    sum,
                    count,
                } => {
                    for b in buckets {
                        let le = float(b.le);
                        series_name(
                            &mut out,
                            family,
                            "_bucket",
                            &series.labels,
                            Some(("le", &le)),
                        );
                        let _ = write!(out, "{}", b.cumulative);
                        if let Some(e) = &b.exemplar {
                            write_exemplar(&mut out, e);
                        }
                        out.push('\n');
                    }
                    sum_and_count(&mut out, family, &series.labels, *sum, *count);
                }
                Value::Summary {
                    quantiles,
                    sum,
                    count,
                } => {
                    for (q, v) in quantiles {
                        let q = float(*q);
                        series_name(&mut out, family, "", &series.labels, Some(("quantile", &q)));
                        push_float(&mut out, *v);
                        out.push('\n');
                    }
                    sum_and_count(&mut out, family, &series.labels, *sum, *count);
                }
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

/// ` # {trace_id="…",span_id="…"} value timestamp`.
fn write_exemplar(out: &mut String, e: &Exemplar) {
    let _ = write!(
        out,
        " # {{trace_id=\"{:032x}\",span_id=\"{:016x}\"}} {} {:.3}",
        e.trace_id, e.span_id, e.value, e.timestamp
    );
}

#[cfg(test)]
mod tests {
    use super::super::family::{Family, Kind, Series, label};
    use super::*;

    #[test]
    fn help_escapes_quotes_counters_lose_total_on_the_family_only() {
        let families = [
            Family::new("x_total", Kind::Counter, "under \"<overflow>\"").with(vec![], 2.0),
            Family::new("jobs", Kind::Counter, "Jobs.").with(vec![], 3.0),
            Family::new("queue_total", Kind::Gauge, "Q.").with(vec![], 1.0),
        ];
        assert_eq!(
            encode(&families),
            "# HELP x under \\\"<overflow>\\\"\n# TYPE x counter\nx_total 2\n\
             # HELP jobs Jobs.\n# TYPE jobs counter\njobs_total 3\n\
             # HELP queue_total Q.\n# TYPE queue_total gauge\nqueue_total 1\n# EOF\n"
        );
    }

    #[test]
    fn buckets_carry_exemplars_and_units_are_declared() {
        let e = Exemplar {
            trace_id: 0xabc,
            span_id: 0x12,
            value: 0.002,
            timestamp: 1.5,
        };
        let families = [Family {
            series: vec![Series::histogram(
                vec![label("f", "g")],
                &[0.1],
                [1, 0],
                &[Some(e), None],
                0.002,
            )],
            ..Family::new("d_seconds", Kind::Histogram, "D.")
        }];
        assert_eq!(
            encode(&families),
            "# HELP d_seconds D.\n# TYPE d_seconds histogram\n# UNIT d_seconds seconds\n\
             d_seconds_bucket{f=\"g\",le=\"0.1\"} 1 # {trace_id=\"00000000000000000000000000000abc\",span_id=\"0000000000000012\"} 0.002 1.500\n\
             d_seconds_bucket{f=\"g\",le=\"+Inf\"} 1\n\
             d_seconds_sum{f=\"g\"} 0.002\nd_seconds_count{f=\"g\"} 1\n# EOF\n"
        );
    }
}
