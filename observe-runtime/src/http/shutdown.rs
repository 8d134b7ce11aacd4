//! Phased graceful shutdown, in the Kubernetes apiserver's order (feature `actix`).
//!
//! actix-web stops accepting connections the moment SIGTERM arrives, while endpoints
//! controllers and load balancers still send traffic until readiness has failed for a
//! probe period or more. So, on SIGTERM or SIGINT:
//!
//! 1. `/readyz` turns 503 (`[-]shutdown failed: shutting down`) at once; `/livez` stays
//!    200, so the kubelet does not kill the pod early;
//! 2. the application keeps serving new and in-flight requests for the drain delay
//!    (default: readiness period × failure threshold + 1 s);
//! 3. actix stops gracefully (in-flight requests finish within the graceful timeout);
//! 4. flush hooks (telemetry) run last.
//!
//! Pass the server through [`Shutdown::server`]: it turns actix's own signal handling off
//! (or actix would stop at SIGTERM, before the drain) and sets actix's shutdown timeout
//! from [`Shutdown::graceful_timeout`], so the two values cannot disagree.

use std::fmt;
use std::future::Future;
use std::io;
use std::time::Duration;

use crate::health::Health;

/// Set when a [`Shutdown`] begins its drain: observe's middleware then answers with
/// `Connection: close`.
pub(crate) static DRAINING: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

type Hook = Box<dyn FnOnce() + Send>;

/// The shutdown sequence; [`run`](Shutdown::run) serves until a signal, then drains.
///
/// ```no_run
/// # async fn demo(health: observe_runtime::health::Health) -> std::io::Result<()> {
/// use std::time::Duration;
/// let shutdown = observe_runtime::http::Shutdown::new(health)
///     .readiness_probe(Duration::from_secs(5), 1)
///     .graceful_timeout(Duration::from_secs(10))
///     .termination_grace_period(Duration::from_secs(30));
/// let server = shutdown
///     .server(actix_web::HttpServer::new(|| actix_web::App::new()))
///     .bind("127.0.0.1:8080")?
///     .run();
/// shutdown.run(server).await
/// # }
/// ```
pub struct Shutdown {
    health: Health,
    readiness_period: Duration,
    failure_threshold: u32,
    drain: Option<Duration>,
    graceful: Duration,
    grace: Option<Duration>,
    hooks: Vec<Hook>,
}

impl fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shutdown")
            .field("drain", &self.drain_delay())
            .field("graceful", &self.graceful)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

/// Kubernetes' default `periodSeconds` for probes.
///
/// ```
/// assert_eq!(observe_runtime::http::DEFAULT_READINESS_PERIOD.as_secs(), 10);
/// ```
pub const DEFAULT_READINESS_PERIOD: Duration = Duration::from_secs(10);
/// The default graceful timeout: actix-web's own default `shutdown_timeout`.
///
/// ```
/// assert_eq!(observe_runtime::http::DEFAULT_GRACEFUL_TIMEOUT.as_secs(), 30);
/// ```
pub const DEFAULT_GRACEFUL_TIMEOUT: Duration = Duration::from_secs(30);

impl Shutdown {
    /// The sequence for this health engine, with Kubernetes' defaults (readiness every
    /// 10 s, failure threshold 1).
    ///
    /// ```
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// use std::time::Duration;
    /// use observe_runtime::http::Shutdown;
    /// assert_eq!(Shutdown::new(health).drain_delay(), Duration::from_secs(11));
    /// ```
    pub fn new(health: Health) -> Self {
        Shutdown {
            health,
            readiness_period: DEFAULT_READINESS_PERIOD,
            failure_threshold: 1,
            drain: None,
            graceful: DEFAULT_GRACEFUL_TIMEOUT,
            grace: None,
            hooks: Vec::new(),
        }
    }

    /// The readiness probe's `periodSeconds` and `failureThreshold`, from which the drain
    /// delay is derived: after that long, every caller has seen readiness fail.
    ///
    /// ```
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// use std::time::Duration;
    /// use observe_runtime::http::Shutdown;
    /// let s = Shutdown::new(health).readiness_probe(Duration::from_secs(5), 2);
    /// assert_eq!(s.drain_delay(), Duration::from_secs(11));
    /// ```
    pub fn readiness_probe(mut self, period: Duration, failure_threshold: u32) -> Self {
        self.readiness_period = period;
        self.failure_threshold = failure_threshold.max(1);
        self
    }

    /// Overrides the derived drain delay.
    ///
    /// ```
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// use std::time::Duration;
    /// use observe_runtime::http::Shutdown;
    /// let s = Shutdown::new(health).drain(Duration::from_secs(3));
    /// assert_eq!(s.drain_delay(), Duration::from_secs(3));
    /// ```
    pub fn drain(mut self, delay: Duration) -> Self {
        self.drain = Some(delay);
        self
    }

    /// How long in-flight requests may take to finish once the drain is over (default
    /// 30 s); [`server`](Self::server) gives it to actix as its shutdown timeout, in whole
    /// seconds (rounded up).
    ///
    /// ```
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// use std::time::Duration;
    /// use observe_runtime::http::Shutdown;
    /// let s = Shutdown::new(health).drain(Duration::ZERO).graceful_timeout(Duration::from_secs(5));
    /// assert_eq!(s.total(), Duration::from_secs(5));
    /// ```
    pub fn graceful_timeout(mut self, timeout: Duration) -> Self {
        self.graceful = timeout;
        self
    }

    /// The server, made ready for this sequence: actix's signal handling off (observe's
    /// [`run`](Self::run) handles SIGTERM and SIGINT) and its shutdown timeout set from
    /// [`graceful_timeout`](Self::graceful_timeout).
    ///
    /// ```
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// use std::time::Duration;
    /// let shutdown = observe_runtime::http::Shutdown::new(health).graceful_timeout(Duration::from_secs(5));
    /// let server = shutdown.server(actix_web::HttpServer::new(|| actix_web::App::new()));
    /// # drop(server);
    /// ```
    pub fn server<F, I, S, B>(
        &self,
        server: actix_web::HttpServer<F, I, S, B>,
    ) -> actix_web::HttpServer<F, I, S, B>
    where
        F: Fn() -> I + Send + Clone + 'static,
        I: actix_service::IntoServiceFactory<S, actix_http::Request>,
        S: actix_service::ServiceFactory<actix_http::Request, Config = actix_web::dev::AppConfig>
            + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: fmt::Debug,
        S::Response: Into<actix_http::Response<B>> + 'static,
        <S::Service as actix_service::Service<actix_http::Request>>::Future: 'static,
        S::Service: 'static,
        B: actix_web::body::MessageBody + 'static,
    {
        let secs = self.graceful.as_secs() + u64::from(self.graceful.subsec_nanos() > 0);
        server.disable_signals().shutdown_timeout(secs)
    }

    /// The pod's `terminationGracePeriodSeconds`: [`run`](Self::run) warns at start when
    /// drain + graceful timeout exceeds it (the kubelet would SIGKILL first).
    ///
    /// ```
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// use std::time::Duration;
    /// use observe_runtime::http::Shutdown;
    /// let s = Shutdown::new(health).termination_grace_period(Duration::from_secs(10));
    /// assert!(s.check().is_some()); // 11 s drain + 30 s graceful > 10 s
    /// ```
    pub fn termination_grace_period(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
        self
    }

    /// Runs after the server has stopped, in order: flush telemetry here.
    ///
    /// ```
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// use std::time::Duration;
    /// use observe_runtime::http::Shutdown;
    /// let s = Shutdown::new(health).on_stopped(|| println!("flushing telemetry"));
    /// # drop(s);
    /// ```
    pub fn on_stopped(mut self, hook: impl FnOnce() + Send + 'static) -> Self {
        self.hooks.push(Box::new(hook));
        self
    }

    /// The drain delay in effect.
    ///
    /// ```
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// use std::time::Duration;
    /// use observe_runtime::http::Shutdown;
    /// assert_eq!(Shutdown::new(health).drain_delay(), Duration::from_secs(11));
    /// ```
    pub fn drain_delay(&self) -> Duration {
        self.drain
            .unwrap_or(self.readiness_period * self.failure_threshold + Duration::from_secs(1))
    }

    /// The time the whole sequence may take: drain plus graceful timeout.
    ///
    /// ```
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// use std::time::Duration;
    /// use observe_runtime::http::Shutdown;
    /// assert_eq!(Shutdown::new(health).total(), Duration::from_secs(41));
    /// ```
    pub fn total(&self) -> Duration {
        self.drain_delay() + self.graceful
    }

    /// A warning when the sequence cannot fit in the termination grace period.
    ///
    /// ```
    /// # let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// use std::time::Duration;
    /// use observe_runtime::http::Shutdown;
    /// assert_eq!(Shutdown::new(health).check(), None); // no grace period given
    /// ```
    pub fn check(&self) -> Option<String> {
        let grace = self.grace?;
        (self.total() > grace).then(|| {
            format!(
                "shutdown needs up to {:?} (drain {:?} + graceful timeout {:?}), more than \
                 the termination grace period of {:?}: the kubelet will kill the process first",
                self.total(),
                self.drain_delay(),
                self.graceful,
                grace
            )
        })
    }

    /// The probe and termination settings of a Kubernetes container spec, computed from
    /// this configuration so the manifest and the application cannot drift: the admin
    /// port, `timeoutSeconds` above the probe budget, the readiness period and failure
    /// threshold the drain was derived from, and a `terminationGracePeriodSeconds` that
    /// covers drain + graceful timeout + [`DEFAULT_FLUSH_TIMEOUT`](crate::health::DEFAULT_FLUSH_TIMEOUT) + 2 s. No `preStop` hook is needed: the drain
    /// happens in the process after SIGTERM, which also works in images without a shell.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let health = observe_runtime::health::Health::builder().checks(vec![]).build().unwrap();
    /// let yaml = observe_runtime::http::Shutdown::new(health)
    ///     .readiness_probe(Duration::from_secs(5), 2)
    ///     .graceful_timeout(Duration::from_secs(10))
    ///     .kubernetes_probes(6060);
    /// assert!(yaml.contains("terminationGracePeriodSeconds: 28"));
    /// ```
    pub fn kubernetes_probes(&self, admin_port: u16) -> String {
        let secs = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
        // Above the budget: the probe always gets its answer before the kubelet gives up.
        let timeout = secs(self.health.budget()) + 1;
        let period = secs(self.readiness_period).max(1);
        // Drain, graceful stop, the telemetry flush budget, and 2 s to exit.
        let grace = secs(self.total()) + secs(crate::health::DEFAULT_FLUSH_TIMEOUT) + 2;
        format!(
            "# Generated by observe::health::Shutdown::kubernetes_probes: probe budget {budget:?},\n\
             # drain {drain:?}, graceful timeout {graceful:?}.\n\
             terminationGracePeriodSeconds: {grace}\n\
             containers:\n\
             \x20 - name: app\n\
             \x20   ports:\n\
             \x20     - name: admin\n\
             \x20       containerPort: {admin_port}\n\
             \x20   startupProbe:\n\
             \x20     httpGet: {{ path: /startupz, port: admin }}\n\
             \x20     periodSeconds: 2\n\
             \x20     timeoutSeconds: {timeout}\n\
             \x20     failureThreshold: 60\n\
             \x20   livenessProbe:\n\
             \x20     httpGet: {{ path: /livez, port: admin }}\n\
             \x20     periodSeconds: 10\n\
             \x20     timeoutSeconds: {timeout}\n\
             \x20     failureThreshold: 3\n\
             \x20   readinessProbe:\n\
             \x20     httpGet: {{ path: /readyz, port: admin }}\n\
             \x20     periodSeconds: {period}\n\
             \x20     timeoutSeconds: {timeout}\n\
             \x20     failureThreshold: {threshold}\n",
            budget = self.health.budget(),
            drain = self.drain_delay(),
            graceful = self.graceful,
            threshold = self.failure_threshold,
        )
    }

    /// Serves until SIGTERM or SIGINT, then runs the sequence. Returns the server's result.
    ///
    /// ```
    /// # async fn demo(health: observe_runtime::health::Health, server: actix_web::dev::Server) -> std::io::Result<()> {
    /// observe_runtime::http::Shutdown::new(health).run(server).await
    /// # }
    /// ```
    pub async fn run(self, server: actix_web::dev::Server) -> io::Result<()> {
        if let Some(warning) = self.check() {
            tracing::warn!(target: "observe::health", "{warning}");
        }
        let handle = server.handle();
        let mut server = std::pin::pin!(server);
        let signal = wait_for_signal()?;
        let mut signal = std::pin::pin!(signal);
        tokio::select! {
            result = &mut server => return result,
            name = &mut signal => {
                let drain = self.drain_delay();
                self.health.begin_shutdown();
                DRAINING.store(true, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(
                    target: "observe::health",
                    signal = name,
                    ?drain,
                    graceful = ?self.graceful,
                    "{name}: readiness failing; draining, then stopping"
                );
            }
        }
        // The application keeps serving during the drain.
        let drained = tokio::time::sleep(self.drain_delay());
        tokio::select! {
            result = &mut server => {
                self.run_hooks();
                return result;
            }
            () = drained => {}
        }
        let stop = handle.stop(true);
        let (result, ()) = tokio::join!(&mut server, stop);
        self.run_hooks();
        result
    }

    fn run_hooks(self) {
        for hook in self.hooks {
            hook();
        }
    }
}

#[cfg(unix)]
fn wait_for_signal() -> io::Result<impl Future<Output = &'static str>> {
    use actix_web::rt::signal::unix::{SignalKind, signal};
    // Registered now, before serving, so a signal that arrives early is not lost.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    })
}

#[cfg(not(unix))]
fn wait_for_signal() -> io::Result<impl Future<Output = &'static str>> {
    Ok(async {
        let _ = actix_web::rt::signal::ctrl_c().await;
        "Ctrl-C"
    })
}
