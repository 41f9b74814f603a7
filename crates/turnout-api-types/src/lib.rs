//! The bodies of turnout's REST API (`docs/api.md`), one definition each:
//! the server (`turnout-api`, with the engine building the statuses)
//! serialises them and the CLI's client deserialises the same types, so
//! the two sides cannot drift apart.
//!
//! Only plain data with serde derives lives here. Responses ignore
//! unknown fields and default the ones an older server may not send, so
//! a CLI reads a newer server's answers; requests refuse unknown fields,
//! so a misspelt one is an error rather than silently ignored.

mod error;
mod history;
mod metrics;
mod report;
mod request;
mod status;

pub use error::{ErrorBody, ErrorDetail};
pub use history::{EventList, EventRecord, ReleaseList, ReleaseRecord, SavedWeight};
pub use metrics::{MetricsSample, RouteServiceMetrics, ServiceMetrics, WindowFigures};
pub use report::{ConversionComparison, LatencyComparison, ReleaseReport, VariantReport};
pub use request::{
    APP_NAME_RULE, AbortRequest, ConfirmRequest, DeployRequest, EmptyRequest, EventQuery, LogQuery,
    METRICS_DEFAULT_INTERVAL_MS, METRICS_MAX_INTERVAL_MS, METRICS_MIN_INTERVAL_MS, MetricsQuery,
    PromoteRequest, ReleaseRequest, WeightsRequest, valid_app_name,
};
pub use status::{
    AcceptedStatus, AnalysisEntry, AppList, AppStatus, InstanceStatus, ReleaseStatus, RouteList,
    RouteStatus, ServiceList, ServiceStatus, StepStatus, VersionFigures,
};
