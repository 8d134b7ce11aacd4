//! Access control of the admin server, tested from a real non-loopback peer: the test
//! creates its own network namespace joined to this one by a veth pair, and runs `curl`
//! inside it. Traffic stays between the two ends of that pair.
//!
//! Needs root, `ip` (iproute2) and `curl`; the README's test command installs them.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use observe::admin::{AccessPolicy, AdminServer};

const HOST_IP: &str = "10.231.77.1";
const PEER_IP: &str = "10.231.77.2";

/// The namespace and veth pair, removed on drop even if the test fails.
struct Netns {
    name: String,
    host_if: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!("`ip` (iproute2) is needed to create the test's namespace: {e}")
    });
    assert!(
        out.status.success(),
        "ip {}: {} (this test needs root to create a network namespace)",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    fn create() -> Netns {
        let id = std::process::id() % 100_000;
        let name = format!("observe-t{id}");
        let host_if = format!("obh{id}");
        let peer_if = format!("obp{id}");
        let ns = Netns {
            name: name.clone(),
            host_if: host_if.clone(),
        };
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if,
        ]);
        ip(&["link", "set", &peer_if, "netns", &name]);
        ip(&["addr", "add", &format!("{HOST_IP}/30"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&[
            "netns",
            "exec",
            &name,
            "ip",
            "addr",
            "add",
            &format!("{PEER_IP}/30"),
            "dev",
            &peer_if,
        ]);
        ip(&["netns", "exec", &name, "ip", "link", "set", &peer_if, "up"]);
        ip(&["netns", "exec", &name, "ip", "link", "set", "lo", "up"]);
        ns
    }

    /// `curl` from inside the namespace: (status, body).
    fn get(&self, port: u16, path: &str, headers: &[&str]) -> (u16, String) {
        let url = format!("http://{HOST_IP}:{port}{path}");
        let mut args = vec![
            "netns",
            "exec",
            &self.name,
            "curl",
            "-s",
            "--max-time",
            "10",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
        ];
        for h in headers {
            args.push("-H");
            args.push(h);
        }
        args.push(&url);
        let out = Command::new("ip").args(&args).output().expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').expect("curl printed a status");
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn start(policy: AccessPolicy, protect_metrics: bool) -> (observe::admin::AdminHandle, u16) {
    let admin = AdminServer::new()
        .addr(format!("{HOST_IP}:0"))
        .access(policy)
        .protect_metrics(protect_metrics)
        .start()
        .unwrap();
    let port = admin.local_addr().port();
    (admin, port)
}

fn denied(kind: &str, admin: SocketAddr) -> f64 {
    let (_, _, body) = common::http_get(admin, "/metrics", "");
    common::value(&body, "observe_admin_denied_total", &[("reason", kind)])
}

#[test]
fn non_loopback_peers_are_refused_unless_allowed() {
    let ns = Netns::create();

    // Default: loopback only. Probes and /metrics stay reachable; pprof does not.
    let (default, port) = start(AccessPolicy::loopback_only(), false);
    let (status, body) = ns.get(port, "/debug/pprof/cmdline", &[]);
    assert_eq!(status, 403);
    assert!(
        body.contains(&format!("address {PEER_IP} is not allowed")),
        "{body}"
    );
    assert_eq!(ns.get(port, "/livez", &[]).0, 200);
    assert_eq!(ns.get(port, "/healthz", &[]).0, 200);
    assert_eq!(ns.get(port, "/metrics", &[]).0, 200);
    // The status page and the generated rules and dashboard: the same policy as pprof.
    for path in [
        "/debug/observe/",
        "/debug/observe/rules.yml",
        "/debug/observe/dashboard.json",
    ] {
        assert_eq!(ns.get(port, path, &[]).0, 403, "{path}");
    }
    // A spoofed X-Forwarded-For from an untrusted peer changes nothing.
    let (status, _) = ns.get(port, "/debug/pprof/", &["X-Forwarded-For: 127.0.0.1"]);
    assert_eq!(status, 403);

    // A token: 401 without it or with a wrong one, 200 with it.
    let (token, port) = start(AccessPolicy::loopback_only().token("s3cret-token"), false);
    let (status, body) = ns.get(port, "/debug/pprof/cmdline", &[]);
    assert_eq!((status, body.trim()), (401, "bearer token required"));
    let (status, body) = ns.get(
        port,
        "/debug/pprof/cmdline",
        &["Authorization: Bearer nope"],
    );
    assert_eq!((status, body.trim()), (401, "bearer token invalid"));
    let (status, _) = ns.get(
        port,
        "/debug/pprof/cmdline",
        &["Authorization: Bearer s3cret-token"],
    );
    assert_eq!(status, 200);
    assert_eq!(ns.get(port, "/debug/observe/", &[]).0, 401);
    let (status, _) = ns.get(
        port,
        "/debug/observe/",
        &["Authorization: Bearer s3cret-token"],
    );
    assert_eq!(status, 200);

    // An allowed CIDR.
    let (cidr, port) = start(
        AccessPolicy::loopback_only()
            .allow("10.231.77.0/30")
            .unwrap(),
        false,
    );
    assert_eq!(ns.get(port, "/debug/pprof/cmdline", &[]).0, 200);

    // A trusted proxy: its X-Forwarded-For is read from the right.
    let (proxied, port) = start(
        AccessPolicy::loopback_only().trust_proxy(PEER_IP).unwrap(),
        false,
    );
    assert_eq!(
        ns.get(port, "/debug/pprof/", &["X-Forwarded-For: 127.0.0.1"])
            .0,
        200
    );
    let (status, body) = ns.get(
        port,
        "/debug/pprof/",
        &["X-Forwarded-For: 127.0.0.1, 192.0.2.50"],
    );
    assert_eq!(status, 403);
    assert!(body.contains("192.0.2.50"), "{body}");

    // /metrics can be protected too; probes never are.
    let (protected, port) = start(AccessPolicy::loopback_only(), true);
    assert_eq!(ns.get(port, "/metrics", &[]).0, 403);
    assert_eq!(ns.get(port, "/livez", &[]).0, 200);

    // Every denial above is counted, by reason (the counter is process-wide).
    assert_eq!(denied("address", default.local_addr()), 7.0);
    assert_eq!(denied("token", token.local_addr()), 3.0);
    drop((default, token, cidr, proxied, protected));
}
