//! The CPU sampler behind `/debug/pprof/profile` and `/debug/pprof/flamegraph`.
//!
//! pprof-rs's own profiler keeps a sample table of ~64 MiB in a process-wide static
//! once it has been used, and re-allocates (and touches) a fresh one when a profile
//! stops, so the first profile left ~130 MiB resident for good. This sampler uses the
//! same technique (an `ITIMER_PROF` timer; on `SIGPROF`, the interrupted thread walks
//! its own stack with `backtrace::trace_unsynchronized`, unless it was interrupted
//! inside libc, libgcc, libpthread or the vDSO, as pprof-rs advises) but writes into a
//! buffer sized for this one profile — `seconds × frequency × cores` samples of
//! 1,032 bytes each, at most [`MAX_SAMPLES`] — allocated zeroed (untouched pages cost
//! nothing) when it starts and freed when it ends. The samples are then symbolized and
//! handed to pprof-rs as a `Report`, whose encoders write `profile.proto` and the flame
//! graph.

use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::time::SystemTime;

use super::signal::{gettid, install, registers};

/// Deepest stack recorded (pprof-rs' default too).
pub(crate) const MAX_DEPTH: usize = 128;
/// Most samples one profile keeps; past it samples are counted as dropped.
pub(crate) const MAX_SAMPLES: usize = 65_536;
/// Executable ranges the handler does not unwind from (at most this many).
const MAX_BLOCKED: usize = 32;

#[repr(C)]
struct Sample {
    tid: i32,
    depth: u32,
    ips: [usize; MAX_DEPTH],
}

struct Buffer {
    samples: Box<[UnsafeCell<Sample>]>,
    next: AtomicUsize,
    dropped: AtomicUsize,
    blocked: AtomicUsize,
    blocklist: [(usize, usize); MAX_BLOCKED],
}

// SAFETY: each slot is written by the one handler that claimed its index (`next`), and
// read only after every handler has left (see `Sampler::finish`).
unsafe impl Sync for Buffer {}

/// The buffer of the profile running now (null: none).
static ACTIVE: AtomicPtr<Buffer> = AtomicPtr::new(ptr::null_mut());
/// Handlers running now; the buffer is freed only when none is.
static IN_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// The `SIGPROF` handler: atomics, a stack walk into a slot claimed for this sample,
/// nothing that allocates or locks.
extern "C" fn on_sigprof(_: libc::c_int, _: *mut libc::siginfo_t, context: *mut c_void) {
    IN_HANDLER.fetch_add(1, Ordering::SeqCst);
    let buffer = ACTIVE.load(Ordering::SeqCst);
    if !buffer.is_null() {
        // SAFETY: non-null while `IN_HANDLER` counts us (see `Sampler::finish`).
        let buffer = unsafe { &*buffer };
        let ip = registers(context).map(|r| r[0] as usize);
        if ip.is_some_and(|ip| buffer.blocklist.iter().any(|&(lo, hi)| ip >= lo && ip < hi)) {
            buffer.blocked.fetch_add(1, Ordering::Relaxed);
        } else {
            let i = buffer.next.fetch_add(1, Ordering::Relaxed);
            if let Some(slot) = buffer.samples.get(i) {
                // SAFETY: index `i` is ours alone.
                let sample = unsafe { &mut *slot.get() };
                sample.tid = gettid();
                let mut depth = 0;
                // SAFETY: the unsynchronized walk takes no lock; pprof-rs samples the same
                // way, with the same blocklist.
                unsafe {
                    backtrace::trace_unsynchronized(|frame| {
                        sample.ips[depth] = frame.ip() as usize;
                        depth += 1;
                        depth < MAX_DEPTH
                    });
                }
                sample.depth = depth as u32;
            } else {
                buffer.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    IN_HANDLER.fetch_sub(1, Ordering::SeqCst);
}

/// Executable mappings of the libraries pprof-rs blocklists, from `/proc/self/maps`.
fn blocklist() -> [(usize, usize); MAX_BLOCKED] {
    let mut out = [(0, 0); MAX_BLOCKED];
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let ranges = maps.lines().filter_map(|line| {
        let mut fields = line.split_whitespace();
        let range = fields.next()?;
        let perms = fields.next()?;
        let path = fields.nth(3).unwrap_or("");
        let file = path.rsplit('/').next().unwrap_or("");
        let blocked = ["libc.", "libc-", "libgcc", "libpthread", "[vdso]"]
            .iter()
            .any(|b| file.starts_with(b));
        if !perms.contains('x') || !blocked {
            return None;
        }
        let (lo, hi) = range.split_once('-')?;
        Some((
            usize::from_str_radix(lo, 16).ok()?,
            usize::from_str_radix(hi, 16).ok()?,
        ))
    });
    for (slot, range) in out.iter_mut().zip(ranges) {
        *slot = range;
    }
    out
}

/// A running CPU profile; [`finish`](Sampler::finish) stops it and returns the report.
/// Dropped unfinished (the client went away), it stops sampling and frees its buffer.
pub(crate) struct Sampler {
    buffer: *mut Buffer,
    frequency: i32,
    started: SystemTime,
}

// SAFETY: the pointer is owned by this value; the handler only reads through `ACTIVE`.
unsafe impl Send for Sampler {}

impl Sampler {
    /// Starts sampling every thread's CPU time at `frequency` Hz, with room for
    /// `seconds` of samples on every core. Fails when the handler or timer cannot be set.
    pub(crate) fn start(frequency: i32, seconds: u64) -> Result<Sampler, String> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let capacity = (seconds as usize)
            .saturating_mul(frequency as usize)
            .saturating_mul(cores)
            .saturating_add(64)
            .min(MAX_SAMPLES);
        // Zeroed: the allocator maps fresh pages, touched only by samples actually taken.
        let samples: Box<[UnsafeCell<Sample>]> = {
            let layout = std::alloc::Layout::array::<UnsafeCell<Sample>>(capacity)
                .map_err(|e| e.to_string())?;
            // SAFETY: an all-zero `Sample` is valid (integers only); the layout is the
            // slice's, and ownership passes to the Box, which frees it with that layout.
            unsafe {
                let raw = std::alloc::alloc_zeroed(layout) as *mut UnsafeCell<Sample>;
                if raw.is_null() {
                    return Err(format!("no memory for {capacity} samples"));
                }
                Box::from_raw(ptr::slice_from_raw_parts_mut(raw, capacity))
            }
        };
        let buffer = Box::into_raw(Box::new(Buffer {
            samples,
            next: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            blocked: AtomicUsize::new(0),
            blocklist: blocklist(),
        }));
        let sampler = Sampler {
            buffer,
            frequency,
            started: SystemTime::now(),
        };
        install(libc::SIGPROF, on_sigprof)?;
        // SAFETY: arms the process CPU-time timer.
        unsafe {
            ACTIVE.store(buffer, Ordering::SeqCst);
            let micros = (1_000_000 / frequency.max(1)) as libc::suseconds_t;
            let interval = libc::timeval {
                tv_sec: 0,
                tv_usec: micros,
            };
            let timer = libc::itimerval {
                it_interval: interval,
                it_value: interval,
            };
            if libc::setitimer(libc::ITIMER_PROF, &timer, ptr::null_mut()) != 0 {
                return Err(format!(
                    "setitimer(ITIMER_PROF): {}",
                    std::io::Error::last_os_error()
                ));
            }
        }
        Ok(sampler)
    }

    /// Stops the timer, waits for handlers in progress, and takes the buffer back.
    fn stop(&mut self) -> Option<Box<Buffer>> {
        if self.buffer.is_null() {
            return None;
        }
        // SAFETY: a zero timer disarms it; SIGPROF is then ignored, so a signal still
        // pending cannot reach a handler after the buffer is gone.
        unsafe {
            let zero: libc::itimerval = std::mem::zeroed();
            libc::setitimer(libc::ITIMER_PROF, &zero, ptr::null_mut());
            libc::signal(libc::SIGPROF, libc::SIG_IGN);
        }
        ACTIVE.store(ptr::null_mut(), Ordering::SeqCst);
        while IN_HANDLER.load(Ordering::SeqCst) > 0 {
            std::thread::yield_now();
        }
        let buffer = std::mem::replace(&mut self.buffer, ptr::null_mut());
        // SAFETY: made by `Box::into_raw` in `start`; no handler can reach it any more.
        Some(unsafe { Box::from_raw(buffer) })
    }

    /// Stops sampling and symbolizes what was sampled, as pprof-rs' report (one entry
    /// per distinct stack and thread).
    pub(crate) fn finish(mut self) -> pprof::Report {
        let duration = self.started.elapsed().unwrap_or_default();
        let buffer = self.stop().expect("a sampler finishes once");
        let taken = buffer
            .next
            .load(Ordering::Relaxed)
            .min(buffer.samples.len());
        let mut stacks: HashMap<(i32, &[usize]), isize> = HashMap::new();
        for slot in &buffer.samples[..taken] {
            // SAFETY: every handler has left; the slots are only read now.
            let sample = unsafe { &*slot.get() };
            let ips = &sample.ips[..sample.depth as usize];
            *stacks.entry((sample.tid, ips)).or_default() += 1;
        }
        let mut symbols: HashMap<usize, Vec<pprof::Symbol>> = HashMap::new();
        let mut names: HashMap<i32, String> = HashMap::new();
        let mut data = HashMap::new();
        for ((tid, ips), count) in stacks {
            let frames = ips
                .iter()
                .map(|&ip| symbols.entry(ip).or_insert_with(|| resolve(ip)).clone())
                .filter(|symbols| !symbols.is_empty())
                .collect();
            let thread_name = names
                .entry(tid)
                .or_insert_with(|| {
                    std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
                        .map(|n| n.trim_end().to_owned())
                        .unwrap_or_else(|_| tid.to_string())
                })
                .clone();
            let frames = pprof::Frames {
                frames,
                thread_name,
                thread_id: tid as u64,
                sample_timestamp: self.started,
            };
            *data.entry(frames).or_default() += count;
        }
        let dropped = buffer.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                target: "observe::pprof",
                "{dropped} CPU samples dropped: the profile's buffer holds {} samples",
                buffer.samples.len()
            );
        }
        drop(buffer);
        let mut report = pprof::Report {
            data,
            timing: Default::default(),
        };
        report.timing.frequency = self.frequency;
        report.timing.start_time = self.started;
        report.timing.duration = duration;
        report
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        drop(self.stop());
    }
}

fn resolve(ip: usize) -> Vec<pprof::Symbol> {
    let mut out = Vec::new();
    backtrace::resolve(ip as *mut c_void, |symbol| {
        out.push(pprof::Symbol {
            name: symbol.name().map(|n| n.as_bytes().to_vec()),
            addr: symbol.addr(),
            lineno: symbol.lineno(),
            filename: symbol.filename().map(|p| p.to_path_buf()),
        });
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_about_a_kibibyte_and_the_buffer_is_bounded() {
        assert_eq!(size_of::<Sample>(), 1032);
        // 60 s at 1,000 Hz on any machine: at most 64 Ki samples, 66 MiB.
        assert!(MAX_SAMPLES * size_of::<Sample>() <= 66 * 1024 * 1024);
    }

    #[test]
    fn samples_a_busy_thread_and_frees_its_buffer_when_dropped() {
        let sampler = Sampler::start(500, 1).unwrap();
        let until = std::time::Instant::now() + std::time::Duration::from_millis(300);
        let mut x = 1u64;
        // Clock reads only now and then: a sample taken inside the vDSO is skipped.
        while std::time::Instant::now() < until {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        assert!(x != 0);
        let report = sampler.finish();
        let samples: isize = report.data.values().sum();
        // The kernel's tick bounds the rate (100 to 1,000 Hz): 30 samples at least.
        assert!(samples >= 25, "{samples} samples of 300 ms at 500 Hz");
        assert!(ACTIVE.load(Ordering::SeqCst).is_null());
        // A sampler dropped unfinished stops too.
        drop(Sampler::start(100, 1).unwrap());
        assert!(ACTIVE.load(Ordering::SeqCst).is_null());
    }
}
