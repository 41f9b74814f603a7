//! The route file of `turnout proxy --config FILE` (DESIGN §4). The control
//! plane fills the same structs in process, so there is one schema.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::RoutingError;
use turnout_spec::Sticky;
pub use turnout_spec::{GoalSpec, MatchSpec, RuleSpec};

/// Default time removed instances get to finish in-flight requests.
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 30_000;

/// A whole route file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// The routes, each a virtual host (plus context path) and its services.
    #[serde(default)]
    pub routes: Vec<RouteSpec>,
    /// How long removed instances may finish in-flight requests, in ms;
    /// 30000 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout_ms: Option<u64>,
    /// Enables the preview override (`X-Turnout-Service` with
    /// `X-Turnout-Preview-Token`); absent means disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_token: Option<String>,
    /// Proxy credential (the password of `Proxy-Authorization`, or its
    /// user name when the password is empty) → the service that calls with
    /// it: `service`, or `app/service` for a service of an app.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub caller_tokens: BTreeMap<String, String>,
    /// A caller's source address → the service that calls from it
    /// (`service` or `app/service`, as in `caller_tokens`). The container
    /// runtimes identify callers this way: a container's address on its
    /// app's network. Used on the internal listener for a request that
    /// carries no proxy credential; a credential, when sent, wins.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub caller_addresses: BTreeMap<IpAddr, String>,
}

/// One route.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// The route id; defaults to the first host plus the context path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Host names the route answers for (or `host` for one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// The single host the route answers for (or `hosts` for several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Context path prefix; `/` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Whether the route is served on the internal listener only; implied
    /// by hosts ending in `.local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<bool>,
    /// The app the route belongs to. Internal routes only take callers of
    /// the same app (a caller token without an app matches a route
    /// without one); it is also the `app` label of the route's metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Internal routes: the services allowed to call. Absent means any
    /// caller, empty means nobody.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callers: Option<Vec<String>>,
    /// Internal routes: lane affinity (DESIGN §8), lane name → the callers
    /// in the lane and the services of this route they reach. A request
    /// from a caller in a lane goes only to that lane's services, split by
    /// their weights relative to each other (evenly when they all weigh 0,
    /// so a lane holds before its services take traffic); preview and
    /// rules still come first, and stickiness holds only inside the lane.
    /// A caller in no lane gets the route's normal split. Absent or empty:
    /// no lanes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lanes: BTreeMap<String, LaneSpec>,
    /// Stickiness; `version` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<Sticky>,
    /// Rules checked before the weights, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleSpec>,
    /// The services sharing the route, the first at the bottom of the
    /// position space.
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    /// Active health checks of the route's instances; a TCP check every 2 s
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthSpec>,
    /// The goal of an A/B test on this route (DESIGN §8): the proxy counts,
    /// per service, the distinct clients and those that reached the goal.
    /// Needs `sticky: version` or `instance` (clients are told apart by
    /// their position cookie). Absent: nothing is counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ab_goal: Option<GoalSpec>,
}

/// A service on a route.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// The service name, such as `serviceB-v2`.
    pub name: String,
    /// Integer weight 0..=100; 100 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<WeightValue>,
    /// Instance addresses, `ip:port`.
    #[serde(default)]
    pub endpoints: Vec<String>,
}

/// One lane of an internal route (see [`RouteSpec::lanes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LaneSpec {
    /// The calling services in the lane, as the route's `callers` names
    /// them (bare service names of the route's app); a caller is in one
    /// lane of a route at most. For a release: the new services of the
    /// release in the new lane, the old ones in the old lane.
    #[serde(default)]
    pub callers: Vec<String>,
    /// The services of this route the lane's callers reach; a service is
    /// in one lane of a route at most.
    #[serde(default)]
    pub services: Vec<String>,
}

/// Health check settings of a route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    /// HTTP path to GET; a TCP connect check when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Time between probes once an instance answered, in ms (2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u64>,
    /// Time one probe may take, in ms (1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Failures in a row that make an instance unhealthy (3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall: Option<u32>,
    /// Successes in a row that make it ready again (1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise: Option<u32>,
    /// Whether the router probes instances all along (`true`, the
    /// default), or only after a failed connect took one out, until it
    /// answers again (`false`: someone else owns health — turnout's
    /// control plane probes its instances itself and publishes only the
    /// ready ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

/// A weight as written, kept raw so that validation can report a negative,
/// oversized or fractional weight together with every other problem instead
/// of stopping at the first type error.
#[derive(Debug, Clone, PartialEq)]
pub enum WeightValue {
    /// An integer (possibly out of range).
    Integer(i128),
    /// A number with a fraction.
    Float(f64),
    /// Anything else, as text.
    Text(String),
}

impl From<u8> for WeightValue {
    fn from(value: u8) -> Self {
        WeightValue::Integer(value.into())
    }
}

impl From<crate::Weight> for WeightValue {
    fn from(value: crate::Weight) -> Self {
        WeightValue::Integer(value.get().into())
    }
}

impl fmt::Display for WeightValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightValue::Integer(v) => v.fmt(f),
            WeightValue::Float(v) => v.fmt(f),
            WeightValue::Text(v) => write!(f, "{v:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for WeightValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl Visitor<'_> for RawVisitor {
            type Value = WeightValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer weight 0..100")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<WeightValue, E> {
                Ok(WeightValue::Integer(v.into()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<WeightValue, E> {
                Ok(WeightValue::Integer(v.into()))
            }
            fn visit_i128<E: de::Error>(self, v: i128) -> Result<WeightValue, E> {
                Ok(WeightValue::Integer(v))
            }
            fn visit_u128<E: de::Error>(self, v: u128) -> Result<WeightValue, E> {
                Ok(WeightValue::Integer(i128::try_from(v).unwrap_or(i128::MAX)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<WeightValue, E> {
                Ok(WeightValue::Float(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<WeightValue, E> {
                Ok(WeightValue::Text(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<WeightValue, E> {
                Ok(WeightValue::Text(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<WeightValue, E> {
                Ok(WeightValue::Text("null".to_owned()))
            }
        }
        deserializer.deserialize_any(RawVisitor)
    }
}

impl Serialize for WeightValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            WeightValue::Integer(v) => {
                serializer.serialize_i64(i64::try_from(*v).unwrap_or(i64::MAX))
            }
            WeightValue::Float(v) => serializer.serialize_f64(*v),
            WeightValue::Text(v) => serializer.serialize_str(v),
        }
    }
}

impl RouteFile {
    /// Parses a route file. Only the syntax and the schema's shape are
    /// checked here; [`RouteFile::validate`] checks the rest.
    pub fn from_yaml(text: &str) -> Result<RouteFile, RoutingError> {
        // The parser's default budget (250,000 nodes, 1,000,000 events)
        // stops a generated table of 10,000 routes x 10 endpoints (about
        // 400,000 nodes). Sixteen times that still caps a hostile file;
        // the depth and alias caps stay as they are.
        let mut budget = serde_saphyr::Budget::default();
        budget.max_nodes = 4_000_000;
        budget.max_events = 16_000_000;
        let mut options = serde_saphyr::Options::default();
        options.budget = Some(budget);
        serde_saphyr::from_str_with_options(text, options).map_err(|err| RoutingError::Parse {
            message: err.to_string(),
        })
    }
}
