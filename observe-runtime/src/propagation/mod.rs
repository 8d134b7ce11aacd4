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
//!   member, a key twice, or more than 32 members is **discarded** whole. A list longer
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

#[cfg(feature = "actix")]
pub use headers::{Propagate, outgoing_headers, trace_id};

use opentelemetry::Context;
use opentelemetry::propagation::{
    Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter,
};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

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

/// The value of at most 32 lowercase hex digits (checked by [`lower_hex`] before).
fn hex_u128(s: &str) -> u128 {
    s.bytes().fold(0u128, |acc, b| {
        let digit = if b.is_ascii_digit() {
            b - b'0'
        } else {
            b - b'a' + 10
        };
        (acc << 4) | u128::from(digit)
    })
}

fn lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses a `traceparent` value: `(trace id, parent id, flags)` with the flags masked to
/// the ones defined (sampled, random), or `None` when the trace must restart.
///
/// ```
/// use observe_runtime::propagation::parse_traceparent;
/// assert!(parse_traceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").is_some());
/// assert!(parse_traceparent("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01").is_none());
/// assert!(parse_traceparent("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future").is_some());
/// ```
pub fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, u8)> {
    let v = value.trim_matches([' ', '\t']);
    if !v.is_ascii() || v.len() < 3 || v.as_bytes()[2] != b'-' {
        return None;
    }
    let version = &v[..2];
    if !lower_hex(version) || version == "ff" {
        return None;
    }
    if version == "00" {
        if v.len() != 55 {
            return None;
        }
    } else if v.len() < 55 || (v.len() > 55 && v.as_bytes()[55] != b'-') {
        return None;
    }
    let b = v.as_bytes();
    if b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let (trace, parent, flags) = (&v[3..35], &v[36..52], &v[53..55]);
    if !lower_hex(trace) || !lower_hex(parent) || !lower_hex(flags) {
        return None;
    }
    let trace_id = TraceId::from(hex_u128(trace));
    let span_id = SpanId::from(hex_u128(parent) as u64);
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = hex_u128(flags) as u8 & (SAMPLED | RANDOM);
    Some((trace_id, span_id, flags))
}

/// A `tracestate` key per the current grammar.
fn valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|&c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, b'_' | b'-' | b'*' | b'/' | b'@')
        })
}

/// A `tracestate` value: 1–256 printable ASCII, no `,` or `=`, not ending in a space.
fn valid_value(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && b[b.len() - 1] != b' '
}

/// Parses a combined `tracestate` value into its members, in order; `None` when the
/// header must be discarded (an invalid member, a duplicate key, more than 32 members).
///
/// ```
/// use observe_runtime::propagation::parse_tracestate;
/// assert_eq!(parse_tracestate("rojo=00f067aa0ba902b7, ,congo=t61rcWkgMzE").unwrap().len(), 2);
/// assert_eq!(parse_tracestate("foo=1,foo=2"), None);
/// assert_eq!(parse_tracestate("foo="), None);
/// ```
pub fn parse_tracestate(combined: &str) -> Option<Vec<(String, String)>> {
    parse_members(combined).map(|m| {
        m.as_slice()
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    })
}

/// Up to [`MAX_MEMBERS`] borrowed members, on the stack.
struct Members<'a> {
    items: [(&'a str, &'a str); MAX_MEMBERS],
    len: usize,
}

impl<'a> Members<'a> {
    fn as_slice(&self) -> &[(&'a str, &'a str)] {
        &self.items[..self.len]
    }
}

/// [`parse_tracestate`] without copying or allocating.
fn parse_members(combined: &str) -> Option<Members<'_>> {
    let mut members = Members {
        items: [("", ""); MAX_MEMBERS],
        len: 0,
    };
    for member in combined.split(',') {
        // OWS around a member; the value's own leading spaces are kept, its trailing
        // ones are optional whitespace.
        let member = member
            .trim_start_matches([' ', '\t'])
            .trim_end_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        let (key, value) = member.split_once('=')?;
        if members.len == MAX_MEMBERS
            || !valid_key(key)
            || !valid_value(value)
            || members.as_slice().iter().any(|(k, _)| *k == key)
        {
            return None;
        }
        members.items[members.len] = (key, value);
        members.len += 1;
    }
    Some(members)
}

fn join<K: AsRef<str>, V: AsRef<str>>(members: impl IntoIterator<Item = (K, V)>) -> String {
    let mut out = String::new();
    for (k, v) in members {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(k.as_ref());
        out.push('=');
        out.push_str(v.as_ref());
    }
    out
}

fn joined_len(members: &[(String, String)]) -> usize {
    members
        .iter()
        .map(|(k, v)| k.len() + 1 + v.len())
        .sum::<usize>()
        + members.len().saturating_sub(1)
}

/// Truncates to [`MAX_TRACESTATE`] characters by whole members: those over 128
/// characters first (from the end), then from the end.
fn truncate(members: &mut Vec<(String, String)>) {
    while joined_len(members) > MAX_TRACESTATE {
        let long = members
            .iter()
            .rposition(|(k, v)| k.len() + 1 + v.len() > 128);
        match long {
            Some(i) => {
                members.remove(i);
            }
            None => {
                members.pop();
            }
        }
    }
}

static PARENT_BASED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Declares whether the tracer provider's sampler follows the incoming parent's decision
/// (`ParentBased`: the SDK's default, and what `observe::init()` declares unless
/// `OTEL_TRACES_SAMPLER` names a sampler that ignores the parent).
///
/// When it does, a request that arrives with an unsampled `traceparent` is not traced:
/// `observe::Middleware` makes its server span with the incoming context current, so
/// observe's OpenTelemetry layer leaves that span and everything below it out, while the
/// trace id still reaches log lines, `trace_id()` and downstream requests (the incoming
/// `traceparent` and `tracestate` passed on unchanged, still unsampled). Off until
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

/// `00-<trace>-<span>-<flags>` in one allocation, without the formatting machinery.
fn format_traceparent(trace_id: TraceId, span_id: SpanId, flags: u8) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(55);
    out.extend_from_slice(b"00-");
    for b in trace_id.to_bytes() {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
    out.push(b'-');
    for b in span_id.to_bytes() {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0xf)]);
    }
    out.push(b'-');
    out.push(HEX[usize::from(flags >> 4)]);
    out.push(HEX[usize::from(flags & 0xf)]);
    // Only ASCII was written.
    String::from_utf8(out).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_drops_long_members_first_then_from_the_end() {
        let mut members: Vec<(String, String)> =
            (0..10).map(|i| (format!("k{i}"), "v".repeat(40))).collect();
        members.insert(3, ("long".into(), "x".repeat(200)));
        truncate(&mut members);
        assert!(joined_len(&members) <= MAX_TRACESTATE);
        assert!(
            !members.iter().any(|(k, _)| k == "long"),
            "the long member went first"
        );
        assert_eq!(members.len(), 10, "then nothing else had to go");
        let mut many: Vec<(String, String)> = (0..20)
            .map(|i| (format!("k{i:02}"), "v".repeat(40)))
            .collect();
        truncate(&mut many);
        assert_eq!(many.first().unwrap().0, "k00", "removed from the end");
        assert!(joined_len(&many) <= MAX_TRACESTATE && joined_len(&many) > MAX_TRACESTATE - 45);
    }
}
