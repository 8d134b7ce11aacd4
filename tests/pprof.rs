//! CPU profiles that real tooling reads: `go tool pprof` on the downloaded profile
//! names a busy instrumented function; the flame graph is well-formed SVG naming it;
//! one profile at a time; bad parameters are 400s that say what is allowed.
//! The README's test command installs Debian's golang-go for `go tool pprof`.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{http_get, http_raw};
use observe::admin::AdminServer;

#[observe::instrumented]
#[inline(never)]
fn burn_cpu(rounds: u64) -> u64 {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..rounds {
        x = std::hint::black_box(x.rotate_left(5) ^ i).wrapping_mul(0x0100_0000_01B3);
    }
    x
}

/// The profiler is process-wide (that is the point of the 429): these tests take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn busy_while(stop: &Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let stop = stop.clone();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::hint::black_box(burn_cpu(200_000));
        }
    })
}

fn temp_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("observe-{}-{name}", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn go_tool_pprof_reads_the_profile_and_the_flame_graph_is_svg() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let admin = AdminServer::new().addr("127.0.0.1:0").start().unwrap();
    let addr = admin.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let worker = busy_while(&stop);

    let (status, head, body) = http_raw(
        addr,
        "GET /debug/pprof/profile?seconds=2 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{head}");
    assert_eq!(&body[..2], &[0x1f, 0x8b], "gzipped");
    let profile = temp_file("cpu.pb.gz", &body);
    let out = Command::new("go")
        .args(["tool", "pprof", "-top", "-nodecount=200"])
        .arg(&profile)
        .output()
        .expect("`go` is installed (Debian's golang-go; the README's test command installs it)");
    let top = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(top.contains("Type: cpu"), "{top}");
    assert!(
        top.contains("burn_cpu"),
        "the busy function is named:\n{top}"
    );
    assert!(
        !top.contains("perf_signal_handler"),
        "profiler frames stripped:\n{top}"
    );

    let (status, head, body) = http_raw(
        addr,
        "GET /debug/pprof/flamegraph?seconds=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: image/svg+xml"),
        "{head}"
    );
    let svg = String::from_utf8(body).unwrap();
    assert!(svg.contains("burn_cpu"));
    let file = temp_file("flame.svg", svg.as_bytes());
    let parsed = Command::new("python3")
        .args([
            "-c",
            "import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])",
        ])
        .arg(&file)
        .status()
        .unwrap();
    assert!(parsed.success(), "the flame graph is well-formed XML");

    stop.store(true, Ordering::Relaxed);
    worker.join().unwrap();
    let _ = std::fs::remove_file(profile);
    let _ = std::fs::remove_file(file);
    admin.stop();
}

#[test]
fn one_profile_at_a_time_and_bad_parameters_are_400() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let admin = AdminServer::new()
        .addr("127.0.0.1:0")
        .max_profile_seconds(10)
        .start()
        .unwrap();
    let addr = admin.local_addr();
    for (query, says) in [
        ("seconds=0", "from 1 to 10"),
        ("seconds=-5", "from 1 to 10"),
        ("seconds=abc", "from 1 to 10"),
        ("seconds=11", "from 1 to 10"),
        ("frequency=0", "from 1 to 1000"),
        ("frequency=5000", "from 1 to 1000"),
        ("secs=3", "unknown query parameter `secs`"),
    ] {
        let (status, _, body) = http_get(addr, &format!("/debug/pprof/profile?{query}"), "");
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(says), "{query}: {body}");
    }
    let first = std::thread::spawn(move || http_get(addr, "/debug/pprof/profile?seconds=2", "").0);
    std::thread::sleep(Duration::from_millis(300));
    let (status, head, body) = http_get(addr, "/debug/pprof/flamegraph?seconds=1", "");
    assert_eq!(status, 429, "{body}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: "),
        "{head}"
    );
    assert!(body.contains("already being taken"), "{body}");
    assert_eq!(first.join().unwrap(), 200);
    // Free again once the first is done.
    assert_eq!(http_get(addr, "/debug/pprof/profile?seconds=1", "").0, 200);
    admin.stop();
}

/// Parks until told to stop: the frame the thread dump must show.
#[inline(never)]
fn parked_in_a_distinctive_function(stop: std::sync::mpsc::Receiver<()>) {
    let _ = stop.recv();
}

#[test]
fn thread_stacks_show_every_thread_where_it_waits() {
    let admin = AdminServer::new().addr("127.0.0.1:0").start().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let parked = std::thread::Builder::new()
        .name("observe-parked".into())
        .spawn(move || parked_in_a_distinctive_function(rx))
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // A dump shares the one profiling slot with the other tests' CPU profiles: 429 then.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (status, head, body) = loop {
        let (status, head, body) = http_get(admin.local_addr(), "/debug/pprof/threads", "");
        if status != 429 || std::time::Instant::now() > deadline {
            break (status, head, body);
        }
        assert!(head.to_ascii_lowercase().contains("retry-after"), "{head}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status, 200, "{body}");
    assert!(head.to_ascii_lowercase().contains("text/plain"));
    let threads: usize = std::fs::read_dir("/proc/self/task").unwrap().count();
    let listed = body.matches("\nthread ").count();
    assert!(
        listed + 2 >= threads && listed > 2,
        "{listed} threads listed, the process has {threads}:\n{body}"
    );
    let ours = body
        .split("\nthread ")
        .find(|t| t.contains("\"observe-parked\""))
        .unwrap_or_else(|| panic!("no observe-parked thread in:\n{body}"));
    assert!(
        ours.contains("parked_in_a_distinctive_function"),
        "the parked thread's stack shows where it waits:\n{ours}"
    );
    assert!(!ours.contains("did not answer"), "{ours}");
    assert!(
        !ours.contains("observe_runtime::admin::threads"),
        "the capture's own frames are left out:\n{ours}"
    );
    // The process carries on: the parked thread still gets its message.
    tx.send(()).unwrap();
    parked.join().unwrap();
    admin.stop();
}

/// With the `heap` feature but no `observe::heap_profiling!()` in this binary, jemalloc
/// is linked but not its allocator: the heap endpoint says how to opt in.
#[cfg(feature = "heap")]
#[test]
fn heap_profiles_need_the_binary_to_opt_in() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let admin = AdminServer::new().addr("127.0.0.1:0").start().unwrap();
    let (status, _, body) = http_get(admin.local_addr(), "/debug/pprof/heap", "");
    assert_eq!(status, 501, "{body}");
    assert!(body.contains("observe::heap_profiling!();"), "{body}");
    admin.stop();
}
