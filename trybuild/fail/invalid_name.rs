#[observe::instrumented(name = "charge card")]
fn charge() {}

fn main() {}
