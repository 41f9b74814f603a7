//! Request rules and the A/B goal, as both the template's release plan
//! (`x-turnout.release.ab`, DESIGN §8) and the route file (DESIGN §4)
//! write them: one definition, read by turnout-routing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The goal of an A/B test: a client converts when a request of it
/// reaches `path` and is answered with a matching `status`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GoalSpec {
    /// The request path (and what lies under it, on segment boundaries),
    /// such as `/checkout`; a full path, under the route's context path.
    pub path: String,
    /// A status class (`2xx`) or one status (`201`); `2xx` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A rule: requests that match go to `service`, whatever the weights.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// What the request must carry; every condition must hold.
    #[serde(rename = "match")]
    pub matches: MatchSpec,
    /// The service (of this route) that matching requests go to.
    pub service: String,
}

/// Conditions of a rule. Each maps a name to a pattern: text for an exact
/// match, `prefix:TEXT` or `regex:RE`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    /// Request headers (names case-insensitive).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub header: BTreeMap<String, String>,
    /// Cookies.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cookie: BTreeMap<String, String>,
    /// Query parameters, compared as sent (not percent-decoded).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
}
