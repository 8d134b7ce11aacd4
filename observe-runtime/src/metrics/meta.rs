//! What a call site is, fixed at compile time (`SiteMeta`, `FnKind`), how a call ended
//! (`Outcome`), and which shard the calling thread writes to. The site store and the
//! in-flight table both build on this; it depends on neither.

use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, AtomicU8, AtomicUsize, Ordering::Relaxed};

/// Number of shards per call site. A thread keeps its shard for life; threads are dealt
/// shards round-robin, so up to this many threads never share a cache line.
pub const SHARDS: usize = 8;

/// How a call ended. The discriminant indexes the outcome counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Outcome {
    /// Returned normally and was classified as a success.
    Ok = 0,
    /// Returned `Err(_)` (or was classified as an error), or panicked.
    Error = 1,
    /// The future was dropped before it completed.
    Cancelled = 2,
}

impl Outcome {
    /// The value of the `result` label.
    pub const fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// Whether the instrumented function is synchronous or returns a future.
///
/// Only futures can be cancelled, so only they expose a `result="cancelled"` series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FnKind {
    /// A plain function.
    Sync,
    /// An `async fn` or a function returning `impl Future`.
    Async,
}

/// A call site: what the macro knows about the function (what differs from one function
/// to the next, and a reference to its options) and the state filled in at run time.
///
/// Generated code builds one `static` of this type per function with [`SiteMeta::new`],
/// with as little in it as possible (what the compiler evaluates per function was most of
/// what an annotated function cost to compile), placed in the link-time `SITES` slice
/// (`crate::registry`). `Site` (in `site.rs`) is the same type, with the hot path.
#[derive(Debug)]
pub struct SiteMeta {
    /// Value of the `function` label (the function name, or the `name = "…"` option).
    pub function: &'static str,
    /// Value of the `module` label (`module_path!()` of the definition).
    pub module: &'static str,
    /// Source file of the definition.
    pub file: &'static str,
    /// Source line of the function name.
    pub line: u32,
    /// Kind, labels, buckets and span: one of the shared `static`s (`SYNC`, `ASYNC`, …)
    /// unless the function sets options of its own.
    pub options: &'static SiteOptions,
    /// Run-time state; always [`SiteState::NEW`] in a `static`.
    pub state: SiteState,
}

impl SiteMeta {
    /// A site with no run-time state yet ([`SiteState::NEW`]): what generated code
    /// writes, one `static` per function.
    ///
    /// ```
    /// use observe_runtime::__private::{SYNC_UNTRACED, Site};
    /// static SITE: Site = Site::new("charge", module_path!(), file!(), line!(), &SYNC_UNTRACED);
    /// assert_eq!((SITE.function, SITE.module), ("charge", module_path!()));
    /// ```
    pub const fn new(
        function: &'static str,
        module: &'static str,
        file: &'static str,
        line: u32,
        options: &'static SiteOptions,
    ) -> Self {
        SiteMeta {
            function,
            module,
            file,
            line,
            options,
            state: SiteState::NEW,
        }
    }
}

/// The run-time state of a call site: its counters (allocated on the first call), its
/// span's metadata (built on the first call) and the span's registration and cached
/// interest.
#[derive(Debug)]
pub struct SiteState {
    /// The site's first counter word (`site.rs`), or null before the first call.
    pub(crate) cells: AtomicPtr<()>,
    /// The site's exemplar slots, one per bucket, set before `cells`.
    pub(crate) exemplars: AtomicPtr<super::exemplar::Slot>,
    /// Words per shard of `cells`, set before it (read beside it on the hot path).
    pub(crate) stride: AtomicUsize,
    pub(crate) span_meta: AtomicPtr<tracing::Metadata<'static>>,
    pub(crate) interest: AtomicU8,
    pub(crate) registration: AtomicU8,
}

/// `SiteState::registration` before the span's callsite is registered with `tracing`.
pub(crate) const UNREGISTERED: u8 = 0;
/// `SiteState::interest` before `tracing` has said anything.
pub(crate) const INTEREST_UNKNOWN: u8 = 0xFF;

impl SiteState {
    /// Nothing allocated, nothing registered.
    #[allow(clippy::declare_interior_mutable_const)]
    pub const NEW: SiteState = SiteState {
        cells: AtomicPtr::new(std::ptr::null_mut()),
        exemplars: AtomicPtr::new(std::ptr::null_mut()),
        stride: AtomicUsize::new(0),
        span_meta: AtomicPtr::new(std::ptr::null_mut()),
        interest: AtomicU8::new(INTEREST_UNKNOWN),
        registration: AtomicU8::new(UNREGISTERED),
    };
}

/// The options of a call site, shared by every function that uses the same ones.
#[derive(Debug)]
pub struct SiteOptions {
    /// Sync or async.
    pub kind: FnKind,
    /// Static labels from `labels(key = "value", …)`, in source order.
    pub labels: &'static [(&'static str, &'static str)],
    /// Histogram upper bounds in seconds, strictly increasing, without `+Inf`.
    pub buckets: &'static [f64],
    /// The same bounds in nanoseconds, with `u64::MAX` (`+Inf`) last.
    pub bounds_ns: &'static [u64],
    /// The span of each call, or `None` (`span = false`, or a span the function builds
    /// itself with `fields(…)`).
    pub span: Option<SpanSpec>,
    /// The service-level objective its calls count towards (`objective = …`).
    pub objective: Option<&'static super::objective::Objective>,
}

/// The span a site opens for each call: its level and its field names (all recorded
/// later, or never: `Empty` when the span is created).
#[derive(Debug)]
pub struct SpanSpec {
    /// The span's level.
    pub level: tracing::Level,
    /// The span's field names.
    pub fields: &'static [&'static str],
}

impl SiteMeta {
    /// Sync or async.
    pub fn kind(&self) -> FnKind {
        self.options.kind
    }

    /// The static labels.
    pub fn labels(&self) -> &'static [(&'static str, &'static str)] {
        self.options.labels
    }

    /// The histogram bounds in seconds.
    pub fn buckets(&self) -> &'static [f64] {
        self.options.buckets
    }

    /// The objective, if the function has one.
    pub fn objective(&self) -> Option<&'static super::objective::Objective> {
        self.options.objective
    }

    /// `file:line` of the definition, for error messages.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

/// The calling thread's shard, dealt round-robin on first use.
#[inline(always)]
pub(crate) fn shard_index() -> usize {
    SHARD.with(|slot| {
        let index = slot.get();
        if index < SHARDS {
            index
        } else {
            assign_shard(slot)
        }
    })
}

#[cold]
#[inline(never)]
fn assign_shard(slot: &Cell<usize>) -> usize {
    let index = NEXT_SHARD.fetch_add(1, Relaxed) % SHARDS;
    slot.set(index);
    index
}
