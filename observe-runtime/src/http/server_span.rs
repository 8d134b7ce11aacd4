//! The server span of a request: made from the incoming context (or skipped when an
//! unsampled incoming trace is final), its attributes built only when recorded, and
//! finished with route and status; the response-context headers (`server-timing`,
//! `traceresponse`).

use opentelemetry::trace::TraceContextExt;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use actix_web::dev::{ServiceRequest, ServiceResponse};

use super::series::{METHODS, method_index_of};
use crate::propagation::headers as propagation;

/// A request's server span and, for a request whose incoming trace is not sampled (under
/// a parent-based sampler), the incoming context, made current beside the span: the
/// OpenTelemetry layer never sees such a span, and the context carries the trace id to
/// log lines, `trace_id()` and downstream requests.
pub(super) struct Traced {
    pub(super) span: Span,
    incoming: Option<opentelemetry::Context>,
    /// What the access line says, once the response is known (when access lines are on).
    outcome: Option<Outcome>,
}

/// A response as the access line reports it.
struct Outcome {
    method: &'static str,
    route: Option<String>,
    status: u16,
}

/// [`Traced::enter`]'s guard: the span is exited before the context is detached.
pub(super) struct Current<'a> {
    _span: tracing::span::Entered<'a>,
    _cx: Option<opentelemetry::ContextGuard>,
}

impl Traced {
    /// Makes the request's trace current: the incoming context (if kept), then the span.
    pub(super) fn enter(&self) -> Current<'_> {
        let cx = self.incoming.clone().map(opentelemetry::Context::attach);
        Current {
            _span: self.span.enter(),
            _cx: cx,
        }
    }

    /// The request's context as the response tells it: the server span's, or for an
    /// unsampled request the unrecorded operation that stands for it.
    pub(super) fn context(&self) -> opentelemetry::Context {
        match &self.incoming {
            Some(cx) => cx.clone(),
            None => self.span.context(),
        }
    }

    /// The span, if its ids can serve as an exemplar (it was traced).
    pub(super) fn exemplar_span(&self) -> Option<&Span> {
        self.incoming.is_none().then_some(&self.span)
    }

    /// Ends the span (its close is logged inside the request's trace), after the access
    /// line when one is due: the request took `elapsed_ns`.
    pub(super) fn end(self, elapsed_ns: u64) {
        let Traced {
            span,
            incoming,
            outcome,
        } = self;
        let _cx = incoming.map(opentelemetry::Context::attach);
        if let Some(outcome) = outcome {
            let _entered = span.enter();
            access_line(&outcome, elapsed_ns);
        }
        drop(span);
    }
}

/// The server span of one request, its parent extracted from the request's headers.
///
/// The span's fields are what log lines show (method, path; route and status at the
/// end). The other OpenTelemetry attributes are built only once the sampler has decided
/// to record the span: an unsampled request (most requests, under a ratio sampler)
/// makes no strings for attributes nobody keeps. A request whose incoming trace is not
/// sampled, under a parent-based sampler, gets no OpenTelemetry span at all.
pub(super) fn server_span(req: &ServiceRequest) -> Option<Box<Traced>> {
    let method = METHODS[method_index_of(req.method()) as usize];
    let name = span_method(method);
    let parent = propagation::extract(req.headers());
    // Not inside another span (an outer middleware's): observe's filter would follow
    // that span's decision rather than the incoming one.
    let unsampled = crate::propagation::parent_based_sampling()
        && {
            let otel = parent.span();
            let sc = otel.span_context();
            sc.is_valid() && !sc.is_sampled()
        }
        && tracing::dispatcher::get_default(|d| d.current_span().id().is_none());
    // Made with an unsampled incoming context current, the span is one observe's layer
    // leaves out, with everything below it.
    let attached = unsampled.then(|| parent.clone().attach());
    // Only cheap values here: with tracing's `log` feature on (any crate in the build
    // can turn it on), a disabled span still evaluates the values written in the macro.
    let span = tracing::info_span!(
        target: "observe::http",
        "HTTP request",
        otel.name = name,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = method,
        http.route = Empty,
        http.response.status_code = Empty,
        url.path = req.path(),
    );
    drop(attached);
    if span.is_disabled() {
        return None;
    }
    if unsampled {
        // Not recorded, but an operation of ours all the same: it sends its own
        // parent-id downstream (an id invented here, no span built).
        return Some(Box::new(Traced {
            span,
            incoming: Some(crate::propagation::unrecorded_operation(&parent)),
            outcome: None,
        }));
    }
    // `set_parent` must come before the span is first entered, or its context read.
    let _ = span.set_parent(parent);
    // Reading the context starts the OpenTelemetry span: the sampler has decided.
    let cx = span.context();
    let otel = cx.span();
    if otel.is_recording() {
        request_attributes(&otel, req, method);
    }
    Some(Box::new(Traced {
        span,
        incoming: None,
        outcome: None,
    }))
}

/// The method as a span name shows it (OpenTelemetry: named after the method alone until
/// the route is known, and `HTTP` for methods outside the known set).
pub(super) fn span_method(label: &'static str) -> &'static str {
    if label == "_OTHER" { "HTTP" } else { label }
}

/// The request's remaining semantic-convention attributes, for a recorded span.
#[inline(never)]
pub(super) fn request_attributes(
    otel: &opentelemetry::trace::SpanRef<'_>,
    req: &ServiceRequest,
    method: &str,
) {
    use opentelemetry::KeyValue;
    let mut attributes = Vec::with_capacity(5);
    attributes.push(KeyValue::new(
        "url.scheme",
        req.connection_info().scheme().to_owned(),
    ));
    attributes.push(KeyValue::new(
        "network.protocol.version",
        protocol_version(req.version()),
    ));
    if method == "_OTHER" {
        attributes.push(KeyValue::new(
            "http.request.method_original",
            req.method().as_str().to_owned(),
        ));
    }
    if let Some(peer) = req.peer_addr() {
        attributes.push(KeyValue::new("client.address", peer.ip().to_string()));
    }
    if let Some(agent) = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
    {
        attributes.push(KeyValue::new("user_agent.original", agent.to_owned()));
    }
    otel.set_attributes(attributes);
}

pub(super) fn protocol_version(version: actix_web::http::Version) -> &'static str {
    match version {
        actix_web::http::Version::HTTP_09 => "0.9",
        actix_web::http::Version::HTTP_10 => "1.0",
        actix_web::http::Version::HTTP_2 => "2",
        actix_web::http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// Which response headers tell the caller the request's trace context.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct ResponseContext {
    /// `server-timing: trace;desc=…` (Trace Context Level 2's current form).
    pub(super) server_timing: bool,
    /// `traceresponse: …` (the earlier Level 2 draft's header, for older callers).
    pub(super) trace_response: bool,
}

/// The server span's share of a response: its name, status and, if asked for, the
/// response-context headers. Out of line (and cold: without a subscriber it never
/// runs), so the untraced path stays short.
#[cold]
#[inline(never)]
pub(super) fn traced_response<B>(
    traced: &mut Traced,
    res: &mut ServiceResponse<B>,
    route: Option<&str>,
    response_context: ResponseContext,
    access_log: bool,
) {
    let status = res.status().as_u16();
    let method = res.request().method();
    finish_span(&traced.span, route.map(|r| (method, r)), status);
    if access_log {
        traced.outcome = Some(Outcome {
            method: METHODS[method_index_of(method) as usize],
            route: route.map(str::to_owned),
            status,
        });
    }
    if response_context != ResponseContext::default() {
        add_response_context(traced, res, response_context);
    }
}

/// Adds the response-context headers: the trace and the operation that answered
/// (`00-<trace id>-<span id>-<flags>`), for unsampled requests too.
pub(super) fn add_response_context<B>(
    traced: &Traced,
    res: &mut ServiceResponse<B>,
    which: ResponseContext,
) {
    use actix_web::http::header::{HeaderName, HeaderValue};
    let Some(value) = crate::propagation::traceparent_of(&traced.context()) else {
        return;
    };
    if which.server_timing
        && let Ok(timing) = HeaderValue::from_str(&format!("trace;desc={value}"))
    {
        // Appended: the handler's own `server-timing` metrics stay.
        res.headers_mut()
            .append(HeaderName::from_static("server-timing"), timing);
    }
    if which.trace_response
        && let Ok(value) = HeaderValue::from_str(&value)
    {
        res.headers_mut()
            .insert(HeaderName::from_static("traceresponse"), value);
    }
}

/// A handler's error: the span and, when access lines are on, the access line, now
/// (actix makes the response after us).
#[cold]
#[inline(never)]
pub(super) fn failed_request(
    mut traced: Traced,
    method: &'static str,
    status: u16,
    elapsed_ns: u64,
    access_log: bool,
) {
    finish_span(&traced.span, None, status);
    if access_log {
        traced.outcome = Some(Outcome {
            method,
            route: None,
            status,
        });
    }
    traced.end(elapsed_ns);
}

/// The access line: one `INFO` event per request, target `observe::access`, inside the
/// request's span (so it carries the trace and span ids).
fn access_line(outcome: &Outcome, elapsed_ns: u64) {
    let route = outcome
        .route
        .as_deref()
        .unwrap_or(super::series::UNMATCHED_ROUTE);
    tracing::info!(
        target: "observe::access",
        duration_ms = elapsed_ns as f64 / 1e6,
        "http.request.method" = outcome.method,
        "http.route" = route,
        "http.response.status_code" = outcome.status,
        "request"
    );
}

/// Records the outcome on the span (route, status; 5xx: error, 4xx: not), in one
/// dispatch, and names a recorded span after its method and route.
pub(super) fn finish_span(
    span: &Span,
    route: Option<(&actix_web::http::Method, &str)>,
    status: u16,
) {
    use tracing::field::Value;
    let Some(meta) = span.metadata() else {
        return;
    };
    let fields = meta.fields();
    let (Some(route_field), Some(status_field), Some(error_field)) = (
        fields.field("http.route"),
        fields.field("http.response.status_code"),
        fields.field("otel.status_code"),
    ) else {
        return;
    };
    let route_value = route.map(|(_, r)| r);
    let error = (status >= 500).then_some("ERROR");
    let values = [
        (&route_field, route_value.as_ref().map(|r| r as &dyn Value)),
        (&status_field, Some(&status as &dyn Value)),
        (&error_field, error.as_ref().map(|e| e as &dyn Value)),
    ];
    span.record_all(&fields.value_set(&values));
    if let Some((method, route)) = route {
        let cx = span.context();
        let otel = cx.span();
        if otel.is_recording() {
            let method = span_method(METHODS[method_index_of(method) as usize]);
            // tracing-opentelemetry 0.34 ignores a late `otel.name` once the span has
            // started (it has: the handler ran inside it), so rename the OpenTelemetry span.
            otel.update_name(format!("{method} {route}"));
        }
    }
}
