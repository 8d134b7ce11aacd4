//! Connection-level errors of the HTTP server (actix-http's dispatcher): a request that
//! could not be parsed, a request head not delivered in time, a peer gone mid-write.
//! actix-http logs each as one ERROR line, so any stranger could flood the log with
//! them; observe's subscriber counts them here instead
//! (`http_server_connection_errors_total{kind}`) and logs at most one line per
//! [`LOG_INTERVAL`] per kind, with the count since the previous line.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::exposition::collector::{self, Collector};
use crate::exposition::throttle::Throttle;
use crate::exposition::{Family, Kind, label};

/// At most one log line per kind in this interval.
///
/// ```
/// assert_eq!(observe_runtime::http::CONNECTION_ERRORS_LOG_INTERVAL.as_secs(), 10);
/// ```
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The kinds, as the `kind` label says them.
const KINDS: [&str; 5] = [
    "malformed",
    "slow_request",
    "disconnect_timeout",
    "io",
    "other",
];

/// The target actix-http's HTTP/1 dispatcher logs its connection errors under.
pub(crate) const DISPATCHER_TARGET: &str = "actix_http::h1::dispatcher";

struct Counts {
    counts: [AtomicU64; 5],
    /// Per kind: the log line's throttle.
    logged: Mutex<[Throttle; 5]>,
}

static COUNTS: Counts = Counts {
    counts: [const { AtomicU64::new(0) }; 5],
    logged: Mutex::new([Throttle::NEW; 5]),
};

/// The kind of one of the dispatcher's error messages (`stream error: …`).
fn kind(message: &str) -> usize {
    let m = message.strip_prefix("stream error: ").unwrap_or(message);
    if m.starts_with("request parse error") {
        0
    } else if m.starts_with("request did not complete within") {
        1
    } else if m.starts_with("connection shutdown timeout") {
        2
    } else if m.starts_with("I/O error") || m.starts_with("write zero") {
        3
    } else {
        4
    }
}

/// Counts one dispatcher error line; returns the line to log instead, when one is due
/// (the first of a kind, then at most one per [`LOG_INTERVAL`]).
pub(crate) fn record(message: &str) -> Option<String> {
    let k = kind(message);
    COUNTS.counts[k].fetch_add(1, Relaxed);
    let n = COUNTS.logged.lock().unwrap_or_else(|p| p.into_inner())[k].note(1, LOG_INTERVAL)?;
    Some(format!(
        "{n} HTTP connection error(s) of kind {kind} since the last such line, the latest: \
         {message}; counted in http_server_connection_errors_total, logged at most every {}s",
        LOG_INTERVAL.as_secs(),
        kind = KINDS[k],
    ))
}

struct ConnectionErrors;

/// Puts the counters on `/metrics` (at zero until a connection fails).
pub(crate) fn register() {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| collector::register(&ConnectionErrors));
}

impl Collector for ConnectionErrors {
    fn collect(&self, out: &mut Vec<Family>) {
        let mut family = Family::new(
            "http_server_connection_errors_total",
            Kind::Counter,
            "HTTP connections the server gave up on before a response, by kind (malformed: unparsable request; slow_request: request head not delivered in time; disconnect_timeout; io; other). Counted from actix-http's dispatcher errors by observe's subscriber.",
        );
        for (k, kind) in KINDS.iter().enumerate() {
            family.push(
                vec![label("kind", *kind)],
                COUNTS.counts[k].load(Relaxed) as f64,
            );
        }
        out.push(family);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_rate_limited_lines() {
        assert_eq!(
            kind("stream error: request parse error: invalid Header provided"),
            0
        );
        assert_eq!(
            kind("stream error: request did not complete within the specified timeout"),
            1
        );
        assert_eq!(kind("stream error: I/O error: Connection reset by peer"), 3);
        assert_eq!(kind("Internal server error: unexpected eof"), 4);
        let before = COUNTS.counts[2].load(Relaxed);
        let first = record("stream error: connection shutdown timeout");
        assert!(
            first
                .unwrap()
                .starts_with("1 HTTP connection error(s) of kind disconnect_timeout")
        );
        for _ in 0..99 {
            assert_eq!(record("stream error: connection shutdown timeout"), None);
        }
        assert_eq!(COUNTS.counts[2].load(Relaxed) - before, 100);
    }
}
