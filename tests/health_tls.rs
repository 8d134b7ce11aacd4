//! The built-in checks against real servers over TLS, with a CA and certificates this
//! test makes: PostgreSQL accepting only TLS connections (`hostssl`), Redis on a TLS port
//! with an ACL user and the default user off, an HTTPS endpoint (Python's `ssl`), and an
//! HTTP endpoint on the IPv6 loopback. The checks trust the test's CA through
//! `SSL_CERT_FILE`, as an operator would point them at a private CA.
#![cfg(feature = "postgres")]

mod common;
#[path = "common/servers.rs"]
mod servers;

use std::process::{Command, Stdio};

use observe::health::checks;
use servers::{Postgres, Redis, block_on};

#[test]
fn checks_speak_tls_acl_users_and_ipv6_to_real_servers() {
    let pki = common::Pki::new("health");
    // SAFETY: the only test in this binary; set before any TLS check builds its roots.
    unsafe { std::env::set_var("SSL_CERT_FILE", &pki.ca) };

    // PostgreSQL, TLS only.
    let pg = Postgres::start_with(Some((&pki.server_cert, &pki.server_key)));
    let config = pg.config();
    block_on(checks::postgres_connect(&format!(
        "{config} sslmode=require"
    )))
    .expect("sslmode=require connects over TLS, the server verified");
    block_on(checks::postgres_connect(&config)).expect("sslmode=prefer (the default) uses TLS");
    let plain = block_on(checks::postgres_connect(&format!(
        "{config} sslmode=disable"
    )))
    .expect_err("the server accepts TLS connections only");
    assert!(plain.contains("pg_hba.conf"), "{plain}");
    // The re-exported client crate is the one the check uses.
    use checks::tokio_postgres as reexported;
    let _: Option<reexported::Client> = None;
    drop(pg);

    // Redis over TLS, with an ACL user; the default user is off.
    let mut redis = Redis::start_with(&[
        "--tls-cert-file",
        pki.server_cert.to_str().unwrap(),
        "--tls-key-file",
        pki.server_key.to_str().unwrap(),
        "--tls-auth-clients",
        "no",
        "--user",
        "default",
        "off",
        "--user",
        "alice",
        "on",
        ">s3cr%t",
        "+@all",
        "~*",
    ]);
    let port = redis.port;
    servers::wait_until("Redis over TLS", || {
        block_on(checks::redis(&format!(
            "rediss://alice:s3cr%25t@127.0.0.1:{port}"
        )))
        .is_ok()
    });
    let anonymous = block_on(checks::redis(&format!("rediss://127.0.0.1:{port}"))).unwrap_err();
    assert!(
        anonymous.contains("NOAUTH") || anonymous.contains("NOPERM"),
        "{anonymous}"
    );
    let wrong = block_on(checks::redis(&format!(
        "rediss://alice:nope@127.0.0.1:{port}"
    )))
    .unwrap_err();
    assert!(wrong.contains("WRONGPASS"), "{wrong}");
    let plain = block_on(checks::redis(&format!(
        "redis://alice:s3cr%25t@127.0.0.1:{port}"
    )))
    .unwrap_err();
    assert!(
        plain.starts_with(&format!("redis 127.0.0.1:{port}")),
        "{plain}"
    );
    redis.stop();

    // HTTPS: the Python peer serving TLS with the test's certificate.
    let peer = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/otel_peer.py");
    let out = std::env::temp_dir().join(format!("observe-health-tls-{}.jsonl", std::process::id()));
    let mut https = Command::new("python3")
        .arg(peer)
        .arg("receiver")
        .arg(&out)
        .arg("--tls")
        .arg(&pki.server_cert)
        .arg(&pki.server_key)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(https.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let https_port = line.trim().strip_prefix("PORT ").unwrap().to_owned();
    block_on(checks::http_get(&format!(
        "https://127.0.0.1:{https_port}/downstream"
    )))
    .expect("an HTTPS endpoint, verified against the CA");
    block_on(checks::http_get(&format!(
        "https://localhost:{https_port}/downstream"
    )))
    .expect("by name too");
    let status = block_on(checks::http_get(&format!(
        "https://127.0.0.1:{https_port}/nowhere"
    )))
    .unwrap_err();
    assert!(status.ends_with("status 404"), "{status}");
    let plain = block_on(checks::http_get(&format!(
        "http://127.0.0.1:{https_port}/downstream"
    )))
    .unwrap_err();
    assert!(plain.starts_with("GET http://"), "{plain}");
    let _ = https.kill();
    let _ = https.wait();
    let _ = std::fs::remove_file(&out);

    // HTTP to an IPv6 literal, with and without a port.
    let listener = std::net::TcpListener::bind("[::1]:0").expect("IPv6 loopback");
    let v6_port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 1024];
        let n = stream.read(&mut request).unwrap();
        let head = String::from_utf8_lossy(&request[..n]).into_owned();
        stream
            .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        head
    });
    block_on(checks::http_get(&format!("http://[::1]:{v6_port}/health")))
        .expect("an IPv6 literal with a port");
    let head = server.join().unwrap();
    assert!(head.starts_with("GET /health HTTP/1.1"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("host: [::1]:{v6_port}")),
        "{head}"
    );
    let no_port = block_on(checks::http_get("http://[::1]/health")).unwrap_err();
    assert!(
        no_port.contains("[::1]:80"),
        "port 80 by default: {no_port}"
    );
}
