//! Route weights: each service's share on a route.

use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

use crate::convert::from_column;
use crate::error::{StoreError, sql};

/// One service's weight on one route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightRecord {
    /// The canonical route id, for example `serviceb.localhost`.
    pub route_id: String,
    /// The service's name.
    pub service: String,
    /// Its weight, 0..=100; the table refuses anything above 100.
    pub weight: u8,
}

/// Writes an app's weights in the given order, after its old ones are gone.
pub(crate) fn insert_all(
    conn: &Connection,
    app: &str,
    weights: &[WeightRecord],
) -> Result<(), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO route_weights (app, route_id, service, position, weight)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(sql("write route weights"))?;
    for (position, w) in weights.iter().enumerate() {
        stmt.execute(params![
            app,
            w.route_id,
            w.service,
            position as i64,
            w.weight
        ])
        .map_err(sql("write route weights"))?;
    }
    Ok(())
}

/// Reads an app's weights in the order they were written.
pub(crate) fn load(conn: &Connection, app: &str) -> Result<Vec<WeightRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT route_id, service, weight FROM route_weights
             WHERE app = ?1 ORDER BY position",
        )
        .map_err(sql("read route weights"))?;
    let rows = stmt
        .query_map([app], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })
        .map_err(sql("read route weights"))?;
    rows.map(|row| {
        let (route_id, service, weight) = row.map_err(sql("read route weights"))?;
        Ok(WeightRecord {
            route_id,
            service,
            weight: from_column(weight, "route_weights.weight")?,
        })
    })
    .collect()
}
