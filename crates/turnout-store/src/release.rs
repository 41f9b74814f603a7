//! Releases: the history of an app's moves from one template to another.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::convert::{from_column, from_json, to_json};
use crate::error::{StoreError, sql};
use crate::weight::WeightRecord;

/// One release of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// Its id; 0 in a change means "new": the store assigns the next id and
    /// returns it in [`crate::CommitResult::release_ids`]. Ids are never
    /// reused, not even after the app is deleted.
    pub id: i64,
    /// The app being released.
    pub app: String,
    /// The strategy (`blue-green`, `standard`, ...), as the engine spells it.
    pub strategy: String,
    /// The release state (`deploying`, `pending-confirmation`, ...), as the
    /// engine spells it.
    pub state: String,
    /// The template version released from.
    pub from_version: u32,
    /// The template version released to.
    pub to_version: u32,
    /// Why it ended as it did (`failed: ...`), if the engine says.
    pub reason: Option<String>,
    /// The route weights from before the release, which a rollback restores;
    /// stored as a JSON array in this column, because they are only ever
    /// read back whole.
    pub saved_weights: Vec<WeightRecord>,
    /// When the release started, unix milliseconds.
    pub created_at: i64,
    /// When it last changed state, unix milliseconds.
    pub updated_at: i64,
    /// A progressive release's plan and step, as the engine writes them
    /// (JSON, read back whole); `None` for other releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<serde_json::Value>,
}

/// Inserts a release (id 0) or writes over the one with its id; returns the
/// release's id. A release never moves to another app.
pub(crate) fn upsert(conn: &Connection, r: &ReleaseRecord) -> Result<i64, StoreError> {
    let saved = to_json(&r.saved_weights, "releases.saved_weights")?;
    let progress = r
        .progress
        .as_ref()
        .map(|p| to_json(p, "releases.progress"))
        .transpose()?;
    // NULL lets AUTOINCREMENT pick the id of a new release.
    let id = (r.id != 0).then_some(r.id);
    conn.prepare_cached(
        "INSERT INTO releases (id, app, strategy, state, from_version, to_version, reason,
                               saved_weights, created_at, updated_at, progress)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (id) DO UPDATE SET
             app = excluded.app,
             strategy = excluded.strategy,
             state = excluded.state,
             from_version = excluded.from_version,
             to_version = excluded.to_version,
             reason = excluded.reason,
             saved_weights = excluded.saved_weights,
             created_at = excluded.created_at,
             updated_at = excluded.updated_at,
             progress = excluded.progress
         WHERE releases.app = excluded.app
         RETURNING id",
    )
    .and_then(|mut stmt| {
        stmt.query_row(
            params![
                id,
                r.app,
                r.strategy,
                r.state,
                r.from_version,
                r.to_version,
                r.reason,
                saved,
                r.created_at,
                r.updated_at,
                progress
            ],
            |row| row.get(0),
        )
        .optional()
    })
    .map_err(sql("write release"))?
    // No row came back: the id exists and the conflict clause's WHERE kept
    // it, because it belongs to another app.
    .ok_or_else(|| StoreError::OtherApp {
        what: "release",
        id: r.id.to_string(),
        app: r.app.clone(),
    })
}

const COLUMNS: &str = "id, app, strategy, state, from_version, to_version, reason, saved_weights, \
                       created_at, updated_at, progress";

/// Reads one release.
pub(crate) fn load(conn: &Connection, id: i64) -> Result<Option<ReleaseRecord>, StoreError> {
    let row = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM releases WHERE id = ?1"))
        .and_then(|mut stmt| stmt.query_row([id], release_row).optional())
        .map_err(sql("read release"))?;
    row.map(record).transpose()
}

/// Reads an app's releases, newest first, at most `limit` of them.
pub(crate) fn load_for_app(
    conn: &Connection,
    app: &str,
    limit: Option<usize>,
) -> Result<Vec<ReleaseRecord>, StoreError> {
    // A negative LIMIT means no limit in SQLite.
    let limit = limit.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM releases WHERE app = ?1 ORDER BY id DESC LIMIT ?2"
        ))
        .and_then(|mut stmt| {
            stmt.query_map(params![app, limit], release_row)?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sql("read releases"))?;
    rows.into_iter().map(record).collect()
}

/// The columns of a `releases` row.
struct ReleaseRow {
    id: i64,
    app: String,
    strategy: String,
    state: String,
    from_version: i64,
    to_version: i64,
    reason: Option<String>,
    saved_weights: String,
    created_at: i64,
    updated_at: i64,
    progress: Option<String>,
}

fn release_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ReleaseRow> {
    Ok(ReleaseRow {
        id: row.get(0)?,
        app: row.get(1)?,
        strategy: row.get(2)?,
        state: row.get(3)?,
        from_version: row.get(4)?,
        to_version: row.get(5)?,
        reason: row.get(6)?,
        saved_weights: row.get(7)?,
        created_at: row.get(8)?,
        updated_at: row.get(9)?,
        progress: row.get(10)?,
    })
}

fn record(row: ReleaseRow) -> Result<ReleaseRecord, StoreError> {
    Ok(ReleaseRecord {
        id: row.id,
        app: row.app,
        strategy: row.strategy,
        state: row.state,
        from_version: from_column(row.from_version, "releases.from_version")?,
        to_version: from_column(row.to_version, "releases.to_version")?,
        reason: row.reason,
        saved_weights: from_json(&row.saved_weights, "releases.saved_weights")?,
        created_at: row.created_at,
        updated_at: row.updated_at,
        progress: row
            .progress
            .map(|p| from_json(&p, "releases.progress"))
            .transpose()?,
    })
}
