//! Profiling (feature `pprof`): CPU profiles and flame graphs (pprof-rs), heap profiles
//! from jemalloc (feature `heap`), and the stack of every thread. The admin server mounts
//! these under `/debug/pprof`; nothing here knows about routes or access.

mod cpu;
#[cfg(feature = "heap")]
mod heap;
#[cfg(target_os = "linux")]
mod threads;

pub(crate) use cpu::{flamegraph, profile};
#[cfg(feature = "heap")]
pub(crate) use heap::heap;
#[cfg(feature = "heap")]
pub use heap::{Jemalloc, MALLOC_CONF};
#[cfg(target_os = "linux")]
pub(crate) use threads::dump as thread_dump;
