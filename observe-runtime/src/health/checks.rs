//! Built-in checks, to call from your own `#[health_check]` functions: a TCP connect, an
//! HTTP(S) `GET` expecting 2xx, free disk space, Redis `PING` (TLS and ACL users
//! included) and (feature `postgres`) PostgreSQL `SELECT 1` (TLS included). Each returns a value a check can return directly; each is
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

use super::connect::connect;

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

/// `GET url` and expects a 2xx status: HTTP/1.1 by hyper, over TLS for `https://`
/// (feature `tls`, also on with `otlp` and `postgres`: rustls, the system's roots or
/// `SSL_CERT_FILE`); IPv6 literals as `http://[::1]:8080/health`. The connection is
/// kept alive between runs (one per URL) and replaced when the server closed it; a
/// run that fails or times out closes it.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let err = observe_runtime::health::checks::http_get("ftp://example").await.unwrap_err();
/// assert!(err.contains("http:// and https://"));
/// # });
/// ```
pub async fn http_get(url: &str) -> Result<(), String> {
    use http_body_util::{BodyExt, Empty, Limited};
    use hyper::client::conn::http1::SendRequest;
    type Sender = SendRequest<Empty<bytes::Bytes>>;
    static IDLE: super::connect::Idle<Sender> = super::connect::Idle::new();
    let fail = |what: String| format!("GET {url}: {what}");
    let uri: hyper::Uri = url.parse().map_err(|e| fail(format!("{e}")))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(fail("only http:// and https:// URLs are checked".into())),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| fail("no host".into()))?
        .clone();
    let (host, port) = host_and_port(authority.as_str());
    let port = port.unwrap_or(if tls { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = || {
        hyper::Request::get(path)
            .header(hyper::header::HOST, authority.as_str())
            .header(hyper::header::USER_AGENT, "observe-health")
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| fail(e.to_string()))
    };
    let connect_new = || async {
        let io = connect(&host, port, tls).await.map_err(fail)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                .await
                .map_err(|e| fail(e.to_string()))?;
        // Ends when the sender is dropped or the server closes the connection.
        tokio::spawn(connection);
        Ok::<Sender, String>(sender)
    };
    let kept = match IDLE.take(url) {
        Some(mut sender) => sender.ready().await.is_ok().then_some(sender),
        None => None,
    };
    let (mut sender, response) = match kept {
        Some(mut sender) => match sender.send_request(request()?).await {
            Ok(response) => (sender, response),
            // The server closed the kept connection as the request went out: a new one.
            Err(_) => {
                let mut sender = connect_new().await?;
                let response = sender.send_request(request()?).await;
                (sender, response.map_err(|e| fail(with_sources(&e)))?)
            }
        },
        None => {
            let mut sender = connect_new().await?;
            let response = sender.send_request(request()?).await;
            (sender, response.map_err(|e| fail(with_sources(&e)))?)
        }
    };
    let status = response.status();
    // Read the (small) body so the connection can carry the next run's request.
    if Limited::new(response.into_body(), 64 * 1024)
        .collect()
        .await
        .is_ok()
        && sender.ready().await.is_ok()
    {
        IDLE.put(url, sender);
    }
    if status.is_success() {
        Ok(())
    } else {
        Err(fail(format!("status {}", status.as_u16())))
    }
}

/// Host and port of a URL authority (`[user@]host[:port]`); an IPv6 literal loses its
/// brackets.
pub(crate) fn host_and_port(authority: &str) -> (String, Option<u16>) {
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((host, rest)) => (host, rest.strip_prefix(':')),
            None => (v6, None),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    (host.to_ascii_lowercase(), port.and_then(|p| p.parse().ok()))
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

/// Redis `PING` at `url`: `redis://[[user]:password@]host[:port]`, or `rediss://` for
/// TLS (feature `tls`); `AUTH user password` (an ACL user) or `AUTH password` first
/// when the URL has them (percent-decoded); expects `+PONG`. Speaks RESP directly. The
/// connection is kept between runs (one per URL: the next run sends only `PING`) and
/// replaced when it broke; a run that fails or times out closes it.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let err = observe_runtime::health::checks::redis("redis://127.0.0.1:1").await.unwrap_err();
/// assert!(err.starts_with("redis 127.0.0.1:1: connect"));
/// # });
/// ```
pub async fn redis(url: &str) -> Result<(), String> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("rediss://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("redis://") {
        (false, rest)
    } else {
        return Err(format!("redis {url}: expected a redis:// or rediss:// URL"));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (user, password) = match authority.rsplit_once('@') {
        None => (None, None),
        Some((info, _)) => match info.split_once(':') {
            Some((user, password)) => (
                Some(percent_decode(user)).filter(|u| !u.is_empty()),
                Some(percent_decode(password)),
            ),
            None => (Some(percent_decode(info)), None),
        },
    };
    let (host, port) = host_and_port(authority);
    let port = port.unwrap_or(6379);
    let target = super::connect::display(&host, port);
    let fail = |what: String| format!("redis {target}: {what}");
    static IDLE: super::connect::Idle<Box<dyn super::connect::Io>> = super::connect::Idle::new();
    if let Some(mut stream) = IDLE.take(url)
        && resp_exchange(&mut stream, "*1\r\n$4\r\nPING\r\n", 1)
            .await
            .is_ok_and(|last| last == "+PONG")
    {
        IDLE.put(url, stream);
        return Ok(());
    }
    // No kept connection, or it broke (or answered oddly): a new one, authenticated.
    let mut stream = connect(&host, port, tls).await.map_err(|e| {
        fail(
            e.split_once(": ")
                .map_or(e.clone(), |(_, r)| format!("connect: {r}")),
        )
    })?;
    let bulk = |parts: &[&str]| {
        let mut out = format!("*{}\r\n", parts.len());
        for p in parts {
            out.push_str(&format!("${}\r\n{p}\r\n", p.len()));
        }
        out
    };
    let mut command = String::new();
    match (&user, &password) {
        (Some(user), Some(password)) => command.push_str(&bulk(&["AUTH", user, password])),
        (Some(user), None) => command.push_str(&bulk(&["AUTH", user, ""])),
        (None, Some(password)) => command.push_str(&bulk(&["AUTH", password])),
        (None, None) => {}
    }
    command.push_str(&bulk(&["PING"]));
    let expected_lines = if user.is_some() || password.is_some() {
        2
    } else {
        1
    };
    let last = resp_exchange(&mut stream, &command, expected_lines)
        .await
        .map_err(fail)?;
    if last == "+PONG" {
        IDLE.put(url, stream);
        Ok(())
    } else {
        Err(fail(format!("unexpected reply {last:?}")))
    }
}

/// Sends `command`, reads `lines` reply lines; the last line, or the first error reply.
async fn resp_exchange(
    stream: &mut Box<dyn super::connect::Io>,
    command: &str,
    lines: usize,
) -> Result<String, String> {
    stream
        .write_all(command.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 128];
    while reply.windows(2).filter(|w| *w == b"\r\n").count() < lines {
        let n = stream.read(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        reply.extend_from_slice(&buf[..n]);
        if reply.len() > 8192 {
            return Err("reply too long".into());
        }
    }
    let reply = String::from_utf8_lossy(&reply);
    if let Some(err) = reply.lines().find(|l| l.starts_with('-')) {
        return Err(err[1..].to_owned());
    }
    Ok(reply.lines().last().unwrap_or_default().to_owned())
}

/// `%XX` escapes decoded (URL user info, OTLP header values); anything else kept.
pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// An error and its causes, `: `-separated (tokio-postgres', hyper's and the HTTP
/// clients' own messages omit them: a TLS failure is several levels down).
pub(crate) fn with_sources(error: &dyn std::error::Error) -> String {
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

/// Runs `SELECT 1` over a connection made with `config` (a libpq-style string or a
/// `postgres://` URL) and kept between runs (feature `postgres`): one connection per
/// distinct `config`, not one per run. A connection that broke (server restarted,
/// network reset) is replaced at once and the query retried; one whose run failed or
/// timed out is closed, so the next run connects afresh. `sslmode=prefer` (the default)
/// or `require` use TLS (rustls; the server's certificate is verified against the
/// system's roots or `SSL_CERT_FILE`), `disable` does not. [`postgres`] checks a client
/// of your own pool instead.
///
/// ```no_run
/// # async fn demo() {
/// let result = observe_runtime::health::checks::postgres_connect("host=127.0.0.1 user=app").await;
/// # }
/// ```
#[cfg(feature = "postgres")]
pub async fn postgres_connect(config: &str) -> Result<(), String> {
    static IDLE: super::connect::Idle<tokio_postgres::Client> = super::connect::Idle::new();
    let (client, reused) = match IDLE.take(config).filter(|c| !c.is_closed()) {
        Some(client) => (client, true),
        None => (connect_postgres(config).await?, false),
    };
    let (client, result) = match postgres(&client).await {
        // The kept connection had broken (e.g. the server restarted): connect again.
        Err(_) if reused && client.is_closed() => {
            let client = connect_postgres(config).await?;
            let result = postgres(&client).await;
            (client, result)
        }
        result => (client, result),
    };
    if result.is_ok() {
        IDLE.put(config, client);
    }
    result
}

/// A new client for `config`; its connection is driven by a task on the current runtime
/// and closes when the client is dropped.
#[cfg(feature = "postgres")]
async fn connect_postgres(config: &str) -> Result<tokio_postgres::Client, String> {
    let config: tokio_postgres::Config = config
        .parse()
        .map_err(|e| format!("postgres: {}", with_sources(&e)))?;
    let connect_error =
        |e: tokio_postgres::Error| format!("postgres: connect: {}", with_sources(&e));
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(connect_error)?;
        tokio::spawn(async move { drop(connection.await) });
        Ok(client)
    } else {
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(
            (*super::connect::client_config()).clone(),
        );
        let (client, connection) = config.connect(tls).await.map_err(connect_error)?;
        tokio::spawn(async move { drop(connection.await) });
        Ok(client)
    }
}

/// The PostgreSQL client crate the check is built with (feature `postgres`), so your
/// check needs no pinned dependency of its own.
///
/// ```no_run
/// use observe_runtime::health::checks::tokio_postgres;
/// # async fn demo() -> Result<(), tokio_postgres::Error> {
/// let (client, connection) = tokio_postgres::connect("host=127.0.0.1 user=app", tokio_postgres::NoTls).await?;
/// # drop((client, connection)); Ok(())
/// # }
/// ```
#[cfg(feature = "postgres")]
pub use tokio_postgres;
