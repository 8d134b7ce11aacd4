//! The link-time registry of instrumented functions.
//!
//! `#[instrumented]` places its function's [`Site`] in the `SITES` distributed slice
//! (`linkme`), so the list of every instrumented function in the binary exists before
//! `main` runs: no registration call, no lock, nothing registered twice however many
//! threads call the function, and every series is exposed at zero on the first scrape.
//!
//! The slice is read once, lazily, into a *plan*: sites grouped by metric identity, with
//! their label text pre-rendered. Two sites with the same identity and the same buckets
//! are merged (their counts add up, like two call sites of one metric); two with the same
//! identity but different buckets or label names are a [`Conflict`], reported with both
//! source locations by [`validate`], logged once, and only the first is exposed, so the
//! exposition stays valid and no request ever panics.

use std::fmt;

use once_cell::sync::Lazy;

use crate::metrics::site::{FnKind, Site, SiteMeta, Snapshot};

/// Every `#[instrumented]` call site linked into the binary (the macro adds each one;
/// generated code names it as `observe::__private::SITES`).
#[doc(hidden)]
#[linkme::distributed_slice]
pub static SITES: [Site];

/// One instrumented function, as listed by [`functions`].
///
/// ```
/// #[observe::instrumented]
/// async fn fetch() {}
///
/// let info = observe::registry::functions().into_iter().find(|f| f.function == "fetch").unwrap();
/// assert!(info.is_async && info.line > 0 && !info.file.is_empty());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct FunctionInfo {
    /// The `function` label.
    pub function: &'static str,
    /// The `module` label.
    pub module: &'static str,
    /// Source file.
    pub file: &'static str,
    /// Source line.
    pub line: u32,
    /// `true` for `async fn` and functions returning `impl Future`.
    pub is_async: bool,
    /// The objective its calls count towards (`#[instrumented(objective = …)]`).
    pub objective: Option<crate::metrics::Objective>,
}

/// Lists every instrumented function in the binary, sorted by module, name and location.
///
/// ```
/// #[observe::instrumented]
/// fn listed() {}
///
/// let all = observe::registry::functions();
/// assert!(all.iter().any(|f| f.function == "listed"));
/// ```
pub fn functions() -> Vec<FunctionInfo> {
    let mut all: Vec<FunctionInfo> = SITES
        .iter()
        .map(|site| {
            let meta: &SiteMeta = site;
            FunctionInfo {
                function: meta.function,
                module: meta.module,
                file: meta.file,
                line: meta.line,
                is_async: meta.kind() == FnKind::Async,
                objective: meta.objective().copied(),
            }
        })
        .collect();
    all.sort_by(|a, b| {
        (a.module, a.function, a.file, a.line).cmp(&(b.module, b.function, b.file, b.line))
    });
    all
}

/// Two call sites that claim the same series with incompatible definitions.
///
/// ```standalone_crate
/// #[observe::instrumented(name = "settle")]
/// fn settle_card() {}
/// #[observe::instrumented(name = "settle", buckets = [1.0])]
/// fn settle_bank() {}
///
/// let conflicts = observe::registry::validate().unwrap_err();
/// assert_eq!(conflicts[0].function, "settle");
/// assert!(conflicts[0].to_string().contains("different histogram buckets"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The `function` label both sites use.
    pub function: &'static str,
    /// The `module` label both sites use.
    pub module: &'static str,
    /// `file:line` of the site that is exposed.
    pub first: String,
    /// `file:line` of the site that is not.
    pub second: String,
    /// What differs.
    pub reason: &'static str,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "instrumented functions at {} and {} both declare function=\"{}\", module=\"{}\" \
             with {}; only the first is exposed. Give one of them `#[instrumented(name = \"…\")]`",
            self.first, self.second, self.function, self.module, self.reason
        )
    }
}

/// Checks the whole registry once, returning every conflict with both source locations.
///
/// Call it at start-up to fail fast; the first scrape logs the same conflicts otherwise.
///
/// ```
/// #[observe::instrumented]
/// fn only_one() {}
///
/// assert!(observe::registry::validate().is_ok());
/// ```
pub fn validate() -> Result<(), Vec<Conflict>> {
    let plan = plan();
    if plan.conflicts.is_empty() {
        Ok(())
    } else {
        Err(plan.conflicts.clone())
    }
}

/// Sites that share one series identity, merged on exposition.
pub(crate) struct Group {
    pub sites: Vec<&'static Site>,
    /// `function`, `module`, then the static labels.
    pub labels: Vec<(&'static str, &'static str)>,
    pub buckets: &'static [f64],
    pub is_async: bool,
    pub objective: Option<&'static crate::metrics::Objective>,
}

impl Group {
    pub fn snapshot(&self) -> Snapshot {
        let mut total = Snapshot::default();
        for site in &self.sites {
            total.merge(&site.snapshot());
        }
        total
    }
}

pub(crate) struct Plan {
    pub groups: Vec<Group>,
    pub conflicts: Vec<Conflict>,
}

static PLAN: Lazy<Plan> = Lazy::new(|| {
    let plan = build_plan(SITES.iter());
    for conflict in &plan.conflicts {
        tracing::error!(target: "observe", "{conflict}");
    }
    plan
});

pub(crate) fn plan() -> &'static Plan {
    &PLAN
}

fn sorted_labels(meta: &SiteMeta) -> Vec<(&'static str, &'static str)> {
    let mut labels = meta.labels().to_vec();
    labels.sort_unstable();
    labels
}

pub(crate) fn build_plan(sites: impl Iterator<Item = &'static Site>) -> Plan {
    let mut sites: Vec<&'static Site> = sites.collect();
    // Deterministic order: the exposed site of a conflict is the first by location.
    sites.sort_by(|a, b| {
        (a.module, a.function, a.file, a.line).cmp(&(b.module, b.function, b.file, b.line))
    });
    let mut groups: Vec<Group> = Vec::new();
    let mut conflicts = Vec::new();
    'sites: for site in sites {
        let meta: &SiteMeta = site;
        let labels = sorted_labels(meta);
        for group in &mut groups {
            let first: &SiteMeta = group.sites[0];
            if first.function != meta.function || first.module != meta.module {
                continue;
            }
            let first_labels = sorted_labels(first);
            let same_keys = first_labels.len() == labels.len()
                && first_labels.iter().zip(&labels).all(|(a, b)| a.0 == b.0);
            let reason = if !same_keys {
                "different label names"
            } else if first_labels != labels {
                // Same names, different values: distinct series of one family.
                continue;
            } else if first.buckets() != meta.buckets() {
                "different histogram buckets"
            } else if first.objective() != meta.objective() {
                "different objectives"
            } else {
                group.sites.push(site);
                group.is_async |= meta.kind() == FnKind::Async;
                continue 'sites;
            };
            conflicts.push(Conflict {
                function: meta.function,
                module: meta.module,
                first: first.location(),
                second: meta.location(),
                reason,
            });
            continue 'sites;
        }
        let mut all = vec![("function", meta.function), ("module", meta.module)];
        all.extend_from_slice(meta.labels());
        groups.push(Group {
            sites: vec![site],
            labels: all,
            buckets: meta.buckets(),
            is_async: meta.kind() == FnKind::Async,
            objective: meta.objective(),
        });
    }
    Plan { groups, conflicts }
}

/// Calls of instrumented functions started so far, over every site.
#[cfg_attr(not(feature = "otel"), allow(dead_code))]
pub(crate) fn calls_started() -> u64 {
    SITES
        .iter()
        .map(|site| {
            let snap = site.snapshot();
            snap.outcomes.iter().sum::<u64>() + snap.in_flight
        })
        .sum()
}
