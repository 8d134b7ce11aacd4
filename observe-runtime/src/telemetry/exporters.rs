//! Span exporters: OTLP over HTTP or gRPC from `OTEL_EXPORTER_OTLP_*`, and the user's
//! own processors.

use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanProcessor;

use super::InitError;
#[cfg(feature = "otlp")]
use super::env;

#[cfg(feature = "otlp")]
pub(super) fn otlp_processor() -> Result<opentelemetry_sdk::trace::BatchSpanProcessor, InitError> {
    // The batch processor exports from a thread of its own: the blocking HTTP client is
    // the one that works there (the async one panics: "no reactor running").
    let exporter = if env::otlp_grpc()? {
        grpc_exporter()?
    } else {
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| InitError::Exporter(e.to_string()))?
    };
    Ok(opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter).build())
}

#[cfg(all(feature = "otlp", feature = "grpc"))]
fn grpc_exporter() -> Result<opentelemetry_otlp::SpanExporter, InitError> {
    // tonic needs a Tokio runtime that outlives actix's: a small one of our own, kept for
    // the life of the process, so shutdown after the server's System has returned works.
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("observe-otlp-grpc")
            .enable_all()
            .build()
            .expect("a one-thread Tokio runtime")
    });
    let _entered = runtime.enter();
    opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| InitError::Exporter(e.to_string()))
}

#[cfg(all(feature = "otlp", not(feature = "grpc")))]
fn grpc_exporter() -> Result<opentelemetry_otlp::SpanExporter, InitError> {
    unreachable!("env::otlp_grpc() refuses grpc without the feature")
}

#[cfg(not(feature = "otlp"))]
pub(super) fn otlp_processor() -> Result<opentelemetry_sdk::trace::BatchSpanProcessor, InitError> {
    Err(InitError::Exporter(
        "OTLP export was asked for (OTEL_TRACES_EXPORTER or OTEL_EXPORTER_OTLP_*ENDPOINT is \
         set) but observe was built without its `otlp` feature"
            .into(),
    ))
}

/// A boxed processor as a processor (the builder takes concrete types).
#[derive(Debug)]
pub(super) struct BoxedProcessor(pub(super) Box<dyn SpanProcessor>);

impl SpanProcessor for BoxedProcessor {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.0.on_start(span, cx)
    }
    fn on_end(&self, span: opentelemetry_sdk::trace::SpanData) {
        self.0.on_end(span)
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource)
    }
}
