//! What every OTLP connection shares, per signal: the endpoint, TLS (rustls with ring:
//! the system's roots, or the CA of `OTEL_EXPORTER_OTLP_CERTIFICATE`, and a client
//! certificate for mTLS), gzip, and the timeout, from the standard variables with their
//! per-signal forms (`OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE` before
//! `OTEL_EXPORTER_OTLP_CERTIFICATE`, and so on).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::InitError;
use super::env::{EnvError, var};

/// The three OpenTelemetry signals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    Traces,
    #[cfg_attr(not(feature = "otlp-metrics"), allow(dead_code))]
    Metrics,
    Logs,
}

impl Signal {
    /// The signal's part of variable names (`TRACES`).
    fn upper(self) -> &'static str {
        match self {
            Signal::Traces => "TRACES",
            Signal::Metrics => "METRICS",
            Signal::Logs => "LOGS",
        }
    }

    /// The signal's path on an OTLP/HTTP endpoint.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Signal::Traces => "/v1/traces",
            Signal::Metrics => "/v1/metrics",
            Signal::Logs => "/v1/logs",
        }
    }
}

/// `OTEL_EXPORTER_OTLP_<SIGNAL>_<suffix>`, else `OTEL_EXPORTER_OTLP_<suffix>`: the name
/// that was set, and its value.
pub(crate) fn signal_var(signal: Signal, suffix: &str) -> Option<(String, String)> {
    let specific = format!("OTEL_EXPORTER_OTLP_{}_{suffix}", signal.upper());
    if let Some(v) = var(&specific) {
        return Some((specific, v));
    }
    let general = format!("OTEL_EXPORTER_OTLP_{suffix}");
    var(&general).map(|v| (general, v))
}

/// The signal's OTLP/HTTP URL: the per-signal endpoint as given, or the general one with
/// the signal's path appended; `http://localhost:4318` by default.
pub(crate) fn http_endpoint(signal: Signal) -> String {
    let specific = format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", signal.upper());
    if let Some(url) = var(&specific) {
        return url;
    }
    let base = var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_else(|| "http://localhost:4318".into());
    format!("{}{}", base.trim_end_matches('/'), signal.path())
}

/// Whether the signal's endpoint (per-signal or general) speaks TLS.
#[cfg(feature = "grpc")]
pub(crate) fn endpoint_is_https(signal: Signal) -> bool {
    signal_var(signal, "ENDPOINT").is_some_and(|(_, url)| url.starts_with("https://"))
}

/// `…_COMPRESSION`: `gzip` or `none` (default).
pub(crate) fn gzip(signal: Signal) -> Result<bool, InitError> {
    match signal_var(signal, "COMPRESSION") {
        None => Ok(false),
        Some((_, v)) if v.eq_ignore_ascii_case("gzip") => Ok(true),
        Some((_, v)) if v.eq_ignore_ascii_case("none") => Ok(false),
        Some((name, value)) => Err(InitError::Env(EnvError {
            variable: leak(name),
            value,
            expected: "gzip or none",
        })),
    }
}

/// `…_TIMEOUT` in milliseconds (default 10 s); for metrics, `OTEL_METRIC_EXPORT_TIMEOUT`
/// when no OTLP timeout is set.
pub(crate) fn timeout(signal: Signal) -> Result<Duration, InitError> {
    let named = signal_var(signal, "TIMEOUT").or_else(|| {
        (signal == Signal::Metrics)
            .then(|| var("OTEL_METRIC_EXPORT_TIMEOUT"))
            .flatten()
            .map(|v| ("OTEL_METRIC_EXPORT_TIMEOUT".to_owned(), v))
    });
    match named {
        None => Ok(Duration::from_secs(10)),
        Some((name, value)) => match value.parse::<u64>() {
            Ok(ms) => Ok(Duration::from_millis(ms)),
            Err(_) => Err(InitError::Env(EnvError {
                variable: leak(name),
                value,
                expected: "a whole number of milliseconds",
            })),
        },
    }
}

/// The names of variables are built at run time; errors keep them for the process's
/// life (start-up only, a few bytes).
fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

/// The TLS files named for a signal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// PEM certificates to trust instead of the system's roots.
    pub(crate) ca: Option<PathBuf>,
    /// PEM client certificate chain and key, for mTLS.
    pub(crate) client: Option<(PathBuf, PathBuf)>,
}

pub(crate) fn tls_files(signal: Signal) -> Result<TlsFiles, InitError> {
    let ca = signal_var(signal, "CERTIFICATE").map(|(_, v)| PathBuf::from(v));
    let cert = signal_var(signal, "CLIENT_CERTIFICATE");
    let key = signal_var(signal, "CLIENT_KEY");
    let client = match (cert, key) {
        (None, None) => None,
        (Some((_, c)), Some((_, k))) => Some((PathBuf::from(c), PathBuf::from(k))),
        (Some((name, value)), None) | (None, Some((name, value))) => {
            return Err(InitError::Env(EnvError {
                variable: leak(name),
                value,
                expected: "both OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and \
                           OTEL_EXPORTER_OTLP_CLIENT_KEY (or their per-signal forms), \
                           or neither",
            }));
        }
    };
    Ok(TlsFiles { ca, client })
}

fn tls_error(what: impl std::fmt::Display) -> InitError {
    InitError::Exporter(format!("OTLP TLS: {what}"))
}

fn read(path: &PathBuf) -> Result<Vec<u8>, InitError> {
    std::fs::read(path).map_err(|e| tls_error(format!("{}: {e}", path.display())))
}

/// The PEM certificates of a file, for ureq.
fn ureq_certs(path: &PathBuf) -> Result<Vec<ureq::tls::Certificate<'static>>, InitError> {
    let pem = read(path)?;
    let mut certs = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let ureq::tls::PemItem::Certificate(c) =
            item.map_err(|e| tls_error(format!("{}: {e}", path.display())))?
        {
            certs.push(c);
        }
    }
    if certs.is_empty() {
        return Err(tls_error(format!(
            "{}: no PEM certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

/// The TLS settings of a signal's HTTP client: rustls with ring (given explicitly, so no
/// process-wide provider is needed or installed), the CA file's certificates as the only
/// roots when one is named (as the OpenTelemetry SDKs of other languages do), else the
/// operating system's; a client certificate when named.
pub(crate) fn ureq_tls(files: &TlsFiles) -> Result<ureq::tls::TlsConfig, InitError> {
    use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};
    let roots: Vec<Certificate<'static>> = match &files.ca {
        Some(path) => ureq_certs(path)?,
        None => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                tracing::warn!(
                    target: "observe::telemetry",
                    "no system root certificates found ({} errors): https:// OTLP endpoints \
                     will fail; set OTEL_EXPORTER_OTLP_CERTIFICATE",
                    found.errors.len()
                );
            }
            found
                .certs
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned())
                .collect()
        }
    };
    let mut builder = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .root_certs(RootCerts::Specific(Arc::new(roots)));
    if let Some((cert, key)) = &files.client {
        let chain = ureq_certs(cert)?;
        let key = PrivateKey::from_pem(&read(key)?)
            .map_err(|e| tls_error(format!("{}: {e}", key.display())))?;
        builder = builder.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    Ok(builder.build())
}

/// The cause of an exporter's last failed request, for the line that reports it.
pub(crate) type LastError = Arc<std::sync::Mutex<Option<String>>>;

type HttpRequest = opentelemetry_http::Request<opentelemetry_http::Bytes>;
type HttpResult =
    Result<opentelemetry_http::Response<opentelemetry_http::Bytes>, opentelemetry_http::HttpError>;

/// The exporters' HTTP client: a ureq agent with our TLS settings and the signal's
/// timeout, keeping the full cause of the last failure (a TLS error is several levels
/// down; the exporter's own error says only "network error").
#[derive(Debug)]
pub(crate) struct ExplainingClient {
    agent: ureq::Agent,
    last_error: LastError,
}

impl ExplainingClient {
    pub(crate) fn last_error(&self) -> LastError {
        self.last_error.clone()
    }

    fn send(&self, request: HttpRequest) -> HttpResult {
        let (parts, body) = request.into_parts();
        let request = opentelemetry_http::Request::from_parts(parts, body.to_vec());
        let response = self.agent.run(request)?;
        let (parts, mut body) = response.into_parts();
        let body = body.with_config().limit(4 * 1024 * 1024).read_to_vec()?;
        Ok(opentelemetry_http::Response::from_parts(parts, body.into()))
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExplainingClient {
    async fn send_bytes(&self, request: HttpRequest) -> HttpResult {
        // Blocking: the batch processors export from threads of their own.
        let result = self.send(request);
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        *last = match &result {
            Err(e) => Some(crate::health::checks::with_sources(e.as_ref())),
            Ok(r) if !r.status().is_success() => Some(format!("HTTP {}", r.status())),
            Ok(_) => None,
        };
        result
    }
}

/// The HTTP agent for a signal's exports: our TLS settings, the signal's timeout, every
/// status returned as a response (the exporters judge it).
pub(crate) fn agent(signal: Signal) -> Result<ureq::Agent, InitError> {
    let tls = ureq_tls(&tls_files(signal)?)?;
    let timeout = timeout(signal)?;
    Ok(ureq::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .build()
        .new_agent())
}

/// [`agent`], keeping the cause of its last failure.
pub(crate) fn explaining_client(signal: Signal) -> Result<ExplainingClient, InitError> {
    Ok(ExplainingClient {
        agent: agent(signal)?,
        last_error: LastError::default(),
    })
}

/// tonic's TLS settings for a signal: the CA file or the system's roots, and the client
/// identity.
#[cfg(feature = "grpc")]
pub(crate) fn tonic_tls(signal: Signal) -> Result<tonic::transport::ClientTlsConfig, InitError> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let files = tls_files(signal)?;
    let mut config = ClientTlsConfig::new();
    config = match &files.ca {
        Some(path) => {
            // Checked as the HTTP client reads it, for the same clear error.
            ureq_certs(path)?;
            config.ca_certificate(Certificate::from_pem(read(path)?))
        }
        None => config.with_native_roots(),
    };
    if let Some((cert, key)) = &files.client {
        config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_ca_file_is_a_clear_error() {
        let missing = TlsFiles {
            ca: Some("/nonexistent/ca.pem".into()),
            client: None,
        };
        let e = ureq_tls(&missing).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let empty = std::env::temp_dir().join(format!("observe-empty-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = ureq_tls(&TlsFiles {
            ca: Some(empty.clone()),
            client: None,
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        let _ = std::fs::remove_file(empty);
    }

    #[test]
    fn system_roots_are_the_default() {
        assert!(ureq_tls(&TlsFiles::default()).is_ok());
    }
}
