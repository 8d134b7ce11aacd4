//! The per-call-site metric store behind `#[instrumented]`.
//!
//! Every instrumented function owns one `static` [`Site`] that the macro emits inside its
//! body: its metadata, a reference to its options (histogram bounds among them) and its
//! run-time state, which points at the function's counters once the first call has
//! allocated them (`SHARDS` shards on cache lines of their own). The hot path touches only
//! the counters of the current thread's shard: one `fetch_add` when the call starts and
//! three when it ends (outcome, bucket, sum), no hashing, no locking, no allocation after
//! the first call. Two threads calling the same function write to different cache lines,
//! so the cost per call does not grow with contention the way a shared
//! `prometheus::Histogram` does.
//!
//! Derived values are computed when scraping, never on the hot path:
//! - histogram `_count` is the sum of the buckets;
//! - the in-flight gauge is `started − (ok + error + cancelled)`.

use std::sync::atomic::{AtomicU64, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed};

pub use super::classify::{Classifier, ClassifyOther, ClassifyResult, outcome_from};
use super::clock;
use super::exemplar::{Exemplar, Slot};
pub(crate) use super::meta::shard_index;
pub use super::meta::{FnKind, Outcome, SHARDS, SiteMeta, SiteOptions, SiteState, SpanSpec};

/// A call site (see [`SiteMeta`], the same type): here, its hot path.
pub type Site = SiteMeta;

/// The options of a sync function with none of its own.
pub static SYNC: SiteOptions = DEFAULTS;

/// The options of an async function with none of its own.
pub static ASYNC: SiteOptions = SiteOptions {
    kind: FnKind::Async,
    ..DEFAULTS
};

/// The options of a sync function with `span = false` and no other option.
pub static SYNC_UNTRACED: SiteOptions = SiteOptions {
    span: None,
    ..DEFAULTS
};

/// The options of an async function with `span = false` and no other option.
pub static ASYNC_UNTRACED: SiteOptions = SiteOptions {
    kind: FnKind::Async,
    span: None,
    ..DEFAULTS
};

/// Sync, no labels, the default buckets, an `INFO` span without fields.
const DEFAULTS: SiteOptions = SiteOptions {
    kind: FnKind::Sync,
    labels: &[],
    buckets: &DEFAULT_BUCKETS,
    bounds_ns: &DEFAULT_BOUNDS_NS,
    span: Some(SpanSpec {
        level: tracing::Level::INFO,
        fields: &[],
    }),
    objective: None,
};

/// Words of a shard: `started`, the three outcomes, the sum, then the buckets.
const STARTED: usize = 0;
const OUTCOMES: usize = 1;
const SUM: usize = 4;
const BUCKETS: usize = 5;
const WORDS_PER_LINE: usize = 16;

/// One 128-byte line of counters: shards start on lines of their own, so two threads
/// calling the same function write to different cache lines.
#[repr(C, align(128))]
struct Line([AtomicU64; WORDS_PER_LINE]);

/// Words per shard for a site with `buckets` buckets (`+Inf` included): whole lines, so
/// shards never share one.
#[inline(always)]
const fn stride(buckets: usize) -> usize {
    (BUCKETS + buckets).div_ceil(WORDS_PER_LINE) * WORDS_PER_LINE
}

impl Site {
    /// The first counter word of the site (`SHARDS` shards of [`stride`] words each, on
    /// lines of their own), allocated on the first call. The site's state points at the
    /// words themselves, so the hot path reaches a shard in one load from the `static`
    /// (and the bucket count, read beside it) instead of a chain of three.
    #[inline(always)]
    fn words(&'static self) -> *const AtomicU64 {
        let words = self.state.cells.load(Acquire);
        if words.is_null() {
            self.allocate_cells()
        } else {
            words.cast::<AtomicU64>()
        }
    }

    /// The words of the calling thread's shard.
    #[inline(always)]
    fn own_shard(&'static self) -> *const AtomicU64 {
        let words = self.words();
        // Stored before `cells` was published (Release), seen after loading it (Acquire).
        let stride = self.state.stride.load(Relaxed);
        // SAFETY: `SHARDS * stride` words were allocated; `shard_index() < SHARDS`.
        unsafe { words.add(shard_index() * stride) }
    }

    /// Allocates the counters and exemplar slots (once; a thread that loses the race
    /// frees its own), leaked for the life of the process.
    #[cold]
    #[inline(never)]
    fn allocate_cells(&'static self) -> *const AtomicU64 {
        let buckets = self.options.bounds_ns.len();
        // Slots first: whoever sees the words sees the slots.
        let slots: Box<[Slot]> = (0..buckets).map(|_| Slot::new()).collect();
        let slots = Box::into_raw(slots).cast::<Slot>();
        if self
            .state
            .exemplars
            .compare_exchange(std::ptr::null_mut(), slots, AcqRel, Acquire)
            .is_err()
        {
            // SAFETY: ours, never shared.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(slots, buckets)) });
        }
        // Same value from every racing thread: stored before the counters are published.
        self.state.stride.store(stride(buckets), Relaxed);
        let lines: Box<[Line]> = (0..SHARDS * stride(buckets) / WORDS_PER_LINE)
            .map(|_| Line([const { AtomicU64::new(0) }; WORDS_PER_LINE]))
            .collect();
        let count = lines.len();
        let fresh = Box::into_raw(lines).cast::<Line>();
        match self.state.cells.compare_exchange(
            std::ptr::null_mut(),
            fresh.cast::<()>(),
            AcqRel,
            Acquire,
        ) {
            // `Line` is `repr(C)`: 16 words, exactly 128 bytes, no padding.
            Ok(_) => fresh.cast::<AtomicU64>(),
            Err(theirs) => {
                // Another thread was first: its counters are the site's.
                // SAFETY: `fresh` was never shared.
                drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(fresh, count)) });
                theirs.cast::<AtomicU64>()
            }
        }
    }

    /// The exemplar slot of `bucket`; the counters (and so the slots) exist.
    #[inline(always)]
    fn exemplar_slot(&self, bucket: usize) -> &'static Slot {
        let slots = self.state.exemplars.load(Acquire);
        // SAFETY: set (before the counters were published) to `bounds_ns.len()` slots,
        // leaked; `bucket < bounds_ns.len()`.
        unsafe { &*slots.add(bucket) }
    }

    /// Starts timing one call. The returned guard records the call when it is finished
    /// or dropped, on every exit path.
    #[inline(always)]
    pub fn start(&'static self) -> Guard {
        Guard(self.begin())
    }

    /// Starts timing one call, recorded by whoever holds the [`Started`] (once).
    #[inline(always)]
    pub fn begin(&'static self) -> Started {
        let shard = self.own_shard();
        // SAFETY: a shard has `stride > STARTED` words.
        unsafe { (*shard.add(STARTED)).fetch_add(1, Relaxed) };
        let start = clock::raw();
        Started {
            site: self,
            start,
            #[cfg(feature = "inflight")]
            slot: super::inflight::enter(self, start),
        }
    }

    /// Whether each call opens a span from this site.
    #[inline(always)]
    pub fn traced(&self) -> bool {
        self.options.span.is_some()
    }
}

/// Index of the bucket an observation falls in: the first bound `>=` it (Prometheus'
/// `le`). The last bound is `u64::MAX`, so the index is always in range.
///
/// The first bucket is tested alone first, by a branch: a fast function's calls all fall
/// in it (≤ 5 ms with the default buckets), the branch is predicted, and the bucket's
/// `fetch_add` does not wait for the search. The branch-free binary search behind it is a
/// chain of dependent loads and selects (~30 cycles); on a call that short it was the
/// largest part of the hot path after the two clock reads (calls.rs, one thread: 30.8 →
/// 23.1 ns added with the branch). A call slower than the first bound pays for the search
/// in a call of milliseconds.
#[inline(always)]
pub(crate) fn bucket_index(bounds_ns: &[u64], elapsed: u64) -> usize {
    if bounds_ns.first().is_some_and(|&first| elapsed <= first) {
        return 0;
    }
    bounds_ns
        .partition_point(|&b| b < elapsed)
        .min(bounds_ns.len().saturating_sub(1))
}

/// One call started ([`Site::begin`]): its site, its start on the clock, its in-flight
/// slot; recorded once by [`Started::finish`]. No drop of its own: a holder that may be
/// dropped before the call finishes records it in its own drop ([`Guard`], or the calls
/// of `call.rs` that run in place).
///
/// Two words (without the `inflight` feature), so it travels in registers between the
/// out-of-line entry and exit: the exit finds the counters from the site again (one load
/// each, and the thread's shard: a future may finish on another thread, and any shard
/// counts the same).
#[derive(Clone, Copy)]
pub struct Started {
    site: &'static Site,
    start: u64,
    #[cfg(feature = "inflight")]
    slot: u32,
}

impl Started {
    /// Records the call with `outcome`; `exemplar`: inside its span, offering it as the
    /// bucket's exemplar.
    #[inline(always)]
    pub fn finish(self, outcome: Outcome, exemplar: bool) {
        #[cfg(feature = "inflight")]
        super::inflight::exit(self.slot);
        self.record(outcome, exemplar);
    }

    /// Records a call run in place whose body left without its exit: by `?` (in a
    /// function that returns a `Result`, only with an error) or by a panic. An error;
    /// `traced`: offered as the bucket's exemplar (its span still entered) unless
    /// panicking.
    #[cold]
    #[inline(never)]
    pub fn finish_left(self, traced: bool) {
        let exemplar = traced && !std::thread::panicking();
        self.finish(Outcome::Error, exemplar);
    }

    /// Adds the call to the counters of the calling thread's shard.
    #[inline(always)]
    fn record(self, outcome: Outcome, exemplar: bool) {
        // This thread's shard first (`start` allocated the counters): its loads then
        // overlap the clock read instead of delaying the adds after it.
        let shard = self.site.own_shard();
        let end = clock::raw();
        let elapsed = clock::nanos_between(self.start, end);
        let bounds_ns = self.site.options.bounds_ns;
        let bucket = if std::ptr::eq(bounds_ns, &DEFAULT_BOUNDS_NS[..]) {
            // The common case, against constants.
            bucket_index(&DEFAULT_BOUNDS_NS, elapsed)
        } else {
            bucket_index(bounds_ns, elapsed)
        };
        // SAFETY: a shard holds `stride >= BUCKETS + bounds_ns.len()` words that live for
        // ever; `bucket < bounds_ns.len()`; `outcome as usize < 3`.
        unsafe {
            (*shard.add(OUTCOMES + outcome as usize)).fetch_add(1, Relaxed);
            (*shard.add(BUCKETS + bucket)).fetch_add(1, Relaxed);
            (*shard.add(SUM)).fetch_add(elapsed, Relaxed);
        }
        if exemplar {
            self.site.exemplar_slot(bucket).observe(end, elapsed);
        }
    }
}

/// Records one call when finished or dropped. See [`Site::start`].
#[must_use = "dropping the guard at once records a call of zero length"]
pub struct Guard(Started);

impl Guard {
    /// Records the call with the given outcome (no exemplar).
    #[inline(always)]
    pub fn finish(self, outcome: Outcome) {
        self.into_started().finish(outcome, false);
    }

    /// Records the call inside its span, offering it as the bucket's exemplar.
    #[inline(always)]
    pub fn finish_traced(self, outcome: Outcome) {
        self.into_started().finish(outcome, true);
    }

    /// The call, no longer recorded by this guard's drop.
    #[inline(always)]
    pub(crate) fn into_started(self) -> Started {
        let started = self.0;
        std::mem::forget(self);
        started
    }
}

impl Drop for Guard {
    /// Reached only when `finish` was not: the call panicked (an error) or its future was
    /// dropped before completion (cancelled).
    #[cold]
    fn drop(&mut self) {
        let outcome = if std::thread::panicking() {
            Outcome::Error
        } else {
            Outcome::Cancelled
        };
        self.0.finish(outcome, false);
    }
}

/// A consistent-enough view of one site's counters, summed over shards.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Calls by outcome, indexed by [`Outcome`] discriminant.
    pub outcomes: [u64; 3],
    /// Non-cumulative bucket counts, the last one `+Inf`.
    pub buckets: Vec<u64>,
    /// Sum of durations in nanoseconds.
    pub sum_ns: u64,
    /// Calls in progress.
    pub in_flight: u64,
    /// The exemplar of each bucket, if any (same length as `buckets`).
    pub exemplars: Vec<Option<Exemplar>>,
}

impl Snapshot {
    /// Calls that have finished (the histogram `_count`).
    #[cfg(test)]
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Adds another snapshot with the same buckets into this one.
    pub fn merge(&mut self, other: &Snapshot) {
        for (a, b) in self.outcomes.iter_mut().zip(other.outcomes) {
            *a += b;
        }
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.sum_ns += other.sum_ns;
        self.in_flight += other.in_flight;
        if self.exemplars.len() < other.exemplars.len() {
            self.exemplars.resize(other.exemplars.len(), None);
        }
        for (a, b) in self.exemplars.iter_mut().zip(&other.exemplars) {
            *a = Exemplar::newest(*a, *b);
        }
    }
}

impl Site {
    /// Sums the shards (zeros for a site never called).
    pub fn snapshot(&self) -> Snapshot {
        let buckets = self.options.bounds_ns.len();
        let mut snap = Snapshot {
            buckets: vec![0; buckets],
            exemplars: vec![None; buckets],
            ..Snapshot::default()
        };
        let words = self.state.cells.load(Acquire).cast::<AtomicU64>();
        if words.is_null() {
            return snap; // never called
        }
        let stride = stride(buckets);
        // SAFETY: `SHARDS * stride` words, leaked when the site was first called.
        let shard =
            |index: usize| unsafe { std::slice::from_raw_parts(words.add(index * stride), stride) };
        let mut started = 0u64;
        // Finished counts are read before `started`, so in-flight never goes negative.
        for index in 0..SHARDS {
            let shard = shard(index);
            for (total, cell) in snap.outcomes.iter_mut().zip(&shard[OUTCOMES..SUM]) {
                *total += cell.load(Relaxed);
            }
            for (total, cell) in snap.buckets.iter_mut().zip(&shard[BUCKETS..]) {
                *total += cell.load(Relaxed);
            }
            snap.sum_ns += shard[SUM].load(Relaxed);
        }
        for index in 0..SHARDS {
            started += shard(index)[STARTED].load(Relaxed);
        }
        let finished: u64 = snap.outcomes.iter().sum();
        snap.in_flight = started.saturating_sub(finished);
        snap.exemplars = (0..buckets).map(|b| self.exemplar_slot(b).get()).collect();
        snap
    }
}

/// Converts bucket bounds in seconds to nanoseconds at compile time, appending `+Inf`.
///
/// `N` is the number of bounds; the result has `N + 1` entries in an array of `B` (the
/// caller passes `B = N + 1`, checked here).
pub const fn bounds_ns<const B: usize>(seconds: &[f64]) -> [u64; B] {
    assert!(seconds.len() + 1 == B, "bucket count mismatch");
    let mut out = [u64::MAX; B];
    let mut i = 0;
    while i < seconds.len() {
        out[i] = (seconds[i] * 1e9 + 0.5) as u64;
        i += 1;
    }
    out
}

/// The default histogram buckets, in seconds: autometrics' defaults, from 5 ms to 10 s.
pub const DEFAULT_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Number of cells for the default buckets (`DEFAULT_BUCKETS.len() + 1`).
pub const DEFAULT_B: usize = DEFAULT_BUCKETS.len() + 1;

/// The default buckets' bounds in nanoseconds, computed once (each function's `Site`
/// would otherwise evaluate [`bounds_ns`] in its own `const` initializer).
pub const DEFAULT_BOUNDS_NS: [u64; DEFAULT_B] = bounds_ns::<DEFAULT_B>(&DEFAULT_BUCKETS);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observation_equal_to_a_bound_is_in_that_bucket() {
        let bounds = bounds_ns::<3>(&[0.001, 0.5]);
        assert_eq!(bounds, [1_000_000, 500_000_000, u64::MAX]);
        assert_eq!(bucket_index(&bounds, 0), 0);
        assert_eq!(bucket_index(&bounds, 1_000_000), 0);
        assert_eq!(bucket_index(&bounds, 1_000_001), 1);
        assert_eq!(bucket_index(&bounds, 500_000_000), 1);
        assert_eq!(bucket_index(&bounds, 500_000_001), 2);
        assert_eq!(bucket_index(&bounds, u64::MAX), 2);
    }

    #[test]
    fn default_bounds_are_sorted_and_end_in_inf() {
        let bounds = bounds_ns::<DEFAULT_B>(&DEFAULT_BUCKETS);
        assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(bounds[0], 5_000_000);
        assert_eq!(bounds[DEFAULT_B - 1], u64::MAX);
    }

    #[test]
    fn snapshots_merge_field_by_field() {
        let mut a = Snapshot {
            outcomes: [1, 2, 3],
            buckets: vec![1, 0, 5],
            sum_ns: 10,
            in_flight: 1,
            exemplars: vec![None, None, None],
        };
        let b = Snapshot {
            outcomes: [10, 20, 30],
            buckets: vec![0, 1, 1],
            sum_ns: 5,
            in_flight: 2,
            exemplars: vec![None, None, None],
        };
        a.merge(&b);
        assert_eq!(a.outcomes, [11, 22, 33]);
        assert_eq!(a.buckets, vec![1, 1, 6]);
        assert_eq!(a.count(), 8);
        assert_eq!((a.sum_ns, a.in_flight), (15, 3));
    }

    static BOUNDS: [u64; 2] = bounds_ns::<2>(&[3600.0]);
    static OPTIONS: SiteOptions = SiteOptions {
        kind: FnKind::Async,
        labels: &[],
        buckets: &[3600.0],
        bounds_ns: &BOUNDS,
        span: None,
        objective: None,
    };
    static SITE: Site = Site {
        function: "unit",
        module: "unit",
        file: file!(),
        line: line!(),
        options: &OPTIONS,
        state: SiteState::NEW,
    };

    #[test]
    fn a_site_never_called_has_no_cells_and_reads_as_zeros() {
        static IDLE: Site = Site {
            function: "idle",
            module: "unit",
            file: file!(),
            line: line!(),
            options: &SYNC_UNTRACED,
            state: SiteState::NEW,
        };
        let snap = IDLE.snapshot();
        assert!(IDLE.state.cells.load(Relaxed).is_null());
        assert_eq!(snap.buckets, vec![0; DEFAULT_B]);
        assert_eq!(snap.exemplars.len(), DEFAULT_B);
        IDLE.start().finish(Outcome::Ok);
        assert!(!IDLE.state.cells.load(Relaxed).is_null());
        assert_eq!(IDLE.snapshot().count(), 1);
    }

    #[test]
    fn guards_record_every_exit_and_in_flight_returns_to_zero() {
        let a = SITE.start();
        let b = SITE.start();
        assert_eq!(SITE.snapshot().in_flight, 2);
        a.finish(Outcome::Error);
        drop(b); // not finished, not panicking: cancelled
        let snap = SITE.snapshot();
        assert_eq!(snap.outcomes, [0, 1, 1]);
        assert_eq!(snap.buckets, vec![2, 0]);
        assert_eq!(snap.in_flight, 0);
        let c = SITE.start();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _guard = c;
            panic!("inside");
        }));
        assert!(caught.is_err());
        assert_eq!(SITE.snapshot().outcomes, [0, 2, 1], "a panic is an error");
    }

    #[test]
    // The leading `&` is what generated code writes: without it, non-`Result` values
    // would find no method. Clippy only sees that it is redundant for `Result`.
    #[allow(clippy::needless_borrow)]
    fn classification_by_autoref() {
        let ok: Result<u8, ()> = Ok(1);
        let err: Result<u8, ()> = Err(());
        assert_eq!((&Classifier(&ok)).__observe_outcome(), Outcome::Ok);
        assert_eq!((&Classifier(&err)).__observe_outcome(), Outcome::Error);
        assert_eq!((&Classifier(&5u8)).__observe_outcome(), Outcome::Ok);
    }
}
