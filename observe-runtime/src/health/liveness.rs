//! Liveness without dependency checks: every server worker beats a heartbeat once a
//! second from its own event loop; liveness fails when one is stale past a bound, so a
//! wedged worker is caught even though a probe lands on a random (healthy) worker, or on
//! the admin server's.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a worker beats.
///
/// ```
/// assert_eq!(observe_runtime::health::liveness::HEARTBEAT_PERIOD.as_secs(), 1);
/// ```
pub const HEARTBEAT_PERIOD: Duration = Duration::from_secs(1);
/// How stale a heartbeat may get before liveness fails, unless [`set_stale_after`] says.
///
/// ```
/// assert_eq!(observe_runtime::health::liveness::DEFAULT_STALE_AFTER.as_secs(), 10);
/// ```
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(10);

static STALE_AFTER_MS: AtomicU64 = AtomicU64::new(DEFAULT_STALE_AFTER.as_millis() as u64);

/// Sets how stale a worker's heartbeat may get before liveness fails (process-wide).
/// Keep it well above the longest a handler may legitimately block its worker.
///
/// ```
/// use std::time::Duration;
/// observe_runtime::health::liveness::set_stale_after(Duration::from_secs(15));
/// assert_eq!(observe_runtime::health::liveness::stale_after(), Duration::from_secs(15));
/// ```
pub fn set_stale_after(bound: Duration) {
    STALE_AFTER_MS.store(bound.as_millis() as u64, Relaxed);
}

/// The bound in effect.
///
/// ```
/// let bound = observe_runtime::health::liveness::stale_after();
/// assert!(bound > std::time::Duration::ZERO);
/// ```
pub fn stale_after() -> Duration {
    Duration::from_millis(STALE_AFTER_MS.load(Relaxed))
}

struct Heartbeat {
    name: String,
    /// Milliseconds since `EPOCH` of the last beat.
    last_ms: AtomicU64,
    /// The worker's event loop ended (server stopped): no longer watched.
    retired: AtomicBool,
}

static HEARTBEATS: Mutex<Vec<Arc<Heartbeat>>> = Mutex::new(Vec::new());

fn epoch() -> Instant {
    static EPOCH: once_cell::sync::Lazy<Instant> = once_cell::sync::Lazy::new(Instant::now);
    *EPOCH
}

fn now_ms() -> u64 {
    epoch().elapsed().as_millis() as u64
}

#[cfg(feature = "actix")]
struct Retire(Arc<Heartbeat>);

#[cfg(feature = "actix")]
impl Drop for Retire {
    fn drop(&mut self) {
        self.0.retired.store(true, Relaxed);
    }
}

/// Starts this worker's heartbeat on its event loop. Called from a worker's thread inside
/// its actix runtime (`observe::Middleware` and the health endpoints do it when the app is
/// built); does nothing elsewhere. Idempotent per thread.
#[cfg(feature = "actix")]
pub(crate) fn register_worker() {
    thread_local! {
        static REGISTERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if REGISTERED.with(|r| r.replace(true)) {
        return;
    }
    if actix_web::rt::System::try_current().is_none() {
        REGISTERED.with(|r| r.set(false));
        return;
    }
    let name = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_owned();
    let beat = Arc::new(Heartbeat {
        name,
        last_ms: AtomicU64::new(now_ms()),
        retired: AtomicBool::new(false),
    });
    {
        let mut all = HEARTBEATS.lock().unwrap_or_else(|p| p.into_inner());
        all.retain(|h| !h.retired.load(Relaxed));
        all.push(beat.clone());
    }
    // A local task: it runs only when this worker's event loop turns.
    // Built outside the task, so dropping a never-polled task retires the heartbeat too.
    let retire = Retire(beat);
    let task = async move {
        loop {
            retire.0.last_ms.store(now_ms(), Relaxed);
            tokio::time::sleep(HEARTBEAT_PERIOD).await;
        }
    };
    // A local task on the worker's own event loop; dropped (and retired) when it stops.
    // `spawn` needs the worker's `LocalSet`; off one, it panics: then nothing is watched.
    let spawned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        drop(actix_web::rt::spawn(task));
    }));
    if spawned.is_err() {
        REGISTERED.with(|r| r.set(false));
    }
}

/// Workers whose heartbeat is older than `stale_after`: (name, age).
///
/// ```
/// use std::time::Duration;
/// assert!(observe_runtime::health::liveness::stale_workers(Duration::from_secs(3600)).is_empty());
/// ```
pub fn stale_workers(stale_after: Duration) -> Vec<(String, Duration)> {
    let now = now_ms();
    let all = HEARTBEATS.lock().unwrap_or_else(|p| p.into_inner());
    all.iter()
        .filter(|h| !h.retired.load(Relaxed))
        .filter_map(|h| {
            let age = Duration::from_millis(now.saturating_sub(h.last_ms.load(Relaxed)));
            (age > stale_after).then(|| (h.name.clone(), age))
        })
        .collect()
}

/// Number of workers beating.
///
/// ```
/// let watched = observe_runtime::health::liveness::watched_workers();
/// # let _ = watched;
/// ```
pub fn watched_workers() -> usize {
    let all = HEARTBEATS.lock().unwrap_or_else(|p| p.into_inner());
    all.iter().filter(|h| !h.retired.load(Relaxed)).count()
}

#[cfg(all(test, feature = "actix"))]
mod tests {
    #[test]
    fn an_actix_thread_is_watched_once_registered() {
        actix_web::rt::System::new().block_on(async {
            super::register_worker();
            super::register_worker();
            assert!(super::watched_workers() >= 1);
        });
    }
}
