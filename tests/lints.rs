//! The expansion is clean under strict lints: `cargo clippy --all-targets -D warnings`
//! checks this file with `clippy::pedantic` on, and rustc the rest.
#![deny(
    unused_qualifications,
    dead_code,
    unused,
    missing_docs,
    clippy::pedantic
)]

use std::future::Future;

/// A documented function.
#[observe::instrumented]
pub fn documented(x: u32) -> u32 {
    x.wrapping_add(1)
}

/// A documented fallible function.
///
/// # Errors
/// When `x` is zero.
#[observe::instrumented(err, fields(x), labels(tier = "gold"))]
pub fn fallible(x: u32) -> Result<u32, String> {
    if x == 0 {
        return Err("zero".to_owned());
    }
    Ok(x)
}

/// A documented async function.
#[observe::instrumented(level = "debug")]
pub async fn later(x: u32) -> u32 {
    x
}

/// A documented async function with the default span that never awaits (run in place).
///
/// # Errors
/// When `x` is zero.
#[observe::instrumented]
pub async fn traced_now(x: u32) -> Result<u32, String> {
    if x == 0 { Err(String::new()) } else { Ok(x) }
}

/// A documented future-returning function.
#[observe::instrumented(span = false)]
pub fn future(x: u32) -> impl Future<Output = u32> + Send {
    async move { x }
}

/// A documented async function without a span, its body run in place.
#[observe::instrumented(span = false)]
pub async fn untraced_later(x: u32) -> u32 {
    x + 1
}

/// A documented async function without a span whose body may leave early.
///
/// # Errors
/// When `s` is not a number.
#[observe::instrumented(span = false)]
pub async fn untraced_parse(s: String) -> Result<u32, std::num::ParseIntError> {
    let n: u32 = s.parse()?;
    Ok(n)
}

/// A documented function whose `?` and `return` break out of its body, run in place.
///
/// # Errors
/// When an item is not a number.
#[observe::instrumented(span = false)]
pub fn summed(items: &[&str]) -> Result<u32, std::num::ParseIntError> {
    let mut sum = 0u32;
    for item in items {
        if item.is_empty() {
            return Ok(sum);
        }
        sum = sum.wrapping_add(item.parse::<u32>()?);
    }
    Ok(sum)
}

/// The same with the default span.
///
/// # Errors
/// When `s` is not a number.
#[observe::instrumented]
pub fn parsed(s: &str) -> Result<u32, std::num::ParseIntError> {
    let n: u32 = s.trim().parse()?;
    Ok(n)
}

/// A documented method.
pub struct Thing;

impl Thing {
    /// A documented method.
    #[observe::instrumented(metrics = false)]
    #[must_use]
    pub fn method(&self) -> u32 {
        1
    }
}

#[test]
fn strictly_linted_expansion_runs() {
    assert_eq!(documented(1), 2);
    assert_eq!(fallible(1), Ok(1));
    assert!(fallible(0).is_err());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(later(3)), 3);
    assert_eq!(rt.block_on(traced_now(3)), Ok(3));
    assert_eq!(rt.block_on(future(4)), 4);
    assert_eq!(rt.block_on(untraced_later(4)), 5);
    assert_eq!(rt.block_on(untraced_parse("6".to_owned())), Ok(6));
    assert_eq!(Thing.method(), 1);
}
