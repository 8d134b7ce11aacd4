#[observe::instrumented(labels(__name__ = "x"))]
fn charge() {}

fn main() {}
