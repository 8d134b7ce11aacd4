//! `Telemetry`: the guard `install` returns; dropping it flushes and shuts down.

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;

#[cfg(feature = "otlp-metrics")]
use super::metrics_push;

/// The installed providers. Dropping it flushes and shuts them down; see [`init`](super::init()).
#[must_use = "dropping the guard at once shuts telemetry down"]
#[derive(Debug)]
pub struct Telemetry {
    pub(super) tracer_provider: Option<SdkTracerProvider>,
    pub(super) meter_provider: Option<SdkMeterProvider>,
    #[cfg(feature = "otlp")]
    pub(super) logger_provider: Option<opentelemetry_sdk::logs::SdkLoggerProvider>,
    pub(super) resource: Resource,
    #[cfg(feature = "otlp-metrics")]
    pub(super) pusher: Option<metrics_push::Pusher>,
    /// How long the shutdown may wait for exporters.
    pub(super) flush_timeout: std::time::Duration,
}

impl Telemetry {
    /// A tracer from the installed provider (a no-op one under `OTEL_SDK_DISABLED`).
    ///
    /// ```no_run
    /// use observe_runtime::telemetry::opentelemetry::trace::Tracer as _;
    /// let telemetry = observe_runtime::telemetry::init().install().unwrap();
    /// telemetry.tracer("payments").in_span("settle", |_cx| {});
    /// ```
    pub fn tracer(&self, name: &'static str) -> opentelemetry::global::BoxedTracer {
        opentelemetry::global::tracer(name)
    }

    /// A meter from the installed provider (a no-op one under `OTEL_SDK_DISABLED`). Its
    /// instruments appear on `/metrics` (named by the OpenTelemetry Prometheus
    /// compatibility rules, with `otel_scope_name` and a `target_info` family for the
    /// resource) and in the OTLP metrics push, read from the SDK when they are served.
    ///
    /// ```
    /// let telemetry = observe_runtime::telemetry::init()
    ///     .log_format(observe_runtime::telemetry::LogFormat::Off)
    ///     .install()
    ///     .unwrap();
    /// let refunds = telemetry.meter("payments").u64_counter("payments.refunds").build();
    /// refunds.add(2, &[]);
    /// let text = observe_runtime::exposition::render();
    /// assert!(text.contains(r#"payments_refunds_total{otel_scope_name="payments"} 2"#));
    /// ```
    pub fn meter(&self, name: &'static str) -> opentelemetry::metrics::Meter {
        opentelemetry::global::meter(name)
    }

    /// The resource every span and metric carries.
    ///
    /// ```no_run
    /// let telemetry = observe_runtime::telemetry::init().service("payments", "1.0.0").install().unwrap();
    /// assert!(telemetry.resource().get(&"service.name".into()).is_some());
    /// ```
    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// Exports every finished span now (blocks until the exporter answers or times out).
    ///
    /// ```no_run
    /// let telemetry = observe_runtime::telemetry::init().install().unwrap();
    /// telemetry.force_flush();
    /// ```
    pub fn force_flush(&self) {
        if let Some(p) = &self.tracer_provider
            && let Err(e) = p.force_flush()
        {
            tracing::error!(target: "observe::telemetry", "flushing spans failed: {e}");
        }
        if let Some(p) = &self.meter_provider {
            let _ = p.force_flush();
        }
        #[cfg(feature = "otlp")]
        if let Some(p) = &self.logger_provider
            && let Err(e) = p.force_flush()
        {
            tracing::error!(target: "observe::telemetry", "flushing log records failed: {e}");
        }
    }

    /// Flushes and shuts everything down (what dropping the guard does).
    ///
    /// ```no_run
    /// observe_runtime::telemetry::init().install().unwrap().shutdown();
    /// ```
    pub fn shutdown(self) {
        drop(self)
    }
}

impl Drop for Telemetry {
    /// Flushes and shuts down on a thread of its own, waiting at most the flush budget:
    /// a collector that accepts and never answers cannot hold the process past it. What
    /// was still queued or being sent then is counted (`shutdown_timeout`) and logged.
    fn drop(&mut self) {
        let tracer_provider = self.tracer_provider.take();
        let meter_provider = self.meter_provider.take();
        #[cfg(feature = "otlp")]
        let logger_provider = self.logger_provider.take();
        #[cfg(feature = "otlp-metrics")]
        let pusher = self.pusher.take();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let flush = move || {
            // Spans and metrics at once, each with the whole budget. Shutdown flushes the
            // batch queue first; its errors still reach the log lines (the subscriber
            // outlives the providers).
            let spans = std::thread::Builder::new()
                .name("observe-flush-spans".into())
                .spawn(move || {
                    if let Some(p) = tracer_provider
                        && let Err(e) = p.shutdown()
                    {
                        tracing::error!(target: "observe::telemetry", "shutting the tracer provider down failed: {e}");
                    }
                });
            // The last push reads the SDK's instruments too: before the meter provider stops.
            #[cfg(feature = "otlp-metrics")]
            if let Some(mut pusher) = pusher {
                pusher.shutdown();
            }
            if let Some(p) = meter_provider {
                let _ = p.shutdown();
            }
            if let Ok(spans) = spans {
                let _ = spans.join();
            }
            // Last: the lines above may still be log records.
            #[cfg(feature = "otlp")]
            if let Some(p) = logger_provider {
                let _ = p.shutdown();
            }
            let _ = done.send(());
        };
        let spawned = std::thread::Builder::new()
            .name("observe-flush".into())
            .spawn(flush);
        if spawned.is_err() {
            return;
        }
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            finished.recv_timeout(self.flush_timeout)
        {
            super::exporters::abandon(self.flush_timeout);
            #[cfg(feature = "otlp-metrics")]
            super::dropped::report(
                super::dropped::Lost::MetricPoints,
                super::dropped::Reason::ShutdownTimeout,
                metrics_push::Pusher::abandon(),
                &format_args!(
                    "the last metrics push did not finish within the shutdown flush budget of {:?}",
                    self.flush_timeout
                ),
            );
        }
    }
}
