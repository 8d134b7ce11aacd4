//! Built-in checks, to call from your own `#[health_check]` functions: a TCP connect, an
//! HTTP `GET` expecting 2xx, free disk space, Redis `PING` and (feature `postgres`)
//! PostgreSQL `SELECT 1`. Each returns a value a check can return directly; each is
//! bounded by the check's own timeout.
//!
//! ```
//! # async fn demo() {
//! #[observe::health_check(critical, timeout = "800ms")]
//! async fn payment_gateway() -> Result<(), String> {
//!     observe::health::checks::http_get("http://127.0.0.1:9000/health").await
//! }
//! # }
//! ```

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::HealthStatus;

/// Connects to `addr` (`host:port`) and closes the connection.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let addr = listener.local_addr().unwrap().to_string();
/// assert!(observe_runtime::health::checks::tcp(&addr).await.is_ok());
/// drop(listener);
/// assert!(observe_runtime::health::checks::tcp(&addr).await.unwrap_err().contains("refused"));
/// # });
/// ```
pub async fn tcp(addr: &str) -> Result<(), String> {
    TcpStream::connect(addr)
        .await
        .map(drop)
        .map_err(|e| format!("connect {addr}: {e}"))
}

/// `GET url` over plain HTTP/1.1 and expects a 2xx status. `https://` URLs need a TLS
/// client: check them with your own client (`reqwest`, `awc`) in the check's body.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let err = observe_runtime::health::checks::http_get("ftp://example").await.unwrap_err();
/// assert!(err.contains("http://"));
/// # });
/// ```
pub async fn http_get(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("{url}: only http:// URLs are checked here; use your HTTPS client for https://")
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let mut stream = TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("GET {url}: connect {addr}: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: observe-health\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    // The status line is all we need; read until it is complete.
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if n == 0 {
            return Err(format!("GET {url}: connection closed before a status line"));
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > 8192 {
            return Err(format!("GET {url}: no status line in the first 8 KiB"));
        }
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default();
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("GET {url}: not an HTTP status line: {line:?}"))?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(format!("GET {url}: status {status}"))
    }
}

/// Free space on the filesystem holding `path`: fails below `fail_below` bytes, degraded
/// below `degraded_below` bytes. Plain (blocking) code: use it in a plain `fn` check,
/// which runs on the blocking pool.
///
/// ```
/// use observe_runtime::health::{HealthStatus, checks::disk_free};
/// assert_eq!(disk_free("/", 1, 2), HealthStatus::Pass);
/// assert!(matches!(disk_free("/", u64::MAX, u64::MAX), HealthStatus::Fail(_)));
/// ```
pub fn disk_free(path: impl AsRef<Path>, fail_below: u64, degraded_below: u64) -> HealthStatus {
    let path = path.as_ref();
    match available_bytes(path) {
        Err(e) => HealthStatus::Fail(format!("statvfs {}: {e}", path.display())),
        Ok(free) if free < fail_below => HealthStatus::Fail(format!(
            "{} has {free} bytes free, below {fail_below}",
            path.display()
        )),
        Ok(free) if free < degraded_below => HealthStatus::Degraded(format!(
            "{} has {free} bytes free, below {degraded_below}",
            path.display()
        )),
        Ok(_) => HealthStatus::Pass,
    }
}

#[cfg(unix)]
fn available_bytes(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path contains a NUL byte"))?;
    // SAFETY: `stat` is a valid out-pointer and `c` a NUL-terminated path.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

#[cfg(not(unix))]
fn available_bytes(_: &Path) -> std::io::Result<u64> {
    Err(std::io::Error::other(
        "free disk space is only checked on Unix",
    ))
}

/// Redis `PING` over a fresh connection to `addr` (`host:port`), with `AUTH` first when
/// `password` is given; expects `+PONG`. Speaks RESP directly: no client crate needed.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let err = observe_runtime::health::checks::redis_ping("127.0.0.1:1", None).await.unwrap_err();
/// assert!(err.starts_with("redis 127.0.0.1:1: connect"));
/// # });
/// ```
pub async fn redis_ping(addr: &str, password: Option<&str>) -> Result<(), String> {
    let fail = |what: String| format!("redis {addr}: {what}");
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| fail(format!("connect: {e}")))?;
    let mut command = Vec::new();
    if let Some(pw) = password {
        command
            .extend_from_slice(format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{pw}\r\n", pw.len()).as_bytes());
    }
    command.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    stream
        .write_all(&command)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let expected_lines = if password.is_some() { 2 } else { 1 };
    let mut reply = Vec::new();
    let mut buf = [0u8; 128];
    while reply.windows(2).filter(|w| *w == b"\r\n").count() < expected_lines {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| fail(e.to_string()))?;
        if n == 0 {
            return Err(fail("connection closed".into()));
        }
        reply.extend_from_slice(&buf[..n]);
    }
    let reply = String::from_utf8_lossy(&reply);
    let last = reply.lines().last().unwrap_or_default();
    if let Some(err) = reply.lines().find(|l| l.starts_with('-')) {
        return Err(fail(err[1..].to_owned()));
    }
    if last == "+PONG" {
        Ok(())
    } else {
        Err(fail(format!("unexpected reply {last:?}")))
    }
}

/// PostgreSQL `SELECT 1` on a client you own (feature `postgres`).
///
/// ```no_run
/// # async fn demo(client: &tokio_postgres::Client) {
/// let result = observe_runtime::health::checks::postgres(client).await;
/// # }
/// ```
#[cfg(feature = "postgres")]
pub async fn postgres(client: &tokio_postgres::Client) -> Result<(), String> {
    client
        .simple_query("SELECT 1")
        .await
        .map(drop)
        .map_err(|e| format!("postgres: {}", with_sources(&e)))
}

/// An error and its causes, `: `-separated (tokio-postgres' own message omits them).
#[cfg(feature = "postgres")]
fn with_sources(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Connects with `config` (a libpq-style string), runs `SELECT 1`, and disconnects
/// (feature `postgres`). Cheap enough for a cached check; prefer [`postgres`] with your
/// pool's client when you have one.
///
/// ```no_run
/// # async fn demo() {
/// let result = observe_runtime::health::checks::postgres_connect("host=127.0.0.1 user=app").await;
/// # }
/// ```
#[cfg(feature = "postgres")]
pub async fn postgres_connect(config: &str) -> Result<(), String> {
    let (client, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("postgres: connect: {}", with_sources(&e)))?;
    let driver = tokio::spawn(connection);
    let result = postgres(&client).await;
    drop(client);
    let _ = driver.await;
    result
}
