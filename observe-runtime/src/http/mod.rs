//! The HTTP layer (feature `actix`): actix-web glue. The request middleware and its
//! bounded series, the `/metrics` handler, the probe endpoints, the access policy the
//! admin endpoints and probe details use, and the phased shutdown.

pub(crate) mod access;
mod client;
#[cfg(feature = "otel")]
pub(crate) mod connection_errors;
mod middleware;
pub(crate) mod probes;
mod scrape;
mod series;
mod series_export;
mod server_span;
mod shutdown;

pub use crate::propagation::{outgoing_headers, trace_id};
pub use access::{AccessPolicy, ConfigError, Decision};
pub use client::{ClientSpan, MAX_CLIENT_ADDRESSES, Propagate, Traced};
#[cfg(feature = "otel")]
pub use connection_errors::LOG_INTERVAL as CONNECTION_ERRORS_LOG_INTERVAL;
pub use middleware::{
    DEFAULT_SKIP_PATHS, Middleware, MiddlewareFuture, MiddlewareService, TimedBody,
};
pub use probes::configure as configure_probes;
pub use scrape::{WorkerFuture, WorkerMetrics, WorkerMetricsService, configure, metrics_handler};
pub use series::{DEFAULT_MAX_SERIES, OVERFLOW_ROUTE, UNMATCHED_ROUTE};
pub use shutdown::{DEFAULT_GRACEFUL_TIMEOUT, DEFAULT_READINESS_PERIOD, Shutdown};
