//! Requests in flight per server worker: the Rust counterpart of Go's goroutine count.
//!
//! tokio's runtime metrics do not see actix-web workers (each worker is its own
//! current-thread runtime with a `LocalSet`), so a worker that is stuck or overloaded is
//! invisible there. Each worker gets a slot here, named after its thread; the HTTP layer
//! increments and decrements the slot of the worker it runs on. These are gauges with
//! history in `/metrics`, never a health signal.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Most distinct worker names tracked; later ones share the `other` slot, so a server that
/// keeps restarting workers cannot grow the series count without bound.
#[cfg(feature = "actix")]
pub const MAX_WORKERS: usize = 256;

/// Counters of one worker.
#[derive(Debug, Default)]
pub struct WorkerSlot {
    name: String,
    in_flight: AtomicI64,
    total: AtomicU64,
}

#[cfg(feature = "actix")]
impl WorkerSlot {
    /// Marks a request as started; the returned guard marks it finished when dropped.
    pub fn enter(self: &Arc<Self>) -> WorkerRequest {
        self.in_flight.fetch_add(1, Relaxed);
        self.total.fetch_add(1, Relaxed);
        WorkerRequest { slot: self.clone() }
    }
}

/// A request in progress on a worker; see [`WorkerSlot::enter`].
#[cfg(feature = "actix")]
#[derive(Debug)]
pub struct WorkerRequest {
    slot: Arc<WorkerSlot>,
}

#[cfg(feature = "actix")]
impl Drop for WorkerRequest {
    fn drop(&mut self) {
        self.slot.in_flight.fetch_sub(1, Relaxed);
    }
}

static SLOTS: Mutex<Vec<Arc<WorkerSlot>>> = Mutex::new(Vec::new());

/// The slot of the calling thread's worker, created on first use (once per worker, when
/// the application factory runs, not per request).
#[cfg(feature = "actix")]
pub fn slot_for_current_thread() -> Arc<WorkerSlot> {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("unnamed");
    let mut slots = SLOTS.lock().unwrap_or_else(|poison| poison.into_inner());
    if let Some(slot) = slots.iter().find(|s| s.name == name) {
        return slot.clone();
    }
    let name = if slots.len() >= MAX_WORKERS {
        "other"
    } else {
        name
    };
    if let Some(slot) = slots.iter().find(|s| s.name == name) {
        return slot.clone();
    }
    let slot = Arc::new(WorkerSlot {
        name: name.to_owned(),
        ..WorkerSlot::default()
    });
    slots.push(slot.clone());
    slot
}

/// `(worker name, in flight, total)` for every worker seen so far.
pub(crate) fn samples() -> Vec<(String, i64, u64)> {
    let slots = SLOTS.lock().unwrap_or_else(|poison| poison.into_inner());
    slots
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                s.in_flight.load(Relaxed).max(0),
                s.total.load(Relaxed),
            )
        })
        .collect()
}
