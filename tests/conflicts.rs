//! Two functions that claim one series: merged when compatible, reported with both
//! locations when not, never a panic and never an invalid exposition.

mod common;

use common::{count, value};

const FIRST_LINE: u32 = line!() + 2;
#[observe::instrumented(name = "settle")]
fn settle_card() {}

const SECOND_LINE: u32 = line!() + 2;
#[observe::instrumented(name = "settle", buckets = [0.1, 1.0])]
fn settle_bank() {}

// Same identity and same definition: one metric fed from two call sites.
#[observe::instrumented(name = "audit")]
fn audit_read() {}

#[observe::instrumented(name = "audit")]
fn audit_write() {}

// Same function and module, different label names: confusing for every query.
#[observe::instrumented(name = "refund", labels(kind = "full"))]
fn refund_full() {}

#[observe::instrumented(name = "refund", labels(reason = "fraud"))]
fn refund_fraud() {}

#[test]
fn conflicts_are_reported_with_both_locations() {
    let conflicts = observe::registry::validate().expect_err("two conflicts");
    assert_eq!(conflicts.len(), 2, "{conflicts:?}");
    let settle = conflicts.iter().find(|c| c.function == "settle").unwrap();
    assert_eq!(settle.reason, "different histogram buckets");
    let message = settle.to_string();
    assert!(
        message.contains(&format!("conflicts.rs:{FIRST_LINE}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("conflicts.rs:{SECOND_LINE}")),
        "{message}"
    );
    assert!(message.contains("name = "), "says how to fix it: {message}");
    let refund = conflicts.iter().find(|c| c.function == "refund").unwrap();
    assert_eq!(refund.reason, "different label names");
}

#[test]
fn the_exposition_stays_valid_and_calls_never_panic() {
    for _ in 0..3 {
        settle_card();
        settle_bank();
        refund_full();
        refund_fraud();
    }
    let text = observe::metrics::render();
    // Only the first definition is exposed: one histogram, one set of buckets.
    assert_eq!(
        count(
            &text,
            "function_calls_duration_seconds_count",
            &[("function", "settle")]
        ),
        1
    );
    let (ok, out) = common::promtool_check(&text);
    assert!(ok && out.is_empty(), "promtool: {out}");
}

#[test]
fn compatible_sites_are_merged() {
    audit_read();
    audit_write();
    audit_write();
    let text = observe::metrics::render();
    assert_eq!(
        value(
            &text,
            "function_calls_total",
            &[("function", "audit"), ("result", "ok")]
        ),
        3.0
    );
}
