//! Calls in progress (feature `inflight`): which `#[instrumented]` calls are running now,
//! since when, in which trace — the answer to "what is stuck", served at
//! `/debug/pprof/inflight`.
//!
//! Each call takes a slot in a fixed table when it starts and frees it when it ends (on
//! every exit path: the guard's drop frees it too). A thread looks for a free slot from
//! its own region of the table, so threads do not contend; a claim is one
//! compare-and-swap, a release one store. When every slot it tries is taken the call is
//! not listed, and counted as such: the table never grows.

use std::cell::Cell;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::time::Duration;

use super::clock;
use super::meta::{self, SiteMeta};

/// Slots in the table: calls listed at once.
pub const SLOTS: usize = 4096;
/// How many slots a claim tries before giving up.
const PROBES: usize = 64;

/// Marks a slot between its claim and the moment its fields are written.
static CLAIMING: SiteMeta = SiteMeta {
    function: "",
    module: "",
    file: "",
    line: 0,
    options: &super::site::SYNC_UNTRACED,
    state: meta::SiteState::NEW,
};

struct Slot {
    site: AtomicPtr<SiteMeta>,
    start: AtomicU64,
    trace_hi: AtomicU64,
    trace_lo: AtomicU64,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot {
    site: AtomicPtr::new(std::ptr::null_mut()),
    start: AtomicU64::new(0),
    trace_hi: AtomicU64::new(0),
    trace_lo: AtomicU64::new(0),
};

static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
static NOT_LISTED: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static CURSOR: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// No slot: the call is not listed.
pub const NONE: u32 = u32::MAX;

/// Lists a call of `site` that started at raw time `start`; returns its slot.
#[inline]
pub fn enter(site: &'static SiteMeta, start: u64) -> u32 {
    let cursor = CURSOR
        .try_with(|c| {
            if c.get() == usize::MAX {
                // Each shard of threads starts in a region of its own.
                c.set(meta::shard_index() * (SLOTS / meta::SHARDS));
            }
            c.get()
        })
        .unwrap_or(0);
    let claiming = &CLAIMING as *const SiteMeta as *mut SiteMeta;
    for probe in 0..PROBES {
        let index = (cursor + probe) % SLOTS;
        let slot = &TABLE[index];
        if slot.site.load(Ordering::Relaxed).is_null()
            && slot
                .site
                .compare_exchange(
                    std::ptr::null_mut(),
                    claiming,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            slot.start.store(start, Ordering::Relaxed);
            let trace = current_trace();
            slot.trace_hi.store((trace >> 64) as u64, Ordering::Relaxed);
            slot.trace_lo.store(trace as u64, Ordering::Relaxed);
            slot.site
                .store(site as *const SiteMeta as *mut SiteMeta, Ordering::Release);
            // The next call starts here: once freed, this slot (and its cache line) is
            // the first one tried again.
            let _ = CURSOR.try_with(|c| c.set(index));
            return index as u32;
        }
    }
    NOT_LISTED.fetch_add(1, Ordering::Relaxed);
    NONE
}

/// Frees the slot of a finished call.
#[inline]
pub fn exit(slot: u32) {
    if slot != NONE {
        TABLE[slot as usize]
            .site
            .store(std::ptr::null_mut(), Ordering::Release);
    }
}

/// The trace id of the current OpenTelemetry context (0 when there is none).
#[cfg(any(feature = "actix", feature = "otel"))]
fn current_trace() -> u128 {
    opentelemetry::Context::map_current(|cx| {
        use opentelemetry::trace::TraceContextExt as _;
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            u128::from_be_bytes(sc.trace_id().to_bytes())
        } else {
            0
        }
    })
}

#[cfg(not(any(feature = "actix", feature = "otel")))]
fn current_trace() -> u128 {
    0
}

/// One call in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// The `function` label.
    pub function: &'static str,
    /// The `module` label.
    pub module: &'static str,
    /// `file:line` of the definition.
    pub location: String,
    /// How long it has been running.
    pub elapsed: Duration,
    /// Its trace id, when it started inside a span.
    pub trace_id: Option<String>,
}

/// The calls in progress, oldest first, and how many were not listed since start-up
/// because the table was full (tests/inflight.rs reads it through the endpoint).
pub fn snapshot() -> (Vec<InFlight>, u64) {
    let now = clock::raw();
    let claiming = &CLAIMING as *const SiteMeta;
    let mut calls: Vec<InFlight> = TABLE
        .iter()
        .filter_map(|slot| {
            let site = slot.site.load(Ordering::Acquire);
            if site.is_null() || std::ptr::eq(site, claiming) {
                return None;
            }
            // SAFETY: only `&'static SiteMeta` pointers are stored.
            let meta: &'static SiteMeta = unsafe { &*site };
            let start = slot.start.load(Ordering::Relaxed);
            let trace = (u128::from(slot.trace_hi.load(Ordering::Relaxed)) << 64)
                | u128::from(slot.trace_lo.load(Ordering::Relaxed));
            Some(InFlight {
                function: meta.function,
                module: meta.module,
                location: meta.location(),
                elapsed: Duration::from_nanos(clock::nanos_between(start, now)),
                trace_id: (trace != 0).then(|| format!("{trace:032x}")),
            })
        })
        .collect();
    calls.sort_by_key(|c| std::cmp::Reverse(c.elapsed));
    (calls, NOT_LISTED.load(Ordering::Relaxed))
}

/// The `/debug/pprof/inflight` page.
pub(crate) fn render() -> String {
    use std::fmt::Write;
    let (calls, not_listed) = snapshot();
    let mut out = format!(
        "{} instrumented call(s) in progress, oldest first",
        calls.len()
    );
    if not_listed > 0 {
        let _ = write!(
            out,
            " ({not_listed} call(s) since start-up were not listed: the {PROBES} slots each tried were taken)"
        );
    }
    out.push_str("\n\n");
    for c in &calls {
        let _ = writeln!(
            out,
            "{:>12.3?}  {}::{}  {}{}",
            c.elapsed,
            c.module,
            c.function,
            c.location,
            c.trace_id
                .as_ref()
                .map(|t| format!("  trace_id={t}"))
                .unwrap_or_default()
        );
    }
    out
}
