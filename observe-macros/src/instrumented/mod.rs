//! `#[instrumented]`: parse → validate → expand.

mod attr;
mod expand;
mod span;
mod statics;
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
    let Some(function) = parse_function(item.clone())? else {
        // Not readable as an item (a syntax error in the body): hand it back unchanged so
        // rustc reports the error in the user's own code.
        return Ok(item);
    };
    let args = attr::parse(args)?;
    valid::check(&args, &function)?;
    Ok(expand::instrumented(&args, &function))
}

/// The item as a function; an error on its first keyword saying what is accepted; or
/// `None` when the tokens are not an item at all.
fn parse_function(item: TokenStream) -> syn::Result<Option<syn::ItemFn>> {
    if let Ok(method) = syn::parse2::<syn::TraitItemFn>(item.clone())
        && method.default.is_none()
    {
        return Err(syn::Error::new(
            method.sig.fn_token.span,
            "`#[instrumented]` needs a function body: put it on the implementations of \
             this trait method, or give the method a default body",
        ));
    }
    match syn::parse2::<syn::Item>(item) {
        Ok(syn::Item::Fn(function)) => Ok(Some(function)),
        Ok(other) => Err(syn::Error::new(
            first_keyword_span(&other),
            "`#[instrumented]` applies only to functions (free functions, methods, `async fn`)",
        )),
        Err(_) => Ok(None),
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
