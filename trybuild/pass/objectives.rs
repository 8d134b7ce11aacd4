use observe::slo::Objective;

mod objectives {
    pub const CHARGE: observe::slo::Objective = observe::slo::Objective::new("charge")
        .success_rate(99.9)
        .latency(0.25, 99.0);
}

const REFUND: Objective = Objective::new("refund").latency(0.5, 95.0);

#[observe::instrumented(objective = objectives::CHARGE)]
async fn charge(amount: u64) -> Result<u64, String> {
    Ok(amount)
}

#[observe::instrumented(objective = REFUND, buckets = [0.1, 0.5, 1.0], labels(kind = "refund"))]
fn refund() {}

struct Gateway;

impl Gateway {
    #[observe::instrumented(objective = objectives::CHARGE, name = "charge")]
    fn charge_sync(&self, amount: u64) -> Result<u64, String> {
        Ok(amount)
    }
}

fn main() {
    let _ = charge(1);
    refund();
    let _ = Gateway.charge_sync(2);
    let all = observe::slo::objectives();
    assert_eq!(all.len(), 2, "{all:?}");
}
