//! What to emit when expansion fails: the errors, and the user's item unchanged, so one
//! mistake in the attribute does not cascade into "cannot find function" errors elsewhere.

use proc_macro2::TokenStream;
use quote::quote;

/// The compile errors followed by the original item.
pub fn item_with_error(error: syn::Error, item: TokenStream) -> TokenStream {
    let error = error.into_compile_error();
    quote! {
        #error
        #item
    }
}
