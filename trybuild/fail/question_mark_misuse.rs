// A `?` in a body that runs in place is rustc's own `?`, reported at the `?` as rustc
// reports it: on an `Option` in a function that returns `Result`, and on an error without `From`.
#[derive(Debug)]
pub struct Mine;

#[observe::instrumented]
fn first(items: &[u32]) -> Result<u32, Mine> {
    let x = items.first()?;
    Ok(*x)
}

#[observe::instrumented(span = false)]
fn parse(s: &str) -> Result<u32, Mine> {
    let n: u32 = s.parse()?;
    Ok(n)
}

fn main() {
    let _ = first(&[1]);
    let _ = parse("1");
}
