//! The error type of this crate.

use std::path::PathBuf;

use crate::diagnostic::Diagnostic;

/// Why a template could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The template has errors; `diagnostics` lists every one, with the
    /// warnings found on the way.
    #[error("{file} is not a valid template ({} errors)", diagnostics.iter().filter(|d| d.is_error()).count())]
    Invalid {
        /// The file, as the user named it.
        file: String,
        /// Errors and warnings, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}
