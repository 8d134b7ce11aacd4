//! The HTTP series as families for `/metrics` and the OTLP push: per-thread cells summed
//! at scrape time, the active and aborted counts, the overflow count.

use std::sync::atomic::Ordering::Relaxed;

use super::series::{HttpStore, Key, METHODS, OVERFLOW_ROUTE, Series};
use crate::exposition::collector::Collector;
use crate::exposition::{self, Bucket, Family, Kind, Value, label};
use crate::metrics::exemplar::Exemplar;
use crate::metrics::site::DEFAULT_BUCKETS;

/// The sum of one series' per-thread cells: (cumulative buckets, sum in ns).
type Summed = (
    [u64; DEFAULT_BUCKETS.len() + 1],
    u64,
    [Option<Exemplar>; DEFAULT_BUCKETS.len() + 1],
);

pub(super) fn sum_cells(cells: &[&Series]) -> Summed {
    let mut buckets = [0u64; DEFAULT_BUCKETS.len() + 1];
    let mut exemplars = [None; DEFAULT_BUCKETS.len() + 1];
    let mut sum = 0;
    for c in cells {
        for (total, cell) in buckets.iter_mut().zip(&c.buckets) {
            *total += cell.load(Relaxed);
        }
        for (newest, slot) in exemplars.iter_mut().zip(&c.exemplars) {
            *newest = Exemplar::newest(*newest, slot.get());
        }
        sum += c.sum_ns.load(Relaxed);
    }
    let mut cumulative = 0;
    for b in &mut buckets {
        cumulative += *b;
        *b = cumulative;
    }
    (buckets, sum, exemplars)
}

impl Collector for HttpStore {
    fn collect(&self, out: &mut Vec<Family>) {
        let map = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys: Vec<&Key> = map.keys().collect();
        keys.sort();
        let mut overflowed = 0;
        let mut durations = Family::new(
            "http_server_request_duration_seconds",
            Kind::Histogram,
            "Duration of HTTP server requests, to the end of the response body.",
        );
        for key in &keys {
            let (cumulative, sum_ns, exemplars) = sum_cells(&map[*key]);
            let count = cumulative[DEFAULT_BUCKETS.len()];
            if &*key.1 == OVERFLOW_ROUTE {
                overflowed += count;
            }
            let buckets = cumulative
                .iter()
                .zip(exemplars)
                .enumerate()
                .map(|(i, (&cumulative, exemplar))| Bucket {
                    le: DEFAULT_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY),
                    cumulative,
                    exemplar,
                })
                .collect();
            durations.series.push(exposition::Series {
                labels: vec![
                    label("http_request_method", METHODS[key.0 as usize]),
                    label("http_route", key.1.to_string()),
                    // 0: a declared route before its first response.
                    label(
                        "http_response_status_code",
                        if key.2 == 0 {
                            String::new()
                        } else {
                            key.2.to_string()
                        },
                    ),
                ],
                value: Value::Histogram {
                    buckets,
                    sum: sum_ns as f64 / 1e9,
                    count,
                },
            });
        }
        drop(map);
        let mut active = Family::new(
            "http_server_active_requests",
            Kind::Gauge,
            "HTTP server requests in progress, until the end of the response body.",
        );
        let mut aborted = Family::new(
            "observe_http_requests_aborted_total",
            Kind::Counter,
            "HTTP requests dropped before a response existed (the client went away).",
        );
        for (i, method) in METHODS.iter().enumerate() {
            let v: i64 = self.active.iter().map(|s| s.0[i].load(Relaxed)).sum();
            active.push(vec![label("http_request_method", *method)], v.max(0) as f64);
            let v = self.aborted[i].load(Relaxed);
            aborted.push(vec![label("http_request_method", *method)], v as f64);
        }
        let overflow = Family::new(
            "observe_http_series_overflow_total",
            Kind::Counter,
            "Requests recorded under http_route=\"<overflow>\" because the series cap was reached.",
        )
        .with(vec![], overflowed as f64);
        out.extend([durations, active, aborted, overflow]);
    }
}
