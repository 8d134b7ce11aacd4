//! Parsing of `#[health_check(...)]` arguments; values keep their tokens for errors.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{LitInt, LitStr, Token, parenthesized};

use crate::common::duration;
use crate::common::options::parse_options;

/// A duration with its literal, for errors.
pub struct DurationArg {
    pub nanos: u64,
    pub lit: LitStr,
}

/// Every argument.
#[derive(Default)]
pub struct Args {
    pub critical: Option<Span>,
    pub startup: Option<Span>,
    pub name: Option<LitStr>,
    pub timeout: Option<DurationArg>,
    pub interval: Option<DurationArg>,
    pub failure_threshold: Option<LitInt>,
    pub success_threshold: Option<LitInt>,
    pub groups: Vec<LitStr>,
    pub depends_on: Option<LitStr>,
}

const OPTIONS: &[&str] = &[
    "critical",
    "name",
    "timeout",
    "interval",
    "failure_threshold",
    "success_threshold",
    "startup",
    "groups",
    "depends_on",
];

fn duration_arg(input: ParseStream<'_>) -> syn::Result<DurationArg> {
    let lit: LitStr = input.parse()?;
    let nanos = duration::parse(&lit.value()).map_err(|e| syn::Error::new(lit.span(), e))?;
    Ok(DurationArg { nanos, lit })
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        parse_options(input, OPTIONS, |key, input| {
            match key.to_string().as_str() {
                "critical" => args.critical = Some(key.span()),
                "startup" => args.startup = Some(key.span()),
                "name" => {
                    input.parse::<Token![=]>()?;
                    args.name = Some(input.parse()?);
                }
                "timeout" => {
                    input.parse::<Token![=]>()?;
                    args.timeout = Some(duration_arg(input)?);
                }
                "interval" => {
                    input.parse::<Token![=]>()?;
                    args.interval = Some(duration_arg(input)?);
                }
                "failure_threshold" => {
                    input.parse::<Token![=]>()?;
                    args.failure_threshold = Some(input.parse()?);
                }
                "success_threshold" => {
                    input.parse::<Token![=]>()?;
                    args.success_threshold = Some(input.parse()?);
                }
                "groups" => {
                    let content;
                    parenthesized!(content in input);
                    args.groups = Punctuated::<LitStr, Token![,]>::parse_terminated(&content)?
                        .into_iter()
                        .collect();
                }
                "depends_on" => {
                    input.parse::<Token![=]>()?;
                    args.depends_on = Some(input.parse()?);
                }
                _ => unreachable!("parse_options passes known options only"),
            }
            Ok(())
        })?;
        Ok(args)
    }
}
