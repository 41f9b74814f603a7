//! The error type of the engine: why a command was refused. Every refusal
//! leaves the app exactly as it was.

/// Why the engine refused a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The app, route, service or release named does not exist.
    #[error("{message}")]
    NotFound {
        /// What is missing, in a sentence.
        message: String,
        /// What to do instead.
        hint: String,
    },
    /// The command does not fit the app's current state (a release is
    /// already running, nothing to confirm, ...).
    #[error("{message}")]
    Conflict {
        /// What is in the way.
        message: String,
        /// What to do instead.
        hint: String,
    },
    /// The command itself is wrong (a weight out of range, a template that
    /// the strategy cannot release, ...).
    #[error("{message}")]
    Invalid {
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: String,
    },
}

impl EngineError {
    /// A stable machine-readable code: `not_found`, `conflict`, `invalid`.
    pub fn code(&self) -> &'static str {
        match self {
            EngineError::NotFound { .. } => "not_found",
            EngineError::Conflict { .. } => "conflict",
            EngineError::Invalid { .. } => "invalid",
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> &str {
        match self {
            EngineError::NotFound { hint, .. }
            | EngineError::Conflict { hint, .. }
            | EngineError::Invalid { hint, .. } => hint,
        }
    }

    pub(crate) fn not_found(message: impl Into<String>, hint: impl Into<String>) -> Self {
        EngineError::NotFound {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub(crate) fn conflict(message: impl Into<String>, hint: impl Into<String>) -> Self {
        EngineError::Conflict {
            message: message.into(),
            hint: hint.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>, hint: impl Into<String>) -> Self {
        EngineError::Invalid {
            message: message.into(),
            hint: hint.into(),
        }
    }
}
