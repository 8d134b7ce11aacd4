//! The standard `OTEL_*` variables that the SDK itself ignores, read by us.
//!
//! The SDK reads `OTEL_TRACES_SAMPLER` / `_ARG`, `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_SERVICE_NAME` and `OTEL_BSP_*`, and the OTLP exporter reads
//! `OTEL_EXPORTER_OTLP_*`; it ignores `OTEL_SDK_DISABLED`, `OTEL_TRACES_EXPORTER` and
//! `OTEL_PROPAGATORS`, which are parsed here. An unknown value is an error at start-up,
//! never a silent fallback.

use std::fmt;

/// Where finished spans go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TracesExporter {
    /// OTLP (HTTP/protobuf, or gRPC with the `grpc` feature).
    Otlp,
    /// Nowhere: spans still appear in the log output.
    None,
}

/// The propagators named by `OTEL_PROPAGATORS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Propagators {
    /// W3C `traceparent` / `tracestate`.
    pub tracecontext: bool,
    /// W3C `baggage`.
    pub baggage: bool,
}

/// A variable with a value we cannot honour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvError {
    /// The variable's name.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
    /// What is accepted.
    pub expected: &'static str,
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?} is not supported; expected {}",
            self.variable, self.value, self.expected
        )
    }
}

impl std::error::Error for EnvError {}

pub(crate) fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether the sampler the SDK builds from `OTEL_TRACES_SAMPLER` follows the parent's
/// decision: unset (the SDK's default, `parentbased_always_on`) or a `parentbased_*` one.
pub(crate) fn sampler_follows_parent() -> bool {
    follows_parent(var("OTEL_TRACES_SAMPLER").as_deref())
}

fn follows_parent(sampler: Option<&str>) -> bool {
    sampler.is_none_or(|s| s.to_ascii_lowercase().starts_with("parentbased_"))
}

/// `OTEL_SDK_DISABLED`: `true` (any case) disables the SDK; `false` or unset does not.
pub(crate) fn sdk_disabled() -> Result<bool, EnvError> {
    match var("OTEL_SDK_DISABLED") {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(EnvError {
            variable: "OTEL_SDK_DISABLED",
            value: v,
            expected: "true or false",
        }),
    }
}

/// `OTEL_TRACES_EXPORTER`. Unset: OTLP when an OTLP endpoint variable is set, else none,
/// so a service without a collector runs offline and quietly.
pub(crate) fn traces_exporter() -> Result<TracesExporter, EnvError> {
    signal_exporter("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
}

/// `OTEL_PROPAGATORS`: a comma-separated list; default `tracecontext,baggage`.
pub(crate) fn propagators() -> Result<Propagators, EnvError> {
    let Some(v) = var("OTEL_PROPAGATORS") else {
        return Ok(Propagators {
            tracecontext: true,
            baggage: true,
        });
    };
    let mut out = Propagators::default();
    for name in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match name.to_ascii_lowercase().as_str() {
            "tracecontext" => out.tracecontext = true,
            "baggage" => out.baggage = true,
            "none" => {}
            _ => {
                return Err(EnvError {
                    variable: "OTEL_PROPAGATORS",
                    value: v.clone(),
                    expected: "a comma-separated list of tracecontext, baggage, none \
                               (b3 and jaeger are not supported)",
                });
            }
        }
    }
    Ok(out)
}

/// `OTEL_LOGS_EXPORTER`. Unset: OTLP when an OTLP endpoint variable for logs is set
/// (`OTEL_EXPORTER_OTLP_ENDPOINT` or `_LOGS_ENDPOINT`), else none.
pub(crate) fn logs_exporter() -> Result<TracesExporter, EnvError> {
    signal_exporter("OTEL_LOGS_EXPORTER", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT")
}

/// A signal's `OTEL_*_EXPORTER`: `otlp`, or `none` / `console` (the log lines already
/// show spans and events); unset, OTLP when the general or the signal's endpoint is set.
fn signal_exporter(
    variable: &'static str,
    endpoint: &'static str,
) -> Result<TracesExporter, EnvError> {
    match var(variable) {
        None => Ok(
            if var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() || var(endpoint).is_some() {
                TracesExporter::Otlp
            } else {
                TracesExporter::None
            },
        ),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "otlp" => Ok(TracesExporter::Otlp),
            "none" | "console" => Ok(TracesExporter::None),
            _ => Err(EnvError {
                variable,
                value: v,
                expected: "otlp, console or none",
            }),
        },
    }
}

/// `OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`; default
/// `http/protobuf`. Returns `true` for gRPC.
#[cfg(feature = "otlp")]
pub(crate) fn otlp_grpc(signal: super::tls::Signal) -> Result<bool, EnvError> {
    let Some((variable, value)) = super::tls::signal_var(signal, "PROTOCOL") else {
        return Ok(false);
    };
    match value.as_str() {
        "http/protobuf" => Ok(false),
        "grpc" if cfg!(feature = "grpc") => Ok(true),
        _ => Err(EnvError {
            variable: Box::leak(variable.into_boxed_str()),
            value,
            expected: if cfg!(feature = "grpc") {
                "http/protobuf or grpc"
            } else {
                "http/protobuf (grpc needs observe's `grpc` feature)"
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parent_based_samplers_are_recognised() {
        assert!(follows_parent(None));
        assert!(follows_parent(Some("parentbased_always_on")));
        assert!(follows_parent(Some("ParentBased_TraceIdRatio")));
        assert!(!follows_parent(Some("always_on")));
        assert!(!follows_parent(Some("traceidratio")));
    }

    use super::*;

    // One test touches the environment, so no other test races it.
    #[test]
    fn standard_variables_are_parsed_and_bad_values_refused() {
        // SAFETY: the only test in this binary that reads or writes these variables.
        unsafe {
            std::env::remove_var("OTEL_SDK_DISABLED");
            std::env::remove_var("OTEL_TRACES_EXPORTER");
            std::env::remove_var("OTEL_EXPORTER_OTLP_ENDPOINT");
            std::env::remove_var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
            std::env::remove_var("OTEL_PROPAGATORS");
        }
        assert_eq!(sdk_disabled(), Ok(false));
        assert_eq!(traces_exporter(), Ok(TracesExporter::None));
        assert_eq!(
            propagators(),
            Ok(Propagators {
                tracecontext: true,
                baggage: true
            })
        );
        unsafe {
            std::env::set_var("OTEL_SDK_DISABLED", "TRUE");
            std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
            std::env::set_var("OTEL_PROPAGATORS", "baggage, none");
        }
        assert_eq!(sdk_disabled(), Ok(true));
        assert_eq!(traces_exporter(), Ok(TracesExporter::Otlp));
        assert_eq!(
            propagators(),
            Ok(Propagators {
                tracecontext: false,
                baggage: true
            })
        );
        unsafe {
            std::env::set_var("OTEL_SDK_DISABLED", "yes");
            std::env::set_var("OTEL_TRACES_EXPORTER", "jaeger");
            std::env::set_var("OTEL_PROPAGATORS", "tracecontext,b3");
        }
        let e = sdk_disabled().unwrap_err();
        assert_eq!(
            e.to_string(),
            "OTEL_SDK_DISABLED=\"yes\" is not supported; expected true or false"
        );
        assert_eq!(
            traces_exporter().unwrap_err().variable,
            "OTEL_TRACES_EXPORTER"
        );
        assert!(propagators().unwrap_err().to_string().contains("b3"));
        unsafe {
            std::env::remove_var("OTEL_SDK_DISABLED");
            std::env::remove_var("OTEL_TRACES_EXPORTER");
            std::env::remove_var("OTEL_EXPORTER_OTLP_ENDPOINT");
            std::env::remove_var("OTEL_PROPAGATORS");
        }
    }
}
