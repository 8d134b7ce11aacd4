//! `/debug/pprof/threads`: the stack of every thread of the process, as text — the Rust
//! counterpart of Go's `goroutine?debug=2` for threads.
//!
//! A thread's stack can only be walked from that thread, so each thread is asked in
//! turn: a real-time signal whose handler, on the thread it targets, records the return
//! addresses (no allocation, no lock: `backtrace::trace_unsynchronized`, as pprof-rs does
//! when sampling). The requesting thread waits for the answer (200 ms at most per
//! thread), then resolves the addresses to function names, files and lines. One dump at
//! a time; a thread that blocks the signal is reported as not answering.

use std::ffi::c_void;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const MAX_FRAMES: usize = 128;
const ANSWER_WITHIN: Duration = Duration::from_millis(200);

/// The thread whose stack is wanted (0: none).
static TARGET: AtomicI32 = AtomicI32::new(0);
static DONE: AtomicBool = AtomicBool::new(false);
static COUNT: AtomicUsize = AtomicUsize::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const NO_FRAME: AtomicUsize = AtomicUsize::new(0);
static FRAMES: [AtomicUsize; MAX_FRAMES] = [NO_FRAME; MAX_FRAMES];
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn gettid() -> i32 {
    // SAFETY: a syscall without arguments.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// The signal used: a real-time one, above those glibc keeps for itself.
fn signal() -> libc::c_int {
    libc::SIGRTMIN() + 7
}

extern "C" fn on_signal(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut c_void) {
    if gettid() != TARGET.load(Ordering::Acquire) {
        return;
    }
    let mut n = 0;
    // SAFETY: the unsynchronized walk is what a signal handler may use (no locks are
    // taken); this handler runs only on the thread asked, one at a time.
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            FRAMES[n].store(frame.ip() as usize, Ordering::Relaxed);
            n += 1;
            n < MAX_FRAMES
        });
    }
    COUNT.store(n, Ordering::Relaxed);
    DONE.store(true, Ordering::Release);
}

fn install() -> Result<(), String> {
    static INSTALLED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            // SAFETY: a zeroed sigaction with our handler, SA_SIGINFO, and SA_RESTART so
            // interrupted system calls resume where the platform allows.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                if libc::sigaction(signal(), &action, std::ptr::null_mut()) != 0 {
                    return Err(std::io::Error::last_os_error().to_string());
                }
            }
            Ok(())
        })
        .clone()
}

/// The return addresses of thread `tid`, or `None` when it did not answer in time.
fn stack_of(tid: i32) -> Option<Vec<usize>> {
    if tid == gettid() {
        let mut ips = Vec::new();
        backtrace::trace(|frame| {
            ips.push(frame.ip() as usize);
            ips.len() < MAX_FRAMES
        });
        return Some(ips);
    }
    DONE.store(false, Ordering::Release);
    COUNT.store(0, Ordering::Relaxed);
    TARGET.store(tid, Ordering::Release);
    // SAFETY: signals a thread of this process.
    let sent = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, signal()) } == 0;
    let deadline = Instant::now() + ANSWER_WITHIN;
    let answered = sent
        && loop {
            if DONE.load(Ordering::Acquire) {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_micros(200));
        };
    TARGET.store(0, Ordering::Release);
    answered.then(|| {
        let n = COUNT.load(Ordering::Relaxed).min(MAX_FRAMES);
        FRAMES[..n]
            .iter()
            .map(|f| f.load(Ordering::Relaxed))
            .collect()
    })
}

/// One resolved frame: `name (file:line)`, or the address when nothing resolves.
fn describe(ip: usize) -> String {
    let mut out = None;
    backtrace::resolve(ip as *mut c_void, |symbol| {
        if out.is_some() {
            return;
        }
        let name = symbol
            .name()
            .map_or_else(|| format!("{ip:#x}"), |n| format!("{n:#}"));
        let place = match (symbol.filename(), symbol.lineno()) {
            (Some(file), Some(line)) => format!("  ({}:{line})", file.display()),
            _ => String::new(),
        };
        out = Some(format!("{name}{place}"));
    });
    out.unwrap_or_else(|| format!("{ip:#x}"))
}

/// Frames of the signal machinery and of this module are not the thread's own.
fn ours(frame: &str) -> bool {
    frame.contains("observe_runtime::pprof::threads")
        || frame.contains("backtrace::backtrace")
        || frame.starts_with("backtrace::")
        || frame.contains("__restore_rt")
}

/// The text of `/debug/pprof/threads`.
pub(crate) fn dump() -> String {
    if let Err(e) = install() {
        return format!("could not install the stack signal handler: {e}\n");
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let mut tids: Vec<i32> = std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    tids.sort_unstable();
    let mut out = format!("{} threads\n", tids.len());
    for tid in tids {
        let name = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
            .map(|n| n.trim_end().to_owned())
            .unwrap_or_default();
        let _ = writeln!(out, "\nthread {tid} \"{name}\":");
        match stack_of(tid) {
            None => {
                let _ = writeln!(out, "    (did not answer within {ANSWER_WITHIN:?})");
            }
            Some(ips) => {
                let signalled = tid != gettid();
                let frames: Vec<String> = ips.into_iter().map(describe).collect();
                // Skip the capture itself: up to and including the last frame of ours,
                // and, for a thread that answered the signal, the kernel's return
                // trampoline, which has no symbol.
                let mut first = frames.iter().rposition(|f| ours(f)).map_or(0, |i| i + 1);
                if signalled && frames.get(first).is_some_and(|f| f.starts_with("0x")) {
                    first += 1;
                }
                for (i, frame) in frames[first..].iter().enumerate() {
                    let _ = writeln!(out, "    #{i:<3} {frame}");
                }
            }
        }
    }
    super::release_memory();
    out
}
