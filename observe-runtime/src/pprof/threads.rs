//! `/debug/pprof/threads`: the stack of every thread of the process, as text — the Rust
//! counterpart of Go's `goroutine?debug=2` for threads.
//!
//! Nothing but async-signal-safe work runs in a signal handler. Each thread is asked in
//! turn with a real-time signal; its handler only copies the interrupted registers (from
//! the `ucontext`) into atomics and then waits, spinning on `sched_yield`, until the
//! requesting thread says it is done (or a second has passed). Meanwhile the requesting
//! thread walks the paused thread's stack itself with framehop (DWARF CFI from each
//! loaded object's `.eh_frame`, prepared before the signal is sent), reading the stack
//! through `process_vm_readv` on its own process, which fails cleanly on a bad address
//! instead of faulting, and allocating nothing while the other thread is paused (it may
//! hold the allocator's lock). Then it resolves the addresses to names, files and lines.
//! One dump at a time, never beside a CPU or heap profile (they share the one slot); a
//! thread that blocks the signal or does not answer within 200 ms is reported so.

use std::ffi::c_void;
use std::fmt::Write;
use std::ops::{Deref, Range};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::signal::{gettid, registers};
use framehop::{
    CacheNative, ExplicitModuleSectionInfo, MustNotAllocateDuringUnwind, UnwindRegsNative,
    Unwinder, UnwinderNative,
};

const MAX_FRAMES: usize = 128;
const ANSWER_WITHIN: Duration = Duration::from_millis(200);
/// Longest a thread stays paused in the handler, whatever the requester does.
const PAUSE_AT_MOST_NS: i64 = 1_000_000_000;

/// The thread asked now (0: none), and the request's number.
static TARGET: AtomicI32 = AtomicI32::new(0);
static SESSION: AtomicU64 = AtomicU64::new(0);
/// The session whose registers are in `REGS` (set by the handler).
static CAPTURED: AtomicU64 = AtomicU64::new(0);
/// The last session the requester is done with (the handler may return).
static RELEASED: AtomicU64 = AtomicU64::new(0);
/// The last session whose handler has returned.
static LEFT: AtomicU64 = AtomicU64::new(0);
/// Instruction pointer, stack pointer, frame pointer, link register (aarch64).
static REGS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];

/// The signal used: a real-time one, above those glibc keeps for itself.
fn signal() -> libc::c_int {
    libc::SIGRTMIN() + 7
}

fn monotonic_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime is async-signal-safe and writes only `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

/// The handler: atomics, `clock_gettime` and `sched_yield` only.
extern "C" fn on_signal(_: libc::c_int, _: *mut libc::siginfo_t, context: *mut c_void) {
    let session = SESSION.load(Ordering::SeqCst);
    if gettid() != TARGET.load(Ordering::SeqCst) {
        return;
    }
    let Some(registers) = registers(context) else {
        return;
    };
    for (slot, value) in REGS.iter().zip(registers) {
        slot.store(value, Ordering::Relaxed);
    }
    CAPTURED.store(session, Ordering::SeqCst);
    // Stay put (the stack must not change) until the requester has walked it.
    let deadline = monotonic_ns() + PAUSE_AT_MOST_NS;
    while RELEASED.load(Ordering::SeqCst) < session && monotonic_ns() < deadline {
        // SAFETY: sched_yield is async-signal-safe.
        unsafe { libc::sched_yield() };
    }
    LEFT.store(session, Ordering::SeqCst);
}

fn install() -> Result<(), String> {
    static INSTALLED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    INSTALLED
        .get_or_init(|| super::signal::install(signal(), on_signal))
        .clone()
}

/// A section of a mapped object file, as framehop reads it.
#[derive(Clone)]
struct Mapped {
    map: Arc<memmap2::Mmap>,
    range: Range<usize>,
}

impl Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map[self.range.clone()]
    }
}

/// An unwinder knowing every object loaded now (its `.eh_frame`, `.eh_frame_hdr` and
/// `.text`, mapped from the files, not copied).
fn unwinder() -> UnwinderNative<Mapped, MustNotAllocateDuringUnwind> {
    use findshlibs::{SharedLibrary, TargetSharedLibrary};
    use object::{Object, ObjectSection};
    let mut unwinder = UnwinderNative::new();
    TargetSharedLibrary::each(|lib| {
        let name = lib.name().to_string_lossy().into_owned();
        let path = if name.is_empty() {
            "/proc/self/exe".to_owned()
        } else {
            name.clone()
        };
        let Ok(file) = std::fs::File::open(&path) else {
            return;
        };
        // SAFETY: a read-only private mapping of an object file the process has loaded.
        let Ok(map) = (unsafe { memmap2::Mmap::map(&file) }) else {
            return;
        };
        let map = Arc::new(map);
        let Ok(elf) = object::File::parse(&map[..]) else {
            return;
        };
        let section = |name: &str| {
            let s = elf.section_by_name(name)?;
            let (offset, size) = s.file_range()?;
            let range = offset as usize..(offset + size) as usize;
            Some((
                s.address()..s.address() + s.size(),
                Mapped {
                    map: map.clone(),
                    range,
                },
            ))
        };
        let (text_svma, text) = section(".text").unzip();
        let (eh_frame_svma, eh_frame) = section(".eh_frame").unzip();
        let (eh_frame_hdr_svma, eh_frame_hdr) = section(".eh_frame_hdr").unzip();
        let got_svma = elf
            .section_by_name(".got")
            .map(|s| s.address()..s.address() + s.size());
        let info = ExplicitModuleSectionInfo {
            base_svma: 0,
            text_svma,
            text,
            got_svma,
            eh_frame_svma,
            eh_frame,
            eh_frame_hdr_svma,
            eh_frame_hdr,
            stubs_svma: None,
            stub_helper_svma: None,
            unwind_info: None,
            debug_frame: None,
            text_segment_svma: None,
            text_segment: None,
        };
        let start = lib.actual_load_addr().0 as u64;
        let bias = lib.virtual_memory_bias().0 as u64;
        unwinder.add_module(framehop::Module::new(
            name,
            start..start + lib.len() as u64,
            bias,
            info,
        ));
    });
    unwinder
}

/// Reads one word of this process's memory, failing (not faulting) on a bad address.
fn read_word(addr: u64) -> Result<u64, ()> {
    let mut word = 0u64;
    let local = libc::iovec {
        iov_base: (&mut word as *mut u64).cast(),
        iov_len: 8,
    };
    let remote = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: 8,
    };
    // SAFETY: reads into `word` only; the kernel checks the source address.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n == 8 { Ok(word) } else { Err(()) }
}

/// The return addresses of thread `tid`, walked while it waits in the handler, or
/// `None` when it did not answer in time. `frames` has room for [`MAX_FRAMES`].
fn stack_of(
    tid: i32,
    unwinder: &UnwinderNative<Mapped, MustNotAllocateDuringUnwind>,
    cache: &mut CacheNative<MustNotAllocateDuringUnwind>,
    frames: &mut Vec<usize>,
) -> bool {
    frames.clear();
    if tid == gettid() {
        backtrace::trace(|frame| {
            frames.push(frame.ip() as usize);
            frames.len() < MAX_FRAMES
        });
        return true;
    }
    let session = SESSION.fetch_add(1, Ordering::SeqCst) + 1;
    TARGET.store(tid, Ordering::SeqCst);
    // SAFETY: signals a thread of this process.
    let sent = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, signal()) } == 0;
    let deadline = Instant::now() + ANSWER_WITHIN;
    let answered = sent
        && loop {
            if CAPTURED.load(Ordering::SeqCst) == session {
                break true;
            }
            if Instant::now() >= deadline {
                break false;
            }
            std::thread::sleep(Duration::from_micros(100));
        };
    TARGET.store(0, Ordering::SeqCst);
    if answered {
        // The thread is paused in the handler: its stack holds still. No allocation here
        // (`frames` has its capacity): the paused thread may hold the allocator's lock.
        let [ip, sp, fp, lr] = REGS.each_ref().map(|r| r.load(Ordering::Relaxed));
        #[cfg(target_arch = "x86_64")]
        let (pc, regs) = (ip, UnwindRegsNative::new(ip, sp, fp));
        #[cfg(target_arch = "aarch64")]
        let (pc, regs) = (ip, UnwindRegsNative::new(lr, sp, fp));
        #[cfg(target_arch = "x86_64")]
        let _ = lr;
        let mut read = read_word;
        let mut walk = unwinder.iter_frames(pc, regs, cache, &mut read);
        while frames.len() < MAX_FRAMES {
            match walk.next() {
                Ok(Some(frame)) => frames.push(frame.address() as usize),
                _ => break,
            }
        }
    }
    RELEASED.store(session, Ordering::SeqCst);
    if answered {
        // Wait for the handler to return before the next thread is asked.
        let deadline = Instant::now() + ANSWER_WITHIN;
        while LEFT.load(Ordering::SeqCst) < session && Instant::now() < deadline {
            std::thread::yield_now();
        }
    }
    answered
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

/// The text of `/debug/pprof/threads`; `None` while a CPU or heap profile holds the
/// one profiling slot.
pub(crate) fn dump() -> Option<String> {
    if let Err(e) = install() {
        return Some(format!("could not install the stack signal handler: {e}\n"));
    }
    let _slot = super::cpu::Slot::take(1)?;
    let out = dump_all();
    super::release_memory();
    Some(out)
}

fn dump_all() -> String {
    let mut tids: Vec<i32> = std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    tids.sort_unstable();
    let unwinder = unwinder();
    let mut cache = CacheNative::<MustNotAllocateDuringUnwind>::new_in();
    let mut frames = Vec::with_capacity(MAX_FRAMES);
    // Threads of one pool share most frames: each address is resolved once.
    let mut names: std::collections::HashMap<usize, String> = std::collections::HashMap::new();
    let mut out = format!("{} threads\n", tids.len());
    for tid in tids {
        let name = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm"))
            .map(|n| n.trim_end().to_owned())
            .unwrap_or_default();
        let _ = writeln!(out, "\nthread {tid} \"{name}\":");
        if !stack_of(tid, &unwinder, &mut cache, &mut frames) {
            let _ = writeln!(out, "    (did not answer within {ANSWER_WITHIN:?})");
            continue;
        }
        let described: Vec<String> = frames
            .iter()
            .map(|&ip| names.entry(ip).or_insert_with(|| describe(ip)).clone())
            .collect();
        // The requesting thread's own walk starts inside this module: skip up to and
        // including its last frame of ours. A signalled thread's walk starts at the
        // interrupted instruction: nothing to skip.
        let first = if tid == gettid() {
            described.iter().rposition(|f| ours(f)).map_or(0, |i| i + 1)
        } else {
            0
        };
        for (i, frame) in described[first..].iter().enumerate() {
            let _ = writeln!(out, "    #{i:<3} {frame}");
        }
    }
    out
}
