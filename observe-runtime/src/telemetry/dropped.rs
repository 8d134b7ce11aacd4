//! No silent loss: telemetry that could not be delivered is counted on `/metrics` as
//! `observe_telemetry_dropped_total{signal, reason}` and logged at most once per
//! [`LOG_INTERVAL`] per signal and reason, with the count since the last line.
//!
//! Reasons: `queue_full` (the batch queue was full: spans and log records are refused at
//! the door, counted here, rather than dropped inside the SDK) and `export_failed` (the
//! receiver was unreachable, refused the TLS handshake, or answered with an error) and
//! `shutdown_timeout` (still queued or being sent when the flush budget ran out at
//! shutdown: the process exits without waiting for a collector that does not answer).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::exposition::collector::{self, Collector};
use crate::exposition::throttle::Throttle;
use crate::exposition::{Family, Kind, label};

/// At most one log line per signal and reason in this interval.
pub(crate) const LOG_INTERVAL: Duration = Duration::from_secs(10);

const SIGNALS: [&str; 3] = ["traces", "metrics", "logs"];
const REASONS: [&str; 3] = ["queue_full", "export_failed", "shutdown_timeout"];

/// Which signal lost data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lost {
    Spans = 0,
    #[cfg_attr(not(feature = "otlp-metrics"), allow(dead_code))]
    MetricPoints = 1,
    #[cfg_attr(not(feature = "otlp"), allow(dead_code))]
    LogRecords = 2,
}

/// Why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    QueueFull = 0,
    ExportFailed = 1,
    ShutdownTimeout = 2,
}

struct Dropped {
    counts: [[AtomicU64; 3]; 3],
    /// Per (signal, reason).
    logged: Mutex<[[Throttle; 3]; 3]>,
}

static DROPPED: Dropped = Dropped {
    counts: [const { [const { AtomicU64::new(0) }; 3] }; 3],
    logged: Mutex::new([[Throttle::NEW; 3]; 3]),
};

struct DroppedCollector;

/// Puts the counters on `/metrics` (at zero until something is lost).
pub(crate) fn register() {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| collector::register(&DroppedCollector));
}

impl Collector for DroppedCollector {
    fn collect(&self, out: &mut Vec<Family>) {
        let mut family = Family::new(
            "observe_telemetry_dropped_total",
            Kind::Counter,
            "Telemetry observe could not deliver, by signal (traces: spans, metrics: data points, logs: log records) and reason (queue_full, export_failed, shutdown_timeout).",
        );
        for (s, signal) in SIGNALS.iter().enumerate() {
            for (r, reason) in REASONS.iter().enumerate() {
                family.push(
                    vec![label("signal", *signal), label("reason", *reason)],
                    DROPPED.counts[s][r].load(Relaxed) as f64,
                );
            }
        }
        out.push(family);
    }
}

/// How many were lost so far.
#[cfg(test)]
pub(crate) fn count(lost: Lost, reason: Reason) -> u64 {
    DROPPED.counts[lost as usize][reason as usize].load(Relaxed)
}

/// Counts `n` lost items and logs, at most once per interval, what was lost and why.
pub(crate) fn report(lost: Lost, reason: Reason, n: u64, detail: &dyn std::fmt::Display) {
    if n == 0 {
        return;
    }
    DROPPED.counts[lost as usize][reason as usize].fetch_add(n, Relaxed);
    let due = DROPPED.logged.lock().unwrap_or_else(|p| p.into_inner())[lost as usize]
        [reason as usize]
        .note(n, LOG_INTERVAL);
    if let Some(since) = due {
        let what = match lost {
            Lost::Spans => "spans",
            Lost::MetricPoints => "metric data points",
            Lost::LogRecords => "log records",
        };
        let why = REASONS[reason as usize];
        // Logged with telemetry suppressed: a line about lost log records must not
        // become a log record that is lost in turn.
        let _quiet = opentelemetry::Context::enter_telemetry_suppressed_scope();
        tracing::warn!(
            target: "observe::telemetry",
            signal = SIGNALS[lost as usize],
            reason = why,
            dropped = since,
            "{since} {what} dropped ({why}): {detail}; counted in observe_telemetry_dropped_total, \
             logged at most every {}s",
            LOG_INTERVAL.as_secs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_are_counted_and_exposed() {
        register();
        let before = count(Lost::MetricPoints, Reason::ExportFailed);
        report(Lost::MetricPoints, Reason::ExportFailed, 3, &"test");
        report(Lost::MetricPoints, Reason::ExportFailed, 2, &"test");
        assert_eq!(count(Lost::MetricPoints, Reason::ExportFailed), before + 5);
        let text = crate::exposition::render();
        assert!(
            text.contains(&format!(
                "observe_telemetry_dropped_total{{signal=\"metrics\",reason=\"export_failed\"}} {}",
                before + 5
            )),
            "{text}"
        );
        assert!(
            text.contains(
                "observe_telemetry_dropped_total{signal=\"logs\",reason=\"queue_full\"} 0"
            )
        );
    }
}
