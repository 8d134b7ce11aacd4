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

/// A collector made on first use and registered then, once: `static M: Registered<T> =
/// Registered::new(T::default);` and `M.get()` wherever it is recorded into.
pub(crate) struct Registered<T: Collector + 'static> {
    value: once_cell::sync::Lazy<T>,
    once: std::sync::Once,
}

impl<T: Collector + 'static> Registered<T> {
    pub(crate) const fn new(make: fn() -> T) -> Self {
        Registered {
            value: once_cell::sync::Lazy::new(make),
            once: std::sync::Once::new(),
        }
    }

    /// The collector, registered on the first call.
    pub(crate) fn get(&'static self) -> &'static T {
        let value: &'static T = &self.value;
        self.once.call_once(|| register(value));
        value
    }
}

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
