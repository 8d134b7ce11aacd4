//! A/B of the in-process HTTP benchmark, robust to a noisy machine: the bare app and the
//! app wrapped in `observe::Middleware` take turns, in short batches (`BATCH` requests,
//! default 1000) for `ROUNDS` rounds (default 300, at most 60 s in all), in one process.
//! Other tenants' noise only ever adds time, so the low percentiles of the per-batch
//! means are the estimate; the added cost is printed at the minimum, the 10th
//! percentile and the median. Complements criterion's `http` bench, whose means move by
//! ±20 ns from run to run here.

use std::time::{Duration, Instant};

use actix_web::dev::{Service, ServiceResponse};
use actix_web::{App, test, web};

async fn hello() -> &'static str {
    "hello"
}

/// Mean ns per request over one batch.
async fn batch<S, B>(service: &S, n: u64) -> f64
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: actix_web::body::MessageBody,
{
    let took = observe_benches::drive(service, n, observe_benches::hello_request).await;
    took.as_nanos() as f64 / n as f64
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[actix_web::main]
async fn main() {
    let rounds = env("ROUNDS", 300).max(1);
    let n = env("BATCH", 1000).max(1);
    let bare = test::init_service(App::new().route("/hello/{name}", web::get().to(hello))).await;
    let observe = test::init_service(
        App::new()
            .wrap(observe::Middleware::new())
            .route("/hello/{name}", web::get().to(hello)),
    )
    .await;
    // Warm-up: first-use initialisation (the clock's calibration, series registration).
    batch(&bare, n).await;
    batch(&observe, n).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        if Instant::now() > deadline {
            break;
        }
        // Alternate which goes first, so neither always runs after the other.
        if round % 2 == 0 {
            a.push(batch(&bare, n).await);
            b.push(batch(&observe, n).await);
        } else {
            b.push(batch(&observe, n).await);
            a.push(batch(&bare, n).await);
        }
    }
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    println!("{} rounds of {n} requests each", a.len());
    println!("| statistic | bare ns | observe ns | added ns |");
    println!("|---|---:|---:|---:|");
    for (name, p) in [("min", 0.0), ("p10", 0.1), ("median", 0.5)] {
        let (x, y) = (percentile(&a, p), percentile(&b, p));
        println!("| {name} | {x:.0} | {y:.0} | {:.0} |", y - x);
    }
}
