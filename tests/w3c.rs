//! W3C Trace Context, rule by rule: each case is the headers a request arrives with and
//! the headers our service sends downstream, through observe's propagator and a real SDK
//! span (parent-based always-on sampler, as `observe::init()` sets up by default).
//! Written from the specification text (Trace Context Level 2: traceparent fields,
//! versioning, flags; tracestate grammar, limits and mutation rules).
#![cfg(feature = "otel")]

use std::collections::HashMap;

use observe::opentelemetry::Context;
use observe::opentelemetry::propagation::{Extractor, TextMapPropagator};
use observe::opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider as _};
use observe::opentelemetry_sdk::trace::SdkTracerProvider;
use observe::propagation::W3cTraceContext;

const T: &str = "0af7651916cd43dd8448eb211c80319c";
const P: &str = "b7ad6b7169203331";

/// Header lines, in order.
type Headers = Vec<(&'static str, String)>;

/// Request headers, repeated lines kept apart as actix keeps them.
struct Lines(Vec<(&'static str, String)>);

impl Extractor for Lines {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| *k).collect()
    }
    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let all: Vec<&str> = self
            .0
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
            .collect();
        (!all.is_empty()).then_some(all)
    }
}

#[derive(Debug, PartialEq)]
enum Trace {
    /// The incoming trace continues: same trace id, our span as parent.
    Continued,
    /// A new trace was started.
    Restarted,
}

/// One request through the service: (outgoing headers, our span id).
fn hop(
    propagator: &W3cTraceContext,
    headers: Vec<(&'static str, String)>,
) -> (HashMap<String, String>, String) {
    let provider = SdkTracerProvider::builder().build();
    let tracer = provider.tracer("w3c");
    let parent = propagator.extract_with_context(&Context::new(), &Lines(headers));
    let span = tracer.start_with_context("server", &parent);
    let span_id = span.span_context().span_id().to_string();
    let cx = parent.with_span(span);
    let mut out = HashMap::new();
    propagator.inject_context(&cx, &mut out);
    (out, span_id)
}

fn tp(value: &str) -> Vec<(&'static str, String)> {
    vec![("traceparent", value.to_owned())]
}

fn valid(flags: &str) -> String {
    format!("00-{T}-{P}-{flags}")
}

#[test]
fn traceparent_rules() {
    let z32 = "0".repeat(32);
    let z16 = "0".repeat(16);
    let upper = T.to_uppercase();
    let cases: Vec<(&str, Headers, Trace, &str)> = vec![
        // (rule, incoming, trace, outgoing flags)
        ("sampled is kept", tp(&valid("01")), Trace::Continued, "01"),
        (
            "not sampled is kept",
            tp(&valid("00")),
            Trace::Continued,
            "00",
        ),
        (
            "random and sampled are kept",
            tp(&valid("03")),
            Trace::Continued,
            "03",
        ),
        (
            "random is kept on an unsampled trace",
            tp(&valid("02")),
            Trace::Continued,
            "02",
        ),
        (
            "undefined flags are sent as zero",
            tp(&valid("ff")),
            Trace::Continued,
            "03",
        ),
        (
            "flags are a bit field, not a number",
            tp(&valid("09")),
            Trace::Continued,
            "01",
        ),
        (
            "no traceparent: a new trace, random id",
            vec![],
            Trace::Restarted,
            "03",
        ),
        (
            "OWS around the value is ignored",
            tp(&format!(" \t{} \t", valid("01"))),
            Trace::Continued,
            "01",
        ),
        (
            "uppercase trace id",
            tp(&format!("00-{upper}-{P}-01")),
            Trace::Restarted,
            "03",
        ),
        (
            "uppercase parent id",
            tp(&format!("00-{T}-B7AD6B7169203331-01")),
            Trace::Restarted,
            "03",
        ),
        (
            "uppercase flags",
            tp(&format!("00-{T}-{P}-0A")),
            Trace::Restarted,
            "03",
        ),
        (
            "uppercase version",
            tp(&format!("0A-{T}-{P}-01")),
            Trace::Restarted,
            "03",
        ),
        (
            "version ff is invalid",
            tp(&format!("ff-{T}-{P}-01")),
            Trace::Restarted,
            "03",
        ),
        (
            "1-digit version",
            tp(&format!("0-{T}-{P}-01")),
            Trace::Restarted,
            "03",
        ),
        (
            "3-digit version",
            tp(&format!("000-{T}-{P}-01")),
            Trace::Restarted,
            "03",
        ),
        (
            "non-hex version",
            tp(&format!(".0-{T}-{P}-01")),
            Trace::Restarted,
            "03",
        ),
        (
            "31-digit trace id",
            tp(&format!("00-{}-{P}-01", &T[1..])),
            Trace::Restarted,
            "03",
        ),
        (
            "33-digit trace id",
            tp(&format!("00-{T}0-{P}-01")),
            Trace::Restarted,
            "03",
        ),
        (
            "15-digit parent id",
            tp(&format!("00-{T}-{}-01", &P[1..])),
            Trace::Restarted,
            "03",
        ),
        (
            "17-digit parent id",
            tp(&format!("00-{T}-{P}0-01")),
            Trace::Restarted,
            "03",
        ),
        (
            "1-digit flags",
            tp(&format!("00-{T}-{P}-1")),
            Trace::Restarted,
            "03",
        ),
        (
            "3-digit flags",
            tp(&format!("00-{T}-{P}-001")),
            Trace::Restarted,
            "03",
        ),
        (
            "non-hex in trace id",
            tp(&format!("00-{}.-{P}-01", &T[..31])),
            Trace::Restarted,
            "03",
        ),
        (
            "all-zero trace id",
            tp(&format!("00-{z32}-{P}-01")),
            Trace::Restarted,
            "03",
        ),
        (
            "all-zero parent id",
            tp(&format!("00-{T}-{z16}-01")),
            Trace::Restarted,
            "03",
        ),
        (
            "version 00 allows nothing after the flags",
            tp(&format!("{}-future", valid("01"))),
            Trace::Restarted,
            "03",
        ),
        (
            "version 00 with a trailing dot",
            tp(&format!("{}.", valid("01"))),
            Trace::Restarted,
            "03",
        ),
        (
            "a higher version is read by its prefix",
            tp(&format!("cc-{T}-{P}-01")),
            Trace::Continued,
            "01",
        ),
        (
            "a higher version may carry more fields",
            tp(&format!("cc-{T}-{P}-01-what-the-future-holds")),
            Trace::Continued,
            "01",
        ),
        (
            "a higher version's flags end in a dash or the end",
            tp(&format!("cc-{T}-{P}-01.future")),
            Trace::Restarted,
            "03",
        ),
        (
            "a higher version shorter than 55 characters",
            tp(&format!("cc-{T}-{P}-1")),
            Trace::Restarted,
            "03",
        ),
        (
            "two traceparent lines are invalid",
            vec![("traceparent", valid("01")), ("traceparent", valid("01"))],
            Trace::Restarted,
            "03",
        ),
    ];
    let propagator = W3cTraceContext::new();
    let mut failures = Vec::new();
    for (rule, incoming, trace, flags) in cases {
        let (out, span_id) = hop(&propagator, incoming.clone());
        let sent = out.get("traceparent").cloned().unwrap_or_default();
        let parts: Vec<&str> = sent.split('-').collect();
        let ok = parts.len() == 4
            && parts[0] == "00"
            && parts[2] == span_id
            && parts[3] == flags
            && match trace {
                Trace::Continued => parts[1] == T,
                Trace::Restarted => {
                    parts[1] != T && parts[1].len() == 32 && parts[1] != "0".repeat(32)
                }
            };
        if !ok {
            failures.push(format!(
                "{rule}: {incoming:?} → {sent:?} (wanted {trace:?}, flags {flags})"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn tracestate_rules() {
    let with = |lines: &[&str]| {
        let mut h = tp(&valid("01"));
        for l in lines {
            h.push(("tracestate", (*l).to_owned()));
        }
        h
    };
    let members = |n: usize| {
        (1..=n)
            .map(|i| format!("k{i:02}=v"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let key256 = format!("a{}", "b".repeat(255));
    let key257 = format!("a{}", "b".repeat(256));
    let value256 = "v".repeat(256);
    let value257 = "v".repeat(257);
    let printable: String = (0x20u8..=0x7e)
        .filter(|c| *c != b',' && *c != b'=')
        .map(char::from)
        .collect();
    let sixty = |i: usize| format!("m{i:02}={}", "x".repeat(56)); // 60 characters
    let ten_of_sixty: Vec<String> = (0..10).map(sixty).collect();
    let mut with_long = ten_of_sixty[..7].to_vec();
    with_long.insert(2, format!("long={}", "y".repeat(200)));
    let cases: Vec<(&str, Headers, Option<String>)> = vec![
        (
            "members are passed on in order",
            with(&["congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"]),
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".into()),
        ),
        (
            "repeated lines are combined in order",
            with(&["foo=1,bar=2", "rojo=1,congo=2", "baz=3"]),
            Some("foo=1,bar=2,rojo=1,congo=2,baz=3".into()),
        ),
        ("an empty header is not sent on", with(&[""]), None),
        (
            "an empty line among others is ignored",
            with(&["", "foo=1", ""]),
            Some("foo=1".into()),
        ),
        (
            "empty and blank members are ignored",
            with(&[",, foo=1 ,\t,"]),
            Some("foo=1".into()),
        ),
        (
            "OWS around members is ignored",
            with(&["foo=1 \t , \t bar=2"]),
            Some("foo=1,bar=2".into()),
        ),
        (
            "a value's leading spaces are part of it",
            with(&["foo=  1"]),
            Some("foo=  1".into()),
        ),
        (
            "every printable character but , and = is a value",
            with(&[&format!("foo={printable}")]),
            Some(format!("foo={}", printable.trim_end())),
        ),
        (
            "a repeated key is passed on as it came",
            with(&["foo=1,foo=2"]),
            Some("foo=1,foo=2".into()),
        ),
        (
            "a key repeated across lines is passed on as it came",
            with(&["foo=1", "foo=1"]),
            Some("foo=1,foo=1".into()),
        ),
        (
            "an empty value discards the header",
            with(&["foo=1,bar="]),
            None,
        ),
        (
            "a member without = discards the header",
            with(&["foo=1,bar"]),
            None,
        ),
        (
            "an uppercase key discards the header",
            with(&["FOO=1,bar=2"]),
            None,
        ),
        (
            "a space inside a key discards the header",
            with(&["foo bar=1"]),
            None,
        ),
        (
            "a dot in a key discards the header",
            with(&["foo.bar=1"]),
            None,
        ),
        (
            "a key starting with @ discards the header",
            with(&["@foo=1,bar=2"]),
            None,
        ),
        (
            "a non-ASCII value discards the header",
            with(&["foo=é"]),
            None,
        ),
        (
            "keys may hold @ anywhere after the first character",
            with(&["foo@bar@baz=1,tenant@averyveryverylongvendorname=2"]),
            Some("foo@bar@baz=1,tenant@averyveryverylongvendorname=2".into()),
        ),
        (
            "keys may start with a digit",
            with(&["3rd-party=1"]),
            Some("3rd-party=1".into()),
        ),
        (
            "a 256-character key is valid",
            with(&[&format!("{key256}=1")]),
            Some(format!("{key256}=1")),
        ),
        (
            "a 257-character key is not",
            with(&[&format!("{key257}=1")]),
            None,
        ),
        (
            "a 256-character value is valid",
            with(&[&format!("foo={value256}")]),
            Some(format!("foo={value256}")),
        ),
        (
            "a 257-character value is not",
            with(&[&format!("foo={value257}")]),
            None,
        ),
        (
            "32 members are kept",
            with(&[&members(32)]),
            Some(members(32)),
        ),
        ("33 members discard the header", with(&[&members(33)]), None),
        (
            "over 512 characters: members dropped from the end",
            with(&[&ten_of_sixty.join(",")]),
            Some(ten_of_sixty[..8].join(",")),
        ),
        (
            "over 512 characters: a member over 128 goes first",
            with(&[&with_long.join(",")]),
            Some(ten_of_sixty[..7].join(",")),
        ),
        (
            "no traceparent: tracestate is not propagated",
            vec![("tracestate", "foo=1".into())],
            None,
        ),
        (
            "invalid traceparent: tracestate is not propagated",
            vec![
                ("traceparent", format!("00-{T}-{P}-1")),
                ("tracestate", "foo=1".into()),
            ],
            None,
        ),
    ];
    let propagator = W3cTraceContext::new();
    let mut failures = Vec::new();
    for (rule, incoming, expected) in cases {
        let (out, _) = hop(&propagator, incoming.clone());
        if out.get("tracestate") != expected.as_ref() {
            failures.push(format!(
                "{rule}: sent {:?}, wanted {expected:?}",
                out.get("tracestate")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn our_updated_member_moves_to_the_front() {
    let propagator = W3cTraceContext::new().with_vendor_key("observe").unwrap();
    let mut incoming = tp(&valid("01"));
    incoming.push(("tracestate", "congo=1,observe=old,rojo=2".into()));
    let (out, span_id) = hop(&propagator, incoming);
    assert_eq!(
        out["tracestate"],
        format!("observe={span_id},congo=1,rojo=2")
    );

    // Full list: ours goes in front, the last member makes room.
    let full = (1..=32)
        .map(|i| format!("k{i:02}=v"))
        .collect::<Vec<_>>()
        .join(",");
    let mut incoming = tp(&valid("01"));
    incoming.push(("tracestate", full));
    let (out, span_id) = hop(&propagator, incoming);
    let sent: Vec<&str> = out["tracestate"].split(',').collect();
    assert_eq!(sent.len(), 32);
    assert_eq!(sent[0], format!("observe={span_id}"));
    assert_eq!(sent[31], "k31=v");

    // A trace we start gets just our member.
    let (out, span_id) = hop(&propagator, vec![]);
    assert_eq!(out["tracestate"], format!("observe={span_id}"));
}
