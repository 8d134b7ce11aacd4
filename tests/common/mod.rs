//! Reads samples back out of the text exposition, so tests assert on what a scraper sees.
#![allow(dead_code)]

use std::future::Future;

/// One sample: metric name, sorted labels, value.
pub type Sample = (String, Vec<(String, String)>, f64);

/// Every sample line of `text`.
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("sample has a value");
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().expect("numeric value"),
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (series, Vec::new()),
            };
            (name.to_owned(), labels, value)
        })
        .collect()
}

fn parse_labels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        assert_eq!(chars.next(), Some('"'));
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                '"' => break,
                c => value.push(c),
            }
        }
        out.push((key.trim_start_matches(',').to_owned(), value));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    out.sort();
    out
}

/// Values of the samples named `name` whose labels include all of `labels`.
fn matching(text: &str, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    samples(text)
        .into_iter()
        .filter(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
        })
        .map(|(_, _, v)| v)
        .collect()
}

/// The value of the one sample named `name` whose labels include all of `labels`.
/// Panics when there is none or more than one: both are bugs worth a clear failure.
pub fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = matching(text, name, labels);
    assert_eq!(
        found.len(),
        1,
        "expected exactly one sample {name}{labels:?}, found {found:?}"
    );
    found[0]
}

/// How many samples match, for asserting that something is absent or present once.
pub fn count(text: &str, name: &str, labels: &[(&str, &str)]) -> usize {
    matching(text, name, labels).len()
}

/// Calls of `function` with `result`, read from a fresh render.
pub fn calls(function: &str, result: &str) -> f64 {
    value(
        &observe::metrics::render(),
        "function_calls_total",
        &[("function", function), ("result", result)],
    )
}

/// Runs `program` with `args`, `text` on its standard input; returns its output.
/// Panics with `missing` when the program cannot be started.
pub fn pipe_through(
    program: &str,
    args: &[&str],
    text: &str,
    missing: &str,
) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect(missing);
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("write to {program}: {e}"));
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"))
}

/// Runs prometheus_client's strict OpenMetrics parser (tests/python/openmetrics_check.py)
/// on `text`; its output lists the exemplars it read.
pub fn openmetrics_parse(text: &str) -> std::process::Output {
    pipe_through(
        "python3",
        &[concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/openmetrics_check.py"
        )],
        text,
        "python3 runs",
    )
}

/// Runs `promtool check metrics` on `text`; returns its combined output.
/// promtool comes from Debian's `prometheus` package, which the test command installs.
pub fn promtool_check(text: &str) -> (bool, String) {
    let out = pipe_through(
        "promtool",
        &["check", "metrics"],
        text,
        "promtool not found: run the README's test command, which installs Debian's `prometheus` package",
    );
    let mut all = String::from_utf8_lossy(&out.stdout).into_owned();
    all.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), all)
}

/// A free TCP port on loopback (bound and released at once).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.1 client over loopback (no client crate needed): sends `request`
/// verbatim to `addr` and returns (status, headers, body).
pub fn http_raw(addr: std::net::SocketAddr, request: &str) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = raw[split + 4..].to_vec();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    (status, head, body)
}

/// `GET path` with `Connection: close` and optional extra header lines.
pub fn http_get(addr: std::net::SocketAddr, path: &str, extra: &str) -> (u16, String, String) {
    let (status, head, body) = http_raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{extra}\r\n"),
    );
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

/// Runs a server on a thread of its own, in its own actix `System`. `start` runs inside
/// that system: it binds and returns the bound address and the future that serves (the
/// server itself, or something driving it). Returns the address and the thread.
pub fn serve_on_thread<S, F>(
    start: S,
) -> (
    std::net::SocketAddr,
    std::thread::JoinHandle<std::io::Result<()>>,
)
where
    S: FnOnce() -> (std::net::SocketAddr, F) + Send + 'static,
    F: Future<Output = std::io::Result<()>> + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let (addr, serving) = start();
            tx.send(addr).expect("the test is waiting for the address");
            serving.await
        })
    });
    let addr = rx.recv().expect("the server thread sends its address");
    (addr, thread)
}

/// A throwaway PKI for TLS tests, made with the `openssl` command in a fresh directory:
/// a CA, a server certificate for `127.0.0.1` / `localhost` and a client certificate
/// signed by it, and a second, unrelated CA (to be trusted by mistake). P-256 keys in
/// PKCS#8 PEM.
pub struct Pki {
    pub dir: std::path::PathBuf,
    pub ca: std::path::PathBuf,
    pub server_cert: std::path::PathBuf,
    pub server_key: std::path::PathBuf,
    pub client_cert: std::path::PathBuf,
    pub client_key: std::path::PathBuf,
    pub other_ca: std::path::PathBuf,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("observe-pki-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("the openssl command runs");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for ca in ["ca", "other-ca"] {
            let mut args = vec!["req", "-x509"];
            args.extend(ec);
            let key = format!("{ca}.key");
            let pem = format!("{ca}.pem");
            let subject = format!("/CN=observe test {ca}");
            args.extend([
                "-keyout",
                &key,
                "-out",
                &pem,
                "-days",
                "2",
                "-subj",
                &subject,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]);
            run(&args);
        }
        for (leaf, ext) in [
            (
                "server",
                "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
            ),
            (
                "client",
                "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n\
                 extendedKeyUsage=clientAuth\n",
            ),
        ] {
            std::fs::write(dir.join(format!("{leaf}.ext")), ext).unwrap();
            let mut args = vec!["req"];
            args.extend(ec);
            let key = format!("{leaf}.key");
            let csr = format!("{leaf}.csr");
            let subject = format!(
                "/CN={}",
                if leaf == "server" {
                    "localhost"
                } else {
                    "observe-client"
                }
            );
            args.extend(["-keyout", &key, "-out", &csr, "-subj", &subject]);
            run(&args);
            let pem = format!("{leaf}.pem");
            let extfile = format!("{leaf}.ext");
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &extfile,
            ]);
        }
        Pki {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.pem"),
            client_key: dir.join("client.key"),
            other_ca: dir.join("other-ca.pem"),
            dir,
        }
    }

    pub fn path(p: &std::path::Path) -> String {
        p.to_str().unwrap().to_owned()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits (10 s at most) until `addr` accepts connections.
#[allow(dead_code)]
pub fn wait_until_connects(addr: std::net::SocketAddr) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{addr} never listened"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
