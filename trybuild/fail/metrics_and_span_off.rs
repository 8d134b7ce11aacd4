#[observe::instrumented(metrics = false, span = false)]
fn charge() {}

fn main() {}
