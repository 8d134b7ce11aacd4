//! Metrics over OTLP, from the same store that `/metrics` serves: one source of truth.
//!
//! Every `OTEL_METRIC_EXPORT_INTERVAL` (default 60 s), and once more at shutdown, a thread
//! of its own renders the exposition (function, HTTP, health, process and the user's
//! `prometheus` metrics alike), converts it the way the OpenTelemetry Collector's
//! Prometheus receiver does (counters → cumulative monotonic sums without `_total`,
//! gauges → gauges, histograms → explicit-bucket histograms, summaries → summaries) and
//! POSTs an OTLP/HTTP protobuf `ExportMetricsServiceRequest`.
//!
//! Why not the SDK's `MeterProvider`: its data types cannot be built outside the SDK, and
//! its only asynchronous instruments are counters and gauges, so our histograms would
//! have to be recorded twice, into two sets of counters that drift.

use std::collections::HashMap;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint, metric, number_data_point,
    summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use prost::Message as _;

use super::env::{self, EnvError};

/// Whether metrics go out over OTLP: `OTEL_METRICS_EXPORTER`, or, unset, whether an
/// OTLP endpoint variable is set.
pub(crate) fn enabled() -> Result<bool, EnvError> {
    match env::var("OTEL_METRICS_EXPORTER") {
        None => Ok(env::var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
            || env::var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").is_some()),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "otlp" => Ok(true),
            // `prometheus` is what /metrics already is.
            "none" | "prometheus" => Ok(false),
            _ => Err(EnvError {
                variable: "OTEL_METRICS_EXPORTER",
                value: v,
                expected: "otlp, prometheus or none",
            }),
        },
    }
}

fn millis(variable: &'static str, default: u64) -> Result<Duration, EnvError> {
    match env::var(variable) {
        None => Ok(Duration::from_millis(default)),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
            .ok_or(EnvError {
                variable,
                value: v,
                expected: "a positive number of milliseconds",
            }),
    }
}

fn endpoint() -> String {
    if let Some(url) = env::var("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") {
        return url;
    }
    let base = env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .unwrap_or_else(|| "http://localhost:4318".to_owned());
    format!("{}/v1/metrics", base.trim_end_matches('/'))
}

/// `key=value,key2=value2`, values percent-decoded, as the OTLP exporter spec says.
fn headers() -> Vec<(String, String)> {
    let raw = env::var("OTEL_EXPORTER_OTLP_METRICS_HEADERS")
        .or_else(|| env::var("OTEL_EXPORTER_OTLP_HEADERS"))
        .unwrap_or_default();
    raw.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), percent_decode(v.trim())))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(b) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The running exporter; stopping it exports once more, then joins the thread.
pub(crate) struct Pusher {
    stop: mpsc::Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pusher")
    }
}

impl Pusher {
    pub(crate) fn start(resource: &opentelemetry_sdk::Resource) -> Result<Pusher, EnvError> {
        let interval = millis("OTEL_METRIC_EXPORT_INTERVAL", 60_000)?;
        let timeout = millis("OTEL_METRIC_EXPORT_TIMEOUT", 30_000)?;
        let url = endpoint();
        let headers = headers();
        let resource = proto_resource(resource);
        let start = SystemTime::now();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("observe-otlp-metrics".into())
            .spawn(move || {
                let client = match reqwest::blocking::Client::builder()
                    .timeout(timeout)
                    .build()
                {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("observe: OTLP metrics disabled: no HTTP client: {e}");
                        return;
                    }
                };
                let push = || {
                    let text = crate::exposition::render();
                    let request = to_request(&text, resource.clone(), start, SystemTime::now());
                    let mut post = client
                        .post(&url)
                        .header("content-type", "application/x-protobuf")
                        .body(request.encode_to_vec());
                    for (k, v) in &headers {
                        post = post.header(k.as_str(), v.as_str());
                    }
                    match post.send() {
                        Ok(r) if r.status().is_success() => {}
                        Ok(r) => {
                            eprintln!("observe: OTLP metrics export to {url}: HTTP {}", r.status())
                        }
                        Err(e) => eprintln!("observe: OTLP metrics export to {url} failed: {e}"),
                    }
                };
                loop {
                    match stopped.recv_timeout(interval) {
                        Err(mpsc::RecvTimeoutError::Timeout) => push(),
                        // Stop asked for, or the guard is gone: export the final values.
                        Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                            push();
                            return;
                        }
                    }
                }
            })
            .expect("spawning the OTLP metrics thread");
        Ok(Pusher {
            stop,
            thread: Some(thread),
        })
    }

    /// Exports once more and waits for it.
    pub(crate) fn shutdown(&mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn proto_resource(resource: &opentelemetry_sdk::Resource) -> ProtoResource {
    ProtoResource {
        attributes: resource
            .iter()
            .map(|(k, v)| string_kv(k.as_str(), &v.to_string()))
            .collect(),
        ..Default::default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Unknown,
}

type Labels = Vec<(String, String)>;

#[derive(Default, Debug)]
struct SeriesData {
    value: f64,
    /// (le, cumulative count) or (quantile, value).
    points: Vec<(f64, f64)>,
    sum: f64,
    count: u64,
}

#[derive(Debug)]
struct Family {
    name: String,
    help: String,
    kind: Kind,
    series: Vec<(Labels, SeriesData)>,
}

fn parse_float(v: &str) -> Option<f64> {
    match v {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        v => v.parse().ok(),
    }
}

fn parse_labels(text: &str) -> Labels {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if chars.next() != Some('"') {
            break;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.push((key.trim_start_matches(',').to_owned(), value));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    out
}

/// Parses the 0.0.4 text exposition into families (only what `render` writes).
fn parse(text: &str) -> Vec<Family> {
    let mut families: Vec<Family> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut helps: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some((name, help)) = rest.split_once(' ') {
                helps.insert(name.to_owned(), help.to_owned());
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                let kind = match kind {
                    "counter" => Kind::Counter,
                    "gauge" => Kind::Gauge,
                    "histogram" => Kind::Histogram,
                    "summary" => Kind::Summary,
                    _ => Kind::Unknown,
                };
                index.insert(name.to_owned(), families.len());
                families.push(Family {
                    name: name.to_owned(),
                    help: helps.remove(name).unwrap_or_default(),
                    kind,
                    series: Vec::new(),
                });
            }
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some(value) = parse_float(value) else {
            continue;
        };
        let (sample, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, parse_labels(rest.trim_end_matches('}'))),
            None => (series, Vec::new()),
        };
        // The family: the sample name itself, or without a histogram/summary suffix.
        let (at, suffix) = match index.get(sample) {
            Some(&i) => (i, ""),
            None => {
                let found = ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
                    sample
                        .strip_suffix(suffix)
                        .and_then(|base| index.get(base))
                        .map(|&i| (i, *suffix))
                });
                match found {
                    Some(f) => f,
                    None => continue,
                }
            }
        };
        let family = &mut families[at];
        let special = match family.kind {
            Kind::Histogram => "le",
            Kind::Summary => "quantile",
            _ => "",
        };
        let mut point = None;
        let key: Labels = labels
            .into_iter()
            .filter(|(k, v)| {
                if k == special {
                    point = parse_float(v);
                    false
                } else {
                    true
                }
            })
            .collect();
        let data = match family.series.iter().position(|(l, _)| *l == key) {
            Some(i) => &mut family.series[i].1,
            None => {
                family.series.push((key, SeriesData::default()));
                &mut family.series.last_mut().expect("just pushed").1
            }
        };
        match (family.kind, suffix) {
            (Kind::Histogram, "_bucket") | (Kind::Summary, "") => {
                if let Some(p) = point {
                    data.points.push((p, value));
                }
            }
            (_, "_sum") => data.sum = value,
            (_, "_count") => data.count = value as u64,
            _ => data.value = value,
        }
    }
    families
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn attributes(labels: &Labels) -> Vec<KeyValue> {
    labels.iter().map(|(k, v)| string_kv(k, v)).collect()
}

fn unit(name: &str) -> &'static str {
    if name.ends_with("_seconds") {
        "s"
    } else if name.ends_with("_bytes") {
        "By"
    } else {
        ""
    }
}

/// The OTLP request for one exposition.
fn to_request(
    text: &str,
    resource: ProtoResource,
    start: SystemTime,
    now: SystemTime,
) -> ExportMetricsServiceRequest {
    let (start, now) = (nanos(start), nanos(now));
    let cumulative = AggregationTemporality::Cumulative as i32;
    let number = |labels: &Labels, v: f64| NumberDataPoint {
        attributes: attributes(labels),
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    };
    let metrics = parse(text)
        .into_iter()
        .map(|f| {
            let data = match f.kind {
                Kind::Counter => metric::Data::Sum(Sum {
                    data_points: f.series.iter().map(|(l, d)| number(l, d.value)).collect(),
                    aggregation_temporality: cumulative,
                    is_monotonic: true,
                }),
                Kind::Gauge | Kind::Unknown => metric::Data::Gauge(Gauge {
                    data_points: f.series.iter().map(|(l, d)| number(l, d.value)).collect(),
                }),
                Kind::Histogram => metric::Data::Histogram(Histogram {
                    data_points: f
                        .series
                        .iter()
                        .map(|(l, d)| {
                            let mut points = d.points.clone();
                            points.sort_by(|a, b| a.0.total_cmp(&b.0));
                            let mut previous = 0.0;
                            let mut counts = Vec::with_capacity(points.len());
                            let mut bounds = Vec::with_capacity(points.len());
                            for (le, cumulative) in &points {
                                counts.push((cumulative - previous).max(0.0) as u64);
                                previous = *cumulative;
                                if le.is_finite() {
                                    bounds.push(*le);
                                }
                            }
                            HistogramDataPoint {
                                attributes: attributes(l),
                                start_time_unix_nano: start,
                                time_unix_nano: now,
                                count: d.count,
                                sum: Some(d.sum),
                                bucket_counts: counts,
                                explicit_bounds: bounds,
                                ..Default::default()
                            }
                        })
                        .collect(),
                    aggregation_temporality: cumulative,
                }),
                Kind::Summary => metric::Data::Summary(Summary {
                    data_points: f
                        .series
                        .iter()
                        .map(|(l, d)| SummaryDataPoint {
                            attributes: attributes(l),
                            start_time_unix_nano: start,
                            time_unix_nano: now,
                            count: d.count,
                            sum: d.sum,
                            quantile_values: d
                                .points
                                .iter()
                                .map(|(q, v)| ValueAtQuantile {
                                    quantile: *q,
                                    value: *v,
                                })
                                .collect(),
                            ..Default::default()
                        })
                        .collect(),
                }),
            };
            let name = if f.kind == Kind::Counter {
                f.name.strip_suffix("_total").unwrap_or(&f.name).to_owned()
            } else {
                f.name.clone()
            };
            Metric {
                unit: unit(&name).to_owned(),
                name,
                description: f.help,
                data: Some(data),
                ..Default::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "observe".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP jobs_total Jobs.\n# TYPE jobs_total counter\njobs_total{queue=\"a\\\"b\"} 3\n\
        # HELP lat_seconds Latency.\n# TYPE lat_seconds histogram\n\
        lat_seconds_bucket{route=\"/x\",le=\"0.1\"} 2\nlat_seconds_bucket{route=\"/x\",le=\"1\"} 5\n\
        lat_seconds_bucket{route=\"/x\",le=\"+Inf\"} 6\nlat_seconds_sum{route=\"/x\"} 4.5\n\
        lat_seconds_count{route=\"/x\"} 6\n# HELP up Up.\n# TYPE up gauge\nup 1\n";

    #[test]
    fn the_exposition_becomes_otlp_sums_histograms_and_gauges() {
        let t = UNIX_EPOCH + Duration::from_secs(100);
        let req = to_request(
            TEXT,
            ProtoResource::default(),
            t,
            t + Duration::from_secs(5),
        );
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
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
        assert_eq!(p.attributes, vec![string_kv("route", "/x")]);
        assert_eq!(p.time_unix_nano - p.start_time_unix_nano, 5_000_000_000);
        assert!(matches!(metrics[2].data, Some(metric::Data::Gauge(_))));
    }

    #[test]
    fn header_values_are_percent_decoded() {
        assert_eq!(percent_decode("Bearer%20abc%3D"), "Bearer abc=");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
