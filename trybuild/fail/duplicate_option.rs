#[observe::instrumented(name = "a", level = "info", name = "b")]
fn charge() {}

fn main() {}
