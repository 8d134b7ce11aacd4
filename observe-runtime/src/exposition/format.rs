//! Exposition formats and their negotiation from a scraper's `Accept` header.

/// `Content-Type` of the Prometheus text exposition format 0.0.4.
///
/// ```
/// assert!(observe_runtime::exposition::TEXT_CONTENT_TYPE.starts_with("text/plain; version=0.0.4"));
/// ```
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `Content-Type` of the OpenMetrics 1.0 text format (served with exemplars).
///
/// ```
/// assert!(observe_runtime::exposition::OPENMETRICS_CONTENT_TYPE.starts_with("application/openmetrics-text"));
/// ```
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// An exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4: what every scraper reads; no exemplars.
    Text,
    /// OpenMetrics 1.0 text: counters' families without `_total`, exemplars (trace ids)
    /// on histogram buckets, `# EOF` at the end.
    OpenMetrics,
}

impl Format {
    /// The format a scraper asks for in its `Accept` header: OpenMetrics when it lists
    /// `application/openmetrics-text` (Prometheus does, first, when it can store
    /// exemplars), else the classic text.
    ///
    /// ```
    /// use observe_runtime::exposition::Format;
    /// let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    /// assert_eq!(Format::negotiate(prometheus), Format::OpenMetrics);
    /// assert_eq!(Format::negotiate("text/plain"), Format::Text);
    /// assert_eq!(Format::negotiate("application/openmetrics-text;q=0"), Format::Text);
    /// ```
    pub fn negotiate(accept: &str) -> Format {
        let wants = accept.split(',').any(|part| {
            let mut params = part.split(';').map(str::trim);
            params
                .next()
                .is_some_and(|t| t.eq_ignore_ascii_case("application/openmetrics-text"))
                && !params.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_some_and(|q| q <= 0.0)
                })
        });
        if wants {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    /// The `Content-Type` of this format.
    ///
    /// ```
    /// use observe_runtime::exposition::{Format, TEXT_CONTENT_TYPE};
    /// assert_eq!(Format::Text.content_type(), TEXT_CONTENT_TYPE);
    /// ```
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => TEXT_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}
