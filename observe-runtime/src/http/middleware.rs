//! `observe::Middleware`: per request, a server span whose parent is the incoming trace
//! context, and metrics labelled by route template, timed to the end of the body.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use opentelemetry::trace::TraceContextExt;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::web::Bytes;

use super::series::{METHODS, Recording, RequestTimer, method_index_of, store};
use crate::propagation::headers as propagation;

/// The HTTP middleware: wrap your `App` with it.
///
/// Per request it
/// - extracts the incoming trace context (`traceparent`, `tracestate`, `baggage`) through
///   the global OpenTelemetry propagator and makes it the parent of a server span, named
///   `METHOD route` once routing is done, with OpenTelemetry's HTTP semantic-convention
///   attributes; a 5xx response sets the span's status to error, a 4xx does not;
/// - makes that span current for the handler, so `#[instrumented]` functions called
///   inside are its children and [`trace_id`](super::trace_id) works there;
/// - records `http_server_request_duration_seconds{http_request_method, http_route,
///   http_response_status_code}` (monotonic clock, until the last byte of the body) and
///   `http_server_active_requests`. `http_route` is the matched route template, never
///   the raw path; see [`super::DEFAULT_MAX_SERIES`] for the bounds.
///
/// Probe and scrape paths get no span by default ([`Middleware::skip_paths`]); their
/// metrics are still recorded. With no tracing subscriber installed, the span costs a
/// disabled-callsite check and nothing is extracted.
///
/// ```
/// # actix_web::rt::System::new().block_on(async {
/// use actix_web::{App, test, web};
/// let app = test::init_service(
///     App::new()
///         .wrap(observe_runtime::http::Middleware::new())
///         .route("/users/{id}", web::get().to(|| async { "user" })),
/// ).await;
/// let req = test::TestRequest::get().uri("/users/42").to_request();
/// let body = test::call_and_read_body(&app, req).await;
/// assert_eq!(body, "user");
/// assert!(observe_runtime::exposition::render().contains(r#"http_route="/users/{id}""#));
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct Middleware {
    skip: Arc<[String]>,
    trace_response: bool,
}

/// Paths that get no span by default: probes and scrapes would drown real traces.
///
/// ```
/// assert!(observe_runtime::http::DEFAULT_SKIP_PATHS.contains(&"/readyz"));
/// ```
pub const DEFAULT_SKIP_PATHS: &[&str] = &["/livez", "/healthz", "/readyz", "/startupz", "/metrics"];

impl Default for Middleware {
    fn default() -> Self {
        Middleware {
            skip: DEFAULT_SKIP_PATHS.iter().map(|s| (*s).to_owned()).collect(),
            trace_response: false,
        }
    }
}

impl Middleware {
    /// The middleware with default settings.
    ///
    /// ```
    /// let middleware = observe_runtime::http::Middleware::new();
    /// # drop(middleware);
    /// ```
    pub fn new() -> Self {
        Middleware::default()
    }

    /// Caps the number of duration series (default 2,000). Past the cap, requests to new
    /// routes are recorded with `http_route="<overflow>"`. The cap is process-wide.
    ///
    /// ```
    /// let middleware = observe_runtime::http::Middleware::new().max_series(500);
    /// # drop(middleware);
    /// ```
    pub fn max_series(self, max: usize) -> Self {
        store().set_max_series(max);
        self
    }

    /// Replaces the paths that get no span (exact matches, or prefixes ending in `/`).
    /// Their metrics are recorded all the same.
    ///
    /// ```
    /// let middleware = observe_runtime::http::Middleware::new().skip_paths(["/livez", "/internal/"]);
    /// # drop(middleware);
    /// ```
    pub fn skip_paths<I, S>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.skip = paths.into_iter().map(Into::into).collect();
        self
    }
}

impl Middleware {
    /// Adds W3C Trace Context Level 2's `traceresponse` header to responses:
    /// `00-<trace id>-<server span id>-<flags>`, so a caller learns which trace and span
    /// served it (and whether it was sampled). Off by default: it tells every client the
    /// trace ids, which a public edge may not want.
    ///
    /// ```
    /// let middleware = observe_runtime::http::Middleware::new().trace_response(true);
    /// # drop(middleware);
    /// ```
    pub fn trace_response(mut self, on: bool) -> Self {
        self.trace_response = on;
        self
    }
}

fn skipped(skip: &[String], path: &str) -> bool {
    skip.iter()
        .any(|s| path == s || (s.ends_with('/') && path.starts_with(s.as_str())))
}

/// A request's server span and, for a request whose incoming trace is not sampled (under
/// a parent-based sampler), the incoming context, made current beside the span: the
/// OpenTelemetry layer never sees such a span, and the context carries the trace id to
/// log lines, `trace_id()` and downstream requests.
struct Traced {
    span: Span,
    incoming: Option<opentelemetry::Context>,
}

/// [`Traced::enter`]'s guard: the span is exited before the context is detached.
struct Current<'a> {
    _span: tracing::span::Entered<'a>,
    _cx: Option<opentelemetry::ContextGuard>,
}

impl Traced {
    /// Makes the request's trace current: the incoming context (if kept), then the span.
    fn enter(&self) -> Current<'_> {
        let cx = self.incoming.clone().map(opentelemetry::Context::attach);
        Current {
            _span: self.span.enter(),
            _cx: cx,
        }
    }

    /// The span, if its ids can serve as an exemplar (it was traced).
    fn exemplar_span(&self) -> Option<&Span> {
        self.incoming.is_none().then_some(&self.span)
    }

    /// Ends the span (its close is logged inside the request's trace).
    fn end(self) {
        let Traced { span, incoming } = self;
        let _cx = incoming.map(opentelemetry::Context::attach);
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
fn server_span(req: &ServiceRequest) -> Option<Box<Traced>> {
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
        return Some(Box::new(Traced {
            span,
            incoming: Some(parent),
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
    }))
}

/// The method as a span name shows it (OpenTelemetry: named after the method alone until
/// the route is known, and `HTTP` for methods outside the known set).
fn span_method(label: &'static str) -> &'static str {
    if label == "_OTHER" { "HTTP" } else { label }
}

/// The request's remaining semantic-convention attributes, for a recorded span.
#[inline(never)]
fn request_attributes(
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

fn protocol_version(version: actix_web::http::Version) -> &'static str {
    match version {
        actix_web::http::Version::HTTP_09 => "0.9",
        actix_web::http::Version::HTTP_10 => "1.0",
        actix_web::http::Version::HTTP_2 => "2",
        actix_web::http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

impl<S, B> Transform<S, ServiceRequest> for Middleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<TimedBody<B>>;
    type Error = actix_web::Error;
    type Transform = MiddlewareService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        // Register the families now, so they are present before the first request, and
        // watch this worker's event loop for liveness.
        let _ = store();
        crate::health::liveness::register_worker();
        ready(Ok(MiddlewareService {
            service,
            skip: self.skip.clone(),
            trace_response: self.trace_response,
        }))
    }
}

/// The service built by [`Middleware`]; see there.
///
/// ```
/// // Built by `Middleware`; see its example.
/// let _ = observe_runtime::http::Middleware::new();
/// ```
#[derive(Debug)]
pub struct MiddlewareService<S> {
    service: S,
    skip: Arc<[String]>,
    trace_response: bool,
}

impl<S, B> Service<ServiceRequest> for MiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<TimedBody<B>>;
    type Error = actix_web::Error;
    type Future = MiddlewareFuture<S::Future>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let timer = RequestTimer::start(req.method());
        // No subscriber anywhere (not even a scoped one): no span, no extraction, and
        // none of what a disabled span still costs (with tracing's `log` feature, a
        // disabled span with metadata logs its enter and exit).
        let traced = if !tracing::dispatcher::has_been_set() || skipped(&self.skip, req.path()) {
            None
        } else {
            server_span(&req)
        };
        let inner = {
            let _current = traced.as_deref().map(Traced::enter);
            self.service.call(req)
        };
        MiddlewareFuture {
            inner,
            timer: Some(timer),
            traced,
            trace_response: self.trace_response,
        }
    }
}

pin_project_lite::pin_project! {
    /// Future of [`MiddlewareService`].
    ///
    /// ```
    /// // Built by `Middleware`; see its example.
    /// let _ = observe_runtime::http::Middleware::new();
    /// ```
    pub struct MiddlewareFuture<F> {
        #[pin]
        inner: F,
        timer: Option<RequestTimer>,
        traced: Option<Box<Traced>>,
        trace_response: bool,
    }
}

impl<F, B> Future for MiddlewareFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody,
{
    type Output = Result<ServiceResponse<TimedBody<B>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut polled = {
            let _current = this.traced.as_deref().map(Traced::enter);
            this.inner.poll(cx)
        };
        // The response is read and amended where it lies; it is moved once, into its
        // new body (a response is 136 bytes: every move is a `memcpy` call).
        let Poll::Ready(result) = &mut polled else {
            return Poll::Pending;
        };
        let timer = this.timer.take();
        let traced = this.traced.take();
        let recording = match result {
            Ok(res) => {
                let route = res.request().match_pattern();
                let status = res.status().as_u16();
                if let Some(traced) = &traced {
                    traced_response(traced, res, route.as_deref(), *this.trace_response);
                }
                timer.map(|t| t.respond(route.as_deref(), status))
            }
            Err(error) => {
                failed(error, timer, traced.as_deref());
                None
            }
        };
        polled.map_ok(|res| {
            res.map_body(|_, body| TimedBody {
                body,
                recording,
                traced,
            })
        })
    }
}

/// The server span's share of a response: its name, status and, if asked for, the
/// `traceresponse` header. Out of line (and cold: without a subscriber it never runs),
/// so the untraced path stays short.
#[cold]
#[inline(never)]
fn traced_response<B>(
    traced: &Traced,
    res: &mut ServiceResponse<B>,
    route: Option<&str>,
    add_trace_response: bool,
) {
    let status = res.status().as_u16();
    finish_span(
        &traced.span,
        route.map(|r| (res.request().method(), r)),
        status,
    );
    if add_trace_response {
        trace_response(&traced.span, res);
    }
}

/// A handler's error: actix turns it into a response after us, and its status is known
/// now, so the request is recorded here.
#[cold]
#[inline(never)]
fn failed(error: &actix_web::Error, timer: Option<RequestTimer>, traced: Option<&Traced>) {
    let status = error.as_response_error().status_code().as_u16();
    if let Some(traced) = traced {
        finish_span(&traced.span, None, status);
    }
    if let Some(t) = timer {
        t.respond(None, status)
            .finish(traced.and_then(Traced::exemplar_span));
    }
}

/// Adds the `traceresponse` header: the trace and the server span that answered.
fn trace_response<B>(span: &Span, res: &mut ServiceResponse<B>) {
    if let Some(value) = crate::propagation::traceparent_of(&span.context())
        && let Ok(value) = actix_web::http::header::HeaderValue::from_str(&value)
    {
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("traceresponse"),
            value,
        );
    }
}

/// Records the outcome on the span (route, status; 5xx: error, 4xx: not), in one
/// dispatch, and names a recorded span after its method and route.
fn finish_span(span: &Span, route: Option<(&actix_web::http::Method, &str)>, status: u16) {
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

pin_project_lite::pin_project! {
    /// A response body that completes its request's measurement when the last chunk
    /// is produced (or when it is dropped, if the client goes away first).
    ///
    /// ```
    /// // Built by `Middleware`; see its example.
    /// let _ = observe_runtime::http::Middleware::new();
    /// ```
    pub struct TimedBody<B> {
        #[pin]
        body: B,
        recording: Option<Recording>,
        // The server span: it ends with the body, and gives the exemplar its ids.
        traced: Option<Box<Traced>>,
    }
}

impl<B: MessageBody> MessageBody for TimedBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.project();
        let next = this.body.poll_next(cx);
        if matches!(next, Poll::Ready(None) | Poll::Ready(Some(Err(_))))
            && let Some(recording) = this.recording.take()
        {
            let traced = this.traced.take();
            recording.finish(traced.as_deref().and_then(Traced::exemplar_span));
            if let Some(traced) = traced {
                (*traced).end();
            }
        }
        next
    }

    /// Keeps actix's fast path for bodies that are already complete (no polling, no
    /// copy); the body exists in full, so the request is measured as ending here.
    fn try_into_bytes(self) -> Result<Bytes, Self> {
        let TimedBody {
            body,
            recording,
            traced,
        } = self;
        match body.try_into_bytes() {
            Ok(bytes) => {
                if let Some(recording) = recording {
                    recording.finish(traced.as_deref().and_then(Traced::exemplar_span));
                }
                if let Some(traced) = traced {
                    (*traced).end();
                }
                Ok(bytes)
            }
            Err(body) => Err(TimedBody {
                body,
                recording,
                traced,
            }),
        }
    }
}
