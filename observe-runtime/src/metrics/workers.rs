//! Requests in flight per server worker: the Rust counterpart of Go's goroutine count.
//!
//! Each actix-web worker is its own current-thread runtime with a `LocalSet`, so the
//! application's main tokio runtime says nothing about them. Each worker gets a slot
//! here, named after its thread; the HTTP layer increments and decrements the slot of the
//! worker it runs on. Each worker's own runtime (and the admin server's) is also watched
//! through tokio's stable runtime metrics: busy time, parks, alive tasks, queue depth.
//! These are gauges and counters with history in `/metrics`, never a health signal.

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

/// A watched runtime: its worker thread, label, metrics, and a token that dies with
/// the thread (a stopped server's workers leave `/metrics`).
#[cfg(all(feature = "actix", target_has_atomic = "64"))]
struct Watched {
    thread: std::thread::ThreadId,
    label: String,
    metrics: tokio::runtime::RuntimeMetrics,
    alive: std::sync::Weak<()>,
}

/// Runtimes watched for saturation: each actix worker's current-thread runtime (seen
/// when the application factory runs on it) and the admin server's, by thread.
#[cfg(all(feature = "actix", target_has_atomic = "64"))]
static RUNTIMES: Mutex<Vec<Watched>> = Mutex::new(Vec::new());

#[cfg(all(feature = "actix", target_has_atomic = "64"))]
thread_local! {
    /// Dropped when the worker thread ends.
    static ALIVE: Arc<()> = Arc::new(());
}

/// Watches the runtime the calling thread runs, under `label` (the thread's name when
/// `None`; a label already in use gets `-2`, `-3`, …). A thread is registered once: the
/// first label wins. At most [`MAX_WORKERS`] at a time; ended threads leave.
#[cfg(feature = "actix")]
pub(crate) fn watch_current_runtime(label: Option<&str>) {
    #[cfg(target_has_atomic = "64")]
    {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let thread = std::thread::current();
        let mut runtimes = RUNTIMES.lock().unwrap_or_else(|p| p.into_inner());
        runtimes.retain(|w| w.alive.strong_count() > 0);
        if runtimes.len() >= MAX_WORKERS || runtimes.iter().any(|w| w.thread == thread.id()) {
            return;
        }
        let wanted = label.or(thread.name()).unwrap_or("unnamed");
        let mut label = wanted.to_owned();
        let mut n = 1;
        while runtimes.iter().any(|w| w.label == label) {
            n += 1;
            label = format!("{wanted}-{n}");
        }
        runtimes.push(Watched {
            thread: thread.id(),
            label,
            metrics: handle.metrics(),
            alive: ALIVE.with(Arc::downgrade),
        });
    }
    #[cfg(not(target_has_atomic = "64"))]
    let _ = label;
}

/// One watched runtime's saturation, from tokio's stable runtime metrics.
#[cfg(feature = "actix")]
pub(crate) struct RuntimeSample {
    pub(crate) worker: String,
    /// Time its worker thread(s) spent running tasks, in all.
    pub(crate) busy_seconds: f64,
    /// Times its worker thread(s) parked for lack of work.
    pub(crate) parks: u64,
    /// Tasks spawned and not yet finished.
    pub(crate) alive_tasks: usize,
    /// Tasks waiting in its shared queue.
    pub(crate) queue_depth: usize,
}

/// Every watched runtime's saturation now.
#[cfg(feature = "actix")]
pub(crate) fn runtime_samples() -> Vec<RuntimeSample> {
    #[cfg(target_has_atomic = "64")]
    {
        let mut runtimes = RUNTIMES.lock().unwrap_or_else(|p| p.into_inner());
        runtimes.retain(|w| w.alive.strong_count() > 0);
        runtimes
            .iter()
            .map(|w| {
                let m = &w.metrics;
                let workers = 0..m.num_workers();
                RuntimeSample {
                    worker: w.label.clone(),
                    busy_seconds: workers
                        .clone()
                        .map(|w| m.worker_total_busy_duration(w).as_secs_f64())
                        .sum(),
                    parks: workers.map(|w| m.worker_park_count(w)).sum(),
                    alive_tasks: m.num_alive_tasks(),
                    queue_depth: m.global_queue_depth(),
                }
            })
            .collect()
    }
    #[cfg(not(target_has_atomic = "64"))]
    Vec::new()
}
