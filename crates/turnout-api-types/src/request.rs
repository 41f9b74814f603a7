//! Request bodies. The server refuses unknown fields, so a misspelt one
//! is answered 400 instead of being ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use turnout_spec::ReleaseBlock;

/// `POST /v1/apps`: deploy an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// The app's name.
    pub name: String,
    /// The template's text, variables already substituted.
    pub template: String,
    /// The file name diagnostics name (default `template.yaml`).
    #[serde(default)]
    pub source_name: Option<String>,
    /// The values of the files the template's `env_file`s name, by the
    /// path as the template writes it (the client reads them; DESIGN §6).
    /// Each service's environment is its files' values in the order it
    /// lists them, then its `environment` (which wins).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env_files: BTreeMap<String, BTreeMap<String, String>>,
    /// The template's folder, absolute, on the machine it was read on:
    /// build contexts, bind mounts and a relative `working_dir` resolve
    /// against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_dir: Option<String>,
}

/// Whether `name` may name an app: 1 to 64 letters, digits, `-` and `_`,
/// starting with a letter or digit. The server refuses other names; the
/// CLI checks a name it makes up (from a directory) by the same rule.
pub fn valid_app_name(name: &str) -> bool {
    name.len() <= 64
        && name
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphanumeric)
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// What [`valid_app_name`] asks, for error hints.
pub const APP_NAME_RULE: &str =
    "an app name is 1 to 64 letters, digits, `-` and `_`, starting with a letter or digit";

/// `POST /v1/apps/{app}/releases`: release a new template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    /// The new template's text.
    pub template: String,
    /// The file name diagnostics name (default `template.yaml`).
    #[serde(default)]
    pub source_name: Option<String>,
    /// `blue-green`, `standard`, `canary`, `gray` or `ab-test`; when
    /// absent, the template's `x-turnout.release.strategy`, else
    /// `blue-green`. The same as `plan.strategy` (both may be given only
    /// if they agree).
    #[serde(default)]
    pub strategy: Option<String>,
    /// The `turnout release` flags of DESIGN §8 in the shape of the
    /// template's `x-turnout.release` block, each field set overriding the
    /// template's (`--steps` is `steps`, `--canary-share` is
    /// `canary.share`, `--goal` is `ab.goal.path`). The server merges the
    /// two with `ReleasePlan::with_overrides` and refuses a bad result
    /// (422, with the diagnostics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<ReleaseBlock>,
    /// The values of the files the template's `env_file`s name, by the
    /// path as the template writes it (the client reads them; DESIGN §6).
    /// Each service's environment is its files' values in the order it
    /// lists them, then its `environment` (which wins).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env_files: BTreeMap<String, BTreeMap<String, String>>,
    /// The template's folder, absolute, on the machine it was read on:
    /// build contexts, bind mounts and a relative `working_dir` resolve
    /// against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_dir: Option<String>,
}

/// `POST /v1/apps/{app}/promote`: a progressive release's next step.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// Straight to 100 %, skipping the remaining steps.
    #[serde(default)]
    pub full: bool,
}

/// `POST /v1/apps/{app}/abort`: roll the release back, saying why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortRequest {
    /// Who or why, recorded as the release's reason `aborted: <reason>`
    /// (`by the operator` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `POST /v1/apps/{app}/confirm`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    /// Confirm even while the new services of a route carry weight 0,
    /// switching all traffic to them first.
    #[serde(default)]
    pub switch: bool,
}

/// `PUT /v1/apps/{app}/routes/{route}/weights`.
///
/// The weights stay JSON values here: the server checks each one itself,
/// so that a wrong one (`150`, `"x"`, `2.5`) is answered with the
/// service it belongs to rather than with serde's position in the body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightsRequest {
    /// Service → weight, integers 0..=100 (relative: 100 and 100 is
    /// 50/50); services not named keep theirs.
    pub weights: serde_json::Map<String, serde_json::Value>,
}

/// The empty object that `rollback` and `switch` take (or no body).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyRequest {}

/// The query of `GET .../logs`: `tail` (default 100) and `follow`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// How many of the last lines (100 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<usize>,
    /// Whether to go on sending lines as they are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow: Option<bool>,
}

impl LogQuery {
    /// The query string (without `?`), as the server reads it.
    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        if let Some(tail) = self.tail {
            parts.push(format!("tail={tail}"));
        }
        if let Some(follow) = self.follow {
            parts.push(format!("follow={follow}"));
        }
        parts.join("&")
    }
}

/// The query of `GET /v1/events` and its stream: an app, events after an
/// id, and at most `limit` of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Only this app's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Only events with a greater id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
    /// At most this many (100 when absent, 10,000 at most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Only the newest this many (10,000 at most), still oldest first,
    /// instead of the oldest `limit`; a stream replays them, then follows
    /// (`last=0`: nothing from before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<usize>,
}

/// The query of `GET /v1/apps/{app}/metrics/stream`: how often a reading
/// is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsQuery {
    /// Milliseconds between readings, 100..=60000 (1000 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
}

/// The fewest milliseconds between two readings of the metrics stream.
pub const METRICS_MIN_INTERVAL_MS: u64 = 100;
/// The most milliseconds between two readings of the metrics stream.
pub const METRICS_MAX_INTERVAL_MS: u64 = 60_000;
/// The interval of the metrics stream when the query names none.
pub const METRICS_DEFAULT_INTERVAL_MS: u64 = 1_000;
