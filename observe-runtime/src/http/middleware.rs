//! `observe::Middleware`: per request, a server span whose parent is the incoming trace
//! context, and metrics labelled by route template, timed to the end of the body.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::web::Bytes;

use super::series::{METHODS, Recording, RequestTimer, method_index_of, store};
use super::server_span::{ResponseContext, Traced, failed_request, server_span, traced_response};

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
    response_context: ResponseContext,
    access_log: bool,
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
            response_context: ResponseContext::default(),
            access_log: true,
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

    /// Declares the application's routes, as `"METHOD /template"` (the template exactly
    /// as given to actix, scope prefix included), so that each has a series at zero in
    /// `http_server_request_duration_seconds` from start-up: an alert on a fresh pod
    /// sees `0`, not "no data". The declared series carries an empty
    /// `http_response_status_code` (no response yet) and stays at zero; responses are
    /// recorded under their status as usual. The series cap still holds.
    ///
    /// actix-web gives no way to list an application's routes before its first
    /// request (its resource map is reachable only from a request), so they are
    /// declared here.
    ///
    /// ```
    /// let middleware = observe_runtime::http::Middleware::new()
    ///     .routes(["GET /users/{id}", "POST /charge"]);
    /// assert!(observe_runtime::exposition::render().contains(
    ///     r#"http_server_request_duration_seconds_count{http_request_method="POST",http_route="/charge",http_response_status_code=""} 0"#
    /// ));
    /// # drop(middleware);
    /// ```
    pub fn routes<I, S>(self, routes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let store = store();
        for route in routes {
            let route = route.as_ref().trim();
            let (method, template) = route.split_once(' ').unwrap_or(("GET", route));
            let method = actix_web::http::Method::from_bytes(method.as_bytes())
                .map_or((METHODS.len() - 1) as u8, |m| method_index_of(&m));
            store.declare(method, template.trim());
        }
        self
    }

    /// Attaches a service-level objective to a route, written `"METHOD /template"` as
    /// in [`routes`](Middleware::routes) (the route is declared too). Its requests count
    /// towards the objective: a 5xx response is an error (a 4xx is the client's), and the
    /// latency target reads the `http_server_request_duration_seconds` bucket at its
    /// threshold. The objective then appears in the generated alerting rules, dashboard
    /// and status page (`observe::slo`). Process-wide, like the route declarations.
    ///
    /// The latency threshold must be one of the HTTP histogram's bucket bounds (the
    /// defaults of `#[instrumented]`); if it is not, the latency target is dropped and
    /// the error is logged (the success-rate target stays).
    ///
    /// ```
    /// use observe_runtime::metrics::Objective;
    /// const CHECKOUT: Objective = Objective::new("checkout").success_rate(99.5).latency(0.5, 99.0);
    ///
    /// let middleware = observe_runtime::http::Middleware::new().objective("POST /checkout", CHECKOUT);
    /// let attached = observe_runtime::metrics::route_objectives();
    /// assert!(attached.iter().any(|r| r.route == "/checkout" && r.objective == CHECKOUT));
    /// # drop(middleware);
    /// ```
    pub fn objective(self, route: &str, objective: crate::metrics::Objective) -> Self {
        let route = route.trim();
        let (method, template) = route.split_once(' ').unwrap_or(("GET", route));
        let method = actix_web::http::Method::from_bytes(method.trim().as_bytes())
            .map_or("_OTHER", |m| METHODS[method_index_of(&m) as usize]);
        let template = template.trim();
        let mut objective = objective;
        if let Some((threshold, _)) = objective.latency_target()
            && !crate::metrics::site::DEFAULT_BUCKETS.contains(&threshold)
        {
            tracing::error!(
                target: "observe",
                "objective `{}` on {method} {template}: the latency threshold {threshold} s is \
                 not one of the HTTP histogram's bucket bounds {:?}; its latency target is \
                 ignored",
                objective.name(),
                crate::metrics::site::DEFAULT_BUCKETS,
            );
            objective = objective.without_latency();
        }
        crate::metrics::objective::attach_route(method, template, objective);
        self.routes([format!("{method} {template}")])
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
    /// Writes one access line per request (default on): an `INFO` event with target
    /// `observe::access` and fields `http.request.method`, `http.route`,
    /// `http.response.status_code` and `duration_ms`, inside the request's span, so it
    /// carries the trace id (and reaches OTLP as a log record). Paths that get no span
    /// ([`skip_paths`](Self::skip_paths): probes, scrapes) get no line either. Also
    /// filterable: `RUST_LOG=info,observe::access=off`.
    ///
    /// ```
    /// let middleware = observe_runtime::http::Middleware::new().access_log(false);
    /// # drop(middleware);
    /// ```
    pub fn access_log(mut self, on: bool) -> Self {
        self.access_log = on;
        self
    }

    /// Tells the caller the request's trace context the way W3C Trace Context Level 2
    /// now gives it ("Trace Context Server Timing Metric Format"): a `server-timing`
    /// entry `trace;desc=00-<trace id>-<span id>-<flags>`, the span id being the server
    /// span's (or, for an unsampled request, the id observe invented for it), appended
    /// to any `server-timing` the handler set. Off by default: it tells every client
    /// the trace ids, which a public edge may not want.
    ///
    /// ```
    /// let middleware = observe_runtime::http::Middleware::new().server_timing(true);
    /// # drop(middleware);
    /// ```
    pub fn server_timing(mut self, on: bool) -> Self {
        self.response_context.server_timing = on;
        self
    }

    /// The same context in the `traceresponse` header of earlier Level 2 drafts
    /// (`traceresponse: 00-<trace id>-<span id>-<flags>`), for callers that still read
    /// it. Off by default; independent of [`server_timing`](Self::server_timing).
    ///
    /// ```
    /// let middleware = observe_runtime::http::Middleware::new().trace_response(true);
    /// # drop(middleware);
    /// ```
    pub fn trace_response(mut self, on: bool) -> Self {
        self.response_context.trace_response = on;
        self
    }
}

fn skipped(skip: &[String], path: &str) -> bool {
    skip.iter()
        .any(|s| path == s || (s.ends_with('/') && path.starts_with(s.as_str())))
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
        crate::metrics::workers::watch_current_runtime(None);
        ready(Ok(MiddlewareService {
            service,
            skip: self.skip.clone(),
            response_context: self.response_context,
            access_log: self.access_log,
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
    response_context: ResponseContext,
    access_log: bool,
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
            response_context: self.response_context,
            access_log: self.access_log,
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
        response_context: ResponseContext,
        access_log: bool,
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
        let mut traced = this.traced.take();
        let recording = match result {
            Ok(res) => {
                if super::shutdown::DRAINING.load(std::sync::atomic::Ordering::Relaxed) {
                    close_connection(res);
                }
                let route = res.request().match_pattern();
                let status = res.status().as_u16();
                if let Some(traced) = &mut traced {
                    traced_response(
                        traced,
                        res,
                        route.as_deref(),
                        *this.response_context,
                        *this.access_log,
                    );
                }
                timer.map(|t| t.respond(route.as_deref(), status))
            }
            Err(error) => {
                failed(error, timer, traced.take(), *this.access_log);
                None
            }
        };
        polled.map_ok(|res| {
            res.map_body(|_, body| TimedBody {
                body,
                pending: Pending { recording, traced },
            })
        })
    }
}

/// During the drain: the response asks the client to close its connection, so a
/// kept-alive client reconnects (through the load balancer, elsewhere) instead of
/// sending its next request on a connection the stop will close.
#[cold]
#[inline(never)]
fn close_connection<B>(res: &mut ServiceResponse<B>) {
    res.response_mut()
        .head_mut()
        .set_connection_type(actix_http::ConnectionType::Close);
}

/// A handler's error: actix turns it into a response after us, and its status is known
/// now, so the request is recorded here.
#[cold]
#[inline(never)]
fn failed(
    error: &actix_web::Error,
    timer: Option<RequestTimer>,
    traced: Option<Box<Traced>>,
    access_log: bool,
) {
    let status = error.as_response_error().status_code().as_u16();
    let method = timer.as_ref().map_or("_OTHER", RequestTimer::method_label);
    let elapsed_ns = timer.map_or(0, |t| {
        t.respond(None, status)
            .finish(traced.as_deref().and_then(Traced::exemplar_span))
    });
    if let Some(traced) = traced {
        failed_request(*traced, method, status, elapsed_ns, access_log);
    }
}

/// What is still to do when a response's body ends: record the request (with the span
/// as exemplar) and end the span, after its access line. Done when the body's last chunk
/// is produced, or on drop: a body actix never polls (empty), or a client that went away.
struct Pending {
    recording: Option<Recording>,
    traced: Option<Box<Traced>>,
}

impl Pending {
    #[inline]
    fn complete(&mut self, with_exemplar: bool) {
        if let Some(recording) = self.recording.take() {
            let traced = self.traced.take();
            let exemplar = if with_exemplar {
                traced.as_deref().and_then(Traced::exemplar_span)
            } else {
                None
            };
            let elapsed_ns = recording.finish(exemplar);
            if let Some(traced) = traced {
                (*traced).end(elapsed_ns);
            }
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.complete(false);
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
        // The recording and the server span: they end with the body (the span gives the
        // exemplar its ids).
        pending: Pending,
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
        if matches!(next, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.pending.complete(true);
        }
        next
    }

    /// Keeps actix's fast path for bodies that are already complete (no polling, no
    /// copy); the body exists in full, so the request is measured as ending here.
    fn try_into_bytes(self) -> Result<Bytes, Self> {
        let TimedBody { body, mut pending } = self;
        match body.try_into_bytes() {
            Ok(bytes) => {
                pending.complete(true);
                Ok(bytes)
            }
            Err(body) => Err(TimedBody { body, pending }),
        }
    }
}
