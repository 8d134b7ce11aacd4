//! Every rule across arguments, and between arguments and the function, each with the
//! reason it exists. All errors are collected and reported together.

use std::collections::HashSet;

use syn::spanned::Spanned;
use syn::{FnArg, Pat, ReturnType};

use super::attr::Args;
use crate::common::errors::Errors;
use crate::common::names::{RESERVED_LABELS, is_function_name, is_label_name};

/// The tracing levels `level = "…"` accepts.
pub const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];

/// Names of the function's simple parameters (`self` included), for `skip` and `fields`.
fn param_names(item: &super::Function) -> Vec<String> {
    item.sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Receiver(_) => Some("self".to_owned()),
            FnArg::Typed(t) => match &*t.pat {
                Pat::Ident(p) => Some(p.ident.to_string()),
                _ => None,
            },
        })
        .collect()
}

pub fn check(args: &Args, item: &super::Function) -> syn::Result<()> {
    let mut errors = Errors::default();
    let sig = &item.sig;

    // A `const fn` cannot read a clock or touch atomics at compile time.
    if let Some(constness) = &sig.constness {
        errors.at(
            constness.span,
            "`#[instrumented]` cannot be applied to a `const fn`: it reads a clock at run time",
        );
    }
    // A diverging function never returns a value to classify or time.
    if let ReturnType::Type(_, ty) = &sig.output
        && matches!(**ty, syn::Type::Never(_))
    {
        errors.at(
            ty.span(),
            "`#[instrumented]` cannot time a function that never returns (`-> !`)",
        );
    }

    if let Some(name) = &args.name
        && !is_function_name(&name.value())
    {
        errors.at(
            name.span(),
            format!(
                "invalid function name {:?}: expected identifiers (`[a-zA-Z_][a-zA-Z0-9_]*`), \
                 optionally joined by `::`",
                name.value()
            ),
        );
    }

    if let Some(buckets) = &args.buckets {
        if buckets.bounds.is_empty() {
            errors.at(
                buckets.bracket_span,
                "`buckets` must list at least one upper bound, in seconds",
            );
        }
        let mut previous: Option<f64> = None;
        for bound in &buckets.bounds {
            let v = bound.value;
            if !v.is_finite() {
                errors.push(syn::Error::new_spanned(
                    &bound.tokens,
                    "bucket bound is not finite; `+Inf` is always added for you",
                ));
            } else if v <= 0.0 {
                errors.push(syn::Error::new_spanned(
                    &bound.tokens,
                    "bucket bound must be positive: durations are never negative",
                ));
            } else if let Some(p) = previous.filter(|p| v <= *p) {
                errors.push(syn::Error::new_spanned(
                    &bound.tokens,
                    format!("bucket bounds must be strictly increasing: {v} follows {p}"),
                ));
            }
            if v.is_finite() {
                previous = Some(previous.map_or(v, |p: f64| p.max(v)));
            }
        }
    }

    let mut label_keys = HashSet::new();
    for label in &args.labels {
        let key = label.key.as_str();
        if !is_label_name(key) {
            errors.at(
                label.key_span,
                format!("invalid Prometheus label name {key:?}: expected `[a-zA-Z_][a-zA-Z0-9_]*`"),
            );
        } else if key.starts_with("__") {
            errors.at(
                label.key_span,
                format!(
                    "label name {key:?} is reserved: names starting with `__` are Prometheus' own"
                ),
            );
        } else if RESERVED_LABELS.contains(&key) {
            errors.at(
                label.key_span,
                format!("label name {key:?} is reserved: it is used by the histogram or by observe's own labels"),
            );
        }
        if !label_keys.insert(key) {
            errors.at(
                label.key_span,
                format!("label {key:?} specified more than once"),
            );
        }
    }

    let metrics_on = args.metrics.as_ref().is_none_or(|b| b.value);
    let span_on = args.span.as_ref().is_none_or(|b| b.value);
    if let (Some(m), Some(s)) = (&args.metrics, &args.span)
        && !m.value
        && !s.value
    {
        errors.at(
            s.span(),
            "`metrics = false` and `span = false` leave nothing to instrument; remove the attribute",
        );
    }
    if !metrics_on {
        if let Some(b) = &args.buckets {
            errors.at(
                b.bracket_span,
                "`buckets` has no effect with `metrics = false`",
            );
        }
        if let Some(l) = args.labels.first() {
            errors.at(l.key_span, "`labels` has no effect with `metrics = false`");
        }
        if let Some((kw, _)) = &args.objective {
            errors.at(
                *kw,
                "an objective is measured on the function's metrics, but `metrics = false`",
            );
        }
    }
    if !span_on {
        if let Some(level) = &args.level {
            errors.at(level.span(), "`level` has no effect with `span = false`");
        }
        if let Some(f) = args.fields.first() {
            errors.at(f.span(), "`fields` has no effect with `span = false`");
        }
        if let Some(err) = args.err {
            errors.at(
                err,
                "`err` records the error on the span, but `span = false`",
            );
        }
    }

    if let Some(level) = &args.level {
        let value = level.value().to_ascii_lowercase();
        if !LEVELS.contains(&value.as_str()) {
            errors.at(
                level.span(),
                format!(
                    "unknown level {:?}: expected one of \"trace\", \"debug\", \"info\", \"warn\", \"error\"",
                    level.value()
                ),
            );
        }
    }

    let params = param_names(item);
    if let (Some(all), Some(first)) = (args.skip_all, args.skip.first()) {
        let _ = all;
        errors.at(first.span(), "`skip(...)` is redundant with `skip_all`");
    }
    for ident in &args.skip {
        let name = ident.to_string();
        if !params.contains(&name) {
            errors.at(
                ident.span(),
                format!("`skip` names `{name}`, which is not a parameter of this function"),
            );
        }
    }
    for field in &args.fields {
        if field.value.is_some() {
            continue;
        }
        // A bare name records a parameter; it must exist and not be skipped.
        let name: Vec<String> = field.name.iter().map(|i| i.to_string()).collect();
        let name = name.join(".");
        if !params.contains(&name) {
            errors.at(
                field.span(),
                format!(
                    "`fields({name})` records a parameter, but this function has no parameter \
                     `{name}`; write `{name} = <expression>` to record a value"
                ),
            );
        } else if args.skip_all.is_some() || args.skip.iter().any(|s| *s == name) {
            errors.at(
                field.span(),
                format!("`{name}` is both skipped and recorded"),
            );
        }
    }

    if let (Some(_), Some((span, _))) = (&args.ok_if, &args.error_if) {
        errors.at(
            *span,
            "`ok_if` and `error_if` are exclusive: give one predicate",
        );
    }
    // Classification and `err` need a return value.
    if matches!(sig.output, ReturnType::Default) {
        let what = sig.ident.to_string();
        for (option, span) in [
            ("error_if", args.error_if.as_ref().map(|(s, _)| *s)),
            ("ok_if", args.ok_if.as_ref().map(|(s, _)| *s)),
            ("err", args.err),
        ] {
            if let Some(span) = span {
                errors.at(
                    span,
                    format!(
                        "`{option}` classifies the return value, but `fn {what}` returns nothing"
                    ),
                );
            }
        }
    }

    errors.finish()
}
