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
    // The same static registered twice is kept once. Zero-sized collectors all share
    // one address, so for them the address says nothing: their `register` functions run
    // once (a `Once`) instead.
    let zero_sized = size_of_val(collector) == 0;
    if zero_sized
        || !all
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::Kind;

    struct A;
    struct B;
    impl Collector for A {
        fn collect(&self, out: &mut Vec<Family>) {
            out.push(Family::new("zst_a_total", Kind::Counter, "a"));
        }
    }
    impl Collector for B {
        fn collect(&self, out: &mut Vec<Family>) {
            out.push(Family::new("zst_b_total", Kind::Counter, "b"));
        }
    }

    #[test]
    fn zero_sized_collectors_are_all_kept() {
        register(&A);
        register(&B);
        let mut out = Vec::new();
        collect_all(&mut out);
        for name in ["zst_a_total", "zst_b_total"] {
            assert!(out.iter().any(|f| f.name == name), "{name} missing");
        }
    }
}
