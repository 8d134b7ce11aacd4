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
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering::Relaxed};

use once_cell::sync::Lazy;

use crate::exposition::collector::{self};
use crate::metrics::clock;
use crate::metrics::exemplar::{self, Slot};
use crate::metrics::site::{DEFAULT_BUCKETS, SHARDS, bucket_index, shard_index};

/// The `http_route` of requests that matched no route.
///
/// ```
/// assert_eq!(observe_runtime::http::UNMATCHED_ROUTE, "<unmatched>");
/// ```
pub const UNMATCHED_ROUTE: &str = "<unmatched>";
/// The `http_route` of new routes once the series cap is reached.
///
/// ```
/// assert_eq!(observe_runtime::http::OVERFLOW_ROUTE, "<overflow>");
/// ```
pub const OVERFLOW_ROUTE: &str = "<overflow>";
/// Default cap on `http_server_request_duration_seconds` series.
///
/// ```
/// assert_eq!(observe_runtime::http::DEFAULT_MAX_SERIES, 2_000);
/// ```
pub const DEFAULT_MAX_SERIES: usize = 2_000;

/// The methods of RFC 9110 and RFC 5789, then `_OTHER`, as OpenTelemetry prescribes.
pub(crate) const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "_OTHER",
];

/// The index of a method in [`METHODS`]; anything unknown is `_OTHER`. The standard
/// methods compare without their text.
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

/// HTTP semantic-convention buckets (seconds), the same as the function histogram's, in
/// nanoseconds; the last bound, `u64::MAX`, is `+Inf`.
const BOUNDS_NS: [u64; DEFAULT_BUCKETS.len() + 1] = {
    let mut out = [u64::MAX; DEFAULT_BUCKETS.len() + 1];
    let mut i = 0;
    while i < DEFAULT_BUCKETS.len() {
        out[i] = (DEFAULT_BUCKETS[i] * 1e9 + 0.5) as u64;
        i += 1;
    }
    out
};

pub(super) struct Series {
    /// Non-cumulative counts; the last is `+Inf`.
    pub(super) buckets: [AtomicU64; DEFAULT_BUCKETS.len() + 1],
    pub(super) sum_ns: AtomicU64,
    /// This thread's exemplar per bucket (the newest over threads is exposed).
    pub(super) exemplars: [Slot; DEFAULT_BUCKETS.len() + 1],
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
        // Most requests end within the first bound (5 ms): one predictable compare. The
        // rest took 5 ms or more, and the full count (15 compares) is nothing to them.
        let index = if o.elapsed_ns <= BOUNDS_NS[0] {
            0
        } else {
            bucket_index(&BOUNDS_NS, o.elapsed_ns)
        };
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

pub(super) type Key = (u8, Box<str>, u16);

/// Requests in progress per method, on cache lines of their own per shard of threads.
#[repr(align(128))]
#[derive(Default)]
pub(super) struct ActiveShard(pub(super) [AtomicI64; METHODS.len()]);

pub(crate) struct HttpStore {
    /// Every series, with one cell set per thread that recorded into it (summed when
    /// scraped). Locked only when a thread meets a series for the first time. Cells are
    /// never freed: the cap bounds them (series × recording threads).
    pub(super) series: Mutex<HashMap<Key, Vec<&'static Series>>>,
    max_series: AtomicUsize,
    pub(super) active: [ActiveShard; SHARDS],
    pub(super) aborted: [AtomicU64; METHODS.len()],
}

/// A worker thread's own cells: route → (method, status, cells). Bounded by the number
/// of route templates (unmatched paths all share one route), so scans cannot grow it.
type LocalSeries = HashMap<Box<str>, Vec<(u8, u16, &'static Series)>, BuildRouteHasher>;

thread_local! {
    static LOCAL: RefCell<LocalSeries> = const { RefCell::new(HashMap::with_hasher(BuildRouteHasher)) };
}

/// The per-thread map's hasher. Its keys are route templates: few, chosen by the
/// application's developer (never raw paths: unmatched requests share one key), so the
/// hash need not resist attack, nor read every byte. It mixes the length with three
/// 8-byte windows (start, middle, end) in constant time, whatever the template's length;
/// templates that agree on all of them only share a bucket, and are told apart by
/// comparing keys, as in any collision.
#[derive(Clone, Copy, Default)]
struct BuildRouteHasher;

impl BuildHasher for BuildRouteHasher {
    type Hasher = RouteHasher;
    fn build_hasher(&self) -> RouteHasher {
        RouteHasher(0)
    }
}

struct RouteHasher(u64);

impl RouteHasher {
    /// One FxHash step.
    #[inline(always)]
    fn add(&mut self, word: u64) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

/// Eight bytes from `at` (little-endian), or the bytes that exist, zero-padded.
#[inline(always)]
fn window(bytes: &[u8], at: usize) -> u64 {
    match bytes.get(at..at + 8) {
        Some(w) => u64::from_le_bytes(w.try_into().unwrap_or_default()),
        None => {
            let mut w = [0u8; 8];
            let rest = bytes.get(at..).unwrap_or_default();
            w[..rest.len()].copy_from_slice(rest);
            u64::from_le_bytes(w)
        }
    }
}

impl Hasher for RouteHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let n = bytes.len();
        self.add(n as u64);
        if n <= 8 {
            self.add(window(bytes, 0));
        } else {
            self.add(window(bytes, 0));
            self.add(window(bytes, n / 2 - 4));
            self.add(window(bytes, n - 8));
        }
    }

    #[inline]
    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
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

    /// Declares a route: its series (status unknown: `0`, written as an empty label)
    /// exists at zero from now on, within the series cap.
    pub(crate) fn declare(&self, method: u8, route: &str) {
        let exists = {
            let map = self.series.lock().unwrap_or_else(|p| p.into_inner());
            map.contains_key(&(method, route.into(), 0))
        };
        if !exists {
            let _ = self.register(method, route, 0);
        }
    }

    /// New cells for this thread in the series `(method, route, status)`, or in its
    /// overflow series once the cap is reached.
    fn register(&self, method: u8, route: &str, status: u16) -> &'static Series {
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
        let cells: &'static Series = Box::leak(Box::default());
        map.entry(key).or_default().push(cells);
        cells
    }

    /// This thread's cells for the series `(method, route, status)`.
    #[inline]
    fn cells(&self, method: u8, route: &str, status: u16) -> &'static Series {
        let found = LOCAL.try_with(|local| {
            local
                .borrow()
                .get(route)
                .and_then(|list| list.iter().find(|(m, s, _)| *m == method && *s == status))
                .map(|(_, _, cells)| *cells)
        });
        match found {
            Ok(Some(cells)) => cells,
            _ => self.first_cells(method, route, status),
        }
    }

    /// [`Self::cells`] the first time this thread meets the series: out of line, so the
    /// path taken by every other request stays short.
    #[cold]
    #[inline(never)]
    fn first_cells(&self, method: u8, route: &str, status: u16) -> &'static Series {
        let cells = self.register(method, route, status);
        // While the thread exits, its map is gone: the cells are used once.
        let _ = LOCAL.try_with(|local| {
            local
                .borrow_mut()
                .entry(route.into())
                .or_default()
                .push((method, status, cells));
        });
        cells
    }

    #[cfg(test)]
    fn record(&self, method: u8, route: &str, status: u16, o: Observation<'_>) {
        self.cells(method, route, status).observe(o);
    }
}

/// One request from its start until its response is known. Dropped before that (the
/// client went away first), it counts as aborted.
pub(crate) struct RequestTimer {
    method: u8,
    start: u64,
}

impl RequestTimer {
    #[inline]
    pub(crate) fn start(method: &actix_web::http::Method) -> Self {
        let method = method_index_of(method);
        STORE.active[shard_index()].0[method as usize].fetch_add(1, Relaxed);
        RequestTimer {
            method,
            start: clock::raw(),
        }
    }

    /// The request's method as its label (`GET`, …, `_OTHER`).
    pub(crate) fn method_label(&self) -> &'static str {
        METHODS[self.method as usize]
    }

    /// The response is known: its route template (if any) and status. The series is
    /// looked up now, on this thread, so what travels with the body is one pointer.
    pub(crate) fn respond(self, route: Option<&str>, status: u16) -> Recording {
        let this = std::mem::ManuallyDrop::new(self);
        let route = route.unwrap_or(UNMATCHED_ROUTE);
        Recording {
            cells: STORE.cells(this.method, route, status),
            method: this.method,
            start: this.start,
            _thread: std::marker::PhantomData,
        }
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        let m = self.method as usize;
        STORE.active[shard_index()].0[m].fetch_sub(1, Relaxed);
        STORE.aborted[m].fetch_add(1, Relaxed);
    }
}

/// A request whose response is known, until the end of its body. Dropped before the
/// body ended (the client went away, or the body was discarded), the request is
/// recorded all the same, without an exemplar.
///
/// Not `Send`: its cells have one writer, the thread that looked them up.
pub(crate) struct Recording {
    cells: &'static Series,
    method: u8,
    start: u64,
    _thread: std::marker::PhantomData<*const ()>,
}

impl Recording {
    /// The body has ended: records the request, offering it as an exemplar with the ids
    /// of `span` (the server span, which the body owns).
    #[inline]
    /// Records the request; returns its duration in nanoseconds.
    pub(crate) fn finish(self, span: Option<&tracing::Span>) -> u64 {
        let this = std::mem::ManuallyDrop::new(self);
        this.complete(span)
    }

    #[inline]
    fn complete(&self, span: Option<&tracing::Span>) -> u64 {
        STORE.active[shard_index()].0[self.method as usize].fetch_sub(1, Relaxed);
        let end = clock::raw();
        let elapsed_ns = clock::nanos_between(self.start, end);
        self.cells.observe(Observation {
            elapsed_ns,
            end,
            span,
        });
        elapsed_ns
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let _ = self.complete(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::series_export::sum_cells;

    #[test]
    fn methods_are_bounded() {
        use actix_web::http::Method;
        for (i, name) in METHODS[..9].iter().enumerate() {
            let method = Method::from_bytes(name.as_bytes()).unwrap();
            assert_eq!(method_index_of(&method) as usize, i, "{name}");
        }
        for other in ["PROPFIND", "get", "Patch"] {
            let method = Method::from_bytes(other.as_bytes()).unwrap();
            assert_eq!(
                METHODS[method_index_of(&method) as usize],
                "_OTHER",
                "{other}"
            );
        }
    }

    #[test]
    fn routes_whose_hash_windows_agree_stay_apart() {
        // Same length, same first, middle and last eight bytes: one hash, two keys.
        let a = "/api/v1/users/{id}/xyz/tail/end";
        let b = "/api/v1/uXers/{id}/xYz/tail/end";
        let hash = |s: &str| BuildRouteHasher.hash_one(s);
        assert_eq!(hash(a), hash(b));
        assert_ne!(hash(a), hash("/api/v1/users/{id}"));
        let mut map: LocalSeries = HashMap::with_hasher(BuildRouteHasher);
        map.insert(a.into(), vec![(0, 200, Box::leak(Box::default()))]);
        map.insert(b.into(), vec![(1, 404, Box::leak(Box::default()))]);
        assert_eq!(map.len(), 2);
        assert_eq!(map[a][0].0, 0);
        assert_eq!(map[b][0].1, 404);
        for short in ["", "/", "/a", "/abcdefg", "/abcdefgh"] {
            assert!(!map.contains_key(short));
        }
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
