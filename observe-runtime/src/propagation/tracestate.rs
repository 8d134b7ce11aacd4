//! `tracestate`: members validated by the current key and value grammar, repeated lines
//! joined, discarded whole when invalid, a repeated key passed on as it came, cut to 512
//! characters by whole members.

use super::{MAX_MEMBERS, MAX_TRACESTATE};

/// A `tracestate` key per the current grammar.
pub(super) fn valid_key(key: &str) -> bool {
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
/// header must be discarded (an invalid member, more than 32 members). A repeated key is
/// kept as it came: a participant that does not change `traceparent`'s trace must not
/// change `tracestate` (Trace Context, "Mutating the tracestate field").
///
/// ```
/// use observe_runtime::propagation::parse_tracestate;
/// assert_eq!(parse_tracestate("rojo=00f067aa0ba902b7, ,congo=t61rcWkgMzE").unwrap().len(), 2);
/// assert_eq!(parse_tracestate("foo=1,foo=2").unwrap().len(), 2);
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
pub(super) struct Members<'a> {
    items: [(&'a str, &'a str); MAX_MEMBERS],
    pub(super) len: usize,
}

impl<'a> Members<'a> {
    pub(super) fn as_slice(&self) -> &[(&'a str, &'a str)] {
        &self.items[..self.len]
    }
}

/// [`parse_tracestate`] without copying or allocating.
pub(super) fn parse_members(combined: &str) -> Option<Members<'_>> {
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
        if members.len == MAX_MEMBERS || !valid_key(key) || !valid_value(value) {
            return None;
        }
        members.items[members.len] = (key, value);
        members.len += 1;
    }
    Some(members)
}

/// Whether a key appears twice (OpenTelemetry's `TraceState` would not keep both).
pub(super) fn has_repeated_key(members: &[(&str, &str)]) -> bool {
    members
        .iter()
        .enumerate()
        .any(|(i, (k, _))| members[..i].iter().any(|(other, _)| other == k))
}

pub(super) fn join<K: AsRef<str>, V: AsRef<str>>(
    members: impl IntoIterator<Item = (K, V)>,
) -> String {
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

pub(super) fn joined_len(members: &[(String, String)]) -> usize {
    members
        .iter()
        .map(|(k, v)| k.len() + 1 + v.len())
        .sum::<usize>()
        + members.len().saturating_sub(1)
}

/// Truncates to [`MAX_TRACESTATE`] characters by whole members: those over 128
/// characters first (from the end), then from the end.
pub(super) fn truncate(members: &mut Vec<(String, String)>) {
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
