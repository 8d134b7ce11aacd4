// One mistake in the attribute is one error: the function is still emitted, so the
// calls below do not add "cannot find function" errors.
#[observe::instrumented(buckets = [1.0, 0.5])]
fn charge(amount: u64) -> u64 {
    amount
}

fn main() {
    let _ = charge(1);
    let _ = charge(2);
}
