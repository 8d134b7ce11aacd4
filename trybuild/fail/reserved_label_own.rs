#[observe::instrumented(labels(tier = "gold", result = "ok"))]
fn charge() {}

fn main() {}
