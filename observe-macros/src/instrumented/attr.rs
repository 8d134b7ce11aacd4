//! Parsing of `#[instrumented(...)]` arguments into typed values that keep their tokens,
//! so every later error can point at the offending token.
//!
//! Parsing checks only the grammar; rules across arguments and against the function live
//! in `valid.rs`.

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, Ident, LitBool, LitStr, Path, Token, bracketed, parenthesized};

use crate::common::options::parse_options;

/// A histogram bound as written, with its parsed value.
pub struct Bound {
    pub value: f64,
    pub tokens: Expr,
}

/// `buckets = [..]`.
pub struct Buckets {
    pub bracket_span: Span,
    pub bounds: Vec<Bound>,
}

/// One `key = "value"` of `labels(...)`.
pub struct Label {
    pub key: String,
    pub key_span: Span,
    pub value: LitStr,
}

/// How a span field is recorded.
#[derive(Clone, Copy)]
pub enum Sigil {
    /// `key = expr`: as a tracing `Value`.
    Value,
    /// `key = ?expr`: with `Debug`.
    Debug,
    /// `key = %expr`: with `Display`.
    Display,
}

/// One `fields(...)` entry.
pub struct Field {
    /// Dotted name, e.g. `user.id`.
    pub name: Punctuated<Ident, Token![.]>,
    /// `None` for a bare parameter name, recorded with `Debug`.
    pub value: Option<(Sigil, Expr)>,
}

/// Every argument, `None`/empty when absent. `*_kw` spans point at the keyword.
#[derive(Default)]
pub struct Args {
    pub name: Option<LitStr>,
    pub buckets: Option<Buckets>,
    pub labels: Vec<Label>,
    pub metrics: Option<LitBool>,
    pub span: Option<LitBool>,
    pub level: Option<LitStr>,
    pub skip: Vec<Ident>,
    pub skip_all: Option<Span>,
    pub fields: Vec<Field>,
    pub err: Option<Span>,
    pub ok_if: Option<(Span, Path)>,
    pub error_if: Option<(Span, Path)>,
    /// `objective = EXPR`: the keyword's span and the expression (a `const` path).
    pub objective: Option<(Span, Expr)>,
}

const OPTIONS: &[&str] = &[
    "name",
    "buckets",
    "labels",
    "metrics",
    "span",
    "level",
    "skip",
    "skip_all",
    "fields",
    "err",
    "ok_if",
    "error_if",
    "objective",
];

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        parse_options(input, OPTIONS, |key, input| {
            match key.to_string().as_str() {
                "name" => {
                    input.parse::<Token![=]>()?;
                    args.name = Some(input.parse()?);
                }
                "buckets" => {
                    input.parse::<Token![=]>()?;
                    args.buckets = Some(parse_buckets(input)?);
                }
                "labels" => args.labels = parse_labels(input)?,
                "metrics" => {
                    input.parse::<Token![=]>()?;
                    args.metrics = Some(input.parse()?);
                }
                "span" => {
                    input.parse::<Token![=]>()?;
                    args.span = Some(input.parse()?);
                }
                "level" => {
                    input.parse::<Token![=]>()?;
                    args.level = Some(input.parse()?);
                }
                "skip_all" => args.skip_all = Some(key.span()),
                "skip" => {
                    let content;
                    parenthesized!(content in input);
                    let list = Punctuated::<Ident, Token![,]>::parse_terminated_with(
                        &content,
                        syn::ext::IdentExt::parse_any,
                    )?;
                    args.skip = list.into_iter().collect();
                }
                "fields" => {
                    let content;
                    parenthesized!(content in input);
                    let list = Punctuated::<Field, Token![,]>::parse_terminated(&content)?;
                    args.fields = list.into_iter().collect();
                }
                "err" => args.err = Some(key.span()),
                "ok_if" => {
                    input.parse::<Token![=]>()?;
                    args.ok_if = Some((key.span(), input.parse()?));
                }
                "error_if" => {
                    input.parse::<Token![=]>()?;
                    args.error_if = Some((key.span(), input.parse()?));
                }
                "objective" => {
                    input.parse::<Token![=]>()?;
                    args.objective = Some((key.span(), input.parse()?));
                }
                _ => unreachable!("parse_options passes known options only"),
            }
            Ok(())
        })?;
        Ok(args)
    }
}

fn parse_buckets(input: ParseStream<'_>) -> syn::Result<Buckets> {
    let content;
    let bracket = bracketed!(content in input);
    let exprs = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
    let mut bounds = Vec::with_capacity(exprs.len());
    for expr in exprs {
        let value = number(&expr).ok_or_else(|| {
            syn::Error::new_spanned(&expr, "a bucket bound must be a number literal, in seconds")
        })?;
        bounds.push(Bound {
            value,
            tokens: expr,
        });
    }
    Ok(Buckets {
        bracket_span: bracket.span.join(),
        bounds,
    })
}

/// The value of a float or integer literal, possibly negated.
fn number(expr: &Expr) -> Option<f64> {
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            syn::Lit::Float(f) => f.base10_parse::<f64>().ok(),
            syn::Lit::Int(i) => i.base10_parse::<f64>().ok(),
            _ => None,
        },
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr,
            ..
        }) => number(expr).map(|v| -v),
        _ => None,
    }
}

fn parse_labels(input: ParseStream<'_>) -> syn::Result<Vec<Label>> {
    let content;
    parenthesized!(content in input);
    let mut labels = Vec::new();
    while !content.is_empty() {
        let (key, key_span) = if content.peek(LitStr) {
            let lit: LitStr = content.parse()?;
            (lit.value(), lit.span())
        } else {
            let ident: Ident = content.call(syn::ext::IdentExt::parse_any)?;
            (ident.to_string(), ident.span())
        };
        content.parse::<Token![=]>()?;
        let value: Expr = content.parse()?;
        let value = match value {
            Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => s,
            other => {
                return Err(syn::Error::new_spanned(
                    other,
                    "a label value must be a string literal: static labels are fixed at \
                     compile time so the series count stays bounded",
                ));
            }
        };
        labels.push(Label {
            key,
            key_span,
            value,
        });
        if content.is_empty() {
            break;
        }
        content.parse::<Token![,]>()?;
    }
    Ok(labels)
}

impl Parse for Field {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name = Punctuated::<Ident, Token![.]>::parse_separated_nonempty_with(
            input,
            syn::ext::IdentExt::parse_any,
        )?;
        if !input.peek(Token![=]) {
            return Ok(Field { name, value: None });
        }
        input.parse::<Token![=]>()?;
        let sigil = if input.peek(Token![?]) {
            input.parse::<Token![?]>()?;
            Sigil::Debug
        } else if input.peek(Token![%]) {
            input.parse::<Token![%]>()?;
            Sigil::Display
        } else {
            Sigil::Value
        };
        Ok(Field {
            name,
            value: Some((sigil, input.parse()?)),
        })
    }
}

impl Field {
    /// The span of the whole field name, for errors.
    pub fn span(&self) -> Span {
        self.name.span()
    }
}

/// Parses the attribute's argument tokens.
pub fn parse(args: TokenStream) -> syn::Result<Args> {
    syn::parse2(args)
}
