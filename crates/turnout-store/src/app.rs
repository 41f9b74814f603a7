//! Apps: a named set of services with its route weights.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::convert::from_column;
use crate::error::{StoreError, sql};
use crate::service::{self, ServiceRecord};
use crate::weight::{self, WeightRecord};

/// An app with everything the router and the status view need of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    /// The app's name.
    pub name: String,
    /// The template version the app currently runs (during a release: the
    /// version the engine says it runs).
    pub template_version: u32,
    /// When the app was first deployed, unix milliseconds.
    pub created_at: i64,
    /// When the app last changed, unix milliseconds.
    pub updated_at: i64,
    /// Its services, in the order the engine gave them.
    pub services: Vec<ServiceRecord>,
    /// Its route weights, in the order the engine gave them. The order is
    /// kept because it is meaningful: on a route, services listed first sit
    /// at the bottom of the stickiness stack.
    pub weights: Vec<WeightRecord>,
}

/// Writes an app, replacing its services and weights.
///
/// The app row is updated in place rather than with `INSERT OR REPLACE`,
/// which would delete it first and so cascade to its templates, releases
/// and instances.
pub(crate) fn upsert(conn: &Connection, app: &AppRecord) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO apps (name, template_version, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO UPDATE SET
             template_version = excluded.template_version,
             created_at = excluded.created_at,
             updated_at = excluded.updated_at",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            app.name,
            app.template_version,
            app.created_at,
            app.updated_at
        ])
    })
    .map_err(sql("write app"))?;
    // Deleting the services cascades to their weights.
    conn.prepare_cached("DELETE FROM services WHERE app = ?1")
        .and_then(|mut stmt| stmt.execute([&app.name]))
        .map_err(sql("replace services"))?;
    service::insert_all(conn, &app.name, &app.services)?;
    weight::insert_all(conn, &app.name, &app.weights)
}

/// Deletes an app and, by cascade, everything but its events. Deleting an
/// app that does not exist is not an error: the outcome is the same.
pub(crate) fn delete(conn: &Connection, name: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM apps WHERE name = ?1")
        .and_then(|mut stmt| stmt.execute([name]))
        .map_err(sql("delete app"))?;
    Ok(())
}

/// Reads one app.
pub(crate) fn load(conn: &Connection, name: &str) -> Result<Option<AppRecord>, StoreError> {
    let row = conn
        .prepare_cached(
            "SELECT name, template_version, created_at, updated_at FROM apps WHERE name = ?1",
        )
        .and_then(|mut stmt| stmt.query_row([name], app_row).optional())
        .map_err(sql("read app"))?;
    row.map(|row| complete(conn, row)).transpose()
}

/// Reads every app, by name.
pub(crate) fn load_all(conn: &Connection) -> Result<Vec<AppRecord>, StoreError> {
    let rows = conn
        .prepare_cached(
            "SELECT name, template_version, created_at, updated_at FROM apps ORDER BY name",
        )
        .and_then(|mut stmt| stmt.query_map([], app_row)?.collect::<Result<Vec<_>, _>>())
        .map_err(sql("read apps"))?;
    rows.into_iter().map(|row| complete(conn, row)).collect()
}

/// The columns of an `apps` row.
type AppRow = (String, i64, i64, i64);

fn app_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AppRow> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

/// Adds an app row's services and weights.
fn complete(
    conn: &Connection,
    (name, version, created_at, updated_at): AppRow,
) -> Result<AppRecord, StoreError> {
    Ok(AppRecord {
        services: service::load(conn, &name)?,
        weights: weight::load(conn, &name)?,
        template_version: from_column(version, "apps.template_version")?,
        name,
        created_at,
        updated_at,
    })
}
