// Every independent mistake is reported in one compile.
#[observe::instrumented(name = "a b", buckets = [2.0, 1.0], labels(le = "x"))]
fn charge() {}

fn main() {}
