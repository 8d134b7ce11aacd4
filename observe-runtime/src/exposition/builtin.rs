//! observe's own families, read from the store at scrape time: `#[instrumented]` sites,
//! the in-flight total, worker slots, `build_info`, `process_*`.

use std::borrow::Cow;

use super::family::{Family, Kind, Series, Str, label};
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
        let outcomes: &[Outcome] = if group.is_async {
            &[Outcome::Ok, Outcome::Error, Outcome::Cancelled]
        } else {
            &[Outcome::Ok, Outcome::Error]
        };
        for &outcome in outcomes {
            let mut with_result = labels.clone();
            with_result.push(label("result", outcome.label()));
            calls.push(with_result, snap.outcomes[outcome as usize] as f64);
        }
        durations.series.push(Series::histogram(
            labels.clone(),
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
