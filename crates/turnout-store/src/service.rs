//! Services: the units of an app, each with its spec identity and scale.

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::convert::from_column;
use crate::error::{StoreError, sql};

/// One service of an app as the control plane last accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// The service's name, unique in its app (`serviceB-v2`).
    pub name: String,
    /// The template version the service's spec comes from.
    pub template_version: u32,
    /// The service identity hash (turnout-spec's `spec_hash`).
    pub spec_hash: String,
    /// How many instances it should run.
    pub scale: u32,
    /// Its state, as the engine spells it.
    pub state: String,
}

/// Writes an app's services in the given order, after its old ones are gone.
pub(crate) fn insert_all(
    conn: &Connection,
    app: &str,
    services: &[ServiceRecord],
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO services (app, name, position, template_version, spec_hash, scale, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(sql("write services"))?;
    for (position, s) in services.iter().enumerate() {
        stmt.execute(params![
            app,
            s.name,
            position as i64,
            s.template_version,
            s.spec_hash,
            s.scale,
            s.state
        ])
        .map_err(sql("write services"))?;
    }
    Ok(())
}

/// Reads an app's services in the order they were written.
pub(crate) fn load(conn: &Connection, app: &str) -> Result<Vec<ServiceRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT name, template_version, spec_hash, scale, state FROM services
             WHERE app = ?1 ORDER BY position",
        )
        .map_err(sql("read services"))?;
    let rows = stmt
        .query_map([app], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, String>(4)?,
            ))
        })
        .map_err(sql("read services"))?;
    rows.map(|row| {
        let (name, template_version, spec_hash, scale, state) =
            row.map_err(sql("read services"))?;
        Ok(ServiceRecord {
            name,
            template_version: from_column(template_version, "services.template_version")?,
            spec_hash,
            scale: from_column(scale, "services.scale")?,
            state,
        })
    })
    .collect()
}
