//! The quickstart service: a few instrumented handlers, the HTTP middleware, `/metrics`
//! on the application, and the admin server, everything on, nothing else needed.
//!
//! ```sh
//! cargo run --example quickstart   # APP_ADDR defaults to 127.0.0.1:8080,
//!                                  # OBSERVE_ADMIN_ADDR to 0.0.0.0:6060
//! curl localhost:8080/charge/42
//! curl localhost:8080/metrics
//! curl localhost:6060/livez
//! curl localhost:6060/readyz?verbose
//! curl localhost:6060/debug/pprof/
//! curl localhost:6060/debug/observe/            # the status page (open it in a browser)
//! curl localhost:6060/debug/observe/rules.yml   # alerting rules for the objectives
//! cargo run --example quickstart -- --observe-print dashboard > dashboard.json
//! ```

use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, Responder, get, web};

/// Why a charge was refused.
#[derive(Debug)]
enum PayError {
    /// Amounts must be positive.
    Empty,
    /// Above the single-charge limit.
    TooLarge(u64),
}

impl std::fmt::Display for PayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PayError::Empty => write!(f, "nothing to charge"),
            PayError::TooLarge(amount) => write!(f, "{amount} is above the limit"),
        }
    }
}

/// What the business promises about charges: 99.9 % succeed, 99 % within 250 ms.
const CHARGES: observe::slo::Objective = observe::slo::Objective::new("charges")
    .success_rate(99.9)
    .latency(0.25, 99.0);

/// What the charge endpoint promises its callers: 99.5 % without a server error, 95 %
/// within 100 ms.
const CHARGE_API: observe::slo::Objective = observe::slo::Objective::new("charge-api")
    .success_rate(99.5)
    .latency(0.1, 95.0);

/// The business function: its calls, errors and latency are what the service is about.
#[observe::instrumented(err, fields(amount), objective = CHARGES)]
async fn charge(amount: u64) -> Result<u64, PayError> {
    if amount == 0 {
        return Err(PayError::Empty);
    }
    if amount > 10_000 {
        return Err(PayError::TooLarge(amount));
    }
    // Talk to the payment gateway.
    tokio::time::sleep(Duration::from_millis(amount % 20)).await;
    Ok(amount)
}

#[get("/charge/{amount}")]
#[observe::instrumented]
async fn charge_handler(amount: web::Path<u64>) -> HttpResponse {
    match charge(amount.into_inner()).await {
        Ok(receipt) => HttpResponse::Ok().body(format!("charged {receipt}\n")),
        Err(e) => HttpResponse::UnprocessableEntity().body(format!("{e}\n")),
    }
}

#[get("/")]
#[observe::instrumented]
async fn index() -> impl Responder {
    "observe quickstart: try /charge/42, /charge/0 and /metrics\n"
}

/// Readiness: the quickstart has no dependencies, so it checks its own disk.
#[observe::health_check(critical, interval = "10s")]
fn disk() -> observe::health::HealthStatus {
    observe::health::checks::disk_free("/", 50 << 20, 500 << 20)
}

/// The HTTP middleware: each route's series at zero from start-up, and the charge
/// endpoint's objective.
fn middleware() -> observe::Middleware {
    observe::Middleware::new()
        .routes(["GET /", "GET /charge/{amount}"])
        .objective("GET /charge/{amount}", CHARGE_API)
}

fn main() -> std::io::Result<()> {
    observe::build_info!();
    // `--observe-print rules` / `--observe-print dashboard`: the generated Prometheus rules
    // or Grafana dashboard on stdout, then exit (once every objective is attached).
    let middleware = middleware();
    if observe::slo::print_requested() {
        return Ok(());
    }
    // First: providers, propagator and log subscriber, in that order. Without an OTLP
    // endpoint the service runs offline and spans show in the log output.
    let telemetry = match observe::init().install() {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    actix_web::rt::System::new().block_on(serve(middleware))?;
    // Last, after the server has stopped: flush every span still in the batch queue.
    drop(telemetry);
    Ok(())
}

async fn serve(middleware: observe::Middleware) -> std::io::Result<()> {
    let health = observe::health::Health::builder()
        .build()
        .unwrap_or_else(|errors| {
            for e in errors {
                eprintln!("error: {e}");
            }
            std::process::exit(1);
        });
    health.start_background();
    observe::metrics::init();
    if let Err(conflicts) = observe::registry::validate() {
        for conflict in conflicts {
            eprintln!("error: {conflict}");
        }
        std::process::exit(1);
    }
    // The admin server: probes, scrapes and profiles on a port and worker of their own.
    let admin = match observe::admin::AdminServer::from_env() {
        Ok(settings) => settings.health(health.clone()).start()?,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let addr = std::env::var("APP_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    // Ctrl-C / SIGTERM: readiness fails at once, requests drain, then the server stops.
    let shutdown = observe::health::Shutdown::new(health.clone())
        .drain(Duration::from_secs(1))
        .graceful_timeout(Duration::from_secs(5));
    let server = shutdown
        .server(HttpServer::new(move || {
            App::new()
                .wrap(middleware.clone())
                .wrap(observe::metrics::WorkerMetrics)
                .service(index)
                .service(charge_handler)
                .configure(observe::metrics::configure)
        }))
        .workers(2)
        .bind(&addr)?;
    for bound in server.addrs() {
        println!("quickstart listening on http://{bound} (metrics: http://{bound}/metrics)");
    }
    health.mark_started();
    shutdown.run(server.run()).await?;
    admin.stop();
    Ok(())
}
