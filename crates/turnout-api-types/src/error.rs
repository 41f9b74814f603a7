//! The body of every refusal: `{"error": {"code", "message", "hint"}}`,
//! with the template's `diagnostics` when a template was invalid.

use serde::{Deserialize, Serialize};
use turnout_spec::Diagnostic;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What was refused and why.
    pub error: ErrorDetail,
}

/// The `error` object of an error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// A stable machine-readable code (`not_found`, `conflict`, `invalid`,
    /// `unauthorized`, `bad_request`, `internal`).
    #[serde(default)]
    pub code: String,
    /// What went wrong, in a sentence.
    pub message: String,
    /// What to do about it.
    #[serde(default)]
    pub hint: String,
    /// Every problem of a refused template (a 422 `invalid`); the field is
    /// absent otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Diagnostic>,
}
