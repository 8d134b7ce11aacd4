#[observe::instrumented]
struct Charge {
    amount: u64,
}

fn main() {}
