//! Every rule of `#[health_check]`, against its options and the function, each error at
//! its token; all are collected and reported together.

use syn::spanned::Spanned;

use super::attr;
use crate::common::errors::Errors;

/// The state types the parameters borrow, in order.
pub struct Params {
    pub types: Vec<syn::Type>,
}

pub fn validate(args: &attr::Args, function: &syn::ItemFn) -> syn::Result<Params> {
    let mut errors = Errors::default();
    let sig = &function.sig;
    if let Some(constness) = &sig.constness {
        errors.at(constness.span, "a health check cannot be a `const fn`");
    }
    if !sig
        .generics
        .params
        .iter()
        .all(|p| matches!(p, syn::GenericParam::Lifetime(_)))
    {
        errors.at(
            sig.generics.span(),
            "a health check cannot be generic: its state is looked up by concrete type",
        );
    }
    if let syn::ReturnType::Default = sig.output {
        errors.at(
            sig.ident.span(),
            "a health check must return `Result<(), E>` with `E: Display`, `HealthStatus`, \
             or `Result<HealthStatus, E>`; this one returns nothing",
        );
    }
    let mut types = Vec::new();
    for input in &sig.inputs {
        match input {
            syn::FnArg::Receiver(r) => errors.at(
                r.span(),
                "a health check is a free function: its state comes from parameters borrowed \
                 from registered state, not from `self`",
            ),
            syn::FnArg::Typed(t) => match &*t.ty {
                syn::Type::Reference(r) if r.mutability.is_none() => types.push((*r.elem).clone()),
                other => errors.at(
                    other.span(),
                    "a health check parameter must be a shared reference (`&T`) to state \
                     registered once at start-up with `.state(value)`",
                ),
            },
        }
    }
    if let Some(t) = &args.timeout
        && t.nanos == 0
    {
        errors.at(
            t.lit.span(),
            "`timeout` must be above zero: a check needs time to answer",
        );
    }
    if let Some(i) = &args.interval
        && i.nanos == 0
    {
        errors.at(i.lit.span(), "`interval` must be above zero");
    }
    for lit in [&args.failure_threshold, &args.success_threshold]
        .into_iter()
        .flatten()
    {
        match lit.base10_parse::<u32>() {
            Ok(0) => errors.at(
                lit.span(),
                "a threshold is a count of consecutive runs: at least 1",
            ),
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    if let Some(name) = &args.name
        && name.value().trim().is_empty()
    {
        errors.at(name.span(), "a health check name cannot be empty");
    }
    let own = args
        .name
        .as_ref()
        .map_or_else(|| sig.ident.to_string(), |n| n.value());
    if let Some(dep) = &args.depends_on
        && dep.value() == own
    {
        errors.at(dep.span(), "a health check cannot depend on itself");
    }
    errors.finish()?;
    Ok(Params { types })
}
