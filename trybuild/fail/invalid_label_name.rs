#[observe::instrumented(labels("tier-x" = "gold"))]
fn charge() {}

fn main() {}
