//! docs/kubernetes.yaml carries the probe spec the runtime computes for the payments
//! example; this test fails when the two drift.

use std::time::Duration;

use observe::health::{Health, Shutdown};

#[test]
fn the_documented_manifest_matches_the_runtime() {
    let health = Health::builder().checks(vec![]).build().unwrap();
    // The same settings as examples/payments.rs.
    let generated = Shutdown::new(health)
        .readiness_probe(Duration::from_secs(5), 1)
        .graceful_timeout(Duration::from_secs(10))
        .termination_grace_period(Duration::from_secs(30))
        .kubernetes_probes(6060);
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/kubernetes.yaml"))
            .unwrap();
    let documented: Vec<&str> = manifest
        .lines()
        .skip_while(|l| !l.contains("--- generated ---"))
        .skip(1)
        .filter(|l| !l.contains("image:") && !l.contains("env:") && !l.contains("{ name: "))
        .map(|l| l.strip_prefix("      ").unwrap_or(l))
        .collect();
    let generated: Vec<&str> = generated.lines().collect();
    assert_eq!(
        documented, generated,
        "regenerate docs/kubernetes.yaml (see its header)"
    );
}
