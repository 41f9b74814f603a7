//! Templates: every version of an app's template, as the user sent it.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::convert::from_column;
use crate::error::{StoreError, sql};

/// One version of an app's template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRecord {
    /// The app it belongs to; the app must exist (or be written in the same
    /// change).
    pub app: String,
    /// Its version, counted by the engine.
    pub version: u32,
    /// Where it came from, as the user named it (`examples/hello/app.yaml`).
    pub source_name: String,
    /// The template text after the CLI's `${VAR}` substitution.
    pub text: String,
    /// When it was stored, unix milliseconds.
    pub created_at: i64,
    /// The template's folder on the machine it was read on (DESIGN §6),
    /// which its text does not hold; `None` for a template sent without
    /// one (and for every template stored before schema version 3).
    #[serde(default)]
    pub base_dir: Option<String>,
}

/// Stores a template version. Versions are immutable: writing one again
/// with the same text is a no-op (so a retried change is harmless), with a
/// different text an error.
pub(crate) fn insert(conn: &Connection, t: &TemplateRecord) -> Result<(), StoreError> {
    let existing: Option<(String, Option<String>)> = conn
        .prepare_cached("SELECT text, base_dir FROM templates WHERE app = ?1 AND version = ?2")
        .and_then(|mut stmt| {
            stmt.query_row(params![t.app, t.version], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
        })
        .map_err(sql("read template"))?;
    match existing {
        Some((text, base_dir)) if text == t.text && base_dir == t.base_dir => Ok(()),
        Some(_) => Err(StoreError::TemplateConflict {
            app: t.app.clone(),
            version: t.version,
        }),
        None => {
            conn.prepare_cached(
                "INSERT INTO templates (app, version, source_name, text, created_at, base_dir)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    t.app,
                    t.version,
                    t.source_name,
                    t.text,
                    t.created_at,
                    t.base_dir
                ])
            })
            .map_err(sql("write template"))?;
            Ok(())
        }
    }
}

/// Reads one template version.
pub(crate) fn load(
    conn: &Connection,
    app: &str,
    version: u32,
) -> Result<Option<TemplateRecord>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT app, version, source_name, text, created_at, base_dir FROM templates
             WHERE app = ?1 AND version = ?2",
        )
        .and_then(|mut stmt| {
            stmt.query_row(params![app, version], template_row)
                .optional()
        })
        .map_err(sql("read template"))?;
    row.map(record).transpose()
}

/// Reads every version of an app's template, oldest first.
pub(crate) fn load_all(conn: &Connection, app: &str) -> Result<Vec<TemplateRecord>, StoreError> {
    let rows = conn
        .prepare_cached(
            "SELECT app, version, source_name, text, created_at, base_dir FROM templates
             WHERE app = ?1 ORDER BY version",
        )
        .and_then(|mut stmt| {
            stmt.query_map([app], template_row)?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sql("read templates"))?;
    rows.into_iter().map(record).collect()
}

/// The columns of a `templates` row.
type TemplateRow = (String, i64, String, String, i64, Option<String>);

fn template_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TemplateRow> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn record(
    (app, version, source_name, text, created_at, base_dir): TemplateRow,
) -> Result<TemplateRecord, StoreError> {
    Ok(TemplateRecord {
        app,
        version: from_column(version, "templates.version")?,
        source_name,
        text,
        created_at,
        base_dir,
    })
}
