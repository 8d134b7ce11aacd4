//! Readiness of a payment service against real dependencies: a throwaway PostgreSQL
//! (critical), a payment gateway over HTTP (critical: the SLA dependency) and Redis
//! (non-critical), all on free loopback ports, probed over HTTP through the admin server.
//! The README's test command installs PostgreSQL and Redis (needs root: PostgreSQL runs
//! as the `postgres` user).
#![cfg(feature = "postgres")]

mod common;
#[path = "common/servers.rs"]
mod servers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use observe::health::{Health, checks};

/// The payment gateway: answers 200, 502, or hangs, as the test says; counts requests.
struct Gateway {
    mode: Arc<AtomicU8>,
    hits: Arc<AtomicU32>,
    addr: SocketAddr,
}

const UP: u8 = 0;
const HANG: u8 = 2;

impl Gateway {
    fn start() -> Gateway {
        let mode = Arc::new(AtomicU8::new(UP));
        let hits = Arc::new(AtomicU32::new(0));
        let (m, h) = (mode.clone(), hits.clone());
        let (addr, _) = common::serve_on_thread(move || {
            let server = actix_web::HttpServer::new(move || {
                let (m, h) = (m.clone(), h.clone());
                actix_web::App::new().route(
                    "/health",
                    actix_web::web::get().to(move || {
                        let (m, h) = (m.clone(), h.clone());
                        async move {
                            h.fetch_add(1, Ordering::SeqCst);
                            match m.load(Ordering::SeqCst) {
                                UP => actix_web::HttpResponse::Ok().finish(),
                                HANG => {
                                    actix_web::rt::time::sleep(Duration::from_secs(30)).await;
                                    actix_web::HttpResponse::Ok().finish()
                                }
                                _ => actix_web::HttpResponse::BadGateway().finish(),
                            }
                        }
                    }),
                )
            })
            .workers(2)
            .disable_signals()
            .bind("127.0.0.1:0")
            .unwrap();
            (server.addrs()[0], server.run())
        });
        Gateway { mode, hits, addr }
    }
}

struct Deps {
    postgres: String,
    redis: String,
    gateway: String,
}

#[observe::health_check(critical, timeout = "400ms")]
async fn database(deps: &Deps) -> Result<(), String> {
    checks::postgres_connect(&deps.postgres).await
}

#[observe::health_check(critical, timeout = "300ms", interval = "200ms", success_threshold = 2)]
async fn payment_gateway(deps: &Deps) -> Result<(), String> {
    checks::http_get(&deps.gateway).await
}

#[observe::health_check(timeout = "300ms")]
async fn redis(deps: &Deps) -> Result<(), String> {
    checks::redis(&deps.redis).await
}

#[test]
fn readiness_follows_the_real_dependencies() {
    let postgres = servers::Postgres::start();
    let mut redis_server = servers::Redis::start();
    let gateway = Gateway::start();
    let health = Health::builder()
        .select(["database", "payment_gateway", "redis"])
        .state(Deps {
            postgres: postgres.config(),
            redis: format!("redis://127.0.0.1:{}", redis_server.port),
            gateway: format!("http://{}/health", gateway.addr),
        })
        .build()
        .unwrap();
    health.mark_started();
    let admin = observe::admin::AdminServer::new()
        .addr("127.0.0.1:0")
        .health(health.clone())
        .start()
        .unwrap();
    let readyz = || common::http_get(admin.local_addr(), "/readyz?verbose", "");

    // Everything up.
    let (status, _, body) = readyz();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        "[+]database ok\n[+]payment_gateway ok\n[+]redis ok\nreadyz check passed\n"
    );

    // Probes until `done` says the answer changed; every probe answers within the
    // budget (800 ms), whatever the dependencies do. A passing result is served stale
    // for one cache lifetime while it is re-checked, so a change shows on a later probe.
    let probe_until = |what: &str, done: &dyn Fn(u16, &str) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let started = Instant::now();
            let (status, _, body) = readyz();
            let took = started.elapsed();
            assert!(
                took < Duration::from_millis(900),
                "probe took {took:?}: {body}"
            );
            if done(status, &body) {
                return (status, body);
            }
            assert!(
                Instant::now() < deadline,
                "{what} never showed: {status} {body}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // Redis down: degraded, still ready, and Redis is named.
    redis_server.stop();
    let (status, body) = probe_until("redis down", &|_, b| b.contains("[-]redis"));
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("[-]redis failed (non-critical): redis 127.0.0.1:"),
        "{body}"
    );
    assert!(body.ends_with("readyz check passed, degraded\n"), "{body}");

    // The gateway hangs: 503 within the budget, naming the gateway.
    gateway.mode.store(HANG, Ordering::SeqCst);
    let (status, body) = probe_until("gateway hanging", &|s, _| s == 503);
    assert!(
        body.contains("[-]payment_gateway timeout: timed out after 300ms"),
        "{status} {body}"
    );

    // The gateway is back: 200 once it has passed twice (success_threshold = 2); a
    // single success shows as "recovering" and is still 503.
    gateway.mode.store(UP, Ordering::SeqCst);
    let (_, body) = probe_until("recovering", &|_, b| b.contains("recovering"));
    assert!(
        body.contains(
            "[-]payment_gateway failed: recovering: 1 consecutive success(es), threshold 2"
        ),
        "{body}"
    );
    probe_until("recovered", &|s, _| s == 200);

    // A probe storm: 1,000 probes in about 2 s reach the gateway at most once per
    // interval (200 ms), not 1,000 times.
    let before = gateway.hits.load(Ordering::SeqCst);
    let started = Instant::now();
    let addr = admin.local_addr();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(move || {
                for _ in 0..250 {
                    let (status, _, _) = common::http_get(addr, "/readyz", "");
                    assert!(status == 200 || status == 503);
                    std::thread::sleep(Duration::from_millis(8));
                }
            });
        }
    });
    let elapsed = started.elapsed();
    let hits = gateway.hits.load(Ordering::SeqCst) - before;
    let allowed = (elapsed.as_millis() / 200) as u32 + 2;
    assert!(
        hits <= allowed,
        "{hits} gateway calls in {elapsed:?} (at most {allowed})"
    );
    admin.stop();
    drop(postgres);
}

/// PostgreSQL's own count of sessions ever opened to the `postgres` database.
fn sessions(config: &str) -> i64 {
    use checks::tokio_postgres;
    servers::block_on(async {
        let (client, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls)
            .await
            .unwrap();
        let driver = tokio::spawn(connection);
        let row = client
            .query_one(
                "SELECT sessions FROM pg_stat_database WHERE datname = 'postgres'",
                &[],
            )
            .await
            .unwrap();
        drop(client);
        let _ = driver.await;
        row.get(0)
    })
}

/// `INFO stats`' count of connections Redis ever accepted.
fn redis_connections(port: u16) -> u64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while !text.contains("total_connections_received:") || !text.ends_with("\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("total_connections_received:"))
        .unwrap();
    line.trim().parse().unwrap()
}

/// A keep-alive HTTP server that counts the connections it accepted.
fn counting_http_server() -> (SocketAddr, Arc<AtomicU32>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicU32::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(100) {
            let Ok(mut stream) = stream else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                let mut pending = Vec::new();
                for _ in 0..1000 {
                    let Ok(n) = stream.read(&mut buf) else { return };
                    if n == 0 {
                        return;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                        pending.drain(..end + 4);
                        let body = "ok";
                        let reply = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(reply.as_bytes()).is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, accepted)
}

/// Issue 15, item 7: twenty runs of each built-in check that speaks a protocol open one
/// connection, not twenty; a restarted PostgreSQL and a restarted Redis are reconnected
/// to on the next run, which passes.
#[test]
fn built_in_checks_keep_their_connections() {
    let postgres = servers::Postgres::start();
    let mut redis_server = servers::Redis::start();
    let (http_addr, http_accepted) = counting_http_server();
    let config = postgres.config();
    let redis_url = format!("redis://127.0.0.1:{}", redis_server.port);
    let http_url = format!("http://{http_addr}/health");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let run_all = |n: usize| {
        for _ in 0..n {
            runtime.block_on(async {
                checks::postgres_connect(&config).await.unwrap();
                checks::redis(&redis_url).await.unwrap();
                checks::http_get(&http_url).await.unwrap();
            });
        }
    };

    let pg_before = sessions(&config);
    let redis_before = redis_connections(redis_server.port);
    run_all(20);
    // The counting queries each open one session/connection of their own.
    assert_eq!(
        sessions(&config) - pg_before,
        2,
        "PostgreSQL sessions for 20 runs"
    );
    assert_eq!(
        redis_connections(redis_server.port) - redis_before,
        2,
        "Redis connections for 20 runs"
    );
    assert_eq!(
        http_accepted.load(Ordering::SeqCst),
        1,
        "HTTP connections for 20 runs"
    );

    // The servers restart: every kept connection breaks; the next run reconnects.
    postgres.restart();
    let port = redis_server.port;
    redis_server.stop();
    let mut redis_server = servers::Redis::start_on(port);
    run_all(3);
    assert_eq!(redis_server.port, port);
    redis_server.stop();
}

#[observe::health_check(critical, timeout = "400ms", interval = "1s")]
async fn frozen_database(deps: &Deps) -> Result<(), String> {
    checks::postgres_connect(&deps.postgres).await
}

/// Issue 15, item 2, against a real PostgreSQL: frozen with SIGSTOP for 12 s (every
/// check run times out; the background backoff grows to 8 s), then resumed: `/readyz`
/// is 200 again within one interval (1 s) plus the timeout (400 ms) plus one polling
/// step.
#[test]
fn readiness_recovers_within_an_interval_after_postgres_resumes() {
    let postgres = servers::Postgres::start();
    let health = Health::builder()
        .select(["frozen_database"])
        .state(Deps {
            postgres: postgres.config(),
            redis: String::new(),
            gateway: String::new(),
        })
        .build()
        .unwrap();
    health.mark_started();
    health.start_background();
    let admin = observe::admin::AdminServer::new()
        .addr("127.0.0.1:0")
        .health(health.clone())
        .start()
        .unwrap();
    let readyz = || common::http_get(admin.local_addr(), "/readyz?verbose", "").0;
    servers::wait_until("ready", || readyz() == 200);

    postgres.signal("STOP");
    let frozen = Instant::now();
    servers::wait_until("503 while PostgreSQL is frozen", || readyz() == 503);
    while frozen.elapsed() < Duration::from_secs(12) {
        assert_eq!(readyz(), 503);
        std::thread::sleep(Duration::from_millis(500));
    }
    postgres.signal("CONT");
    let resumed = Instant::now();
    loop {
        if readyz() == 200 {
            break;
        }
        assert!(
            resumed.elapsed() < Duration::from_secs(10),
            "never ready after PostgreSQL resumed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = resumed.elapsed();
    assert!(
        took <= Duration::from_millis(1400 + 300),
        "ready {took:?} after PostgreSQL resumed (interval 1 s + timeout 400 ms)"
    );
    admin.stop();
}
