#[observe::instrumented(labels(tier = "gold", tier = "silver"))]
fn charge() {}

fn main() {}
