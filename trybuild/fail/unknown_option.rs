#[observe::instrumented(nmae = "charge")]
fn charge() {}

fn main() {}
