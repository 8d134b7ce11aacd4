//! Code generation for `#[instrumented]`: the wrapper around the user's untouched body
//! (plain, `async`, `impl Future`, boxed future), with the statics (`statics.rs`) and the
//! span (`span.rs`) it places; a few calls into `::observe::__private`.

use crate::common::types::mentions_impl_trait;
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::{ItemFn, ReturnType, Type};

use super::attr::Args;
use super::{span, statics};

/// `impl Future<Output = …> (+ …)`: the function returns a future we can wrap.
fn returns_impl_future(output: &ReturnType) -> bool {
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    let Type::ImplTrait(imp) = &**ty else {
        return false;
    };
    imp.bounds.iter().any(|b| match b {
        syn::TypeParamBound::Trait(t) => {
            t.path.segments.last().is_some_and(|s| s.ident == "Future")
        }
        _ => false,
    })
}

/// `Pin<Box<dyn Future<…> + …>>`, `BoxFuture<…>` or `LocalBoxFuture<…>`: a boxed future,
/// as `#[async_trait]` produces; we box our wrapper in its place.
fn returns_boxed_future(output: &ReturnType) -> bool {
    fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
        match ty {
            Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
            _ => None,
        }
    }
    fn first_type_arg(segment: &syn::PathSegment) -> Option<&Type> {
        match &segment.arguments {
            syn::PathArguments::AngleBracketed(args) => args.args.iter().find_map(|a| match a {
                syn::GenericArgument::Type(t) => Some(t),
                _ => None,
            }),
            _ => None,
        }
    }
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    let Some(outer) = last_segment(ty) else {
        return false;
    };
    if outer.ident == "BoxFuture" || outer.ident == "LocalBoxFuture" {
        return true;
    }
    if outer.ident != "Pin" {
        return false;
    }
    let Some(boxed) = first_type_arg(outer).and_then(last_segment) else {
        return false;
    };
    if boxed.ident != "Box" {
        return false;
    }
    matches!(first_type_arg(boxed), Some(Type::TraitObject(obj)) if obj.bounds.iter().any(|b| matches!(
        b,
        syn::TypeParamBound::Trait(t) if t.path.segments.last().is_some_and(|s| s.ident == "Future")
    )))
}

/// The declared return type is written `Result<…>` (or a path ending in `Result`, such as
/// `io::Result<T>`): its outcome then comes from one shared generic function.
fn declares_result(output: &ReturnType) -> bool {
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    matches!(&**ty, Type::Path(p) if p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| s.ident == "Result"
            && matches!(s.arguments, syn::PathArguments::AngleBracketed(_))))
}

/// Where a misnamed `Result` is reported: the return type.
fn result_span(output: &ReturnType) -> proc_macro2::Span {
    use syn::spanned::Spanned as _;
    match output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => proc_macro2::Span::call_site(),
    }
}

/// The return type as a turbofish argument, or `_` when it cannot be named.
fn nameable_output(output: &ReturnType) -> TokenStream {
    match output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) if mentions_impl_trait(ty) => quote!(_),
        ReturnType::Type(_, ty) => quote!(#ty),
    }
}

pub fn instrumented(args: &Args, item: &ItemFn) -> TokenStream {
    let p = quote!(::observe::__private);
    let sig = &item.sig;
    let fn_name = args
        .name
        .as_ref()
        .map(|n| n.value())
        .unwrap_or_else(|| sig.ident.to_string());
    let metrics_on = args.metrics.as_ref().is_none_or(|b| b.value);
    let span_on = args.span.as_ref().is_none_or(|b| b.value);
    let is_async = sig.asyncness.is_some();
    let boxed_future = !is_async && returns_boxed_future(&sig.output);
    let wraps_future = !is_async && (boxed_future || returns_impl_future(&sig.output));
    let kind = if is_async || wraps_future {
        quote!(Async)
    } else {
        quote!(Sync)
    };

    let statics = if metrics_on {
        statics::statics(args, sig, &fn_name, &kind)
    } else {
        TokenStream::new()
    };

    let span_def = if span_on {
        span::span_def(args, &fn_name)
    } else {
        TokenStream::new()
    };

    // --- what happens with the value, once the body has produced it ---
    let outcome = if let Some((_, path)) = &args.error_if {
        quote!(#p::outcome_from(!(#path)(&__observe_out)))
    } else if let Some((_, path)) = &args.ok_if {
        quote!(#p::outcome_from((#path)(&__observe_out)))
    } else if declares_result(&sig.output) {
        let at = result_span(&sig.output);
        quote_spanned!(at=> #p::result_outcome(&__observe_out))
    } else {
        quote! {{
            #[allow(unused_imports)]
            use #p::{ClassifyOther as _, ClassifyResult as _};
            (&#p::Classifier(&__observe_out)).__observe_outcome()
        }}
    };
    let finish = if metrics_on && span_on {
        // Inside the span: the call may become the bucket's exemplar.
        quote!(__observe_guard.finish_traced(#outcome);)
    } else if metrics_on {
        quote!(__observe_guard.finish(#outcome);)
    } else {
        TokenStream::new()
    };
    let record_err = span::record_err(args);
    let start = if metrics_on {
        quote!(let __observe_guard = __OBSERVE_SITE.start();)
    } else {
        TokenStream::new()
    };
    let instrument = |fut: TokenStream| {
        if span_on {
            quote!(#p::tracing::Instrument::instrument(#fut, __observe_span))
        } else {
            fut
        }
    };

    let block = &item.block;
    let ret = nameable_output(&sig.output);
    let body = if is_async && metrics_on && args.err.is_none() {
        // One `Timed` future around the body: it finishes the call (inside the span, as
        // `Instrument` polls it there) without a second `async` block.
        let classify = if let Some((_, path)) = &args.error_if {
            quote!(|__observe_out| #p::outcome_from(!(#path)(__observe_out)))
        } else if let Some((_, path)) = &args.ok_if {
            quote!(|__observe_out| #p::outcome_from((#path)(__observe_out)))
        } else if declares_result(&sig.output) {
            let at = result_span(&sig.output);
            quote_spanned!(at=> #p::result_outcome)
        } else {
            quote!(|__observe_out| {
                #[allow(unused_imports)]
                use #p::{ClassifyOther as _, ClassifyResult as _};
                (&#p::Classifier(__observe_out)).__observe_outcome()
            })
        };
        let timed = quote! {
            #p::timed(
                #p::typed_future::<#ret, _>(async move #block),
                __observe_guard,
                #classify,
                #span_on,
            )
        };
        let inner = instrument(timed);
        quote! {{
            #statics
            #start
            #span_def
            #inner.await
        }}
    } else if is_async {
        let typed = quote!(#p::typed_future::<#ret, _>(async move #block));
        // The error and the call are recorded inside the span, so `Span::current()` is
        // ours and the histogram's exemplar carries this call's span id.
        let inner = instrument(quote! {
            async move {
                let __observe_out = #typed.await;
                #record_err
                #finish
                __observe_out
            }
        });
        quote! {{
            #statics
            #start
            #span_def
            #inner.await
        }}
    } else if wraps_future {
        let inner = instrument(quote! {
            async move {
                #start
                let __observe_out = __observe_future.await;
                #record_err
                #finish
                __observe_out
            }
        });
        let inner = if boxed_future {
            quote!(::std::boxed::Box::pin(#inner))
        } else {
            inner
        };
        quote! {{
            #statics
            #span_def
            let __observe_future = #p::call(move || #block);
            #inner
        }}
    } else {
        let enter = if span_on {
            quote!(let __observe_entered = __observe_span.enter();)
        } else {
            TokenStream::new()
        };
        quote! {{
            #statics
            #start
            #span_def
            #enter
            let __observe_out = #p::call::<#ret, _>(move || #block);
            #record_err
            #finish
            __observe_out
        }}
    };
    let attrs = &item.attrs;
    let vis = &item.vis;
    quote!(#(#attrs)* #vis #sig #body)
}
