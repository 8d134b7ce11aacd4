//! observe's own families, read from the store at scrape time: `#[instrumented]` sites,
//! the in-flight total, worker slots, `build_info`, `process_*`.

use std::borrow::Cow;

use super::family::{Family, Kind, Series, Str, label};
use super::text::float;

use crate::metrics::site::Outcome;
use crate::metrics::{build_info_or_default, process, workers};
use crate::registry;

fn site_labels(labels: &[(&'static str, &'static str)]) -> Vec<(Str, Str)> {
    labels
        .iter()
        .map(|(k, v)| (Cow::Borrowed(*k), Cow::Borrowed(*v)))
        .collect()
}

/// The families of instrumented functions, the in-flight total, workers and build info.
pub(crate) fn families(out: &mut Vec<Family>) {
    let plan = registry::plan();
    let snapshots: Vec<_> = plan.groups.iter().map(|g| g.snapshot()).collect();

    let mut calls = Family::new(
        "function_calls_total",
        Kind::Counter,
        "Calls of instrumented functions, by result (ok, error, cancelled).",
    );
    let mut durations = Family::new(
        "function_calls_duration_seconds",
        Kind::Histogram,
        "Duration of instrumented function calls in seconds.",
    );
    let mut concurrent = Family::new(
        "function_calls_concurrent",
        Kind::Gauge,
        "Calls of instrumented functions in progress.",
    );
    let mut in_flight_total = 0;
    for (group, snap) in plan.groups.iter().zip(&snapshots) {
        let labels = site_labels(&group.labels);
        // autometrics' objective labels: on the counter for a success-rate target, on
        // the histogram for a latency target, so its published rules select them.
        let (mut counter_labels, mut histogram_labels) = (labels.clone(), labels.clone());
        if let Some(objective) = group.objective {
            if let Some(percent) = objective.success_target() {
                counter_labels.push(label("objective_name", objective.name()));
                counter_labels.push(label("objective_percentile", float(percent)));
            }
            if let Some((threshold, percent)) = objective.latency_target() {
                histogram_labels.push(label("objective_name", objective.name()));
                histogram_labels.push(label("objective_latency_threshold", float(threshold)));
                histogram_labels.push(label("objective_percentile", float(percent)));
            }
        }
        let outcomes: &[Outcome] = if group.is_async {
            &[Outcome::Ok, Outcome::Error, Outcome::Cancelled]
        } else {
            &[Outcome::Ok, Outcome::Error]
        };
        for &outcome in outcomes {
            let mut with_result = counter_labels.clone();
            with_result.push(label("result", outcome.label()));
            calls.push(with_result, snap.outcomes[outcome as usize] as f64);
        }
        durations.series.push(Series::histogram(
            histogram_labels,
            group.buckets,
            snap.buckets.iter().copied(),
            &snap.exemplars,
            snap.sum_ns as f64 / 1e9,
        ));
        in_flight_total += snap.in_flight;
        concurrent.push(labels, snap.in_flight as f64);
    }
    out.extend([calls, durations, concurrent]);
    out.push(
        Family::new(
            "observe_instrumented_calls_in_flight",
            Kind::Gauge,
            "Instrumented calls in progress across all functions.",
        )
        .with(vec![], in_flight_total as f64),
    );

    let workers = workers::samples();
    if !workers.is_empty() {
        let mut in_flight = Family::new(
            "observe_worker_requests_in_flight",
            Kind::Gauge,
            "HTTP requests in progress on each server worker thread.",
        );
        let mut total = Family::new(
            "observe_worker_requests_total",
            Kind::Counter,
            "HTTP requests started on each server worker thread.",
        );
        for (name, now, started) in workers {
            in_flight.push(vec![label("worker", name.clone())], now as f64);
            total.push(vec![label("worker", name)], started as f64);
        }
        out.extend([in_flight, total]);
    }
    #[cfg(feature = "actix")]
    runtime_families(out);

    let info = build_info_or_default();
    out.push(
        Family::new(
            "build_info",
            Kind::Gauge,
            "Build information of the running service (always 1).",
        )
        .with(
            vec![
                label("version", info.version),
                label("commit", info.commit),
                label("branch", info.branch),
                label("service_name", info.service_name),
                label("observe_version", env!("CARGO_PKG_VERSION")),
            ],
            1.0,
        ),
    );
}

/// Saturation of each actix worker's runtime and the admin server's: tokio's stable
/// runtime metrics, read at scrape time. Gauges and counters with history, never a
/// health signal.
#[cfg(feature = "actix")]
fn runtime_families(out: &mut Vec<Family>) {
    let samples = workers::runtime_samples();
    if samples.is_empty() {
        return;
    }
    let mut busy = Family::new(
        "observe_runtime_busy_seconds_total",
        Kind::Counter,
        "Time each server worker's runtime spent running tasks (tokio worker busy duration); its rate near 1 means the worker is saturated.",
    );
    let mut parks = Family::new(
        "observe_runtime_parks_total",
        Kind::Counter,
        "Times each server worker's runtime parked for lack of work; a rate near zero under load means it never runs out of work.",
    );
    let mut alive = Family::new(
        "observe_runtime_alive_tasks",
        Kind::Gauge,
        "Tasks spawned on each server worker's runtime and not finished (tokio::spawn; actix's connection tasks live in a LocalSet tokio does not count).",
    );
    let mut queued = Family::new(
        "observe_runtime_queue_depth",
        Kind::Gauge,
        "Tasks waiting in each server worker's runtime queue; a depth that stays above zero means work waits for the worker.",
    );
    for s in samples {
        let l = || vec![label("worker", s.worker.clone())];
        busy.push(l(), s.busy_seconds);
        parks.push(l(), s.parks as f64);
        alive.push(l(), s.alive_tasks as f64);
        queued.push(l(), s.queue_depth as f64);
    }
    out.extend([busy, parks, alive, queued]);
}

/// `process_*`, one family per sample.
pub(crate) fn process(out: &mut Vec<Family>) {
    for s in process::collect() {
        let kind = if s.counter {
            Kind::Counter
        } else {
            Kind::Gauge
        };
        out.push(Family::new(s.name, kind, s.help).with(vec![], s.value));
    }
}
