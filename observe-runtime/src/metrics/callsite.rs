//! A function's span, from its [`Site`]: the site is the span's `tracing` callsite, and
//! the span's metadata is built on the first call (what `tracing::span!` does with two
//! `const`-built statics per call site, which were a large part of what an annotated
//! function cost to compile). Registration with `tracing` and interest caching follow
//! `tracing-core`'s `DefaultCallsite`.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use tracing::callsite::{Callsite, Identifier};
use tracing::field::FieldSet;
use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
use tracing::metadata::Kind;
use tracing::subscriber::Interest;
use tracing::{Metadata, Span};

use super::site::Site;

use super::meta::UNREGISTERED;
const REGISTERING: u8 = 1;
const REGISTERED: u8 = 2;

const INTEREST_NEVER: u8 = 0;
const INTEREST_SOMETIMES: u8 = 1;
const INTEREST_ALWAYS: u8 = 2;

impl Callsite for Site {
    fn set_interest(&self, interest: Interest) {
        let interest = if interest.is_never() {
            INTEREST_NEVER
        } else if interest.is_always() {
            INTEREST_ALWAYS
        } else {
            INTEREST_SOMETIMES
        };
        self.state.interest.store(interest, Release);
    }

    fn metadata(&self) -> &Metadata<'_> {
        let meta = self.state.span_meta.load(Acquire);
        assert!(
            !meta.is_null(),
            "a site registers its callsite after building its span metadata"
        );
        // SAFETY: set once, from a leaked `Box`, never freed.
        unsafe { &*meta }
    }
}

impl Site {
    /// The metadata of this site's span (built on first use; the site is its callsite).
    /// `None` for a site without a span.
    fn span_metadata(&'static self) -> Option<&'static Metadata<'static>> {
        let spec = self.options.span.as_ref()?;
        let meta = self.state.span_meta.load(Acquire);
        if !meta.is_null() {
            // SAFETY: set once, from a leaked `Box`, never freed.
            return Some(unsafe { &*meta });
        }
        let fresh = Box::into_raw(Box::new(Metadata::new(
            self.function,
            self.module,
            spec.level,
            Some(self.file),
            Some(self.line),
            Some(self.module),
            FieldSet::new(spec.fields, Identifier(self)),
            Kind::SPAN,
        )));
        match self
            .state
            .span_meta
            .compare_exchange(std::ptr::null_mut(), fresh, AcqRel, Acquire)
        {
            // SAFETY: ours, leaked from now on (one per site).
            Ok(_) => Some(unsafe { &*fresh }),
            Err(theirs) => {
                // SAFETY: `fresh` was never shared; `theirs` as above.
                drop(unsafe { Box::from_raw(fresh) });
                Some(unsafe { &*theirs })
            }
        }
    }

    /// The cached interest of subscribers in this site's span, registering the site with
    /// `tracing` the first time.
    fn interest(&'static self) -> Interest {
        match self.state.interest.load(Relaxed) {
            INTEREST_NEVER => Interest::never(),
            INTEREST_SOMETIMES => Interest::sometimes(),
            INTEREST_ALWAYS => Interest::always(),
            _ => self.register(),
        }
    }

    #[cold]
    #[inline(never)]
    fn register(&'static self) -> Interest {
        match self
            .state
            .registration
            .compare_exchange(UNREGISTERED, REGISTERING, AcqRel, Acquire)
        {
            Ok(_) => {
                tracing::callsite::register(self);
                self.state.registration.store(REGISTERED, Release);
            }
            Err(REGISTERED) => {}
            // Another thread is registering it: ask the dispatcher this time.
            Err(_) => return Interest::sometimes(),
        }
        match self.state.interest.load(Relaxed) {
            INTEREST_NEVER => Interest::never(),
            INTEREST_ALWAYS => Interest::always(),
            _ => Interest::sometimes(),
        }
    }

    /// A new span for one call of this site: a child of the current span, its fields
    /// unset (`Empty`), or a disabled span when no subscriber wants it (what
    /// `tracing::span!` does). [`Span::none()`] for a site without a span.
    pub fn new_span(&'static self) -> Span {
        let Some(meta) = self.span_metadata() else {
            return Span::none();
        };
        let level = *meta.level();
        if level > STATIC_MAX_LEVEL || level > LevelFilter::current() {
            return Span::new_disabled(meta);
        }
        let interest = self.interest();
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
}
