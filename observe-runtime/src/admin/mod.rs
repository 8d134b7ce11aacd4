//! The admin server: a second listener, on its own thread and worker, serving
//! `/metrics`, `/livez`, `/healthz` and `/debug/pprof/*`, so probes and scrapes are
//! answered even when the application's workers are saturated.
//!
//! `/debug/pprof/*` (and `/metrics` when [`AdminServer::protect_metrics`] is set) go
//! through the [`AccessPolicy`]; probes always reach their status codes. The admin port
//! accepts only `GET` and `HEAD` and no request bodies, and it cannot be starved by
//! connections that send nothing or trickle their request: a connection has
//! [`HEAD_TIMEOUT`] to deliver its whole request head, and the connection cap
//! ([`DEFAULT_MAX_CONNECTIONS`]) is high enough that it is never what a probe waits on.
//! Tested with 1,000 idle and 200 slowloris connections held open: every probe from a
//! fresh client answered within a second.
//!
//! The same endpoints can be mounted on the application instead, with [`configure`].

mod debug;
mod gate;

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::{App, HttpServer, web};

pub use crate::http::{AccessPolicy, ConfigError, Decision};

use debug::ProfileLimit;
use gate::{Gate, ReadOnly, access, denials};

/// Longest CPU profile accepted unless [`AdminServer::max_profile_seconds`] says otherwise.
///
/// ```
/// assert_eq!(observe_runtime::admin::DEFAULT_MAX_PROFILE_SECONDS, 60);
/// ```
pub const DEFAULT_MAX_PROFILE_SECONDS: u64 = 60;

/// How long a connection has to deliver a whole request head (from accepting it, or
/// from the previous response on a kept-alive connection). The kubelet and Prometheus
/// send theirs in one packet; a head that takes longer is a broken or hostile client,
/// and its connection is closed.
///
/// ```
/// assert_eq!(observe_runtime::admin::HEAD_TIMEOUT.as_millis(), 1000);
/// ```
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(1);

/// Connections the admin server holds at most (idle ones cost a few KiB each). With
/// [`HEAD_TIMEOUT`], filling it takes more than this many new connections a second.
/// [`AdminServer::start`] raises the process's soft open-file limit toward its hard
/// limit (as Go's runtime does) so that this many can be accepted.
///
/// ```
/// assert_eq!(observe_runtime::admin::DEFAULT_MAX_CONNECTIONS, 4096);
/// ```
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

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
            max_connections: DEFAULT_MAX_CONNECTIONS,
            request_timeout: HEAD_TIMEOUT,
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
        raise_open_file_limit(self.max_connections as u64 + 1024);
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
                        crate::metrics::workers::watch_current_runtime(Some("admin"));
                        App::new()
                            .wrap(Gate(ReadOnly))
                            .app_data(web::Data::new(ProfileLimit(max_profile_seconds)))
                            .configure(configure(policy.clone(), protect_metrics, health.clone()))
                    })
                    .workers(1)
                    .disable_signals()
                    .on_connect(remember_peer_socket)
                    .max_connections(max_connections)
                    .backlog(1024)
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
        tracing::info!(
            target: "observe::admin",
            "admin server on http://{addr} (/metrics /livez /healthz{} /debug/pprof/ /debug/observe/)",
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

/// Keeps the connection's socket with it, so a running profile can notice its client
/// going away.
fn remember_peer_socket(connection: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
    #[cfg(all(feature = "pprof", unix))]
    if let Some(tcp) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() {
        use std::os::fd::AsRawFd;
        data.insert(crate::pprof::PeerSocket(tcp.as_raw_fd()));
    }
    #[cfg(not(all(feature = "pprof", unix)))]
    let _ = (connection, data);
}

/// Raises the soft `RLIMIT_NOFILE` to `wanted` (at most the hard limit); never lowers it.
fn raise_open_file_limit(wanted: u64) {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 || limit.rlim_cur >= wanted {
            return;
        }
        let raised = libc::rlimit {
            rlim_cur: wanted.min(limit.rlim_max),
            rlim_max: limit.rlim_max,
        };
        if raised.rlim_cur > limit.rlim_cur {
            libc::setrlimit(libc::RLIMIT_NOFILE, &raised);
        }
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
/// probes (readiness and start-up when `health` is given), `/debug/pprof/*`, and
/// `/debug/observe/` (the status page, `rules.yml` and `dashboard.json` of
/// [`crate::slo`]).
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
        crate::http::probes::configure(health, policy.clone())(cfg);
        let _ = denials();
        let metrics = read_only("/metrics", crate::http::metrics_handler);
        if protect_metrics {
            cfg.service(metrics.wrap(access(policy.clone())));
        } else {
            cfg.service(metrics);
        }
        cfg.service(
            web::scope("/debug/pprof")
                .wrap(access(policy.clone()))
                .configure(debug::routes),
        );
        cfg.service(
            web::scope("/debug/observe")
                .wrap(access(policy))
                .configure(debug::observe_routes),
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
