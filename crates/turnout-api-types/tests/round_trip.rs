//! The bodies read back what they write, and DESIGN §5's status sample
//! reads as the status it shows.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use turnout_api_types::{
    AppList, AppStatus, ConfirmRequest, DeployRequest, ErrorBody, ErrorDetail, EventList,
    EventRecord, InstanceStatus, ReleaseList, ReleaseRecord, ReleaseRequest, ReleaseStatus,
    RouteStatus, SavedWeight, ServiceStatus, WeightsRequest,
};
use turnout_routing::Weight;
use turnout_spec::{Diagnostic, FieldPath, Pos};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let json = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, value, "{json}");
}

fn status() -> AppStatus {
    AppStatus {
        app: "hello".into(),
        template_version: 2,
        release: Some(ReleaseStatus {
            step: None,
            paused: None,
            analysis: Vec::new(),
            id: 2,
            strategy: "blue-green".into(),
            state: "pending-confirmation".into(),
            from_version: 1,
            to_version: 2,
            reason: None,
            preview_token: None,
        }),
        services: vec![ServiceStatus {
            name: "serviceB-v2".into(),
            role: "new".into(),
            color: "green".into(),
            scale: 2,
            ready: 2,
            instances: vec![InstanceStatus {
                id: "serviceB-v2.1".into(),
                state: "ready".into(),
                endpoint: Some("127.0.0.1:41234".into()),
                pid: None,
                restarts: 0,
                error: None,
            }],
        }],
        routes: vec![RouteStatus {
            id: "serviceb.localhost".into(),
            internal: false,
            sticky: "version".into(),
            weights: BTreeMap::from([
                ("serviceB-v1".into(), Weight::MAX),
                ("serviceB-v2".into(), Weight::ZERO),
            ]),
            order: vec![],
        }],
    }
}

#[test]
fn the_design_status_sample_reads() {
    // DESIGN §5, verbatim: the fields it leaves out take their defaults.
    let sample = r#"
  {"app": "hello", "template_version": 2,
   "release": {"id": 2, "strategy": "blue-green", "state": "pending-confirmation",
               "from_version": 1, "to_version": 2, "reason": null},
   "services": [{"name": "serviceB-v2", "role": "new", "color": "green",
                 "scale": 2, "ready": 2,
                 "instances": [{"id": "serviceB-v2.1", "state": "ready", "endpoint": "127.0.0.1:41234"}]}],
   "routes": [{"id": "serviceb.localhost", "internal": false, "sticky": "version",
               "weights": {"serviceB-v1": 100, "serviceB-v2": 0}}]}
"#;
    let read: AppStatus = serde_json::from_str(sample).unwrap();
    assert_eq!(read, status());
}

#[test]
fn a_status_is_written_with_every_field() {
    let json = serde_json::to_value(status()).unwrap();
    assert_eq!(json["release"]["reason"], serde_json::Value::Null);
    assert_eq!(
        json["services"][0]["instances"][0]["pid"],
        serde_json::Value::Null
    );
    assert_eq!(json["services"][0]["instances"][0]["restarts"], 0);
    assert_eq!(json["routes"][0]["weights"]["serviceB-v1"], 100);
    assert_eq!(json["routes"][0]["order"], serde_json::json!([]));
    let none = AppStatus {
        release: None,
        ..status()
    };
    assert_eq!(
        serde_json::to_value(none).unwrap()["release"],
        serde_json::Value::Null
    );
}

#[test]
fn old_clients_need_not_send_env_files_or_base_dir() {
    let d: DeployRequest =
        serde_json::from_str(r#"{"name": "hello", "template": "services: {}"}"#).unwrap();
    assert!(d.env_files.is_empty());
    assert_eq!(d.base_dir, None);
    let r: ReleaseRequest = serde_json::from_str(r#"{"template": "x"}"#).unwrap();
    assert!(r.env_files.is_empty() && r.base_dir.is_none());
    // Written out, empty ones are left out, as an old server expects.
    let json = serde_json::to_value(&r).unwrap();
    assert!(json.get("env_files").is_none() && json.get("base_dir").is_none());
    assert!(json.get("plan").is_none());
    let err =
        serde_json::from_str::<ReleaseRequest>(r#"{"template": "x", "plan": {"stpes": [10]}}"#)
            .unwrap_err();
    assert!(err.to_string().contains("unknown field `stpes`"), "{err}");
    let err =
        serde_json::from_str::<DeployRequest>(r#"{"name": "a", "template": "x", "env_file": {}}"#)
            .unwrap_err();
    assert!(
        err.to_string().contains("unknown field `env_file`"),
        "{err}"
    );
}

#[test]
fn bodies_round_trip() {
    round_trip(&status());
    let mut gray = status();
    if let Some(r) = gray.release.as_mut() {
        r.strategy = "gray".into();
        r.state = "paused".into();
        r.step = Some(turnout_api_types::StepStatus {
            index: 1,
            count: 3,
            share: 50,
        });
        r.paused = Some("manual".into());
    }
    round_trip(&gray);
    let json = serde_json::to_value(&gray).unwrap();
    assert_eq!(
        json["release"]["step"],
        serde_json::json!({"index": 1, "count": 3, "share": 50})
    );
    round_trip(&AppList {
        apps: vec![status()],
    });
    round_trip(&DeployRequest {
        name: "hello".into(),
        template: "services: {}".into(),
        source_name: Some("app.yaml".into()),
        env_files: [(
            "web.env".to_string(),
            [("A".to_string(), "1".to_string())].into(),
        )]
        .into(),
        base_dir: Some("/srv/shop".into()),
    });
    round_trip(&ReleaseRequest {
        template: "services: {}".into(),
        source_name: None,
        strategy: Some("standard".into()),
        plan: None,
        env_files: Default::default(),
        base_dir: None,
    });
    round_trip(&ReleaseRequest {
        template: "services: {}".into(),
        source_name: None,
        strategy: None,
        plan: Some(turnout_spec::ReleaseBlock {
            strategy: Some(turnout_spec::Strategy::Gray),
            steps: Some(vec![10, 50, 100]),
            pause: Some(turnout_spec::plan::Pause::UntilPromoted),
            analysis: Some(turnout_spec::plan::AnalysisBlock {
                max_error_rate: Some(turnout_spec::plan::parse_rate("1%").unwrap()),
                window: Some(turnout_spec::plan::Millis(5000)),
                ..Default::default()
            }),
            ab: Some(turnout_spec::plan::AbBlock {
                goal: Some(turnout_spec::GoalSpec {
                    path: "/checkout".into(),
                    status: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        env_files: Default::default(),
        base_dir: None,
    });
    round_trip(&ConfirmRequest { switch: true });
    let mut weights = serde_json::Map::new();
    weights.insert("serviceB-v2".into(), 100.into());
    round_trip(&WeightsRequest { weights });
    round_trip(&ReleaseList {
        releases: vec![ReleaseRecord {
            id: 2,
            app: "hello".into(),
            strategy: "blue-green".into(),
            state: "rolled-back".into(),
            from_version: 1,
            to_version: 2,
            reason: Some("failed: serviceB-v2 not ready".into()),
            saved_weights: vec![SavedWeight {
                route_id: "serviceb.localhost".into(),
                service: "serviceB-v1".into(),
                weight: Weight::MAX,
            }],
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_500,
        }],
    });
    round_trip(&EventList {
        events: vec![EventRecord {
            id: 7,
            app: "hello".into(),
            at: 1_700_000_000_000,
            kind: "release-started".into(),
            message: "release 2 started".into(),
            data: Some(serde_json::json!({"release": 2})),
        }],
    });
}

#[test]
fn errors_round_trip_with_and_without_diagnostics() {
    let plain = ErrorBody {
        error: ErrorDetail {
            code: "conflict".into(),
            message: "a release is running".into(),
            hint: "confirm it first".into(),
            diagnostics: vec![],
        },
    };
    round_trip(&plain);
    assert_eq!(
        serde_json::to_value(&plain).unwrap(),
        serde_json::json!({"error": {"code": "conflict", "message": "a release is running",
                                     "hint": "confirm it first"}}),
        "no diagnostics field when there are none"
    );
    let mut d = Diagnostic::error(
        Pos { line: 3, column: 9 },
        &FieldPath::root()
            .key("web")
            .key("labels")
            .key("aliyun.scale"),
        "invalid scale",
    )
    .expected("a positive integer");
    d.file = "app.yaml".into();
    let invalid = ErrorBody {
        error: ErrorDetail {
            code: "invalid".into(),
            message: "the template has 1 errors".into(),
            hint: "fix the template".into(),
            diagnostics: vec![d],
        },
    };
    round_trip(&invalid);
}

#[test]
fn requests_refuse_unknown_fields() {
    let err = serde_json::from_str::<ConfirmRequest>(r#"{"swtich": true}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field"), "{err}");
}

/// A weight above 100 in a status is refused when it is read: the range
/// check of `Weight` holds on the client's side too.
#[test]
fn a_weight_above_100_does_not_read() {
    let text = r#"{"id": "r", "internal": false, "sticky": "version", "weights": {"a": 101}, "order": []}"#;
    assert!(serde_json::from_str::<RouteStatus>(text).is_err());
    let text = text.replace("101", "100");
    let route: RouteStatus = serde_json::from_str(&text).unwrap();
    assert_eq!(route.weights["a"], Weight::MAX);
}

#[test]
fn a_metrics_sample_round_trips_flat() {
    use turnout_api_types::{MetricsSample, RouteServiceMetrics, ServiceMetrics, WindowFigures};
    let figures = WindowFigures {
        requests: 40,
        requests_per_second: 40.0,
        errors: 2,
        error_rate: Some(0.05),
        p99_ms: Some(3.5),
        total_requests: 400,
    };
    let sample = MetricsSample {
        app: "hello".into(),
        at: 1_700_000_000_000,
        interval_ms: 1000,
        services: vec![ServiceMetrics {
            service: "serviceB-v1".into(),
            figures,
        }],
        routes: vec![RouteServiceMetrics {
            route: "serviceb.localhost".into(),
            service: "serviceB-v1".into(),
            figures: WindowFigures::default(),
        }],
    };
    round_trip(&sample);
    // The figures are written beside the names, as the console reads them.
    let json = serde_json::to_value(&sample).unwrap();
    assert_eq!(json["services"][0]["requests_per_second"], 40.0);
    assert_eq!(json["services"][0]["service"], "serviceB-v1");
    assert_eq!(json["routes"][0]["error_rate"], serde_json::Value::Null);
}

#[test]
fn the_metrics_query_refuses_unknown_fields() {
    use turnout_api_types::MetricsQuery;
    assert!(serde_json::from_str::<MetricsQuery>(r#"{"interval":5}"#).is_err());
    let q: MetricsQuery = serde_json::from_str(r#"{"interval_ms":250}"#).unwrap();
    assert_eq!(q.interval_ms, Some(250));
}
