//! The one error type of the API: a status and a JSON body
//! `{"error": {"code", "message", "hint"}}` ([`ErrorBody`]) that never
//! leaks internals.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use turnout_api_types::{ErrorBody, ErrorDetail};
use turnout_engine::EngineError;
use turnout_spec::Diagnostic;

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
    /// The problems of a refused template, answered as the `error`
    /// object's `diagnostics`.
    pub diagnostics: Vec<Diagnostic>,
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
            diagnostics: Vec::new(),
        }
    }

    /// Adds a refused template's problems.
    pub fn with_diagnostics(mut self, diagnostics: Vec<Diagnostic>) -> Self {
        self.diagnostics = diagnostics;
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
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                hint: self.hint,
                diagnostics: self.diagnostics,
            },
        };
        (self.status, Json(body)).into_response()
    }
}
