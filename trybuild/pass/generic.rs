use std::fmt::Display;

#[observe::instrumented]
fn show<T: Display>(value: T) -> String {
    value.to_string()
}

#[observe::instrumented]
fn first<'a, T>(items: &'a [T]) -> Option<&'a T>
where
    T: Clone,
{
    items.first()
}

#[observe::instrumented]
fn pick(flag: bool) -> impl Display {
    if flag { 1 } else { 2 }
}

fn main() {
    assert_eq!(show(1), "1");
    assert_eq!(first(&[1, 2]), Some(&1));
    assert_eq!(pick(true).to_string(), "1");
}
