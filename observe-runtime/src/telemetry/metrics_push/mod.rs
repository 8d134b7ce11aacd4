//! Metrics over OTLP, from the same store that `/metrics` serves: one source of truth.
//!
//! Every `OTEL_METRIC_EXPORT_INTERVAL` (default 60 s), and once more at shutdown, a thread
//! of its own gathers the same families `/metrics` serves (function, HTTP, health,
//! process, the user's `prometheus` metrics and OpenTelemetry instruments alike),
//! converts them directly ([`encode`]) and sends an OTLP `ExportMetricsServiceRequest`
//! with the resource: POSTed as OTLP/HTTP protobuf, or, with
//! `OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL=grpc` (feature `grpc`), over OTLP/gRPC.
//!
//! Why not the SDK's periodic exporter: our store is not the SDK's (its data types
//! cannot be built outside the SDK, and its only asynchronous instruments are counters
//! and gauges, so our histograms would be recorded twice). Instead the SDK's own
//! instruments are read by a manual reader into the same family model, so one push
//! carries both.

mod encode;
#[cfg(feature = "grpc")]
mod grpc;

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use prost::Message as _;

use super::InitError;
use super::dropped::{self, Lost, Reason};
use super::env::{self, EnvError};
use super::tls::{self, Signal};
use crate::health::checks::{percent_decode, with_sources};
use encode::{proto_resource, to_request};

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

/// Data points in the push being sent (0 when none is).
static PUSHING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

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
    pub(crate) fn start(resource: &opentelemetry_sdk::Resource) -> Result<Pusher, InitError> {
        let interval = millis("OTEL_METRIC_EXPORT_INTERVAL", 60_000)?;
        let headers = headers();
        #[cfg(feature = "grpc")]
        let mut over_grpc = if env::otlp_grpc(Signal::Metrics)? {
            Some(grpc::GrpcPush::new(&headers)?)
        } else {
            None
        };
        #[cfg(not(feature = "grpc"))]
        env::otlp_grpc(Signal::Metrics)?; // refuses `grpc` without the feature, saying so
        let url = tls::http_endpoint(Signal::Metrics);
        let gzip = tls::gzip(Signal::Metrics)?;
        // Same TLS, timeout and compression settings as the other signals.
        let agent = tls::agent(Signal::Metrics)?;
        let resource = proto_resource(resource);
        let start = SystemTime::now();
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("observe-otlp-metrics".into())
            .spawn(move || {
                // Mutable only for the gRPC client.
                #[cfg_attr(not(feature = "grpc"), allow(unused_mut))]
                let mut push = || {
                    let families = crate::exposition::gather();
                    let points: usize = families.iter().map(|f| f.series.len()).sum();
                    let request = to_request(&families, resource.clone(), start, SystemTime::now());
                    #[cfg(feature = "grpc")]
                    if let Some(grpc) = &mut over_grpc {
                        PUSHING.store(points as u64, Ordering::Release);
                        let sent = grpc.send(request);
                        let points = PUSHING.swap(0, Ordering::AcqRel);
                        if let Err(failure) = sent {
                            dropped::report(
                                Lost::MetricPoints,
                                Reason::ExportFailed,
                                points,
                                &failure,
                            );
                        }
                        return;
                    }
                    let mut body = request.encode_to_vec();
                    let mut post = agent
                        .post(&url)
                        .header("content-type", "application/x-protobuf");
                    if gzip {
                        post = post.header("content-encoding", "gzip");
                        body = gzipped(&body);
                    }
                    for (k, v) in &headers {
                        post = post.header(k.as_str(), v.as_str());
                    }
                    PUSHING.store(points as u64, Ordering::Release);
                    let sent = post.send(&body[..]);
                    // Zero unless the flush budget ran out meanwhile (then counted there).
                    let points = PUSHING.swap(0, Ordering::AcqRel) as usize;
                    let failure = match sent {
                        Ok(r) if r.status().is_success() => return,
                        Ok(r) => format!("{url} answered HTTP {}", r.status()),
                        Err(e) => format!("{url}: {}", with_sources(&e)),
                    };
                    dropped::report(
                        Lost::MetricPoints,
                        Reason::ExportFailed,
                        points as u64,
                        &failure,
                    );
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

    /// The points of a push in progress, if any: what a shutdown that cannot wait for it
    /// loses.
    pub(crate) fn abandon() -> u64 {
        PUSHING.swap(0, Ordering::AcqRel)
    }

    /// Exports once more and waits for it.
    pub(crate) fn shutdown(&mut self) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn gzipped(body: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body).expect("writing to a Vec");
    encoder.finish().expect("writing to a Vec")
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_percent_decoded() {
        assert_eq!(percent_decode("Bearer%20abc%3D"), "Bearer abc=");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
