//! The status of an app (DESIGN §5): `GET /v1/apps/{app}`, the answer of
//! every command, and `turnout status --output json`.

use std::collections::BTreeMap;
use turnout_routing::Weight;

use serde::{Deserialize, Serialize};

/// An app's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppStatus {
    /// The app's name.
    pub app: String,
    /// The template version in force (during a release: the target).
    pub template_version: u32,
    /// The latest release, `null` when none was ever made.
    pub release: Option<ReleaseStatus>,
    /// The services, by name.
    #[serde(default)]
    pub services: Vec<ServiceStatus>,
    /// The routes, by id.
    #[serde(default)]
    pub routes: Vec<RouteStatus>,
}

/// The answer of a deploy (`POST /v1/apps`) and of a release
/// (`POST /v1/apps/{app}/releases`): the app's status, as
/// `GET /v1/apps/{app}` gives it, and beside it the warnings of the
/// runtime in use about the fields of the template it ignores (the
/// incoming services' only, for a release), each one line with its hint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AcceptedStatus {
    /// The app's status.
    #[serde(flatten)]
    pub status: AppStatus,
    /// `service web: the docker runtime ignores container_name; hint: ...`.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// A release in a status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseStatus {
    /// The release id.
    pub id: i64,
    /// `blue-green` or `standard`.
    pub strategy: String,
    /// The release state string.
    pub state: String,
    /// The version released from.
    pub from_version: u32,
    /// The version released to.
    pub to_version: u32,
    /// Why it ended as it did, when not by the operator.
    #[serde(default)]
    pub reason: Option<String>,
    /// While the release is in progress: the token with which
    /// `X-Turnout-Preview-Token` lets `X-Turnout-Service: <service>` pick
    /// a service at any weight, to try the new version before it gets
    /// traffic (DESIGN §8). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_token: Option<String>,
    /// A progressive release's step (DESIGN §8), once its first step
    /// started; it stays until the next release starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<StepStatus>,
    /// Why a `paused` release is paused: `manual`, `inconclusive` or
    /// `until-promoted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<String>,
    /// A progressive release's analysis checks, newest last (DESIGN §8);
    /// kept in the server's memory while it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub analysis: Vec<AnalysisEntry>,
}

/// A progressive release's step in a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepStatus {
    /// The step, from 0.
    pub index: u32,
    /// How many steps the plan has.
    pub count: u32,
    /// The new version's share at this step, in percent.
    pub share: u8,
}

/// A service in a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// The service name.
    pub name: String,
    /// `current`, or during a release `unchanged|old|new|changed`.
    pub role: String,
    /// The console colour of the role.
    #[serde(default)]
    pub color: String,
    /// Instances wanted.
    pub scale: u32,
    /// Instances ready.
    pub ready: u32,
    /// The instances.
    #[serde(default)]
    pub instances: Vec<InstanceStatus>,
}

/// An instance in a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// `service.n`.
    pub id: String,
    /// `starting|ready|unhealthy|draining|exited`.
    pub state: String,
    /// Where the router sends its requests (the primary port).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The process id, when running.
    #[serde(default)]
    pub pid: Option<u32>,
    /// How often it was restarted.
    #[serde(default)]
    pub restarts: u32,
    /// Why it cannot start as things stand — a host port held outside
    /// turnout, a missing image or `working_dir`, a command that is not
    /// found — while it does not run; absent otherwise. The server keeps
    /// retrying it (the cause may be outside the template), but waiting
    /// for it is pointless: `deploy` and `up` stop at it, a release fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A route in a status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStatus {
    /// The route id.
    pub id: String,
    /// Served on the internal listener only.
    #[serde(default)]
    pub internal: bool,
    /// `version`, `instance` or `off`.
    #[serde(default)]
    pub sticky: String,
    /// Service → weight, 0..=100 (relative).
    #[serde(default)]
    pub weights: BTreeMap<String, Weight>,
    /// The services in route order (old first), for display.
    #[serde(default)]
    pub order: Vec<String>,
}

/// `GET /v1/apps`: every app's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppList {
    /// The apps, by name.
    pub apps: Vec<AppStatus>,
}

/// `GET /v1/apps/{app}/routes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteList {
    /// The app's routes, as in its status.
    pub routes: Vec<RouteStatus>,
}

/// `GET /v1/apps/{app}/services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceList {
    /// The app's services, as in its status.
    pub services: Vec<ServiceStatus>,
}

/// One analysis check of a progressive release (DESIGN §8), an entry of
/// the release's `analysis` list (newest last).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisEntry {
    /// When the check's window ended, unix milliseconds.
    pub at: i64,
    /// `pass`, `fail` or `inconclusive`.
    pub verdict: String,
    /// The new version's figures over the window.
    pub new: VersionFigures,
    /// The baseline's (the old version's) figures over the same window.
    pub baseline: VersionFigures,
    /// One line per gate crossed, not judged or skipped, each starting
    /// with the gate's name as the plan spells it:
    /// `max_p99_increase: p99 +212 ms > 100 ms`.
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// A version's figures over an analysis window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionFigures {
    /// Requests answered.
    pub requests: u64,
    /// The 5xx share, 0..=1; `null` without requests.
    #[serde(default)]
    pub error_rate: Option<f64>,
    /// The median latency, ms, estimated from the router's histogram;
    /// `null` without requests.
    #[serde(default)]
    pub p50_ms: Option<f64>,
    /// The 99th percentile latency, ms; `null` without requests.
    #[serde(default)]
    pub p99_ms: Option<f64>,
}
