//! `#[instrumented]`: parse → validate → expand.

mod attr;
mod early;
mod expand;
mod quick;
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

/// A function as `#[instrumented]` reads it: everything but the body parsed, the body
/// kept as tokens (it is copied, never inspected; parsing every statement of every
/// annotated function was most of the macro's own run time).
pub struct Function {
    pub attrs: Vec<syn::Attribute>,
    pub vis: syn::Visibility,
    pub sig: syn::Signature,
    pub block: proc_macro2::Group,
}

/// Attributes, visibility and signature, parsed.
struct Head {
    attrs: Vec<syn::Attribute>,
    vis: syn::Visibility,
    sig: syn::Signature,
}

impl syn::parse::Parse for Head {
    fn parse(input: syn::parse::ParseStream<'_>) -> syn::Result<Self> {
        Ok(Head {
            attrs: input.call(syn::Attribute::parse_outer)?,
            vis: input.parse()?,
            sig: input.parse()?,
        })
    }
}

impl Function {
    /// The function, when `item` ends in a `{ … }` body after a readable head. Only the
    /// head's tokens are walked: the body is passed along as one group.
    fn split(item: TokenStream) -> Option<Function> {
        use proc_macro2::{Delimiter, Group, TokenTree};
        let mut head: Vec<TokenTree> = item.into_iter().collect();
        let mut block = match head.pop()? {
            TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => g,
            _ => return None,
        };
        // Inner attributes at the top of the body (`#![allow(…)]`) become the function's
        // own: the body is moved into a closure or an `async` block, where they are not
        // allowed.
        let starts_with_hash = matches!(
            block.stream().into_iter().next(),
            Some(TokenTree::Punct(p)) if p.as_char() == '#'
        );
        if starts_with_hash {
            let body: Vec<TokenTree> = block.stream().into_iter().collect();
            let mut rest = &body[..];
            while let [
                TokenTree::Punct(hash),
                TokenTree::Punct(bang),
                TokenTree::Group(g),
                tail @ ..,
            ] = rest
                && hash.as_char() == '#'
                && bang.as_char() == '!'
                && g.delimiter() == Delimiter::Bracket
            {
                let attribute: Vec<TokenTree> =
                    vec![TokenTree::Punct(hash.clone()), TokenTree::Group(g.clone())];
                let at = head
                    .iter()
                    .position(|t| !is_outer_attribute_token(t))
                    .unwrap_or(head.len());
                head.splice(at..at, attribute);
                rest = tail;
            }
            let mut peeled = Group::new(Delimiter::Brace, rest.iter().cloned().collect());
            peeled.set_span(block.span());
            block = peeled;
        }
        let Head { attrs, vis, sig } = syn::parse2(head.into_iter().collect()).ok()?;
        Some(Function {
            attrs,
            vis,
            sig,
            block,
        })
    }
}

/// Whether `token` can be part of the outer attributes that open an item (`#` and its
/// bracketed group): inner attributes moved out of the body go after them.
fn is_outer_attribute_token(token: &proc_macro2::TokenTree) -> bool {
    match token {
        proc_macro2::TokenTree::Punct(p) => p.as_char() == '#',
        proc_macro2::TokenTree::Group(g) => g.delimiter() == proc_macro2::Delimiter::Bracket,
        _ => false,
    }
}

fn try_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if let Some(tokens) = quick::expand(&args, &item) {
        return Ok(tokens);
    }
    full_expand(args, item)
}

/// The expansion through `syn`, for every function and argument (`quick.rs` takes the
/// common ones first).
fn full_expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    if let Some(function) = Function::split(item.clone()) {
        let args = attr::parse(args)?;
        valid::check(&args, &function)?;
        return Ok(expand::instrumented(&args, &function));
    }
    // Not a function with a body: the full parse says what it is.
    let Some(function) = parse_function(item.clone())? else {
        // Not readable as an item (a syntax error in the body): hand it back unchanged so
        // rustc reports the error in the user's own code.
        return Ok(item);
    };
    // A function after all (the quick parse stumbled on something unusual).
    let (outer, inner): (Vec<_>, Vec<_>) = function
        .attrs
        .into_iter()
        .partition(|a| matches!(a.style, syn::AttrStyle::Outer));
    let stmts = &function.block.stmts;
    let function = Function {
        attrs: outer,
        vis: function.vis,
        sig: function.sig,
        block: proc_macro2::Group::new(
            proc_macro2::Delimiter::Brace,
            quote::quote!(#(#inner)* #(#stmts)*),
        ),
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
