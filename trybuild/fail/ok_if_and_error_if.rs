fn yes(_: &u8) -> bool {
    true
}

#[observe::instrumented(ok_if = yes, error_if = yes)]
fn charge() -> u8 {
    1
}

fn main() {}
