//! The span of an instrumented call: `tracing`'s `span!` with the function's name, level
//! and fields, and the error record of `err`.

use proc_macro2::{Span, TokenStream};
use quote::quote;

use super::attr::{Args, Sigil};

/// `let __observe_span = …;`: without `fields(…)`, two `const`-built statics (the
/// metadata and its callsite) and one out-of-line call; with fields, `tracing::span!`.
pub fn span_def(args: &Args, fn_name: &str) -> TokenStream {
    let p = quote!(::observe::__private);
    let level = match args.level.as_ref().map(|l| l.value().to_ascii_uppercase()) {
        Some(l) => syn::Ident::new(
            &l,
            args.level
                .as_ref()
                .map_or_else(Span::call_site, |l| l.span()),
        ),
        None => syn::Ident::new("INFO", Span::call_site()),
    };
    let fields = args.fields.iter().map(|f| {
        let name = &f.name;
        match &f.value {
            None => quote!(#name = ?#name),
            Some((Sigil::Value, e)) => quote!(#name = #e),
            Some((Sigil::Debug, e)) => quote!(#name = ?#e),
            Some((Sigil::Display, e)) => quote!(#name = %#e),
        }
    });
    if args.fields.is_empty() {
        let names = args.err.map(|_| quote!("otel.status_code"));
        return quote! {
            static __OBSERVE_CALLSITE: #p::SpanCallsite = #p::SpanCallsite::new(&__OBSERVE_SPAN);
            static __OBSERVE_SPAN: #p::Metadata<'static> = #p::span_metadata(
                #fn_name,
                ::core::module_path!(),
                #p::Level::#level,
                ::core::file!(),
                ::core::line!(),
                &[#names],
                &__OBSERVE_CALLSITE,
            );
            let __observe_span = #p::new_span(&__OBSERVE_CALLSITE);
        };
    }
    let err_fields = args
        .err
        .map(|_| quote!(otel.status_code = #p::tracing::field::Empty,));
    quote! {
        let __observe_span = #p::tracing::span!(
            target: ::core::module_path!(),
            #p::tracing::Level::#level,
            #fn_name,
            #err_fields
            #(#fields,)*
        );
    }
}

/// With `err`: an `Err` marks the current span as an error and logs it at ERROR.
pub fn record_err(args: &Args) -> TokenStream {
    if args.err.is_none() {
        return TokenStream::new();
    }
    let p = quote!(::observe::__private);
    quote! {
        if let ::core::result::Result::Err(__observe_error) = &__observe_out {
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
