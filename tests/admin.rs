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

#[test]
fn answers_while_the_application_worker_is_blocked() {
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
