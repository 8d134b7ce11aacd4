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
use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Metadata, Span};

use super::meta::SpanSpec;
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
    #[inline(always)]
    fn span_metadata(&'static self) -> Option<&'static Metadata<'static>> {
        let spec = self.options.span.as_ref()?;
        let meta = self.state.span_meta.load(Acquire);
        if !meta.is_null() {
            // SAFETY: set once, from a leaked `Box`, never freed.
            return Some(unsafe { &*meta });
        }
        Some(self.build_span_metadata(spec))
    }

    /// The span's metadata, built on the first call.
    #[cold]
    #[inline(never)]
    fn build_span_metadata(&'static self, spec: &'static SpanSpec) -> &'static Metadata<'static> {
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
            Ok(_) => unsafe { &*fresh },
            Err(theirs) => {
                // SAFETY: `fresh` was never shared; `theirs` as above.
                drop(unsafe { Box::from_raw(fresh) });
                unsafe { &*theirs }
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
        let Some(interest) = self.wanted(meta) else {
            return Span::new_disabled(meta);
        };
        if interest.is_always() || tracing::dispatcher::get_default(|d| d.enabled(meta)) {
            let none: [(&tracing::field::Field, Option<&dyn tracing::Value>); 0] = [];
            Span::new(meta, &meta.fields().value_set(&none))
        } else {
            Span::new_disabled(meta)
        }
    }

    /// The cached interest in this site's span, or `None` when its level is filtered
    /// out or no subscriber will ever want it.
    #[inline(always)]
    fn wanted(&'static self, meta: &'static Metadata<'static>) -> Option<Interest> {
        let level = *meta.level();
        if level > STATIC_MAX_LEVEL || level > LevelFilter::current() {
            return None;
        }
        let interest = self.interest();
        (!interest.is_never()).then_some(interest)
    }

    /// Opens this site's span as [`new_span`](Self::new_span) does and enters it, through
    /// the current dispatcher, without a [`Span`] handle (which would carry, and for a
    /// scoped dispatcher reference-count, the dispatcher): `None` when no subscriber
    /// wants it. Close it with [`close_entered`] on the same thread, in the same
    /// dispatcher scope (a synchronous call's).
    pub(crate) fn open_entered(&'static self) -> Option<Id> {
        let meta = self.span_metadata()?;
        let interest = self.wanted(meta)?;
        tracing::dispatcher::get_default(|d| {
            if !(interest.is_always() || d.enabled(meta)) {
                return None;
            }
            let none: [(&tracing::field::Field, Option<&dyn tracing::Value>); 0] = [];
            let id = d.new_span(&Attributes::new(meta, &meta.fields().value_set(&none)));
            d.enter(&id);
            Some(id)
        })
    }
}

/// Exits and closes a span from [`SiteMeta::open_entered`], as dropping an
/// `EnteredSpan` does.
///
/// [`SiteMeta::open_entered`]: super::meta::SiteMeta::open_entered
pub(crate) fn close_entered(id: Id) {
    tracing::dispatcher::get_default(|d| {
        d.exit(&id);
        d.try_close(id.clone());
    });
}
