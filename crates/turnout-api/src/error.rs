//! The one error type of the API: a status and a JSON body
//! `{"error": {"code", "message", "hint"}}` that never leaks internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use turnout_engine::EngineError;

/// An error answered to an API client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code (`not_found`, `conflict`, `invalid`,
    /// `unauthorized`, `bad_request`, `internal`).
    pub code: &'static str,
    /// What went wrong, in a sentence.
    pub message: String,
    /// What to do about it.
    pub hint: String,
    /// More to say, merged into the `error` object (e.g. `diagnostics`).
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// A new error.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            hint: hint.into(),
            details: None,
        }
    }

    /// Adds fields to the `error` object.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message, hint)
    }

    /// 500: something failed inside; the details go to the server log.
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error answering an API request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to handle the request",
            "see the server's log; nothing was changed",
        )
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = match &e {
            EngineError::NotFound { .. } => StatusCode::NOT_FOUND,
            EngineError::Conflict { .. } => StatusCode::CONFLICT,
            EngineError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self::new(status, e.code(), e.to_string(), e.hint())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message, "hint": self.hint });
        if let (Some(serde_json::Value::Object(extra)), Some(object)) =
            (self.details, error.as_object_mut())
        {
            object.extend(extra);
        }
        let body = json!({ "error": error });
        (self.status, Json(body)).into_response()
    }
}
