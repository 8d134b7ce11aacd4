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

/// The business function: its calls, errors and latency are what the service is about.
#[observe::instrumented(err, fields(amount))]
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

fn main() -> std::io::Result<()> {
    observe::build_info!();
    // First: providers, propagator and log subscriber, in that order. Without an OTLP
    // endpoint the service runs offline and spans show in the log output.
    let telemetry = match observe::init().install() {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    actix_web::rt::System::new().block_on(serve())?;
    // Last, after the server has stopped: flush every span still in the batch queue.
    drop(telemetry);
    Ok(())
}

async fn serve() -> std::io::Result<()> {
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
        .server(HttpServer::new(|| {
            App::new()
                // Each route's series at zero from start-up.
                .wrap(observe::Middleware::new().routes(["GET /", "GET /charge/{amount}"]))
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
