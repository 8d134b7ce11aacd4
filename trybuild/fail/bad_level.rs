#[observe::instrumented(level = "verbose")]
fn charge() {}

fn main() {}
