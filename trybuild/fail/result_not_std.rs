// A return type named `Result` is classified as `std::result::Result`: a type of one's
// own with that name is reported at the return type, with what to do instead.
pub enum Result<T> {
    Fine(T),
    Bad,
}

#[observe::instrumented]
fn lookup(x: u64) -> Result<u64> {
    if x == 0 { Result::Bad } else { Result::Fine(x) }
}

// The same without a span, in an `async fn`.
#[observe::instrumented(span = false)]
async fn lookup_async(x: u64) -> Result<u64> {
    if x == 0 { Result::Bad } else { Result::Fine(x) }
}

fn main() {
    let _ = lookup(1);
    let _ = lookup_async(1);
}
