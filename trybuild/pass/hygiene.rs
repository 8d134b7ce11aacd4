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

#[observe::instrumented(err)]
fn checked(x: u8) -> core::result::Result<u8, &'static str> {
    if x == 0 { core::result::Result::Err("zero") } else { core::result::Result::Ok(x) }
}

#[observe::instrumented]
async fn later(x: u8) -> u8 {
    x
}

fn main() {
    let _ = checked(1);
    let _ = later(1);
}
