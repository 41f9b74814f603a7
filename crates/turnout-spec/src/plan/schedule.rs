//! What a plan does, step by step, as `turnout plan` prints it: each
//! step's share on each shared route, its pause and analysis window, and
//! the least time to promote and to roll back.

use serde::Serialize;

use crate::diff::{Role, RouteChange, Strategy, diff};
use crate::template::Template;

use super::{Millis, OnSuccess, Pause, ReleasePlan};

/// One route at one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteShare {
    /// The route id (`serviceb.localhost`).
    pub route: String,
    /// Whether it is internal (`.local`).
    pub internal: bool,
    /// The release's services on it (with the old template: the new ones).
    pub services: Vec<String>,
    /// The new version's share, in percent.
    pub new: u8,
    /// What the old version keeps, in percent.
    pub old: u8,
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduledStep {
    /// 1-based.
    pub index: usize,
    /// The new version's share on every shared route, in percent.
    pub share: u8,
    /// Each shared route at this step (all move in lockstep).
    pub routes: Vec<RouteShare>,
    /// How long the step holds.
    pub pause: Pause,
    /// The analysis window checked during the step; `None` when no gate
    /// is on (nothing is checked).
    pub window: Option<Millis>,
    /// The least time the step takes; `None` when it waits for `turnout
    /// promote`.
    pub min_ms: Option<u64>,
}

/// A plan laid out in steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schedule {
    /// The plan itself.
    pub plan: ReleasePlan,
    /// The steps; none for blue-green and standard.
    pub steps: Vec<ScheduledStep>,
    /// The state the release ends in once every step passed
    /// (`pending-confirmation` or `confirmed`).
    pub then: String,
    /// The least time from the first step to the end, the new instances'
    /// start not counted; `None` when a step waits for `turnout promote`
    /// or the strategy has no steps.
    pub min_promote_ms: Option<u64>,
    /// The least time from a failure to the rollback: the first failing
    /// check, one window; `None` when no gate is on.
    pub min_rollback_ms: Option<u64>,
    /// Whether the routes are the shared ones of a diff against the old
    /// template (`true`) or every route of the new template.
    pub routes_from_diff: bool,
}

impl Schedule {
    /// Lays `plan` out over the routes of `new`; with `old` (the app's
    /// current template), over the routes the release shares, naming the
    /// services it starts.
    pub fn new(plan: &ReleasePlan, new: &Template, old: Option<&Template>, domain: &str) -> Self {
        let routes: Vec<(String, bool, Vec<String>)> = match old {
            Some(old) => {
                let d = diff(old, new, domain);
                d.routes
                    .iter()
                    .filter(|r| r.change == RouteChange::Shared)
                    .map(|r| {
                        let starting = r
                            .services
                            .iter()
                            .filter(|s| matches!(d.role(s), Some(Role::New | Role::Changed)))
                            .cloned()
                            .collect();
                        (r.id.clone(), r.internal, starting)
                    })
                    // A route the release starts nothing on keeps its
                    // weights (the engine moves only routes where new
                    // services run beside others).
                    .filter(|(_, _, starting): &(String, bool, Vec<String>)| !starting.is_empty())
                    .collect()
            }
            None => {
                let mut out: Vec<(String, bool, Vec<String>)> = Vec::new();
                for s in &new.services {
                    for r in s.settings.routes.iter().flat_map(|b| b.routes.iter()) {
                        let id = r.id(domain);
                        match out.iter_mut().find(|(i, _, _)| *i == id) {
                            Some((_, _, services)) if !services.contains(&s.name) => {
                                services.push(s.name.clone());
                            }
                            Some(_) => {}
                            None => out.push((id, r.is_internal(domain), vec![s.name.clone()])),
                        }
                    }
                }
                out.sort_by(|a, b| a.0.cmp(&b.0));
                out
            }
        };
        let gated = plan.analysis.has_gates();
        let window = plan.analysis.window;
        let steps: Vec<ScheduledStep> = plan
            .shares()
            .into_iter()
            .enumerate()
            .map(|(i, share)| ScheduledStep {
                index: i + 1,
                share,
                routes: routes
                    .iter()
                    .map(|(route, internal, services)| RouteShare {
                        route: route.clone(),
                        internal: *internal,
                        services: services.clone(),
                        new: share,
                        old: 100 - share,
                    })
                    .collect(),
                pause: plan.pause,
                window: gated.then_some(window),
                // A step holds for its pause, and with gates on, until at
                // least one whole window was judged at its share.
                min_ms: match plan.pause {
                    Pause::UntilPromoted => None,
                    Pause::For(p) if gated => Some(p.0.max(window.0)),
                    Pause::For(p) => Some(p.0),
                },
            })
            .collect();
        let min_promote_ms = if steps.is_empty() {
            None
        } else {
            steps.iter().map(|s| s.min_ms).sum::<Option<u64>>()
        };
        let then = match (plan.strategy, plan.on_success) {
            (Strategy::Standard, _) | (_, OnSuccess::Confirm) => "confirmed",
            _ => "pending-confirmation",
        };
        Schedule {
            plan: plan.clone(),
            steps,
            then: then.into(),
            min_promote_ms,
            min_rollback_ms: (gated && !plan.shares().is_empty()).then_some(window.0),
            routes_from_diff: old.is_some(),
        }
    }
}
