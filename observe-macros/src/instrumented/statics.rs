//! The statics of an instrumented call site: its zeroed cells, its `Site` (metadata and
//! bounds, built in a `const` context) and its entry in the link-time slice.

use proc_macro2::{Literal, TokenStream};
use quote::{quote, quote_spanned};
use syn::Signature;

use super::attr::Args;

/// `__OBSERVE_CELLS`, `__OBSERVE_SITE` and `__OBSERVE_REGISTERED`, for a function whose
/// `function` label is `fn_name` and whose kind (`Sync` / `Async`) is `kind`.
pub fn statics(args: &Args, sig: &Signature, fn_name: &str, kind: &TokenStream) -> TokenStream {
    let p = quote!(::observe::__private);
    let line = quote_spanned!(sig.ident.span()=> ::core::line!());
    let (b, buckets, bounds) = match &args.buckets {
        None => (
            quote!(#p::DEFAULT_B),
            quote!(&#p::DEFAULT_BUCKETS),
            quote!(#p::DEFAULT_BOUNDS_NS),
        ),
        Some(buckets) => {
            let n = buckets.bounds.len() + 1;
            let values = buckets
                .bounds
                .iter()
                .map(|b| Literal::f64_suffixed(b.value));
            let list = quote!(&[#(#values),*]);
            (quote!(#n), list.clone(), quote!(#p::bounds_ns::<#n>(#list)))
        }
    };
    let keys = args.labels.iter().map(|l| &l.key);
    let values = args.labels.iter().map(|l| &l.value);
    quote! {
        static __OBSERVE_CELLS: #p::Cells<{ #b }> = #p::Cells::new();
        static __OBSERVE_SITE: #p::Site<{ #b }> = #p::Site::new(
            #p::SiteMeta {
                function: #fn_name,
                module: ::core::module_path!(),
                file: ::core::file!(),
                line: #line,
                labels: &[#((#keys, #values)),*],
                buckets: #buckets,
                kind: #p::FnKind::#kind,
            },
            #bounds,
            &__OBSERVE_CELLS,
        );
        // The slice's own macro places the entry in its link section on every platform
        // linkme supports (what `#[distributed_slice]` expands to, without its per-item
        // type check: the type is fixed here, and the type check was a sixth of what an
        // annotated function cost to compile).
        #p::SITES! {
            #![linkme_macro = #p::SITES]
            static __OBSERVE_REGISTERED: &'static dyn #p::SiteDyn = &__OBSERVE_SITE;
        }
    }
}
