//! The OpenTelemetry resource: service name and version from the environment, the
//! builder, `build_info!()` or the executable.

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;

use super::env;

/// `service.name` and `service.version` by the precedence of the module docs.
pub(super) fn resource(
    name: Option<&str>,
    version: Option<&str>,
    extra: Vec<KeyValue>,
) -> Resource {
    let env_attrs = env::var("OTEL_RESOURCE_ATTRIBUTES").unwrap_or_default();
    let env_has = |key: &str| {
        env_attrs
            .split(',')
            .any(|kv| kv.split('=').next().map(str::trim) == Some(key))
    };
    let info = crate::metrics::build_info();
    let mut builder = Resource::builder();
    // The SDK's own detectors already applied OTEL_SERVICE_NAME and
    // OTEL_RESOURCE_ATTRIBUTES; ours only fill what they left open.
    let mut attributes: Vec<KeyValue> = extra
        .into_iter()
        .filter(|kv| !env_has(kv.key.as_str()))
        .collect();
    if env::var("OTEL_SERVICE_NAME").is_none() && !env_has("service.name") {
        let name = name
            .map(str::to_owned)
            .or_else(|| info.as_ref().map(|i| i.service_name.clone()))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(crate::metrics::default_service_name);
        builder = builder.with_service_name(name);
    }
    if !env_has("service.version") {
        let version = version
            .map(str::to_owned)
            .or_else(|| info.as_ref().map(|i| i.version.clone()))
            .filter(|v| !v.is_empty());
        if let Some(version) = version {
            attributes.push(KeyValue::new("service.version", version));
        }
    }
    builder.with_attributes(attributes).build()
}
