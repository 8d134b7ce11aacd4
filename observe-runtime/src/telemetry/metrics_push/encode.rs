//! The family model as an OTLP `ExportMetricsServiceRequest`: observe's and the
//! application's `prometheus` families under the `observe` scope, named as an OpenTelemetry
//! Collector's Prometheus receiver names them (counters without `_total`); OpenTelemetry
//! instruments under their own scope, with their own name and unit; `target_info` is the
//! resource itself, so it is not sent as a metric.

use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    self as pb, AggregationTemporality, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, SummaryDataPoint, metric, number_data_point,
    summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;

use crate::exposition::{Family, Kind, Origin, Series, Str, Value};

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

/// The resource as OTLP attributes.
pub(crate) fn proto_resource(resource: &opentelemetry_sdk::Resource) -> ProtoResource {
    ProtoResource {
        attributes: resource
            .iter()
            .map(|(k, v)| string_kv(k.as_str(), &v.to_string()))
            .collect(),
        ..Default::default()
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn attributes(labels: &[(Str, Str)]) -> Vec<KeyValue> {
    labels
        .iter()
        .filter(|(k, _)| k != "otel_scope_name" && k != "otel_scope_version")
        .map(|(k, v)| string_kv(k, v))
        .collect()
}

fn ucum(word: &str) -> &str {
    match word {
        "seconds" => "s",
        "bytes" => "By",
        other => other,
    }
}

struct Times {
    start: u64,
    now: u64,
}

fn number_points(series: &[Series], t: &Times) -> Vec<NumberDataPoint> {
    series
        .iter()
        .filter_map(|s| match s.value {
            Value::Number(v) => Some(NumberDataPoint {
                attributes: attributes(&s.labels),
                start_time_unix_nano: t.start,
                time_unix_nano: t.now,
                value: Some(number_data_point::Value::AsDouble(v)),
                ..Default::default()
            }),
            _ => None,
        })
        .collect()
}

fn histogram_points(series: &[Series], t: &Times) -> Vec<HistogramDataPoint> {
    series
        .iter()
        .filter_map(|s| match &s.value {
            Value::Histogram {
                buckets,
                sum,
                count,
            } => {
                let mut previous = 0;
                let mut counts = Vec::with_capacity(buckets.len());
                let mut bounds = Vec::with_capacity(buckets.len());
                let mut exemplars = Vec::new();
                for b in buckets {
                    counts.push(b.cumulative.saturating_sub(previous));
                    previous = b.cumulative;
                    if b.le.is_finite() {
                        bounds.push(b.le);
                    }
                    if let Some(e) = b.exemplar {
                        exemplars.push(pb::Exemplar {
                            time_unix_nano: (e.timestamp * 1e9) as u64,
                            trace_id: e.trace_id.to_be_bytes().to_vec(),
                            span_id: e.span_id.to_be_bytes().to_vec(),
                            value: Some(pb::exemplar::Value::AsDouble(e.value)),
                            ..Default::default()
                        });
                    }
                }
                Some(HistogramDataPoint {
                    attributes: attributes(&s.labels),
                    start_time_unix_nano: t.start,
                    time_unix_nano: t.now,
                    count: *count,
                    sum: Some(*sum),
                    bucket_counts: counts,
                    explicit_bounds: bounds,
                    exemplars,
                    ..Default::default()
                })
            }
            _ => None,
        })
        .collect()
}

fn summary_points(series: &[Series], t: &Times) -> Vec<SummaryDataPoint> {
    series
        .iter()
        .filter_map(|s| match &s.value {
            Value::Summary {
                quantiles,
                sum,
                count,
            } => Some(SummaryDataPoint {
                attributes: attributes(&s.labels),
                start_time_unix_nano: t.start,
                time_unix_nano: t.now,
                count: *count,
                sum: *sum,
                quantile_values: quantiles
                    .iter()
                    .map(|(q, v)| ValueAtQuantile {
                        quantile: *q,
                        value: *v,
                    })
                    .collect(),
                ..Default::default()
            }),
            _ => None,
        })
        .collect()
}

fn metric(f: &Family, t: &Times) -> Metric {
    let cumulative = AggregationTemporality::Cumulative as i32;
    let (name, unit, sum) = match &f.origin {
        Origin::OpenTelemetry {
            name, unit, sum, ..
        } => (name.clone(), unit.clone(), *sum),
        Origin::Prometheus => {
            let name = if f.kind == Kind::Counter {
                f.name.strip_suffix("_total").unwrap_or(&f.name)
            } else {
                &f.name
            };
            (name.to_owned(), ucum(&f.unit).to_owned(), false)
        }
    };
    let data = match f.kind {
        Kind::Counter => metric::Data::Sum(pb::Sum {
            data_points: number_points(&f.series, t),
            aggregation_temporality: cumulative,
            is_monotonic: true,
        }),
        Kind::Gauge if sum => metric::Data::Sum(pb::Sum {
            data_points: number_points(&f.series, t),
            aggregation_temporality: cumulative,
            is_monotonic: false,
        }),
        Kind::Gauge | Kind::Unknown => metric::Data::Gauge(pb::Gauge {
            data_points: number_points(&f.series, t),
        }),
        Kind::Histogram => metric::Data::Histogram(pb::Histogram {
            data_points: histogram_points(&f.series, t),
            aggregation_temporality: cumulative,
        }),
        Kind::Summary => metric::Data::Summary(pb::Summary {
            data_points: summary_points(&f.series, t),
        }),
    };
    Metric {
        name,
        unit,
        description: f.help.to_string(),
        data: Some(data),
        ..Default::default()
    }
}

/// The OTLP request for one snapshot of families.
pub(crate) fn to_request(
    families: &[Family],
    resource: ProtoResource,
    start: SystemTime,
    now: SystemTime,
) -> ExportMetricsServiceRequest {
    let t = Times {
        start: nanos(start),
        now: nanos(now),
    };
    let mut scopes: Vec<ScopeMetrics> = vec![ScopeMetrics {
        scope: Some(InstrumentationScope {
            name: "observe".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        }),
        ..Default::default()
    }];
    for f in families {
        let (scope, version) = match &f.origin {
            Origin::OpenTelemetry { .. } if f.name == "target_info" => continue,
            Origin::OpenTelemetry {
                scope,
                scope_version,
                ..
            } => (scope.as_str(), scope_version.as_str()),
            Origin::Prometheus if f.name == "target_info" => continue,
            Origin::Prometheus => ("observe", env!("CARGO_PKG_VERSION")),
        };
        let at = match scopes.iter().position(|s| {
            s.scope
                .as_ref()
                .is_some_and(|sc| sc.name == scope && sc.version == version)
        }) {
            Some(i) => i,
            None => {
                scopes.push(ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: scope.to_owned(),
                        version: version.to_owned(),
                        ..Default::default()
                    }),
                    ..Default::default()
                });
                scopes.len() - 1
            }
        };
        scopes[at].metrics.push(metric(f, &t));
    }
    scopes.retain(|s| !s.metrics.is_empty());
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource),
            scope_metrics: scopes,
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::label;
    use std::time::Duration;

    #[test]
    fn families_become_otlp_sums_histograms_and_gauges() {
        let families = vec![
            Family::new("jobs_total", Kind::Counter, "Jobs.")
                .with(vec![label("queue", "a\"b")], 3.0),
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
            Family {
                origin: Origin::OpenTelemetry {
                    name: "queue.depth".into(),
                    unit: "{item}".into(),
                    scope: "payments".into(),
                    scope_version: String::new(),
                    sum: true,
                },
                ..Family::new("queue_depth", Kind::Gauge, "Depth.").with(
                    vec![label("otel_scope_name", "payments"), label("q", "x")],
                    -2.0,
                )
            },
        ];
        let t = UNIX_EPOCH + Duration::from_secs(100);
        let req = to_request(
            &families,
            ProtoResource::default(),
            t,
            t + Duration::from_secs(5),
        );
        let scopes = &req.resource_metrics[0].scope_metrics;
        let metrics = &scopes[0].metrics;
        assert_eq!(
            metrics.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["jobs", "lat_seconds", "up"]
        );
        let Some(metric::Data::Sum(sum)) = &metrics[0].data else {
            panic!("counter → sum")
        };
        assert!(sum.is_monotonic);
        assert_eq!(
            sum.data_points[0].attributes,
            vec![string_kv("queue", "a\"b")]
        );
        assert_eq!(
            sum.data_points[0].value,
            Some(number_data_point::Value::AsDouble(3.0))
        );
        let Some(metric::Data::Histogram(h)) = &metrics[1].data else {
            panic!("histogram")
        };
        let p = &h.data_points[0];
        assert_eq!(metrics[1].unit, "s");
        assert_eq!(p.explicit_bounds, vec![0.1, 1.0]);
        assert_eq!(p.bucket_counts, vec![2, 3, 1], "cumulative → per bucket");
        assert_eq!((p.count, p.sum), (6, Some(4.5)));
        assert_eq!(p.time_unix_nano - p.start_time_unix_nano, 5_000_000_000);
        assert!(matches!(metrics[2].data, Some(metric::Data::Gauge(_))));
        // The OpenTelemetry instrument: its own scope, name and unit; an up-down sum.
        assert_eq!(scopes[1].scope.as_ref().unwrap().name, "payments");
        let m = &scopes[1].metrics[0];
        assert_eq!(
            (m.name.as_str(), m.unit.as_str()),
            ("queue.depth", "{item}")
        );
        let Some(metric::Data::Sum(s)) = &m.data else {
            panic!("up-down counter → non-monotonic sum")
        };
        assert!(!s.is_monotonic);
        assert_eq!(s.data_points[0].attributes, vec![string_kv("q", "x")]);
    }
}
