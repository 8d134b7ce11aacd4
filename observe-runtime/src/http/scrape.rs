//! actix-web integration: the `/metrics` handler and the per-worker request gauge.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::{HttpResponse, web};

use crate::exposition as metrics;
use crate::metrics::workers;

/// `GET /metrics`: every metric, in the format the scraper's `Accept` header asks for
/// ([`metrics::Format::negotiate`]): OpenMetrics with exemplars for Prometheus, the
/// classic text format otherwise.
///
/// ```
/// use actix_web::{App, web};
/// let app = App::new().route("/metrics", web::get().to(observe_runtime::http::metrics_handler));
/// # drop(app);
/// ```
pub async fn metrics_handler(req: actix_web::HttpRequest) -> HttpResponse {
    let accept = req
        .headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let format = metrics::Format::negotiate(accept);
    HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((actix_web::http::header::VARY, "Accept"))
        .body(metrics::render_as(format))
}

/// Mounts `GET /metrics` on an application with one `configure` call.
///
/// ```
/// use actix_web::App;
/// let app = App::new().configure(observe_runtime::http::configure);
/// # drop(app);
/// ```
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics_handler));
}

/// Middleware that counts requests in flight per actix worker
/// (`observe_worker_requests_in_flight{worker}`): one uncontended atomic increment and
/// decrement per request, on a slot resolved once per worker when the app is built.
///
/// ```
/// use actix_web::App;
/// let app = App::new().wrap(observe_runtime::http::WorkerMetrics);
/// # drop(app);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct WorkerMetrics;

impl<S, B> Transform<S, ServiceRequest> for WorkerMetrics
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = WorkerMetricsService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        crate::health::liveness::register_worker();
        workers::watch_current_runtime(None);
        ready(Ok(WorkerMetricsService {
            service,
            slot: workers::slot_for_current_thread(),
        }))
    }
}

/// The service built by [`WorkerMetrics`] for each worker.
///
/// ```
/// # actix_web::rt::System::new().block_on(async {
/// use actix_web::{App, test, web};
/// let app = test::init_service(
///     App::new().wrap(observe_runtime::http::WorkerMetrics).route("/", web::get().to(|| async { "hi" })),
/// ).await;
/// let resp = test::call_service(&app, test::TestRequest::get().uri("/").to_request()).await;
/// assert!(resp.status().is_success());
/// assert!(observe_runtime::exposition::render().contains("observe_worker_requests_total{worker="));
/// # });
/// ```
#[derive(Debug)]
pub struct WorkerMetricsService<S> {
    service: S,
    slot: Arc<workers::WorkerSlot>,
}

impl<S, B> Service<ServiceRequest> for WorkerMetricsService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = WorkerFuture<S::Future>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let request = self.slot.enter();
        WorkerFuture {
            inner: self.service.call(req),
            _request: request,
        }
    }
}

pin_project_lite::pin_project! {
    /// Future of [`WorkerMetricsService`]; the request leaves the gauge when it is dropped,
    /// whether it completed or not. See [`WorkerMetricsService`] for an example.
    ///
    /// ```
    /// // Built by `WorkerMetrics`; see its example.
    /// let _ = observe_runtime::http::WorkerMetrics;
    /// ```
    pub struct WorkerFuture<F> {
        #[pin]
        inner: F,
        _request: workers::WorkerRequest,
    }
}

impl<F: Future> Future for WorkerFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}
