//! The text exposition, checked by the real `promtool` (Debian's `prometheus` package).

mod common;

use common::value;

// Label values with every character the text format must escape.
#[observe::instrumented(labels(note = "quote \" backslash \\ newline \n end"))]
fn escaped() {}

#[test]
fn promtool_accepts_the_exposition_with_escapes() {
    escaped();
    observe::build_info!();
    let text = observe::metrics::render();
    assert!(text.contains(r#"note="quote \" backslash \\ newline \n end""#));
    assert_eq!(
        value(
            &text,
            "function_calls_total",
            &[
                ("function", "escaped"),
                ("note", "quote \" backslash \\ newline \n end"),
                ("result", "ok")
            ]
        ),
        1.0
    );
    let (ok, out) = common::promtool_check(&text);
    assert!(ok, "promtool failed: {out}");
    assert!(out.is_empty(), "promtool complained: {out}");
}

#[test]
fn promtool_is_not_a_rubber_stamp() {
    // The same check fails on a broken exposition, so the test above can fail.
    let broken = "# TYPE x counter\n# TYPE x counter\nx{a=\"1\"} 1\nx{a=\"1\"} 2\n";
    let (ok, out) = common::promtool_check(broken);
    assert!(
        !ok || !out.is_empty(),
        "promtool accepted a duplicate family"
    );
}

#[test]
fn build_info_carries_the_crate_version() {
    observe::build_info!();
    let text = observe::metrics::render();
    assert_eq!(
        value(
            &text,
            "build_info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                ("service_name", "observe")
            ]
        ),
        1.0
    );
}
