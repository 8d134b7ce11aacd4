//! `health_check_status{check, critical}`, `health_check_duration_seconds{check}`,
//! `health_check_failures_total{check, reason}`: one series set per declared check, so
//! the cardinality is fixed by the code.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::exposition::collector::{Collector, Registered};
use crate::exposition::{Family, Kind, Series, label};

/// Bounds for check durations (seconds): checks are bounded by timeouts of about a second.
const BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

#[derive(Default)]
struct CheckSeries {
    critical: bool,
    up: Option<bool>,
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    failures: [u64; 3],
    history: VecDeque<Run>,
}

/// How many runs of each check the status page shows.
pub(crate) const HISTORY: usize = 30;

/// One run of a check, as the status page shows it.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    pub at: SystemTime,
    /// The run itself passed (the reported status may lag, by the thresholds).
    pub passed: bool,
    pub seconds: f64,
    /// `error`, `timeout` or `panic` for a failed run.
    pub reason: Option<&'static str>,
}

/// A check with its recent runs, oldest first.
#[derive(Clone, Debug)]
pub(crate) struct CheckView {
    pub name: &'static str,
    pub critical: bool,
    /// The reported status (after thresholds), `None` before the first run.
    pub up: Option<bool>,
    pub runs: Vec<Run>,
}

const REASONS: [&str; 3] = ["error", "timeout", "panic"];

#[derive(Default)]
pub(crate) struct HealthMetrics {
    checks: Mutex<BTreeMap<&'static str, CheckSeries>>,
}

pub(crate) fn metrics() -> &'static HealthMetrics {
    static METRICS: Registered<HealthMetrics> = Registered::new(HealthMetrics::default);
    METRICS.get()
}

impl HealthMetrics {
    pub(crate) fn declare(&self, check: &'static str, critical: bool) {
        let mut all = self.checks.lock().unwrap_or_else(|p| p.into_inner());
        all.entry(check).or_default().critical = critical;
    }

    pub(crate) fn observe(
        &self,
        check: &'static str,
        up: bool,
        duration: Duration,
        reason: Option<&str>,
    ) {
        let mut all = self.checks.lock().unwrap_or_else(|p| p.into_inner());
        let s = all.entry(check).or_default();
        s.up = Some(up);
        let secs = duration.as_secs_f64();
        let i = BUCKETS.iter().filter(|&&b| b < secs).count();
        s.buckets[i] += 1;
        s.sum += secs;
        let reason = reason.and_then(|r| REASONS.iter().position(|x| *x == r));
        if let Some(r) = reason {
            s.failures[r] += 1;
        }
        if s.history.len() == HISTORY {
            s.history.pop_front();
        }
        s.history.push_back(Run {
            at: SystemTime::now(),
            passed: reason.is_none(),
            seconds: secs,
            reason: reason.map(|r| REASONS[r]),
        });
    }

    /// Every declared check with its recent runs, by name.
    pub(crate) fn views(&self) -> Vec<CheckView> {
        let all = self.checks.lock().unwrap_or_else(|p| p.into_inner());
        all.iter()
            .map(|(name, s)| CheckView {
                name,
                critical: s.critical,
                up: s.up,
                runs: s.history.iter().cloned().collect(),
            })
            .collect()
    }
}

impl Collector for HealthMetrics {
    fn collect(&self, out: &mut Vec<Family>) {
        let all = self.checks.lock().unwrap_or_else(|p| p.into_inner());
        if all.is_empty() {
            return;
        }
        let mut status = Family::new(
            "health_check_status",
            Kind::Gauge,
            "Reported status of each health check: 1 passing, 0 failing (after thresholds); absent before the first run.",
        );
        let mut durations = Family::new(
            "health_check_duration_seconds",
            Kind::Histogram,
            "Duration of health check runs.",
        );
        let mut failures = Family::new(
            "health_check_failures_total",
            Kind::Counter,
            "Failed health check runs, by reason (error, timeout, panic).",
        );
        for (name, s) in all.iter() {
            if let Some(up) = s.up {
                let critical = if s.critical { "true" } else { "false" };
                status.push(
                    vec![label("check", *name), label("critical", critical)],
                    f64::from(u8::from(up)),
                );
            }
            durations.series.push(Series::histogram(
                vec![label("check", *name)],
                &BUCKETS,
                s.buckets,
                &[],
                s.sum,
            ));
            for (reason, count) in REASONS.iter().zip(s.failures) {
                failures.push(
                    vec![label("check", *name), label("reason", *reason)],
                    count as f64,
                );
            }
        }
        out.extend([status, durations, failures]);
    }
}
