//! The live figures of an app (DESIGN §9): one event of
//! `GET /v1/apps/{app}/metrics/stream`, what the console's live view reads.

use serde::{Deserialize, Serialize};

/// One reading of an app's traffic: what the router counted between the
/// previous reading and this one, per service on each route and per
/// service over all its routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsSample {
    /// The app.
    pub app: String,
    /// When the reading was taken, unix milliseconds.
    pub at: i64,
    /// How long the window was, ms (the time since the previous reading).
    pub interval_ms: u64,
    /// Per service, summed over its routes, by name.
    #[serde(default)]
    pub services: Vec<ServiceMetrics>,
    /// Per route and service, by route id then service name: the split the
    /// router made.
    #[serde(default)]
    pub routes: Vec<RouteServiceMetrics>,
}

/// The figures of one window.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct WindowFigures {
    /// Requests answered in the window (preview requests not counted).
    pub requests: u64,
    /// Requests per second over the window.
    pub requests_per_second: f64,
    /// Of those, answered with a 5xx status.
    pub errors: u64,
    /// The 5xx share, 0..=1; `null` without requests.
    #[serde(default)]
    pub error_rate: Option<f64>,
    /// The 99th percentile latency to the response head, ms, estimated
    /// from the router's histogram; `null` without requests.
    #[serde(default)]
    pub p99_ms: Option<f64>,
    /// Requests answered since the service joined the route(s), for a
    /// running total.
    pub total_requests: u64,
}

/// One service's figures over all the routes it is on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceMetrics {
    /// The service.
    pub service: String,
    /// Its figures.
    #[serde(flatten)]
    pub figures: WindowFigures,
}

/// One service's figures on one route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteServiceMetrics {
    /// The route's id.
    pub route: String,
    /// The service.
    pub service: String,
    /// Its figures on this route.
    #[serde(flatten)]
    pub figures: WindowFigures,
}
