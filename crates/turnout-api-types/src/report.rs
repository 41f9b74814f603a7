//! The report of a release (DESIGN §8): `turnout report --output json`,
//! per-version figures from the release's start and the comparison of
//! the two variants.

use serde::{Deserialize, Serialize};

/// A release's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseReport {
    /// The release reported on.
    pub release_id: i64,
    /// Its strategy (`ab-test`, `canary`, ...).
    pub strategy: String,
    /// Whether the release still runs (`false`: the figures stopped when
    /// it ended).
    pub running: bool,
    /// Since when the figures count, unix ms: the release's first step (its
    /// start, for blue-green and standard), or the server's start when the
    /// server restarted during the release.
    pub since_ms: i64,
    /// The route the comparison is made on: the A/B goal's, else the first
    /// public route the release shares.
    pub route: String,
    /// Each service on the routes the release shares, the compared route's
    /// first, old services before new on each route.
    pub variants: Vec<VariantReport>,
    /// The conversion rates compared (two-proportion z-test).
    pub conversion: ConversionComparison,
    /// The latencies compared (Mann-Whitney U).
    pub latency: LatencyComparison,
}

/// One variant's figures since the release started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantReport {
    /// The service.
    pub service: String,
    /// The route its figures are of.
    #[serde(default)]
    pub route: String,
    /// Its role in the release: `old` (the baseline), `new` or `unchanged`.
    #[serde(default)]
    pub role: String,
    /// Distinct clients (by their `turnout_pos` cookie).
    pub clients: u64,
    /// Requests answered.
    pub requests: u64,
    /// The 5xx share, 0..=1; `null` without requests.
    #[serde(default)]
    pub error_rate: Option<f64>,
    /// The median latency, ms; `null` without requests.
    #[serde(default)]
    pub p50_ms: Option<f64>,
    /// The 99th percentile latency, ms; `null` without requests.
    #[serde(default)]
    pub p99_ms: Option<f64>,
    /// Clients that reached the goal.
    pub conversions: u64,
    /// `conversions / clients`; `null` without clients.
    #[serde(default)]
    pub conversion_rate: Option<f64>,
}

/// The two variants' conversion rates compared: the route's new services
/// together against its old ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversionComparison {
    /// The second variant's rate minus the first's; `null` when a variant
    /// has no clients.
    #[serde(default)]
    pub difference: Option<f64>,
    /// Two-sided p-value of the difference; `null` when a variant has no
    /// clients.
    #[serde(default)]
    pub p_value: Option<f64>,
    /// `p_value < 1 - confidence`.
    pub significant: bool,
    /// The confidence level, 0..1 (0.95 by default).
    pub confidence: f64,
}

/// The two variants' latency distributions compared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyComparison {
    /// Two-sided p-value that neither variant tends to be slower; `null`
    /// when a variant has no requests.
    #[serde(default)]
    pub p_value: Option<f64>,
    /// `p_value < 1 - confidence` (the conversion's confidence).
    pub significant: bool,
}
