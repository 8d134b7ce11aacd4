const TIER: &str = "gold";

#[observe::instrumented(labels(tier = TIER))]
fn charge() {}

fn main() {}
