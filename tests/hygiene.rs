//! The expansion names everything by absolute path: a crate that defines its own
//! `Result`, `Ok`, `Err`, `Option`, `Some`, `None`, `Box`, `drop`, `core` and `std`-like
//! items still compiles and behaves.
#![allow(dead_code, non_camel_case_types, non_snake_case)]

mod common;

struct Result;
struct Ok;
struct Err;
struct Option;
struct Some;
struct None;
struct Box;
struct String;
struct Vec;
struct Future;
struct Send;
fn drop() {}
mod observe_shadow {}

type Res<T> = core::result::Result<T, &'static str>;

#[observe::instrumented(err)]
fn checked(x: u8) -> Res<u8> {
    if x == 0 {
        return core::result::Result::Err("zero");
    }
    core::result::Result::Ok(x)
}

#[observe::instrumented(err, fields(x))]
async fn checked_async(x: u8) -> Res<u8> {
    checked(x)
}

fn is_odd(x: &u8) -> bool {
    x % 2 == 1
}

#[observe::instrumented(error_if = is_odd)]
fn plain(x: u8) -> u8 {
    x
}

#[observe::instrumented]
fn returns_future(x: u8) -> impl core::future::Future<Output = u8> {
    async move { x }
}

#[test]
fn shadowed_prelude_names_do_not_break_the_expansion() {
    assert!(checked(0).is_err());
    assert!(checked(1).is_ok());
    assert_eq!(plain(3), 3);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert!(rt.block_on(checked_async(2)).is_ok());
    assert_eq!(rt.block_on(returns_future(4)), 4);
    assert_eq!(common::calls("checked", "error"), 1.0);
    assert_eq!(common::calls("checked", "ok"), 2.0);
    assert_eq!(common::calls("plain", "error"), 1.0);
    assert_eq!(common::calls("returns_future", "ok"), 1.0);
}
