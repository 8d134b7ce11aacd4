//! The span of an instrumented call: the `SpanSpec` of its site (level and field names),
//! or, with `fields(…)`, `tracing::span!` with the recorded values; and the error record
//! of `err`.

use proc_macro2::{Span, TokenStream};
use quote::quote;

use super::attr::{Args, Sigil};

fn level(args: &Args) -> syn::Ident {
    match args.level.as_ref().map(|l| l.value().to_ascii_uppercase()) {
        Some(l) => syn::Ident::new(
            &l,
            args.level
                .as_ref()
                .map_or_else(Span::call_site, |l| l.span()),
        ),
        None => syn::Ident::new("INFO", Span::call_site()),
    }
}

/// Whether the site opens the span itself: spans on, no `fields(…)` (then `span!` does).
pub fn site_opens_span(args: &Args) -> bool {
    args.span.as_ref().is_none_or(|b| b.value) && args.fields.is_empty()
}

/// Whether the site's span is the shared options' one: `INFO`, no `err` field.
pub fn is_default(args: &Args) -> bool {
    args.err.is_none()
        && args
            .level
            .as_ref()
            .is_none_or(|l| l.value().eq_ignore_ascii_case("info"))
}

/// The site's `span` option, as text: `Some(SpanSpec { … })` when the site opens the span
/// itself, else `None`.
pub fn spec(args: &Args) -> String {
    if !site_opens_span(args) {
        return "::core::option::Option::None".to_owned();
    }
    let level = args
        .level
        .as_ref()
        .map_or_else(|| "INFO".to_owned(), |l| l.value().to_ascii_uppercase());
    let names = if args.err.is_some() {
        "\"otel.status_code\""
    } else {
        ""
    };
    format!(
        "::core::option::Option::Some(::observe::__private::SpanSpec {{ \
           level: ::observe::__private::Level::{level}, fields: &[{names}] }})"
    )
}

/// With `fields(…)`: `tracing::span!` with the function's name, level and fields.
pub fn span_macro(args: &Args, fn_name: &str) -> TokenStream {
    let p = quote!(::observe::__private);
    let level = level(args);
    let fields = args.fields.iter().map(|f| {
        let name = &f.name;
        match &f.value {
            None => quote!(#name = ?#name),
            Some((Sigil::Value, e)) => quote!(#name = #e),
            Some((Sigil::Debug, e)) => quote!(#name = ?#e),
            Some((Sigil::Display, e)) => quote!(#name = %#e),
        }
    });
    let err_fields = args
        .err
        .map(|_| quote!(otel.status_code = #p::tracing::field::Empty,));
    quote! {
        #p::tracing::span!(
            target: ::core::module_path!(),
            #p::tracing::Level::#level,
            #fn_name,
            #err_fields
            #(#fields,)*
        )
    }
}

/// With `err`: when `out` (an expression of type `&Result<…>`) is an `Err`, marks the
/// current span as an error and logs the error at ERROR.
pub fn record_err(args: &Args, out: TokenStream) -> TokenStream {
    if args.err.is_none() {
        return TokenStream::new();
    }
    let p = quote!(::observe::__private);
    quote! {
        if let ::core::result::Result::Err(__observe_error) = #out {
            let __observe_current = #p::tracing::Span::current();
            __observe_current.record("otel.status_code", "ERROR");
            #p::tracing::event!(
                target: ::core::module_path!(),
                #p::tracing::Level::ERROR,
                error = %__observe_error
            );
        }
    }
}
