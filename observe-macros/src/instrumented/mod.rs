//! `#[instrumented]`: parse → validate → expand.

mod attr;
mod expand;
mod valid;

use proc_macro2::TokenStream;

use crate::common::fallback;

/// Expands `#[instrumented(args)] item`; on any error, the errors plus the item unchanged.
pub fn instrumented(args: TokenStream, item: TokenStream) -> TokenStream {
    match try_expand(args, item.clone()) {
        Ok(tokens) => tokens,
        Err(error) => fallback::item_with_error(error, item),
    }
}

fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let function = parse_function(item)?;
    let args = attr::parse(args)?;
    valid::check(&args, &function)?;
    Ok(expand::instrumented(&args, &function))
}

/// The item as a function, or an error on its first keyword saying what is accepted.
fn parse_function(item: TokenStream) -> syn::Result<syn::ItemFn> {
    match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Fn(function)) => Ok(function),
        Ok(other) => Err(syn::Error::new(
            first_keyword_span(&other),
            "`#[instrumented]` applies only to functions (free functions, methods, `async fn`)",
        )),
        // A trait method without a body, or something syn cannot read as an item.
        Err(_) => match syn::parse2::<syn::TraitItemFn>(item) {
            Ok(method) if method.default.is_none() => Err(syn::Error::new(
                method.sig.fn_token.span,
                "`#[instrumented]` needs a function body; put it on the implementations",
            )),
            // Let rustc report the syntax error in the user's own code.
            _ => Err(syn::Error::new(
                proc_macro2::Span::call_site(),
                "`#[instrumented]` applies only to functions",
            )),
        },
    }
}

fn first_keyword_span(item: &syn::Item) -> proc_macro2::Span {
    use syn::spanned::Spanned;
    match item {
        syn::Item::Struct(i) => i.struct_token.span,
        syn::Item::Enum(i) => i.enum_token.span,
        syn::Item::Impl(i) => i.impl_token.span,
        syn::Item::Trait(i) => i.trait_token.span,
        syn::Item::Mod(i) => i.mod_token.span,
        syn::Item::Static(i) => i.static_token.span,
        syn::Item::Const(i) => i.const_token.span,
        syn::Item::Type(i) => i.type_token.span,
        syn::Item::Use(i) => i.use_token.span,
        other => other.span(),
    }
}
