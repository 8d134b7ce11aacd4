//! Trace context across hops: extracted from incoming requests through the global
//! OpenTelemetry propagator, injected into outgoing ones from the current span.
//!
//! actix-web 4 uses `http` 0.2, so `opentelemetry-http`'s extractor (for `http` 1) does
//! not fit; these small adapters read actix's own `HeaderMap`, every line of a repeated
//! header included.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::TraceContextExt;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Reads propagation headers from an actix `HeaderMap`.
pub(crate) struct HeaderExtractor<'a>(pub &'a HeaderMap);

/// The headers propagators read on every request, as ready-made names: looking a `&str`
/// up in actix's map first parses it into a `HeaderName`, which for a non-standard name
/// copies it to the heap.
const KNOWN: [HeaderName; 3] = [
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("tracestate"),
    HeaderName::from_static("baggage"),
];

impl HeaderExtractor<'_> {
    /// The values of header `key`, every line of a repeated header included.
    fn values(&self, key: &str) -> std::slice::Iter<'_, HeaderValue> {
        match KNOWN.iter().find(|known| known.as_str() == key) {
            Some(known) => self.0.get_all(known),
            None => self.0.get_all(key),
        }
    }
}

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.values(key).next().and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let all: Vec<&str> = self.values(key).filter_map(|v| v.to_str().ok()).collect();
        (!all.is_empty()).then_some(all)
    }
}

/// The OpenTelemetry context carried by `headers`, through the global propagator.
pub(crate) fn extract(headers: &HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)))
}

/// The OpenTelemetry context of the current span; for a span that was not recorded
/// (observe's OpenTelemetry layer skips the children of an unsampled span), the context
/// of its nearest recorded ancestor, which the layer made current when it was entered:
/// same trace, and the not-sampled decision travels downstream with it.
pub(crate) fn current_context() -> opentelemetry::Context {
    let cx = tracing::Span::current().context();
    if cx.span().span_context().is_valid() {
        cx
    } else {
        opentelemetry::Context::current()
    }
}

struct VecInjector(Vec<(String, String)>);

impl Injector for VecInjector {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

/// The headers that carry the current span's context to a downstream service
/// (`traceparent`, `tracestate`, `baggage`, as the global propagator writes them).
/// Empty when there is no current span with a valid context.
///
/// These headers carry the *current* span as the parent; for a call of its own (a client
/// span, its own parent-id, the duration histogram) use `observe::http::ClientSpan`, or
/// `Propagate` with `awc` and `reqwest`.
///
/// ```
/// // Outside any span there is nothing to propagate.
/// assert!(observe_runtime::http::outgoing_headers().is_empty());
/// ```
pub fn outgoing_headers() -> Vec<(String, String)> {
    headers_of(&current_context())
}

/// The headers that carry `cx` downstream, through the global propagator; empty when it
/// holds no valid span context.
pub(crate) fn headers_of(cx: &opentelemetry::Context) -> Vec<(String, String)> {
    if !cx.span().span_context().is_valid() {
        return Vec::new();
    }
    let mut injector = VecInjector(Vec::new());
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(cx, &mut injector));
    injector.0
}

/// The trace id of the current span as 32 lowercase hex digits, for logs and responses.
///
/// ```
/// assert_eq!(observe_runtime::http::trace_id(), None);
/// ```
pub fn trace_id() -> Option<String> {
    let cx = current_context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| sc.trace_id().to_string())
}
