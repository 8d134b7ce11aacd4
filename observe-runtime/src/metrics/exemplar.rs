//! OpenMetrics exemplars: the trace id of one recent observation per histogram bucket.
//!
//! The trace id is never a label (that would make one series per request); it rides on
//! the bucket line as an exemplar, which Prometheus stores beside the series and Grafana
//! links to the trace.
//!
//! Cost on the hot path: one relaxed load and a compare per observation. Only when the
//! bucket's slot is *due* does the cold path read the current OpenTelemetry context:
//! a sampled span's ids are kept and the slot rests for [`REFRESH`]; otherwise (no span,
//! or not sampled) it rests for [`RETRY`], so unsampled traffic pays the context read at
//! most a hundred times a second per bucket.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use once_cell::sync::Lazy;

use super::clock;

/// How long a slot keeps an exemplar before it takes a newer one.
pub const REFRESH: Duration = Duration::from_secs(1);
/// How long a slot waits after an observation outside any sampled span.
pub const RETRY: Duration = Duration::from_millis(10);

/// One exemplar: the ids of a sampled span, the observed value and when.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exemplar {
    /// The W3C trace id.
    pub trace_id: u128,
    /// The span id.
    pub span_id: u64,
    /// The observed value, in seconds.
    pub value: f64,
    /// When it was observed, in seconds since the Unix epoch.
    pub timestamp: f64,
}

impl Exemplar {
    /// The newer of two optional exemplars.
    pub(crate) fn newest(a: Option<Exemplar>, b: Option<Exemplar>) -> Option<Exemplar> {
        match (a, b) {
            (Some(x), Some(y)) => Some(if y.timestamp > x.timestamp { y } else { x }),
            (x, None) => x,
            (None, y) => y,
        }
    }
}

/// One bucket's exemplar slot; `const`-constructible so it lives in `.bss` statics.
pub struct Slot {
    /// Raw clock reading before which the slot is not offered observations.
    next_due: AtomicU64,
    data: Mutex<Option<Exemplar>>,
}

impl Slot {
    /// An empty slot, due at once.
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        Slot {
            next_due: AtomicU64::new(0),
            data: Mutex::new(None),
        }
    }

    /// Offers an observation that ended at raw time `end`; cheap unless the slot is due.
    #[inline(always)]
    pub fn observe(&self, end: u64, value_ns: u64) {
        self.observe_with(end, value_ns, current_sampled);
    }

    /// As [`Slot::observe`], with the span's ids from `ids` (called only when due).
    #[inline(always)]
    pub fn observe_with(&self, end: u64, value_ns: u64, ids: impl FnOnce() -> Option<(u128, u64)>) {
        if end >= self.next_due.load(Relaxed) {
            self.offer(end, value_ns, ids);
        }
    }

    /// The cold path: keeps the ids from `ids` when they are there.
    #[cold]
    #[inline(never)]
    pub(crate) fn offer(&self, end: u64, value_ns: u64, ids: impl FnOnce() -> Option<(u128, u64)>) {
        match ids() {
            Some((trace_id, span_id)) => {
                let exemplar = Exemplar {
                    trace_id,
                    span_id,
                    value: value_ns as f64 / 1e9,
                    timestamp: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64()),
                };
                *self.data.lock().unwrap_or_else(|p| p.into_inner()) = Some(exemplar);
                self.next_due
                    .store(end.saturating_add(*REFRESH_TICKS), Relaxed);
            }
            None => self
                .next_due
                .store(end.saturating_add(*RETRY_TICKS), Relaxed),
        }
    }

    /// The exemplar held, if any.
    pub fn get(&self) -> Option<Exemplar> {
        *self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

static REFRESH_TICKS: Lazy<u64> = Lazy::new(|| clock::ticks(REFRESH));
static RETRY_TICKS: Lazy<u64> = Lazy::new(|| clock::ticks(RETRY));

/// The ids of the current OpenTelemetry span when it is sampled.
#[cfg(any(feature = "actix", feature = "otel"))]
pub(crate) fn current_sampled() -> Option<(u128, u64)> {
    opentelemetry::Context::map_current(ids_of)
}

/// The ids of `cx`'s span when it is sampled.
#[cfg(any(feature = "actix", feature = "otel"))]
pub(crate) fn ids_of(cx: &opentelemetry::Context) -> Option<(u128, u64)> {
    use opentelemetry::trace::TraceContextExt as _;
    let span = cx.span();
    let sc = span.span_context();
    (sc.is_valid() && sc.is_sampled()).then(|| {
        (
            u128::from_be_bytes(sc.trace_id().to_bytes()),
            u64::from_be_bytes(sc.span_id().to_bytes()),
        )
    })
}

/// Without OpenTelemetry there is never a sampled span.
#[cfg(not(any(feature = "actix", feature = "otel")))]
pub(crate) fn current_sampled() -> Option<(u128, u64)> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_keeps_sampled_ids_then_rests() {
        let slot = Slot::new();
        let t0 = clock::raw();
        slot.offer(t0, 1_500_000, || None);
        assert_eq!(slot.get(), None, "no sampled span: nothing kept");
        slot.offer(t0, 2_000_000, || Some((0xabc, 0x12)));
        let kept = slot.get().expect("kept");
        assert_eq!(
            (kept.trace_id, kept.span_id, kept.value),
            (0xabc, 0x12, 0.002)
        );
        // Resting: an observation right after is not offered (the closure would panic).
        slot.observe(t0 + 1, 5);
        assert_eq!(slot.get(), Some(kept));
    }
}
