//! Gates: middleware that answers a request itself when a rule refuses it (read-only
//! methods, the access policy), and the count of refusals.

use std::future::{Ready, ready};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use actix_web::HttpResponse;
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::{Method, StatusCode, header};

use crate::exposition::collector::{self, Collector};
use crate::exposition::{Family, Kind, label};
use crate::http::access::{self, AccessPolicy, Decision};

// ---- denials, counted ----

pub(super) struct Denials {
    address: AtomicU64,
    token: AtomicU64,
}

static DENIALS: Denials = Denials {
    address: AtomicU64::new(0),
    token: AtomicU64::new(0),
};

pub(super) fn denials() -> &'static Denials {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| collector::register(&DENIALS));
    &DENIALS
}

impl Collector for Denials {
    fn collect(&self, out: &mut Vec<Family>) {
        out.push(
            Family::new(
                "observe_admin_denied_total",
                Kind::Counter,
                "Requests to protected admin endpoints refused, by reason (address: 403, token: 401).",
            )
            .with(vec![label("reason", "address")], self.address.load(Relaxed) as f64)
            .with(vec![label("reason", "token")], self.token.load(Relaxed) as f64),
        );
    }
}

// ---- gates: middleware that answers a request itself when a rule refuses it ----

/// A rule that may refuse a request with a response of its own.
pub(super) trait Rule: Clone + 'static {
    fn refuse(&self, req: &ServiceRequest) -> Option<HttpResponse>;
}

/// Middleware applying a [`Rule`] to the endpoints it wraps.
#[derive(Clone)]
pub(super) struct Gate<R>(pub(super) R);

impl<S, B, R: Rule> Transform<S, ServiceRequest> for Gate<R>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = actix_web::Error;
    type Transform = GateService<S, R>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(GateService {
            service,
            rule: self.0.clone(),
        }))
    }
}

pub(super) struct GateService<S, R> {
    service: S,
    rule: R,
}

impl<S, B, R: Rule> Service<ServiceRequest> for GateService<S, R>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = actix_web::Error;
    type Future = futures_either::Either<S::Future, B>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        match self.rule.refuse(&req) {
            Some(response) => futures_either::Either::Ready {
                response: Some(req.into_response(response).map_into_right_body()),
            },
            None => futures_either::Either::Inner {
                future: self.service.call(req),
            },
        }
    }
}

/// The [`AccessPolicy`], counting its refusals.
#[derive(Clone)]
pub(super) struct Access(AccessPolicy);

pub(super) fn access(policy: AccessPolicy) -> Gate<Access> {
    Gate(Access(policy))
}

impl Rule for Access {
    fn refuse(&self, req: &ServiceRequest) -> Option<HttpResponse> {
        let forwarded = access::joined_header(req.headers(), header::X_FORWARDED_FOR);
        let authorization = access::joined_header(req.headers(), header::AUTHORIZATION);
        let decision = self.0.check(
            req.peer_addr().map(|a| a.ip()),
            forwarded.as_deref(),
            authorization.as_deref(),
        );
        let status = match decision {
            Decision::Allowed => return None,
            Decision::DeniedAddress(_) => {
                denials().address.fetch_add(1, Relaxed);
                StatusCode::FORBIDDEN
            }
            Decision::DeniedToken { .. } => {
                denials().token.fetch_add(1, Relaxed);
                StatusCode::UNAUTHORIZED
            }
        };
        let mut response = HttpResponse::build(status);
        response.content_type("text/plain; charset=utf-8");
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"observe-admin\""));
        }
        Some(response.body(format!("{}\n", decision.reason())))
    }
}

/// The admin server's own rule: `GET`/`HEAD` only, and no request bodies.
#[derive(Clone, Copy)]
pub(super) struct ReadOnly;

impl Rule for ReadOnly {
    fn refuse(&self, req: &ServiceRequest) -> Option<HttpResponse> {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Some(
                HttpResponse::MethodNotAllowed()
                    .insert_header((header::ALLOW, "GET, HEAD"))
                    .body(format!(
                        "method {} not allowed: the admin server answers GET and HEAD only\n",
                        req.method()
                    )),
            );
        }
        let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
            || req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() != "0");
        has_body.then(|| {
            HttpResponse::PayloadTooLarge()
                .body("request bodies are not accepted by the admin server\n")
        })
    }
}

/// A future that is either the inner service's or an immediate refusal.
mod futures_either {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use actix_web::body::{BoxBody, EitherBody};
    use actix_web::dev::ServiceResponse;

    pin_project_lite::pin_project! {
        #[project = EitherProj]
        pub enum Either<F, B> {
            Inner { #[pin] future: F },
            Ready { response: Option<ServiceResponse<EitherBody<B, BoxBody>>> },
        }
    }

    impl<F, B> Future for Either<F, B>
    where
        F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    {
        type Output = Result<ServiceResponse<EitherBody<B, BoxBody>>, actix_web::Error>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            match self.project() {
                EitherProj::Inner { future } => future
                    .poll(cx)
                    .map(|r| r.map(ServiceResponse::map_into_left_body)),
                EitherProj::Ready { response } => Poll::Ready(Ok(response
                    .take()
                    .expect("an immediate response is polled once"))),
            }
        }
    }
}
