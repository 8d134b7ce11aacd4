//! The heap profile (feature `heap`, and `observe::heap_profiling!()` in this binary):
//! `go tool pprof` reads it and shows the allocation site of a deliberate large
//! allocation; without the feature the endpoint says how to enable it. A binary with the
//! feature that did not opt in is tested in tests/pprof.rs.

mod common;

use observe::admin::AdminServer;

// The binary opts in: jemalloc is its allocator, with sampling on.
#[cfg(feature = "heap")]
observe::heap_profiling!();

#[cfg(feature = "heap")]
#[inline(never)]
fn hold_a_large_allocation() -> Vec<u8> {
    std::hint::black_box(vec![7u8; 96 << 20])
}

#[cfg(feature = "heap")]
#[test]
fn go_tool_pprof_shows_the_allocation_site() {
    let held = hold_a_large_allocation();
    let admin = AdminServer::new().addr("127.0.0.1:0").start().unwrap();
    let (status, head, body) = common::http_raw(
        admin.local_addr(),
        "GET /debug/pprof/heap HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{head}\n{}", String::from_utf8_lossy(&body));
    let path = std::env::temp_dir().join(format!("observe-{}-heap.pb.gz", std::process::id()));
    std::fs::write(&path, &body).unwrap();
    let out = std::process::Command::new("go")
        .args([
            "tool",
            "pprof",
            "-top",
            "-cum",
            "-nodecount=400",
            "-symbolize=none",
        ])
        .arg(&path)
        .output()
        .expect("`go` is installed (Debian's golang-go)");
    let top = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(top.contains("hold_a_large_allocation"), "{top}");
    assert_eq!(held.len(), 96 << 20);
    let _ = std::fs::remove_file(path);
    admin.stop();
}

#[cfg(not(feature = "heap"))]
#[test]
fn without_the_feature_the_endpoint_says_how_to_enable_it() {
    let admin = AdminServer::new().addr("127.0.0.1:0").start().unwrap();
    let (status, _, body) = common::http_get(admin.local_addr(), "/debug/pprof/heap", "");
    assert_eq!(status, 501);
    assert!(body.contains("enable the `heap` feature"), "{body}");
    admin.stop();
}
