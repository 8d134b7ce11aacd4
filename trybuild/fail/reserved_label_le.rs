#[observe::instrumented(labels(le = "0.5"))]
fn charge() {}

fn main() {}
