//! OpenTelemetry SDK instruments on `/metrics` and in the OTLP push: the meter provider
//! has a manual reader that this collector reads at scrape (or push) time, converting
//! each instrument as the OpenTelemetry "Prometheus and OpenMetrics compatibility"
//! specification says:
//!
//! - the name: characters outside `[a-zA-Z0-9_:]` become `_` (runs of `_` collapse), the
//!   unit's word is appended (`ms` → `_milliseconds`, `By` → `_bytes`, `1` on a gauge →
//!   `_ratio`, `{…}` annotations dropped, `m/s` → `_meters_per_second`), and a monotonic
//!   sum ends in `_total`;
//! - monotonic sums are counters, non-monotonic sums and gauges are gauges, explicit-bucket
//!   histograms are histograms (exponential histograms are left out, logged once);
//! - the instrumentation scope is the `otel_scope_name` / `otel_scope_version` labels;
//! - the resource is one `target_info` gauge (value 1) with its attributes as labels.
//!
//! There is one reader and one store (the SDK's): what a scrape shows and what a push
//! sends at the same moment are the same numbers.

use std::borrow::Cow;
use std::sync::{Arc, Once, Weak};
use std::time::Duration;

use opentelemetry::{KeyValue, Value as OtelValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{InstrumentKind, ManualReader, Pipeline, Temporality};

use crate::exposition::collector::{self, Collector};
use crate::exposition::{Family, Kind, Origin, Series, Str, label};

/// The reader given to the meter provider; the collector keeps a second handle.
#[derive(Clone, Debug)]
pub(crate) struct SharedReader(Arc<ManualReader>);

impl SharedReader {
    pub(crate) fn new() -> SharedReader {
        SharedReader(Arc::new(ManualReader::builder().build()))
    }
}

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline)
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

/// The collector: reads the SDK at scrape time.
struct SdkCollector {
    reader: SharedReader,
    resource: Resource,
}

impl Collector for SdkCollector {
    fn collect(&self, out: &mut Vec<Family>) {
        let mut rm = ResourceMetrics::default();
        if self.reader.collect(&mut rm).is_err() {
            // Shut down (the guard was dropped): nothing more to read.
            return;
        }
        families(&rm, &self.resource, out);
    }
}

/// Makes the reader's instruments part of every scrape and push from now on.
pub(crate) fn register(reader: SharedReader, resource: Resource) {
    let collector: &'static SdkCollector = Box::leak(Box::new(SdkCollector { reader, resource }));
    collector::register(collector);
}

/// Converts one collection, `target_info` first.
pub(crate) fn families(rm: &ResourceMetrics, resource: &Resource, out: &mut Vec<Family>) {
    let mut converted: Vec<Family> = Vec::new();
    for scope in rm.scope_metrics() {
        let scope_name = scope.scope().name().to_owned();
        let scope_version = scope.scope().version().unwrap_or_default().to_owned();
        for metric in scope.metrics() {
            let Some(mut family) = convert(
                metric.name(),
                metric.description(),
                metric.unit(),
                metric.data(),
            ) else {
                continue;
            };
            for series in &mut family.series {
                series
                    .labels
                    .push(label("otel_scope_name", scope_name.clone()));
                if !scope_version.is_empty() {
                    series
                        .labels
                        .push(label("otel_scope_version", scope_version.clone()));
                }
            }
            let sum = is_sum(metric.data());
            family.origin = Origin::OpenTelemetry {
                sum,
                name: metric.name().to_owned(),
                unit: metric.unit().to_owned(),
                scope: scope_name.clone(),
                scope_version: scope_version.clone(),
            };
            // Two meters with one instrument name: one family, told apart by scope labels.
            match converted
                .iter_mut()
                .find(|f| f.name == family.name && f.kind == family.kind)
            {
                Some(existing) => existing.series.append(&mut family.series),
                None => converted.push(family),
            }
        }
    }
    if converted.is_empty() {
        return;
    }
    let mut labels: Vec<(Str, Str)> = resource
        .iter()
        .map(|(k, v)| label(label_name(k.as_str()), value_text(v)))
        .collect();
    labels.sort();
    out.push(
        Family::new(
            "target_info",
            Kind::Gauge,
            "Target metadata: the OpenTelemetry resource.",
        )
        .with(labels, 1.0),
    );
    out.extend(converted);
}

fn is_sum(data: &AggregatedMetrics) -> bool {
    matches!(
        data,
        AggregatedMetrics::F64(MetricData::Sum(_))
            | AggregatedMetrics::U64(MetricData::Sum(_))
            | AggregatedMetrics::I64(MetricData::Sum(_))
    )
}

fn value_text(v: &OtelValue) -> String {
    v.to_string()
}

fn attributes<'a>(attrs: impl Iterator<Item = &'a KeyValue>) -> Vec<(Str, Str)> {
    attrs
        .map(|kv| label(label_name(kv.key.as_str()), value_text(&kv.value)))
        .collect()
}

macro_rules! numbers {
    ($data:expr, $kind:ident, $family:ident) => {
        match $data {
            MetricData::Gauge(g) => {
                $kind = Kind::Gauge;
                for p in g.data_points() {
                    $family.push(attributes(p.attributes()), p.value() as f64);
                }
            }
            MetricData::Sum(s) => {
                $kind = if s.is_monotonic() { Kind::Counter } else { Kind::Gauge };
                for p in s.data_points() {
                    $family.push(attributes(p.attributes()), p.value() as f64);
                }
            }
            MetricData::Histogram(h) => {
                $kind = Kind::Histogram;
                for p in h.data_points() {
                    let bounds: Vec<f64> = p.bounds().collect();
                    $family.series.push(Series::histogram(
                        attributes(p.attributes()),
                        &bounds,
                        p.bucket_counts(),
                        &[],
                        p.sum() as f64,
                    ));
                }
            }
            MetricData::ExponentialHistogram(_) => {
                static WARNED: Once = Once::new();
                WARNED.call_once(|| {
                    tracing::warn!(
                        target: "observe",
                        "exponential histograms are not exposed on /metrics (Prometheus text has no \
                         native histograms); use the default explicit-bucket aggregation"
                    )
                });
                return None;
            }
        }
    };
}

/// One instrument as a family; `None` for what the text formats cannot carry.
fn convert(name: &str, help: &str, unit: &str, data: &AggregatedMetrics) -> Option<Family> {
    let mut family = Family::new(String::new(), Kind::Unknown, help.to_owned());
    let kind;
    match data {
        AggregatedMetrics::F64(d) => numbers!(d, kind, family),
        AggregatedMetrics::U64(d) => numbers!(d, kind, family),
        AggregatedMetrics::I64(d) => numbers!(d, kind, family),
    }
    if help.is_empty() {
        // promtool wants help text on every family: say where it came from.
        family.help = format!("OpenTelemetry instrument {name}.").into();
    }
    let (name, unit_word) = metric_name(name, unit, kind);
    Some(Family {
        name: name.into(),
        unit: unit_word.into(),
        kind,
        ..family
    })
}

/// The Prometheus name of an instrument and the unit word it ends with.
pub(crate) fn metric_name(name: &str, unit: &str, kind: Kind) -> (String, String) {
    let mut out = sanitize(name, true);
    let mut word = unit_word(unit);
    if word.is_empty() && unit == "1" && kind == Kind::Gauge {
        word = "ratio".to_owned();
    }
    if !word.is_empty() && !out.ends_with(&format!("_{word}")) && out != word {
        out.push('_');
        out.push_str(&word);
    }
    if kind == Kind::Counter && !out.ends_with("_total") {
        out.push_str("_total");
    }
    (out, word)
}

/// A label name: invalid characters become `_`; a leading digit gets `key_`.
fn label_name(key: &str) -> String {
    let s = sanitize(key, false);
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        format!("key_{s}")
    } else {
        s
    }
}

fn sanitize(name: &str, metric: bool) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let ok = c.is_ascii_alphanumeric() || c == '_' || (metric && c == ':');
        let c = if ok { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    if metric && out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

fn unit_name(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tebibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        _ => return None,
    })
}

fn per_unit_name(unit: &str) -> Option<&'static str> {
    Some(match unit {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => return None,
    })
}

/// The unit's word: UCUM names spelled out, `{annotations}` dropped, `a/b` as
/// `a_per_b`; an unknown unit is kept, sanitized.
fn unit_word(unit: &str) -> String {
    let without_braces: String = {
        let mut s = String::new();
        let mut depth = 0;
        for c in unit.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth > 0 => depth -= 1,
                c if depth == 0 => s.push(c),
                _ => {}
            }
        }
        s
    };
    let unit = without_braces.trim();
    if unit.is_empty() || unit == "1" {
        return String::new();
    }
    let word = |u: &str| {
        unit_name(u)
            .map(Cow::Borrowed)
            .unwrap_or_else(|| Cow::Owned(sanitize(u, false)))
    };
    let out = match unit.split_once('/') {
        Some((a, b)) => {
            let per = per_unit_name(b)
                .map(Cow::Borrowed)
                .unwrap_or_else(|| word(b));
            if a.is_empty() || a == "1" {
                format!("per_{per}")
            } else {
                format!("{}_per_{per}", word(a))
            }
        }
        None => word(unit).into_owned(),
    };
    out.trim_matches('_').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_compatibility_specification() {
        let c = |n, u, k| metric_name(n, u, k).0;
        assert_eq!(
            c("payments.charges", "", Kind::Counter),
            "payments_charges_total"
        );
        assert_eq!(
            c("http.client.duration", "ms", Kind::Histogram),
            "http_client_duration_milliseconds"
        );
        assert_eq!(c("queue.size", "By", Kind::Gauge), "queue_size_bytes");
        assert_eq!(
            c("cpu.utilization", "1", Kind::Gauge),
            "cpu_utilization_ratio"
        );
        assert_eq!(
            c("cpu.utilization", "1", Kind::Counter),
            "cpu_utilization_total"
        );
        assert_eq!(c("requests", "{request}", Kind::Counter), "requests_total");
        assert_eq!(c("speed", "m/s", Kind::Gauge), "speed_meters_per_second");
        assert_eq!(c("rate", "1/s", Kind::Gauge), "rate_per_second");
        assert_eq!(c("jobs_total", "", Kind::Counter), "jobs_total");
        assert_eq!(
            c("latency_seconds", "s", Kind::Histogram),
            "latency_seconds"
        );
        assert_eq!(c("a..b--c", "", Kind::Gauge), "a_b_c");
        assert_eq!(c("2xx.count", "", Kind::Gauge), "_2xx_count");
        assert_eq!(label_name("http.route"), "http_route");
        assert_eq!(label_name("0day"), "key_0day");
    }
}
