//! The per-call-site metric store behind `#[instrumented]`.
//!
//! Every instrumented function owns two `static`s that the macro emits inside its body:
//! a [`Cells`] (all zeros, so it lives in `.bss`) and a [`Site`] that points at it and
//! carries the function's metadata and histogram bounds. The hot path touches only the
//! cells of the current thread's shard: one `fetch_add` when the call starts and three when
//! it ends (outcome, bucket, sum), no hashing, no locking, no allocation. Two threads
//! calling the same function write to different cache lines, so the cost per call does
//! not grow with contention the way a shared `prometheus::Histogram` does.
//!
//! Derived values are computed when scraping, never on the hot path:
//! - histogram `_count` is the sum of the buckets;
//! - the in-flight gauge is `started − (ok + error + cancelled)`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub use super::classify::{Classifier, ClassifyOther, ClassifyResult, outcome_from};
use super::clock;
use super::exemplar::{Exemplar, Slot};
pub(crate) use super::meta::shard_index;
pub use super::meta::{FnKind, Outcome, SHARDS, SiteMeta};

/// One thread's share of a call site's counters, on cache lines of its own.
#[repr(align(128))]
pub struct Shard<const B: usize> {
    started: AtomicU64,
    outcomes: [AtomicU64; 3],
    sum_ns: AtomicU64,
    /// Non-cumulative bucket counts; the last one is `+Inf`.
    buckets: [AtomicU64; B],
}

/// The zero-initialised counters of one call site (`B` buckets including `+Inf`).
pub struct Cells<const B: usize> {
    shards: [Shard<B>; SHARDS],
    /// One exemplar per bucket, shared by all threads: read on every call, written at
    /// most once a second (or a hundred times when unsampled), so never contended.
    exemplars: [Slot; B],
}

impl<const B: usize> Cells<B> {
    /// All counters at zero. `const`, so the `static` needs no lazy initialisation.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        #[allow(clippy::declare_interior_mutable_const)]
        const ZERO: AtomicU64 = AtomicU64::new(0);
        #[allow(clippy::declare_interior_mutable_const)]
        const fn shard<const B: usize>() -> Shard<B> {
            Shard {
                started: ZERO,
                outcomes: [ZERO; 3],
                sum_ns: ZERO,
                buckets: [ZERO; B],
            }
        }
        Cells {
            shards: [const { shard::<B>() }; SHARDS],
            exemplars: [const { Slot::new() }; B],
        }
    }

    #[inline(always)]
    fn local(&self) -> &Shard<B> {
        // shard_index() < SHARDS by construction.
        &self.shards[shard_index()]
    }
}

/// A call site: metadata, bucket bounds in nanoseconds, and a pointer to its cells.
///
/// `B` is the number of buckets including `+Inf`; `bounds_ns[B - 1]` is `u64::MAX`.
pub struct Site<const B: usize> {
    meta: SiteMeta,
    bounds_ns: [u64; B],
    cells: &'static Cells<B>,
}

impl<const B: usize> Site<B> {
    /// Builds a site; called in a `static` initialiser by the macro expansion.
    pub const fn new(meta: SiteMeta, bounds_ns: [u64; B], cells: &'static Cells<B>) -> Self {
        Site {
            meta,
            bounds_ns,
            cells,
        }
    }

    /// Starts timing one call. The returned guard records the call when it is finished
    /// or dropped, on every exit path.
    #[inline(always)]
    pub fn start(&'static self) -> Guard<B> {
        self.cells.local().started.fetch_add(1, Relaxed);
        let start = clock::raw();
        Guard {
            site: self,
            start,
            #[cfg(feature = "inflight")]
            slot: super::inflight::enter(&self.meta, start),
        }
    }

    /// Records one finished call; `exemplar` also offers it to the bucket's exemplar slot.
    #[inline(always)]
    fn record(&self, start: u64, outcome: Outcome, exemplar: bool) {
        let end = clock::raw();
        let elapsed = clock::nanos_between(start, end);
        let shard = self.cells.local();
        let bucket = bucket_index(&self.bounds_ns, elapsed);
        shard.outcomes[outcome as usize].fetch_add(1, Relaxed);
        shard.buckets[bucket].fetch_add(1, Relaxed);
        shard.sum_ns.fetch_add(elapsed, Relaxed);
        if exemplar {
            self.cells.exemplars[bucket].observe(end, elapsed);
        }
    }
}

/// Index of the bucket an observation falls in: the first bound `>=` it (Prometheus'
/// `le`), found as the count of bounds below it, a branch-free loop over a small array.
/// The last bound is `u64::MAX`, so the index is always in range.
#[inline(always)]
pub(crate) fn bucket_index<const B: usize>(bounds_ns: &[u64; B], elapsed: u64) -> usize {
    bounds_ns
        .iter()
        .filter(|&&b| b < elapsed)
        .count()
        .min(B - 1)
}

/// Records one call when finished or dropped. See [`Site::start`].
#[must_use = "dropping the guard at once records a call of zero length"]
pub struct Guard<const B: usize> {
    site: &'static Site<B>,
    start: u64,
    #[cfg(feature = "inflight")]
    slot: u32,
}

impl<const B: usize> Guard<B> {
    /// Records the call with the given outcome (no exemplar: `span = false` functions
    /// stay leaf functions, which measured ~5 ns a call cheaper).
    #[inline(always)]
    pub fn finish(self, outcome: Outcome) {
        self.finish_with(outcome, false);
    }

    /// Records the call inside its span, offering it as the bucket's exemplar.
    #[inline(always)]
    pub fn finish_traced(self, outcome: Outcome) {
        self.finish_with(outcome, true);
    }

    #[inline(always)]
    fn finish_with(self, outcome: Outcome, exemplar: bool) {
        let this = std::mem::ManuallyDrop::new(self);
        #[cfg(feature = "inflight")]
        super::inflight::exit(this.slot);
        this.site.record(this.start, outcome, exemplar);
    }
}

/// An `async` function's body with its call guard: polls the body, and when it is ready
/// records the call with the outcome `classify` gives (inside the span, when `traced`,
/// so it may become the bucket's exemplar). Dropped before that, the guard records the
/// call as cancelled (or, while panicking, as an error). One small generic type instead
/// of a second `async` block in every instrumented function.
pub struct Timed<F: Future, const B: usize> {
    // Dropped first: a cancelled body ends before its call is recorded.
    future: F,
    guard: Option<Guard<B>>,
    classify: fn(&F::Output) -> Outcome,
    traced: bool,
}

/// See [`Timed`].
#[inline(always)]
pub fn timed<F: Future, const B: usize>(
    future: F,
    guard: Guard<B>,
    classify: fn(&F::Output) -> Outcome,
    traced: bool,
) -> Timed<F, B> {
    Timed {
        future,
        guard: Some(guard),
        classify,
        traced,
    }
}

impl<F: Future, const B: usize> Future for Timed<F, B> {
    type Output = F::Output;

    #[inline]
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        // SAFETY: `future` is structurally pinned (never moved out of `self`, dropped in
        // place); the other fields are not pinned and are only read or taken.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above.
        let future = unsafe { std::pin::Pin::new_unchecked(&mut this.future) };
        let out = std::task::ready!(future.poll(cx));
        if let Some(guard) = this.guard.take() {
            finish_call(guard, (this.classify)(&out), this.traced);
        }
        std::task::Poll::Ready(out)
    }
}

/// [`Timed`]'s recording, out of line: one copy per bucket count, not one inlined into
/// every async function (which made release builds slower).
#[inline(never)]
fn finish_call<const B: usize>(guard: Guard<B>, outcome: Outcome, traced: bool) {
    guard.finish_with(outcome, traced);
}

impl<const B: usize> Drop for Guard<B> {
    /// Reached only when `finish` was not: the call panicked (an error) or its future was
    /// dropped before completion (cancelled).
    #[cold]
    fn drop(&mut self) {
        let outcome = if std::thread::panicking() {
            Outcome::Error
        } else {
            Outcome::Cancelled
        };
        #[cfg(feature = "inflight")]
        super::inflight::exit(self.slot);
        self.site.record(self.start, outcome, false);
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

/// Object-safe view of a [`Site`] for the registry (the link-time slice holds these).
pub trait SiteDyn: Sync {
    /// The site's metadata.
    fn meta(&self) -> &SiteMeta;
    /// Sums the shards.
    fn snapshot(&self) -> Snapshot;
}

impl<const B: usize> SiteDyn for Site<B> {
    fn meta(&self) -> &SiteMeta {
        &self.meta
    }

    fn snapshot(&self) -> Snapshot {
        let mut snap = Snapshot {
            buckets: vec![0; B],
            ..Snapshot::default()
        };
        let mut started = 0u64;
        // Finished counts are read before `started`, so in-flight never goes negative.
        for shard in &self.cells.shards {
            for (total, cell) in snap.outcomes.iter_mut().zip(&shard.outcomes) {
                *total += cell.load(Relaxed);
            }
            for (total, cell) in snap.buckets.iter_mut().zip(&shard.buckets) {
                *total += cell.load(Relaxed);
            }
            snap.sum_ns += shard.sum_ns.load(Relaxed);
        }
        for shard in &self.cells.shards {
            started += shard.started.load(Relaxed);
        }
        let finished: u64 = snap.outcomes.iter().sum();
        snap.in_flight = started.saturating_sub(finished);
        snap.exemplars = self.cells.exemplars.iter().map(Slot::get).collect();
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

    static CELLS: Cells<2> = Cells::new();
    static SITE: Site<2> = Site::new(
        SiteMeta {
            function: "unit",
            module: "unit",
            file: file!(),
            line: line!(),
            labels: &[],
            buckets: &[3600.0],
            kind: FnKind::Async,
        },
        bounds_ns::<2>(&[3600.0]),
        &CELLS,
    );

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
