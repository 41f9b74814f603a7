//! turnout application templates: parsing, validation, normalisation and
//! diff.
//!
//! A template is compose-compatible YAML, in the seed platform's layout (a
//! top-level map of services) or compose v2/v3 (`services:`), with the
//! seed's `aliyun.*` labels and turnout's strict `turnout.*` twins. Reading
//! one gives a normalised [`Template`] or every problem at once as
//! [`Diagnostic`]s naming file, line, column and field.

mod check;
pub mod diagnostic;
pub mod diff;
pub mod dotenv;
mod emit;
mod error;
pub mod identity;
pub mod interpolate;
pub mod labels;
mod parse;
pub mod plan;
pub mod route;
pub mod rules;
pub mod template;
mod yaml;

use std::path::Path;

pub use diagnostic::{Diagnostic, FieldPath, Pos, Severity};
pub use diff::{Role, RouteChange, Strategy, TemplateDiff, diff};
pub use dotenv::{EnvFiles, apply_env_files, parse_env_file};
pub use emit::to_yaml;
pub use error::SpecError;
pub use identity::spec_hash;
pub use labels::{Probe, ProbeCheck, Settings, Sticky};
pub use parse::{Parsed, parse};
pub use plan::{OnSuccess, PlanSpans, ReleaseBlock, ReleasePlan, Resolved, Schedule};
pub use route::{DEFAULT_DOMAIN, RouteBinding, RouteHost, RouteSpec};
pub use rules::{GoalSpec, MatchSpec, RuleSpec};
pub use template::{Command, Format, Service, Template};

/// Reads and parses a template file, substituting `${VAR}` from the
/// process environment only: the `.env` of its folder and its `env_file`s
/// are read by the CLI (`crates/turnout/src/local_template.rs`), which
/// keeps this crate free of IO beyond this one file.
pub fn load(path: &Path) -> Result<Parsed, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let file = path.display().to_string();
    parse(&file, &text, &|name| std::env::var(name).ok())
        .map_err(|diagnostics| SpecError::Invalid { file, diagnostics })
}
