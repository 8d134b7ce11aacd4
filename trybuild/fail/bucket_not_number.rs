#[observe::instrumented(buckets = [0.1, "1s"])]
fn charge() {}

fn main() {}
