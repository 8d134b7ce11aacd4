//! The admin server: a second listener, on its own thread and worker, serving
//! `/metrics`, `/livez`, `/healthz` and `/debug/pprof/*`, so probes and scrapes are
//! answered even when the application's workers are saturated.
//!
//! `/debug/pprof/*` (and `/metrics` when [`AdminServer::protect_metrics`] is set) go
//! through the [`AccessPolicy`]; probes always reach their status codes. The admin port
//! accepts only `GET` and `HEAD`, no request bodies, few connections, and short timeouts,
//! so a slow or hostile client cannot starve it.
//!
//! The same endpoints can be mounted on the application instead, with [`configure`].

pub(crate) mod access;
#[cfg(feature = "heap")]
mod heap;
#[cfg(feature = "pprof")]
mod pprof;
#[cfg(all(feature = "pprof", target_os = "linux"))]
mod threads;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::{Method, StatusCode, header};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use std::future::{Ready, ready};

pub use access::{AccessPolicy, ConfigError, Decision};

use crate::metrics::collector::{self, Collector, Exposition};

/// Longest CPU profile accepted unless [`AdminServer::max_profile_seconds`] says otherwise.
///
/// ```
/// assert_eq!(observe_runtime::admin::DEFAULT_MAX_PROFILE_SECONDS, 60);
/// ```
pub const DEFAULT_MAX_PROFILE_SECONDS: u64 = 60;

/// Default address: every interface, so the kubelet and Prometheus can reach it.
///
/// ```
/// assert_eq!(observe_runtime::admin::DEFAULT_ADDR, "0.0.0.0:6060");
/// ```
pub const DEFAULT_ADDR: &str = "0.0.0.0:6060";

/// Settings of the admin server; [`start`](AdminServer::start) runs it.
///
/// ```no_run
/// let admin = observe_runtime::admin::AdminServer::from_env()
///     .expect("valid OBSERVE_ADMIN_* settings")
///     .start()
///     .expect("admin port free");
/// println!("admin on {}", admin.local_addr());
/// ```
#[derive(Clone, Debug)]
pub struct AdminServer {
    addr: String,
    policy: AccessPolicy,
    health: Option<crate::health::Health>,
    protect_metrics: bool,
    max_profile_seconds: u64,
    max_connections: usize,
    request_timeout: Duration,
}

impl Default for AdminServer {
    fn default() -> Self {
        AdminServer {
            addr: DEFAULT_ADDR.to_owned(),
            policy: AccessPolicy::loopback_only(),
            health: None,
            protect_metrics: false,
            max_profile_seconds: DEFAULT_MAX_PROFILE_SECONDS,
            max_connections: 64,
            request_timeout: Duration::from_secs(5),
        }
    }
}

impl AdminServer {
    /// Defaults: [`DEFAULT_ADDR`], loopback-only access to `/debug/pprof`, open `/metrics`.
    ///
    /// ```
    /// let admin = observe_runtime::admin::AdminServer::new().addr("127.0.0.1:0");
    /// # drop(admin);
    /// ```
    pub fn new() -> Self {
        AdminServer::default()
    }

    /// Defaults overridden by `OBSERVE_ADMIN_ADDR`, `OBSERVE_ADMIN_ALLOW`,
    /// `OBSERVE_ADMIN_TOKEN`, `OBSERVE_ADMIN_TRUSTED_PROXIES` and
    /// `OBSERVE_ADMIN_PROTECT_METRICS` (`1`/`true`). A bad value is an error naming it.
    ///
    /// ```
    /// let admin = observe_runtime::admin::AdminServer::from_env().unwrap();
    /// # drop(admin);
    /// ```
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut admin = AdminServer {
            policy: AccessPolicy::from_env()?,
            ..AdminServer::default()
        };
        if let Ok(addr) = std::env::var("OBSERVE_ADMIN_ADDR")
            && !addr.is_empty()
        {
            admin.addr = addr;
        }
        if let Ok(v) = std::env::var("OBSERVE_ADMIN_PROTECT_METRICS") {
            admin.protect_metrics = match v.as_str() {
                "1" | "true" | "yes" => true,
                "0" | "false" | "no" | "" => false,
                _ => {
                    return Err(ConfigError {
                        setting: "OBSERVE_ADMIN_PROTECT_METRICS",
                        value: v,
                        reason: "is not a boolean (1/0, true/false)".to_owned(),
                    });
                }
            };
        }
        Ok(admin)
    }

    /// The address to listen on (`host:port`; port 0 picks a free one).
    ///
    /// ```
    /// let admin = observe_runtime::admin::AdminServer::new().addr("[::1]:6060");
    /// # drop(admin);
    /// ```
    pub fn addr(mut self, addr: impl Into<String>) -> Self {
        self.addr = addr.into();
        self
    }

    /// The access policy of the protected endpoints.
    ///
    /// ```
    /// use observe_runtime::admin::{AccessPolicy, AdminServer};
    /// let admin = AdminServer::new().access(AccessPolicy::loopback_only().token("t"));
    /// # drop(admin);
    /// ```
    pub fn access(mut self, policy: AccessPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Serves `/readyz`, `/readyz/{name}` and `/startupz` from this health engine.
    ///
    /// ```
    /// let engine = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// let admin = observe_runtime::admin::AdminServer::new().health(engine);
    /// # drop(admin);
    /// ```
    pub fn health(mut self, health: crate::health::Health) -> Self {
        self.health = Some(health);
        self
    }

    /// The longest CPU profile `/debug/pprof/profile?seconds=` may ask for (default 60).
    ///
    /// ```
    /// let admin = observe_runtime::admin::AdminServer::new().max_profile_seconds(120);
    /// # drop(admin);
    /// ```
    pub fn max_profile_seconds(mut self, seconds: u64) -> Self {
        self.max_profile_seconds = seconds.max(1);
        self
    }

    /// Puts `/metrics` behind the access policy too (default: open, so scrapers reach it).
    ///
    /// ```
    /// let admin = observe_runtime::admin::AdminServer::new().protect_metrics(true);
    /// # drop(admin);
    /// ```
    pub fn protect_metrics(mut self, protect: bool) -> Self {
        self.protect_metrics = protect;
        self
    }

    /// Binds now (so a taken port is an error here, not later), then serves on a thread
    /// of its own with one worker. Prints the address it listens on to stderr.
    ///
    /// ```
    /// let admin = observe_runtime::admin::AdminServer::new().addr("127.0.0.1:0").start().unwrap();
    /// assert!(admin.local_addr().port() > 0);
    /// admin.stop();
    /// ```
    pub fn start(self) -> io::Result<AdminHandle> {
        let listener = TcpListener::bind(&self.addr).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("admin server cannot bind {}: {e}", self.addr),
            )
        })?;
        let addr = listener.local_addr()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let settings = self.clone();
        let thread = std::thread::Builder::new()
            .name("observe-admin".to_owned())
            .spawn(move || {
                actix_web::rt::System::new().block_on(async move {
                    let AdminServer {
                        policy,
                        health,
                        protect_metrics,
                        max_profile_seconds,
                        max_connections,
                        request_timeout,
                        ..
                    } = settings;
                    let server = HttpServer::new(move || {
                        App::new()
                            .wrap(Gate(ReadOnly))
                            .app_data(web::Data::new(ProfileLimit(max_profile_seconds)))
                            .configure(configure(policy.clone(), protect_metrics, health.clone()))
                    })
                    .workers(1)
                    .disable_signals()
                    .max_connections(max_connections)
                    .backlog(64)
                    .keep_alive(Duration::from_secs(5))
                    .client_request_timeout(request_timeout)
                    .client_disconnect_timeout(Duration::from_secs(1))
                    .shutdown_timeout(1)
                    .listen(listener)?
                    .run();
                    let _ = tx.send(server.handle());
                    server.await
                })
            })?;
        let handle = rx
            .recv()
            .map_err(|_| io::Error::other("admin server thread ended before it started serving"))?;
        eprintln!(
            "observe: admin server on http://{addr} (/metrics /livez /healthz{} /debug/pprof/)",
            if self.health.is_some() {
                " /readyz /startupz"
            } else {
                ""
            }
        );
        Ok(AdminHandle {
            addr,
            handle,
            thread: Some(thread),
        })
    }
}

/// A running admin server.
///
/// ```
/// let admin = observe_runtime::admin::AdminServer::new().addr("127.0.0.1:0").start().unwrap();
/// let addr = admin.local_addr();
/// admin.stop();
/// assert!(std::net::TcpStream::connect(addr).is_err());
/// ```
#[derive(Debug)]
pub struct AdminHandle {
    addr: SocketAddr,
    handle: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl AdminHandle {
    /// The address it listens on.
    ///
    /// ```
    /// let admin = observe_runtime::admin::AdminServer::new().addr("127.0.0.1:0").start().unwrap();
    /// assert!(admin.local_addr().ip().is_loopback());
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it gracefully and waits for its thread.
    ///
    /// ```
    /// let admin = observe_runtime::admin::AdminServer::new().addr("127.0.0.1:0").start().unwrap();
    /// admin.stop();
    /// ```
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(thread) = self.thread.take() {
            // `stop` resolves on the server's own runtime; a small one drives it here.
            let handle = self.handle.clone();
            let _ = std::thread::spawn(move || {
                actix_web::rt::System::new().block_on(handle.stop(true));
            })
            .join();
            let _ = thread.join();
        }
    }
}

impl Drop for AdminHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Mounts the admin endpoints on an application, behind `policy`: `/metrics`, the
/// probes (readiness and start-up when `health` is given), and `/debug/pprof/*`.
///
/// ```
/// use actix_web::App;
/// use observe_runtime::admin::{AccessPolicy, configure};
/// let app = App::new().configure(configure(AccessPolicy::loopback_only(), false, None));
/// # drop(app);
/// ```
pub fn configure(
    policy: AccessPolicy,
    protect_metrics: bool,
    health: Option<crate::health::Health>,
) -> impl FnOnce(&mut web::ServiceConfig) + Clone {
    move |cfg: &mut web::ServiceConfig| {
        crate::health::configure(health, policy.clone())(cfg);
        let _ = denials();
        let metrics = read_only("/metrics", crate::actix::metrics_handler);
        if protect_metrics {
            cfg.service(metrics.wrap(access(policy.clone())));
        } else {
            cfg.service(metrics);
        }
        cfg.service(
            web::scope("/debug/pprof")
                .wrap(access(policy))
                .service(read_only("/", pprof_index))
                .service(read_only("", pprof_index))
                .service(read_only("/cmdline", pprof_cmdline))
                .service(read_only("/profile", cpu_profile))
                .service(read_only("/flamegraph", cpu_flamegraph))
                .service(read_only("/heap", heap_profile))
                .service(read_only("/threads", thread_stacks))
                .service(read_only("/inflight", inflight_calls))
                .default_service(web::to(pprof_unknown)),
        );
    }
}

/// A resource answering `GET` and `HEAD` (actix routes `HEAD` separately).
fn read_only<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path).route(
        web::route()
            .guard(actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head()))
            .to(handler),
    )
}

/// The profiles this build serves, one line each.
const PROFILES: &[(&str, &str)] = &[
    (
        "cmdline",
        "The command line of this process, arguments separated by NUL bytes.",
    ),
    #[cfg(feature = "pprof")]
    (
        "profile",
        "CPU profile (gzipped profile.proto for go tool pprof). ?seconds=N (default 30), ?frequency=Hz (default 99).",
    ),
    #[cfg(feature = "heap")]
    (
        "heap",
        "Sampled live heap from jemalloc (gzipped profile.proto; read with go tool pprof -symbolize=none).",
    ),
    #[cfg(feature = "pprof")]
    (
        "threads",
        "The stack of every thread of the process, as text (each thread answers a signal).",
    ),
    #[cfg(feature = "inflight")]
    (
        "inflight",
        "Every #[instrumented] call in progress, oldest first, with its elapsed time and trace id.",
    ),
    #[cfg(feature = "pprof")]
    (
        "flamegraph",
        "The same CPU sampling as an SVG flame graph, for a browser. ?seconds=N, ?frequency=Hz.",
    ),
];

/// The longest CPU profile allowed, given to the handlers.
#[derive(Clone, Copy, Debug)]
struct ProfileLimit(u64);

fn limit(req: &HttpRequest) -> u64 {
    req.app_data::<web::Data<ProfileLimit>>()
        .map_or(DEFAULT_MAX_PROFILE_SECONDS, |l| l.0)
}

#[cfg(feature = "pprof")]
async fn cpu_profile(req: HttpRequest) -> HttpResponse {
    let max = limit(&req);
    pprof::profile(req, max).await
}

#[cfg(feature = "pprof")]
async fn cpu_flamegraph(req: HttpRequest) -> HttpResponse {
    let max = limit(&req);
    pprof::flamegraph(req, max).await
}

#[cfg(not(feature = "pprof"))]
async fn cpu_profile(req: HttpRequest) -> HttpResponse {
    let _ = limit(&req);
    HttpResponse::NotImplemented()
        .content_type("text/plain; charset=utf-8")
        .body("CPU profiling is not in this build: enable the `pprof` feature of observe\n")
}

#[cfg(feature = "heap")]
async fn heap_profile() -> HttpResponse {
    heap::heap().await
}

#[cfg(not(feature = "heap"))]
async fn heap_profile() -> HttpResponse {
    HttpResponse::NotImplemented()
        .content_type("text/plain; charset=utf-8")
        .body(
            "heap profiles are not in this build: enable the `heap` feature of observe, which makes \
             jemalloc the allocator with sampling on (its build takes a few minutes)\n",
        )
}

#[cfg(all(feature = "pprof", target_os = "linux"))]
async fn thread_stacks() -> HttpResponse {
    // Up to 200 ms per thread that does not answer: off the admin worker.
    match web::block(threads::dump).await {
        Ok(text) => HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body(text),
        Err(e) => HttpResponse::InternalServerError()
            .content_type("text/plain; charset=utf-8")
            .body(format!("the thread dump failed: {e}\n")),
    }
}

#[cfg(not(all(feature = "pprof", target_os = "linux")))]
async fn thread_stacks() -> HttpResponse {
    HttpResponse::NotImplemented()
        .content_type("text/plain; charset=utf-8")
        .body(
            "thread stacks are not in this build: enable the `pprof` feature of observe (Linux)\n",
        )
}

#[cfg(feature = "inflight")]
async fn inflight_calls() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(crate::metrics::inflight::render())
}

#[cfg(not(feature = "inflight"))]
async fn inflight_calls() -> HttpResponse {
    HttpResponse::NotImplemented()
        .content_type("text/plain; charset=utf-8")
        .body(
            "in-flight calls are not tracked in this build: enable the `inflight` feature of \
             observe (each #[instrumented] call then claims and releases a slot, about 2 atomic \
             operations)\n",
        )
}

#[cfg(not(feature = "pprof"))]
async fn cpu_flamegraph(req: HttpRequest) -> HttpResponse {
    cpu_profile(req).await
}

async fn pprof_index() -> HttpResponse {
    let mut page = String::from(
        "<!DOCTYPE html>\n<html><head><title>/debug/pprof/</title></head><body>\n\
         <h1>/debug/pprof/</h1>\n<table>\n",
    );
    for (name, about) in PROFILES {
        page.push_str(&format!(
            "<tr><td><a href=\"{name}\">{name}</a></td><td>{about}</td></tr>\n"
        ));
    }
    page.push_str("</table>\n</body></html>\n");
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(page)
}

/// Go's `/debug/pprof/cmdline`: the arguments joined by NUL bytes.
async fn pprof_cmdline() -> HttpResponse {
    let args: Vec<String> = std::env::args().collect();
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body(args.join("\0"))
}

async fn pprof_unknown(req: HttpRequest) -> HttpResponse {
    let known: Vec<&str> = PROFILES.iter().map(|(n, _)| *n).collect();
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body(format!(
            "unknown profile {:?}; this build serves: {}\n",
            req.path(),
            known.join(", ")
        ))
}

// ---- denials, counted ----

struct Denials {
    address: AtomicU64,
    token: AtomicU64,
}

static DENIALS: Denials = Denials {
    address: AtomicU64::new(0),
    token: AtomicU64::new(0),
};

fn denials() -> &'static Denials {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| collector::register(&DENIALS));
    &DENIALS
}

impl Collector for Denials {
    fn collect(&self, out: &mut Exposition<'_>) {
        if out.family(
            "observe_admin_denied_total",
            "counter",
            "Requests to protected admin endpoints refused, by reason (address: 403, token: 401).",
        ) {
            out.sample("", &[("reason", "address")], self.address.load(Relaxed));
            out.sample("", &[("reason", "token")], self.token.load(Relaxed));
        }
    }
}

// ---- gates: middleware that answers a request itself when a rule refuses it ----

/// A rule that may refuse a request with a response of its own.
trait Rule: Clone + 'static {
    fn refuse(&self, req: &ServiceRequest) -> Option<HttpResponse>;
}

/// Middleware applying a [`Rule`] to the endpoints it wraps.
#[derive(Clone)]
struct Gate<R>(R);

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

struct GateService<S, R> {
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
struct Access(AccessPolicy);

fn access(policy: AccessPolicy) -> Gate<Access> {
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
struct ReadOnly;

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
