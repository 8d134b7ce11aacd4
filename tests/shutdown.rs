//! Phased shutdown in a real process (this test binary): SIGTERM turns readiness to 503
//! at once while liveness stays 200 and the application keeps serving for the drain
//! delay; then the server stops and the flush hooks run last.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use observe::health::{Health, Shutdown};

#[observe::health_check(critical)]
async fn always_ok() -> Result<(), String> {
    Ok(())
}

#[test]
fn sigterm_fails_readiness_drains_then_stops() {
    let health = Health::builder().select(["always_ok"]).build().unwrap();
    health.mark_started();
    let admin = observe::admin::AdminServer::new()
        .addr("127.0.0.1:0")
        .health(health.clone())
        .start()
        .unwrap();
    let flushed = Arc::new(AtomicBool::new(false));

    let (h, f) = (health.clone(), flushed.clone());
    let (app_addr, app) = common::serve_on_thread(move || {
        let shutdown = Shutdown::new(h)
            .drain(Duration::from_millis(1500))
            .graceful_timeout(Duration::from_secs(2))
            .termination_grace_period(Duration::from_secs(30))
            .on_stopped(move || f.store(true, Ordering::SeqCst));
        assert_eq!(shutdown.check(), None);
        // One value: `server` sets actix's shutdown timeout from the graceful timeout.
        let server = shutdown
            .server(actix_web::HttpServer::new(|| {
                actix_web::App::new()
                    .route("/hello", actix_web::web::get().to(|| async { "hello" }))
                    .route(
                        "/slow",
                        actix_web::web::get().to(|| async {
                            actix_web::rt::time::sleep(Duration::from_secs(20)).await;
                            "slow"
                        }),
                    )
            }))
            .workers(1)
            .bind("127.0.0.1:0")
            .unwrap();
        let addr = server.addrs()[0];
        (addr, shutdown.run(server.run()))
    });
    let admin_addr = admin.local_addr();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(app_addr).is_err() {
        assert!(Instant::now() < deadline, "app never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(common::http_get(app_addr, "/hello", "").0, 200);
    assert_eq!(common::http_get(admin_addr, "/readyz", "").0, 200);

    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let signalled = Instant::now();
    std::thread::sleep(Duration::from_millis(200));

    // Readiness fails at once; liveness does not; the app still serves.
    let (status, _, body) = common::http_get(admin_addr, "/readyz", "");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("[-]shutdown failed: shutting down"), "{body}");
    assert_eq!(common::http_get(admin_addr, "/livez", "").0, 200);
    for _ in 0..5 {
        assert_eq!(
            common::http_get(app_addr, "/hello", "").0,
            200,
            "served during the drain"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !flushed.load(Ordering::SeqCst),
        "hooks run only after the server stopped"
    );
    // A request that outlives the graceful timeout: actix gives up on it after 2 s
    // (the value given once, to Shutdown), not after its own default of 30 s.
    let slow = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(app_addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(25)))
            .unwrap();
        stream
            .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink); // cut off when actix gives up
    });

    // After the drain the server stops, then the hooks run.
    let result = app.join().unwrap();
    assert!(result.is_ok(), "{result:?}");
    let stopped = signalled.elapsed();
    assert!(
        stopped >= Duration::from_millis(1500),
        "stopped before the drain ended"
    );
    assert!(
        stopped < Duration::from_millis(1500 + 2000 + 2500),
        "the graceful timeout was not actix's: stopped after {stopped:?}"
    );
    assert!(
        stopped >= Duration::from_millis(1500 + 1500),
        "the slow request was not waited for: stopped after {stopped:?}"
    );
    slow.join().unwrap();
    assert!(flushed.load(Ordering::SeqCst));
    assert!(
        std::net::TcpStream::connect(app_addr).is_err(),
        "still accepting after stop"
    );
    admin.stop();
}

#[test]
fn a_sequence_longer_than_the_grace_period_is_reported() {
    let health = Health::builder().checks(vec![]).build().unwrap();
    let shutdown = Shutdown::new(health)
        .readiness_probe(Duration::from_secs(10), 3)
        .graceful_timeout(Duration::from_secs(30))
        .termination_grace_period(Duration::from_secs(30));
    assert_eq!(shutdown.drain_delay(), Duration::from_secs(31));
    let warning = shutdown.check().expect("61 s do not fit in 30 s");
    assert!(
        warning.contains("more than the termination grace period of 30s"),
        "{warning}"
    );
}
