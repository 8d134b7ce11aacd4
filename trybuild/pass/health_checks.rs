use observe::health::HealthStatus;

struct Pool;
struct Gateway;

#[observe::health_check(
    critical,
    name = "payments",
    timeout = "750ms",
    interval = "5s",
    failure_threshold = 3,
    success_threshold = 2,
    groups("payments", "sla"),
    depends_on = "database"
)]
async fn payment_gateway(gateway: &Gateway, pool: &Pool) -> Result<(), std::io::Error> {
    let _ = (gateway, pool);
    Ok(())
}

#[observe::health_check(critical, startup)]
async fn database(pool: &Pool) -> Result<HealthStatus, String> {
    let _ = pool;
    Ok(HealthStatus::Pass)
}

/// A plain function: run on the blocking pool.
#[observe::health_check]
fn disk() -> HealthStatus {
    HealthStatus::Degraded("92% full".into())
}

fn main() {
    // The functions stay callable as written.
    let _ = disk();
    let _ = payment_gateway(&Gateway, &Pool);
    let _ = database(&Pool);
}
