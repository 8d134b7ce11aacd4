//! Profiling (feature `pprof`): CPU profiles and flame graphs (pprof-rs), heap profiles
//! from jemalloc (feature `heap`), and the stack of every thread. The admin server mounts
//! these under `/debug/pprof`; nothing here knows about routes or access.

mod cpu;
#[cfg(feature = "heap")]
mod heap;
#[cfg(target_os = "linux")]
mod sampler;
#[cfg(target_os = "linux")]
mod signal;
#[cfg(target_os = "linux")]
mod threads;

pub(crate) use cpu::{PeerSocket, busy, flamegraph, profile};
#[cfg(feature = "heap")]
pub(crate) use heap::heap;
#[cfg(feature = "heap")]
pub use heap::{Jemalloc, MALLOC_CONF};
#[cfg(target_os = "linux")]
pub(crate) use threads::dump as thread_dump;

/// How long the symbolizer's cache outlives the last profile or dump: dumps taken one
/// after another parse the debug info once, and memory still returns soon after.
const KEEP_SYMBOLS: std::time::Duration = std::time::Duration::from_secs(2);

/// Gives back what a profile or a dump left behind, [`KEEP_SYMBOLS`] after the last one:
/// the symbolizer's cache (the parsed debug info of every object it looked into: tens of
/// MiB) and, with glibc's allocator, the free memory at the top of its heaps
/// (`malloc_trim`).
pub(crate) fn release_memory() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let this = LAST.fetch_add(1, Ordering::SeqCst) + 1;
    let later = std::thread::Builder::new()
        .name("observe-pprof-release".into())
        .spawn(move || {
            std::thread::sleep(KEEP_SYMBOLS);
            // A later profile or dump releases in its turn.
            if LAST.load(Ordering::SeqCst) == this {
                release_now();
            }
        });
    if later.is_err() {
        release_now();
    }
}

fn release_now() {
    backtrace::clear_symbol_cache();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of glibc's own heaps to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
