//! Objectives that cannot be honoured are reported, never silently half-applied.

use observe::slo::Objective;

const STRICT: Objective = Objective::new("lookup").success_rate(99.9);
const LAX: Objective = Objective::new("lookup").success_rate(99.0);

// One series identity (`function="lookup"`, this module), two different objectives.
#[observe::instrumented(name = "lookup", objective = STRICT)]
fn lookup_cache() {}

#[observe::instrumented(name = "lookup", objective = LAX)]
fn lookup_db() {}

#[test]
fn two_objectives_on_one_series_are_a_conflict() {
    lookup_cache();
    lookup_db();
    let conflicts = observe::registry::validate().expect_err("a conflict");
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0].reason, "different objectives");
    assert!(conflicts[0].to_string().contains("objective_errors.rs:"));
    // Only the first definition is exposed: one objective_percentile on the series.
    let text = observe::metrics::render();
    let percentiles: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("function_calls_total{function=\"lookup\""))
        .filter_map(|l| l.split("objective_percentile=\"").nth(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(percentiles.len(), 1, "{text}");
}

#[test]
fn a_route_threshold_off_the_http_buckets_drops_only_the_latency_target() {
    // 0.3 s is not one of the HTTP histogram's bounds; 99.5 % success stays.
    let _ = observe::Middleware::new().objective(
        "POST /refund",
        Objective::new("refund-api")
            .success_rate(99.5)
            .latency(0.3, 99.0),
    );
    let attached = observe::slo::route_objectives();
    let refund = attached
        .iter()
        .find(|r| r.route == "/refund" && r.method == "POST")
        .expect("attached");
    assert_eq!(refund.objective.success_target(), Some(99.5));
    assert_eq!(refund.objective.latency_target(), None);
    // And the rules hold its success-rate target only.
    let rules = observe::slo::rules_yaml();
    assert!(
        rules.contains("observe-slo-refund-api-errors-99.5-POST-/refund"),
        "{rules}"
    );
    assert!(!rules.contains("refund-api-latency"), "{rules}");
}
