//! The application's own `prometheus` registries, read into the family model.

use std::sync::Mutex;

use prometheus::proto::{MetricFamily, MetricType};

use super::family::{Bucket, Family, Kind, Origin, Series, Str, Value};

static EXTRA_REGISTRIES: Mutex<Vec<prometheus::Registry>> = Mutex::new(Vec::new());

/// Gathers a `prometheus::Registry` of the application's into [`super::render`]'s
/// output, in addition to `prometheus`' default registry (which is always gathered).
///
/// ```
/// let registry = prometheus::Registry::new();
/// let jobs = prometheus::IntCounter::new("jobs_done_total", "Jobs done.").unwrap();
/// registry.register(Box::new(jobs.clone())).unwrap();
/// observe_runtime::exposition::register_registry(registry);
/// jobs.inc();
/// assert!(observe_runtime::exposition::render().contains("jobs_done_total 1"));
/// ```
pub fn register_registry(registry: prometheus::Registry) {
    EXTRA_REGISTRIES
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .push(registry);
}

/// Every family of the default registry and of the registered ones.
pub(crate) fn gather() -> Vec<Family> {
    let mut all = prometheus::gather();
    for registry in EXTRA_REGISTRIES
        .lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .iter()
    {
        all.extend(registry.gather());
    }
    all.iter().map(convert).collect()
}

fn labels(m: &prometheus::proto::Metric) -> Vec<(Str, Str)> {
    m.get_label()
        .iter()
        .map(|lp| {
            (
                Str::from(lp.name().to_owned()),
                Str::from(lp.value().to_owned()),
            )
        })
        .collect()
}

/// One `prometheus` family in the model.
pub(crate) fn convert(mf: &MetricFamily) -> Family {
    let kind = match mf.get_field_type() {
        MetricType::COUNTER => Kind::Counter,
        MetricType::GAUGE => Kind::Gauge,
        MetricType::HISTOGRAM => Kind::Histogram,
        MetricType::SUMMARY => Kind::Summary,
        MetricType::UNTYPED => Kind::Unknown,
    };
    let series = mf
        .get_metric()
        .iter()
        .map(|m| {
            let value = match kind {
                Kind::Counter => Value::Number(m.get_counter().get_value()),
                Kind::Gauge => Value::Number(m.get_gauge().get_value()),
                #[allow(deprecated)] // the only accessor prometheus 0.14 has for it
                Kind::Unknown => Value::Number(m.get_untyped().get_value()),
                Kind::Histogram => {
                    let h = m.get_histogram();
                    let mut buckets: Vec<Bucket> = h
                        .get_bucket()
                        .iter()
                        .map(|b| Bucket {
                            le: b.upper_bound(),
                            cumulative: b.cumulative_count(),
                            exemplar: None,
                        })
                        .collect();
                    if buckets.last().is_none_or(|b| b.le != f64::INFINITY) {
                        buckets.push(Bucket {
                            le: f64::INFINITY,
                            cumulative: h.get_sample_count(),
                            exemplar: None,
                        });
                    }
                    Value::Histogram {
                        buckets,
                        sum: h.get_sample_sum(),
                        count: h.get_sample_count(),
                    }
                }
                Kind::Summary => {
                    let s = m.get_summary();
                    Value::Summary {
                        quantiles: s
                            .get_quantile()
                            .iter()
                            .map(|q| (q.quantile(), q.value()))
                            .collect(),
                        sum: s.sample_sum(),
                        count: s.sample_count(),
                    }
                }
            };
            Series {
                labels: labels(m),
                value,
            }
        })
        .collect();
    Family {
        series,
        origin: Origin::Prometheus,
        ..Family::new(mf.name().to_owned(), kind, mf.help().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_prometheus_type_converts() {
        let registry = prometheus::Registry::new();
        let c =
            prometheus::IntCounterVec::new(prometheus::Opts::new("jobs", "Jobs."), &["q"]).unwrap();
        let h = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("lat_seconds", "Lat.").buckets(vec![0.5]),
        )
        .unwrap();
        registry.register(Box::new(c.clone())).unwrap();
        registry.register(Box::new(h.clone())).unwrap();
        c.with_label_values(&["a"]).inc_by(3);
        h.observe(0.25);
        h.observe(2.0);
        let families: Vec<Family> = registry.gather().iter().map(convert).collect();
        assert_eq!(families[0].name, "jobs");
        assert_eq!(families[0].kind, Kind::Counter);
        assert_eq!(
            families[0].series[0].labels,
            vec![(Str::from("q"), Str::from("a"))]
        );
        assert_eq!(families[0].series[0].value, Value::Number(3.0));
        let Value::Histogram {
            buckets,
            sum,
            count,
        } = &families[1].series[0].value
        else {
            panic!("histogram")
        };
        assert_eq!(
            buckets
                .iter()
                .map(|b| (b.le, b.cumulative))
                .collect::<Vec<_>>(),
            [(0.5, 1), (f64::INFINITY, 2)]
        );
        assert_eq!((*sum, *count), (2.25, 2));
    }
}
