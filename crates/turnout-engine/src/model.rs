//! The control plane's view of an app: its services, route weights and
//! release. Values of these types are what `step` maps to new values.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use turnout_routing::Weight;
use turnout_spec::{Service, Strategy, Template};

/// A release state (DESIGN §2), spelled exactly as everywhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReleaseState {
    /// New instances are starting.
    Deploying,
    /// A progressive release runs a step: the new version has the step's
    /// share, and the step's pause is running.
    Progressing,
    /// A progressive release holds its step (why: [`Progress::paused`]).
    Paused,
    /// Every new instance is ready; the operator moves weights, then
    /// confirms or rolls back.
    PendingConfirmation,
    /// Old services were removed; the release is done.
    Confirmed,
    /// New services were removed and the weights restored.
    RolledBack,
    /// New instances never became ready; recorded on the way to
    /// `rolled-back`.
    Failed,
}

impl ReleaseState {
    /// Whether the release is over (another one may start).
    pub fn is_terminal(self) -> bool {
        matches!(self, ReleaseState::Confirmed | ReleaseState::RolledBack)
    }

    /// Every state, for tests and documentation.
    pub const ALL: [ReleaseState; 7] = [
        ReleaseState::Deploying,
        ReleaseState::Progressing,
        ReleaseState::Paused,
        ReleaseState::PendingConfirmation,
        ReleaseState::Confirmed,
        ReleaseState::RolledBack,
        ReleaseState::Failed,
    ];
}

impl fmt::Display for ReleaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReleaseState::Deploying => "deploying",
            ReleaseState::Progressing => "progressing",
            ReleaseState::Paused => "paused",
            ReleaseState::PendingConfirmation => "pending-confirmation",
            ReleaseState::Confirmed => "confirmed",
            ReleaseState::RolledBack => "rolled-back",
            ReleaseState::Failed => "failed",
        })
    }
}

impl FromStr for ReleaseState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        ReleaseState::ALL
            .into_iter()
            .find(|state| state.to_string() == s)
            .ok_or_else(|| format!("unknown release state {s:?}"))
    }
}

/// What a service is to the release in progress (DESIGN §5 status JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServiceRole {
    /// No release in progress.
    Current,
    /// In both templates, same identity (yellow).
    Unchanged,
    /// Only in the old template (blue): removed on confirm.
    Old,
    /// Only in the new template (green): removed on rollback.
    New,
    /// Same name, new spec: replaced in place by a standard release.
    Changed,
}

impl ServiceRole {
    /// The console colour of the role.
    pub fn color(self) -> &'static str {
        match self {
            ServiceRole::Current => "default",
            ServiceRole::Unchanged => "yellow",
            ServiceRole::Old => "blue",
            ServiceRole::New => "green",
            ServiceRole::Changed => "magenta",
        }
    }
}

impl fmt::Display for ServiceRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServiceRole::Current => "current",
            ServiceRole::Unchanged => "unchanged",
            ServiceRole::Old => "old",
            ServiceRole::New => "new",
            ServiceRole::Changed => "changed",
        })
    }
}

/// A service the app should be running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    /// The service's spec as the template that brought it gives it.
    pub spec: Service,
    /// The template version the spec comes from.
    pub template_version: u32,
    /// `turnout_spec::spec_hash` of the spec: instances started from
    /// another spec (a standard release's old generation) are replaced.
    pub spec_hash: String,
    /// What the service is to the release in progress.
    pub role: ServiceRole,
}

impl ServiceEntry {
    /// An entry for `spec` from template `version`.
    pub fn new(spec: Service, version: u32, role: ServiceRole) -> Self {
        let spec_hash = turnout_spec::spec_hash(&spec);
        Self {
            spec,
            template_version: version,
            spec_hash,
            role,
        }
    }

    /// The service name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

/// One service's weight on a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteWeight {
    /// The service.
    pub service: String,
    /// 0..=100, relative to the route's other services.
    pub weight: Weight,
}

/// Weights by route id. The order of a route's services is the order of
/// the route file: older services first (bottom of the position space).
pub type Weights = BTreeMap<String, Vec<RouteWeight>>;

/// Why a progressive release is paused (DESIGN §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PauseReason {
    /// The operator paused it.
    Manual,
    /// The last analysis had too few requests to judge.
    Inconclusive,
    /// The plan's pause is `until-promoted`.
    UntilPromoted,
}

impl PauseReason {
    /// The reason as the status and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            PauseReason::Manual => "manual",
            PauseReason::Inconclusive => "inconclusive",
            PauseReason::UntilPromoted => "until-promoted",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s spelling.
    pub fn parse(s: &str) -> Option<PauseReason> {
        [
            PauseReason::Manual,
            PauseReason::Inconclusive,
            PauseReason::UntilPromoted,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// Where a progressive release (canary, gray, A/B test) stands: its plan
/// and its step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The `turnout release` flags over the template's block, kept so the
    /// plan can be made again after a restart.
    pub overrides: turnout_spec::ReleaseBlock,
    /// The plan (the template's block, the overrides, the defaults).
    pub plan: turnout_spec::ReleasePlan,
    /// The step running, an index into `plan.shares()`; `None` until the
    /// new instances are ready.
    pub step: Option<usize>,
    /// When the step started (its pause counts from here), unix ms.
    pub step_started_ms: i64,
    /// Why it is paused, while it is.
    pub paused: Option<PauseReason>,
    /// A promoted canary is starting the rest of its new instances; the
    /// last stage starts once they are ready.
    pub scaling: bool,
    /// A check of this step passed (with analysis gates, a step moves on
    /// after its pause only then).
    pub passed: bool,
}

impl Progress {
    /// The new version's share at each step.
    pub fn shares(&self) -> Vec<u8> {
        self.plan.shares()
    }
}

/// A release: the move from one template version to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Id, unique across apps.
    pub id: i64,
    /// The strategy.
    pub strategy: Strategy,
    /// Where the release stands.
    pub state: ReleaseState,
    /// The template version the app ran before.
    pub from_version: u32,
    /// The template version being released.
    pub to_version: u32,
    /// Why the release ended as it did, when not by the operator's
    /// confirm (e.g. `failed: ...`).
    pub reason: Option<String>,
    /// The weights before the release, restored on rollback.
    pub saved_weights: Weights,
    /// When the release started, unix ms.
    pub started_at_ms: i64,
    /// A progressive release's plan and step; `None` for blue-green and
    /// standard.
    pub progress: Option<Progress>,
}

/// An app: one template deployed, possibly in the middle of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// The app's name.
    pub name: String,
    /// The route domain bare prefixes were completed with at deploy time;
    /// kept so route ids stay stable whatever the server is started with.
    pub domain: String,
    /// The template version in force: during a release the target, after a
    /// rollback the one rolled back to.
    pub version: u32,
    /// The templates the app needs: the one in force and, during a release,
    /// the one it came from.
    pub templates: BTreeMap<u32, Template>,
    /// The services to run, by name.
    pub services: BTreeMap<String, ServiceEntry>,
    /// Route weights.
    pub weights: Weights,
    /// The latest release, finished or not.
    pub release: Option<Release>,
}

impl App {
    /// The release in progress, if any.
    pub fn active_release(&self) -> Option<&Release> {
        self.release.as_ref().filter(|r| !r.state.is_terminal())
    }

    /// The template in force.
    pub fn template(&self) -> Option<&Template> {
        self.templates.get(&self.version)
    }

    /// The weight of `service` on `route`, if it is on it.
    pub fn weight(&self, route: &str, service: &str) -> Option<Weight> {
        self.weights
            .get(route)?
            .iter()
            .find(|w| w.service == service)
            .map(|w| w.weight)
    }
}
