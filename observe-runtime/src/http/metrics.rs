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

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use once_cell::sync::Lazy;

use crate::metrics::clock;
use crate::metrics::collector::{self, Collector, Exposition};
use crate::metrics::exemplar::{self, Exemplar, Slot};
use crate::metrics::site::{DEFAULT_BUCKETS, SHARDS, shard_index};

/// The `http_route` of requests that matched no route.
///
/// ```
/// assert_eq!(observe_runtime::http::metrics::UNMATCHED_ROUTE, "<unmatched>");
/// ```
pub const UNMATCHED_ROUTE: &str = "<unmatched>";
/// The `http_route` of new routes once the series cap is reached.
///
/// ```
/// assert_eq!(observe_runtime::http::metrics::OVERFLOW_ROUTE, "<overflow>");
/// ```
pub const OVERFLOW_ROUTE: &str = "<overflow>";
/// Default cap on `http_server_request_duration_seconds` series.
///
/// ```
/// assert_eq!(observe_runtime::http::metrics::DEFAULT_MAX_SERIES, 2_000);
/// ```
pub const DEFAULT_MAX_SERIES: usize = 2_000;

/// The methods of RFC 9110 and RFC 5789, then `_OTHER`, as OpenTelemetry prescribes.
pub(crate) const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER",
];

/// The index of a method in [`METHODS`]; anything unknown is `_OTHER`.
pub(crate) fn method_index(method: &str) -> u8 {
    METHODS[..9].iter().position(|m| *m == method).unwrap_or(9) as u8
}

/// [`method_index`] for actix's `Method`: the standard ones compare without their text.
pub(crate) fn method_index_of(method: &actix_web::http::Method) -> u8 {
    use actix_web::http::Method;
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    STANDARD.iter().position(|m| m == method).unwrap_or(9) as u8
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

struct Series {
    /// Non-cumulative counts; the last is `+Inf`.
    buckets: [AtomicU64; DEFAULT_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
    /// This thread's exemplar per bucket (the newest over threads is exposed).
    exemplars: [Slot; DEFAULT_BUCKETS.len() + 1],
}

impl Default for Series {
    fn default() -> Self {
        Series {
            buckets: Default::default(),
            sum_ns: AtomicU64::new(0),
            exemplars: [const { Slot::new() }; DEFAULT_BUCKETS.len() + 1],
        }
    }
}

/// The observation being recorded: its length, when it ended, and the server span whose
/// ids become the exemplar.
#[derive(Clone, Copy)]
struct Observation<'a> {
    elapsed_ns: u64,
    end: u64,
    span: Option<&'a tracing::Span>,
}

impl Series {
    #[inline]
    fn observe(&self, o: Observation<'_>) {
        let index = BOUNDS_NS.iter().filter(|&&b| b < o.elapsed_ns).count();
        // One writer: these cells belong to the thread that registered them (its LOCAL
        // map; the fallback path registers fresh cells per use), so a plain load and
        // store replace the locked add: scrapes read whole values all the same.
        let bucket = &self.buckets[index];
        bucket.store(bucket.load(Relaxed) + 1, Relaxed);
        self.sum_ns
            .store(self.sum_ns.load(Relaxed) + o.elapsed_ns, Relaxed);
        // Exemplars come with spans: a request without one (no subscriber, a skipped
        // path, an aborted body) does not even look at the slot.
        if let Some(span) = o.span.filter(|s| !s.is_disabled()) {
            self.exemplars[index].observe_with(o.end, o.elapsed_ns, || {
                use tracing_opentelemetry::OpenTelemetrySpanExt as _;
                exemplar::ids_of(&span.context())
            });
        }
    }
}

type Key = (u8, Box<str>, u16);

/// Requests in progress per method, on cache lines of their own per shard of threads.
#[repr(align(128))]
#[derive(Default)]
struct ActiveShard([AtomicI64; METHODS.len()]);

pub(crate) struct HttpStore {
    /// Every series, with one cell set per thread that recorded into it (summed when
    /// scraped). Locked only when a thread meets a series for the first time.
    series: Mutex<HashMap<Key, Vec<Arc<Series>>>>,
    max_series: AtomicUsize,
    active: [ActiveShard; SHARDS],
    aborted: [AtomicU64; METHODS.len()],
}

/// A worker thread's own cells: route → (method, status, cells). Bounded by the number
/// of route templates (unmatched paths all share one route), so scans cannot grow it.
type LocalSeries = HashMap<Box<str>, Vec<(u8, u16, Arc<Series>)>, BuildFx>;

thread_local! {
    static LOCAL: RefCell<LocalSeries> = const { RefCell::new(HashMap::with_hasher(BuildFx)) };
}

/// FxHash: route templates are short, trusted strings (never raw paths), so a fast
/// non-cryptographic hash is right here.
#[derive(Clone, Copy, Default)]
struct BuildFx;

impl BuildHasher for BuildFx {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub(crate) static STORE: Lazy<HttpStore> = Lazy::new(|| {
    let store = HttpStore {
        series: Mutex::new(HashMap::new()),
        max_series: AtomicUsize::new(DEFAULT_MAX_SERIES),
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

    /// New cells for this thread in the series `(method, route, status)`, or in its
    /// overflow series once the cap is reached.
    fn register(&self, method: u8, route: &str, status: u16) -> Arc<Series> {
        let mut map = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let key: Key = (method, route.into(), status);
        let key = if !map.contains_key(&key)
            && map.len() >= self.max_series.load(Relaxed)
            && route != OVERFLOW_ROUTE
        {
            (method, OVERFLOW_ROUTE.into(), status)
        } else {
            key
        };
        let cells = Arc::new(Series::default());
        map.entry(key).or_default().push(cells.clone());
        cells
    }

    fn record(&self, method: u8, route: &str, status: u16, o: Observation<'_>) {
        let recorded = LOCAL.try_with(|local| {
            let mut local = local.borrow_mut();
            if let Some(list) = local.get(route)
                && let Some((_, _, cells)) =
                    list.iter().find(|(m, s, _)| *m == method && *s == status)
            {
                cells.observe(o);
                return;
            }
            let cells = self.register(method, route, status);
            cells.observe(o);
            local
                .entry(route.into())
                .or_default()
                .push((method, status, cells));
        });
        if recorded.is_err() {
            // The thread is exiting and its cache is gone: record through the lock.
            let cells = self.register(method, route, status);
            cells.observe(o);
        }
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
    pub(crate) fn start(method: &actix_web::http::Method) -> Self {
        let store = store();
        let method = method_index_of(method);
        store.active[shard_index()].0[method as usize].fetch_add(1, Relaxed);
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

    /// The body has ended: records the request, offering it as an exemplar with the ids
    /// of `span` (the server span, which the body owns; the timer does not, so the
    /// response stays as small as it was).
    pub(crate) fn finish(mut self, span: &tracing::Span) {
        self.complete(Some(span));
        self.response = None;
        self.method = FINISHED;
    }

    fn complete(&self, span: Option<&tracing::Span>) {
        let m = self.method as usize;
        self.store.active[shard_index()].0[m].fetch_sub(1, Relaxed);
        match &self.response {
            Some((route, status)) => {
                let end = clock::raw();
                let o = Observation {
                    elapsed_ns: clock::nanos_between(self.start, end),
                    end,
                    span,
                };
                self.store.record(self.method, route, *status, o);
            }
            None => {
                self.store.aborted[m].fetch_add(1, Relaxed);
            }
        }
    }
}

/// `method` of a timer that [`RequestTimer::finish`] has recorded already.
const FINISHED: u8 = u8::MAX;

impl Drop for RequestTimer {
    /// Reached when the body was not read to its end by `finish`: the request is
    /// recorded without an exemplar (or counted as aborted if no response existed).
    fn drop(&mut self) {
        if self.method != FINISHED {
            self.complete(None);
        }
    }
}

/// The sum of one series' per-thread cells: (cumulative buckets, sum in ns).
type Summed = (
    [u64; DEFAULT_BUCKETS.len() + 1],
    u64,
    [Option<Exemplar>; DEFAULT_BUCKETS.len() + 1],
);

fn sum_cells(cells: &[Arc<Series>]) -> Summed {
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
    fn collect(&self, out: &mut Exposition<'_>) {
        let map = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys: Vec<&Key> = map.keys().collect();
        keys.sort();
        let mut overflowed = 0;
        if out.family(
            "http_server_request_duration_seconds",
            "histogram",
            "Duration of HTTP server requests, to the end of the response body.",
        ) {
            for key in &keys {
                let (buckets, sum_ns, exemplars) = sum_cells(&map[*key]);
                let count = buckets[DEFAULT_BUCKETS.len()];
                if &*key.1 == OVERFLOW_ROUTE {
                    overflowed += count;
                }
                let status = key.2.to_string();
                let labels = [
                    ("http_request_method", METHODS[key.0 as usize]),
                    ("http_route", &*key.1),
                    ("http_response_status_code", status.as_str()),
                ];
                for (i, cumulative) in buckets.iter().enumerate() {
                    let le = DEFAULT_BUCKETS
                        .get(i)
                        .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
                    let mut with_le = labels.to_vec();
                    with_le.push(("le", &le));
                    out.sample_with_exemplar("_bucket", &with_le, cumulative, exemplars[i]);
                }
                out.sample("_sum", &labels, sum_ns as f64 / 1e9);
                out.sample("_count", &labels, count);
            }
        }
        drop(map);
        if out.family(
            "http_server_active_requests",
            "gauge",
            "HTTP server requests in progress, until the end of the response body.",
        ) {
            for (i, method) in METHODS.iter().enumerate() {
                let v: i64 = self.active.iter().map(|s| s.0[i].load(Relaxed)).sum();
                out.sample("", &[("http_request_method", method)], v.max(0));
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
            out.sample("", &[], overflowed);
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
        use actix_web::http::Method;
        for name in METHODS[..9].iter() {
            let method = Method::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(method_index_of(&method), method_index(name), "{name}");
        }
        let propfind = Method::from_bytes(b"PROPFIND").unwrap();
        assert_eq!(method_index_of(&propfind), 9);
    }

    #[test]
    fn the_series_cap_routes_new_series_to_overflow() {
        let store = HttpStore {
            series: Mutex::new(HashMap::new()),
            max_series: AtomicUsize::new(3),
            active: Default::default(),
            aborted: Default::default(),
        };
        // Two rounds on two threads: every thread gets its own cells, counts add up.
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    for i in 0..100 {
                        store.record(
                            0,
                            &format!("/r{i}"),
                            200,
                            Observation {
                                elapsed_ns: 1_000,
                                end: 0,
                                span: None,
                            },
                        );
                    }
                });
            }
        });
        let map = store.series.lock().unwrap();
        assert_eq!(map.len(), 4, "three series and one overflow series");
        let (buckets, _, _) = sum_cells(&map[&(0, OVERFLOW_ROUTE.into(), 200)]);
        assert_eq!(buckets[DEFAULT_BUCKETS.len()], 2 * 97);
        let (buckets, _, _) = sum_cells(&map[&(0, "/r0".into(), 200)]);
        assert_eq!(buckets[DEFAULT_BUCKETS.len()], 2);
    }
}
