//! Pieces shared by the macros.

pub mod duration;
pub mod errors;
pub mod fallback;
pub mod names;
pub mod options;
pub mod types;

/// Generated code written as text, lexed by the compiler in one call. Inside a macro this
/// goes straight to `proc_macro` (proc-macro2 would first re-lex the text with its own
/// lexer, which costs more than quoting the tokens one by one: proc macros run
/// unoptimised in debug builds). The spans are the call site's, as `quote!` gives them.
pub fn lex(text: &str) -> proc_macro2::TokenStream {
    if proc_macro::is_available() {
        text.parse::<proc_macro::TokenStream>()
            .expect("generated code lexes")
            .into()
    } else {
        text.parse().expect("generated code lexes")
    }
}
