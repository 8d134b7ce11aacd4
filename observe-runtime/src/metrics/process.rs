//! Process metrics read from `/proc/self` (Linux), named as every Prometheus client names
//! them. Written here rather than through `prometheus`' `process` feature: that feature
//! pulls `procfs` and registers itself in the default registry, which we also gather, so
//! enabling it in two places gives duplicate families. When the user's default registry
//! already has `process_*` families, these are left out instead.

/// One sample, ready to be written.
pub(crate) struct ProcessSample {
    pub name: &'static str,
    /// A counter (else a gauge).
    pub counter: bool,
    pub help: &'static str,
    pub value: f64,
}

#[cfg(target_os = "linux")]
pub(crate) fn collect() -> Vec<ProcessSample> {
    let mut out = Vec::new();
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return out;
    };
    // The command name (field 2) is in parentheses and may contain spaces.
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return out;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `fields[0]` is field 3 (state) of proc(5).
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        out.push(ProcessSample {
            name: "process_cpu_seconds_total",
            counter: true,
            help: "Total user and system CPU time spent in seconds.",
            value: (utime + stime) / ticks,
        });
    }
    if let Some(threads) = field(20) {
        out.push(ProcessSample {
            name: "process_threads",
            counter: false,
            help: "Number of OS threads in the process.",
            value: threads,
        });
    }
    if let (Some(start), Some(boot)) = (field(22), boot_time()) {
        out.push(ProcessSample {
            name: "process_start_time_seconds",
            counter: false,
            help: "Start time of the process since unix epoch in seconds.",
            value: boot + start / ticks,
        });
    }
    if let Some(vsize) = field(23) {
        out.push(ProcessSample {
            name: "process_virtual_memory_bytes",
            counter: false,
            help: "Virtual memory size in bytes.",
            value: vsize,
        });
    }
    if let Some(rss) = field(24) {
        out.push(ProcessSample {
            name: "process_resident_memory_bytes",
            counter: false,
            help: "Resident memory size in bytes.",
            value: rss * page,
        });
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        out.push(ProcessSample {
            name: "process_open_fds",
            counter: false,
            help: "Number of open file descriptors.",
            // The directory handle itself is one of the entries.
            value: dir.count().saturating_sub(1) as f64,
        });
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        out.push(ProcessSample {
            name: "process_max_fds",
            counter: false,
            help: "Maximum number of open file descriptors.",
            value: limit.rlim_cur as f64,
        });
    }
    out
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn collect() -> Vec<ProcessSample> {
    Vec::new()
}

#[cfg(target_os = "linux")]
fn boot_time() -> Option<f64> {
    static BOOT: once_cell::sync::OnceCell<Option<f64>> = once_cell::sync::OnceCell::new();
    *BOOT.get_or_init(|| {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        stat.lines()
            .find_map(|line| line.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
    })
}
