//! `GET /v1/openapi.json`: the OpenAPI 3.1 description of the API, written
//! out by hand from `docs/api.md` (the API is small; a derive framework
//! would be a heavier dependency than the document).

use axum::Json;
use serde_json::{Value, json};

/// (method, path, summary, request body schema name, success status)
const OPERATIONS: &[(&str, &str, &str, Option<&str>, &str)] = &[
    (
        "get",
        "/v1/apps",
        "List apps with their status",
        None,
        "200",
    ),
    (
        "post",
        "/v1/apps",
        "Deploy an app from a template",
        Some("Deploy"),
        "201",
    ),
    ("get", "/v1/apps/{app}", "Status of an app", None, "200"),
    (
        "delete",
        "/v1/apps/{app}",
        "Delete an app and stop its instances",
        None,
        "204",
    ),
    (
        "get",
        "/v1/apps/{app}/releases",
        "Release history, newest first",
        None,
        "200",
    ),
    (
        "post",
        "/v1/apps/{app}/releases",
        "Start a release",
        Some("Release"),
        "201",
    ),
    (
        "get",
        "/v1/apps/{app}/releases/{id}",
        "One release",
        None,
        "200",
    ),
    (
        "post",
        "/v1/apps/{app}/confirm",
        "Confirm the release in progress",
        Some("Confirm"),
        "200",
    ),
    (
        "post",
        "/v1/apps/{app}/rollback",
        "Roll the release in progress back",
        None,
        "200",
    ),
    (
        "get",
        "/v1/apps/{app}/routes",
        "Routes and weights",
        None,
        "200",
    ),
    (
        "put",
        "/v1/apps/{app}/routes/{route}/weights",
        "Set weights of some services of a route, atomically",
        Some("Weights"),
        "200",
    ),
    (
        "post",
        "/v1/apps/{app}/routes/{route}/switch",
        "Move a route's traffic to the other side",
        None,
        "200",
    ),
    (
        "get",
        "/v1/apps/{app}/services",
        "Services and instances",
        None,
        "200",
    ),
    (
        "get",
        "/v1/apps/{app}/services/{service}/logs",
        "Last lines of a service's instance logs",
        None,
        "200",
    ),
    (
        "get",
        "/v1/apps/{app}/instances/{id}/logs",
        "Log of one instance, optionally followed",
        None,
        "200",
    ),
    ("get", "/v1/events", "Events after an id", None, "200"),
    (
        "get",
        "/v1/events/stream",
        "Events as server-sent events",
        None,
        "200",
    ),
    ("get", "/v1/openapi.json", "This document", None, "200"),
];

fn schemas() -> Value {
    json!({
        "Deploy": {
            "type": "object", "required": ["name", "template"], "additionalProperties": false,
            "properties": {
                "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"},
                "template": {"type": "string", "description": "the template's YAML text"},
                "source_name": {"type": "string"}
            }
        },
        "Release": {
            "type": "object", "required": ["template"], "additionalProperties": false,
            "properties": {
                "template": {"type": "string"},
                "source_name": {"type": "string"},
                "strategy": {"type": "string", "enum": ["blue-green", "standard"]}
            }
        },
        "Confirm": {
            "type": "object", "additionalProperties": false,
            "properties": {"switch": {"type": "boolean"}}
        },
        "Weights": {
            "type": "object", "required": ["weights"], "additionalProperties": false,
            "properties": {"weights": {"type": "object",
                "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100}}}
        },
        "Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {"type": "object", "required": ["code", "message", "hint"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                               "hint": {"type": "string"}}}}
        }
    })
}

fn parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect()
}

/// The document.
pub(crate) fn build() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, summary, body, status) in OPERATIONS {
        let mut op = json!({
            "summary": summary,
            "parameters": parameters(path),
            "responses": {
                *status: {"description": "success"},
                "default": {"description": "error",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
        if let Some(schema) = body {
            op["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
            });
        }
        let entry = paths
            .entry((*path).to_string())
            .or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "turnout", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Zero-downtime releases: apps, releases, routes and events. See docs/api.md."},
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas()
        },
        "paths": paths
    })
}

pub(crate) async fn document() -> Json<Value> {
    Json(build())
}
