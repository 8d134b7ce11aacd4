//! The quick path: `#[instrumented]` and `#[instrumented(span = false)]` on a function
//! with a plain head (no generics, no `where`, no `impl`, `dyn` or reference in the
//! return type, parameters that are names or `self`) are expanded from the tokens
//! directly, without `syn`. Anything else returns `None` and takes the full path
//! (`expand.rs`), which produces the same tokens for what both accept (tested below).
//!
//! Why: a proc macro runs unoptimised in a debug build, and parsing the signature with
//! `syn` and re-emitting it token by token was most of the macro's own run time (the
//! compile-time benchmark, `benches/compile/`). Here the user's tokens are passed through
//! as they are and the generated text is lexed by the compiler in a few calls.

use proc_macro2::{Delimiter, Group, Ident, Spacing, Span, TokenStream, TokenTree};

use super::attr::Args;
use super::{expand, span, statics};
use crate::common::lex;

const P: &str = "::observe::__private";

/// The head of the function, split where the expansion needs it.
struct Head<'a> {
    /// Outer attributes, visibility, up to (not including) `async` / `fn`.
    front: &'a [TokenTree],
    fn_token: &'a Ident,
    name: &'a Ident,
    params: &'a Group,
    /// The return type's tokens, empty for `()`.
    output: &'a [TokenTree],
    is_async: bool,
    /// Only attributes that mean the same on `fn … -> impl Future` (`expand::INERT`).
    inert: bool,
    /// An `inline` attribute of the user's own (or a `cfg_attr` that may add one).
    inline: bool,
}

/// The expansion, or `None` when the function or the arguments need the full path.
pub fn expand(args: &TokenStream, item: &TokenStream) -> Option<TokenStream> {
    let untraced = match args.clone().into_iter().collect::<Vec<_>>().as_slice() {
        [] => false,
        [
            TokenTree::Ident(key),
            TokenTree::Punct(eq),
            TokenTree::Ident(value),
        ] if key == "span" && eq.as_char() == '=' && value == "false" => true,
        _ => return None,
    };
    let tokens: Vec<TokenTree> = item.clone().into_iter().collect();
    let (TokenTree::Group(body), head_tokens) = tokens.split_last()? else {
        return None;
    };
    if body.delimiter() != Delimiter::Brace {
        return None;
    }
    // Inner attributes at the top of the body: the full path moves them.
    if let Some(TokenTree::Punct(p)) = body.stream().into_iter().next()
        && p.as_char() == '#'
    {
        return None;
    }
    let head = split_head(head_tokens)?;
    if head.is_async && !head.inert {
        return None;
    }
    let args = if untraced {
        Args {
            span: Some(syn::LitBool::new(false, Span::call_site())),
            ..Args::default()
        }
    } else {
        Args::default()
    };
    let fn_name = head.name.to_string();
    let kind = if head.is_async { "Async" } else { "Sync" };
    let site = statics::site_text(&args, head.name, &fn_name, kind, &span::spec(&args), true);
    let result = declares_result(head.output);
    let output = if head.output.is_empty() {
        lex("()")
    } else {
        head.output.iter().cloned().collect()
    };
    let at = head
        .output
        .first()
        .map_or_else(Span::call_site, TokenTree::span);

    if !head.is_async {
        // The head as written, then the body.
        let flow = expand::sync_flow(body);
        let inner = [
            lex(&site),
            run_in_place(untraced, flow, (result, at), output, body),
        ];
        let mut out = expand::never_inline(head.inline);
        out.extend(head_tokens.iter().cloned());
        out.extend(group(Delimiter::Brace, inner));
        return Some(out);
    }

    // `async fn` → `fn … -> impl Future`, the parameters moved into the body first.
    let (params, moves) = desugar_params(head.params)?;
    let mut out: Vec<TokenStream> = vec![
        head.front.iter().cloned().collect(),
        TokenStream::from(TokenTree::Ident(head.fn_token.clone())),
        TokenStream::from(TokenTree::Ident(head.name.clone())),
        TokenStream::from(TokenTree::Group(params)),
        lex("-> impl ::core::future::Future<Output ="),
        output.clone(),
        lex(">"),
    ];
    let statements = body.stream();
    let mut inner = vec![lex(&site)];
    // In place when nothing awaits and no macro is called (the body then finishes in its
    // first poll), as a synchronous body runs; else inside `Timed` (see `expand`).
    let flow = expand::async_flow(body);
    if flow != expand::Flow::Unknown {
        let body = Group::new(Delimiter::Brace, statements);
        let future = [
            moves,
            run_in_place(untraced, flow, (result, at), output, &body),
        ];
        inner.push(lex("async move"));
        inner.push(group(Delimiter::Brace, future));
    } else {
        let body = if moves.is_empty() {
            TokenTree::Group(body.clone()).into()
        } else {
            group(Delimiter::Brace, [moves, statements])
        };
        let call = [
            lex("&__OBSERVE,"),
            expand::default_classify(result, at),
            lex(", async move"),
            body,
        ];
        inner.push(lex(if untraced {
            "::observe::__private::timed_untraced::<"
        } else {
            "::observe::__private::timed::<"
        }));
        inner.push(output);
        inner.push(lex(", _>"));
        inner.push(group(Delimiter::Parenthesis, call));
    }
    out.push(group(Delimiter::Brace, inner));
    Some(out.into_iter().collect())
}

/// `enter; let __observe_out … = body; exit; __observe_out`: the body in place
/// (`expand::in_place`; a `?` leaves it with an error the call's drop records, when the
/// output is a declared `Result`: `result`, its span `at`), typed by the declared output,
/// else as a closure called once; ended as [`expand::Ending`] says.
fn run_in_place(
    untraced: bool,
    flow: expand::Flow,
    (result, at): (bool, Span),
    output: TokenStream,
    body: &Group,
) -> TokenStream {
    let bind = match expand::in_place(body, flow, result) {
        Some(block) => vec![lex("let __observe_out:"), output, lex("="), block],
        None => {
            let closure = [
                lex("move || ->"),
                output,
                TokenTree::Group(body.clone()).into(),
            ];
            vec![
                lex("let __observe_out ="),
                group(Delimiter::Parenthesis, closure),
                lex("()"),
            ]
        }
    };
    let mut tokens = lex(&enter(untraced));
    tokens.extend(bind);
    let exit = expand::Ending::by_default(result, at).exit(untraced);
    tokens.extend([lex(";"), exit, lex("; __observe_out")]);
    tokens
}

/// The statement that starts the call: `enter(&__OBSERVE)` (the span opened and
/// entered), or `enter_untraced(&__OBSERVE)`.
fn enter(untraced: bool) -> String {
    if untraced {
        format!("let __observe_guard = {P}::enter_untraced(&__OBSERVE);")
    } else {
        format!("let __observe_call = &mut {P}::enter(&__OBSERVE);")
    }
}

/// One group of the concatenated parts.
fn group(delimiter: Delimiter, parts: impl IntoIterator<Item = TokenStream>) -> TokenStream {
    TokenTree::Group(Group::new(delimiter, parts.into_iter().collect())).into()
}

fn is_punct(token: &TokenTree, c: char) -> bool {
    matches!(token, TokenTree::Punct(p) if p.as_char() == c)
}

fn is_ident(token: &TokenTree, word: &str) -> bool {
    matches!(token, TokenTree::Ident(i) if i == word)
}

/// `[attributes] [pub[(…)]] [async] fn name(…) [-> Output]`, or `None` for anything else
/// (generics, `where`, `const`, `unsafe`, `extern`, an output the full path treats
/// specially).
fn split_head(head: &[TokenTree]) -> Option<Head<'_>> {
    let mut i = 0;
    let mut inert = true;
    let mut inline = false;
    while let Some(token) = head.get(i)
        && is_punct(token, '#')
    {
        let TokenTree::Group(attribute) = head.get(i + 1)? else {
            return None;
        };
        if attribute.delimiter() != Delimiter::Bracket {
            return None;
        }
        let path = attribute.stream().into_iter().collect::<Vec<_>>();
        inline |= expand::says_inline(&attribute.stream());
        inert &= matches!(path.as_slice(), [TokenTree::Ident(name), ..]
            if expand::INERT.iter().any(|n| name == n)
                && !matches!(path.get(1), Some(TokenTree::Punct(p)) if p.as_char() == ':'));
        i += 2;
    }
    if head.get(i).is_some_and(|t| is_ident(t, "pub")) {
        i += 1;
        if let Some(TokenTree::Group(g)) = head.get(i)
            && g.delimiter() == Delimiter::Parenthesis
        {
            i += 1;
        }
    }
    let front = &head[..i];
    let is_async = head.get(i).is_some_and(|t| is_ident(t, "async"));
    if is_async {
        i += 1;
    }
    let (
        Some(TokenTree::Ident(fn_token)),
        Some(TokenTree::Ident(name)),
        Some(TokenTree::Group(params)),
    ) = (head.get(i), head.get(i + 1), head.get(i + 2))
    else {
        return None;
    };
    if fn_token != "fn" {
        return None;
    }
    if params.delimiter() != Delimiter::Parenthesis {
        return None;
    }
    let rest = &head[i + 3..];
    let output = match rest {
        [] => rest,
        [TokenTree::Punct(dash), TokenTree::Punct(gt), output @ ..]
            if dash.as_char() == '-' && dash.spacing() == Spacing::Joint && gt.as_char() == '>' =>
        {
            output
        }
        _ => return None,
    };
    if !plain_output(output) || args_before_last_segment(output) {
        return None;
    }
    Some(Head {
        front,
        fn_token,
        name,
        params,
        output,
        is_async,
        inert,
        inline,
    })
}

/// An output type the full path would write unchanged into a closure's or a binding's
/// type: not `!`, no `impl`/`dyn` (futures, boxed futures), no reference or lifetime
/// (elision differs in a closure), not a `Pin<…>` or `…BoxFuture<…>` (boxed futures), no
/// `where` clause after it.
fn plain_output(output: &[TokenTree]) -> bool {
    fn clean(tokens: impl IntoIterator<Item = TokenTree>) -> bool {
        tokens.into_iter().all(|token| match &token {
            TokenTree::Ident(i) => !["impl", "dyn", "where", "Pin", "BoxFuture", "LocalBoxFuture"]
                .iter()
                .any(|w| i == w),
            TokenTree::Punct(p) => !matches!(p.as_char(), '&' | '\'' | '!'),
            TokenTree::Group(g) => clean(g.stream()),
            TokenTree::Literal(_) => true,
        })
    }
    clean(output.iter().cloned())
}

/// Generic arguments before the output's last path segment (`a::B<T>::Result<X>`,
/// `<S as Tr>::Result`) or a turbofish in it (`Result::<X, E>`): left to the full path,
/// which finds the last segment with `syn` (`declares_result` below reads the tokens
/// before the first `<`).
fn args_before_last_segment(output: &[TokenTree]) -> bool {
    let mut depth = 0usize;
    let mut closed = false;
    let mut after_colon = false;
    for token in output {
        if let TokenTree::Punct(p) = token {
            match p.as_char() {
                '<' if depth == 0 && after_colon => return true,
                '<' => depth += 1,
                '>' if depth > 0 => {
                    depth -= 1;
                    closed |= depth == 0;
                }
                ':' if depth == 0 && closed => return true,
                _ => {}
            }
        }
        after_colon = is_punct(token, ':');
    }
    false
}

/// The output is written `[::]a::b::Result<…>`: a path, its last segment `Result` with
/// angle-bracketed arguments (what `expand::declares_result` asks of the parsed type).
fn declares_result(output: &[TokenTree]) -> bool {
    let Some(open) = output.iter().position(|t| is_punct(t, '<')) else {
        return false;
    };
    open > 0
        && is_ident(&output[open - 1], "Result")
        && output[..open]
            .iter()
            .all(|t| matches!(t, TokenTree::Ident(_)) || is_punct(t, ':'))
        && output.last().is_some_and(|t| is_punct(t, '>'))
}

/// The parameters without `mut` on names, and the statements that move each into the
/// body first (as `expand::desugar_async` writes them); `None` for a pattern other than
/// a name or `self`.
fn desugar_params(params: &Group) -> Option<(Group, TokenStream)> {
    let tokens: Vec<TokenTree> = params.stream().into_iter().collect();
    let mut kept: Vec<TokenTree> = Vec::with_capacity(tokens.len());
    let mut moves: Vec<TokenTree> = Vec::new();
    let mut depth = 0usize;
    let mut start = true;
    let mut previous_joint_dash = false;
    let mut i = 0;
    while i < tokens.len() {
        let token = &tokens[i];
        if start {
            start = false;
            match &tokens[i..] {
                [
                    TokenTree::Ident(m),
                    TokenTree::Ident(name),
                    TokenTree::Punct(colon),
                    ..,
                ] if m == "mut" && name != "self" && name != "_" && colon.as_char() == ':' => {
                    moves.extend(lex("let mut").into_iter().chain([
                        TokenTree::Ident(name.clone()),
                        TokenTree::Punct(proc_macro2::Punct::new('=', Spacing::Alone)),
                        TokenTree::Ident(name.clone()),
                        TokenTree::Punct(proc_macro2::Punct::new(';', Spacing::Alone)),
                    ]));
                    kept.push(TokenTree::Ident(name.clone()));
                    i += 2;
                    continue;
                }
                [TokenTree::Ident(name), TokenTree::Punct(colon), ..]
                    if name != "self"
                        && name != "_"
                        && colon.as_char() == ':'
                        && colon.spacing() == Spacing::Alone =>
                {
                    moves.extend(lex("let").into_iter().chain([
                        TokenTree::Ident(name.clone()),
                        TokenTree::Punct(proc_macro2::Punct::new('=', Spacing::Alone)),
                        TokenTree::Ident(name.clone()),
                        TokenTree::Punct(proc_macro2::Punct::new(';', Spacing::Alone)),
                    ]));
                }
                rest => {
                    // `self`, `mut self`, `&self`, `&mut self`, `&'a self`, `self: T`.
                    let mut param = rest.iter().take_while(|t| !is_punct(t, ','));
                    let receiver = loop {
                        match param.next() {
                            Some(t) if is_punct(t, '&') || is_ident(t, "mut") => {}
                            Some(t) if is_punct(t, '\'') => {
                                param.next();
                            }
                            other => break other.is_some_and(|t| is_ident(t, "self")),
                        }
                    };
                    if !receiver || rest.first().is_some_and(|t| is_ident(t, "mut")) {
                        return None;
                    }
                    moves.extend(lex("let _observe_self = &self;"));
                }
            }
        }
        match token {
            TokenTree::Punct(p) if p.as_char() == '<' => depth += 1,
            TokenTree::Punct(p) if p.as_char() == '>' && !previous_joint_dash => {
                depth = depth.saturating_sub(1);
            }
            TokenTree::Punct(p) if p.as_char() == ',' && depth == 0 => start = true,
            _ => {}
        }
        previous_joint_dash = matches!(token, TokenTree::Punct(p) if p.as_char() == '-' && p.spacing() == Spacing::Joint);
        kept.push(token.clone());
        i += 1;
    }
    let mut group = Group::new(Delimiter::Parenthesis, kept.into_iter().collect());
    group.set_span(params.span());
    Some((group, moves.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;

    fn tokens(text: &str) -> TokenStream {
        text.parse().expect("test input lexes")
    }

    /// The tokens, one by one, separated by spaces (joint or not: spacing is how
    /// `quote!` and the lexer differ, not what the compiler reads).
    fn flat(stream: TokenStream) -> String {
        use proc_macro2::{Delimiter, TokenTree};
        stream
            .into_iter()
            .map(|token| match token {
                TokenTree::Group(g) => {
                    let (open, close) = match g.delimiter() {
                        Delimiter::Parenthesis => ("(", ")"),
                        Delimiter::Brace => ("{", "}"),
                        Delimiter::Bracket => ("[", "]"),
                        Delimiter::None => ("", ""),
                    };
                    format!("{open} {} {close}", flat(g.stream()))
                }
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn quick(args: &str, item: &str) -> Option<String> {
        super::expand(&tokens(args), &tokens(item)).map(flat)
    }

    fn full(args: &str, item: &str) -> String {
        flat(super::super::full_expand(tokens(args), tokens(item)).expect("valid"))
    }

    /// What both paths accept, they expand to the same tokens.
    #[test]
    fn the_quick_path_writes_what_the_full_path_writes() {
        let items = [
            "pub fn f(x: u64) -> Result<u64, E> { if x == 0 { Err(E) } else { Ok(x) } }",
            "pub async fn f(x: u64) -> Result<u64, E> { if x == 0 { Err(E) } else { Ok(x) } }",
            "fn parse(s: String) -> Result<u8, std::num::ParseIntError> { let v = s.parse()?; Ok(v) }",
            "async fn parse(s: String) -> Result<u8, std::num::ParseIntError> { Ok(s.parse()?) }",
            "pub(crate) fn unit() {}",
            "async fn unit_later() { work().await }",
            "#[doc = \"x\"] #[inline] pub async fn h(mut a: u8, b: Vec<(u8, u16)>, c: HashMap<u8, Vec<u8>>,) -> u8 { a += b.len() as u8; a }",
            "#[allow(dead_code)] async fn m(&self, x: u32) -> io::Result<u32> { Ok(x) }",
            "fn n(&mut self) -> std::result::Result<(), String> { self.x += 1; Ok(()) }",
            "async fn o(self: Box<Self>, f: Box<dyn Fn(u8) -> u8 + Send>, g: fn(u8) -> u8) -> u8 { f(g(1)) }",
            "async fn p(&'a self) -> u8 { 1 }",
            "fn q() -> fmt::Result { Ok(()) }",
            "async fn r() -> Option<Result<u8, E>> { None }",
            "fn s() -> ::std::result::Result<Vec<u8>, E> { Ok(vec![]) }",
            "#[tokio::main] fn t() -> u8 { 7 }",
            "fn fp() -> Vec<fn() -> u8> { vec![] }",
            "async fn later(x: u8) -> u8 { let f = async move { x.await_free() }; drop(f); x }",
            "async fn nested_await() -> u8 { let f = async { ready(1).await }; drop(f); 0 }",
            "async fn leaves(x: u8) -> Result<u8, E> { if x == 0 { return Ok(1) } check(x)?; Ok(x) }",
            "async fn leaves_self(&self, s: String) -> Result<u32, E> { Ok(s.parse()?) }",
        ];
        for item in items {
            for args in ["", "span = false"] {
                let quick = quick(args, item)
                    .unwrap_or_else(|| panic!("the quick path takes ({args}) {item}"));
                assert_eq!(quick, full(args, item), "({args}) {item}");
            }
        }
    }

    /// An `async` body runs in place (no `Timed`) when nothing in it awaits and it calls
    /// no macro: as a block, its `?` as they are (a declared `Result` classified by
    /// default); with a `return`, as a labelled block its `return` breaks out of (when
    /// `early.rs` can read it), else as a closure called once; a body that awaits or
    /// calls a macro is polled inside `Timed`.
    #[test]
    fn async_bodies_run_in_place_unless_they_await_or_call_a_macro() {
        let in_place = "async fn a(x: u8) -> Result<u8, E> { if x == 0 { Err(E) } else { Ok(x) } }";
        let awaits = "async fn a(x: u8) -> Result<u8, E> { ready(x).await; Ok(x) }";
        let escapes = "async fn a(x: u8) -> Result<u8, E> { check(x)?; Ok(x) }";
        let returns = "async fn a(x: u8) -> Result<u8, E> { if x == 0 { return Ok(1) } Ok(x) }";
        let escapes_and_awaits = "async fn a(x: u8) -> Result<u8, E> { check(x)?; ready(x).await }";
        let macro_call = "async fn a(x: u8) -> Result<u8, E> { check(x)?; info!(\"{x}\"); Ok(x) }";
        let option = "async fn a(x: u8) -> Option<u8> { first(x)?; Some(x) }";
        let inner_closure =
            "async fn a(x: u8) -> Result<u8, E> { let f = |v: u8| v; check(f(x))?; Ok(x) }";
        let timed = |args: &str, item: &str| full(args, item).contains("__private : : timed");
        let closure = |args: &str, item: &str| full(args, item).contains("( move | | - >");
        let labelled = |args: &str, item: &str| full(args, item).contains("' __observe_body :");
        for args in ["", "span = false"] {
            assert!(!timed(args, in_place) && !closure(args, in_place), "{args}");
            for item in [in_place, escapes, inner_closure] {
                assert!(
                    !timed(args, item) && !closure(args, item),
                    "({args}) {item}"
                );
                assert!(!labelled(args, item), "({args}) {item}");
            }
            let text = full(args, escapes);
            assert!(text.contains("{ check ( x ) ? ; Ok ( x ) }"), "{text}");
            assert!(!timed(args, returns) && labelled(args, returns), "{args}");
            assert!(!closure(args, returns), "{args}");
            assert!(!timed(args, option) && closure(args, option), "{args}");
            for item in [awaits, escapes_and_awaits, macro_call] {
                assert!(timed(args, item), "({args}) {item}");
            }
        }
        assert!(
            full("", in_place)
                .contains("__observe_call = & mut : : observe : : __private : : enter")
        );
        // Without a span, the future is `TimedUntraced`, for `-> impl Future` too.
        let future_fn = "fn i(x: u8) -> impl Future<Output = u8> { async move { x } }";
        assert!(full("span = false", awaits).contains("timed_untraced"));
        assert!(full("span = false", future_fn).contains("timed_untraced"));
        assert!(!full("", awaits).contains("timed_untraced"));
        assert!(full("", future_fn).contains("timed_now"));
        // Options that need the span on every poll keep `Timed`.
        assert!(timed("err", in_place));
        assert!(timed("err", escapes));
        assert!(timed("fields(x)", in_place));
        assert!(!timed("level = \"debug\"", in_place));
        assert!(!timed("level = \"debug\"", escapes));
        // A classifier of its own sees every value: a `?` may not skip it.
        assert!(closure("ok_if = fine", escapes));
        assert!(!closure("ok_if = fine", in_place));
    }

    /// A synchronous function is `#[inline(never)]` unless it says otherwise; an `async
    /// fn` (whose body is its future's `poll`) is not.
    #[test]
    fn synchronous_functions_keep_their_frame() {
        let never = |item: &str| full("", item).starts_with("# [ inline ( never ) ]");
        assert!(never("fn f(x: u8) -> u8 { x }"));
        assert!(never("pub fn f(x: u8) -> Result<u8, E> { g(x)?; Ok(x) }"));
        assert!(!never("#[inline] fn f(x: u8) -> u8 { x }"));
        assert!(!never(
            "#[cfg_attr(feature = \"hot\", inline)] fn f(x: u8) -> u8 { x }"
        ));
        assert!(never("#[doc = \"inline\"] fn f(x: u8) -> u8 { x }"));
        assert!(!full("", "#[inline(always)] fn f(x: u8) -> u8 { x }").contains("never"));
        assert!(!never("async fn f(x: u8) -> u8 { x }"));
        assert!(!never(
            "fn i(x: u8) -> impl Future<Output = u8> { async move { x } }"
        ));
    }

    /// The rest takes the full path.
    #[test]
    fn anything_else_takes_the_full_path() {
        let items = [
            "fn g<T: Display>(x: T) -> String { x.to_string() }",
            "fn w(x: u8) -> u8 where u8: Copy { x }",
            "fn i(x: u8) -> impl Future<Output = u8> { async move { x } }",
            "fn b(x: u8) -> Pin<Box<dyn Future<Output = u8> + Send>> { Box::pin(async move { x }) }",
            "fn first(s: &str) -> &str { s }",
            "unsafe fn u() -> u8 { 1 }",
            "const fn c() -> u8 { 1 }",
            "fn never() -> ! { loop {} }",
            "async fn wild(_: u8) -> u8 { 1 }",
            "async fn tuple((a, b): (u8, u8)) -> u8 { a + b }",
            "async fn by_ref(ref a: u8) -> u8 { *a }",
            "async fn mut_self(mut self) -> u8 { 1 }",
            "#[tokio::main] async fn main() {}",
            "fn mid() -> a::B<u8>::Result<u8> { Ok(1) }",
            "async fn turbofish() -> Result::<u8, E> { Ok(1) }",
            "fn qs() -> <S as Tr>::Result { Ok(()) }",
            "fn inner() -> u8 { #![allow(unused)] 1 }",
            "struct S;",
        ];
        for item in items {
            assert_eq!(quick("", item), None, "{item}");
        }
        let simple = "fn f() -> u8 { 1 }";
        for args in [
            "name = \"x\"",
            "span = true",
            "labels(a = \"b\")",
            "err",
            "span = false, level = \"debug\"",
        ] {
            assert_eq!(quick(args, simple), None, "{args}");
        }
    }
}
