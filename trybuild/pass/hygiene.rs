#![allow(dead_code)]
// Shadow every prelude name the expansion could lean on.
struct Result;
struct Ok;
struct Err;
struct Option;
struct Some;
struct None;
struct Box;
struct String;
fn drop() {}
// Names a pattern in the expansion would match against instead of binding.
#[allow(non_upper_case_globals)]
const v: u8 = 0;
#[allow(non_camel_case_types)]
struct r;

#[observe::instrumented(err)]
fn checked(x: u8) -> core::result::Result<u8, &'static str> {
    if x == 0 { core::result::Result::Err("zero") } else { core::result::Result::Ok(x) }
}

// A `?` and a `return`, rewritten into a `break` out of the body's block.
#[observe::instrumented(span = false)]
fn parsed(s: &str) -> core::result::Result<u8, core::num::ParseIntError> {
    if s.is_empty() {
        return core::result::Result::Ok(0);
    }
    let n: u8 = s.parse()?;
    core::result::Result::Ok(n)
}

#[observe::instrumented]
async fn later(x: u8) -> u8 {
    x
}

fn main() {
    let _ = checked(1);
    let _ = parsed("1");
    let _ = later(1);
}
