//! The Prometheus text format 0.0.4: what every scraper reads; no exemplars.

use std::fmt::Write;

use super::family::{Family, Str, Value};

/// Encodes `families` in the text format 0.0.4.
pub(crate) fn encode(families: &[Family]) -> String {
    let mut out = String::with_capacity(families.iter().map(|f| 96 + f.series.len() * 96).sum());
    for family in families {
        write_family(&mut out, family);
    }
    out
}

fn write_family(out: &mut String, f: &Family) {
    let name = &*f.name;
    let _ = writeln!(out, "# HELP {name} {}", escape_help(&f.help, false));
    let _ = writeln!(out, "# TYPE {name} {}", f.kind.text_word());
    for series in &f.series {
        match &series.value {
            Value::Number(v) => sample(out, name, "", &series.labels, None, *v),
            Value::Histogram {
                buckets,
                sum,
                count,
            } => {
                for b in buckets {
                    let le = float(b.le);
                    let le = ("le", le.as_str());
                    sample_count(out, name, "_bucket", &series.labels, Some(le), b.cumulative);
                }
                sum_and_count(out, name, &series.labels, *sum, *count);
            }
            Value::Summary {
                quantiles,
                sum,
                count,
            } => {
                for (q, v) in quantiles {
                    let q = float(*q);
                    sample(out, name, "", &series.labels, Some(("quantile", &q)), *v);
                }
                sum_and_count(out, name, &series.labels, *sum, *count);
            }
        }
    }
}

/// The `_sum` and `_count` lines of a histogram or summary (the same in both formats).
pub(crate) fn sum_and_count(
    out: &mut String,
    name: &str,
    labels: &[(Str, Str)],
    sum: f64,
    count: u64,
) {
    sample(out, name, "_sum", labels, None, sum);
    sample_count(out, name, "_count", labels, None, count);
}

/// Writes `name{labels,extra} ` (the value follows).
pub(crate) fn series_name(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(Str, Str)],
    extra: Option<(&str, &str)>,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || extra.is_some() {
        out.push('{');
        let mut first = true;
        for (k, v) in labels.iter().map(|(k, v)| (&**k, &**v)).chain(extra) {
            if !first {
                out.push(',');
            }
            first = false;
            push_label(out, k, v);
        }
        out.push('}');
    }
    out.push(' ');
}

fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(Str, Str)],
    extra: Option<(&str, &str)>,
    value: f64,
) {
    series_name(out, name, suffix, labels, extra);
    push_float(out, value);
    out.push('\n');
}

fn sample_count(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(Str, Str)],
    extra: Option<(&str, &str)>,
    value: u64,
) {
    series_name(out, name, suffix, labels, extra);
    let _ = writeln!(out, "{value}");
}

/// Appends `key="value"` with the value escaped (`\`, `"`, newline).
pub(crate) fn push_label(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push_str("=\"");
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `HELP` text escaped: `\` and newline; OpenMetrics escapes `"` too.
pub(crate) fn escape_help(help: &str, quotes: bool) -> std::borrow::Cow<'_, str> {
    if !help.contains(['\\', '\n', '"']) {
        return help.into();
    }
    let mut out = String::with_capacity(help.len() + 4);
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.into()
}

/// Appends a float as Prometheus writes it: integers without a fraction, `+Inf`, `NaN`.
pub(crate) fn push_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

/// A float as Prometheus writes it.
pub(crate) fn float(v: f64) -> String {
    let mut s = String::new();
    push_float(&mut s, v);
    s
}

#[cfg(test)]
mod tests {
    use super::super::family::{Family, Kind, Series, label};
    use super::*;

    #[test]
    fn every_kind_in_text_0_0_4() {
        let families = [
            Family::new("jobs_total", Kind::Counter, "Jobs \\ done.")
                .with(vec![label("queue", "a\"b\nc")], 3.0),
            Family {
                series: vec![Series::histogram(
                    vec![label("route", "/x")],
                    &[0.1, 1.0],
                    [2, 3, 1],
                    &[],
                    4.5,
                )],
                ..Family::new("lat_seconds", Kind::Histogram, "Latency.")
            },
            Family::new("up", Kind::Gauge, "Up.").with(vec![], 1.0),
        ];
        assert_eq!(
            encode(&families),
            "# HELP jobs_total Jobs \\\\ done.\n# TYPE jobs_total counter\n\
             jobs_total{queue=\"a\\\"b\\nc\"} 3\n\
             # HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n\
             lat_seconds_bucket{route=\"/x\",le=\"0.1\"} 2\n\
             lat_seconds_bucket{route=\"/x\",le=\"1\"} 5\n\
             lat_seconds_bucket{route=\"/x\",le=\"+Inf\"} 6\n\
             lat_seconds_sum{route=\"/x\"} 4.5\nlat_seconds_count{route=\"/x\"} 6\n\
             # HELP up Up.\n# TYPE up gauge\nup 1\n"
        );
    }
}
