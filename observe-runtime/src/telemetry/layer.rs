//! The OpenTelemetry layer: exporter crates filtered out (no feedback loop), and spans
//! below an unsampled one kept out of it (`MarkSampled`, `SampledOnly`).

use tracing::level_filters::LevelFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::FilterExt as _;
use tracing_subscriber::filter::Targets;

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

/// `filter`, and nothing from the exporter's own crates (for the log-record bridge: a
/// log line about an export must not become a record to export).
#[cfg(feature = "otlp")]
pub(crate) fn without_exporters<S>(
    filter: tracing_subscriber::filter::EnvFilter,
) -> impl tracing_subscriber::layer::Filter<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let exporters = EXPORTER_TARGETS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, name| t.with_target(*name, LevelFilter::OFF),
    );
    filter.and(exporters)
}

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
    let targets = EXPORTER_TARGETS
        .iter()
        .fold(
            Targets::new().with_default(LevelFilter::from_level(level)),
            |t, name| t.with_target(*name, LevelFilter::OFF),
        )
        // The access line restates the server span's own attributes: no span event for it
        // (it is still a log line and, with OTLP logs, a log record).
        .with_target("observe::access", LevelFilter::OFF);
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
            // Untraced: observe's own background work (health-check runs); suppressed:
            // the SDK's exporters.
            if cx.is_telemetry_suppressed() || cx.get::<crate::health::Untraced>().is_some() {
                return false;
            }
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

/// Takes actix-http's per-connection ERROR lines (one per unparsable request, slow
/// request head or reset connection: anyone who can connect could flood the log with
/// them) out of every layer, counts them in `http_server_connection_errors_total{kind}`,
/// and writes instead at most one line per kind and interval, with the count.
#[cfg(feature = "actix")]
pub(crate) struct ConnectionErrors;

#[cfg(feature = "actix")]
impl<S: tracing::Subscriber> Layer<S> for ConnectionErrors {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        use crate::http::connection_errors;
        let meta = event.metadata();
        if *meta.level() != tracing::Level::ERROR
            || meta.target() != connection_errors::DISPATCHER_TARGET
        {
            return true;
        }
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        if let Some(line) = connection_errors::record(&message.0) {
            tracing::warn!(target: "observe::http", "{line}");
        }
        false
    }
}
