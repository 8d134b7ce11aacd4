#[observe::instrumented(buckets = [])]
fn charge() {}

fn main() {}
