//! Exporters: spans and log records over OTLP (HTTP or gRPC, TLS and gzip from
//! `OTEL_EXPORTER_OTLP_*`), behind batch processors whose losses are counted (see
//! [`super::dropped`]), and the user's own span processors.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter, SpanProcessor};

use super::InitError;
use super::dropped::{self, Lost, Reason};

/// Items handed to a batch processor and not yet through its exporter. The processor's
/// own queue never overflows: at its capacity, we refuse (and count) first.
#[derive(Debug)]
struct Pending {
    count: AtomicUsize,
    capacity: usize,
    /// What is lost when an item is refused or an export fails.
    lost: Lost,
    /// The SDK variable that sets the capacity, for the log line.
    variable: &'static str,
    /// Where the exporter's HTTP client keeps the cause of its last failure.
    cause: Option<Cause>,
}

/// The cause of an exporter's last failed request (see `tls::ExplainingClient`).
pub(super) type Cause = Arc<std::sync::Mutex<Option<String>>>;

impl Pending {
    fn new(
        lost: Lost,
        variable: &'static str,
        capacity: usize,
        cause: Option<Cause>,
    ) -> Arc<Pending> {
        let pending = Arc::new(Pending {
            count: AtomicUsize::new(0),
            capacity,
            lost,
            variable,
            cause,
        });
        ALL_PENDING
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::downgrade(&pending));
        pending
    }

    /// An export of `n` items ended with `result`: their places are free again, and a
    /// failure is counted and reported with the transport's cause when known.
    fn exported(&self, n: usize, result: &OTelSdkResult) {
        self.done(n);
        if ABANDONED.load(Ordering::Acquire) {
            // Already counted as `shutdown_timeout` when the flush budget ran out.
            return;
        }
        if let Err(error) = result {
            let cause = self
                .cause
                .as_ref()
                .and_then(|c| c.lock().unwrap_or_else(|p| p.into_inner()).clone());
            let why = match cause {
                Some(cause) => format!("{error} ({cause})"),
                None => error.to_string(),
            };
            dropped::report(self.lost, Reason::ExportFailed, n as u64, &why);
        }
    }

    /// An item refused at a full queue: counted and reported.
    fn refused(&self) {
        dropped::report(
            self.lost,
            Reason::QueueFull,
            1,
            &format_args!(
                "the export queue is full ({} = {})",
                self.variable, self.capacity
            ),
        );
    }

    /// Claims a place; `false` when the queue is full.
    fn admit(&self) -> bool {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok()
    }

    fn done(&self, n: usize) {
        let _ = self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                Some(c.saturating_sub(n))
            });
    }
}

/// Every batch processor's pending count, to say what a shutdown left unsent.
static ALL_PENDING: std::sync::Mutex<Vec<std::sync::Weak<Pending>>> =
    std::sync::Mutex::new(Vec::new());

/// Set once the flush budget ran out: later outcomes of exports still running are not
/// counted twice.
static ABANDONED: AtomicBool = AtomicBool::new(false);

/// The flush budget ran out at shutdown: whatever the batch processors still hold
/// (queued, or in an export that has not returned) is counted as lost, reason
/// `shutdown_timeout`, and logged once per signal.
pub(super) fn abandon(budget: Duration) {
    ABANDONED.store(true, Ordering::Release);
    let detail = format!(
        "not sent within the shutdown flush budget of {budget:?} (the collector did not \
         answer); exiting without them"
    );
    for pending in ALL_PENDING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter_map(std::sync::Weak::upgrade)
    {
        let n = pending.count.swap(0, Ordering::AcqRel);
        dropped::report(pending.lost, Reason::ShutdownTimeout, n as u64, &detail);
    }
}

/// A queue capacity variable of the SDK (`OTEL_BSP_MAX_QUEUE_SIZE`, …), as the SDK reads it.
fn queue_capacity(variable: &str, default: usize) -> usize {
    super::env::var(variable)
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// A span exporter whose failures are counted.
#[derive(Debug)]
pub(super) struct CountedSpanExporter<E> {
    inner: E,
    pending: Arc<Pending>,
}

impl<E: SpanExporter> SpanExporter for CountedSpanExporter<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        let result = self.inner.export(batch).await;
        self.pending.exported(n, &result);
        result
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

/// A batch span processor that refuses (and counts) spans when its queue is full.
#[derive(Debug)]
pub(super) struct CountedSpanProcessor<P> {
    inner: P,
    pending: Arc<Pending>,
}

impl<P: SpanProcessor> SpanProcessor for CountedSpanProcessor<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx)
    }
    fn on_end(&self, span: SpanData) {
        if self.pending.admit() {
            self.inner.on_end(span)
        } else {
            self.pending.refused();
        }
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource)
    }
}

/// The batch processor of `exporter`, with its losses counted.
pub(super) fn counted_span_processor<E: SpanExporter + 'static>(
    exporter: E,
    cause: Option<Cause>,
) -> CountedSpanProcessor<opentelemetry_sdk::trace::BatchSpanProcessor> {
    let capacity = queue_capacity(
        "OTEL_BSP_MAX_QUEUE_SIZE",
        opentelemetry_sdk::trace::OTEL_BSP_MAX_QUEUE_SIZE_DEFAULT,
    );
    counted_span_processor_of(exporter, cause, capacity)
}

/// [`counted_span_processor`] with the queue's capacity given: ours and the batch
/// processor's are the same number by construction (the rest of `OTEL_BSP_*` is the
/// SDK's to read).
fn counted_span_processor_of<E: SpanExporter + 'static>(
    exporter: E,
    cause: Option<Cause>,
    capacity: usize,
) -> CountedSpanProcessor<opentelemetry_sdk::trace::BatchSpanProcessor> {
    use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor};
    let pending = Pending::new(Lost::Spans, "OTEL_BSP_MAX_QUEUE_SIZE", capacity, cause);
    let exporter = CountedSpanExporter {
        inner: exporter,
        pending: pending.clone(),
    };
    let config = BatchConfigBuilder::default()
        .with_max_queue_size(capacity)
        .build();
    CountedSpanProcessor {
        inner: BatchSpanProcessor::builder(exporter)
            .with_batch_config(config)
            .build(),
        pending,
    }
}

#[cfg(feature = "otlp")]
mod otlp {
    use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
    use opentelemetry_sdk::logs::{LogBatch, LogExporter, LogProcessor, SdkLogRecord};

    use super::super::env;
    use super::super::tls::{self, Signal};
    use super::*;

    /// The OTLP/HTTP exporter of a signal from its builder: our HTTP client (the batch
    /// processors export from threads of their own, where a blocking client works),
    /// endpoint, timeout and gzip from the environment; and where the client keeps the
    /// cause of a failure.
    macro_rules! http_exporter {
        ($builder:expr, $signal:expr) => {{
            let client = tls::explaining_client($signal)?;
            let cause = client.last_error();
            let mut builder = $builder
                .with_http()
                .with_endpoint(tls::http_endpoint($signal))
                .with_timeout(tls::timeout($signal)?)
                .with_http_client(client);
            if tls::gzip($signal)? {
                builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            let exporter = builder
                .build()
                .map_err(|e| InitError::Exporter(e.to_string()))?;
            Ok((exporter, Some(cause)))
        }};
    }

    /// The OTLP span exporter the environment asks for, and where its HTTP client keeps
    /// the cause of a failure.
    pub(in super::super) fn span_exporter()
    -> Result<(opentelemetry_otlp::SpanExporter, Option<Cause>), InitError> {
        if env::otlp_grpc(Signal::Traces)? {
            return Ok((grpc::span_exporter()?, None));
        }
        http_exporter!(opentelemetry_otlp::SpanExporter::builder(), Signal::Traces)
    }

    /// The OTLP log exporter the environment asks for, and where its HTTP client keeps
    /// the cause of a failure.
    pub(in super::super) fn log_exporter()
    -> Result<(opentelemetry_otlp::LogExporter, Option<Cause>), InitError> {
        if env::otlp_grpc(Signal::Logs)? {
            return Ok((grpc::log_exporter()?, None));
        }
        http_exporter!(opentelemetry_otlp::LogExporter::builder(), Signal::Logs)
    }

    /// A log exporter whose failures are counted.
    #[derive(Debug)]
    pub(in super::super) struct CountedLogExporter<E> {
        inner: E,
        pending: Arc<Pending>,
    }

    impl<E: LogExporter> LogExporter for CountedLogExporter<E> {
        async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
            let n = batch.iter().count();
            let result = self.inner.export(batch).await;
            self.pending.exported(n, &result);
            result
        }
        fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
            self.inner.shutdown_with_timeout(timeout)
        }
        fn set_resource(&mut self, resource: &Resource) {
            self.inner.set_resource(resource)
        }
    }

    /// A batch log processor that refuses (and counts) records when its queue is full.
    #[derive(Debug)]
    pub(in super::super) struct CountedLogProcessor<P> {
        inner: P,
        pending: Arc<Pending>,
    }

    impl<P: LogProcessor> LogProcessor for CountedLogProcessor<P> {
        fn emit(&self, record: &mut SdkLogRecord, scope: &opentelemetry::InstrumentationScope) {
            if self.pending.admit() {
                self.inner.emit(record, scope)
            } else {
                self.pending.refused();
            }
        }
        fn force_flush(&self) -> OTelSdkResult {
            self.inner.force_flush()
        }
        fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
            self.inner.shutdown_with_timeout(timeout)
        }
        fn set_resource(&mut self, resource: &Resource) {
            self.inner.set_resource(resource)
        }
    }

    /// The batch processor of `exporter`, with its losses counted.
    pub(in super::super) fn counted_log_processor<E: LogExporter + 'static>(
        exporter: E,
        cause: Option<Cause>,
    ) -> CountedLogProcessor<opentelemetry_sdk::logs::BatchLogProcessor> {
        use opentelemetry_sdk::logs::{BatchConfigBuilder, BatchLogProcessor};
        let capacity = queue_capacity(
            "OTEL_BLRP_MAX_QUEUE_SIZE",
            opentelemetry_sdk::logs::OTEL_BLRP_MAX_QUEUE_SIZE_DEFAULT,
        );
        let pending = Pending::new(
            Lost::LogRecords,
            "OTEL_BLRP_MAX_QUEUE_SIZE",
            capacity,
            cause,
        );
        let exporter = CountedLogExporter {
            inner: exporter,
            pending: pending.clone(),
        };
        // The same capacity as ours, by construction.
        let config = BatchConfigBuilder::default()
            .with_max_queue_size(capacity)
            .build();
        CountedLogProcessor {
            inner: BatchLogProcessor::builder(exporter)
                .with_batch_config(config)
                .build(),
            pending,
        }
    }

    #[cfg(feature = "grpc")]
    mod grpc {
        use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};

        use super::super::super::tls::{self, Signal};
        use super::InitError;

        /// tonic needs a Tokio runtime that outlives actix's: a small one of our own,
        /// kept for the life of the process, so shutdown after the server's System has
        /// returned works.
        fn runtime() -> &'static tokio::runtime::Runtime {
            static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> =
                std::sync::OnceLock::new();
            RUNTIME.get_or_init(|| {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .thread_name("observe-otlp-grpc")
                    .enable_all()
                    .build()
                    .expect("a one-thread Tokio runtime")
            })
        }

        /// Endpoint, timeout, TLS (for `https://`) and gzip, for a tonic builder.
        macro_rules! configure {
            ($builder:expr, $signal:expr) => {{
                let mut builder = $builder.with_timeout(tls::timeout($signal)?);
                if let Some((_, endpoint)) = tls::signal_var($signal, "ENDPOINT") {
                    builder = builder.with_endpoint(endpoint);
                }
                if tls::endpoint_is_https($signal) {
                    builder = builder.with_tls_config(tls::tonic_tls($signal)?);
                }
                if tls::gzip($signal)? {
                    builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
                }
                builder
            }};
        }

        pub(in super::super::super) fn span_exporter()
        -> Result<opentelemetry_otlp::SpanExporter, InitError> {
            let _entered = runtime().enter();
            configure!(
                opentelemetry_otlp::SpanExporter::builder().with_tonic(),
                Signal::Traces
            )
            .build()
            .map_err(|e| InitError::Exporter(e.to_string()))
        }

        pub(in super::super::super) fn log_exporter()
        -> Result<opentelemetry_otlp::LogExporter, InitError> {
            let _entered = runtime().enter();
            configure!(
                opentelemetry_otlp::LogExporter::builder().with_tonic(),
                Signal::Logs
            )
            .build()
            .map_err(|e| InitError::Exporter(e.to_string()))
        }
    }

    #[cfg(not(feature = "grpc"))]
    mod grpc {
        use super::InitError;

        pub(in super::super::super) fn span_exporter()
        -> Result<opentelemetry_otlp::SpanExporter, InitError> {
            unreachable!("env::otlp_grpc() refuses grpc without the feature")
        }

        pub(in super::super::super) fn log_exporter()
        -> Result<opentelemetry_otlp::LogExporter, InitError> {
            unreachable!("env::otlp_grpc() refuses grpc without the feature")
        }
    }
}

#[cfg(feature = "otlp")]
pub(super) use otlp::{counted_log_processor, log_exporter, span_exporter};

/// The OTLP span processor, with its losses counted.
#[cfg(feature = "otlp")]
pub(super) fn otlp_processor() -> Result<impl SpanProcessor + 'static, InitError> {
    let (exporter, cause) = span_exporter()?;
    Ok(counted_span_processor(exporter, cause))
}

#[cfg(not(feature = "otlp"))]
pub(super) fn otlp_processor() -> Result<BoxedProcessor, InitError> {
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
    fn on_end(&self, span: SpanData) {
        self.0.on_end(span)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Condvar, Mutex};

    use opentelemetry::trace::{Tracer as _, TracerProvider as _};

    use super::*;

    /// An exporter stuck until released: the queue fills behind it.
    #[derive(Debug, Clone, Default)]
    struct Stuck(Arc<(Mutex<bool>, Condvar)>);

    impl Stuck {
        fn release(&self) {
            *self.0.0.lock().unwrap() = true;
            self.0.1.notify_all();
        }
    }

    impl SpanExporter for Stuck {
        async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
            let (released, wake) = &*self.0;
            let mut released = released.lock().unwrap();
            while !*released {
                released = wake.wait(released).unwrap();
            }
            Ok(())
        }
    }

    #[test]
    fn a_full_queue_refuses_and_counts_spans() {
        let stuck = Stuck::default();
        let before = dropped::count(Lost::Spans, Reason::QueueFull);
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_span_processor(counted_span_processor_of(stuck.clone(), None, 4))
            .build();
        let tracer = provider.tracer("t");
        for _ in 0..10 {
            tracer.in_span("s", |_| {});
        }
        // At most the queue's 4 (plus any batch already taken by the stuck exporter,
        // which still counts as pending) got in; the rest were refused, and counted.
        let refused = dropped::count(Lost::Spans, Reason::QueueFull) - before;
        assert_eq!(refused, 6, "4 queued, 6 refused");
        stuck.release();
        provider.shutdown().unwrap();
    }
}
