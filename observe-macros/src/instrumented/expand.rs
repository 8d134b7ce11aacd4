//! Code generation for `#[instrumented]`: the wrapper around the user's untouched body
//! (plain, `async`, `impl Future`, boxed future), with the site `static` (`statics.rs`)
//! and the span (`span.rs`) it places. Per function: one `static`, one call into
//! `::observe::__private` on entry and one on exit, or one `Timed` future.

use crate::common::lex;
use crate::common::types::mentions_impl_trait;
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{FnArg, Pat, ReturnType, Type};

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
fn result_span(output: &ReturnType) -> Span {
    use syn::spanned::Spanned as _;
    match output {
        ReturnType::Type(_, ty) => ty.span(),
        ReturnType::Default => Span::call_site(),
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

/// The return type as a closure's return type annotation, when it can be written there
/// as it is (no `impl Trait`, no reference or lifetime whose elision would differ).
fn closure_output(output: &ReturnType) -> Option<TokenStream> {
    match output {
        ReturnType::Default => Some(quote!(())),
        ReturnType::Type(_, ty) => {
            let text = quote!(#ty).to_string();
            let plain = !mentions_impl_trait(ty) && !text.contains('&') && !text.contains('\'');
            plain.then(|| quote!(#ty))
        }
    }
}

/// Classification of a value that is not declared `…Result<…>`: the autoref dispatch on
/// `Classifier`, after importing both traits.
const CLASSIFY_OTHER: &str = "#[allow(unused_imports)] \
    use ::observe::__private::{ClassifyOther as _, ClassifyResult as _};";

/// The outcome of `__observe_out` without `ok_if`/`error_if`: through `result_outcome`
/// for an output declared `…Result<…>` (`result`), spanned at the return type (`at`,
/// where a `Result` that is not `std`'s is reported), else through `Classifier`.
pub(super) fn default_outcome(result: bool, at: Span) -> TokenStream {
    if result {
        let mut call = lex("::observe::__private");
        call.extend(quote_spanned!(at=> ::result_outcome(&__observe_out)));
        call
    } else {
        lex(&format!(
            "{{ {CLASSIFY_OTHER} (&::observe::__private::Classifier(&__observe_out)).__observe_outcome() }}"
        ))
    }
}

/// How a call run in place ends: with an outcome, or, for an output declared
/// `…Result<…>` classified by default, with the value itself.
pub(super) enum Ending {
    /// An expression of type `Outcome` (reading `__observe_out`).
    Outcome(TokenStream),
    /// The return type's span: where a `Result` that is not `std`'s is reported.
    Result(Span),
}

impl Ending {
    /// Classified by default: `result` for an output declared `…Result<…>`.
    pub(super) fn by_default(result: bool, at: Span) -> Self {
        if result {
            Ending::Result(at)
        } else {
            Ending::Outcome(default_outcome(false, at))
        }
    }

    /// The outcome as an expression.
    pub(super) fn outcome(self) -> TokenStream {
        match self {
            Ending::Outcome(outcome) => outcome,
            Ending::Result(at) => default_outcome(true, at),
        }
    }

    /// The expression that ends the call: `__observe_call` from `enter`, or
    /// `__observe_guard` from `enter_untraced` (`untraced`). A `Result` goes to one
    /// generic function per `Result` type that classifies and records it, a call fewer
    /// per annotated function (a debug build of the compile-time benchmark: 3 % fewer
    /// instructions). A guard is the last argument: moved into the arguments before the
    /// outcome is computed, it would need a path that drops it should that unwind (5 %).
    pub(super) fn exit(self, untraced: bool) -> TokenStream {
        let mut tokens = lex("::observe::__private");
        match (self, untraced) {
            (Ending::Result(at), _) => {
                let (exit, call) = if untraced {
                    (
                        quote_spanned!(at=> ::exit_untraced_result),
                        lex("__observe_guard"),
                    )
                } else {
                    (quote_spanned!(at=> ::exit_result), lex("__observe_call"))
                };
                // The value spanned at the return type too: rustc reports the bound there.
                let value = quote_spanned!(at=> &__observe_out,);
                tokens.extend(exit);
                tokens.extend(quote!((#value #call)));
                tokens
            }
            (Ending::Outcome(outcome), true) => {
                tokens.extend(quote!(::exit_untraced(#outcome, __observe_guard)));
                tokens
            }
            (Ending::Outcome(outcome), false) => quote!(__observe_call.exit(#outcome)),
        }
    }
}

/// [`default_outcome`] as a function of `&Output`, for `Timed`.
pub(super) fn default_classify(result: bool, at: Span) -> TokenStream {
    if result {
        let mut path = lex("::observe::__private");
        path.extend(quote_spanned!(at=> ::result_outcome));
        path
    } else {
        lex(&format!(
            "|__observe_out| {{ {CLASSIFY_OTHER} (&::observe::__private::Classifier(__observe_out)).__observe_outcome() }}"
        ))
    }
}

/// How control can leave a body, from one walk over its tokens, into every group (what a
/// nested closure or `async` block does counts too: only compile time is lost by that).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Flow {
    /// Only by its value: the body runs as a block in place.
    Through,
    /// Also by a `?` or a `return` (`returns`), and by no macro call: see [`in_place`].
    Leaves {
        /// A `return` somewhere.
        returns: bool,
        /// A `?` somewhere.
        questions: bool,
    },
    /// A macro call, which may expand to a `return`, a `?` or an `.await`; or, when the
    /// walk was asked to look for them, an `.await`. A synchronous body runs as a
    /// closure; an `async` body is polled inside `Timed`.
    Unknown,
}

/// How control can leave `body`, not looking for `.await` (a synchronous body).
pub(super) fn sync_flow(body: &proc_macro2::Group) -> Flow {
    walk_body(body.stream(), false)
}

/// How control can leave the body of an `async fn`, an `.await` anywhere counting as
/// [`Flow::Unknown`]. A body whose flow is not `Unknown` finishes in its first poll, so a
/// span entered at its start and left at its end is entered exactly while it runs, as
/// `Timed` would enter it.
pub(super) fn async_flow(body: &proc_macro2::Group) -> Flow {
    walk_body(body.stream(), true)
}

fn walk_body(stream: TokenStream, awaits: bool) -> Flow {
    use proc_macro2::{Spacing, TokenTree};
    let (mut returns, mut questions) = (false, false);
    let mut previous_ident = false;
    let mut bang_after_ident = false;
    let mut after_dot = false;
    for token in stream {
        let (ident, bang) = match &token {
            TokenTree::Ident(i) => {
                if awaits && after_dot && i == "await" {
                    return Flow::Unknown;
                }
                returns |= i == "return";
                (true, false)
            }
            TokenTree::Punct(p) => match p.as_char() {
                '?' => {
                    questions = true;
                    (false, false)
                }
                '!' => (false, previous_ident && p.spacing() == Spacing::Alone),
                _ => (false, false),
            },
            TokenTree::Group(g) => {
                if bang_after_ident {
                    return Flow::Unknown;
                }
                match walk_body(g.stream(), awaits) {
                    Flow::Through => {}
                    Flow::Leaves {
                        returns: r,
                        questions: q,
                    } => {
                        returns |= r;
                        questions |= q;
                    }
                    Flow::Unknown => return Flow::Unknown,
                }
                (false, false)
            }
            TokenTree::Literal(_) => (false, false),
        };
        after_dot = matches!(&token, TokenTree::Punct(p) if p.as_char() == '.');
        previous_ident = ident;
        bang_after_ident = bang;
    }
    if returns || questions {
        Flow::Leaves { returns, questions }
    } else {
        Flow::Through
    }
}

/// The body to run in place, between the call's entry and exit, or `None` when it must
/// run as a closure called once (a closure is a function of its own to compile, so only
/// when needed): the block as it is when it leaves only by its value, or by `?` where
/// `questions_leave` (an early exit the call's drop records right: as an error, in a
/// function whose declared `Result` is classified by default); with a `return`, a
/// labelled block each `return` breaks out of (`early.rs`).
pub(super) fn in_place(
    body: &proc_macro2::Group,
    flow: Flow,
    questions_leave: bool,
) -> Option<TokenStream> {
    use quote::ToTokens as _;
    match flow {
        Flow::Through => Some(body.to_token_stream()),
        Flow::Leaves {
            questions: true, ..
        } if !questions_leave => None,
        Flow::Leaves { returns: false, .. } => Some(body.to_token_stream()),
        Flow::Leaves { returns: true, .. } => super::early::labelled_body(body),
        Flow::Unknown => None,
    }
}

/// How the body is run and bound: `(annotation, expression)` for
/// `let __observe_out #annotation = #expression;` — in place, typed with the declared
/// return type, when [`in_place`] can (`flow`: the body's, walked once); else a closure.
fn run_body(
    p: &TokenStream,
    output: &ReturnType,
    block: &proc_macro2::Group,
    flow: Flow,
    questions_leave: bool,
) -> (TokenStream, TokenStream) {
    let ret = nameable_output(output);
    match closure_output(output) {
        Some(output) => match in_place(block, flow, questions_leave) {
            Some(body) => (quote!(: #output), body),
            None => (TokenStream::new(), quote!((move || -> #output #block)())),
        },
        None => (
            TokenStream::new(),
            quote!(#p::call::<#ret, _>(move || #block)),
        ),
    }
}

/// The wrapper future of an `async fn` whose span, if any, is the site's: `timed`, or
/// `timed_untraced` without a span (none of the span's machinery).
fn timed_fn(span_on: bool) -> proc_macro2::Ident {
    let name = if span_on { "timed" } else { "timed_untraced" };
    proc_macro2::Ident::new(name, Span::call_site())
}

/// Attributes that mean the same on `fn … -> impl Future` as on `async fn`: with only
/// these beside ours, an `async fn` is rewritten to return its `Timed` future directly.
/// Any other attribute (a route or runtime macro, say) may require an `async fn`.
fn inert(attr: &syn::Attribute) -> bool {
    attr.path()
        .get_ident()
        .is_some_and(|i| INERT.iter().any(|n| i == n))
}

/// The attributes [`inert`] accepts.
pub(super) const INERT: &[&str] = &[
    "doc",
    "allow",
    "warn",
    "deny",
    "forbid",
    "expect",
    "must_use",
    "inline",
    "cold",
    "deprecated",
    "cfg",
];

/// The signature of an `async fn` as a function returning `impl Future`, and the
/// statements that move every parameter into the body's `async` block first (as an
/// `async fn` does: a parameter lives as long as the future, used or not).
fn desugar_async(sig: &syn::Signature) -> (TokenStream, TokenStream) {
    let mut sig = sig.clone();
    let mut moves = TokenStream::new();
    for (index, arg) in sig.inputs.iter_mut().enumerate() {
        match arg {
            FnArg::Receiver(_) => moves.extend(quote!(let _observe_self = &self;)),
            FnArg::Typed(typed) => match &mut *typed.pat {
                Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none() => {
                    let mutability = ident.mutability.take();
                    let name = &ident.ident;
                    moves.extend(quote!(let #mutability #name = #name;));
                }
                pat => {
                    let original = pat.clone();
                    let hidden =
                        syn::Ident::new(&format!("__observe_arg{index}"), Span::call_site());
                    *pat = syn::parse_quote!(#hidden);
                    moves.extend(quote!(let #hidden = #hidden; let #original = #hidden;));
                }
            },
        }
    }
    sig.asyncness = None;
    let output = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => quote!(#ty),
    };
    sig.output = syn::parse_quote!(-> impl ::core::future::Future<Output = #output>);
    (quote!(#sig), moves)
}

pub fn instrumented(args: &Args, item: &super::Function) -> TokenStream {
    let p = quote!(::observe::__private);
    let sig = &item.sig;
    let fn_name = args
        .name
        .as_ref()
        .map(|n| n.value())
        .unwrap_or_else(|| sig.ident.to_string());
    let metrics_on = args.metrics.as_ref().is_none_or(|b| b.value);
    let span_on = args.span.as_ref().is_none_or(|b| b.value);
    let own_span = span_on && !args.fields.is_empty();
    let is_async = sig.asyncness.is_some();
    let boxed_future = !is_async && returns_boxed_future(&sig.output);
    let wraps_future = !is_async && (boxed_future || returns_impl_future(&sig.output));
    let kind = if is_async || wraps_future {
        "Async"
    } else {
        "Sync"
    };

    // The site: always with metrics; without, only as the callsite of its span.
    let site = if metrics_on || (span_on && !own_span) {
        statics::site(args, sig, &fn_name, kind, &span::spec(args), metrics_on)
    } else {
        TokenStream::new()
    };
    // The span the function opens itself: `span!` with `fields(…)`, else the site's.
    let new_span = || {
        if own_span {
            span::span_macro(args, &fn_name)
        } else {
            quote!(__OBSERVE.new_span())
        }
    };

    // --- how the value is classified, once the body has produced it ---
    // A `?` may leave the body without its exit when the call's drop records that right:
    // as an error (a declared `Result` classified by default), or with no outcome to
    // record (a span only); `err` needs the value either way.
    let questions_leave = args.err.is_none()
        && (!metrics_on
            || (declares_result(&sig.output) && args.ok_if.is_none() && args.error_if.is_none()));
    let ending = || {
        if let Some((_, path)) = &args.error_if {
            Ending::Outcome(quote!(#p::outcome_from(!(#path)(&__observe_out))))
        } else if let Some((_, path)) = &args.ok_if {
            Ending::Outcome(quote!(#p::outcome_from((#path)(&__observe_out))))
        } else {
            Ending::by_default(declares_result(&sig.output), result_span(&sig.output))
        }
    };
    // The same as a function of `&Output` (for `Timed`); with `err`, it also records the
    // error inside the span.
    let classify = || {
        let plain = if let Some((_, path)) = &args.error_if {
            quote!(|__observe_out| #p::outcome_from(!(#path)(__observe_out)))
        } else if let Some((_, path)) = &args.ok_if {
            quote!(|__observe_out| #p::outcome_from((#path)(__observe_out)))
        } else {
            default_classify(
                declares_result(&sig.output) && args.err.is_none(),
                result_span(&sig.output),
            )
        };
        if args.err.is_some() {
            let record = span::record_err(args, quote!(__observe_out));
            quote!(|__observe_out| {
                #record
                (#plain)(__observe_out)
            })
        } else {
            plain
        }
    };
    let block = &item.block;
    let ret = nameable_output(&sig.output);
    let attrs = &item.attrs;
    let vis = &item.vis;

    if is_async && metrics_on && !own_span && attrs.iter().all(inert) {
        // `async fn` → `fn … -> impl Future`: the `Timed` future is the function's
        // future, with the body's `async` block the only state machine.
        let (sig, moves) = desugar_async(sig);
        let flow = async_flow(block);
        if args.err.is_none() && flow != Flow::Unknown && closure_output(&item.sig.output).is_some()
        {
            // A body that finishes in its first poll: the call (and its span, if any,
            // entered exactly while the body runs) lives in the body's own `async` block,
            // started on the first poll, its drop counting a call left by `?` or a panic;
            // no wrapper future is instantiated. The body runs there as a synchronous one
            // does (`in_place`, else a closure called once). A body that awaits keeps
            // `Timed` even without a span: in place, its guard lives across the
            // suspension points, and a release build of a function polling many such
            // bodies inlined took 2.5 times as long (the 500-function benchmark with
            // `--body await`: 3.44 s against 1.39 s).
            let statements = block.stream();
            let exit = ending().exit(!span_on);
            let exit = quote!(#exit;);
            let enter = if span_on {
                quote!(let __observe_call = &mut #p::enter(&__OBSERVE);)
            } else {
                quote!(let __observe_guard = #p::enter_untraced(&__OBSERVE);)
            };
            // As a synchronous body runs (no `.await`, no macro call: its flow is the
            // synchronous walk's).
            let braced = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, statements);
            let (bind, run) = run_body(&p, &item.sig.output, &braced, flow, questions_leave);
            let run = quote!(let __observe_out #bind = #run;);
            return quote! {
                #(#attrs)* #vis #sig {
                    #site
                    async move {
                        #moves
                        #enter
                        #run
                        #exit
                        __observe_out
                    }
                }
            };
        }
        let classify_tokens = classify();
        // The moves, then the body's own statements, in one block (a body block as the
        // tail of another would be linted as unnecessary braces).
        let body = if moves.is_empty() {
            quote!(#block)
        } else {
            let statements = block.stream();
            quote!({ #moves #statements })
        };
        let timed = timed_fn(span_on);
        return quote! {
            #(#attrs)* #vis #sig {
                #site
                #p::#timed::<#ret, _>(&__OBSERVE, #classify_tokens, async move #body)
            }
        };
    }

    let body = if is_async && metrics_on {
        let (classify, new_span) = (classify(), new_span());
        let timed = if own_span {
            quote!(#p::timed_in::<#ret, _>(&__OBSERVE, #classify, #new_span, async move #block))
        } else {
            let timed = timed_fn(span_on);
            quote!(#p::#timed::<#ret, _>(&__OBSERVE, #classify, async move #block))
        };
        quote! {{
            #site
            #timed.await
        }}
    } else if is_async {
        // Span only: the body inside its span, the error recorded there.
        let record = span::record_err(args, quote!(&__observe_out));
        let new_span = new_span();
        quote! {{
            #site
            let __observe_span = #new_span;
            #p::tracing::Instrument::instrument(
                async move {
                    let __observe_out = #p::typed_future::<#ret, _>(async move #block).await;
                    #record
                    __observe_out
                },
                __observe_span,
            )
            .await
        }}
    } else if wraps_future {
        let future = if metrics_on {
            let classify = classify();
            let timed = if own_span {
                let new_span = new_span();
                quote!(#p::timed_in::<_, _>(&__OBSERVE, #classify, #new_span, __observe_future))
            } else if span_on {
                quote!(#p::timed_now::<_, _>(&__OBSERVE, #classify, __observe_future))
            } else {
                quote!(#p::timed_untraced::<_, _>(&__OBSERVE, #classify, __observe_future))
            };
            quote! {{
                let __observe_future = #p::call(move || #block);
                #timed
            }}
        } else {
            let record = span::record_err(args, quote!(&__observe_out));
            let new_span = new_span();
            quote! {{
                let __observe_span = #new_span;
                let __observe_future = #p::call(move || #block);
                #p::tracing::Instrument::instrument(
                    async move {
                        let __observe_out = __observe_future.await;
                        #record
                        __observe_out
                    },
                    __observe_span,
                )
            }}
        };
        let future = if boxed_future {
            quote!(::std::boxed::Box::pin(#future))
        } else {
            future
        };
        quote! {{
            #site
            #future
        }}
    } else {
        let (bind, run) = run_body(&p, &sig.output, block, sync_flow(block), questions_leave);
        let record = span::record_err(args, quote!(&__observe_out));
        if metrics_on && !span_on {
            // No span: the guard alone.
            let exit = ending().exit(true);
            quote! {{
                #site
                let __observe_guard = #p::enter_untraced(&__OBSERVE);
                let __observe_out #bind = #run;
                #exit;
                __observe_out
            }}
        } else if metrics_on {
            let (enter, exit) = if own_span {
                let new_span = new_span();
                let outcome = ending().outcome();
                (
                    quote!(&mut #p::enter_with_span(&__OBSERVE, #new_span)),
                    quote!(__observe_call.exit(#outcome)),
                )
            } else {
                (quote!(&mut #p::enter(&__OBSERVE)), ending().exit(false))
            };
            quote! {{
                #site
                let __observe_call = #enter;
                let __observe_out #bind = #run;
                #record
                #exit;
                __observe_out
            }}
        } else {
            let new_span = new_span();
            quote! {{
                #site
                let __observe_span = #new_span;
                let __observe_entered = __observe_span.enter();
                let __observe_out #bind = #run;
                #record
                __observe_out
            }}
        }
    };
    let never_inline = if is_async || wraps_future {
        TokenStream::new()
    } else {
        never_inline(attrs.iter().any(|a| {
            use quote::ToTokens as _;
            says_inline(&a.meta.to_token_stream())
        }))
    };
    quote!(#never_inline #(#attrs)* #vis #sig #body)
}

/// `#[inline(never)]` for a synchronous function, unless it has an `inline` attribute of
/// its own: an instrumented function keeps a frame of its own (its time stays its own in
/// a CPU profile of a release build, which has no debug info to show inlined frames) and
/// one copy of the entry and exit calls, instead of one in each caller it would be
/// inlined into (the compile-time benchmark, release, `span = false`: 1.46 → 1.29 s, a
/// function that inlines 250 of them). An `async fn`'s body is its future's `poll`, not
/// this function, so it gets none.
pub(super) fn never_inline(own: bool) -> TokenStream {
    if own {
        TokenStream::new()
    } else {
        lex("#[inline(never)]")
    }
}

/// An attribute's contents (`inline(…)`, `cfg_attr(…, inline)`) that set inlining: `inline`
/// itself, or a `cfg_attr` that may apply it.
pub(super) fn says_inline(meta: &TokenStream) -> bool {
    let mut tokens = meta.clone().into_iter();
    match tokens.next() {
        Some(proc_macro2::TokenTree::Ident(name)) if name == "inline" => true,
        Some(proc_macro2::TokenTree::Ident(name)) if name == "cfg_attr" => {
            fn mentions(stream: TokenStream) -> bool {
                stream.into_iter().any(|t| match t {
                    proc_macro2::TokenTree::Ident(i) => i == "inline",
                    proc_macro2::TokenTree::Group(g) => mentions(g.stream()),
                    _ => false,
                })
            }
            mentions(tokens.collect())
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{Flow, async_flow, in_place, sync_flow};

    fn block(body: &str) -> proc_macro2::Group {
        syn::parse_str(body).expect("a block")
    }

    fn escapes(body: &str) -> bool {
        sync_flow(&block(body)) != Flow::Through
    }

    fn in_async(body: &str) -> Flow {
        async_flow(&block(body))
    }

    #[test]
    fn an_await_anywhere_counts_but_only_as_a_field_after_a_dot() {
        assert_eq!(in_async("{ work().await }"), Flow::Unknown);
        assert_eq!(
            in_async("{ let f = async { ready(1).await }; drop(f); 0 }"),
            Flow::Unknown
        );
        assert_eq!(
            in_async("{ let v = f()?; g(v).await }"),
            Flow::Unknown,
            "an await after a `?` still counts"
        );
        assert!(
            !escapes("{ work().await }"),
            "an await alone does not escape"
        );
        assert_eq!(in_async("{ x.await_free() }"), Flow::Through);
        assert_eq!(in_async("{ let r#await = 1; r#await }"), Flow::Through);
        assert_eq!(
            in_async("{ if x == 0 { Err(E) } else { Ok(x) } }"),
            Flow::Through
        );
    }

    #[test]
    fn an_async_body_that_leaves_early_without_macros_or_awaits_runs_in_place() {
        assert_eq!(
            in_async("{ return 1; }"),
            Flow::Leaves {
                returns: true,
                questions: false
            }
        );
        assert_eq!(
            in_async("{ let v = s.parse()?; Ok(v) }"),
            Flow::Leaves {
                returns: false,
                questions: true
            }
        );
        assert_eq!(
            in_async("{ if x { return Ok(1) } let v = f(x)?; Ok(v) }"),
            Flow::Leaves {
                returns: true,
                questions: true
            }
        );
        assert_eq!(
            in_async("{ let v = s.parse()?; log::info!(\"{v}\"); Ok(v) }"),
            Flow::Unknown,
            "a macro may expand to an await"
        );
        assert_eq!(in_async("{ vec![1] }"), Flow::Unknown);
    }

    #[test]
    fn a_body_escapes_by_return_question_mark_or_macro() {
        assert!(escapes("{ return 1; }"));
        assert!(escapes("{ let v = s.parse()?; v }"));
        assert!(escapes("{ if x { 1 } else { inner::bail!(\"no\") } }"));
        assert!(escapes("{ let f = || { return 2 }; f() }"));
        assert!(escapes("{ vec![1] }"));
        assert_eq!(
            sync_flow(&block("{ let v = s.parse()?; tracing::info!(\"{v}\"); v }")),
            Flow::Unknown,
            "a macro after a `?` still counts"
        );
        assert!(!escapes("{ if x != 0 { Ok(x) } else { Err(E) } }"));
        assert!(!escapes("{ let y = !x; values[y as usize] }"));
        assert!(!escapes("{ 'outer: loop { break 'outer 3 } }"));
    }

    #[test]
    fn a_question_mark_stays_where_the_drop_records_it_right() {
        let run = |body: &str, questions_leave: bool| {
            let body = block(body);
            in_place(&body, sync_flow(&body), questions_leave).map(|t| t.to_string())
        };
        let question = "{ let v = s.parse()?; Ok(v) }";
        assert_eq!(
            run(question, true).as_deref(),
            Some("{ let v = s . parse () ?; Ok (v) }")
        );
        assert_eq!(run(question, false), None, "`ok_if`, `err`, an `Option`");
        let both = "{ if x { return Ok(1) } Ok(f(x)?) }";
        assert!(
            run(both, true)
                .unwrap()
                .contains("break '__observe_body Ok (1)")
        );
        assert_eq!(run(both, false), None);
        let returns = "{ if x { return 1 } 2 }";
        assert!(run(returns, false).unwrap().starts_with("'__observe_body"));
    }
}
