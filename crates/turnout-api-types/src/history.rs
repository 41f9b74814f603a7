//! What happened to an app: its releases (`GET /v1/apps/{app}/releases`,
//! `turnout history`) and the control plane's events (`GET /v1/events`
//! and the SSE stream's `data`).

use serde::{Deserialize, Serialize};
use turnout_routing::Weight;

/// A release as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// Its id; ids are never reused.
    pub id: i64,
    /// The app released.
    #[serde(default)]
    pub app: String,
    /// The strategy (`blue-green`, `standard`, ...).
    pub strategy: String,
    /// The release state string.
    pub state: String,
    /// The template version released from.
    pub from_version: u32,
    /// The template version released to.
    pub to_version: u32,
    /// Why it ended as it did (`failed: ...`), when not by the operator.
    #[serde(default)]
    pub reason: Option<String>,
    /// The route weights from before the release, which a rollback
    /// restores.
    #[serde(default)]
    pub saved_weights: Vec<SavedWeight>,
    /// When it started, unix milliseconds.
    #[serde(default)]
    pub created_at: i64,
    /// When it last changed state, unix milliseconds.
    #[serde(default)]
    pub updated_at: i64,
}

/// One service's weight on one route, as a release saved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedWeight {
    /// The canonical route id, for example `serviceb.localhost`.
    pub route_id: String,
    /// The service's name.
    pub service: String,
    /// Its weight, 0..=100.
    pub weight: Weight,
}

/// `GET /v1/apps/{app}/releases`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseList {
    /// The app's releases.
    pub releases: Vec<ReleaseRecord>,
}

/// An event of the control plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Its id: strictly increasing, so a client resumes "after id N";
    /// 0 for an event sent live only, never stored (an analysis check
    /// repeating the verdict before it).
    pub id: i64,
    /// The app it is about (events outlive their app).
    pub app: String,
    /// When it was committed, unix milliseconds.
    pub at: i64,
    /// What kind of event it is (`release-started`, ...).
    pub kind: String,
    /// A one-line human description.
    pub message: String,
    /// Structured details, if any.
    #[serde(default)]
    pub data: Option<serde_json::Value>,
}

/// `GET /v1/events`, ascending by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventList {
    /// The events.
    pub events: Vec<EventRecord>,
}
