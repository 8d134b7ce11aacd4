//! Procedural macros of the [`observe`](https://docs.rs/observe) framework.
//!
//! Use them through `observe` (`#[observe::instrumented]`): the code they generate
//! names only `::observe::__private`, so this crate alone does not compile it.

mod common;
mod health_check;
mod instrumented;

use proc_macro::TokenStream;

/// Instruments a function with static Prometheus metrics and a `tracing` span.
///
/// See the documentation of `observe::instrumented` for the options.
#[proc_macro_attribute]
pub fn instrumented(args: TokenStream, item: TokenStream) -> TokenStream {
    instrumented::instrumented(args.into(), item.into()).into()
}

/// Declares a health check, registered at link time and run by the health engine.
///
/// See the documentation of `observe::health_check` for the options.
#[proc_macro_attribute]
pub fn health_check(args: TokenStream, item: TokenStream) -> TokenStream {
    health_check::health_check(args.into(), item.into()).into()
}
