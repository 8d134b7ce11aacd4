//! Early exits without a closure: in a body that returns a declared `Result<…>` and
//! leaves early only by `?` and `return` at its own level, each `expr?` becomes a `match`
//! that breaks out of a labelled block and each `return` a `break` to it, so the body
//! runs in place as a block (between the call's entry and exit) instead of as a closure
//! called once.
//!
//! Why: a closure is a body of its own to type-check, borrow-check and code-generate per
//! function; in the compile-time benchmark (`benches/compile/`, `--body try`) the closures
//! were about a tenth of a debug build of 500 annotated functions.
//!
//! What `?` does is kept: `Branch::branch` (in `observe-runtime`) splits the operand as
//! `Try::branch` does for the operands a `Result` function accepts (`Result`, and `Poll`
//! of one) and converts the error with `From::from` into the declared error type; the
//! generated tokens are placed at the `?`, so a misuse is reported there. Anything the
//! walk cannot read for certain returns `None`, and the body runs as a closure as before:
//! a macro call, a closure, an `async` block or a nested item (their `?` and `return` are
//! their own), an operand that ends in a brace block or a qualified path.

use proc_macro2::{Delimiter, Group, Ident, Punct, Spacing, Span, TokenStream, TokenTree};

use crate::common::{ident, lex};

/// The label of the block the body runs in.
const LABEL: &str = "__observe_body";

/// Words after which the body is left to the closure: they open something whose own
/// `return` and `?` must stay (closures, `async` blocks, items), or an operand we do not
/// read (`const` blocks).
const OPAQUE: &[&str] = &[
    "fn",
    "async",
    "move",
    "impl",
    "trait",
    "struct",
    "enum",
    "union",
    "mod",
    "static",
    "const",
    "try",
    "yield",
    "gen",
    "macro_rules",
];

/// Keywords that end an operand read backwards from a `?` (`return f()?`, `if g()? {`).
const KEYWORDS: &[&str] = &[
    "as", "box", "break", "continue", "do", "dyn", "else", "for", "if", "in", "let", "loop",
    "match", "mut", "ref", "return", "unsafe", "where", "while", "become",
];

/// `'__observe_body: { … }` with every `?` and `return` of the body's own level rewritten,
/// or `None` when the body must run as a closure. `body` is the function's brace group,
/// `output` its declared `Result<…>` type.
pub(super) fn labelled_body(body: &Group, output: &TokenStream) -> Option<TokenStream> {
    let statements = rewrite(body.stream(), output)?;
    let mut tokens = label();
    tokens.push(TokenTree::Punct(Punct::new(':', Spacing::Alone)));
    let mut block = Group::new(Delimiter::Brace, statements);
    block.set_span(body.span());
    tokens.push(TokenTree::Group(block));
    Some(tokens.into_iter().collect())
}

/// `'__observe_body`.
fn label() -> Vec<TokenTree> {
    vec![
        TokenTree::Punct(Punct::new('\'', Spacing::Joint)),
        TokenTree::Ident(Ident::new(LABEL, Span::call_site())),
    ]
}

fn rewrite(stream: TokenStream, output: &TokenStream) -> Option<TokenStream> {
    let mut out: Vec<TokenTree> = Vec::new();
    for token in stream {
        match token {
            // (`'static` is a lifetime, not an item.)
            TokenTree::Ident(ident)
                if OPAQUE.iter().any(|w| ident == w)
                    && !matches!(out.last(), Some(TokenTree::Punct(p)) if p.as_char() == '\'') =>
            {
                return None;
            }
            TokenTree::Ident(ident) if ident == "return" => {
                out.push(TokenTree::Ident(Ident::new("break", ident.span())));
                out.extend(label());
            }
            TokenTree::Punct(p) if p.as_char() == '|' => return None,
            TokenTree::Punct(p) if p.as_char() == '?' => {
                let start = operand_start(&out)?;
                let operand: TokenStream = out.drain(start..).collect();
                out.push(branch(operand, output, p.span()));
            }
            TokenTree::Group(g) => {
                // A macro call (`name!(…)`): it may expand to a `return` or a `?`.
                if let [.., TokenTree::Ident(_), TokenTree::Punct(bang)] = out.as_slice()
                    && bang.as_char() == '!'
                    && bang.spacing() == Spacing::Alone
                {
                    return None;
                }
                let mut inner = Group::new(g.delimiter(), rewrite(g.stream(), output)?);
                inner.set_span(g.span());
                out.push(TokenTree::Group(inner));
            }
            other => out.push(other),
        }
    }
    Some(out.into_iter().collect())
}

/// Where the operand of a `?` at the end of `out` starts: the postfix expression before
/// it (`a.b::<T>(c)[d].e`), read backwards; `None` when it is empty or not certain.
fn operand_start(out: &[TokenTree]) -> Option<usize> {
    let mut i = out.len();
    loop {
        // A primary: a name, a literal, a parenthesised or bracketed group.
        let token = out.get(i.checked_sub(1)?)?;
        match token {
            TokenTree::Ident(ident) if KEYWORDS.iter().any(|w| ident == w) => return None,
            TokenTree::Ident(_) | TokenTree::Literal(_) => {
                i -= 1;
                // A label or lifetime (`'a`) is no operand.
                if i > 0 && matches!(&out[i - 1], TokenTree::Punct(p) if p.as_char() == '\'') {
                    return None;
                }
            }
            TokenTree::Group(g) if g.delimiter() != Delimiter::Brace => {
                i -= 1;
                // A call or an index: its callee or receiver comes before it.
                if i > 0 && ends_postfix(&out[i - 1]) && !after_arrow(out, i - 1) {
                    continue;
                }
                return Some(i);
            }
            TokenTree::Punct(p) if p.as_char() == '>' => {
                // A turbofish `::<…>`, then the segment before it.
                i = turbofish_start(out, i)?;
                continue;
            }
            _ => return None,
        }
        // After a name or literal: `.`, `::`, or the operand's start.
        match out.get(i.wrapping_sub(1)) {
            Some(TokenTree::Punct(p)) if p.as_char() == '.' && i >= 2 => {
                if matches!(&out[i - 2], TokenTree::Punct(q) if q.as_char() == '.') {
                    return Some(i); // a range `a..b?`
                }
                i -= 1;
            }
            Some(TokenTree::Punct(p)) if p.as_char() == ':' && i >= 2 => {
                let TokenTree::Punct(q) = &out[i - 2] else {
                    return None;
                };
                if q.as_char() != ':' || q.spacing() != Spacing::Joint {
                    return None;
                }
                i -= 2;
                if i == 0 {
                    return Some(0); // `::path::f()?`
                }
                if !matches!(&out[i - 1], TokenTree::Ident(_))
                    && !matches!(&out[i - 1], TokenTree::Punct(p) if p.as_char() == '>')
                {
                    // `…(::path)` after an operator: the leading `::` is the path's own.
                    return Some(i);
                }
            }
            _ => return Some(i),
        }
    }
}

/// A token a call's or an index's parentheses may follow: a name (not a keyword), a
/// literal, a group that is not a block, a turbofish's `>`.
fn ends_postfix(token: &TokenTree) -> bool {
    match token {
        TokenTree::Ident(ident) => !KEYWORDS.iter().any(|w| ident == w),
        TokenTree::Literal(_) => true,
        TokenTree::Group(g) => g.delimiter() != Delimiter::Brace,
        TokenTree::Punct(p) => p.as_char() == '>',
    }
}

/// `out[at]` is the `>` of a `=>` or `->`.
fn after_arrow(out: &[TokenTree], at: usize) -> bool {
    at > 0
        && matches!(&out[at], TokenTree::Punct(p) if p.as_char() == '>')
        && matches!(&out[at - 1], TokenTree::Punct(p)
            if matches!(p.as_char(), '=' | '-') && p.spacing() == Spacing::Joint)
}

/// The index of the `::` before a turbofish whose `>` is `out[end - 1]`; `None` for any
/// other `<…>` (a qualified path, a comparison).
fn turbofish_start(out: &[TokenTree], end: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut i = end;
    while i > 0 {
        i -= 1;
        match &out[i] {
            TokenTree::Punct(p) if p.as_char() == '>' => depth += 1,
            TokenTree::Punct(p) if p.as_char() == '<' => {
                depth -= 1;
                if depth == 0 {
                    let colons = i >= 2
                        && matches!(&out[i - 1], TokenTree::Punct(p) if p.as_char() == ':')
                        && matches!(&out[i - 2], TokenTree::Punct(p)
                            if p.as_char() == ':' && p.spacing() == Spacing::Joint);
                    return (colons && i >= 3 && matches!(&out[i - 3], TokenTree::Ident(_)))
                        .then(|| i - 2);
                }
            }
            TokenTree::Punct(p) if p.as_char() == ';' => return None,
            _ => {}
        }
    }
    None
}

/// `(match <_ as Branch<Output>>::branch((operand)) { Ok(v) => v, Err(r) => break 'label r })`
/// (`r` is the function's `Err`, converted by `From::from`). Every token but the
/// operand's and the output type's is the macro's, placed at the `?`: a misuse is
/// reported there, once (the call and the match ask the same of the same span), and
/// lints that skip generated code (`unused_parens`) skip it.
fn branch(operand: TokenStream, output: &TokenStream, question: Span) -> TokenTree {
    let at = Span::call_site().located_at(question);
    // Names no constant or unit struct in the user's scope is likely to have, which a
    // pattern would otherwise match against instead of binding.
    let mut arms = lex(
        "::core::result::Result::Ok(__observe_value) => __observe_value, \
         ::core::result::Result::Err(__observe_return) => break",
    );
    arms.extend(label());
    arms.extend([ident("__observe_return")]);
    let mut expression = respan(lex("match < _ as ::observe::__private::Branch <"), at);
    expression.extend(output.clone());
    expression.extend(respan(lex("> > :: branch"), at));
    expression.extend([spanned_group(
        Delimiter::Parenthesis,
        spanned_group(Delimiter::Parenthesis, operand, at).into(),
        at,
    )]);
    expression.extend([spanned_group(Delimiter::Brace, respan(arms, at), at)]);
    spanned_group(Delimiter::Parenthesis, expression, at)
}

/// A group whose delimiters are placed at `at`, its tokens as they are.
fn spanned_group(delimiter: Delimiter, tokens: TokenStream, at: Span) -> TokenTree {
    let mut group = Group::new(delimiter, tokens);
    group.set_span(at);
    TokenTree::Group(group)
}

/// `tokens` (the macro's own) with every span set to `at`, inside groups too.
fn respan(tokens: TokenStream, at: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|token| match token {
            TokenTree::Group(g) => spanned_group(g.delimiter(), respan(g.stream(), at), at),
            mut other => {
                other.set_span(at);
                other
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::labelled_body;
    use proc_macro2::{Group, TokenStream, TokenTree};

    fn body(text: &str) -> Group {
        let stream: TokenStream = text.parse().unwrap();
        let TokenTree::Group(group) = stream.into_iter().next().unwrap() else {
            panic!("not a group")
        };
        group
    }

    fn rewritten(text: &str) -> Option<String> {
        let output: TokenStream = "Result<u8, E>".parse().unwrap();
        labelled_body(&body(text), &output).map(|t| t.to_string())
    }

    /// The operand each `?` was read as, without spaces, outermost first.
    fn operands(text: &str) -> Vec<String> {
        let out = rewritten(text).expect("rewritten");
        out.split("Branch < Result < u8 , E > > > :: branch ((")
            .skip(1)
            .map(|rest| {
                let mut depth = 2;
                let mut end = 0;
                for (i, c) in rest.char_indices() {
                    match c {
                        '(' | '[' | '{' => depth += 1,
                        ')' | ']' | '}' => {
                            depth -= 1;
                            if depth == 1 {
                                end = i;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest[..end].replace(' ', "")
            })
            .collect()
    }

    #[test]
    fn reads_the_postfix_operand_of_each_question_mark() {
        assert_eq!(operands("{ let y = check(x, 1)?; Ok(y) }"), ["check(x,1)"]);
        assert_eq!(
            operands("{ Ok(a.b::<Vec<u8>>(c)[d].e?) }"),
            ["a.b::<Vec<u8>>(c)[d].e"]
        );
        assert_eq!(operands("{ Ok(&s.parse::<u8>()?) }"), ["s.parse::<u8>()"]);
        assert_eq!(operands("{ Ok(-x.0?) }"), ["x.0"]);
        assert_eq!(
            operands("{ Ok(::std::fs::read(p)?) }"),
            ["::std::fs::read(p)"]
        );
        assert_eq!(operands("{ Ok(Vec::<u8>::new()?) }"), ["Vec::<u8>::new()"]);
        assert_eq!(operands("{ Ok((a + b)?) }"), ["(a+b)"]);
        assert_eq!(
            operands("{ if f()? { g(h()?) } else { 0..k? }; Ok(()) }").len(),
            3
        );
        assert_eq!(operands("{ Ok(self.x()??) }")[1], "self.x()");
        assert_eq!(operands("{ Ok(match v { _ => (y)? }) }"), ["(y)"]);
        assert_eq!(operands("{ Ok(match v { _ => f()? }) }"), ["f()"]);
        assert_eq!(operands("{ let s: &'static str = g()?; Ok(s) }"), ["g()"]);
    }

    #[test]
    fn return_becomes_a_break_to_the_label() {
        let out = rewritten("{ if x { return Err(E); } Ok(1) }").unwrap();
        assert!(out.starts_with("'__observe_body : {"), "{out}");
        assert!(out.contains("break '__observe_body Err (E)"), "{out}");
        assert!(!out.contains("return"), "{out}");
    }

    #[test]
    fn leaves_to_the_closure_what_it_cannot_read_for_certain() {
        for text in [
            "{ let f = |x| x?; Ok(f(1)) }",
            "{ let f = async { g()? }; Ok(1) }",
            "{ fn inner() -> R { g()? } Ok(1) }",
            "{ Ok(match x { _ => y }?) }",
            "{ Ok(unsafe { y }?) }",
            "{ Ok(<T as Tr>::f()?) }",
            "{ let s = S { a: 1 }?; Ok(s) }",
            "{ Ok(const { 1 }) }",
            "{ a || b; return Ok(1) }",
            "{ let x = ?; Ok(x) }",
            "{ Ok(return?) }",
            "{ let v = vec![g()?]; Ok(v) }",
            "{ static S: u8 = 1; Ok(g(S)?) }",
        ] {
            assert_eq!(rewritten(text), None, "{text}");
        }
    }
}
