//! The admin server on loopback: endpoints, robustness, and that it answers while the
//! application's only worker is busy.

mod common;

use std::time::Duration;

use common::{http_get, http_raw};
use observe::admin::AdminServer;

#[test]
fn serves_metrics_probes_and_pprof_to_loopback() {
    let admin = AdminServer::new().addr("127.0.0.1:0").start().unwrap();
    let addr = admin.local_addr();

    let (status, head, body) = http_get(addr, "/metrics", "");
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(body.contains("# TYPE build_info gauge"));
    assert!(body.contains("observe_admin_denied_total{reason=\"address\"}"));

    for probe in ["/livez", "/healthz"] {
        let (status, _, body) = http_get(addr, probe, "");
        assert_eq!((status, body.as_str()), (200, "ok\n"), "{probe}");
    }

    let (status, _, body) = http_get(addr, "/debug/pprof/", "");
    assert_eq!(status, 200);
    assert!(body.contains("<a href=\"cmdline\">cmdline</a>"), "{body}");
    let (status, _, body) = http_get(addr, "/debug/pprof/cmdline", "");
    assert_eq!(status, 200);
    let args: Vec<String> = std::env::args().collect();
    assert_eq!(body, args.join("\0"));
    let (status, _, body) = http_get(addr, "/debug/pprof/nonsense", "");
    assert_eq!(status, 404);
    assert!(body.contains("this build serves: cmdline"), "{body}");
    admin.stop();
}

#[test]
fn refuses_other_methods_and_request_bodies() {
    let admin = AdminServer::new().addr("127.0.0.1:0").start().unwrap();
    let addr = admin.local_addr();
    let (status, head, body) = http_raw(
        addr,
        "POST /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(status, 405);
    assert!(
        head.to_ascii_lowercase().contains("allow: get, head"),
        "{head}"
    );
    assert!(String::from_utf8_lossy(&body).contains("GET and HEAD only"));
    let (status, _, _) = http_raw(
        addr,
        "GET /livez HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(status, 413);
    let (status, _, _) = http_raw(
        addr,
        "HEAD /livez HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
}

#[test]
fn a_taken_port_is_an_error_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = AdminServer::new().addr(addr.clone()).start().unwrap_err();
    assert!(err.to_string().contains(&addr), "{err}");
}

/// Tests whose application workers are busy on purpose take turns (the saturation test
/// finds its worker by the busy time it adds).
static BUSY_APPS: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn answers_while_the_application_worker_is_blocked() {
    let _turn = BUSY_APPS.lock().unwrap_or_else(|p| p.into_inner());
    use std::sync::mpsc;
    let admin = AdminServer::new().addr("127.0.0.1:0").start().unwrap();
    let admin_addr = admin.local_addr();

    // An application with one worker, whose handler blocks that worker's thread.
    let (app_addr, _) = common::serve_on_thread(|| {
        let server = actix_web::HttpServer::new(|| {
            actix_web::App::new().route(
                "/block",
                actix_web::web::get().to(|| async {
                    std::thread::sleep(Duration::from_secs(2));
                    "unblocked"
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        (server.addrs()[0], server.run())
    });
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (status, _, _) = http_get(app_addr, "/block", "");
        done_tx.send(status).unwrap();
    });
    std::thread::sleep(Duration::from_millis(200));
    // The application is busy; the admin server is not.
    let (status, _, _) = http_get(admin_addr, "/livez", "");
    assert_eq!(status, 200);
    assert!(
        done_rx.try_recv().is_err(),
        "the blocking request finished before the probe was answered; the test proved nothing"
    );
    assert_eq!(done_rx.recv_timeout(Duration::from_secs(10)).unwrap(), 200);
}

/// Issue 15, item 1: 1,000 connections that send nothing and 200 that trickle a request
/// head a byte at a time, each reopened as soon as the server closes it, for six seconds:
/// every `/livez` and `/readyz` from a fresh client is answered within a second.
#[test]
fn probes_are_answered_under_idle_and_slowloris_connections() {
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Instant;

    let health = observe::health::Health::builder()
        .checks(vec![])
        .build()
        .unwrap();
    health.mark_started();
    let admin = AdminServer::new()
        .addr("127.0.0.1:0")
        .health(health)
        .start()
        .unwrap();
    let addr = admin.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let reopened = Arc::new(AtomicUsize::new(0));

    // One attacker thread per kind; each keeps its connections open, reopening closed ones.
    let attacker = |count: usize, trickle: bool| {
        let stop = stop.clone();
        let reopened = reopened.clone();
        std::thread::spawn(move || {
            let open = || {
                let s = TcpStream::connect(addr).ok()?;
                s.set_nonblocking(true).ok()?;
                Some(s)
            };
            let mut conns: Vec<Option<TcpStream>> = (0..count).map(|_| open()).collect();
            let held = conns.iter().filter(|c| c.is_some()).count();
            let slow_head = b"GET /livez HTTP/1.1\r\nHost: slow\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            let mut sent = vec![0usize; count];
            let deadline = Instant::now() + Duration::from_secs(6);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                for (i, conn) in conns.iter_mut().enumerate() {
                    let mut alive = conn.is_some();
                    if let Some(s) = conn.as_mut() {
                        let mut buf = [0u8; 256];
                        match s.read(&mut buf) {
                            Ok(0) => alive = false,
                            Ok(_) => {}
                            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                            Err(_) => alive = false,
                        }
                        if alive && trickle {
                            let byte = slow_head[sent[i] % slow_head.len()];
                            match s.write(&[byte]) {
                                Ok(_) => sent[i] += 1,
                                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                                Err(_) => alive = false,
                            }
                        }
                    }
                    if !alive {
                        *conn = open();
                        sent[i] = 0;
                        reopened.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(if trickle { 100 } else { 20 }));
            }
            held
        })
    };
    let idle = attacker(1000, false);
    let slow = attacker(200, true);
    std::thread::sleep(Duration::from_millis(1500));

    let mut worst = Duration::ZERO;
    let mut answered = 0;
    let probes = 40;
    for i in 0..probes {
        let path = if i % 2 == 0 { "/livez" } else { "/readyz" };
        let started = Instant::now();
        let request = format!("GET {path} HTTP/1.1\r\nHost: kubelet\r\nConnection: close\r\n\r\n");
        let mut raw = Vec::new();
        let ok = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok_and(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(1))).is_ok()
                && s.write_all(request.as_bytes()).is_ok()
                && s.read_to_end(&mut raw).is_ok()
        }) && raw.starts_with(b"HTTP/1.1 200");
        let took = started.elapsed();
        worst = worst.max(took);
        if ok && took <= Duration::from_secs(1) {
            answered += 1;
        }
        std::thread::sleep(Duration::from_millis(80));
    }
    stop.store(true, Ordering::Relaxed);
    let held_idle = idle.join().unwrap();
    let held_slow = slow.join().unwrap();
    assert!(
        held_idle >= 990 && held_slow >= 198,
        "the attack did not get its connections: {held_idle} idle, {held_slow} slow"
    );
    assert!(
        reopened.load(Ordering::Relaxed) > 0,
        "the server never closed an attacking connection: the attack was not held against it"
    );
    assert_eq!(
        answered, probes,
        "probes answered within 1 s under attack (slowest {worst:?})"
    );
    admin.stop();
}

/// Issue 15, item 9: each actix worker's runtime and the admin server's, from tokio's
/// stable runtime metrics: a worker that spent 0.9 s in a handler shows 0.9 s more busy
/// time than before, while parks and alive tasks are there for every worker.
#[test]
fn runtime_saturation_per_worker_in_metrics() {
    let _turn = BUSY_APPS.lock().unwrap_or_else(|p| p.into_inner());
    let admin = AdminServer::new().addr("127.0.0.1:0").start().unwrap();
    let (app_addr, _) = common::serve_on_thread(|| {
        let server = actix_web::HttpServer::new(|| {
            actix_web::App::new()
                .wrap(observe::Middleware::new())
                .route(
                    "/spin",
                    actix_web::web::get().to(|| async {
                        // Busy on the worker's thread (a blocking handler, on purpose).
                        std::thread::sleep(Duration::from_millis(300));
                        "spun"
                    }),
                )
                .route(
                    "/spawn",
                    actix_web::web::get().to(|| async {
                        tokio::spawn(tokio::time::sleep(Duration::from_secs(5)));
                        "spawned"
                    }),
                )
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        (server.addrs()[0], server.run())
    });
    common::wait_until_connects(app_addr);
    let sample = |name: &str, worker: &str| {
        let (_, _, text) = http_get(admin.local_addr(), "/metrics", "");
        common::value(&text, name, &[("worker", worker)])
    };
    // The label is the worker thread's name (actix's `actix-rt|system:N|arbiter:M`); the
    // admin server's is `admin` (`admin-2`… while other tests' admin servers run). Other
    // tests' servers run in this process too: this app's worker is the one whose busy
    // time grows by the handler's 0.9 s.
    assert_eq!(http_get(app_addr, "/spin", "").0, 200);
    let busy_by_worker = || -> Vec<(String, f64)> {
        let (_, _, text) = http_get(admin.local_addr(), "/metrics", "");
        text.lines()
            .filter_map(|l| l.strip_prefix("observe_runtime_busy_seconds_total{worker=\""))
            .filter_map(|l| {
                let (worker, rest) = l.split_once("\"} ")?;
                Some((worker.to_owned(), rest.trim().parse().ok()?))
            })
            .collect()
    };
    let before = busy_by_worker();
    assert!(
        before.iter().any(|(w, _)| w.starts_with("admin")),
        "{before:?}"
    );
    for _ in 0..3 {
        assert_eq!(http_get(app_addr, "/spin", "").0, 200);
    }
    // tokio publishes a worker's busy time when the worker parks, which on a loaded
    // machine can be a moment after the last response: wait for it (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let (after, grown) = loop {
        let after = busy_by_worker();
        let grown: Vec<(String, f64)> = after
            .iter()
            .filter_map(|(w, b)| {
                let was = before.iter().find(|(v, _)| v == w).map_or(0.0, |(_, b)| *b);
                (b - was >= 0.85).then(|| (w.clone(), b - was))
            })
            .collect();
        if !grown.is_empty() || std::time::Instant::now() > deadline {
            break (after, grown);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        grown.len(),
        1,
        "one worker did the 0.9 s of work: {grown:?}"
    );
    let (app_worker, busy) = (&grown[0].0, grown[0].1);
    assert!(app_worker.starts_with("actix-rt|system:"), "{app_worker}");
    assert!(busy < 3.0, "{busy} s busy for 0.9 s of handler work");
    let app_worker = app_worker.as_str();
    assert!(sample("observe_runtime_parks_total", app_worker) > 0.0);
    let admin_label = after
        .iter()
        .map(|(w, _)| w.as_str())
        .find(|w| w.starts_with("admin"))
        .unwrap();
    assert!(sample("observe_runtime_parks_total", admin_label) > 0.0);
    // tokio counts tasks spawned on the runtime (actix's own connection tasks live in a
    // LocalSet it does not count): one spawned by the handler shows on its worker.
    assert_eq!(sample("observe_runtime_alive_tasks", app_worker), 0.0);
    assert_eq!(http_get(app_addr, "/spawn", "").0, 200);
    assert_eq!(sample("observe_runtime_alive_tasks", app_worker), 1.0);
    assert!(sample("observe_runtime_alive_tasks", admin_label) >= 0.0);
    assert!(sample("observe_runtime_queue_depth", app_worker) >= 0.0);
    admin.stop();
}
