//! Outgoing requests: a client span per request, its context injected, and
//! `http_client_request_duration_seconds`.
//!
//! [`ClientSpan`] works with any client; [`Propagate`] does it for `awc` 3 and
//! `reqwest` 0.13 (features `awc`, `reqwest`).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use opentelemetry::trace::TraceContextExt as _;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use super::series::{METHODS, method_index_of};
use crate::exposition::collector::{Collector, Registered};
use crate::exposition::{Family, Kind, Series, label};
use crate::metrics::clock;

/// Most distinct `server_address` values in `http_client_request_duration_seconds`;
/// past it, new addresses are recorded as `<overflow>`.
///
/// ```
/// assert_eq!(observe_runtime::http::MAX_CLIENT_ADDRESSES, 200);
/// ```
pub const MAX_CLIENT_ADDRESSES: usize = 200;

const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// `(method index, server address, status or 0, error type)`.
type Key = (u8, String, u16, &'static str);

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
}

#[derive(Default)]
struct ClientMetrics {
    series: Mutex<Recorded>,
}

#[derive(Default)]
struct Recorded {
    histograms: HashMap<Key, Histogram>,
    /// The server addresses with series of their own (at most [`MAX_CLIENT_ADDRESSES`]).
    addresses: HashSet<String>,
}

fn metrics() -> &'static ClientMetrics {
    static METRICS: Registered<ClientMetrics> = Registered::new(ClientMetrics::default);
    METRICS.get()
}

impl ClientMetrics {
    fn observe(&self, method: u8, address: &str, status: u16, error: &'static str, secs: f64) {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let address = if series.addresses.contains(address) {
            address
        } else if series.addresses.len() < MAX_CLIENT_ADDRESSES {
            series.addresses.insert(address.to_owned());
            address
        } else {
            "<overflow>"
        };
        let h = series
            .histograms
            .entry((method, address.to_owned(), status, error))
            .or_default();
        h.counts[BUCKETS.iter().filter(|&&b| b < secs).count()] += 1;
        h.sum += secs;
    }
}

impl Collector for ClientMetrics {
    fn collect(&self, out: &mut Vec<Family>) {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let series = &series.histograms;
        let mut family = Family::new(
            "http_client_request_duration_seconds",
            Kind::Histogram,
            "Duration of outgoing HTTP requests, until the response head (or the error), by method, server address, status code and error type.",
        );
        let mut keys: Vec<&Key> = series.keys().collect();
        keys.sort();
        for key in keys {
            let h = &series[key];
            let (method, address, status, error) = key;
            let status = if *status == 0 {
                String::new()
            } else {
                status.to_string()
            };
            family.series.push(Series::histogram(
                vec![
                    label("http_request_method", METHODS[*method as usize]),
                    label("server_address", address.clone()),
                    label("http_response_status_code", status),
                    label("error_type", *error),
                ],
                &BUCKETS,
                h.counts,
                &[],
                h.sum,
            ));
        }
        out.push(family);
    }
}

/// One outgoing request: a client span (when the current trace is recorded), the
/// headers that carry *its* context downstream, and the duration histogram. Use it with
/// any client: send [`headers`](Self::headers), then [`end`](Self::end) with the status
/// (or [`fail`](Self::fail)).
///
/// The span is a child of the current span, named after the method, with the HTTP
/// client semantic-convention attributes (`http.request.method`, `server.address`,
/// `server.port`, `url.full`, then `http.response.status_code`); a 5xx or a transport
/// error marks it as an error. Inside a trace that is not recorded no span is made (the
/// headers carry an id observe invents, so each call still has its own parent-id).
///
/// ```
/// use observe_runtime::http::ClientSpan;
/// let call = ClientSpan::start("GET", "http://127.0.0.1:9/health");
/// for (name, value) in call.headers() {
///     // request.header(name, value) with your client
///     # let _ = (name, value);
/// }
/// call.end(200); // or call.fail(&error)
/// ```
#[derive(Debug)]
pub struct ClientSpan {
    span: tracing::Span,
    method: u8,
    address: String,
    start: u64,
    headers: Vec<(String, String)>,
}

/// Host and port of an absolute URL, the port defaulting by scheme.
fn server_of(url: &str) -> (String, Option<u16>) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (host, port) = crate::health::checks::host_and_port(authority);
    let port = port.or(match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    });
    (host, port)
}

impl ClientSpan {
    /// Starts the span for `method` `url` (an absolute URL) and computes the headers.
    ///
    /// ```
    /// let call = observe_runtime::http::ClientSpan::start("POST", "https://gateway.example/authorize");
    /// # call.end(200);
    /// ```
    pub fn start(method: &str, url: &str) -> ClientSpan {
        let index = method_index_of_str(method);
        let label = METHODS[index as usize];
        let (address, port) = server_of(url);
        let span = tracing::info_span!(
            target: "observe::http::client",
            "HTTP client request",
            otel.name = super::server_span::span_method(label),
            otel.kind = "client",
            otel.status_code = Empty,
            http.request.method = label,
            server.address = address.as_str(),
            server.port = port,
            url.full = url,
            http.response.status_code = Empty,
            error.type = Empty,
        );
        let cx = if span.is_disabled() {
            opentelemetry::Context::new()
        } else {
            span.context()
        };
        let cx = if cx.span().span_context().is_valid() {
            cx
        } else {
            // Not recorded (an unsampled trace, a check run): an operation of our own
            // all the same, with an invented id.
            let current = crate::propagation::current_context();
            if current.span().span_context().is_valid() {
                crate::propagation::unrecorded_operation(&current)
            } else {
                current
            }
        };
        let headers = crate::propagation::headers_of(&cx);
        ClientSpan {
            span,
            method: index,
            address,
            start: clock::raw(),
            headers,
        }
    }

    /// The headers to add to the request (`traceparent`, `tracestate`, `baggage`, as the
    /// global propagator writes them); empty outside any trace.
    ///
    /// ```
    /// let call = observe_runtime::http::ClientSpan::start("GET", "http://127.0.0.1:9/");
    /// assert!(call.headers().is_empty()); // no trace here
    /// # call.end(200);
    /// ```
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The response head arrived with `status`: ends the span (an error for 5xx) and
    /// records the duration.
    ///
    /// ```
    /// observe_runtime::http::ClientSpan::start("GET", "http://127.0.0.1:9/").end(503);
    /// ```
    pub fn end(self, status: u16) {
        let error = if status >= 500 { "5xx" } else { "" };
        self.finish(status, error, None);
    }

    /// The request failed before a response (connect, TLS, timeout): ends the span as an
    /// error with this message and records the duration with `error_type="transport"`.
    ///
    /// ```
    /// observe_runtime::http::ClientSpan::start("GET", "http://127.0.0.1:9/").fail(&"connection refused");
    /// ```
    pub fn fail(self, error: &dyn std::fmt::Display) {
        self.finish(0, "transport", Some(error));
    }

    /// Ends the span with a client's result: the status of a response, or the error.
    #[cfg(any(feature = "awc", feature = "reqwest"))]
    fn settle<R, E: std::fmt::Display>(self, result: &Result<R, E>, status: impl Fn(&R) -> u16) {
        match result {
            Ok(response) => self.end(status(response)),
            Err(e) => self.fail(e),
        }
    }

    fn finish(self, status: u16, error_type: &'static str, error: Option<&dyn std::fmt::Display>) {
        let secs = clock::nanos_between(self.start, clock::raw()) as f64 / 1e9;
        metrics().observe(self.method, &self.address, status, error_type, secs);
        if self.span.is_disabled() {
            return;
        }
        if status != 0 {
            self.span.record("http.response.status_code", status);
        }
        if !error_type.is_empty() {
            self.span.record("otel.status_code", "ERROR");
            self.span.record(
                "error.type",
                if status >= 500 {
                    status.to_string()
                } else {
                    error_type.to_owned()
                },
            );
        }
        if let Some(error) = error {
            let cx = self.span.context();
            cx.span()
                .set_status(opentelemetry::trace::Status::error(error.to_string()));
        }
    }
}

fn method_index_of_str(method: &str) -> u8 {
    match actix_web::http::Method::from_bytes(method.as_bytes()) {
        Ok(m) => method_index_of(&m),
        Err(_) => (METHODS.len() - 1) as u8,
    }
}

/// Makes outgoing requests part of the trace: a [`ClientSpan`] per request, whose context
/// the request carries. Supported: `awc` 3 (`awc::ClientRequest`, feature `awc`) and
/// `reqwest` 0.13 (`reqwest::RequestBuilder`, feature `reqwest`). Call it last, then
/// `send()` the returned [`Traced`] request as before.
///
/// ```
/// # #[cfg(feature = "awc")]
/// # async fn demo() -> Result<(), awc::error::SendRequestError> {
/// use observe_runtime::http::Propagate;
/// let response = awc::Client::default().get("http://127.0.0.1:9/").propagate().send().await?;
/// # drop(response);
/// # Ok(())
/// # }
/// ```
pub trait Propagate: Sized {
    /// The request with its client span and the propagation headers.
    fn propagate(self) -> Traced<Self>;
}

/// A request with its [`ClientSpan`], returned by [`Propagate::propagate`]: `send()` it.
///
/// ```
/// // Made by `Propagate::propagate`; see there.
/// let _ = observe_runtime::http::MAX_CLIENT_ADDRESSES;
/// ```
#[derive(Debug)]
pub struct Traced<R> {
    request: R,
    call: ClientSpan,
}

impl<R> Traced<R> {
    /// The request and its span, for clients or methods not covered here: send the
    /// request, then end the span yourself.
    ///
    /// ```
    /// # #[cfg(feature = "awc")]
    /// # fn demo() {
    /// use observe_runtime::http::Propagate;
    /// let (request, call) = awc::Client::default().get("http://127.0.0.1:9/").propagate().into_parts();
    /// # drop(request); call.end(200);
    /// # }
    /// ```
    pub fn into_parts(self) -> (R, ClientSpan) {
        (self.request, self.call)
    }
}

#[cfg(feature = "awc")]
impl Propagate for awc::ClientRequest {
    fn propagate(self) -> Traced<Self> {
        let url = self.get_uri().to_string();
        let call = ClientSpan::start(self.get_method().as_str(), &url);
        let request = call.headers().iter().fold(self, |req, (k, v)| {
            req.insert_header((k.as_str(), v.as_str()))
        });
        Traced { request, call }
    }
}

#[cfg(feature = "awc")]
impl Traced<awc::ClientRequest> {
    /// Sends the request; the span ends when the response head arrives.
    ///
    /// ```
    /// # async fn demo() -> Result<(), awc::error::SendRequestError> {
    /// use observe_runtime::http::Propagate;
    /// let response = awc::Client::default().get("http://127.0.0.1:9/").propagate().send().await?;
    /// # drop(response);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(self) -> <awc::SendClientRequest as Future>::Output {
        let Traced { request, call } = self;
        let result = request.send().await;
        call.settle(&result, |r| r.status().as_u16());
        result
    }

    /// Sends the request with a body; the span ends when the response head arrives.
    ///
    /// ```
    /// # async fn demo() -> Result<(), awc::error::SendRequestError> {
    /// use observe_runtime::http::Propagate;
    /// let response = awc::Client::default().post("http://127.0.0.1:9/").propagate().send_body("x").await?;
    /// # drop(response);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send_body(
        self,
        body: impl actix_web::body::MessageBody + 'static,
    ) -> <awc::SendClientRequest as Future>::Output {
        let Traced { request, call } = self;
        let result = request.send_body(body).await;
        call.settle(&result, |r| r.status().as_u16());
        result
    }
}

#[cfg(feature = "reqwest")]
impl Propagate for reqwest::RequestBuilder {
    fn propagate(self) -> Traced<Self> {
        // The URL and method are known only to the built request.
        let (method, url) = match self.try_clone().and_then(|b| b.build().ok()) {
            Some(r) => (r.method().as_str().to_owned(), r.url().to_string()),
            None => ("_OTHER".to_owned(), String::new()),
        };
        let call = ClientSpan::start(&method, &url);
        let request = call
            .headers()
            .iter()
            .fold(self, |req, (k, v)| req.header(k.as_str(), v.as_str()));
        Traced { request, call }
    }
}

#[cfg(feature = "reqwest")]
impl Traced<reqwest::RequestBuilder> {
    /// Sends the request; the span ends when the response head arrives.
    ///
    /// ```
    /// # async fn demo() -> Result<(), reqwest::Error> {
    /// use observe_runtime::http::Propagate;
    /// let response = reqwest::Client::new().get("http://127.0.0.1:9/").propagate().send().await?;
    /// # drop(response);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn send(self) -> Result<reqwest::Response, reqwest::Error> {
        let Traced { request, call } = self;
        let result = request.send().await;
        call.settle(&result, |r| r.status().as_u16());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_address_and_port_come_from_the_url() {
        assert_eq!(
            server_of("http://Gateway:8080/pay"),
            ("gateway".into(), Some(8080))
        );
        assert_eq!(
            server_of("https://gateway.example/pay"),
            ("gateway.example".into(), Some(443))
        );
        assert_eq!(
            server_of("http://[::1]:9000/x?y"),
            ("::1".into(), Some(9000))
        );
        assert_eq!(server_of("http://[::1]/x"), ("::1".into(), Some(80)));
        assert_eq!(
            server_of("http://user:pw@host/x"),
            ("host".into(), Some(80))
        );
    }

    #[test]
    fn client_addresses_are_capped() {
        let m = ClientMetrics::default();
        for i in 0..MAX_CLIENT_ADDRESSES + 10 {
            m.observe(0, &format!("host{i}"), 200, "", 0.01);
        }
        let series = &m.series.lock().unwrap().histograms;
        assert_eq!(
            series.len(),
            MAX_CLIENT_ADDRESSES + 1,
            "the cap and one overflow series"
        );
        assert!(series.contains_key(&(0, "<overflow>".to_owned(), 200, "")));
    }
}
