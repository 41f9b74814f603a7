//! The store: one SQLite database behind a mutex.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use rusqlite::{Connection, TransactionBehavior};

use crate::app::{self, AppRecord};
use crate::change::{Change, CommitResult};
use crate::error::{StoreError, sql};
use crate::event::{self, EventRecord};
use crate::instance::{self, InstanceRecord};
use crate::migrations::{self, MIGRATIONS};
use crate::release::{self, ReleaseRecord};
use crate::template::{self, TemplateRecord};

/// Events kept per app; older ones are deleted as new ones are written
/// (at a few events per release step, years of releases).
pub const EVENTS_KEPT: usize = 10_000;

/// How long a statement waits for a lock held by another connection (a
/// second process on the same file, or a WAL checkpoint) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The control plane's persistent state.
///
/// Every method is synchronous and quick (one short transaction); callers on
/// an async runtime can call them directly or through `spawn_blocking`. The
/// store is `Send + Sync`: one connection behind a mutex serialises access,
/// which is what the control plane's single writer needs, and keeps reads
/// consistent with the last commit.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Store {
    /// Opens (creating it and its directory if missing) the database at
    /// `path` and brings its schema up to date.
    ///
    /// The file uses write-ahead logging with `synchronous = FULL`: a commit
    /// returns only once its log record is on disk, so an acknowledged
    /// change survives `kill -9` and a power cut. (`NORMAL`, the usual
    /// choice with WAL, may lose the last commits on power loss.)
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NoWal {
                path: path.to_path_buf(),
                mode,
            });
        }
        Store::setup(conn, path)
    }

    /// Opens a fresh database in memory, gone when the store is dropped; for
    /// tests.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let path = Path::new(":memory:");
        let conn = Connection::open_in_memory().map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Store::setup(conn, path)
    }

    /// Settings every connection needs, then the migrations.
    fn setup(mut conn: Connection, path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        // Off by default in SQLite, and per connection: without it the
        // cascades and the weight → service reference would not hold.
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        migrations::migrate(&mut conn, path, MIGRATIONS)?;
        Ok(Store {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
        })
    }

    /// The database file (`:memory:` for an in-memory store).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a change in one transaction (an app's events beyond the
    /// newest [`EVENTS_KEPT`] are deleted with it): when this returns `Ok`, all of it
    /// is on disk; when it returns `Err`, none of it was written.
    pub fn commit(&self, change: &Change) -> Result<CommitResult, StoreError> {
        if change.is_empty() {
            return Ok(CommitResult::default());
        }
        let at = now_millis();
        let mut conn = self.conn.lock();
        // Immediate: take the write lock up front, so that a second process
        // on the file makes this wait (busy timeout) instead of failing
        // half-way through.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin a transaction"))?;
        for id in &change.deleted_instances {
            instance::delete(&tx, id)?;
        }
        for name in &change.deleted_apps {
            app::delete(&tx, name)?;
        }
        for a in &change.apps {
            app::upsert(&tx, a)?;
        }
        for t in &change.templates {
            template::insert(&tx, t)?;
        }
        let release_ids = change
            .releases
            .iter()
            .map(|r| release::upsert(&tx, r))
            .collect::<Result<Vec<_>, _>>()?;
        for i in &change.instances {
            instance::upsert(&tx, i)?;
        }
        let events = change
            .events
            .iter()
            .map(|e| event::insert(&tx, e, at))
            .collect::<Result<Vec<_>, _>>()?;
        // Events are kept per app up to EVENTS_KEPT: the newest stay.
        let mut pruned: Vec<&str> = Vec::new();
        for e in &change.events {
            if !pruned.contains(&e.app.as_str()) {
                event::prune(&tx, &e.app, EVENTS_KEPT)?;
                pruned.push(&e.app);
            }
        }
        // An early return above drops `tx`, which rolls everything back.
        tx.commit().map_err(sql("commit"))?;
        Ok(CommitResult {
            release_ids,
            events,
        })
    }

    /// Every app, by name.
    pub fn apps(&self) -> Result<Vec<AppRecord>, StoreError> {
        app::load_all(&self.conn.lock())
    }

    /// One app, if it exists.
    pub fn app(&self, name: &str) -> Result<Option<AppRecord>, StoreError> {
        app::load(&self.conn.lock(), name)
    }

    /// One version of an app's template, if stored.
    pub fn template(&self, app: &str, version: u32) -> Result<Option<TemplateRecord>, StoreError> {
        template::load(&self.conn.lock(), app, version)
    }

    /// Every stored version of an app's template, oldest first.
    pub fn templates(&self, app: &str) -> Result<Vec<TemplateRecord>, StoreError> {
        template::load_all(&self.conn.lock(), app)
    }

    /// One release, if it exists.
    pub fn release(&self, id: i64) -> Result<Option<ReleaseRecord>, StoreError> {
        release::load(&self.conn.lock(), id)
    }

    /// An app's releases, newest first.
    pub fn releases(&self, app: &str) -> Result<Vec<ReleaseRecord>, StoreError> {
        release::load_for_app(&self.conn.lock(), app, None)
    }

    /// An app's newest release, whatever its state (it may have ended), or
    /// `None` when the app was never released.
    pub fn current_release(&self, app: &str) -> Result<Option<ReleaseRecord>, StoreError> {
        let mut newest = release::load_for_app(&self.conn.lock(), app, Some(1))?;
        Ok(newest.pop())
    }

    /// One instance, if it exists.
    pub fn instance(&self, id: &str) -> Result<Option<InstanceRecord>, StoreError> {
        instance::load(&self.conn.lock(), id)
    }

    /// An app's instances, by service and ordinal.
    pub fn instances(&self, app: &str) -> Result<Vec<InstanceRecord>, StoreError> {
        instance::load_all(&self.conn.lock(), Some(app))
    }

    /// Every instance of every app, by app, service and ordinal: what a
    /// restarted server adopts.
    pub fn all_instances(&self) -> Result<Vec<InstanceRecord>, StoreError> {
        instance::load_all(&self.conn.lock(), None)
    }

    /// Up to `limit` events with an id above `after_id`, of one app (or of
    /// all with `None`), oldest first: `after_id = 0` starts at the
    /// beginning, and an SSE client catches up from the last id it saw.
    pub fn events(
        &self,
        app: Option<&str>,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        event::load(&self.conn.lock(), app, after_id, limit, false)
    }

    /// As [`Store::events`], but the newest `limit` of them (still oldest
    /// first): the recent history a console shows before it follows.
    pub fn latest_events(
        &self,
        app: Option<&str>,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        event::load(&self.conn.lock(), app, after_id, limit, true)
    }
}

/// The wall clock in unix milliseconds (0 if the clock is before 1970).
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{NewEvent, ServiceRecord, WeightRecord};

    fn weight(route_id: &str, service: &str, weight: u8) -> WeightRecord {
        WeightRecord {
            route_id: route_id.into(),
            service: service.into(),
            weight,
        }
    }

    fn service(name: &str, version: u32) -> ServiceRecord {
        ServiceRecord {
            name: name.into(),
            template_version: version,
            spec_hash: format!("sha256:{name}"),
            scale: 2,
            state: "running".into(),
        }
    }

    fn hello() -> AppRecord {
        AppRecord {
            name: "hello".into(),
            template_version: 2,
            created_at: 1_700_000_000_000,
            updated_at: 1_700_000_000_500,
            // Deliberately not in name order: the order must survive.
            services: vec![
                service("serviceB-v2", 2),
                service("serviceA-v1", 1),
                service("serviceB-v1", 1),
            ],
            weights: vec![
                weight("serviceb.localhost", "serviceB-v1", 100),
                weight("serviceb.localhost", "serviceB-v2", 0),
                weight("servicea.local", "serviceA-v1", 100),
            ],
        }
    }

    fn template(app: &str, version: u32) -> TemplateRecord {
        TemplateRecord {
            app: app.into(),
            version,
            source_name: "examples/hello/app.yaml".into(),
            text: format!("serviceA-v1:\n  command: turnout demo-app # v{version}\n"),
            created_at: 1_700_000_000_000 + i64::from(version),
            base_dir: version.is_multiple_of(2).then(|| "/srv/hello".into()),
        }
    }

    fn release(app: &str) -> ReleaseRecord {
        ReleaseRecord {
            id: 0,
            app: app.into(),
            strategy: "blue-green".into(),
            state: "deploying".into(),
            from_version: 1,
            to_version: 2,
            reason: None,
            saved_weights: vec![weight("serviceb.localhost", "serviceB-v1", 100)],
            created_at: 10,
            updated_at: 11,
            progress: None,
        }
    }

    fn instance(app: &str, id: &str, service: &str, ordinal: u32) -> InstanceRecord {
        InstanceRecord {
            id: id.into(),
            app: app.into(),
            service: service.into(),
            ordinal,
            pid: Some(4242 + ordinal),
            // Large, to show that start times above u32 survive.
            handle: Some(format!(
                "{}:{}",
                4242 + ordinal,
                i64::MAX as u64 / 2 + u64::from(ordinal)
            )),
            address: Some("127.0.0.1".into()),
            ports: BTreeMap::from([(80, 41234), (9000, 41235 + ordinal as u16)]),
            token: format!("tok-{id}"),
            spec_hash: format!("hash-{id}"),
            state: "ready".into(),
            restarts: 3,
            created_at: 20,
            updated_at: 21,
        }
    }

    fn event(app: &str, message: &str) -> NewEvent {
        NewEvent {
            app: app.into(),
            kind: "release-started".into(),
            message: message.into(),
            data: Some(serde_json::json!({ "release": 1, "weights": { "serviceB-v2": 0 } })),
        }
    }

    /// A store holding app `hello` with two templates, one release, two
    /// instances and an event.
    fn seeded() -> (Store, CommitResult) {
        let store = Store::open_in_memory().unwrap();
        let result = store
            .commit(&Change {
                templates: vec![template("hello", 1), template("hello", 2)],
                apps: vec![hello()],
                releases: vec![release("hello")],
                instances: vec![
                    instance("hello", "serviceB-v2.1", "serviceB-v2", 1),
                    instance("hello", "serviceA-v1.1", "serviceA-v1", 1),
                ],
                events: vec![event("hello", "release 1 started")],
                ..Change::default()
            })
            .unwrap();
        (store, result)
    }

    fn count(store: &Store, table: &str) -> i64 {
        store
            .conn
            .lock()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn a_file_store_is_durable_and_enforces_references() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("turnout.db")).unwrap();
        let conn = store.conn.lock();
        let pragma = |name: &str| -> String {
            conn.query_row(&format!("PRAGMA {name}"), [], |r| {
                r.get::<_, rusqlite::types::Value>(0)
            })
            .map(|v| match v {
                rusqlite::types::Value::Integer(i) => i.to_string(),
                rusqlite::types::Value::Text(t) => t,
                other => format!("{other:?}"),
            })
            .unwrap()
        };
        assert_eq!(pragma("journal_mode"), "wal");
        // 2 = FULL: the WAL is synced at every commit.
        assert_eq!(pragma("synchronous"), "2");
        assert_eq!(pragma("foreign_keys"), "1");
        assert_eq!(pragma("busy_timeout"), BUSY_TIMEOUT.as_millis().to_string());
        assert_eq!(pragma("user_version"), crate::SCHEMA_VERSION.to_string());
    }

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Store>();
    }

    #[test]
    fn every_record_round_trips() {
        let (store, result) = seeded();
        assert_eq!(store.apps().unwrap(), vec![hello()]);
        assert_eq!(store.app("hello").unwrap(), Some(hello()));
        assert_eq!(store.app("nope").unwrap(), None);
        assert_eq!(
            store.template("hello", 2).unwrap(),
            Some(template("hello", 2))
        );
        assert_eq!(store.template("hello", 3).unwrap(), None);
        assert_eq!(
            store.templates("hello").unwrap(),
            vec![template("hello", 1), template("hello", 2)]
        );

        let id = result.release_ids[0];
        assert!(id > 0);
        let stored = ReleaseRecord {
            id,
            ..release("hello")
        };
        assert_eq!(store.release(id).unwrap(), Some(stored.clone()));
        assert_eq!(store.current_release("hello").unwrap(), Some(stored));

        let b = instance("hello", "serviceB-v2.1", "serviceB-v2", 1);
        let a = instance("hello", "serviceA-v1.1", "serviceA-v1", 1);
        assert_eq!(store.instance("serviceB-v2.1").unwrap(), Some(b.clone()));
        // By service, whatever the order written.
        assert_eq!(
            store.instances("hello").unwrap(),
            vec![a.clone(), b.clone()]
        );
        assert_eq!(store.all_instances().unwrap(), vec![a, b]);

        let events = store.events(None, 0, 10).unwrap();
        assert_eq!(events, result.events);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event.message, "release 1 started");
        assert_eq!(events[0].event.data, event("hello", "").data);
        assert!(
            events[0].at >= 1_700_000_000_000,
            "stamped with the wall clock"
        );
    }

    #[test]
    fn empty_and_absent_values_round_trip() {
        let store = Store::open_in_memory().unwrap();
        let bare = AppRecord {
            services: vec![],
            weights: vec![],
            ..hello()
        };
        let fresh = InstanceRecord {
            pid: None,
            handle: None,
            address: None,
            ports: BTreeMap::new(),
            token: String::new(),
            ..instance("hello", "x.1", "x", 1)
        };
        let other = InstanceRecord {
            id: "x.2".into(),
            ..fresh.clone()
        };
        let ended = ReleaseRecord {
            reason: Some("failed: serviceB-v2 not ready within 60s".into()),
            saved_weights: vec![],
            state: "rolled-back".into(),
            ..release("hello")
        };
        let quiet = NewEvent {
            data: None,
            ..event("hello", "plain")
        };
        let result = store
            .commit(&Change {
                apps: vec![bare.clone()],
                releases: vec![ended.clone()],
                // Two instances without a token: only non-empty tokens must
                // be unique.
                instances: vec![fresh.clone(), other],
                events: vec![quiet],
                ..Change::default()
            })
            .unwrap();
        assert_eq!(store.app("hello").unwrap(), Some(bare));
        assert_eq!(store.instance("x.1").unwrap(), Some(fresh));
        let id = result.release_ids[0];
        assert_eq!(
            store.release(id).unwrap(),
            Some(ReleaseRecord { id, ..ended })
        );
        assert_eq!(store.events(None, 0, 10).unwrap()[0].event.data, None);
    }

    #[test]
    fn a_failing_part_rolls_back_the_whole_change() {
        let (store, _) = seeded();
        let before = (
            store.apps().unwrap(),
            store.templates("hello").unwrap(),
            store.releases("hello").unwrap(),
            store.all_instances().unwrap(),
            store.events(None, 0, 100).unwrap(),
        );
        let mut moved = hello();
        moved.template_version = 3;
        moved.weights[0].weight = 0;
        // The last weight breaks the CHECK; everything before it in the
        // change was already written inside the transaction.
        moved
            .weights
            .push(weight("servicea.local", "serviceB-v1", 101));
        let err = store
            .commit(&Change {
                deleted_instances: vec!["serviceA-v1.1".into()],
                apps: vec![
                    AppRecord {
                        name: "other".into(),
                        ..hello()
                    },
                    moved,
                ],
                templates: vec![template("hello", 3)],
                releases: vec![release("hello")],
                instances: vec![instance("hello", "serviceB-v2.2", "serviceB-v2", 2)],
                events: vec![event("hello", "never")],
                ..Change::default()
            })
            .unwrap_err();
        assert!(
            err.to_string().contains("cannot write route weights")
                && err.to_string().contains("CHECK"),
            "{err}"
        );
        let after = (
            store.apps().unwrap(),
            store.templates("hello").unwrap(),
            store.releases("hello").unwrap(),
            store.all_instances().unwrap(),
            store.events(None, 0, 100).unwrap(),
        );
        assert_eq!(before, after);
        assert_eq!(store.app("other").unwrap(), None);
    }

    #[test]
    fn a_failure_late_in_the_change_rolls_back_deletions_too() {
        let (store, _) = seeded();
        let err = store
            .commit(&Change {
                deleted_apps: vec!["hello".into()],
                // Its app is gone by now: the foreign key refuses it.
                events: vec![event("hello", "deleted")],
                instances: vec![instance("hello", "serviceB-v2.9", "serviceB-v2", 9)],
                ..Change::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("cannot write instance"), "{err}");
        assert_eq!(store.app("hello").unwrap(), Some(hello()));
        assert_eq!(store.instances("hello").unwrap().len(), 2);
        assert!(
            store
                .events(None, 0, 100)
                .unwrap()
                .iter()
                .all(|e| e.event.message != "deleted")
        );
    }

    #[test]
    fn deleting_an_app_cascades_but_keeps_its_events() {
        let (store, _) = seeded();
        let other = AppRecord {
            name: "other".into(),
            ..hello()
        };
        store
            .commit(&Change {
                apps: vec![other.clone()],
                releases: vec![release("other")],
                instances: vec![instance("other", "web.1", "serviceB-v1", 1)],
                ..Change::default()
            })
            .unwrap();
        let result = store
            .commit(&Change {
                deleted_apps: vec!["hello".into(), "never-existed".into()],
                events: vec![event("hello", "app hello deleted")],
                ..Change::default()
            })
            .unwrap();
        assert_eq!(store.app("hello").unwrap(), None);
        assert_eq!(store.templates("hello").unwrap(), vec![]);
        assert_eq!(store.releases("hello").unwrap(), vec![]);
        assert_eq!(store.current_release("hello").unwrap(), None);
        assert_eq!(store.instances("hello").unwrap(), vec![]);
        // Only the other app's rows are left in every table.
        assert_eq!(count(&store, "services"), other.services.len() as i64);
        assert_eq!(count(&store, "route_weights"), other.weights.len() as i64);
        assert_eq!(count(&store, "templates"), 0);
        assert_eq!(count(&store, "releases"), 1);
        assert_eq!(count(&store, "instances"), 1);
        assert_eq!(store.apps().unwrap(), vec![other]);
        let events = store.events(Some("hello"), 0, 100).unwrap();
        assert_eq!(events.len(), 2, "history is kept: {events:?}");
        assert_eq!(events.last(), result.events.last());
    }

    #[test]
    fn an_app_upsert_replaces_services_and_weights_only() {
        let (store, _) = seeded();
        let mut next = hello();
        next.template_version = 3;
        next.services.retain(|s| s.name != "serviceB-v1");
        next.weights = vec![
            weight("servicea.local", "serviceA-v1", 100),
            weight("serviceb.localhost", "serviceB-v2", 100),
        ];
        store
            .commit(&Change {
                apps: vec![next.clone()],
                ..Change::default()
            })
            .unwrap();
        assert_eq!(store.app("hello").unwrap(), Some(next));
        // Upserting in place (not delete + insert) keeps the app's children.
        assert_eq!(store.templates("hello").unwrap().len(), 2);
        assert_eq!(store.releases("hello").unwrap().len(), 1);
        assert_eq!(store.instances("hello").unwrap().len(), 2);
    }

    #[test]
    fn a_weight_needs_a_service_of_its_app() {
        let store = Store::open_in_memory().unwrap();
        let mut app = hello();
        app.weights
            .push(weight("serviceb.localhost", "serviceC-v1", 5));
        let err = store
            .commit(&Change {
                apps: vec![app],
                ..Change::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
        assert_eq!(store.apps().unwrap(), vec![]);
    }

    #[test]
    fn releases_are_updated_by_id_and_listed_newest_first() {
        let (store, first) = seeded();
        let first_id = first.release_ids[0];
        let confirmed = ReleaseRecord {
            id: first_id,
            state: "confirmed".into(),
            updated_at: 99,
            progress: None,
            ..release("hello")
        };
        let result = store
            .commit(&Change {
                releases: vec![
                    confirmed.clone(),
                    ReleaseRecord {
                        to_version: 3,
                        ..release("hello")
                    },
                ],
                ..Change::default()
            })
            .unwrap();
        assert_eq!(result.release_ids[0], first_id);
        let second_id = result.release_ids[1];
        assert!(second_id > first_id);
        let ids: Vec<i64> = store
            .releases("hello")
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, vec![second_id, first_id]);
        assert_eq!(store.release(first_id).unwrap(), Some(confirmed));
        assert_eq!(
            store.current_release("hello").unwrap().unwrap().to_version,
            3
        );
    }

    #[test]
    fn release_ids_are_not_reused_after_a_delete() {
        let (store, first) = seeded();
        store
            .commit(&Change {
                deleted_apps: vec!["hello".into()],
                ..Change::default()
            })
            .unwrap();
        let again = store
            .commit(&Change {
                apps: vec![hello()],
                releases: vec![release("hello")],
                ..Change::default()
            })
            .unwrap();
        assert!(again.release_ids[0] > first.release_ids[0]);
    }

    #[test]
    fn a_row_of_one_app_is_not_taken_over_by_another() {
        let (store, first) = seeded();
        store
            .commit(&Change {
                apps: vec![AppRecord {
                    name: "other".into(),
                    ..hello()
                }],
                ..Change::default()
            })
            .unwrap();
        let err = store
            .commit(&Change {
                instances: vec![instance("other", "serviceB-v2.1", "serviceB-v2", 1)],
                ..Change::default()
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "instance serviceB-v2.1 belongs to another app than other"
        );
        let err = store
            .commit(&Change {
                releases: vec![ReleaseRecord {
                    id: first.release_ids[0],
                    ..release("other")
                }],
                ..Change::default()
            })
            .unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::OtherApp {
                    what: "release",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            store.instance("serviceB-v2.1").unwrap().unwrap().app,
            "hello"
        );
        assert_eq!(
            store.release(first.release_ids[0]).unwrap().unwrap().app,
            "hello"
        );
    }

    #[test]
    fn instances_are_replaced_and_deleted_by_id() {
        let (store, _) = seeded();
        let restarted = InstanceRecord {
            pid: Some(777),
            handle: Some("777:123".into()),
            address: Some("127.0.0.1".into()),
            restarts: 4,
            state: "starting".into(),
            ..instance("hello", "serviceB-v2.1", "serviceB-v2", 1)
        };
        store
            .commit(&Change {
                instances: vec![restarted.clone()],
                deleted_instances: vec!["serviceA-v1.1".into(), "not-there.1".into()],
                ..Change::default()
            })
            .unwrap();
        assert_eq!(store.all_instances().unwrap(), vec![restarted]);
    }

    #[test]
    fn a_token_names_one_instance() {
        let (store, _) = seeded();
        let copy = InstanceRecord {
            token: "tok-serviceB-v2.1".into(),
            spec_hash: "h2".into(),
            ..instance("hello", "serviceB-v2.2", "serviceB-v2", 2)
        };
        let err = store
            .commit(&Change {
                instances: vec![copy],
                ..Change::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("UNIQUE"), "{err}");
        assert_eq!(store.instance("serviceB-v2.2").unwrap(), None);
    }

    #[test]
    fn templates_are_immutable() {
        let (store, _) = seeded();
        // The same text again is harmless (a retried request).
        store
            .commit(&Change {
                templates: vec![template("hello", 2)],
                ..Change::default()
            })
            .unwrap();
        let err = store
            .commit(&Change {
                templates: vec![TemplateRecord {
                    text: "changed".into(),
                    ..template("hello", 2)
                }],
                ..Change::default()
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "template version 2 of app hello is already stored with a different text"
        );
        assert_eq!(
            store.template("hello", 2).unwrap(),
            Some(template("hello", 2))
        );
    }

    #[test]
    fn a_template_needs_its_app() {
        let store = Store::open_in_memory().unwrap();
        let err = store
            .commit(&Change {
                templates: vec![template("ghost", 1)],
                ..Change::default()
            })
            .unwrap_err();
        assert!(err.to_string().contains("FOREIGN KEY"), "{err}");
    }

    #[test]
    fn an_app_can_be_deleted_and_deployed_afresh_in_one_change() {
        let (store, _) = seeded();
        let fresh = AppRecord {
            template_version: 1,
            ..hello()
        };
        store
            .commit(&Change {
                deleted_apps: vec!["hello".into()],
                apps: vec![fresh.clone()],
                templates: vec![TemplateRecord {
                    text: "new history".into(),
                    ..template("hello", 1)
                }],
                ..Change::default()
            })
            .unwrap();
        assert_eq!(store.app("hello").unwrap(), Some(fresh));
        assert_eq!(store.templates("hello").unwrap()[0].text, "new history");
        assert_eq!(store.releases("hello").unwrap(), vec![]);
    }

    #[test]
    fn events_page_by_id_and_filter_by_app() {
        let store = Store::open_in_memory().unwrap();
        for n in 0..5 {
            let app = if n % 2 == 0 { "a" } else { "b" };
            store
                .commit(&Change {
                    events: vec![event(app, &format!("e{n}"))],
                    ..Change::default()
                })
                .unwrap();
        }
        let all = store.events(None, 0, 100).unwrap();
        let messages = |events: &[EventRecord]| {
            events
                .iter()
                .map(|e| e.event.message.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(messages(&all), ["e0", "e1", "e2", "e3", "e4"]);
        assert!(all.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(
            messages(&store.events(None, all[1].id, 2).unwrap()),
            ["e2", "e3"]
        );
        assert_eq!(
            messages(&store.events(Some("a"), 0, 100).unwrap()),
            ["e0", "e2", "e4"]
        );
        assert_eq!(
            messages(&store.events(Some("a"), all[2].id, 100).unwrap()),
            ["e4"]
        );
        assert_eq!(store.events(None, all[4].id, 100).unwrap(), vec![]);
        assert_eq!(store.events(None, 0, 0).unwrap(), vec![]);
        // The newest of them, still oldest first.
        assert_eq!(
            messages(&store.latest_events(None, 0, 2).unwrap()),
            ["e3", "e4"]
        );
        assert_eq!(
            messages(&store.latest_events(Some("a"), 0, 2).unwrap()),
            ["e2", "e4"]
        );
        assert_eq!(
            messages(&store.latest_events(Some("b"), all[1].id, 100).unwrap()),
            ["e3"]
        );
        assert_eq!(store.latest_events(None, 0, 0).unwrap(), vec![]);
    }

    #[test]
    fn an_empty_change_commits_nothing() {
        let store = Store::open_in_memory().unwrap();
        assert!(Change::default().is_empty());
        assert_eq!(
            store.commit(&Change::default()).unwrap(),
            CommitResult::default()
        );
        assert!(
            !Change {
                deleted_apps: vec!["x".into()],
                ..Change::default()
            }
            .is_empty()
        );
    }

    #[test]
    fn a_corrupt_row_is_an_error_not_a_wrapped_number() {
        let (store, _) = seeded();
        store
            .conn
            .lock()
            .execute(
                "UPDATE instances SET pid = 99999999999 WHERE id = 'serviceB-v2.1'",
                [],
            )
            .unwrap();
        let err = store.instance("serviceB-v2.1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "instances.pid value 99999999999 is out of range"
        );
    }
}
