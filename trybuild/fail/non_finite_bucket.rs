#[observe::instrumented(buckets = [0.1, 1e999])]
fn charge() {}

fn main() {}
