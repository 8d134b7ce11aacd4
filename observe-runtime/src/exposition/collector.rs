//! Families contributed by other layers (HTTP, health, admin, OpenTelemetry instruments):
//! they implement [`Collector`] and register once; [`super::gather`] calls them after
//! observe's own families. This module knows nothing about those layers, so data flows
//! one way, and a collector produces values, never a wire format.

use std::sync::Mutex;

use super::family::Family;

/// A source of families for `/metrics` and the OTLP push.
pub(crate) trait Collector: Send + Sync {
    /// Appends this collector's families.
    fn collect(&self, out: &mut Vec<Family>);
}

static COLLECTORS: Mutex<Vec<&'static dyn Collector>> = Mutex::new(Vec::new());

/// Registers a collector once (a second registration of the same one is ignored).
pub(crate) fn register(collector: &'static dyn Collector) {
    let mut all = COLLECTORS.lock().unwrap_or_else(|p| p.into_inner());
    let ptr = collector as *const dyn Collector as *const ();
    if !all
        .iter()
        .any(|c| std::ptr::eq(*c as *const dyn Collector as *const (), ptr))
    {
        all.push(collector);
    }
}

/// Every registered collector's families, in registration order.
pub(crate) fn collect_all(out: &mut Vec<Family>) {
    let all: Vec<_> = COLLECTORS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for collector in all {
        collector.collect(out);
    }
}
