//! The metrics push over OTLP/gRPC (feature `grpc`): tonic's client for the
//! `MetricsService`, on a current-thread runtime owned by the push thread, with the same
//! endpoint, TLS, gzip, timeout and header variables as the other signals.

use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use tonic::transport::Channel;

use super::super::InitError;
use super::super::tls::{self, Signal};
use crate::health::checks::with_sources;

/// gRPC's default OTLP endpoint.
const DEFAULT_ENDPOINT: &str = "http://localhost:4317";

pub(super) struct GrpcPush {
    runtime: tokio::runtime::Runtime,
    client: MetricsServiceClient<Channel>,
    endpoint: String,
    timeout: Duration,
    headers: Vec<(
        tonic::metadata::AsciiMetadataKey,
        tonic::metadata::AsciiMetadataValue,
    )>,
}

impl GrpcPush {
    pub(super) fn new(headers: &[(String, String)]) -> Result<GrpcPush, InitError> {
        let endpoint = tls::signal_var(Signal::Metrics, "ENDPOINT")
            .map_or_else(|| DEFAULT_ENDPOINT.to_owned(), |(_, e)| e);
        let timeout = tls::timeout(Signal::Metrics)?;
        let invalid = |e: &dyn std::error::Error| {
            InitError::Exporter(format!(
                "OTLP/gRPC metrics endpoint {endpoint}: {}",
                with_sources(e)
            ))
        };
        let mut target = tonic::transport::Endpoint::from_shared(endpoint.clone())
            .map_err(|e| invalid(&e))?
            .timeout(timeout)
            .connect_timeout(timeout);
        if tls::endpoint_is_https(Signal::Metrics) {
            target = target
                .tls_config(tls::tonic_tls(Signal::Metrics)?)
                .map_err(|e| invalid(&e))?;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                InitError::Exporter(format!("a runtime for the OTLP/gRPC metrics push: {e}"))
            })?;
        let channel = {
            let _entered = runtime.enter();
            target.connect_lazy()
        };
        let mut client = MetricsServiceClient::new(channel);
        if tls::gzip(Signal::Metrics)? {
            client = client.send_compressed(tonic::codec::CompressionEncoding::Gzip);
        }
        let headers = headers
            .iter()
            .filter_map(|(k, v)| Some((k.to_ascii_lowercase().parse().ok()?, v.parse().ok()?)))
            .collect();
        Ok(GrpcPush {
            runtime,
            client,
            endpoint,
            timeout,
            headers,
        })
    }

    /// Sends one request; the failure, said with the endpoint, when it was not accepted.
    pub(super) fn send(&mut self, request: ExportMetricsServiceRequest) -> Result<(), String> {
        let mut request = tonic::Request::new(request);
        for (k, v) in &self.headers {
            request.metadata_mut().insert(k.clone(), v.clone());
        }
        let client = &mut self.client;
        let answer = self
            .runtime
            .block_on(async { tokio::time::timeout(self.timeout, client.export(request)).await });
        match answer {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(format!("{}: {}", self.endpoint, with_sources(&status))),
            Err(_) => Err(format!(
                "{}: no answer within {:?}",
                self.endpoint, self.timeout
            )),
        }
    }
}
