//! W3C Trace Context (Level 2), by the letter: observe's `traceparent` / `tracestate`
//! propagator.
//!
//! What it accepts and what restarts a trace:
//!
//! - `traceparent` must be `version-traceid-parentid-flags` in lowercase hex with exactly
//!   2, 32, 16 and 2 digits; spaces and tabs around the value are ignored. Version `00`
//!   allows nothing after the flags; a higher version is read by its prefix (at least 55
//!   characters, and the flags followed by the end or `-`); version `ff` is invalid. An
//!   all-zero trace id or parent id is invalid. More than one `traceparent` line is
//!   invalid. **Any invalid `traceparent` restarts the trace, and its `tracestate` is
//!   not propagated.**
//! - The flags are kept: *sampled* (`01`) and Level 2's *random* (`02`); other bits are
//!   sent as zero. A trace we start ourselves has a random trace id, so we send the
//!   random flag.
//! - `tracestate` lines are combined in order (`,`), empty members and spaces around
//!   members are ignored, and the list is checked against the current grammar: a key is
//!   1–256 of `a-z 0-9 _ - * / @` starting with a letter or digit, a value 1–256 printable
//!   ASCII characters except `,` and `=`, not ending in a space. A header with an invalid
//!   member or more than 32 members is **discarded** whole; a key that appears twice is
//!   passed on as it came (`tracestate` is not changed while `traceparent`'s trace is
//!   not). A list longer
//!   than 512 characters is **truncated** by whole members when sent: members over 128
//!   characters go first, then members from the end.
//! - With a vendor key ([`W3cTraceContext::with_vendor_key`]), our member (value: our
//!   span id) is added or updated and moved to the front, as the specification requires
//!   of the service that changes it.
//!
//! The stock `TraceContextPropagator` of opentelemetry_sdk 0.33 accepts wrong field
//! lengths, masks the flags to *sampled*, validates keys with the older `tenant@vendor`
//! grammar, forwards empty values, keeps the first 32 members of a longer list, and reads
//! only the first of repeated header lines; this one does none of that.
//!
//! ```
//! use std::collections::HashMap;
//! use observe_runtime::propagation::W3cTraceContext;
//! use opentelemetry::propagation::TextMapPropagator;
//! use opentelemetry::trace::TraceContextExt;
//!
//! let mut incoming = HashMap::new();
//! incoming.insert("traceparent".to_string(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-03".to_string());
//! incoming.insert("tracestate".to_string(), "congo=t61rcWkgMzE".to_string());
//! let cx = W3cTraceContext::new().extract(&incoming);
//! assert!(cx.span().span_context().is_sampled());
//!
//! // A pass-through keeps both headers, the random flag included.
//! let mut outgoing = HashMap::new();
//! W3cTraceContext::new().inject_context(&cx, &mut outgoing);
//! assert_eq!(outgoing["traceparent"], incoming["traceparent"]);
//! assert_eq!(outgoing["tracestate"], "congo=t61rcWkgMzE");
//! ```

#[cfg(feature = "actix")]
pub(crate) mod headers;
mod traceparent;
mod tracestate;

use traceparent::format_traceparent;
pub use traceparent::parse_traceparent;
pub use tracestate::parse_tracestate;
use tracestate::{has_repeated_key, join, parse_members, truncate, valid_key};

#[cfg(feature = "actix")]
pub(crate) use headers::{current_context, headers_of};
#[cfg(feature = "actix")]
pub use headers::{outgoing_headers, trace_id};

use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter,
};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceId, TraceState};

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// The *sampled* flag.
pub const SAMPLED: u8 = 0x01;
/// Level 2's *random* flag: the trace id's right-most 7 bytes are random.
pub const RANDOM: u8 = 0x02;
/// Most list members `tracestate` may have.
pub const MAX_MEMBERS: usize = 32;
/// Longest `tracestate` we send, in characters.
pub const MAX_TRACESTATE: usize = 512;

/// What came in with the request, kept in the context so that outgoing requests of the
/// same trace carry the flags and `tracestate` exactly (OpenTelemetry's `TraceState`
/// cannot hold every key the current grammar allows, and its SDK clears unknown flags).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Incoming {
    trace_id: TraceId,
    flags: u8,
    /// The valid incoming list, canonical (`k=v,k=v`), when OpenTelemetry's `TraceState`
    /// cannot hold it (its key grammar is the older one); `None` when the `TraceState`
    /// of the remote span context holds it exactly.
    tracestate: Option<String>,
}

/// observe's W3C Trace Context propagator; see the [module documentation](self).
#[derive(Clone, Debug, Default)]
pub struct W3cTraceContext {
    vendor: Option<String>,
}

/// A vendor key that the `tracestate` grammar does not allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidKey(pub String);

impl std::fmt::Display for InvalidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} is not a tracestate key: 1-256 of a-z 0-9 _ - * / @, starting with a letter or digit",
            self.0
        )
    }
}

impl std::error::Error for InvalidKey {}

impl W3cTraceContext {
    /// The propagator, without a `tracestate` entry of its own.
    ///
    /// ```
    /// let propagator = observe_runtime::propagation::W3cTraceContext::new();
    /// # let _ = propagator;
    /// ```
    pub fn new() -> Self {
        W3cTraceContext { vendor: None }
    }

    /// Adds our own `tracestate` member, `key=<our span id>`, in front of every outgoing
    /// list (updating it if it was there).
    ///
    /// # Errors
    /// `key` does not follow the key grammar.
    ///
    /// ```
    /// use observe_runtime::propagation::W3cTraceContext;
    /// assert!(W3cTraceContext::new().with_vendor_key("payments").is_ok());
    /// assert!(W3cTraceContext::new().with_vendor_key("Payments").is_err());
    /// ```
    pub fn with_vendor_key(mut self, key: impl Into<String>) -> Result<Self, InvalidKey> {
        let key = key.into();
        if !valid_key(&key) {
            return Err(InvalidKey(key));
        }
        self.vendor = Some(key);
        Ok(self)
    }
}

static PARENT_BASED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A fresh span id for an operation observe does not record (an unsampled request's
/// server span): W3C lets a participant invent ids for operations it does not record,
/// and requires it to send its own parent-id. SplitMix64 over a per-thread state seeded
/// from the standard library's random hash keys: a few instructions, never zero.
#[cfg(feature = "actix")]
pub(crate) fn invented_span_id() -> opentelemetry::trace::SpanId {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            std::collections::hash_map::RandomState::new().build_hasher().finish(),
        );
    }
    STATE.with(|state| {
        let x = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(x);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        opentelemetry::trace::SpanId::from_bytes(z.max(1).to_be_bytes())
    })
}

/// `cx`'s incoming remote span replaced by an operation of our own that is not recorded:
/// same trace, flags and `tracestate`, an invented span id. Passed on, it makes the
/// downstream parent-id ours, as the processing model requires.
#[cfg(feature = "actix")]
pub(crate) fn unrecorded_operation(cx: &Context) -> Context {
    let span = cx.span();
    let sc = span.span_context();
    let own = SpanContext::new(
        sc.trace_id(),
        invented_span_id(),
        sc.trace_flags(),
        false,
        sc.trace_state().clone(),
    );
    cx.with_remote_span_context(own)
}

/// Declares whether the tracer provider's sampler follows the incoming parent's decision
/// (`ParentBased`: the SDK's default, and what `observe::init()` declares unless
/// `OTEL_TRACES_SAMPLER` names a sampler that ignores the parent).
///
/// When it does, a request that arrives with an unsampled `traceparent` is not traced:
/// `observe::Middleware` makes its server span with the incoming context current, so
/// observe's OpenTelemetry layer leaves that span and everything below it out, while the
/// trace id still reaches log lines, `trace_id()` and downstream requests (still
/// unsampled, the incoming `tracestate` unchanged, and as parent-id an id the middleware
/// invents for the request, since a participant sends its own). Off until
/// declared: observe cannot see the sampler of a provider built by hand.
///
/// ```
/// observe_runtime::propagation::set_parent_based_sampling(true);
/// assert!(observe_runtime::propagation::parent_based_sampling());
/// ```
pub fn set_parent_based_sampling(on: bool) {
    PARENT_BASED.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`set_parent_based_sampling`] declared a parent-based sampler.
///
/// ```
/// let _declared: bool = observe_runtime::propagation::parent_based_sampling();
/// ```
pub fn parent_based_sampling() -> bool {
    PARENT_BASED.load(std::sync::atomic::Ordering::Relaxed)
}

/// The `traceparent` value for the span of `cx` (always version `00`), with the flags
/// this propagator sends: sampled as decided, random as received or, for a trace we
/// started, set. `None` without a valid span context.
///
/// ```
/// let cx = opentelemetry::Context::new();
/// assert_eq!(observe_runtime::propagation::traceparent_of(&cx), None);
/// ```
pub fn traceparent_of(cx: &Context) -> Option<String> {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    let incoming = incoming_for(cx, sc);
    Some(format_traceparent(
        sc.trace_id(),
        sc.span_id(),
        flags_for(sc, incoming),
    ))
}

fn incoming_for<'a>(cx: &'a Context, sc: &SpanContext) -> Option<&'a Incoming> {
    cx.get::<Incoming>().filter(|i| i.trace_id == sc.trace_id())
}

fn flags_for(sc: &SpanContext, incoming: Option<&Incoming>) -> u8 {
    let sampled = if sc.is_sampled() { SAMPLED } else { 0 };
    let random = match incoming {
        Some(i) => i.flags & RANDOM,
        // A remote context that did not come through us: keep what it says.
        None if sc.is_remote() => sc.trace_flags().to_u8() & RANDOM,
        // A trace started here: the SDK's trace ids are random.
        None => RANDOM,
    };
    sampled | random
}

impl TextMapPropagator for W3cTraceContext {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let incoming = incoming_for(cx, sc);
        injector.set(
            TRACEPARENT,
            format_traceparent(sc.trace_id(), sc.span_id(), flags_for(sc, incoming)),
        );
        // Fast path: nothing changed the incoming list since it came in, and we add
        // nothing: send it as it came (canonical), as a pass-through must.
        let sdk_header = sc.trace_state().header();
        if self.vendor.is_none() {
            match incoming {
                // The `TraceState` is the list, or a sampler's update of it.
                Some(Incoming {
                    tracestate: None, ..
                })
                | None
                    if sdk_header.len() <= MAX_TRACESTATE =>
                {
                    if !sdk_header.is_empty() {
                        injector.set(TRACESTATE, sdk_header);
                    }
                    return;
                }
                // Ours, as long as nothing put members into the empty `TraceState`.
                Some(Incoming {
                    tracestate: Some(list),
                    ..
                }) if sdk_header.is_empty() && list.len() <= MAX_TRACESTATE => {
                    injector.set(TRACESTATE, list.clone());
                    return;
                }
                _ => {}
            }
        }
        // What the SDK holds (possibly updated by a sampler) over what came in: members
        // it changed or added move to the front.
        let sdk = parse_tracestate(&sdk_header).unwrap_or_default();
        let mut members = match incoming {
            Some(Incoming {
                tracestate: Some(ours),
                ..
            }) => {
                let mut list = parse_tracestate(ours).unwrap_or_default();
                for (k, v) in sdk.iter().rev() {
                    if !list.iter().any(|(ik, iv)| ik == k && iv == v) {
                        list.retain(|(ik, _)| ik != k);
                        list.insert(0, (k.clone(), v.clone()));
                    }
                }
                list
            }
            _ => sdk,
        };
        if let Some(key) = &self.vendor {
            members.retain(|(k, _)| k != key);
            members.insert(0, (key.clone(), sc.span_id().to_string()));
            members.truncate(MAX_MEMBERS);
        }
        truncate(&mut members);
        if !members.is_empty() {
            injector.set(TRACESTATE, join(members.iter().map(|(k, v)| (k, v))));
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let parents = extractor.get_all(TRACEPARENT).unwrap_or_default();
        // Two `traceparent` lines: which one is the parent is unknowable; restart.
        let [parent] = parents.as_slice() else {
            return cx.clone();
        };
        let Some((trace_id, span_id, flags)) = parse_traceparent(parent) else {
            return cx.clone();
        };
        let lines = extractor.get_all(TRACESTATE).unwrap_or_default();
        let joined;
        let combined = match lines.as_slice() {
            [] => "",
            [one] => one,
            many => {
                joined = many.join(",");
                &joined
            }
        };
        // OpenTelemetry's `TraceState` takes the list when its older key grammar allows;
        // otherwise the list is kept in full in the context.
        let (otel_state, tracestate) = match parse_members(combined) {
            None => (TraceState::NONE, None),
            Some(m) if m.len == 0 => (TraceState::NONE, None),
            Some(m) if has_repeated_key(m.as_slice()) => {
                (TraceState::NONE, Some(join(m.as_slice().iter().copied())))
            }
            Some(m) => match TraceState::from_key_value(m.as_slice().iter().copied()) {
                Ok(state) => (state, None),
                Err(_) => (TraceState::NONE, Some(join(m.as_slice().iter().copied()))),
            },
        };
        let sc = SpanContext::new(trace_id, span_id, TraceFlags::new(flags), true, otel_state);
        cx.with_remote_span_context(sc).with_value(Incoming {
            trace_id,
            flags,
            tracestate,
        })
    }

    fn fields(&self) -> FieldIter<'_> {
        static NAMES: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
        FieldIter::new(NAMES.get_or_init(|| [TRACEPARENT.to_owned(), TRACESTATE.to_owned()]))
    }
}
