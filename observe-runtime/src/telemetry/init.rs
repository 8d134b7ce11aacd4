//! `init()` and its builder: resource, providers, propagators, subscriber, in that order.

use opentelemetry::KeyValue;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::BaggagePropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter, SpanProcessor};
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{Layer, Registry};

use super::env::{self, EnvError};
use super::exporters::{BoxedProcessor, counted_span_processor, otlp_processor};
use super::guard::Telemetry;
#[cfg(feature = "otlp-metrics")]
use super::metrics_push;
use super::{fmt, layer, sdk_metrics};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event, with its span context.
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

/// Starts configuring telemetry. See the [module documentation](super).
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
        span_closes: None,
        default_filter: "info".into(),
        trace_level: tracing::Level::INFO,
        processors: Vec::new(),
        attributes: Vec::new(),
        trace_context: crate::propagation::W3cTraceContext::new(),
        flush_timeout: None,
    }
}

/// The builder returned by [`init`].
pub struct Init {
    service_name: Option<String>,
    service_version: Option<String>,
    log_format: Option<LogFormat>,
    log_writer: Option<BoxMakeWriter>,
    span_closes: Option<bool>,
    default_filter: String,
    trace_level: tracing::Level,
    processors: Vec<Box<dyn SpanProcessor>>,
    attributes: Vec<KeyValue>,
    trace_context: crate::propagation::W3cTraceContext,
    flush_timeout: Option<std::time::Duration>,
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
    /// How long dropping the guard may wait for exporters to send what they hold
    /// (default [`DEFAULT_FLUSH_TIMEOUT`](crate::health::DEFAULT_FLUSH_TIMEOUT), 5 s;
    /// `OBSERVE_FLUSH_TIMEOUT` in milliseconds when this is not called). Past it the
    /// process goes on exiting: what was not sent is counted in
    /// `observe_telemetry_dropped_total{reason="shutdown_timeout"}` and logged once, so a
    /// collector that never answers cannot hold a pod past its grace period.
    ///
    /// ```
    /// let init = observe_runtime::telemetry::init().flush_timeout(std::time::Duration::from_secs(3));
    /// # let _ = init;
    /// ```
    pub fn flush_timeout(mut self, budget: std::time::Duration) -> Self {
        self.flush_timeout = Some(budget);
        self
    }

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

    /// Also writes a line when each span closes (its name, fields, busy and idle time).
    /// Off by default: a request then logs its access line and the application's own
    /// events, not one line per span. Unset here, `OBSERVE_LOG_SPANS=close` turns it on
    /// (`none` keeps it off).
    ///
    /// ```
    /// let init = observe_runtime::telemetry::init().log_span_closes(true);
    /// # let _ = init;
    /// ```
    pub fn log_span_closes(mut self, on: bool) -> Self {
        self.span_closes = Some(on);
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

    /// Sends spans to an additional exporter, through a batch processor (its losses
    /// counted in `observe_telemetry_dropped_total{signal="traces"}`).
    ///
    /// ```
    /// use opentelemetry_sdk::trace::InMemorySpanExporter;
    /// let init = observe_runtime::telemetry::init().span_exporter(InMemorySpanExporter::default());
    /// # let _ = init;
    /// ```
    pub fn span_exporter<E: SpanExporter + 'static>(self, exporter: E) -> Self {
        self.span_processor(counted_span_processor(exporter, None))
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

    /// Builds and installs everything, in order; see the [module documentation](super).
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
        let flush_timeout = match self.flush_timeout {
            Some(t) => t,
            None => match env::var("OBSERVE_FLUSH_TIMEOUT") {
                None => crate::health::DEFAULT_FLUSH_TIMEOUT,
                Some(v) => v
                    .parse::<u64>()
                    .map(std::time::Duration::from_millis)
                    .map_err(|_| {
                        InitError::Env(EnvError {
                            variable: "OBSERVE_FLUSH_TIMEOUT",
                            value: v,
                            expected: "a number of milliseconds",
                        })
                    })?,
            },
        };
        let disabled = env::sdk_disabled()?;
        let exporter = env::traces_exporter()?;
        let logs_exporter = env::logs_exporter()?;
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
        let span_closes = match self.span_closes {
            Some(on) => on,
            None => match env::var("OBSERVE_LOG_SPANS").as_deref() {
                None | Some("none") => false,
                Some("close") => true,
                Some(other) => {
                    return Err(InitError::Env(EnvError {
                        variable: "OBSERVE_LOG_SPANS",
                        value: other.to_owned(),
                        expected: "close or none",
                    }));
                }
            },
        };
        let span_events = if span_closes {
            FmtSpan::CLOSE
        } else {
            FmtSpan::NONE
        };
        let directives = env::var("RUST_LOG").unwrap_or_else(|| self.default_filter.clone());
        let filter =
            EnvFilter::try_new(&directives).map_err(|e| InitError::LogFilter(e.to_string()))?;

        // 1. Resource.
        let resource = super::resource::resource(
            self.service_name.as_deref(),
            self.service_version.as_deref(),
            self.attributes,
        );

        super::dropped::register();

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
        // The logs signal: `tracing` events as log records, same resource; their trace
        // and span ids come from the context current when the event fires.
        #[cfg(feature = "otlp")]
        let logger_provider = (!disabled && logs_exporter == env::TracesExporter::Otlp)
            .then(|| -> Result<_, InitError> {
                let (exporter, cause) = super::exporters::log_exporter()?;
                Ok(opentelemetry_sdk::logs::SdkLoggerProvider::builder()
                    .with_resource(resource.clone())
                    .with_log_processor(super::exporters::counted_log_processor(exporter, cause))
                    .build())
            })
            .transpose()?;
        #[cfg(not(feature = "otlp"))]
        if !disabled && logs_exporter == env::TracesExporter::Otlp {
            return Err(InitError::Exporter(
                "OTLP log export was asked for (OTEL_LOGS_EXPORTER or an OTLP endpoint is \
                 set) but observe was built without its `otlp` feature"
                    .into(),
            ));
        }

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
                    .with_span_events(span_events.clone())
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
                    .with_span_events(span_events.clone())
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
        #[cfg(feature = "otlp")]
        let appender = match &logger_provider {
            Some(provider) => Some(
                opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(provider)
                    .with_filter(layer::without_exporters(
                        EnvFilter::try_new(&directives)
                            .map_err(|e| InitError::LogFilter(e.to_string()))?,
                    ))
                    .boxed(),
            ),
            None => None,
        };
        #[cfg(not(feature = "otlp"))]
        let appender: Option<tracing_subscriber::layer::Identity> = None;
        #[cfg(feature = "actix")]
        let connection_errors = {
            crate::http::connection_errors::register();
            layer::ConnectionErrors
        };
        #[cfg(not(feature = "actix"))]
        let connection_errors = tracing_subscriber::layer::Identity::new();
        let subscriber = Registry::default()
            .with(logs)
            .with(otel)
            .with(appender)
            .with(connection_errors);
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
            #[cfg(feature = "otlp")]
            logger_provider,
            resource,
            #[cfg(feature = "otlp-metrics")]
            pusher,
            flush_timeout,
        })
    }
}
