//! `traceparent`: parsed by W3C Trace Context Level 2 (exact length and case, version
//! `00` strict, higher versions by prefix, `ff` and zero ids invalid) and formatted.

use opentelemetry::trace::{SpanId, TraceId};

use super::{RANDOM, SAMPLED};

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

/// `00-<trace>-<span>-<flags>` in one allocation, without the formatting machinery.
pub(super) fn format_traceparent(trace_id: TraceId, span_id: SpanId, flags: u8) -> String {
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
