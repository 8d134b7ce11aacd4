#[observe::instrumented]
const fn charge() -> u8 {
    1
}

fn main() {}
