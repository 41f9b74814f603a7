//! `GET /v1/openapi.json`: the OpenAPI 3.1 description of the API, written
//! out by hand from `docs/api.md` (the API is small; a derive framework
//! would be a heavier dependency than the document).

use axum::Json;
use serde_json::{Value, json};

/// One operation of the document.
struct Op {
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    /// The request body's schema, and whether the body is required (an
    /// optional one may be empty, with no `Content-Type`).
    body: Option<(&'static str, bool)>,
    success: &'static str,
    /// The success response's JSON schema, where the document gives one.
    response: Option<&'static str>,
    /// Error statuses besides the ones every operation has ([`COMMON`]),
    /// 401 under `/v1`, and 413/415 with a body.
    errors: &'static [&'static str],
    /// Query parameters: (name, schema).
    query: &'static [(&'static str, &'static str)],
    /// For a server-sent event stream: the schema of each event's data.
    events: Option<&'static str>,
}

/// Errors any request can get: 400 (a path or query that is not
/// percent-encoded UTF-8), 405, 414, 431, 500.
const COMMON: &[&str] = &["400", "405", "414", "431", "500"];

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    success: &'static str,
    errors: &'static [&'static str],
) -> Op {
    Op {
        method,
        path,
        summary,
        body: None,
        success,
        response: None,
        errors,
        query: &[],
        events: None,
    }
}

/// A `GET` answered with 200.
const fn get(path: &'static str, summary: &'static str, errors: &'static [&'static str]) -> Op {
    op("get", path, summary, "200", errors)
}

/// A `POST` acting on an app (a release verb, a route change): answered
/// with the app's status (200), or 404, 409 (not now) or 422 (not so).
const fn act(path: &'static str, summary: &'static str, body: &'static str, required: bool) -> Op {
    Op {
        body: Some((body, required)),
        ..op("post", path, summary, "200", &["404", "409", "422"])
    }
}

/// An operation with query parameters.
const fn query(mut o: Op, params: &'static [(&'static str, &'static str)]) -> Op {
    o.query = params;
    o
}

const TAIL: (&str, &str) = ("tail", "tail");
const FOLLOW: (&str, &str) = ("follow", "follow");
const EVENTS: &[(&str, &str)] = &[
    ("app", "app"),
    ("after", "after"),
    ("limit", "limit"),
    ("last", "last"),
];
/// The event stream's: no `limit`; `last` replays the newest, then follows.
const STREAM: &[(&str, &str)] = &[EVENTS[0], EVENTS[1], ("last", "stream_last")];

const OPERATIONS: &[Op] = &[
    get("/v1/apps", "List apps with their status", &[]),
    Op {
        body: Some(("Deploy", true)),
        response: Some("Accepted"),
        ..op(
            "post",
            "/v1/apps",
            "Deploy an app from a template",
            "201",
            &["409", "422"],
        )
    },
    get("/v1/apps/{app}", "Status of an app", &["404"]),
    op(
        "delete",
        "/v1/apps/{app}",
        "Delete an app and stop its instances",
        "204",
        &["404"],
    ),
    get(
        "/v1/apps/{app}/releases",
        "Release history, newest first",
        &["404"],
    ),
    Op {
        success: "201",
        response: Some("Accepted"),
        ..act(
            "/v1/apps/{app}/releases",
            "Start a release",
            "Release",
            true,
        )
    },
    get("/v1/apps/{app}/releases/{id}", "One release", &["404"]),
    Op {
        success: "200",
        ..act(
            "/v1/apps/{app}/plan",
            "The release the body would start, laid out in steps against the app's current template (routes, weights, least time to promote and to roll back); checked as a release is (422), nothing starts",
            "Release",
            true,
        )
    },
    get(
        "/v1/apps/{app}/report",
        "Per-version figures of the current (or last) release since its traffic split began, and the A/B comparison: conversions by a two-proportion z-test, latency by Mann-Whitney U (409 before its first step, or when no route is shared)",
        &["404", "409"],
    ),
    act(
        "/v1/apps/{app}/confirm",
        "Confirm the release in progress",
        "Confirm",
        false,
    ),
    act(
        "/v1/apps/{app}/rollback",
        "Roll the release in progress back",
        "Empty",
        false,
    ),
    act(
        "/v1/apps/{app}/promote",
        "Next step of a progressive release",
        "Promote",
        false,
    ),
    act(
        "/v1/apps/{app}/pause",
        "Hold a progressive release's step",
        "Empty",
        false,
    ),
    act(
        "/v1/apps/{app}/resume",
        "Run a paused step again",
        "Empty",
        false,
    ),
    act(
        "/v1/apps/{app}/abort",
        "Roll the release back, saying why",
        "Abort",
        false,
    ),
    get("/v1/apps/{app}/routes", "Routes and weights", &["404"]),
    Op {
        method: "put",
        ..act(
            "/v1/apps/{app}/routes/{route}/weights",
            "Set weights of some services of a route, atomically",
            "Weights",
            true,
        )
    },
    act(
        "/v1/apps/{app}/routes/{route}/switch",
        "Move a route's traffic to the other side",
        "Empty",
        false,
    ),
    get(
        "/v1/apps/{app}/services",
        "Services and instances",
        &["404"],
    ),
    query(
        get(
            "/v1/apps/{app}/services/{service}/logs",
            "Last lines of a service's instance logs",
            &["404"],
        ),
        &[TAIL],
    ),
    query(
        get(
            "/v1/apps/{app}/instances/{id}/logs",
            "Log of one instance, optionally followed",
            &["404"],
        ),
        &[TAIL, FOLLOW],
    ),
    Op {
        events: Some("MetricsSample"),
        ..query(
            get(
                "/v1/apps/{app}/metrics/stream",
                "Live per-service requests/s, error rate and p99 as server-sent events",
                &["404"],
            ),
            &[("interval_ms", "interval_ms")],
        )
    },
    query(get("/v1/events", "Events after an id", &[]), EVENTS),
    query(
        get(
            "/v1/events/stream",
            "Events as server-sent events, stored ones with their id; an `analysis` check that repeats the verdict before it is sent live only (id 0, no SSE id)",
            &[],
        ),
        STREAM,
    ),
    get("/v1/openapi.json", "This document", &[]),
    get("/healthz", "Liveness: `ok` (no token needed)", &[]),
    get(
        "/metrics",
        "Prometheus text of the router and the control plane (no token needed)",
        &[],
    ),
];

fn schemas() -> Value {
    json!({
        "Accepted": {
            "type": "object", "required": ["app", "template_version", "release", "warnings"],
            "description": "the app's status, as `GET /v1/apps/{app}` gives it, and the warnings \
                of the runtime in use",
            "properties": {
                "app": {"type": "string"},
                "template_version": {"type": "integer"},
                "release": {"type": ["object", "null"]},
                "services": {"type": "array"},
                "routes": {"type": "array"},
                "warnings": {"type": "array", "items": {"type": "string"},
                             "description": "the template's fields the runtime in use ignores (for a release: the incoming services'), one line each with its hint, e.g. `service web: the docker runtime ignores container_name; hint: ...`"}
            }
        },
        "Deploy": {
            "type": "object", "required": ["name", "template"], "additionalProperties": false,
            "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
                         "description": "1 to 64 letters, digits, `-` and `_`, starting with a letter or digit"},
                "template": {"type": "string", "description": "the template's YAML text"},
                "source_name": {"type": "string", "default": "template.yaml",
                                "description": "the file name diagnostics name"},
                "env_files": {"type": "object",
                              "description": "the values of the files the template's env_file entries name, by the path as the template writes it; a service's environment is its files' values in order, then its environment",
                              "additionalProperties": {"type": "object", "additionalProperties": {"type": "string"}}},
                "base_dir": {"type": "string",
                             "description": "the template's folder, absolute: build contexts, bind mounts and a relative working_dir resolve against it"}
            }
        },
        "Release": {
            "type": "object", "required": ["template"], "additionalProperties": false,
            "properties": {
                "template": {"type": "string", "description": "the new template's YAML text"},
                "source_name": {"type": "string", "default": "template.yaml"},
                "strategy": {"type": "string", "enum": ["blue-green", "standard", "canary", "gray", "ab-test"],
                             "description": "default: the template's x-turnout.release.strategy, else blue-green; the same as plan.strategy. canary and gray run their steps and judge their analysis gates (analysis.prometheus included); ab-test splits the shared routes' clients by ab.share and counts ab.goal's conversions (GET /v1/apps/{app}/report compares the versions)"},
                "plan": {"$ref": "#/components/schemas/ReleaseBlock"},
                "env_files": {"type": "object",
                              "description": "the values of the files the template's env_file entries name, by the path as the template writes it; a service's environment is its files' values in order, then its environment",
                              "additionalProperties": {"type": "object", "additionalProperties": {"type": "string"}}},
                "base_dir": {"type": "string",
                             "description": "the template's folder, absolute: build contexts, bind mounts and a relative working_dir resolve against it"}
            }
        },
        "ReleaseBlock": {
            "type": "object", "additionalProperties": false,
            "description": "the plan of DESIGN §8 in the shape of the template's x-turnout.release block; each field set overrides the template's (the turnout release flags: --steps is steps, --canary-share is canary.share, --goal is ab.goal.path); merged and validated by the server (422 with diagnostics when the plan is bad)",
            "properties": {
                "strategy": {"type": "string", "enum": ["blue-green", "standard", "canary", "gray", "ab-test"]},
                "steps": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 100},
                          "description": "gray: the new version's share at each step, increasing"},
                "pause": {"type": "string", "description": "a duration (`30s`) or `until-promoted`"},
                "canary": {"type": "object", "additionalProperties": false, "properties": {
                    "share": {"type": "integer", "minimum": 0, "maximum": 100},
                    "scale": {"type": "integer", "minimum": 1}}},
                "analysis": {"type": "object", "additionalProperties": false, "properties": {
                    "window": {"type": "string", "description": "a duration: `500ms`, `30s`, `2m`"},
                    "min_requests": {"type": "integer", "minimum": 0},
                    "max_error_rate": {"type": ["string", "number"], "description": "`1%` or a fraction (0.01)"},
                    "max_error_increase": {"type": ["string", "number"], "description": "`1%` or a fraction (0.01)"},
                    "max_p99": {"type": "string", "description": "a duration"},
                    "max_p99_increase": {"type": "string", "description": "a duration"},
                    "prometheus": {"type": "object", "required": ["url", "query", "max"], "additionalProperties": false,
                                   "description": "an outside gate: at each check the server runs the instant query (GET {url}/api/v1/query, timeout the window, at most 5 s); a value above max fails the check (rolls back), no single value (unreachable, an error, no series or several) makes it inconclusive (pauses)",
                                   "properties": {"url": {"type": "string", "description": "the Prometheus server's base URL, http:// (`http://prometheus:9090`)"},
                                                  "query": {"type": "string", "description": "PromQL giving one value: a scalar or a vector of one series"},
                                                  "max": {"type": "number"}}}}},
                "on_success": {"type": "string", "enum": ["pending-confirmation", "confirm"]},
                "lanes": {"type": "boolean"},
                "ab": {"type": "object", "additionalProperties": false, "properties": {
                    "rules": {"type": "array", "items": {
                        "type": "object", "required": ["match", "service"], "additionalProperties": false,
                        "properties": {
                            "match": {"type": "object", "additionalProperties": false, "properties": {
                                "header": {"type": "object", "additionalProperties": {"type": "string"}},
                                "cookie": {"type": "object", "additionalProperties": {"type": "string"}},
                                "query": {"type": "object", "additionalProperties": {"type": "string"}}}},
                            "service": {"type": "string"}}}},
                    "share": {"type": "integer", "minimum": 0, "maximum": 100},
                    "goal": {"type": "object", "required": ["path"], "additionalProperties": false,
                             "properties": {"path": {"type": "string"},
                                            "status": {"type": "string", "description": "`2xx` or one status (`201`)"}}}}}
            }
        },
        "Promote": {
            "type": "object", "additionalProperties": false,
            "properties": {"full": {"type": "boolean", "default": false,
                                    "description": "straight to 100 %, skipping the remaining steps"}}
        },
        "Abort": {
            "type": "object", "additionalProperties": false,
            "properties": {"reason": {"type": "string",
                                      "description": "recorded as `aborted: <reason>`; `by the operator` when absent"}}
        },
        "Confirm": {
            "type": "object", "additionalProperties": false,
            "properties": {"switch": {"type": "boolean", "default": false}}
        },
        "Empty": {"type": "object", "additionalProperties": false, "maxProperties": 0},
        "Weights": {
            "type": "object", "required": ["weights"], "additionalProperties": false,
            "properties": {"weights": {
                "type": "object", "minProperties": 1,
                "description": "service name -> weight; only the services named change, in one \
                    atomic step; every one must be on the route, and at least one service of the \
                    route must keep a weight above 0. Weights are relative (100 and 100 is 50/50); \
                    an integral number such as 100.0 is an integer",
                "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100}}}
        },
        "MetricsSample": {
            "type": "object", "required": ["app", "at", "interval_ms", "services", "routes"],
            "description": "what the router counted between two readings of the metrics stream",
            "properties": {
                "app": {"type": "string"},
                "at": {"type": "integer", "format": "int64", "description": "unix milliseconds"},
                "interval_ms": {"type": "integer", "minimum": 0, "description": "the window's length"},
                "services": {"type": "array", "description": "per service, summed over its routes",
                             "items": {"$ref": "#/components/schemas/ServiceMetrics"}},
                "routes": {"type": "array", "description": "per route and service: the split",
                           "items": {"$ref": "#/components/schemas/RouteServiceMetrics"}}
            }
        },
        "ServiceMetrics": {
            "type": "object", "required": ["service"],
            "allOf": [{"$ref": "#/components/schemas/WindowFigures"}],
            "properties": {"service": {"type": "string"}}
        },
        "RouteServiceMetrics": {
            "type": "object", "required": ["route", "service"],
            "allOf": [{"$ref": "#/components/schemas/WindowFigures"}],
            "properties": {"route": {"type": "string"}, "service": {"type": "string"}}
        },
        "WindowFigures": {
            "type": "object",
            "required": ["requests", "requests_per_second", "errors", "error_rate", "p99_ms", "total_requests"],
            "properties": {
                "requests": {"type": "integer", "minimum": 0, "description": "answered in the window, preview requests not counted"},
                "requests_per_second": {"type": "number", "minimum": 0},
                "errors": {"type": "integer", "minimum": 0, "description": "5xx answers in the window"},
                "error_rate": {"type": ["number", "null"], "minimum": 0, "maximum": 1, "description": "null without requests"},
                "p99_ms": {"type": ["number", "null"], "minimum": 0, "description": "from the router's histogram; null without requests"},
                "total_requests": {"type": "integer", "minimum": 0, "description": "since the service joined the route(s)"}
            }
        },
        "Error": {
            "type": "object", "required": ["error"], "additionalProperties": false,
            "properties": {"error": {
                "type": "object", "required": ["code", "message", "hint"],
                "properties": {
                    "code": {"type": "string", "enum": [
                        "bad_request", "unauthorized", "not_found", "method_not_allowed",
                        "conflict", "payload_too_large", "uri_too_long",
                        "unsupported_media_type", "invalid", "headers_too_large", "internal"]},
                    "message": {"type": "string", "description": "what went wrong"},
                    "hint": {"type": "string", "description": "what to do about it"},
                    "diagnostics": {"type": "array", "items": {"type": "object"},
                        "description": "an invalid template's diagnostics, as `turnout validate --output json` gives them"}
                }}}
        }
    })
}

fn query_schema(name: &str) -> Value {
    match name {
        "tail" => json!({"type": "integer", "minimum": 0, "default": 100,
                         "description": "how many of the last lines"}),
        "follow" => json!({"type": "boolean", "default": false,
                           "description": "stream new lines as they are written"}),
        "app" => json!({"type": "string", "description": "only this app's events"}),
        "after" => json!({"type": "integer", "format": "int64", "default": 0,
                          "description": "only events with a larger id"}),
        "limit" => json!({"type": "integer", "minimum": 0, "maximum": 10000, "default": 100,
                          "description": "at most this many (larger values count as 10000)"}),
        "last" => json!({"type": "integer", "minimum": 0, "maximum": 10000,
                         "description": "only the newest this many (larger values count as 10000), \
                                         oldest first, instead of the oldest `limit`; not with `limit`"}),
        "stream_last" => json!({"type": "integer", "minimum": 0, "maximum": 10000,
                                "description": "replay only the newest this many (larger values count \
                                                as 10000), then follow; `0`: only what happens from now"}),
        "interval_ms" => {
            json!({"type": "integer", "minimum": 100, "maximum": 60000, "default": 1000,
                                "description": "milliseconds between readings"})
        }
        _ => json!({"type": "string"}),
    }
}

fn path_schema(name: &str) -> Value {
    match name {
        "id" => json!({"type": "string",
                       "description": "a release id (an integer) or an instance id (`serviceB-v1.1`)"}),
        "route" => json!({"type": "string",
                          "description": "a route id (`serviceb.localhost`) or an unambiguous bare prefix (`serviceb`)"}),
        _ => json!({"type": "string"}),
    }
}

fn parameters(op: &Op) -> Vec<Value> {
    let path = op
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": path_schema(name)}));
    let query = op
        .query
        .iter()
        .map(|(name, schema)| json!({"name": name, "in": "query", "required": false, "schema": query_schema(schema)}));
    path.chain(query).collect()
}

/// The error statuses of an operation.
fn errors(op: &Op) -> Vec<&'static str> {
    let mut all: Vec<&str> = COMMON.to_vec();
    if op.path.starts_with("/v1/") {
        all.push("401");
    }
    if op.body.is_some() {
        all.extend(["413", "415"]);
    }
    all.extend(op.errors);
    all.sort_unstable();
    all.dedup();
    all
}

/// The document.
pub(crate) fn build() -> Value {
    let mut paths = serde_json::Map::new();
    for op in OPERATIONS {
        let mut responses = serde_json::Map::new();
        let success = match (op.events, op.response) {
            (None, None) => json!({"description": "success"}),
            (None, Some(schema)) => json!({
                "description": "success",
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
            }),
            (Some(schema), _) => json!({
                "description": "server-sent events, one `metrics` event per reading (its data \
                    the JSON of the schema named by x-event-data); `gone` when the app is \
                    deleted, and the stream ends",
                "content": {"text/event-stream": {
                    "schema": {"type": "string"},
                    "x-event-data": {"$ref": format!("#/components/schemas/{schema}")}
                }}
            }),
        };
        responses.insert(op.success.into(), success);
        for status in errors(op) {
            responses.insert(
                status.into(),
                json!({"$ref": "#/components/responses/Error"}),
            );
        }
        let mut doc = json!({
            "summary": op.summary,
            "parameters": parameters(op),
            "responses": responses,
        });
        if !op.path.starts_with("/v1/") {
            doc["security"] = json!([]);
        }
        if let Some((schema, required)) = op.body {
            doc["requestBody"] = json!({
                "required": required,
                "description": "JSON (`Content-Type: application/json`), at most 8 MiB; an \
                    optional body may be empty, and then needs no Content-Type",
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
            });
        }
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| json!({}));
        entry[op.method] = doc;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "turnout", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Zero-downtime releases: apps, releases, routes and events. See \
                    docs/api.md. Every error is `{\"error\": {\"code\", \"message\", \"hint\"}}` \
                    JSON, and a refused request changes nothing. Limits: a body of 8 MiB, a \
                    request target of 8 KiB, 64 KiB and 100 fields of headers."},
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
            "responses": {"Error": {
                "description": "an error; nothing was changed",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            }}
        },
        "paths": paths
    })
}

pub(crate) async fn document() -> Json<Value> {
    Json(build())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_document_is_json_and_its_operations_are_the_routes() {
        let text = serde_json::to_string(&build()).unwrap();
        let doc: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        let routed: BTreeSet<(String, String)> = crate::ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_string(), (*p).to_string()))
            .collect();
        assert_eq!(documented, routed);
    }

    #[test]
    fn every_operation_lists_its_error_responses() {
        let doc = build();
        let error = &doc["components"]["responses"]["Error"];
        assert_eq!(
            error["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Error"
        );
        let schema = &doc["components"]["schemas"]["Error"]["properties"]["error"];
        assert_eq!(schema["required"], json!(["code", "message", "hint"]));
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let what = format!("{method} {path}");
                let responses = op["responses"].as_object().unwrap();
                let mut wanted: Vec<&str> = COMMON.to_vec();
                if path.starts_with("/v1/") {
                    wanted.push("401");
                } else {
                    assert_eq!(op["security"], json!([]), "{what} is open");
                }
                if path.contains('{') {
                    wanted.push("404");
                }
                if op.get("requestBody").is_some() {
                    wanted.extend(["413", "415", "422"]);
                    let schema = &op["requestBody"]["content"]["application/json"]["schema"];
                    let name = schema["$ref"].as_str().unwrap();
                    let name = name.strip_prefix("#/components/schemas/").unwrap();
                    assert!(doc["components"]["schemas"].get(name).is_some(), "{what}");
                }
                if ["post", "put", "delete"].contains(&method.as_str()) && path != "/v1/apps/{app}"
                {
                    wanted.extend(["409", "422"]);
                }
                for status in wanted {
                    assert_eq!(
                        responses.get(status),
                        Some(&json!({"$ref": "#/components/responses/Error"})),
                        "{what} lacks its {status} error"
                    );
                }
                let successes = responses.keys().filter(|s| s.starts_with('2')).count();
                assert_eq!(successes, 1, "{what}");
                for (status, response) in responses {
                    if !status.starts_with('2') {
                        assert_eq!(response["$ref"], "#/components/responses/Error", "{what}");
                    }
                }
                // Every path parameter is declared.
                let declared: Vec<&str> = op["parameters"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap())
                    .collect();
                let in_path: Vec<&str> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
                    .collect();
                assert_eq!(declared, in_path, "{what}");
            }
        }
    }

    #[test]
    fn the_metrics_stream_names_its_event_schema_and_it_lists_every_field() {
        use turnout_api_types::{
            MetricsSample, RouteServiceMetrics, ServiceMetrics, WindowFigures,
        };
        let doc = build();
        let op = &doc["paths"]["/v1/apps/{app}/metrics/stream"]["get"];
        let content = &op["responses"]["200"]["content"]["text/event-stream"];
        assert_eq!(
            content["x-event-data"]["$ref"],
            "#/components/schemas/MetricsSample"
        );
        let interval = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "interval_ms")
            .expect("interval_ms is documented");
        assert_eq!(interval["schema"]["minimum"], 100);
        let s = schemas();
        let keys = |v: &Value| -> Vec<String> {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        let figures = WindowFigures::default();
        let sample = MetricsSample {
            app: "a".into(),
            at: 0,
            interval_ms: 0,
            services: vec![ServiceMetrics {
                service: "s".into(),
                figures,
            }],
            routes: vec![RouteServiceMetrics {
                route: "r".into(),
                service: "s".into(),
                figures,
            }],
        };
        let json = serde_json::to_value(&sample).unwrap();
        assert_eq!(keys(&json), keys(&s["MetricsSample"]["properties"]));
        assert_eq!(keys(&json), {
            let mut r: Vec<String> = s["MetricsSample"]["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect();
            r.sort();
            r
        });
        let mut route_fields = keys(&s["WindowFigures"]["properties"]);
        route_fields.extend(keys(&s["RouteServiceMetrics"]["properties"]));
        route_fields.sort();
        assert_eq!(keys(&json["routes"][0]), route_fields);
        let mut service_fields = keys(&s["WindowFigures"]["properties"]);
        service_fields.extend(keys(&s["ServiceMetrics"]["properties"]));
        service_fields.sort();
        assert_eq!(keys(&json["services"][0]), service_fields);
        // Every $ref of the document names a schema it has.
        let text = serde_json::to_string(&doc).unwrap();
        for piece in text.split("\"#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(s.get(name).is_some(), "no schema {name}");
        }
    }

    #[test]
    fn the_rules_the_handlers_enforce_are_in_the_schemas() {
        let s = schemas();
        let weights = &s["Weights"]["properties"]["weights"];
        assert_eq!(weights["minProperties"], 1);
        assert_eq!(
            weights["additionalProperties"],
            json!({"type": "integer", "minimum": 0, "maximum": 100})
        );
        assert_eq!(s["Weights"]["required"], json!(["weights"]));
        assert_eq!(s["Deploy"]["required"], json!(["name", "template"]));
        assert_eq!(s["Release"]["required"], json!(["template"]));
        for name in ["Deploy", "Release", "Confirm", "Weights", "Empty"] {
            assert_eq!(s[name]["additionalProperties"], false, "{name}");
        }
    }

    #[test]
    fn the_request_schemas_list_every_field_of_the_request_types() {
        use turnout_api_types::{DeployRequest, ReleaseRequest};
        let s = schemas();
        let fields = |v: serde_json::Value| -> Vec<String> {
            let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            keys.sort();
            keys
        };
        let listed = |name: &str| fields(s[name]["properties"].clone());
        let env_files = [(
            "a.env".to_string(),
            [("A".to_string(), "1".to_string())].into(),
        )]
        .into();
        let deploy = DeployRequest {
            name: "a".into(),
            template: "t".into(),
            source_name: Some("s".into()),
            env_files,
            base_dir: Some("/d".into()),
        };
        assert_eq!(
            fields(serde_json::to_value(&deploy).unwrap()),
            listed("Deploy")
        );
        let release = ReleaseRequest {
            template: "t".into(),
            source_name: Some("s".into()),
            strategy: Some("standard".into()),
            plan: Some(turnout_spec::ReleaseBlock::default()),
            env_files: deploy.env_files,
            base_dir: Some("/d".into()),
        };
        assert_eq!(
            fields(serde_json::to_value(&release).unwrap()),
            listed("Release")
        );
        use turnout_spec::plan::{Millis, Pause, Rate};
        let every = turnout_spec::ReleaseBlock {
            strategy: Some(turnout_spec::Strategy::Gray),
            steps: Some(vec![10, 100]),
            pause: Some(Pause::UntilPromoted),
            canary: Some(Default::default()),
            analysis: Some(turnout_spec::plan::AnalysisBlock {
                window: Some(Millis(1000)),
                max_error_rate: Some(Rate::ONE),
                ..Default::default()
            }),
            on_success: Some(turnout_spec::OnSuccess::Confirm),
            lanes: Some(true),
            ab: Some(Default::default()),
        };
        assert_eq!(
            fields(serde_json::to_value(&every).unwrap()),
            listed("ReleaseBlock")
        );
    }

    #[test]
    fn deploy_and_release_answer_the_status_with_the_runtime_warnings() {
        let doc = build();
        for (path, method) in [("/v1/apps", "post"), ("/v1/apps/{app}/releases", "post")] {
            let created = &doc["paths"][path][method]["responses"]["201"];
            assert_eq!(
                created["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/Accepted",
                "{method} {path}"
            );
        }
        let accepted = turnout_api_types::AcceptedStatus {
            status: turnout_api_types::AppStatus {
                app: "a".into(),
                template_version: 1,
                release: None,
                services: vec![],
                routes: vec![],
            },
            warnings: vec!["w".into()],
        };
        let mut keys: Vec<String> = serde_json::to_value(&accepted)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        keys.sort();
        let mut listed: Vec<String> = schemas()["Accepted"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        listed.sort();
        assert_eq!(keys, listed);
        assert_eq!(
            schemas()["Accepted"]["properties"]["warnings"]["items"]["type"],
            "string"
        );
    }
}
