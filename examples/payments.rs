//! A payment service whose readiness needs PostgreSQL (critical), its payment gateway
//! over HTTP (critical: the SLA dependency, not a DB ping) and Redis (non-critical: its
//! loss degrades the service, it does not take it out of rotation).
//!
//! ```sh
//! cargo run --example payments --features postgres
//! DATABASE_URL="host=127.0.0.1 port=5432 user=postgres" REDIS_URL=redis://127.0.0.1:6379 \
//!   GATEWAY_URL=http://127.0.0.1:9000/health cargo run --example payments --features postgres
//! cargo run --example payments --features postgres -- --kubernetes   # print the probe spec
//! curl -s localhost:6060/readyz?verbose
//! ```
//!
//! With nothing running, it starts and `/readyz` says exactly what is down.

use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, post, web};
use observe::health::{Health, Shutdown, checks};

/// Where the dependencies are; registered once, borrowed by the checks.
struct Dependencies {
    database: String,
    redis: String,
    gateway: String,
}

#[observe::health_check(critical, timeout = "500ms", startup)]
async fn database(deps: &Dependencies) -> Result<(), String> {
    checks::postgres_connect(&deps.database).await
}

#[observe::health_check(critical, timeout = "600ms", interval = "2s", success_threshold = 2)]
async fn payment_gateway(deps: &Dependencies) -> Result<(), String> {
    checks::http_get(&deps.gateway).await
}

#[observe::health_check(timeout = "300ms", interval = "2s")]
async fn redis(deps: &Dependencies) -> Result<(), String> {
    checks::redis(&deps.redis).await
}

#[observe::health_check(interval = "30s")]
fn disk() -> observe::health::HealthStatus {
    checks::disk_free("/", 100 << 20, 1 << 30)
}

#[post("/charge/{amount}")]
#[observe::instrumented(err)]
async fn charge(amount: web::Path<u64>) -> Result<HttpResponse, actix_web::Error> {
    let amount = amount.into_inner();
    if amount == 0 {
        return Err(actix_web::error::ErrorUnprocessableEntity(
            "nothing to charge",
        ));
    }
    Ok(HttpResponse::Ok().body(format!("charged {amount}\n")))
}

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    observe::build_info!();
    let health = match Health::builder()
        .state(Dependencies {
            database: env(
                "DATABASE_URL",
                "host=127.0.0.1 port=5432 user=postgres connect_timeout=1",
            ),
            redis: env("REDIS_URL", "redis://127.0.0.1:6379"),
            gateway: env("GATEWAY_URL", "http://127.0.0.1:9000/health"),
        })
        .build()
    {
        Ok(health) => health,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            std::process::exit(1);
        }
    };
    let shutdown = Shutdown::new(health.clone())
        .readiness_probe(Duration::from_secs(5), 1)
        .graceful_timeout(Duration::from_secs(10))
        .termination_grace_period(Duration::from_secs(30));
    let admin_settings = observe::admin::AdminServer::from_env().unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2);
    });
    if std::env::args().any(|a| a == "--kubernetes") {
        print!("{}", shutdown.kubernetes_probes(6060));
        return Ok(());
    }
    health.start_background();
    let admin = admin_settings.health(health.clone()).start()?;
    let addr = env("APP_ADDR", "127.0.0.1:8080");
    let server = shutdown
        .server(HttpServer::new(|| {
            App::new()
                .wrap(observe::Middleware::new().routes(["POST /charge/{amount}"]))
                .service(charge)
        }))
        .bind(&addr)?;
    println!("payments listening on http://{addr}");
    health.mark_started();
    shutdown.run(server.run()).await?;
    admin.stop();
    Ok(())
}
