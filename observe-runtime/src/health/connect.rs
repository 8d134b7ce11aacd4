//! Connections for the built-in checks: TCP to a host (name, IPv4 or IPv6 literal) and
//! port, and TLS over it (feature `tls`: rustls with ring, the system's roots, which
//! `SSL_CERT_FILE` / `SSL_CERT_DIR` replace, as rustls-native-certs reads them).

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A connection, plain or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Connects to `host:port` (an IPv6 literal without brackets), over TLS if `tls`.
pub(crate) async fn connect(host: &str, port: u16, tls: bool) -> Result<Box<dyn Io>, String> {
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect {}: {e}", display(host, port)))?;
    let _ = stream.set_nodelay(true);
    if !tls {
        return Ok(Box::new(stream));
    }
    tls_over(stream, host).await
}

/// `host:port`, with brackets around an IPv6 literal.
pub(crate) fn display(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(feature = "tls")]
async fn tls_over(stream: TcpStream, host: &str) -> Result<Box<dyn Io>, String> {
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| format!("TLS: {host}: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(client_config())
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS handshake with {host}: {e}"))?;
    Ok(Box::new(tls))
}

#[cfg(not(feature = "tls"))]
async fn tls_over(_: TcpStream, host: &str) -> Result<Box<dyn Io>, String> {
    Err(format!(
        "{host}: TLS needs observe's `tls` feature (or `otlp`, `postgres`)"
    ))
}

/// The checks' rustls configuration, built once: ring, the system's roots.
#[cfg(feature = "tls")]
pub(crate) fn client_config() -> std::sync::Arc<rustls::ClientConfig> {
    static CONFIG: std::sync::OnceLock<std::sync::Arc<rustls::ClientConfig>> =
        std::sync::OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!(
                    target: "observe::health",
                    "no root certificates found for TLS checks ({} errors); set SSL_CERT_FILE",
                    found.errors.len()
                );
            }
            let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            std::sync::Arc::new(config)
        })
        .clone()
}

/// Connections kept between a built-in check's runs, by target and runtime (a
/// connection is driven by the runtime it was made on: taken to another, it would never
/// be woken). A run takes its connection out and puts it back only when it worked, so a
/// run that failed, or was cancelled at its timeout, drops (closes) it and the next run
/// connects afresh.
pub(crate) struct Idle<V>(std::sync::Mutex<Option<std::collections::HashMap<String, V>>>);

impl<V> Idle<V> {
    pub(crate) const fn new() -> Self {
        Idle(std::sync::Mutex::new(None))
    }

    fn key(target: &str) -> Option<String> {
        let runtime = tokio::runtime::Handle::try_current().ok()?.id();
        Some(format!("{runtime} {target}"))
    }

    pub(crate) fn take(&self, target: &str) -> Option<V> {
        let key = Self::key(target)?;
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .and_then(|idle| idle.remove(&key))
    }

    pub(crate) fn put(&self, target: &str, value: V) {
        if let Some(key) = Self::key(target) {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(std::collections::HashMap::new)
                .insert(key, value);
        }
    }
}
