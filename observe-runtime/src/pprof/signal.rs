//! What the CPU sampler and the thread dump share about signals: the calling thread's
//! id, the interrupted registers from a handler's `ucontext`, and installing a handler.
//! Everything a handler calls here is async-signal-safe.

use std::ffi::c_void;

/// The calling thread's kernel id.
pub(super) fn gettid() -> i32 {
    // SAFETY: a syscall without arguments.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// `(ip, sp, fp, lr)` of the code a signal interrupted (`lr` is 0 on x86-64); `None`
/// without a context or on other architectures.
#[cfg(target_arch = "x86_64")]
pub(super) fn registers(context: *mut c_void) -> Option<[u64; 4]> {
    if context.is_null() {
        return None;
    }
    // SAFETY: the kernel passes a valid ucontext_t to an SA_SIGINFO handler.
    let g = unsafe { &(*(context as *const libc::ucontext_t)).uc_mcontext.gregs };
    Some([
        g[libc::REG_RIP as usize] as u64,
        g[libc::REG_RSP as usize] as u64,
        g[libc::REG_RBP as usize] as u64,
        0,
    ])
}

#[cfg(target_arch = "aarch64")]
pub(super) fn registers(context: *mut c_void) -> Option<[u64; 4]> {
    if context.is_null() {
        return None;
    }
    // SAFETY: the kernel passes a valid ucontext_t to an SA_SIGINFO handler.
    let m = unsafe { &(*(context as *const libc::ucontext_t)).uc_mcontext };
    Some([m.pc, m.sp, m.regs[29], m.regs[30]])
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub(super) fn registers(_: *mut c_void) -> Option<[u64; 4]> {
    None
}

/// A signal handler's signature (`SA_SIGINFO`).
pub(super) type Handler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void);

/// Installs `handler` for `signal`, with `SA_SIGINFO` and `SA_RESTART` (interrupted
/// system calls resume where the platform allows).
pub(super) fn install(signal: libc::c_int, handler: Handler) -> Result<(), String> {
    // SAFETY: a zeroed sigaction with our handler and an empty mask.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
            return Err(format!(
                "sigaction({signal}): {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}
