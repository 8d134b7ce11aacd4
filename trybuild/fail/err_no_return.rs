#[observe::instrumented(err)]
fn charge() {}

fn main() {}
