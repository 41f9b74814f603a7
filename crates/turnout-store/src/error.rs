//! The error type of this crate.

use std::path::PathBuf;

/// Why the store could not open, read or write.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory that should hold the database could not be created.
    #[error("cannot create directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// SQLite could not open or set up the database file.
    #[error("cannot open store {path}: {source}")]
    Open {
        /// The database file (`:memory:` for an in-memory store).
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The file was written by a newer turnout whose schema this build does
    /// not know; opening it anyway could lose or misread data.
    #[error(
        "store {path} has schema version {found}, newer than version {supported} that this turnout knows: \
         run the newer turnout, or move the data dir away to start afresh"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// The schema version found in the file (`PRAGMA user_version`).
        found: u32,
        /// The newest schema version this build can migrate to.
        supported: u32,
    },
    /// The journal mode could not be switched to WAL (for example on a file
    /// system without shared memory support), so commits would not be as
    /// durable and concurrent as the control plane assumes.
    #[error("store {path} cannot use write-ahead logging (journal mode is {mode})")]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite reported instead of `wal`.
        mode: String,
    },
    /// A schema migration failed; the file is left at the version before it.
    #[error("cannot migrate store to schema version {version}: {source}")]
    Migration {
        /// The version the failed migration leads to.
        version: u32,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A statement failed; a failed commit changed nothing.
    #[error("cannot {action}: {source}")]
    Sqlite {
        /// What the store was doing, for example `write route weights`.
        action: &'static str,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A change carries a template version whose text differs from the one
    /// already stored: template versions are immutable history.
    #[error("template version {version} of app {app} is already stored with a different text")]
    TemplateConflict {
        /// The app.
        app: String,
        /// The template version.
        version: u32,
    },
    /// A change writes a release or an instance under another app than the
    /// one that owns its id: a bug in the caller, which would otherwise
    /// silently take the row from its app.
    #[error("{what} {id} belongs to another app than {app}")]
    OtherApp {
        /// `release` or `instance`.
        what: &'static str,
        /// The release or instance id.
        id: String,
        /// The app the change named.
        app: String,
    },
    /// A value does not fit its column or its record field (for example a
    /// negative scale read back, or a start time above `i64::MAX`).
    #[error("{field} value {value} is out of range")]
    OutOfRange {
        /// The table and column, for example `instances.pid`.
        field: &'static str,
        /// The offending value.
        value: i128,
    },
    /// A JSON column could not be written or read back.
    #[error("invalid JSON in {field}: {source}")]
    Json {
        /// The table and column, for example `instances.ports`.
        field: &'static str,
        /// What serde_json said.
        source: serde_json::Error,
    },
}

/// Wraps a SQLite error with what the store was doing.
pub(crate) fn sql(action: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { action, source }
}
