//! A function's span from statics built in a `const` context: what `#[instrumented]`
//! emits instead of expanding `tracing::span!` in every function (a callsite static,
//! interest caching and a value set per function: most of what annotated code cost to
//! compile). The callsite registers itself with `tracing` on first use, as `span!`'s does.

use tracing::callsite::{Callsite as _, DefaultCallsite, Identifier};
use tracing::field::FieldSet;
use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
use tracing::metadata::Kind;
use tracing::{Level, Metadata, Span};

/// The metadata of a function's span (`const`, so it lives in a `static`), its fields
/// named, its callsite the `static` beside it.
#[allow(clippy::too_many_arguments)]
pub const fn span_metadata(
    name: &'static str,
    target: &'static str,
    level: Level,
    file: &'static str,
    line: u32,
    fields: &'static [&'static str],
    callsite: &'static DefaultCallsite,
) -> Metadata<'static> {
    Metadata::new(
        name,
        target,
        level,
        Some(file),
        Some(line),
        Some(target),
        FieldSet::new(fields, Identifier(callsite)),
        Kind::SPAN,
    )
}

/// The span of `callsite`, child of the current span, its fields unset (`Empty`), or a
/// disabled span when no subscriber wants it: what `tracing::span!` does, out of line
/// and shared by every function.
#[inline(never)]
pub fn new_span(callsite: &'static DefaultCallsite) -> Span {
    let meta = callsite.metadata();
    let level = *meta.level();
    if level > STATIC_MAX_LEVEL || level > LevelFilter::current() {
        return Span::new_disabled(meta);
    }
    let interest = callsite.interest();
    if interest.is_never() {
        return Span::new_disabled(meta);
    }
    if interest.is_always() || tracing::dispatcher::get_default(|d| d.enabled(meta)) {
        let none: [(&tracing::field::Field, Option<&dyn tracing::Value>); 0] = [];
        Span::new(meta, &meta.fields().value_set(&none))
    } else {
        Span::new_disabled(meta)
    }
}
