//! Families contributed by other layers (HTTP, admin, later health): they implement
//! [`Collector`] and register once; [`super::render`] calls them after its own families.
//! `metrics` knows nothing about those layers, so data flows one way.

use std::collections::HashSet;
use std::fmt::Write;
use std::sync::Mutex;

use crate::metrics::exemplar::Exemplar;
use crate::registry::push_label;

/// Writes families into one exposition, refusing a family name written twice.
pub struct Exposition<'a> {
    out: &'a mut String,
    written: &'a mut HashSet<String>,
    current: Option<String>,
    om: bool,
}

impl<'a> Exposition<'a> {
    pub(crate) fn new(out: &'a mut String, written: &'a mut HashSet<String>, om: bool) -> Self {
        Exposition {
            out,
            written,
            current: None,
            om,
        }
    }

    /// Starts a family; returns `false` (and writes nothing until the next family) when
    /// the name was already written, so a clash never yields duplicate families.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> bool {
        if !self.written.insert(name.to_owned()) {
            self.current = None;
            return false;
        }
        super::openmetrics::write_header(self.out, self.om, name, kind, help);
        self.current = Some(name.to_owned());
        true
    }

    /// Writes one sample of the current family (`suffix` is e.g. `_bucket`, or empty).
    pub fn sample(&mut self, suffix: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.sample_with_exemplar(suffix, labels, value, None);
    }

    /// Writes one sample with an exemplar (shown only in OpenMetrics).
    pub(crate) fn sample_with_exemplar(
        &mut self,
        suffix: &str,
        labels: &[(&str, &str)],
        value: impl std::fmt::Display,
        exemplar: Option<Exemplar>,
    ) {
        let Some(name) = &self.current else {
            return;
        };
        let mut text = String::new();
        for (k, v) in labels {
            push_label(&mut text, k, v);
        }
        let exemplar = match exemplar {
            Some(e) if self.om => e.suffix(),
            _ => String::new(),
        };
        if text.is_empty() {
            let _ = writeln!(self.out, "{name}{suffix} {value}{exemplar}");
        } else {
            let _ = writeln!(self.out, "{name}{suffix}{{{text}}} {value}{exemplar}");
        }
    }
}

/// A source of families for `/metrics`.
pub trait Collector: Send + Sync {
    /// Writes this collector's families.
    fn collect(&self, out: &mut Exposition<'_>);
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

pub(crate) fn collect_all(out: &mut Exposition<'_>) {
    let all: Vec<_> = COLLECTORS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for collector in all {
        collector.collect(out);
    }
}
