//! Code generation for `#[health_check]`: the function stays as written; beside it, a
//! `const _` block holds its definition and its entry in the link-time slice.

use crate::common::types::mentions_impl_trait;
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::attr::Args;
use super::valid::Params;

pub fn health_check(args: &Args, function: &syn::ItemFn, params: &Params) -> TokenStream {
    let p = quote!(::observe::__private);
    let sig = &function.sig;
    let ident = &sig.ident;
    let name = args
        .name
        .as_ref()
        .map(|n| n.value())
        .unwrap_or_else(|| ident.to_string());
    let critical = args.critical.is_some();
    let startup = args.startup.is_some();
    // Below the default probe budget (800 ms), itself below the kubelet's 1 s timeout.
    let timeout = args.timeout.as_ref().map_or(500_000_000, |t| t.nanos);
    let interval = match &args.interval {
        Some(i) => {
            let n = i.nanos;
            quote!(::core::option::Option::Some(#p::Duration::from_nanos(#n)))
        }
        None => quote!(::core::option::Option::None),
    };
    let threshold = |lit: &Option<syn::LitInt>| {
        lit.as_ref()
            .and_then(|l| l.base10_parse::<u32>().ok())
            .unwrap_or(1)
    };
    let failure_threshold = threshold(&args.failure_threshold);
    let success_threshold = threshold(&args.success_threshold);
    let groups = &args.groups;
    let depends_on = match &args.depends_on {
        Some(d) => quote!(::core::option::Option::Some(#d)),
        None => quote!(::core::option::Option::None),
    };
    let line = quote_spanned!(ident.span()=> ::core::line!());

    let types = &params.types;
    let vars: Vec<_> = (0..types.len())
        .map(|i| format_ident!("__observe_state_{}", i))
        .collect();
    let state_types = types.iter().map(|t| {
        quote!(#p::StateType {
            id: || ::core::any::TypeId::of::<#t>(),
            name: ::core::stringify!(#t),
        })
    });
    let call = quote!(#ident(#(&*#vars),*));
    // The conversion names the return type in a turbofish, so a type that cannot convert
    // is reported once, on the user's return type.
    let convert = match &sig.output {
        syn::ReturnType::Type(_, ty) if !mentions_impl_trait(ty) => {
            quote_spanned!(ty.span()=> #p::into_health_status::<#ty>)
        }
        _ => quote!(#p::IntoHealthStatus::into_health_status),
    };
    let run_body = if sig.asyncness.is_some() {
        quote!(::std::boxed::Box::pin(async move {
            #convert(#call.await)
        }))
    } else {
        quote!(#p::run_blocking(move || #convert(#call)))
    };
    quote! {
        #function

        #[doc(hidden)]
        const _: () = {
            fn __observe_run(
                state: &#p::StateMap,
            ) -> #p::CheckFuture {
                #(
                    let ::core::option::Option::Some(#vars) = state.get::<#types>() else {
                        return ::std::boxed::Box::pin(async {
                            #p::HealthStatus::Fail(::std::string::String::from(
                                "state not registered (start-up validation was bypassed)",
                            ))
                        });
                    };
                )*
                #run_body
            }

            static __OBSERVE_CHECK: #p::CheckDef = #p::CheckDef {
                name: #name,
                critical: #critical,
                timeout: #p::Duration::from_nanos(#timeout),
                interval: #interval,
                failure_threshold: #failure_threshold,
                success_threshold: #success_threshold,
                startup: #startup,
                groups: &[#(#groups),*],
                depends_on: #depends_on,
                module: ::core::module_path!(),
                file: ::core::file!(),
                line: #line,
                state: &[#(#state_types),*],
                run: __observe_run,
            };

            #[#p::linkme::distributed_slice(#p::CHECKS)]
            #[linkme(crate = #p::linkme)]
            static __OBSERVE_CHECK_REGISTERED: &'static #p::CheckDef = &__OBSERVE_CHECK;
        };
    }
}
