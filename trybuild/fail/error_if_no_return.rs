fn never(_: &()) -> bool {
    false
}

#[observe::instrumented(error_if = never)]
fn charge() {}

fn main() {}
