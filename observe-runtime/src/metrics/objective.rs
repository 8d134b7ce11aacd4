//! Service-level objectives as values: what a team promises about a function or a route
//! ("99.9 % of charges succeed, 99 % within 250 ms"), written once as a `const` and
//! attached with `#[instrumented(objective = …)]` or [`Middleware::objective`].
//!
//! Everything here is `const`: a malformed objective is a compile error where the
//! `const` is defined, and a latency threshold that is not one of the histogram's
//! bucket bounds is a compile error at the `objective = …` argument (checked by
//! [`check_objective`] in generated code).
//!
//! [`Middleware::objective`]: https://docs.rs/observe/latest/observe/struct.Middleware.html#method.objective

use std::sync::Mutex;

/// A service-level objective: a name, a success-rate target and/or a latency target.
///
/// The percentages are what Prometheus alerting rules compare against: a success rate of
/// `99.9` leaves an error budget of 0.1 % of calls; a latency of `(0.25, 99.0)` means
/// 99 % of calls finish within 250 ms, the threshold being one of the histogram's
/// bucket bounds (so the rules read it off one bucket, exactly).
///
/// ```
/// use observe_runtime::metrics::Objective;
///
/// pub const CHARGE: Objective = Objective::new("charge")
///     .success_rate(99.9)
///     .latency(0.25, 99.0);
///
/// assert_eq!(CHARGE.name(), "charge");
/// assert_eq!(CHARGE.success_target(), Some(99.9));
/// assert_eq!(CHARGE.latency_target(), Some((0.25, 99.0)));
/// ```
///
/// Out-of-range values are compile errors where the `const` is defined:
///
/// ```compile_fail
/// use observe_runtime::metrics::Objective;
/// const WRONG: Objective = Objective::new("charge").success_rate(100.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Objective {
    name: &'static str,
    success: Option<f64>,
    latency: Option<(f64, f64)>,
}

/// Whether `name` may be an objective's name (see [`Objective::new`]).
const fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > 64 {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.') {
            return false;
        }
        i += 1;
    }
    true
}

const fn valid_percent(p: f64) -> bool {
    p > 0.0 && p < 100.0
}

impl Objective {
    /// An objective named `name` with no target yet: add [`success_rate`] and/or
    /// [`latency`].
    ///
    /// The name is the `objective_name` label: 1 to 64 ASCII letters, digits, `_`, `-`
    /// or `.` (it also appears in alert names, rule files and the status page).
    ///
    /// ```
    /// const API: observe_runtime::metrics::Objective =
    ///     observe_runtime::metrics::Objective::new("api").success_rate(99.0);
    /// assert_eq!(API.name(), "api");
    /// ```
    ///
    /// [`success_rate`]: Objective::success_rate
    /// [`latency`]: Objective::latency
    pub const fn new(name: &'static str) -> Self {
        assert!(
            valid_name(name),
            "an objective's name is 1 to 64 ASCII letters, digits, `_`, `-` or `.`"
        );
        Objective {
            name,
            success: None,
            latency: None,
        }
    }

    /// Sets the success-rate target, in percent of calls (`99.9`): more than 0, less
    /// than 100. Calls that return an error (or panic) count against it; cancelled
    /// futures count as calls but not as errors.
    ///
    /// autometrics' published rules know the targets 90, 95, 99 and 99.9; observe's own
    /// rules ([`slo::rules_yaml`]) work with any.
    ///
    /// ```
    /// const API: observe_runtime::metrics::Objective =
    ///     observe_runtime::metrics::Objective::new("api").success_rate(99.5);
    /// assert_eq!(API.success_target(), Some(99.5));
    /// ```
    ///
    /// [`slo::rules_yaml`]: crate::slo::rules_yaml
    pub const fn success_rate(mut self, percent: f64) -> Self {
        assert!(
            valid_percent(percent),
            "a success-rate target is a percentage above 0 and below 100, such as 99.9"
        );
        self.success = Some(percent);
        self
    }

    /// Sets the latency target: `percent` of calls (`99.0`) finish within
    /// `threshold_seconds` (`0.25`). The threshold must be one of the histogram's bucket
    /// bounds (the defaults are 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1,
    /// 2.5, 5, 7.5 and 10 s); `#[instrumented]` checks it at compile time.
    ///
    /// ```
    /// const API: observe_runtime::metrics::Objective =
    ///     observe_runtime::metrics::Objective::new("api").latency(0.1, 95.0);
    /// assert_eq!(API.latency_target(), Some((0.1, 95.0)));
    /// ```
    pub const fn latency(mut self, threshold_seconds: f64, percent: f64) -> Self {
        assert!(
            threshold_seconds > 0.0,
            "a latency threshold is a positive number of seconds"
        );
        assert!(
            valid_percent(percent),
            "a latency target is a percentage above 0 and below 100, such as 99"
        );
        self.latency = Some((threshold_seconds, percent));
        self
    }

    /// The same objective without its latency target.
    #[cfg_attr(not(feature = "actix"), allow(dead_code))]
    pub(crate) const fn without_latency(mut self) -> Self {
        self.latency = None;
        self
    }

    /// The name (`objective_name` label).
    ///
    /// ```
    /// assert_eq!(observe_runtime::metrics::Objective::new("x").name(), "x");
    /// ```
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The success-rate target in percent, if any.
    ///
    /// ```
    /// assert_eq!(observe_runtime::metrics::Objective::new("x").success_target(), None);
    /// ```
    pub const fn success_target(&self) -> Option<f64> {
        self.success
    }

    /// The latency target, `(threshold in seconds, percent of calls)`, if any.
    ///
    /// ```
    /// assert_eq!(observe_runtime::metrics::Objective::new("x").latency_target(), None);
    /// ```
    pub const fn latency_target(&self) -> Option<(f64, f64)> {
        self.latency
    }
}

/// Compile-time check emitted by `#[instrumented(objective = …)]`: the objective has a
/// target, and its latency threshold is one of `buckets`. A failure is a compile error
/// at the `objective = …` argument.
#[doc(hidden)]
pub const fn check_objective(objective: &Objective, buckets: &[f64]) {
    assert!(
        objective.success.is_some() || objective.latency.is_some(),
        "this objective has no target: give it `.success_rate(…)` and/or `.latency(…)`"
    );
    if let Some((threshold, _)) = objective.latency {
        let mut i = 0;
        let mut found = false;
        while i < buckets.len() {
            // Exact: the rules select the bucket whose `le` is the threshold.
            if buckets[i] == threshold {
                found = true;
            }
            i += 1;
        }
        assert!(
            found,
            "the objective's latency threshold is not one of this function's histogram bucket \
             bounds: use one of them (see `buckets = [...]`, or the default buckets)"
        );
    }
}

/// One objective attached to an HTTP route (`Middleware::objective`), as
/// [`route_objectives`] lists them.
///
/// ```
/// use observe_runtime::metrics::{Objective, RouteObjective};
/// let r = RouteObjective {
///     method: "POST".into(),
///     route: "/charge".into(),
///     objective: Objective::new("charge-api").success_rate(99.5),
/// };
/// assert_eq!(r.objective.success_target(), Some(99.5));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RouteObjective {
    /// `http_request_method` (upper case).
    pub method: String,
    /// `http_route`, the template as given to actix.
    pub route: String,
    /// The objective.
    pub objective: Objective,
}

static ROUTES: Mutex<Vec<RouteObjective>> = Mutex::new(Vec::new());

/// Attaches `objective` to `method route`, process-wide; attaching another objective to
/// the same route replaces the first.
#[cfg_attr(not(feature = "actix"), allow(dead_code))]
pub(crate) fn attach_route(method: &str, route: &str, objective: Objective) {
    let mut all = ROUTES.lock().unwrap_or_else(|p| p.into_inner());
    let new = RouteObjective {
        method: method.to_owned(),
        route: route.to_owned(),
        objective,
    };
    match all
        .iter_mut()
        .find(|r| r.method == method && r.route == route)
    {
        Some(existing) => *existing = new,
        None => all.push(new),
    }
}

/// Every objective attached to a route, in the order they were attached.
///
/// ```
/// assert!(observe_runtime::metrics::route_objectives().iter().all(|r| !r.route.is_empty()));
/// ```
pub fn route_objectives() -> Vec<RouteObjective> {
    ROUTES.lock().unwrap_or_else(|p| p.into_inner()).clone()
}
