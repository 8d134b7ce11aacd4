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
//! | `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, `…_HEADERS`, `…_TIMEOUT`, `…_COMPRESSION` | read by the OTLP exporter (feature `otlp`) |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL` | `http/protobuf` (default) or `grpc` (feature `grpc`) |
//! | `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG` | the SDK's samplers, e.g. `parentbased_traceidratio` with `0.1` |
//! | `OTEL_PROPAGATORS` | `tracecontext`, `baggage`, `none` |
//! | `OTEL_BSP_*` | the batch span processor's queue, batch size and delays |
//! | `OTEL_METRICS_EXPORTER` | `otlp` (feature `otlp-metrics`: the `/metrics` store pushed over OTLP/HTTP), `prometheus` / `none`; unset: `otlp` when an endpoint is set and the feature is on |
//! | `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_METRIC_EXPORT_TIMEOUT` | push period and timeout in ms (60 000 / 30 000); a last push happens at shutdown |
//! | `RUST_LOG` | log filter (`info` by default) |
//! | `OBSERVE_LOG_FORMAT` | `human` (default) or `json` |
//!
//! Drop the [`Telemetry`] guard *after* the HTTP server has stopped (for actix, after
//! `System::block_on` returns): the drop flushes the batch queue and shuts the exporters
//! down, so no span of a finished request is lost.

mod env;
mod fmt;
#[cfg(feature = "otlp-metrics")]
mod metrics_push;
mod sdk_metrics;

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::BaggagePropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter, SpanProcessor};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::FilterExt as _;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, Registry};

pub use env::EnvError;

/// Re-exported so that the `opentelemetry` a user names is the one observe was built with
/// (two versions in one binary is the classic "no spans are emitted").
pub use opentelemetry;
/// Re-exported for the same reason as [`opentelemetry`].
pub use opentelemetry_sdk;

/// Crates whose spans are never exported: they are the exporter's own HTTP/gRPC stack,
/// and exporting them would export the export, in a loop.
const EXPORTER_TARGETS: &[&str] = &[
    "h2",
    "hyper",
    "hyper_util",
    "tonic",
    "tower",
    "reqwest",
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "opentelemetry_http",
];

/// The OpenTelemetry layer as `init()` installs it, for subscribers assembled by hand:
/// `tracing-opentelemetry`'s layer, without spans of the exporter's own crates, without
/// spans more verbose than `level`, and without the *children of unsampled spans*.
///
/// The last part is what makes unsampled traffic cheap: the stock layer builds a span
/// (builder, attributes formatted, allocations) for every `tracing` span and lets the SDK
/// drop it at the end. Here, once a span's OpenTelemetry context is known to be
/// unsampled (it is marked on entry), spans and events below it are filtered out before
/// the layer sees them. The unsampled span itself is still recorded (non-recording in the
/// SDK), so its trace id and not-sampled flag still reach logs and outgoing requests.
///
/// ```
/// use observe_runtime::telemetry::opentelemetry::trace::TracerProvider as _;
/// use tracing_subscriber::layer::SubscriberExt as _;
/// let provider = observe_runtime::telemetry::opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let subscriber = tracing_subscriber::registry()
///     .with(observe_runtime::telemetry::layer(provider.tracer("app"), tracing::Level::INFO));
/// # drop(subscriber);
/// ```
pub fn layer<S>(tracer: opentelemetry_sdk::trace::SdkTracer, level: tracing::Level) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let targets = EXPORTER_TARGETS.iter().fold(
        Targets::new().with_default(LevelFilter::from_level(level)),
        |t, name| t.with_target(*name, LevelFilter::OFF),
    );
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        // The sampled check first: below an unsampled span it answers at once, and the
        // target directives (string prefixes) are not even matched.
        .with_filter(SampledOnly.and(targets))
        .and_then(MarkSampled)
}

/// Marks a span whose trace is not sampled. Zero-sized, so storing it in the span's
/// extensions allocates nothing. Set when the span is created under a marked parent, and
/// on entry from the span's own OpenTelemetry context.
struct NotSampled;

thread_local! {
    /// For each span entered on this thread, innermost last: `Some(sampled)` when known.
    static ENTERED: std::cell::RefCell<Vec<Option<bool>>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn innermost() -> Option<bool> {
    ENTERED
        .try_with(|stack| stack.borrow().last().copied().flatten())
        .ok()
        .flatten()
}

/// Maintains the [`NotSampled`] marks and the per-thread stack [`SampledOnly`] reads. It
/// sees every span (no filter), so the mark flows through spans the OpenTelemetry layer
/// skipped, also into tasks spawned with only the `tracing` span. Inside a sampled trace
/// it costs a thread-local push and pop per entry, and no extension access.
struct MarkSampled;

impl<S> Layer<S> for MarkSampled
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let unsampled_parent = if attrs.is_contextual() {
            // The current span is the innermost entered one.
            innermost() == Some(false)
        } else {
            attrs
                .parent()
                .and_then(|p| ctx.span(p))
                .is_some_and(|p| p.extensions().get::<NotSampled>().is_some())
        };
        if unsampled_parent && let Some(span) = ctx.span(id) {
            span.extensions_mut().replace(NotSampled);
        }
    }

    fn on_enter(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        // After the OpenTelemetry layer's `on_enter`: a recorded span's context is current.
        let own = opentelemetry::Context::map_current(|cx| {
            use opentelemetry::trace::TraceContextExt as _;
            let otel = cx.span();
            let sc = otel.span_context();
            sc.is_valid().then(|| sc.is_sampled())
        });
        let mark = match own {
            Some(true) => Some(true),
            Some(false) => {
                if let Some(span) = ctx.span(id)
                    && span.extensions().get::<NotSampled>().is_none()
                {
                    span.extensions_mut().replace(NotSampled);
                }
                Some(false)
            }
            None => ctx
                .span(id)
                .and_then(|span| span.extensions().get::<NotSampled>().map(|_| false)),
        };
        let _ = ENTERED.try_with(|stack| stack.borrow_mut().push(mark));
    }

    fn on_exit(&self, _id: &tracing::span::Id, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        let _ = ENTERED.try_with(|stack| stack.borrow_mut().pop());
    }
}

/// The filter of [`layer`]: leaves out what is below an unsampled span.
struct SampledOnly;

impl<S> tracing_subscriber::layer::Filter<S> for SampledOnly
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn enabled(
        &self,
        _meta: &tracing::Metadata<'_>,
        _cx: &tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        // The innermost entered span's mark, recorded or not.
        if let Some(sampled) = innermost() {
            return sampled;
        }
        opentelemetry::Context::map_current(|cx| {
            use opentelemetry::trace::TraceContextExt as _;
            let span = cx.span();
            let sc = span.span_context();
            !sc.is_valid() || sc.is_sampled()
        })
    }

    fn callsite_enabled(
        &self,
        _meta: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        // The answer depends on the context of each call, never on the callsite alone.
        tracing::subscriber::Interest::sometimes()
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event, with span context and close timings.
    Human,
    /// One JSON object per line.
    Json,
    /// No log output (spans are still exported).
    Off,
}

/// Why [`Init::install`] failed.
#[derive(Debug)]
pub enum InitError {
    /// An `OTEL_*` or `OBSERVE_*` variable has a value that cannot be honoured.
    Env(EnvError),
    /// `RUST_LOG` does not parse.
    LogFilter(String),
    /// The OTLP exporter could not be built.
    Exporter(String),
    /// A global `tracing` subscriber was already installed (by a second `install` or by
    /// another library).
    AlreadyInstalled,
}

impl std::fmt::Display for InitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InitError::Env(e) => write!(f, "{e}"),
            InitError::LogFilter(e) => write!(f, "RUST_LOG does not parse: {e}"),
            InitError::Exporter(e) => write!(f, "the OTLP exporter could not be built: {e}"),
            InitError::AlreadyInstalled => f.write_str(
                "a global tracing subscriber is already installed; call observe::init() \
                 once, before anything else installs one",
            ),
        }
    }
}

impl std::error::Error for InitError {}

impl From<EnvError> for InitError {
    fn from(e: EnvError) -> Self {
        InitError::Env(e)
    }
}

/// Starts configuring telemetry. See the [module documentation](self).
///
/// ```no_run
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let telemetry = observe_runtime::telemetry::init()
///         .service("payments", "1.4.2")
///         .install()?;
///     // … run the server; when it has stopped:
///     drop(telemetry); // flushes every span
///     Ok(())
/// }
/// ```
pub fn init() -> Init {
    Init {
        service_name: None,
        service_version: None,
        log_format: None,
        log_writer: None,
        default_filter: "info".into(),
        trace_level: tracing::Level::INFO,
        processors: Vec::new(),
        attributes: Vec::new(),
        trace_context: crate::propagation::W3cTraceContext::new(),
    }
}

/// The builder returned by [`init`].
pub struct Init {
    service_name: Option<String>,
    service_version: Option<String>,
    log_format: Option<LogFormat>,
    log_writer: Option<BoxMakeWriter>,
    default_filter: String,
    trace_level: tracing::Level,
    processors: Vec<Box<dyn SpanProcessor>>,
    attributes: Vec<KeyValue>,
    trace_context: crate::propagation::W3cTraceContext,
}

impl std::fmt::Debug for Init {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Init")
            .field("service_name", &self.service_name)
            .field("service_version", &self.service_version)
            .field("log_format", &self.log_format)
            .field("default_filter", &self.default_filter)
            .field("trace_level", &self.trace_level)
            .field("processors", &self.processors.len())
            .finish_non_exhaustive()
    }
}

impl Init {
    /// The service's name and version, used unless `OTEL_SERVICE_NAME` /
    /// `OTEL_RESOURCE_ATTRIBUTES` say otherwise.
    ///
    /// ```
    /// let init = observe_runtime::telemetry::init().service("payments", "1.4.2");
    /// # let _ = init;
    /// ```
    pub fn service(mut self, name: impl Into<String>, version: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self.service_version = Some(version.into());
        self
    }

    /// Adds a resource attribute (`OTEL_RESOURCE_ATTRIBUTES` still wins for the same key).
    ///
    /// ```
    /// let init = observe_runtime::telemetry::init().resource_attribute("deployment.environment.name", "prod");
    /// # let _ = init;
    /// ```
    pub fn resource_attribute(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.attributes.push(KeyValue::new(key, value.into()));
        self
    }

    /// The log format; by default `OBSERVE_LOG_FORMAT` (`human` or `json`), else human.
    ///
    /// ```
    /// use observe_runtime::telemetry::{init, LogFormat};
    /// let init = init().log_format(LogFormat::Json);
    /// # let _ = init;
    /// ```
    pub fn log_format(mut self, format: LogFormat) -> Self {
        self.log_format = Some(format);
        self
    }

    /// Where log lines go (standard output by default).
    ///
    /// ```
    /// let init = observe_runtime::telemetry::init().log_writer(std::io::stderr);
    /// # let _ = init;
    /// ```
    pub fn log_writer<W>(mut self, writer: W) -> Self
    where
        W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
    {
        self.log_writer = Some(BoxMakeWriter::new(writer));
        self
    }

    /// The log filter used when `RUST_LOG` is unset (default `info`).
    ///
    /// ```
    /// let init = observe_runtime::telemetry::init().default_log_filter("info,payments=debug");
    /// # let _ = init;
    /// ```
    pub fn default_log_filter(mut self, filter: impl Into<String>) -> Self {
        self.default_filter = filter.into();
        self
    }

    /// The most verbose level of spans turned into OpenTelemetry spans (default `INFO`;
    /// the log filter does not limit what is traced, and the reverse).
    ///
    /// ```
    /// let init = observe_runtime::telemetry::init().trace_level(tracing::Level::DEBUG);
    /// # let _ = init;
    /// ```
    pub fn trace_level(mut self, level: tracing::Level) -> Self {
        self.trace_level = level;
        self
    }

    /// The `traceparent` / `tracestate` propagator to install (observe's
    /// [`W3cTraceContext`](crate::propagation::W3cTraceContext) by default); use it to
    /// add your own `tracestate` member.
    ///
    /// ```
    /// use observe_runtime::propagation::W3cTraceContext;
    /// let init = observe_runtime::telemetry::init()
    ///     .trace_context(W3cTraceContext::new().with_vendor_key("payments").unwrap());
    /// # let _ = init;
    /// ```
    pub fn trace_context(mut self, propagator: crate::propagation::W3cTraceContext) -> Self {
        self.trace_context = propagator;
        self
    }

    /// Sends spans to an additional exporter, through a batch processor.
    ///
    /// ```
    /// use opentelemetry_sdk::trace::InMemorySpanExporter;
    /// let init = observe_runtime::telemetry::init().span_exporter(InMemorySpanExporter::default());
    /// # let _ = init;
    /// ```
    pub fn span_exporter<E: SpanExporter + 'static>(self, exporter: E) -> Self {
        self.span_processor(opentelemetry_sdk::trace::BatchSpanProcessor::builder(exporter).build())
    }

    /// Adds a span processor (e.g. a `SimpleSpanProcessor` in tests).
    ///
    /// ```
    /// use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor};
    /// let init = observe_runtime::telemetry::init()
    ///     .span_processor(SimpleSpanProcessor::new(InMemorySpanExporter::default()));
    /// # let _ = init;
    /// ```
    pub fn span_processor<P: SpanProcessor + 'static>(mut self, processor: P) -> Self {
        self.processors.push(Box::new(processor));
        self
    }

    /// Builds and installs everything, in order; see the [module documentation](self).
    ///
    /// # Errors
    /// A bad `OTEL_*` / `OBSERVE_LOG_FORMAT` / `RUST_LOG` value, an exporter that cannot
    /// be built, or a global subscriber that is already installed.
    ///
    /// ```no_run
    /// let telemetry = observe_runtime::telemetry::init().install().expect("telemetry");
    /// let tracer = telemetry.tracer("payments");
    /// # let _ = tracer;
    /// ```
    pub fn install(self) -> Result<Telemetry, InitError> {
        let disabled = env::sdk_disabled()?;
        let exporter = env::traces_exporter()?;
        let propagators = env::propagators()?;
        let format = match self.log_format {
            Some(f) => f,
            None => match env::var("OBSERVE_LOG_FORMAT").as_deref() {
                None | Some("human") => LogFormat::Human,
                Some("json") => LogFormat::Json,
                Some("off") => LogFormat::Off,
                Some(other) => {
                    return Err(InitError::Env(EnvError {
                        variable: "OBSERVE_LOG_FORMAT",
                        value: other.to_owned(),
                        expected: "human, json or off",
                    }));
                }
            },
        };
        let filter = match env::var("RUST_LOG") {
            Some(v) => EnvFilter::try_new(v),
            None => EnvFilter::try_new(&self.default_filter),
        }
        .map_err(|e| InitError::LogFilter(e.to_string()))?;

        // 1. Resource.
        let resource = resource(
            self.service_name.as_deref(),
            self.service_version.as_deref(),
            self.attributes,
        );

        // 2. Providers, before any tracer exists.
        let (tracer_provider, meter_provider) = if disabled {
            (None, None)
        } else {
            let mut builder = SdkTracerProvider::builder().with_resource(resource.clone());
            if exporter == env::TracesExporter::Otlp {
                builder = builder.with_span_processor(otlp_processor()?);
            }
            for processor in self.processors {
                builder = builder.with_span_processor(BoxedProcessor(processor));
            }
            let tracer_provider = builder.build();
            // The SDK reads `OTEL_TRACES_SAMPLER` itself; unset, it is parent-based.
            crate::propagation::set_parent_based_sampling(env::sampler_follows_parent());
            // One manual reader: `/metrics` and the OTLP push read the SDK's instruments
            // through it, at the moment they scrape or push.
            let reader = sdk_metrics::SharedReader::new();
            let meter_provider = SdkMeterProvider::builder()
                .with_resource(resource.clone())
                .with_reader(reader.clone())
                .build();
            sdk_metrics::register(reader, resource.clone());
            opentelemetry::global::set_tracer_provider(tracer_provider.clone());
            opentelemetry::global::set_meter_provider(meter_provider.clone());
            (Some(tracer_provider), Some(meter_provider))
        };

        // 3. Propagators.
        let mut list: Vec<Box<dyn opentelemetry::propagation::TextMapPropagator + Send + Sync>> =
            Vec::new();
        if propagators.tracecontext {
            list.push(Box::new(self.trace_context));
        }
        if propagators.baggage {
            list.push(Box::new(BaggagePropagator::new()));
        }
        opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(list));

        // 4. Subscriber: log lines (inner, so they still see a closing span's context),
        //    then the OpenTelemetry layer.
        let writer = self
            .log_writer
            .unwrap_or_else(|| BoxMakeWriter::new(std::io::stdout));
        let logs = match format {
            LogFormat::Off => None,
            LogFormat::Human => Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(writer)
                    .with_span_events(FmtSpan::CLOSE)
                    .event_format(fmt::WithTraceIds {
                        inner: tracing_subscriber::fmt::format().with_ansi(false),
                        json: false,
                    })
                    .with_filter(filter)
                    .boxed(),
            ),
            LogFormat::Json => Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(writer)
                    .with_span_events(FmtSpan::CLOSE)
                    .event_format(fmt::WithTraceIds {
                        inner: tracing_subscriber::fmt::format().json(),
                        json: true,
                    })
                    .with_filter(filter)
                    .boxed(),
            ),
        };
        let otel = tracer_provider
            .as_ref()
            .map(|provider| layer(provider.tracer("observe"), self.trace_level));
        let subscriber = Registry::default().with(logs).with(otel);
        tracing::subscriber::set_global_default(subscriber)
            .map_err(|_| InitError::AlreadyInstalled)?;

        let early = crate::registry::calls_started();
        if early > 0 {
            tracing::warn!(
                target: "observe",
                "{early} instrumented call(s) started before observe::init(): their metrics \
                 were counted, their spans were not recorded"
            );
        }
        #[cfg(feature = "otlp-metrics")]
        let pusher = if !disabled && metrics_push::enabled()? {
            Some(metrics_push::Pusher::start(&resource)?)
        } else {
            None
        };
        Ok(Telemetry {
            tracer_provider,
            meter_provider,
            resource,
            #[cfg(feature = "otlp-metrics")]
            pusher,
        })
    }
}

/// `service.name` and `service.version` by the precedence of the module docs.
fn resource(name: Option<&str>, version: Option<&str>, extra: Vec<KeyValue>) -> Resource {
    let env_attrs = env::var("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default();
    let env_has = |key: &str| {
        env_attrs
            .split(',')
            .any(|kv| kv.split('=').next().map(str::trim) == Some(key))
    };
    let info = crate::metrics::build_info();
    let mut builder = Resource::builder();
    // The SDK's own detectors already applied OTEL_SERVICE_NAME and
    // OTEL_RESOURCE_ATTRIBUTES; ours only fill what they left open.
    let mut attributes: Vec<KeyValue> = extra
        .into_iter()
        .filter(|kv| !env_has(kv.key.as_str()))
        .collect();
    if env::var("OTEL_SERVICE_NAME").is_none() && !env_has("service.name") {
        let name = name
            .map(str::to_owned)
            .or_else(|| info.as_ref().map(|i| i.service_name.clone()))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(crate::metrics::default_service_name);
        builder = builder.with_service_name(name);
    }
    if !env_has("service.version") {
        let version = version
            .map(str::to_owned)
            .or_else(|| info.as_ref().map(|i| i.version.clone()))
            .filter(|v| !v.is_empty());
        if let Some(version) = version {
            attributes.push(KeyValue::new("service.version", version));
        }
    }
    builder.with_attributes(attributes).build()
}

#[cfg(feature = "otlp")]
fn otlp_processor() -> Result<opentelemetry_sdk::trace::BatchSpanProcessor, InitError> {
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
fn otlp_processor() -> Result<opentelemetry_sdk::trace::BatchSpanProcessor, InitError> {
    Err(InitError::Exporter(
        "OTLP export was asked for (OTEL_TRACES_EXPORTER or OTEL_EXPORTER_OTLP_*ENDPOINT is \
         set) but observe was built without its `otlp` feature"
            .into(),
    ))
}

/// A boxed processor as a processor (the builder takes concrete types).
#[derive(Debug)]
struct BoxedProcessor(Box<dyn SpanProcessor>);

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

/// The installed providers. Dropping it flushes and shuts them down; see [`init`].
#[must_use = "dropping the guard at once shuts telemetry down"]
#[derive(Debug)]
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    resource: Resource,
    #[cfg(feature = "otlp-metrics")]
    pusher: Option<metrics_push::Pusher>,
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
            eprintln!("observe: flushing spans failed: {e}");
        }
        if let Some(p) = &self.meter_provider {
            let _ = p.force_flush();
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
    fn drop(&mut self) {
        // Shutdown flushes the batch queue first; errors go to stderr because the
        // subscriber may already be unable to export them.
        if let Some(p) = self.tracer_provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("observe: shutting the tracer provider down failed: {e}");
        }
        // The last push reads the SDK's instruments too: before the meter provider stops.
        #[cfg(feature = "otlp-metrics")]
        if let Some(mut pusher) = self.pusher.take() {
            pusher.shutdown();
        }
        if let Some(p) = self.meter_provider.take() {
            let _ = p.shutdown();
        }
    }
}

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
