use observe::slo::Objective;

const CHARGE: Objective = Objective::new("charge").success_rate(99.9).latency(0.3, 99.0);

#[observe::instrumented(objective = CHARGE)]
fn charge(amount: u64) -> Result<u64, String> {
    Ok(amount)
}

// With its own buckets, the threshold must be one of them.
const FAST: Objective = Objective::new("fast").latency(0.25, 99.0);

#[observe::instrumented(objective = FAST, buckets = [0.1, 0.5])]
fn fast() {}

fn main() {
    let _ = charge(1);
    fast();
}
