// The same type of one's own, classified with `ok_if`: compiles.
pub enum Result<T> {
    Fine(T),
    Bad,
}

fn fine(r: &Result<u64>) -> bool {
    matches!(r, Result::Fine(_))
}

#[observe::instrumented(ok_if = fine)]
fn lookup(x: u64) -> Result<u64> {
    if x == 0 { Result::Bad } else { Result::Fine(x) }
}

fn main() {
    let _ = lookup(1);
}
