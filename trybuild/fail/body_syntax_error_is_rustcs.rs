// A syntax error in the body is reported by rustc, in the user's code, not by the macro.
#[observe::instrumented]
fn charge(amount: u64) -> u64 {
    let x = ;
    amount
}

fn main() {}
