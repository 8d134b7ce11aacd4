//! Early returns without a closure: in a body whose `return`s are all at its own level,
//! each `return` becomes a `break` out of a labelled block, so the body runs in place as
//! a block (between the call's entry and exit) instead of as a closure called once.
//!
//! Why: a closure is a body of its own to type-check, borrow-check and code-generate per
//! function; in the compile-time benchmark (`benches/compile/`, `--body try`) the closures
//! were about a tenth of a debug build of 500 annotated functions.
//!
//! A `?` needs no rewriting: in a function whose declared `Result` is classified by
//! default, a `?` leaves only with an error, and the call's drop records it as one (see
//! `observe_runtime::__private::Call`). Anything the walk cannot read for certain returns
//! `None`, and the body runs as a closure: a macro call, a closure, an `async` block or a
//! nested item (their `return` is their own, and a macro may expand to one).

use proc_macro2::{Delimiter, Group, Ident, Punct, Spacing, Span, TokenStream, TokenTree};

/// The label of the block the body runs in.
const LABEL: &str = "__observe_body";

/// Words after which the body is left to the closure: they open something whose own
/// `return` must stay (closures, `async` blocks, items), or that we do not read (`const`
/// blocks).
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

/// `'__observe_body: { … }` with every `return` of the body's own level a `break` to the
/// label, or `None` when the body must run as a closure. `body` is the function's brace
/// group.
pub(super) fn labelled_body(body: &Group) -> Option<TokenStream> {
    let statements = rewrite(body.stream())?;
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

fn rewrite(stream: TokenStream) -> Option<TokenStream> {
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
            TokenTree::Group(g) => {
                // A macro call (`name!(…)`): it may expand to a `return`.
                if let [.., TokenTree::Ident(_), TokenTree::Punct(bang)] = out.as_slice()
                    && bang.as_char() == '!'
                    && bang.spacing() == Spacing::Alone
                {
                    return None;
                }
                let mut inner = Group::new(g.delimiter(), rewrite(g.stream())?);
                inner.set_span(g.span());
                out.push(TokenTree::Group(inner));
            }
            other => out.push(other),
        }
    }
    Some(out.into_iter().collect())
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
        labelled_body(&body(text)).map(|t| t.to_string())
    }

    #[test]
    fn return_becomes_a_break_to_the_label() {
        let out = rewritten("{ if x { return Err(E); } Ok(1) }").unwrap();
        assert!(out.starts_with("'__observe_body : {"), "{out}");
        assert!(out.contains("break '__observe_body Err (E)"), "{out}");
        assert!(!out.contains("return"), "{out}");
        let out = rewritten("{ for v in w { if v { return Ok(g(v)?); } } Ok(0) }").unwrap();
        assert!(out.contains("break '__observe_body Ok (g (v) ?)"), "{out}");
        let out = rewritten("{ let s: &'static str = g()?; return Ok(s) }").unwrap();
        assert!(out.contains("&'static str"), "{out}");
    }

    #[test]
    fn leaves_to_the_closure_what_it_cannot_read_for_certain() {
        for text in [
            "{ let f = |x| { return x; }; Ok(f(1)) }",
            "{ let f = async { return 1; }; Ok(1) }",
            "{ fn inner() -> R { return g(); } Ok(1) }",
            "{ Ok(const { 1 }) }",
            "{ a || b; return Ok(1) }",
            "{ let v = vec![g()]; return Ok(v) }",
            "{ static S: u8 = 1; return Ok(S) }",
        ] {
            assert_eq!(rewritten(text), None, "{text}");
        }
    }
}
