#[observe::instrumented(buckets = [-1.0, 0, 0.5])]
fn charge() {}

fn main() {}
