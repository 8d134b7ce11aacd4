//! One call that sets up OpenTelemetry and logging in the right order, and a guard that
//! flushes everything when dropped.
//!
//! [`init`] returns a builder; [`Init::install`] then, in this order:
//! 1. builds the resource: `service.name` from `OTEL_SERVICE_NAME`, else
//!    `OTEL_RESOURCE_ATTRIBUTES`, else [`Init::service`], else `observe::build_info!()`,
//!    else the executable's name; `service.version` likewise; the rest of
//!    `OTEL_RESOURCE_ATTRIBUTES`;
//! 2. builds the tracer provider (sampler from `OTEL_TRACES_SAMPLER` / `_ARG`; OTLP
//!    export when an endpoint is configured, see below) and the meter provider, and makes
//!    them global; when that sampler follows the parent (unset, or `parentbased_*`), it
//!    declares so ([`crate::propagation::set_parent_based_sampling`]): requests that
//!    arrive with an unsampled `traceparent` are then not traced at all;
//! 3. installs the propagators of `OTEL_PROPAGATORS` (default W3C trace context, by
//!    observe's [`W3cTraceContext`](crate::propagation::W3cTraceContext), and baggage) globally, so [`crate::http::Middleware`] and the outgoing-request helpers
//!    use them;
//! 4. installs a `tracing` subscriber: log lines (human or JSON, filtered by `RUST_LOG`,
//!    default `info`) that carry `trace_id` / `span_id`, plus the OpenTelemetry layer,
//!    which never exports the exporter's own spans (no feedback loop).
//!
//! Tracers and meters come from the returned [`Telemetry`] (or from OpenTelemetry's
//! globals after `install`), so the provider exists before any tracer by construction.
//! `tracing` spans, which is what `#[instrumented]` and the middleware create, are only
//! recorded once the subscriber is installed; `install` says in a warning how many
//! instrumented calls happened before it (their metrics were counted, their spans were
//! not).
//!
//! | variable | effect |
//! |---|---|
//! | `OTEL_SDK_DISABLED=true` | no tracer or meter provider; logs still work |
//! | `OTEL_TRACES_EXPORTER` | `otlp`, or `none` / `console` (spans only in the log); unset: `otlp` when an OTLP endpoint is set, else `none` |
//! | `OTEL_LOGS_EXPORTER` | `otlp` (`tracing` events as OpenTelemetry log records, feature `otlp`), or `none` / `console`; unset: `otlp` when an OTLP endpoint is set |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT`, `…_HEADERS`, `…_TIMEOUT` (ms), `…_COMPRESSION` (`gzip` / `none`), and the per-signal forms `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_*` | the OTLP exporters (feature `otlp`) |
//! | `OTEL_EXPORTER_OTLP_CERTIFICATE`, `…_CLIENT_CERTIFICATE`, `…_CLIENT_KEY` (and per signal) | TLS: PEM files of the CA to trust instead of the system roots, and of the client certificate and key for mTLS (rustls; no OpenSSL) |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` (and per signal) | `http/protobuf` (default) or `grpc` (feature `grpc`; the metrics push is always HTTP) |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | the SDK's samplers, e.g. `parentbased_traceidratio` with `0.1` |
//! | `OTEL_PROPAGATORS` | `tracecontext`, `baggage`, `none` |
//! | `OTEL_BSP_*` | the batch span processor's queue, batch size and delays |
//! | `OTEL_METRICS_EXPORTER` | `otlp` (feature `otlp-metrics`: the `/metrics` store pushed over OTLP/HTTP, or OTLP/gRPC when the protocol is `grpc`), `prometheus` / `none`; unset: `otlp` when an endpoint is set and the feature is on |
//! | `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_METRIC_EXPORT_TIMEOUT` | push period in ms (60 000); a last push happens at shutdown; the timeout unless `OTEL_EXPORTER_OTLP_(METRICS_)TIMEOUT` is set (10 000) |
//! | `OTEL_BLRP_*` | the batch log processor's queue, batch size and delays |
//! | `RUST_LOG` | log filter (`info` by default) |
//! | `OBSERVE_LOG_FORMAT` | `human` (default), `json` or `off` |
//! | `OBSERVE_LOG_SPANS` | `close`: a log line per closing span; `none` (default) |
//!
//! Spans, log records and metric data points that cannot be delivered (a full batch
//! queue, a failed export) are counted on `/metrics` as
//! `observe_telemetry_dropped_total{signal, reason}` and logged at most every 10 s.
//!
//! Drop the [`Telemetry`] guard *after* the HTTP server has stopped (for actix, after
//! `System::block_on` returns): the drop flushes the batch queue and shuts the exporters
//! down, so no span of a finished request is lost.

mod dropped;
mod env;
mod exporters;
mod fmt;
mod guard;
mod init;
mod layer;
#[cfg(feature = "otlp-metrics")]
mod metrics_push;
mod resource;
mod sdk_metrics;
#[cfg(feature = "otlp")]
mod tls;

pub use guard::Telemetry;
pub use init::{Init, InitError, LogFormat, init};
pub use layer::layer;

pub use env::EnvError;

/// Re-exported so that the `opentelemetry` a user names is the one observe was built with
/// (two versions in one binary is the classic "no spans are emitted").
pub use opentelemetry;
/// Re-exported for the same reason as [`opentelemetry`].
pub use opentelemetry_sdk;

/// Spawns a future on the current Tokio runtime inside the current span and
/// OpenTelemetry context, so spans, logs and outgoing requests of the task stay in the
/// caller's trace (a bare `tokio::spawn` starts a new one).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let handle = observe_runtime::telemetry::spawn(async { 40 + 2 });
/// assert_eq!(handle.await.unwrap(), 42);
/// # }
/// ```
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    use opentelemetry::trace::FutureExt as _;
    use tracing::Instrument as _;
    // Both contexts: the `tracing` span (parent of the task's spans) and the current
    // OpenTelemetry context (which an unrecorded span inside an unsampled trace does
    // not carry), so logs and outgoing requests in the task keep the trace.
    tokio::spawn(
        future
            .in_current_span()
            .with_context(opentelemetry::Context::current()),
    )
}
