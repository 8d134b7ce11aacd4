//! Log lines that carry the trace: every event inside a span gets `trace_id` and
//! `span_id`, in the human format (`… trace_id=… span_id=…`) and in JSON (two more
//! fields), so logs join traces and exemplars on the same id.

use std::fmt;

use opentelemetry::trace::TraceContextExt;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Wraps a formatter and appends the OpenTelemetry ids of the event's span.
pub(crate) struct WithTraceIds<F> {
    pub(crate) inner: F,
    pub(crate) json: bool,
}

/// The trace and span id of the span an event belongs to (its explicit parent, or the
/// current span), when that span has a valid OpenTelemetry context.
fn ids<S, N>(ctx: &FmtContext<'_, S, N>) -> Option<(String, String)>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    let span = ctx.parent_span()?;
    let id = span.id();
    drop(span);
    let ids = |cx: &opentelemetry::Context| {
        let otel = cx.span();
        let sc = otel.span_context();
        sc.is_valid()
            .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
    };
    tracing::dispatcher::get_default(|dispatch| {
        tracing_opentelemetry::get_otel_context(&id, dispatch)
    })
    .and_then(|cx| ids(&cx))
    // A span the OpenTelemetry layer skipped (inside an unsampled trace): the ids of the
    // nearest recorded ancestor, whose context is current.
    .or_else(|| opentelemetry::Context::map_current(ids))
}

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some((trace_id, span_id)) = ids(ctx) else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::with_capacity(256);
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let body = line.strip_suffix('\n').unwrap_or(&line);
        if self.json {
            match body.strip_suffix('}') {
                Some(open) => writeln!(
                    writer,
                    "{open},\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"}}"
                ),
                None => writeln!(writer, "{body}"),
            }
        } else {
            writeln!(writer, "{body} trace_id={trace_id} span_id={span_id}")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_get_two_more_fields_and_lines_outside_spans_none() {
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(move || writer.clone())
                    .event_format(WithTraceIds {
                        inner: tracing_subscriber::fmt::format().json(),
                        json: true,
                    }),
            )
            .with(crate::telemetry::layer(
                provider.tracer("t"),
                tracing::Level::INFO,
            ));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("outside");
            let span = tracing::info_span!("work");
            let _entered = span.enter();
            tracing::info!(answer = 42, "inside");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("\"outside\"") && !lines[0].contains("trace_id"));
        let inside = lines[1];
        assert!(inside.starts_with('{') && inside.ends_with('}'), "{inside}");
        let trace = inside.split("\"trace_id\":\"").nth(1).unwrap();
        assert_eq!(trace.find('"'), Some(32), "32 hex digits: {inside}");
        let span = inside.split("\"span_id\":\"").nth(1).unwrap();
        assert_eq!(span.find('"'), Some(16), "16 hex digits: {inside}");
        assert!(inside.contains("\"answer\":42"));
    }
}
