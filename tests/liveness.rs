//! A wedged worker is caught: each worker beats from its own event loop, so blocking it
//! stales its heartbeat, and liveness (answered by the admin server's worker) fails,
//! naming it, until the worker runs again. (Own binary: the bound is process-wide.)

mod common;

use std::time::{Duration, Instant};

#[test]
fn a_blocked_worker_fails_liveness_until_it_runs_again() {
    observe::health::set_liveness_stale_after(Duration::from_millis(1500));
    let admin = observe::admin::AdminServer::new()
        .addr("127.0.0.1:0")
        .start()
        .unwrap();
    let (app, _) = common::serve_on_thread(|| {
        let server = actix_web::HttpServer::new(|| {
            actix_web::App::new()
                .wrap(observe::Middleware::new())
                .route(
                    "/wedge",
                    actix_web::web::get().to(|| async {
                        // Blocks the worker's thread: its event loop stops turning.
                        std::thread::sleep(Duration::from_millis(4000));
                        "unwedged"
                    }),
                )
                .route("/ok", actix_web::web::get().to(|| async { "ok" }))
        })
        .workers(1)
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        (server.addrs()[0], server.run())
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while common::http_get(app, "/ok", "").0 != 200 {
        assert!(Instant::now() < deadline);
    }
    let (status, _, body) = common::http_get(admin.local_addr(), "/livez?verbose", "");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("[+]heartbeats ok"), "{body}");

    let wedged = std::thread::spawn(move || common::http_get(app, "/wedge", "").0);
    std::thread::sleep(Duration::from_millis(2500));
    let (status, _, body) = common::http_get(admin.local_addr(), "/livez", "");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("[-]worker ") && body.contains("failed: no heartbeat for"),
        "{body}"
    );
    assert!(body.ends_with("livez check failed\n"), "{body}");

    assert_eq!(wedged.join().unwrap(), 200);
    std::thread::sleep(Duration::from_millis(300));
    let (status, _, body) = common::http_get(admin.local_addr(), "/livez", "");
    assert_eq!(status, 200, "recovered once the worker runs again: {body}");
    admin.stop();
}
