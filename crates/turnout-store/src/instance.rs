//! Instances: the running copies of services, with what it takes to adopt
//! them after a server restart.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::convert::{from_column, from_json, to_json};
use crate::error::{StoreError, sql};

/// One instance of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// Its id, unique across every app (for example `serviceB-v2.1`).
    pub id: String,
    /// The app it belongs to.
    pub app: String,
    /// The service it runs.
    pub service: String,
    /// Its number within the service, from 1.
    pub ordinal: u32,
    /// The runtime's handle of the started instance (opaque: a pid and
    /// start time, a container id), by which a restarted server finds it.
    pub handle: Option<String>,
    /// The id of its main process on this machine, when the runtime has
    /// one: shown to operators only.
    pub pid: Option<u32>,
    /// The address its ports are reached at, as the runtime said when it
    /// started (a container's address on its network); `None` for an
    /// instance not started yet, and for records from before it was kept
    /// (processes, at 127.0.0.1).
    pub address: Option<String>,
    /// Container port → host port.
    pub ports: BTreeMap<u16, u16>,
    /// The instance's proxy credential; unique among non-empty tokens.
    pub token: String,
    /// The spec (`turnout_spec::spec_hash`) the instance was started from.
    pub spec_hash: String,
    /// Its state (`starting`, `ready`, ...), as the engine spells it.
    pub state: String,
    /// How many times it was restarted.
    pub restarts: u32,
    /// When it was created, unix milliseconds.
    pub created_at: i64,
    /// When it last changed, unix milliseconds.
    pub updated_at: i64,
}

/// Inserts an instance or writes over the one with its id. An instance never
/// moves to another app.
pub(crate) fn upsert(conn: &Connection, i: &InstanceRecord) -> Result<(), StoreError> {
    let ports = to_json(&i.ports, "instances.ports")?;
    let written = conn
        .prepare_cached(
            "INSERT INTO instances (id, app, service, ordinal, pid, handle, ports, token,
                                    state, restarts, created_at, updated_at, spec_hash,
                                    address)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (id) DO UPDATE SET
                 service = excluded.service,
                 ordinal = excluded.ordinal,
                 pid = excluded.pid,
                 handle = excluded.handle,
                 address = excluded.address,
                 ports = excluded.ports,
                 token = excluded.token,
                 state = excluded.state,
                 restarts = excluded.restarts,
                 created_at = excluded.created_at,
                 updated_at = excluded.updated_at,
                 spec_hash = excluded.spec_hash
             WHERE instances.app = excluded.app",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                i.id,
                i.app,
                i.service,
                i.ordinal,
                i.pid,
                i.handle,
                ports,
                i.token,
                i.state,
                i.restarts,
                i.created_at,
                i.updated_at,
                i.spec_hash,
                i.address
            ])
        })
        .map_err(sql("write instance"))?;
    if written == 0 {
        return Err(StoreError::OtherApp {
            what: "instance",
            id: i.id.clone(),
            app: i.app.clone(),
        });
    }
    Ok(())
}

/// Deletes an instance; deleting one that is not there is not an error.
pub(crate) fn delete(conn: &Connection, id: &str) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM instances WHERE id = ?1")
        .and_then(|mut stmt| stmt.execute([id]))
        .map_err(sql("delete instance"))?;
    Ok(())
}

const COLUMNS: &str = "id, app, service, ordinal, pid, handle, ports, token, state, restarts, \
                       created_at, updated_at, spec_hash, address";

/// Reads one instance.
pub(crate) fn load(conn: &Connection, id: &str) -> Result<Option<InstanceRecord>, StoreError> {
    let row = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM instances WHERE id = ?1"))
        .and_then(|mut stmt| stmt.query_row([id], instance_row).optional())
        .map_err(sql("read instance"))?;
    row.map(record).transpose()
}

/// Reads the instances of one app, or of every app, by app, service and
/// ordinal.
pub(crate) fn load_all(
    conn: &Connection,
    app: Option<&str>,
) -> Result<Vec<InstanceRecord>, StoreError> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM instances WHERE ?1 IS NULL OR app = ?1
             ORDER BY app, service, ordinal, id"
        ))
        .and_then(|mut stmt| {
            stmt.query_map([app], instance_row)?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(sql("read instances"))?;
    rows.into_iter().map(record).collect()
}

/// The columns of an `instances` row.
struct InstanceRow {
    id: String,
    app: String,
    service: String,
    ordinal: i64,
    pid: Option<i64>,
    handle: Option<String>,
    ports: String,
    token: String,
    state: String,
    restarts: i64,
    created_at: i64,
    updated_at: i64,
    spec_hash: String,
    address: Option<String>,
}

fn instance_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<InstanceRow> {
    Ok(InstanceRow {
        id: row.get(0)?,
        app: row.get(1)?,
        service: row.get(2)?,
        ordinal: row.get(3)?,
        pid: row.get(4)?,
        handle: row.get(5)?,
        ports: row.get(6)?,
        token: row.get(7)?,
        state: row.get(8)?,
        restarts: row.get(9)?,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
        spec_hash: row.get(12)?,
        address: row.get(13)?,
    })
}

fn record(row: InstanceRow) -> Result<InstanceRecord, StoreError> {
    Ok(InstanceRecord {
        id: row.id,
        app: row.app,
        service: row.service,
        ordinal: from_column(row.ordinal, "instances.ordinal")?,
        pid: row
            .pid
            .map(|p| from_column(p, "instances.pid"))
            .transpose()?,
        handle: row.handle,
        address: row.address,
        ports: from_json(&row.ports, "instances.ports")?,
        token: row.token,
        spec_hash: row.spec_hash,
        state: row.state,
        restarts: from_column(row.restarts, "instances.restarts")?,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}
