//! Schema migrations, keyed on `PRAGMA user_version`.
//!
//! `MIGRATIONS[i]` moves the schema from version `i` to `i + 1`. The list
//! only grows: a released migration is never edited, because files in the
//! field have already run it. Later issues append to it.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::error::StoreError;

/// Version 1: every table of the control plane.
///
/// Tables are `STRICT` so that a wrongly typed value is refused instead of
/// stored as whatever SQLite can make of it. The `CREATE` statements carry no
/// `IF NOT EXISTS`: running a migration twice is a bug that should fail
/// loudly, not pass unnoticed.
///
/// Foreign keys cascade from `apps`, so deleting an app removes its
/// templates, services, weights, releases and instances in the same
/// statement. `route_weights` hangs off `services` instead, which both
/// cascades from the app and refuses a weight for a service the app does
/// not have. `instances` deliberately do not reference `services`: an app
/// upsert replaces its service rows, and that must not delete the
/// instances running them. `events` have no foreign key at all: they are
/// the audit log, kept after the app is deleted (and the event that says
/// so is committed in the same change as the deletion).
const V1: &str = r#"
CREATE TABLE apps (
    name             TEXT    NOT NULL PRIMARY KEY,
    template_version INTEGER NOT NULL CHECK (template_version >= 0),
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT;

CREATE TABLE templates (
    app         TEXT    NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
    version     INTEGER NOT NULL CHECK (version >= 0),
    source_name TEXT    NOT NULL,
    text        TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (app, version)
) STRICT;

CREATE TABLE services (
    app              TEXT    NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
    name             TEXT    NOT NULL,
    position         INTEGER NOT NULL,
    template_version INTEGER NOT NULL CHECK (template_version >= 0),
    spec_hash        TEXT    NOT NULL,
    scale            INTEGER NOT NULL CHECK (scale >= 0),
    state            TEXT    NOT NULL,
    PRIMARY KEY (app, name)
) STRICT;

CREATE TABLE route_weights (
    app      TEXT    NOT NULL,
    route_id TEXT    NOT NULL,
    service  TEXT    NOT NULL,
    position INTEGER NOT NULL,
    weight   INTEGER NOT NULL CHECK (weight BETWEEN 0 AND 100),
    PRIMARY KEY (app, route_id, service),
    FOREIGN KEY (app, service) REFERENCES services (app, name) ON DELETE CASCADE
) STRICT;
-- A cascade from services looks rows up by (app, service).
CREATE INDEX route_weights_service ON route_weights (app, service);

CREATE TABLE releases (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    app           TEXT    NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
    strategy      TEXT    NOT NULL,
    state         TEXT    NOT NULL,
    from_version  INTEGER NOT NULL CHECK (from_version >= 0),
    to_version    INTEGER NOT NULL CHECK (to_version >= 0),
    reason        TEXT,
    saved_weights TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX releases_app ON releases (app, id);

CREATE TABLE instances (
    id         TEXT    NOT NULL PRIMARY KEY,
    app        TEXT    NOT NULL REFERENCES apps (name) ON DELETE CASCADE,
    service    TEXT    NOT NULL,
    ordinal    INTEGER NOT NULL CHECK (ordinal >= 0),
    pid        INTEGER CHECK (pid > 0),
    start_time INTEGER CHECK (start_time >= 0),
    ports      TEXT    NOT NULL,
    token      TEXT    NOT NULL,
    state      TEXT    NOT NULL,
    restarts   INTEGER NOT NULL CHECK (restarts >= 0),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;
CREATE INDEX instances_app ON instances (app, service, ordinal);
-- A proxy credential names exactly one calling instance.
CREATE UNIQUE INDEX instances_token ON instances (token) WHERE token <> '';

CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    app     TEXT    NOT NULL,
    at      INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    message TEXT    NOT NULL,
    data    TEXT
) STRICT;
CREATE INDEX events_app ON events (app, id);
"#;

/// Every migration, in order; schema version `n` is reached by running the
/// first `n`.
/// Version 2: the spec an instance was started from, so that a restarted
/// server tells the old generation of a standard release from the new.
const V2: &str = "ALTER TABLE instances ADD COLUMN spec_hash TEXT NOT NULL DEFAULT '';";

/// Version 3: the runtime's opaque handle of an instance in place of a
/// pid and start time (a container has neither), and the address the
/// runtime gave it. Instances of the process runtime keep theirs: its
/// handle is `<pid>:<start time>`. The pid stays, for display.
const V3: &str = "
ALTER TABLE instances ADD COLUMN handle TEXT;
ALTER TABLE instances ADD COLUMN address TEXT;
UPDATE instances SET handle = pid || ':' || start_time
    WHERE pid IS NOT NULL AND start_time IS NOT NULL;
ALTER TABLE instances DROP COLUMN start_time;
";

/// Version 4: a template's folder (DESIGN §6: `base_dir`, against which
/// build contexts and bind mounts resolve), which the template's text
/// does not hold, so that a restarted server reads a stored template back
/// as it was deployed.
const V4: &str = "ALTER TABLE templates ADD COLUMN base_dir TEXT;";

/// Version 5: a progressive release's plan and step (DESIGN §8), so that
/// a restarted server goes on with the release where it stood.
const V5: &str = "ALTER TABLE releases ADD COLUMN progress TEXT;";

pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

/// The schema version this build writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the database up to the newest schema and returns how many
/// migrations ran.
///
/// All pending migrations run in one immediate transaction, and the version
/// is read again inside it: two processes opening a fresh file at once
/// cannot both migrate it, and a failure leaves the file as it was.
pub(crate) fn migrate(
    conn: &mut Connection,
    path: &Path,
    migrations: &[&str],
) -> Result<usize, StoreError> {
    let supported = migrations.len() as u32;
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    let found: u32 = tx
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    if found > supported {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported,
        });
    }
    for (index, sql) in migrations.iter().enumerate().skip(found as usize) {
        let version = index as u32 + 1;
        tx.execute_batch(sql)
            .and_then(|()| tx.pragma_update(None, "user_version", version))
            .map_err(|source| StoreError::Migration { version, source })?;
    }
    tx.commit().map_err(|source| StoreError::Migration {
        version: supported,
        source,
    })?;
    Ok((supported - found) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> u32 {
        conn.query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn runs_each_migration_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        let path = Path::new(":memory:");
        assert_eq!(
            migrate(&mut conn, path, MIGRATIONS).unwrap(),
            MIGRATIONS.len()
        );
        assert_eq!(version(&conn), SCHEMA_VERSION);
        // A second run finds nothing to do; had it re-run V1, its plain
        // CREATE TABLE would have failed.
        assert_eq!(migrate(&mut conn, path, MIGRATIONS).unwrap(), 0);
        assert_eq!(version(&conn), SCHEMA_VERSION);
    }

    #[test]
    fn appended_migrations_run_from_the_stored_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        let path = Path::new(":memory:");
        migrate(&mut conn, path, MIGRATIONS).unwrap();
        let mut later = MIGRATIONS.to_vec();
        later.push("ALTER TABLE apps ADD COLUMN note TEXT");
        assert_eq!(migrate(&mut conn, path, &later).unwrap(), 1);
        assert_eq!(version(&conn), SCHEMA_VERSION + 1);
        conn.execute("UPDATE apps SET note = 'x'", []).unwrap();
    }

    #[test]
    fn v3_keeps_a_process_instance_findable_by_its_handle() {
        let mut conn = Connection::open_in_memory().unwrap();
        let path = Path::new(":memory:");
        migrate(&mut conn, path, &MIGRATIONS[..2]).unwrap();
        conn.execute_batch(
            "INSERT INTO apps VALUES ('hello', 1, 0, 0);
             INSERT INTO instances (id, app, service, ordinal, pid, start_time, ports, token,
                                    state, restarts, created_at, updated_at)
             VALUES ('hello/a.1', 'hello', 'a', 1, 4242, 987654, '{}', 't1', 'ready', 0, 0, 0),
                    ('hello/a.2', 'hello', 'a', 2, NULL, NULL, '{}', 't2', 'starting', 0, 0, 0);",
        )
        .unwrap();
        assert_eq!(migrate(&mut conn, path, &MIGRATIONS[..3]).unwrap(), 1);
        let rows: Vec<(String, Option<i64>, Option<String>)> = conn
            .prepare("SELECT id, pid, handle FROM instances ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                ("hello/a.1".into(), Some(4242), Some("4242:987654".into())),
                ("hello/a.2".into(), None, None),
            ]
        );
        let columns: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('instances') WHERE name = 'start_time'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(columns, 0, "the pid's start time lives in the handle now");
    }

    #[test]
    fn a_failing_migration_leaves_the_file_as_it_was() {
        let mut conn = Connection::open_in_memory().unwrap();
        let path = Path::new(":memory:");
        let broken = [V1, "CREATE TABLE oops (a INTEGER", "SELECT 1"];
        let err = migrate(&mut conn, path, &broken).unwrap_err();
        assert!(
            matches!(err, StoreError::Migration { version: 2, .. }),
            "{err:?}"
        );
        assert_eq!(version(&conn), 0);
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0, "V1 was rolled back with the failing migration");
    }

    #[test]
    fn a_newer_schema_is_refused_naming_both_versions() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 3)
            .unwrap();
        let err = migrate(&mut conn, Path::new("/data/turnout.db"), MIGRATIONS).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!("schema version {}", SCHEMA_VERSION + 3))
                && text.contains(&format!("version {SCHEMA_VERSION} that this turnout knows"))
                && text.contains("/data/turnout.db"),
            "{text}"
        );
    }
}
