//! `observe::Middleware`: per-request metrics labelled by route template, timed to the
//! end of the response body.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::web::Bytes;

use super::metrics::{RequestTimer, store};

/// The HTTP middleware: wrap your `App` with it.
///
/// Per request it records `http_server_request_duration_seconds{http_request_method,
/// http_route, http_response_status_code}` (measured with a monotonic clock until the
/// last byte of the body is produced) and `http_server_active_requests`. `http_route` is
/// the matched route template, never the raw path; see [`super::metrics`] for the bounds.
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
/// assert!(observe_runtime::metrics::render().contains(r#"http_route="/users/{id}""#));
/// # });
/// ```
#[derive(Clone, Debug, Default)]
pub struct Middleware {
    _private: (),
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
        // Register the families now, so they are present before the first request.
        let _ = store();
        ready(Ok(MiddlewareService { service }))
    }
}

/// The service built by [`Middleware`]; see there.
#[derive(Debug)]
pub struct MiddlewareService<S> {
    service: S,
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
        let timer = RequestTimer::start(req.method().as_str());
        MiddlewareFuture {
            inner: self.service.call(req),
            timer: Some(timer),
        }
    }
}

pin_project_lite::pin_project! {
    /// Future of [`MiddlewareService`].
    pub struct MiddlewareFuture<F> {
        #[pin]
        inner: F,
        timer: Option<RequestTimer>,
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
        let result = match this.inner.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => result,
        };
        let mut timer = this.timer.take();
        Poll::Ready(match result {
            Ok(res) => {
                if let Some(t) = &mut timer {
                    t.respond(res.request().match_pattern(), res.status().as_u16());
                }
                Ok(res.map_body(|_, body| TimedBody { body, timer }))
            }
            Err(error) => {
                if let Some(t) = &mut timer {
                    // actix turns the error into a response after us; its status is known.
                    let status = error.as_response_error().status_code().as_u16();
                    t.respond(None, status);
                }
                Err(error)
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that completes its request's measurement when the last chunk
    /// is produced (or when it is dropped, if the client goes away first).
    pub struct TimedBody<B> {
        #[pin]
        body: B,
        timer: Option<RequestTimer>,
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
            this.timer.take();
        }
        next
    }
}
