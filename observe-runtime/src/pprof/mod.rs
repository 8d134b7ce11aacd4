//! Profiling (feature `pprof`): CPU profiles and flame graphs (pprof-rs), heap profiles
//! from jemalloc (feature `heap`), and the stack of every thread. The admin server mounts
//! these under `/debug/pprof`; nothing here knows about routes or access.

mod cpu;
#[cfg(feature = "heap")]
mod heap;
#[cfg(target_os = "linux")]
mod sampler;
#[cfg(target_os = "linux")]
mod threads;

pub(crate) use cpu::{PeerSocket, flamegraph, profile};
#[cfg(feature = "heap")]
pub(crate) use heap::heap;
#[cfg(feature = "heap")]
pub use heap::{Jemalloc, MALLOC_CONF};
#[cfg(target_os = "linux")]
pub(crate) use threads::dump as thread_dump;

/// Gives back what a profile or a dump left behind: the symbolizer's cache (the parsed
/// debug info of every object it looked into: tens of MiB) and, with glibc's allocator,
/// the free memory at the top of its heaps (`malloc_trim`).
pub(crate) fn release_memory() {
    backtrace::clear_symbol_cache();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of glibc's own heaps to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
