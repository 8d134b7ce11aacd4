//! The family model: one structured snapshot of every metric, filled by every source at
//! scrape or push time and read by every encoder. Nothing here knows a wire format.

use std::borrow::Cow;

use crate::metrics::exemplar::Exemplar;

/// A label name or value: borrowed when it is known at compile time (function, module,
/// method), owned otherwise.
pub type Str = Cow<'static, str>;

/// The type of a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A monotonic count; its name ends in `_total`.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Bucketed observations with their sum and count.
    Histogram,
    /// Quantiles with their sum and count (only from users' `prometheus` registries).
    Summary,
    /// A value of unknown type (`untyped` in the text format).
    Unknown,
}

impl Kind {
    /// The word of the Prometheus text format 0.0.4.
    pub(crate) fn text_word(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
            Kind::Unknown => "untyped",
        }
    }
}

/// Where a family came from, for encoders that care (the OTLP push gives OpenTelemetry
/// instruments back their own name, unit and scope).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Origin {
    /// observe's own store, or a user's `prometheus` registry.
    #[default]
    Prometheus,
    /// An OpenTelemetry SDK instrument.
    OpenTelemetry {
        /// The instrument's name (`payments.charges`).
        name: String,
        /// Its UCUM unit (`ms`, `By`, `{request}`).
        unit: String,
        /// The meter's name.
        scope: String,
        /// The meter's version.
        scope_version: String,
        /// A sum in the SDK (an up-down counter shows as a gauge, and is pushed back as a
        /// non-monotonic sum).
        sum: bool,
    },
}

/// One histogram bucket: its upper bound, the *cumulative* count up to it, and the
/// exemplar of a recent observation in it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    /// Upper bound (`le`); the last bucket is `+Inf`.
    pub le: f64,
    /// Observations at or below `le`.
    pub cumulative: u64,
    /// A recent observation in this bucket made in a sampled span.
    pub exemplar: Option<Exemplar>,
}

/// The value of one series.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Counter, gauge or unknown.
    Number(f64),
    /// A histogram; `buckets` ends with `+Inf`, whose count is `count`.
    Histogram {
        /// Cumulative buckets, ascending, the last one `+Inf`.
        buckets: Vec<Bucket>,
        /// Sum of the observations.
        sum: f64,
        /// Number of observations.
        count: u64,
    },
    /// A summary.
    Summary {
        /// `(quantile, value)` pairs.
        quantiles: Vec<(f64, f64)>,
        /// Sum of the observations.
        sum: f64,
        /// Number of observations.
        count: u64,
    },
}

/// One series: its labels and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Label pairs, in the order they are written.
    pub labels: Vec<(Str, Str)>,
    /// The value.
    pub value: Value,
}

impl Series {
    /// A series with a single number.
    pub fn number(labels: Vec<(Str, Str)>, value: f64) -> Series {
        Series {
            labels,
            value: Value::Number(value),
        }
    }

    /// A histogram series from per-bucket (not cumulative) counts, `+Inf` last, with
    /// `bounds` the finite upper bounds.
    pub fn histogram(
        labels: Vec<(Str, Str)>,
        bounds: &[f64],
        counts: impl IntoIterator<Item = u64>,
        exemplars: &[Option<Exemplar>],
        sum: f64,
    ) -> Series {
        let mut cumulative = 0;
        let buckets: Vec<Bucket> = counts
            .into_iter()
            .enumerate()
            .map(|(i, count)| {
                cumulative += count;
                Bucket {
                    le: bounds.get(i).copied().unwrap_or(f64::INFINITY),
                    cumulative,
                    exemplar: exemplars.get(i).copied().flatten(),
                }
            })
            .collect();
        Series {
            labels,
            value: Value::Histogram {
                buckets,
                sum,
                count: cumulative,
            },
        }
    }
}

/// One metric family: name, help, unit, type and its series.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    /// The name as Prometheus text 0.0.4 writes it (a counter's ends in `_total`).
    pub name: Str,
    /// One line of help.
    pub help: Str,
    /// The unit word the name ends with (`seconds`, `bytes`), or empty.
    pub unit: Str,
    /// The type.
    pub kind: Kind,
    /// The series, in the order they are written.
    pub series: Vec<Series>,
    /// Where it came from.
    pub origin: Origin,
}

impl Family {
    /// An empty family of observe's own.
    pub fn new(name: impl Into<Str>, kind: Kind, help: impl Into<Str>) -> Family {
        let name = name.into();
        let unit = unit_of(&name);
        Family {
            name,
            help: help.into(),
            unit: Cow::Borrowed(unit),
            kind,
            series: Vec::new(),
            origin: Origin::Prometheus,
        }
    }

    /// Adds a series with a single number.
    pub fn push(&mut self, labels: Vec<(Str, Str)>, value: f64) {
        self.series.push(Series::number(labels, value));
    }

    /// The family with this series added.
    pub fn with(mut self, labels: Vec<(Str, Str)>, value: f64) -> Family {
        self.push(labels, value);
        self
    }
}

/// The unit word a base-unit name ends with, as OpenMetrics' `# UNIT` line names it.
fn unit_of(name: &str) -> &'static str {
    let base = name.strip_suffix("_total").unwrap_or(name);
    ["seconds", "bytes"]
        .into_iter()
        .find(|unit| base.strip_suffix(unit).is_some_and(|b| b.ends_with('_')))
        .unwrap_or("")
}

/// A label pair from two string-likes.
pub fn label(key: impl Into<Str>, value: impl Into<Str>) -> (Str, Str) {
    (key.into(), value.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_cumulate_and_end_at_inf() {
        let s = Series::histogram(vec![], &[0.1, 1.0], [2, 3, 1], &[], 4.5);
        let Value::Histogram {
            buckets,
            sum,
            count,
        } = s.value
        else {
            panic!("a histogram")
        };
        let les: Vec<f64> = buckets.iter().map(|b| b.le).collect();
        let cum: Vec<u64> = buckets.iter().map(|b| b.cumulative).collect();
        assert_eq!(les, [0.1, 1.0, f64::INFINITY]);
        assert_eq!(cum, [2, 5, 6]);
        assert_eq!((sum, count), (4.5, 6));
    }

    #[test]
    fn units_come_from_the_name() {
        assert_eq!(
            Family::new("x_duration_seconds", Kind::Histogram, "").unit,
            "seconds"
        );
        assert_eq!(
            Family::new("process_cpu_seconds_total", Kind::Counter, "").unit,
            "seconds"
        );
        assert_eq!(Family::new("jobs_total", Kind::Counter, "").unit, "");
    }
}
