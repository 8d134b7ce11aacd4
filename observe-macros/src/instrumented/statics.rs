//! The one `static` of an instrumented function: its `Site` (labels, location, bucket
//! bounds, span level and fields, and the run-time state), built by the `const fn`
//! `Site::new` from literals and shared option statics (as little as possible evaluated
//! per function at compile time), and placed in the link-time slice of call sites when
//! the function has metrics.

use proc_macro2::TokenStream;
use syn::Signature;

use super::attr::Args;

/// The targets where linkme's section for `SITES` is `linkme_SITES` (linkme 0.3's
/// `linux_section`).
const ELF: &str = "any(target_os = \"none\", target_os = \"linux\", target_os = \"android\", \
                   target_os = \"fuchsia\", target_os = \"psp\")";

/// `__OBSERVE`, for a function whose `function` label is `fn_name` and whose kind
/// (`Sync` / `Async`) is `kind`; `span` is its `SpanSpec` expression (or `None`);
/// registered (in the `SITES` slice) when `registered`.
pub fn site(
    args: &Args,
    sig: &Signature,
    fn_name: &str,
    kind: &str,
    span: &str,
    registered: bool,
) -> TokenStream {
    let mut tokens = crate::common::lex(&site_text(
        args, &sig.ident, fn_name, kind, span, registered,
    ));
    tokens.extend(objective_check(args));
    tokens
}

/// The text of [`site`] without the objective check; `ident` is the function's name as
/// written (its line is the site's).
pub fn site_text(
    args: &Args,
    ident: &proc_macro2::Ident,
    fn_name: &str,
    kind: &str,
    span: &str,
    registered: bool,
) -> String {
    const P: &str = "::observe::__private";
    // The options: one of the runtime's shared statics when the function sets none of
    // its own (nothing per function for the compiler to evaluate), else a literal.
    let untraced = !super::span::site_opens_span(args);
    let shared = args.labels.is_empty()
        && args.buckets.is_none()
        && args.objective.is_none()
        && (untraced || super::span::is_default(args));
    let options = if shared {
        let name = match (kind, untraced) {
            ("Sync", false) => "SYNC",
            ("Sync", true) => "SYNC_UNTRACED",
            (_, false) => "ASYNC",
            (_, true) => "ASYNC_UNTRACED",
        };
        format!("&{P}::{name}")
    } else {
        let objective = match &args.objective {
            None => "::core::option::Option::None".to_owned(),
            Some((_, expr)) => {
                format!("::core::option::Option::Some(&({}))", quote::quote!(#expr))
            }
        };
        let (buckets, bounds) = match &args.buckets {
            None => (
                format!("&{P}::DEFAULT_BUCKETS"),
                format!("&{P}::DEFAULT_BOUNDS_NS"),
            ),
            Some(buckets) => {
                let n = buckets.bounds.len() + 1;
                let list = buckets
                    .bounds
                    .iter()
                    .map(|b| format!("{:?}f64", b.value))
                    .collect::<Vec<_>>()
                    .join(", ");
                (
                    format!("&[{list}]"),
                    format!("&{P}::bounds_ns::<{n}>(&[{list}])"),
                )
            }
        };
        let labels = args
            .labels
            .iter()
            .map(|l| format!("({:?}, {:?})", l.key, l.value.value()))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "&{P}::SiteOptions {{ kind: {P}::FnKind::{kind}, labels: &[{labels}], \
               buckets: {buckets}, bounds_ns: {bounds}, span: {span}, \
               objective: {objective} }}"
        )
    };
    // The line of the function's name (what `line!()` spanned there would give).
    let line = match ident.span().start().line {
        0 => "::core::line!()".to_owned(),
        line => format!("{line}u32"),
    };
    // Written as text and lexed by the compiler in one step (quoting the same tokens one
    // by one was most of the macro's run time: proc macros run unoptimised in debug
    // builds). The spans are the call site's, as `quote!` gives them.
    let site = format!(
        "static __OBSERVE: {P}::Site = {P}::Site::new({fn_name:?}, \
           ::core::module_path!(), ::core::file!(), {line}, {options});"
    );
    if registered {
        // The site goes in the slice's link section. Where linkme names that section
        // after the slice alone (ELF targets), the attributes are written here (what the
        // slice's macro would write, minus expanding a `macro_rules` twice per
        // function); elsewhere the slice's own macro places it (what
        // `#[distributed_slice]` expands to, without its per-item type check: the type
        // is fixed here). `tests/instrumented.rs` fails if the two ever disagree.
        format!(
            "#[cfg({ELF})] #[used] #[unsafe(link_section = \"linkme_SITES\")] {site} \
             #[cfg(not({ELF}))] {P}::SITES! {{ #![linkme_macro = {P}::SITES] {site} }}"
        )
    } else {
        site
    }
}

/// For `objective = EXPR`: a `const` that checks, at compile time, that the objective has
/// a target and that its latency threshold is one of the function's bucket bounds; its
/// tokens carry the span of `EXPR`, so a failure is reported there.
fn objective_check(args: &Args) -> TokenStream {
    let Some((_, expr)) = &args.objective else {
        return TokenStream::new();
    };
    let at = syn::spanned::Spanned::span(expr);
    let buckets = match &args.buckets {
        None => quote::quote_spanned!(at=> &::observe::__private::DEFAULT_BUCKETS),
        Some(buckets) => {
            let list = buckets.bounds.iter().map(|b| b.value);
            quote::quote_spanned!(at=> &[#(#list),*])
        }
    };
    quote::quote_spanned! {at=>
        const _: () = ::observe::__private::check_objective(&(#expr), #buckets);
    }
}
