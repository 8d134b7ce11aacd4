//! HTTP server metrics with bounded cardinality, named as OpenTelemetry's HTTP semantic
//! conventions name them in Prometheus:
//!
//! - `http_server_request_duration_seconds{http_request_method, http_route, http_response_status_code}`
//! - `http_server_active_requests{http_request_method}`
//!
//! Label values come from bounded sets only: the method is one of the nine standard ones
//! or `_OTHER`; the route is the matched route *template* (`/users/{id}`), or
//! [`UNMATCHED_ROUTE`] for every request no route matched; and once the number of
//! series reaches the cap, new routes are recorded under [`OVERFLOW_ROUTE`]. No request,
//! however hostile, can grow memory without bound.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, RwLock};

use once_cell::sync::Lazy;

use crate::metrics::clock;
use crate::metrics::collector::{self, Collector, Exposition};
use crate::metrics::site::DEFAULT_BUCKETS;

/// The `http_route` of requests that matched no route.
pub const UNMATCHED_ROUTE: &str = "<unmatched>";
/// The `http_route` of new routes once the series cap is reached.
pub const OVERFLOW_ROUTE: &str = "<overflow>";
/// Default cap on `http_server_request_duration_seconds` series.
pub const DEFAULT_MAX_SERIES: usize = 2_000;

/// The methods of RFC 9110 and RFC 5789, then `_OTHER`, as OpenTelemetry prescribes.
pub(crate) const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER",
];

/// The index of a method in [`METHODS`]; anything unknown is `_OTHER`.
pub(crate) fn method_index(method: &str) -> u8 {
    METHODS[..9].iter().position(|m| *m == method).unwrap_or(9) as u8
}

/// HTTP semantic-convention buckets (seconds): the same as the function histogram's.
const BOUNDS_NS: [u64; DEFAULT_BUCKETS.len()] = {
    let mut out = [0u64; DEFAULT_BUCKETS.len()];
    let mut i = 0;
    while i < DEFAULT_BUCKETS.len() {
        out[i] = (DEFAULT_BUCKETS[i] * 1e9 + 0.5) as u64;
        i += 1;
    }
    out
};

#[derive(Default)]
struct Series {
    /// Non-cumulative counts; the last is `+Inf`.
    buckets: [AtomicU64; DEFAULT_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

type Key = (u8, Box<str>, u16);

pub(crate) struct HttpStore {
    series: RwLock<HashMap<Key, Arc<Series>>>,
    max_series: AtomicUsize,
    overflowed: AtomicU64,
    active: [AtomicI64; METHODS.len()],
    aborted: [AtomicU64; METHODS.len()],
}

pub(crate) static STORE: Lazy<HttpStore> = Lazy::new(|| {
    let store = HttpStore {
        series: RwLock::new(HashMap::new()),
        max_series: AtomicUsize::new(DEFAULT_MAX_SERIES),
        overflowed: AtomicU64::new(0),
        active: Default::default(),
        aborted: Default::default(),
    };
    clock::init();
    store
});

/// The store, registered as a collector on first use.
pub(crate) fn store() -> &'static HttpStore {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    let store: &'static HttpStore = &STORE;
    REGISTERED.call_once(|| collector::register(store));
    store
}

impl HttpStore {
    pub(crate) fn set_max_series(&self, max: usize) {
        self.max_series.store(max, Relaxed);
    }

    fn series(&self, method: u8, route: &str, status: u16) -> Arc<Series> {
        let key: Key = (method, route.into(), status);
        if let Some(s) = self
            .series
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return s.clone();
        }
        let mut map = self.series.write().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = map.get(&key) {
            return s.clone();
        }
        let key = if map.len() >= self.max_series.load(Relaxed) && route != OVERFLOW_ROUTE {
            self.overflowed.fetch_add(1, Relaxed);
            let overflow: Key = (method, OVERFLOW_ROUTE.into(), status);
            if let Some(s) = map.get(&overflow) {
                return s.clone();
            }
            overflow
        } else {
            key
        };
        map.entry(key).or_default().clone()
    }

    fn record(&self, method: u8, route: &str, status: u16, elapsed_ns: u64) {
        let series = self.series(method, route, status);
        let index = BOUNDS_NS.iter().filter(|&&b| b < elapsed_ns).count();
        series.buckets[index].fetch_add(1, Relaxed);
        series.sum_ns.fetch_add(elapsed_ns, Relaxed);
    }
}

/// One request from its start to the end of its response body. Dropped before a
/// response was known (the client went away first), it counts as aborted.
pub(crate) struct RequestTimer {
    store: &'static HttpStore,
    method: u8,
    start: u64,
    response: Option<(String, u16)>,
}

impl RequestTimer {
    pub(crate) fn start(method: &str) -> Self {
        let store = store();
        let method = method_index(method);
        store.active[method as usize].fetch_add(1, Relaxed);
        RequestTimer {
            store,
            method,
            start: clock::raw(),
            response: None,
        }
    }

    /// The response is known: its route template (if any) and status.
    pub(crate) fn respond(&mut self, route: Option<String>, status: u16) {
        self.response = Some((route.unwrap_or_else(|| UNMATCHED_ROUTE.to_owned()), status));
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        let m = self.method as usize;
        self.store.active[m].fetch_sub(1, Relaxed);
        match &self.response {
            Some((route, status)) => {
                let elapsed = clock::nanos_between(self.start, clock::raw());
                self.store.record(self.method, route, *status, elapsed);
            }
            None => {
                self.store.aborted[m].fetch_add(1, Relaxed);
            }
        }
    }
}

impl Collector for HttpStore {
    fn collect(&self, out: &mut Exposition<'_>) {
        if out.family(
            "http_server_request_duration_seconds",
            "histogram",
            "Duration of HTTP server requests, to the end of the response body.",
        ) {
            let map = self.series.read().unwrap_or_else(|p| p.into_inner());
            let mut keys: Vec<&Key> = map.keys().collect();
            keys.sort();
            for key in keys {
                let series = &map[key];
                let (method, route, status) = (METHODS[key.0 as usize], &*key.1, key.2.to_string());
                let labels = [
                    ("http_request_method", method),
                    ("http_route", route),
                    ("http_response_status_code", status.as_str()),
                ];
                let mut cumulative = 0;
                for (i, cell) in series.buckets.iter().enumerate() {
                    cumulative += cell.load(Relaxed);
                    let le = DEFAULT_BUCKETS
                        .get(i)
                        .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
                    let mut with_le = labels.to_vec();
                    with_le.push(("le", &le));
                    out.sample("_bucket", &with_le, cumulative);
                }
                out.sample("_sum", &labels, series.sum_ns.load(Relaxed) as f64 / 1e9);
                out.sample("_count", &labels, cumulative);
            }
        }
        if out.family(
            "http_server_active_requests",
            "gauge",
            "HTTP server requests in progress, until the end of the response body.",
        ) {
            for (i, method) in METHODS.iter().enumerate() {
                let v = self.active[i].load(Relaxed).max(0);
                out.sample("", &[("http_request_method", method)], v);
            }
        }
        if out.family(
            "observe_http_requests_aborted_total",
            "counter",
            "HTTP requests dropped before a response existed (the client went away).",
        ) {
            for (i, method) in METHODS.iter().enumerate() {
                let v = self.aborted[i].load(Relaxed);
                out.sample("", &[("http_request_method", method)], v);
            }
        }
        if out.family(
            "observe_http_series_overflow_total",
            "counter",
            "Requests recorded under http_route=\"<overflow>\" because the series cap was reached.",
        ) {
            out.sample("", &[], self.overflowed.load(Relaxed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_bounded() {
        assert_eq!(METHODS[method_index("GET") as usize], "GET");
        assert_eq!(METHODS[method_index("PATCH") as usize], "PATCH");
        assert_eq!(METHODS[method_index("get") as usize], "_OTHER");
        assert_eq!(METHODS[method_index("PROPFIND") as usize], "_OTHER");
    }

    #[test]
    fn the_series_cap_routes_new_series_to_overflow() {
        let store = HttpStore {
            series: RwLock::new(HashMap::new()),
            max_series: AtomicUsize::new(3),
            overflowed: AtomicU64::new(0),
            active: Default::default(),
            aborted: Default::default(),
        };
        for i in 0..100 {
            store.record(0, &format!("/r{i}"), 200, 1_000);
        }
        let map = store.series.read().unwrap();
        assert_eq!(map.len(), 4, "three series and one overflow series");
        let overflow = &map[&(0, OVERFLOW_ROUTE.into(), 200)];
        let count: u64 = overflow.buckets.iter().map(|b| b.load(Relaxed)).sum();
        assert_eq!(count, 97);
        assert_eq!(store.overflowed.load(Relaxed), 97);
    }
}
