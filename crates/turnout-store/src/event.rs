//! Events: the control plane's log, read by `history`, the console and the
//! SSE stream.

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::convert::{from_json, to_json};
use crate::error::{StoreError, sql};

/// An event as stored: what was recorded, with the id and time the
/// store gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// Its id: strictly increasing, never reused, so an SSE client resumes
    /// with "every event after id N". 0 for an event the engine sends
    /// live and never stores (an analysis check repeating its verdict).
    pub id: i64,
    /// When it was committed, unix milliseconds.
    pub at: i64,
    /// The event (its app may be any string: events outlive their app).
    pub event: NewEvent,
}

/// An event to record in a change; the store gives it its id and time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// The app it is about.
    pub app: String,
    /// What kind of event it is.
    pub kind: String,
    /// A one-line human description.
    pub message: String,
    /// Structured details, if any.
    pub data: Option<serde_json::Value>,
}

/// Appends an event stamped `at`.
pub(crate) fn insert(conn: &Connection, e: &NewEvent, at: i64) -> Result<EventRecord, StoreError> {
    let data = e
        .data
        .as_ref()
        .map(|d| to_json(d, "events.data"))
        .transpose()?;
    let id = conn
        .prepare_cached(
            "INSERT INTO events (app, at, kind, message, data) VALUES (?1, ?2, ?3, ?4, ?5)
             RETURNING id",
        )
        .and_then(|mut stmt| {
            stmt.query_row(params![e.app, at, e.kind, e.message, data], |row| {
                row.get(0)
            })
        })
        .map_err(sql("write event"))?;
    Ok(EventRecord {
        id,
        at,
        event: e.clone(),
    })
}

/// Deletes an app's events older than its newest `keep`.
pub(crate) fn prune(conn: &Connection, app: &str, keep: usize) -> Result<(), StoreError> {
    conn.prepare_cached(
        "DELETE FROM events WHERE app = ?1 AND id <=
           (SELECT id FROM events WHERE app = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    )
    .and_then(|mut stmt| stmt.execute(params![app, i64::try_from(keep).unwrap_or(i64::MAX)]))
    .map_err(sql("prune events"))?;
    Ok(())
}

/// Reads up to `limit` events with an id above `after_id`, of one app or of
/// all, in id order: the oldest of them, or with `newest` the newest.
pub(crate) fn load(
    conn: &Connection,
    app: Option<&str>,
    after_id: i64,
    limit: usize,
    newest: bool,
) -> Result<Vec<EventRecord>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let query = if newest {
        "SELECT * FROM (SELECT id, app, at, kind, message, data FROM events
           WHERE id > ?1 AND (?2 IS NULL OR app = ?2)
           ORDER BY id DESC LIMIT ?3) ORDER BY id"
    } else {
        "SELECT id, app, at, kind, message, data FROM events
         WHERE id > ?1 AND (?2 IS NULL OR app = ?2)
         ORDER BY id LIMIT ?3"
    };
    let rows = conn
        .prepare_cached(query)
        .and_then(|mut stmt| {
            stmt.query_map(params![after_id, app, limit], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, Option<String>>(5)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sql("read events"))?;
    rows.into_iter()
        .map(|(id, app, at, kind, message, data)| {
            Ok(EventRecord {
                id,
                at,
                event: NewEvent {
                    app,
                    kind,
                    message,
                    data: data.map(|d| from_json(&d, "events.data")).transpose()?,
                },
            })
        })
        .collect()
}
