//! `#[health_check]`: parse → validate → expand.

mod attr;
mod expand;
mod valid;

use proc_macro2::TokenStream;

use crate::common::fallback;

/// Expands `#[health_check(args)] fn`; on error, the errors plus the function unchanged.
pub fn health_check(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(args, item.clone()) {
        Ok(tokens) => tokens,
        Err(error) => fallback::item_with_error(error, item),
    }
}

fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let function: syn::ItemFn = syn::parse2(item.clone()).map_err(|_| {
        syn::Error::new(
            item.clone()
                .into_iter()
                .next()
                .map_or_else(proc_macro2::Span::call_site, |t| t.span()),
            "`#[health_check]` applies to a free `fn` or `async fn`",
        )
    })?;
    let args: attr::Args = syn::parse2(args)?;
    let state = valid::validate(&args, &function)?;
    Ok(expand::health_check(&args, &function, &state))
}
