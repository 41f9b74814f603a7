//! Release plans (DESIGN §8): the template's `x-turnout.release` block as
//! written ([`ReleaseBlock`], kept in [`Template::release`]), the
//! `turnout release` flags on top of it (a [`ReleaseBlock`] too, carried
//! as the API release request's `plan`: [`ReleaseBlock::over`]), and the plan they make together with every
//! default filled in ([`ReleasePlan`], from [`ReleasePlan::with_overrides`]
//! alone, which also validates it).
//!
//! `read.rs` reads the block from the YAML tree, `check.rs` validates a
//! plan (against the template, and against the old template where that is
//! needed: [`ReleasePlan::check_release`]), `schedule.rs` turns a plan into
//! the steps and times `turnout plan` prints.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::diagnostic::{Diagnostic, FieldPath, Pos, did_you_mean};
use crate::diff::Strategy;
use crate::rules::{GoalSpec, RuleSpec};
use crate::template::Template;

mod check;
pub(crate) mod read;
mod schedule;
pub mod units;

pub use schedule::{RouteShare, Schedule, ScheduledStep};
pub use units::{
    Millis, Pause, Rate, ValueError, check_share, check_steps, parse_duration, parse_pause,
    parse_rate, parse_share, parse_steps,
};

/// The gray steps when neither the template nor a flag gives them.
pub const DEFAULT_STEPS: [u8; 3] = [10, 50, 100];
/// The canary's share when neither the template nor a flag gives it.
pub const DEFAULT_CANARY_SHARE: u8 = 5;
/// The analysis window (DESIGN §8).
pub const DEFAULT_WINDOW: Millis = Millis::secs(30);
/// Fewer requests to the new version in a window: inconclusive (DESIGN §8).
pub const DEFAULT_MIN_REQUESTS: u64 = 100;
/// The A/B test's sticky share of the new variant (DESIGN §8).
pub const DEFAULT_AB_SHARE: u8 = 50;

/// What a release does once its last step passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnSuccess {
    /// Wait in `pending-confirmation` for `turnout confirm` (default).
    #[default]
    PendingConfirmation,
    /// Confirm by itself.
    Confirm,
}

impl fmt::Display for OnSuccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnSuccess::PendingConfirmation => "pending-confirmation",
            OnSuccess::Confirm => "confirm",
        })
    }
}

impl FromStr for OnSuccess {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, ValueError> {
        match s.trim() {
            "pending-confirmation" => Ok(OnSuccess::PendingConfirmation),
            "confirm" => Ok(OnSuccess::Confirm),
            other => Err(ValueError {
                message: format!("unknown on_success {other:?}"),
                hint: "write `pending-confirmation` (wait for `turnout confirm`) or `confirm`"
                    .into(),
            }),
        }
    }
}

/// Reads a strategy, with a "did you mean" for a typo.
pub fn parse_strategy(text: &str) -> Result<Strategy, ValueError> {
    text.trim().parse::<Strategy>().map_err(|_| {
        let names: Vec<&str> = Strategy::ALL.iter().map(|s| s.as_str()).collect();
        ValueError {
            message: format!("unknown strategy {text:?}"),
            hint: match did_you_mean(text.trim(), &names) {
                Some(m) => format!("did you mean {m:?}?"),
                None => format!("a strategy is one of {}", names.join(", ")),
            },
        }
    })
}

/// A number a gate compares with (the Prometheus query's `max`): finite.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Threshold(pub f64);

impl PartialEq for Threshold {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Threshold {}

/// `analysis.prometheus`: an outside metric's gate, an instant query whose
/// value must stay at or below `max`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusGate {
    /// The Prometheus server's base URL (`http://prometheus:9090`).
    pub url: String,
    /// The PromQL instant query.
    pub query: String,
    /// The check fails when the query's value exceeds this.
    pub max: Threshold,
}

/// `x-turnout.release.canary` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryBlock {
    /// The canary's share in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<u32>,
    /// How many new instances the canary runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
}

/// `x-turnout.release.analysis` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisBlock {
    /// The metrics window of each check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Millis>,
    /// Fewer requests to the new version in a window: inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u64>,
    /// The new version's 5xx share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<Rate>,
    /// New minus baseline 5xx share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_increase: Option<Rate>,
    /// The new version's p99 latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p99: Option<Millis>,
    /// New minus baseline p99.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p99_increase: Option<Millis>,
    /// An outside metric's gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusGate>,
}

/// `x-turnout.release.ab` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbBlock {
    /// Forced variants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleSpec>,
    /// The new variant's sticky share of the rest, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<u32>,
    /// The conversion the test measures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<GoalSpec>,
}

/// The template's `x-turnout.release` block as written: every field
/// optional, nothing defaulted (that is [`ReleasePlan::with_overrides`]'s
/// work). A template that was read holds only a block whose plan is valid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseBlock {
    /// How to release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// Gray: the new version's share at each step, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<u32>>,
    /// The bake time of each step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<Pause>,
    /// Canary: its share and instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryBlock>,
    /// The analysis gates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisBlock>,
    /// What happens after the last step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<OnSuccess>,
    /// Lane affinity between new frontends and new backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lanes: Option<bool>,
    /// A/B test: rules, share, goal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ab: Option<AbBlock>,
}

/// Where the fields of a template's release block were written, for the
/// diagnostics of a plan made from it later (with overrides, on the
/// server). Keys are paths inside the block: `steps`, `steps[1]`,
/// `canary.scale`, `ab.rules[0].service`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanSpans {
    /// The template's file, as diagnostics name it.
    pub file: String,
    at: BTreeMap<String, Pos>,
}

impl PlanSpans {
    pub(crate) fn insert(&mut self, key: String, pos: Pos) {
        self.at.insert(key, pos);
    }

    /// Where `key` (or, failing that, the nearest enclosing field) was
    /// written; line 0 when the block does not write it.
    pub fn pos(&self, key: &str) -> Pos {
        let mut k = key;
        loop {
            if let Some(p) = self.at.get(k) {
                return *p;
            }
            match k.rfind(['.', '[']) {
                Some(i) => k = &k[..i],
                None => return self.at.get("").copied().unwrap_or_default(),
            }
        }
    }
}

/// Merges two optional values: `over`'s when it has one.
fn pick<T: Clone>(over: &Option<T>, base: &Option<T>) -> Option<T> {
    over.clone().or_else(|| base.clone())
}

/// Merges two optional sub-blocks field by field.
fn pick_block<T: Clone>(
    over: &Option<T>,
    base: &Option<T>,
    merge: impl Fn(&T, &T) -> T,
) -> Option<T> {
    match (over, base) {
        (Some(o), Some(b)) => Some(merge(o, b)),
        _ => pick(over, base),
    }
}

impl ReleaseBlock {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// This block (the `turnout release` flags, or the API request's
    /// `plan`) over `base` (the template's block): every field set here
    /// wins, field by field inside `canary`, `analysis`, `ab` and the goal.
    pub fn over(&self, base: &ReleaseBlock) -> ReleaseBlock {
        ReleaseBlock {
            strategy: self.strategy.or(base.strategy),
            steps: pick(&self.steps, &base.steps),
            pause: self.pause.or(base.pause),
            canary: pick_block(&self.canary, &base.canary, |o, b| CanaryBlock {
                share: o.share.or(b.share),
                scale: o.scale.or(b.scale),
            }),
            analysis: pick_block(&self.analysis, &base.analysis, |o, b| AnalysisBlock {
                window: o.window.or(b.window),
                min_requests: o.min_requests.or(b.min_requests),
                max_error_rate: o.max_error_rate.or(b.max_error_rate),
                max_error_increase: o.max_error_increase.or(b.max_error_increase),
                max_p99: o.max_p99.or(b.max_p99),
                max_p99_increase: o.max_p99_increase.or(b.max_p99_increase),
                prometheus: pick(&o.prometheus, &b.prometheus),
            }),
            on_success: self.on_success.or(base.on_success),
            lanes: self.lanes.or(base.lanes),
            ab: pick_block(&self.ab, &base.ab, |o, b| AbBlock {
                rules: if o.rules.is_empty() {
                    b.rules.clone()
                } else {
                    o.rules.clone()
                },
                share: o.share.or(b.share),
                goal: pick_block(&o.goal, &b.goal, |o, b| GoalSpec {
                    path: o.path.clone(),
                    status: pick(&o.status, &b.status),
                }),
            }),
        }
    }

    /// The fields set, as paths inside the block (`canary.share`), in
    /// block order (`strategy` left out).
    pub fn fields_set(&self) -> Vec<&'static str> {
        let canary = self.canary.clone().unwrap_or_default();
        let analysis = self.analysis.clone().unwrap_or_default();
        let ab = self.ab.clone().unwrap_or_default();
        [
            ("steps", self.steps.is_some()),
            ("pause", self.pause.is_some()),
            ("canary.share", canary.share.is_some()),
            ("canary.scale", canary.scale.is_some()),
            ("analysis.window", analysis.window.is_some()),
            ("analysis.min_requests", analysis.min_requests.is_some()),
            ("analysis.max_error_rate", analysis.max_error_rate.is_some()),
            (
                "analysis.max_error_increase",
                analysis.max_error_increase.is_some(),
            ),
            ("analysis.max_p99", analysis.max_p99.is_some()),
            (
                "analysis.max_p99_increase",
                analysis.max_p99_increase.is_some(),
            ),
            ("analysis.prometheus", analysis.prometheus.is_some()),
            ("on_success", self.on_success.is_some()),
            ("lanes", self.lanes.is_some()),
            ("ab.rules", !ab.rules.is_empty()),
            ("ab.share", ab.share.is_some()),
            ("ab.goal", ab.goal.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }

    /// Whether this block sets the field `key` (`strategy`, `steps`,
    /// `ab.goal.path`: a field inside a set field counts).
    fn sets(&self, key: &str) -> bool {
        (key == "strategy" && self.strategy.is_some())
            || self.fields_set().iter().any(|f| {
                key == *f
                    || key
                        .strip_prefix(f)
                        .is_some_and(|rest| rest.starts_with(['.', '[']))
            })
    }
}

/// The `turnout release` flag of a block field, if it has one.
pub fn flag_name(key: &str) -> Option<&'static str> {
    Some(match key {
        "strategy" => "--strategy",
        "steps" => "--steps",
        "pause" => "--pause",
        "canary.share" => "--canary-share",
        "canary.scale" => "--canary-scale",
        "analysis.window" => "--window",
        "analysis.min_requests" => "--min-requests",
        "analysis.max_error_rate" => "--max-error-rate",
        "analysis.max_error_increase" => "--max-error-increase",
        "analysis.max_p99" => "--max-p99",
        "analysis.max_p99_increase" => "--max-p99-increase",
        "on_success" => "--on-success",
        "ab.goal" | "ab.goal.path" => "--goal",
        "ab.share" => "--ab-share",
        _ => return None,
    })
}

/// `canary` with its defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Canary {
    /// The canary's share of each shared route, in percent (default 5).
    pub share: u8,
    /// New instances the canary runs, per new service (default 1).
    pub scale: u32,
}

/// `analysis` with its defaults; a gate that is `None` is off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Analysis {
    /// The window of each check (default 30 s).
    pub window: Millis,
    /// Fewer requests to the new version in a window: inconclusive (100).
    pub min_requests: u64,
    /// The new version's 5xx share.
    pub max_error_rate: Option<Rate>,
    /// New minus baseline 5xx share, over the same window.
    pub max_error_increase: Option<Rate>,
    /// The new version's p99.
    pub max_p99: Option<Millis>,
    /// New minus baseline p99, over the same window.
    pub max_p99_increase: Option<Millis>,
    /// An outside metric's gate.
    pub prometheus: Option<PrometheusGate>,
}

impl Analysis {
    /// Whether any gate is on: without one, nothing is checked, a step
    /// holds for its pause only and nothing rolls back by itself.
    pub fn has_gates(&self) -> bool {
        self.max_error_rate.is_some()
            || self.max_error_increase.is_some()
            || self.max_p99.is_some()
            || self.max_p99_increase.is_some()
            || self.prometheus.is_some()
    }

    /// The gates that are on, as the plan spells them (`max_p99: 500ms`).
    pub fn gates(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(r) = self.max_error_rate {
            out.push(format!("max_error_rate: {r}"));
        }
        if let Some(r) = self.max_error_increase {
            out.push(format!("max_error_increase: {r}"));
        }
        if let Some(d) = self.max_p99 {
            out.push(format!("max_p99: {d}"));
        }
        if let Some(d) = self.max_p99_increase {
            out.push(format!("max_p99_increase: {d}"));
        }
        if let Some(p) = &self.prometheus {
            out.push(format!("prometheus: {} <= {}", p.query, p.max.0));
        }
        out
    }
}

/// `ab` with its defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ab {
    /// Forced variants.
    pub rules: Vec<RuleSpec>,
    /// The new variant's sticky share of the rest (default 50).
    pub share: u8,
    /// The conversion measured, if any.
    pub goal: Option<GoalSpec>,
}

/// A release plan: the template's block with the flags on top and every
/// default of DESIGN §8 filled in. Made (and validated) by
/// [`ReleasePlan::with_overrides`] only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleasePlan {
    /// How to release (default blue-green).
    pub strategy: Strategy,
    /// Gray's steps (default 10, 50, 100); see [`ReleasePlan::shares`] for
    /// the steps of any strategy.
    pub steps: Vec<u8>,
    /// The bake time per step (default 30 s).
    pub pause: Pause,
    /// The canary.
    pub canary: Canary,
    /// The checks.
    pub analysis: Analysis,
    /// After the last step (default pending-confirmation).
    pub on_success: OnSuccess,
    /// Lane affinity (default on for gray and canary).
    pub lanes: bool,
    /// The A/B test.
    pub ab: Ab,
}

/// A valid plan and what is suspicious about it.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The plan.
    pub plan: ReleasePlan,
    /// Fields that the strategy does not use, and the like.
    pub warnings: Vec<Diagnostic>,
}

/// Where a field of a plan came from, for its diagnostics.
pub(crate) struct Places<'a> {
    spans: &'a PlanSpans,
    overrides: &'a ReleaseBlock,
}

impl Places<'_> {
    /// A diagnostic about the block field `key` (`steps[1]`,
    /// `canary.scale`): at the flag that set it, else where the template
    /// writes it.
    pub(crate) fn diagnostic(
        &self,
        error: bool,
        key: &str,
        message: impl Into<String>,
    ) -> Diagnostic {
        let base = key.split('[').next().unwrap_or(key);
        let (file, pos, path) = match self.overrides.sets(base) {
            true => (
                "flags".to_string(),
                Pos::default(),
                FieldPath::root().key(flag_name(base).unwrap_or(base)),
            ),
            false => (
                self.spans.file.clone(),
                self.spans.pos(key),
                block_path(key),
            ),
        };
        let mut d = if error {
            Diagnostic::error(pos, &path, message)
        } else {
            Diagnostic::warning(pos, &path, message)
        };
        d.file = file;
        d
    }
}

/// The field path of a block field: `x-turnout.release.canary.scale`.
pub(crate) fn block_path(key: &str) -> FieldPath {
    let mut path = FieldPath::root().key("x-turnout").key("release");
    for part in key.split('.').filter(|p| !p.is_empty()) {
        match part.split_once('[') {
            Some((name, rest)) => {
                path = path.key(name);
                if let Ok(i) = rest.trim_end_matches(']').parse::<usize>() {
                    path = path.index(i);
                }
            }
            None => path = path.key(part),
        }
    }
    path
}

impl ReleasePlan {
    /// The plan of a release of `template`: its `x-turnout.release` block
    /// (whose fields were written where `spans` says), `overrides` on top,
    /// the defaults of DESIGN §8 under both; validated against the
    /// template. Every problem comes back at once; warnings come with a
    /// valid plan.
    pub fn with_overrides(
        template: &Template,
        spans: &PlanSpans,
        overrides: &ReleaseBlock,
    ) -> Result<Resolved, Vec<Diagnostic>> {
        let places = Places { spans, overrides };
        let written = template.release.as_deref().cloned().unwrap_or_default();
        let block = overrides.over(&written);
        let mut diagnostics = Vec::new();
        let strategy = block.strategy.unwrap_or(Strategy::BlueGreen);
        let canary = block.canary.clone().unwrap_or_default();
        let analysis = block.analysis.clone().unwrap_or_default();
        let ab = block.ab.clone().unwrap_or_default();

        let steps = match block.steps.as_ref() {
            None => DEFAULT_STEPS.to_vec(),
            Some(raw) => match check_steps(raw) {
                Ok(steps) => steps,
                Err((i, e)) => {
                    let key = if raw.is_empty() {
                        "steps".to_string()
                    } else {
                        format!("steps[{i}]")
                    };
                    diagnostics.push(places.diagnostic(true, &key, e.message).hint(e.hint));
                    Vec::new()
                }
            },
        };
        let mut share = |key: &str, value: Option<u32>, default: u8| match value {
            None => default,
            Some(v) => check_share(v).unwrap_or_else(|e| {
                diagnostics.push(places.diagnostic(true, key, e.message).hint(e.hint));
                default
            }),
        };
        let canary_share = share("canary.share", canary.share, DEFAULT_CANARY_SHARE);
        let ab_share = share("ab.share", ab.share, DEFAULT_AB_SHARE);
        let plan = ReleasePlan {
            strategy,
            steps,
            pause: block.pause.unwrap_or_default(),
            canary: Canary {
                share: canary_share,
                scale: canary.scale.unwrap_or(1),
            },
            analysis: Analysis {
                window: analysis.window.unwrap_or(DEFAULT_WINDOW),
                min_requests: analysis.min_requests.unwrap_or(DEFAULT_MIN_REQUESTS),
                max_error_rate: analysis.max_error_rate,
                max_error_increase: analysis.max_error_increase,
                max_p99: analysis.max_p99,
                max_p99_increase: analysis.max_p99_increase,
                prometheus: analysis.prometheus,
            },
            on_success: block.on_success.unwrap_or_default(),
            lanes: block
                .lanes
                .unwrap_or(matches!(strategy, Strategy::Gray | Strategy::Canary)),
            ab: Ab {
                rules: ab.rules,
                share: ab_share,
                goal: ab.goal,
            },
        };
        let mut warnings = Vec::new();
        check::check(
            &plan,
            &block,
            template,
            &places,
            &mut diagnostics,
            &mut warnings,
        );
        if diagnostics.is_empty() {
            Ok(Resolved { plan, warnings })
        } else {
            diagnostics.extend(warnings);
            Err(diagnostics)
        }
    }

    /// The new version's share at each step of this plan: gray's steps,
    /// the canary's share, the A/B test's share; none for blue-green (the
    /// operator moves the weights) and standard (instances are replaced).
    pub fn shares(&self) -> Vec<u8> {
        match self.strategy {
            Strategy::BlueGreen | Strategy::Standard => Vec::new(),
            Strategy::Gray => self.steps.clone(),
            Strategy::Canary => vec![self.canary.share],
            Strategy::AbTest => vec![self.ab.share],
        }
    }

    /// What is left to validate once the app's current template is known:
    /// the canary's scale against each service the release starts; an A/B
    /// test's shared route, its rules' services and its goal's stickiness.
    /// The engine calls this when it starts a release, `turnout plan` too.
    pub fn check_release(&self, old: &Template, new: &Template, domain: &str) -> Vec<Diagnostic> {
        check::check_release(self, old, new, domain)
    }
}
