//! Prometheus naming rules, checked at compile time on the literal that carries the name.

/// Label names our own families use, and those Prometheus reserves.
pub const RESERVED_LABELS: &[&str] = &[
    "le",
    "quantile",
    "function",
    "module",
    "result",
    "caller_function",
    "caller_module",
    "objective_name",
    "objective_percentile",
    "objective_latency_threshold",
];

/// `[a-zA-Z_][a-zA-Z0-9_]*` — the Prometheus label name grammar.
pub fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A function name for the `function` label: one or more identifiers joined by `::`
/// (so `Type::method` is allowed), each a valid label-name-like identifier.
pub fn is_function_name(name: &str) -> bool {
    !name.is_empty() && name.split("::").all(is_label_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names() {
        assert!(is_label_name("tier"));
        assert!(is_label_name("_x9"));
        assert!(!is_label_name(""));
        assert!(!is_label_name("9x"));
        assert!(!is_label_name("a-b"));
        assert!(!is_label_name("a.b"));
    }

    #[test]
    fn function_names() {
        assert!(is_function_name("charge"));
        assert!(is_function_name("Gateway::charge"));
        assert!(!is_function_name("Gateway::"));
        assert!(!is_function_name("a b"));
        assert!(!is_function_name(""));
    }
}
