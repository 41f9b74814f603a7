//! The store on a real SQLite file in a temporary directory: what survives a
//! close and reopen, and how the file is set up.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;
use turnout_store::{
    AppRecord, Change, InstanceRecord, NewEvent, ReleaseRecord, SCHEMA_VERSION, ServiceRecord,
    Store, StoreError, TemplateRecord, WeightRecord,
};

fn app(name: &str) -> AppRecord {
    AppRecord {
        name: name.into(),
        template_version: 2,
        created_at: 1_700_000_000_000,
        updated_at: 1_700_000_001_000,
        services: vec![
            ServiceRecord {
                name: "serviceB-v1".into(),
                template_version: 1,
                spec_hash: "sha256:b1".into(),
                scale: 1,
                state: "running".into(),
            },
            ServiceRecord {
                name: "serviceB-v2".into(),
                template_version: 2,
                spec_hash: "sha256:b2".into(),
                scale: 2,
                state: "running".into(),
            },
        ],
        weights: vec![
            WeightRecord {
                route_id: "serviceb.localhost".into(),
                service: "serviceB-v1".into(),
                weight: 100,
            },
            WeightRecord {
                route_id: "serviceb.localhost".into(),
                service: "serviceB-v2".into(),
                weight: 0,
            },
        ],
    }
}

fn everything(name: &str) -> Change {
    Change {
        templates: vec![TemplateRecord {
            app: name.into(),
            version: 2,
            source_name: "examples/hello/app-frontend-v2.yaml".into(),
            text: "serviceB-v2:\n  command: turnout demo-app --text 'Welcome to the '\n".into(),
            created_at: 5,
            base_dir: Some("/srv/hello".into()),
        }],
        apps: vec![app(name)],
        releases: vec![ReleaseRecord {
            id: 0,
            app: name.into(),
            strategy: "blue-green".into(),
            state: "pending-confirmation".into(),
            from_version: 1,
            to_version: 2,
            reason: None,
            saved_weights: vec![WeightRecord {
                route_id: "serviceb.localhost".into(),
                service: "serviceB-v1".into(),
                weight: 100,
            }],
            created_at: 6,
            updated_at: 7,
            progress: None,
        }],
        instances: vec![InstanceRecord {
            id: format!("{name}-serviceB-v2.1"),
            app: name.into(),
            service: "serviceB-v2".into(),
            ordinal: 1,
            pid: Some(31337),
            handle: Some("31337:987654321".into()),
            address: Some("127.0.0.1".into()),
            ports: BTreeMap::from([(8080, 41234)]),
            token: format!("tok-{name}"),
            spec_hash: "abc123".into(),
            state: "ready".into(),
            restarts: 1,
            created_at: 8,
            updated_at: 9,
        }],
        events: vec![NewEvent {
            app: name.into(),
            kind: "release-ready".into(),
            message: "release 1 is pending confirmation".into(),
            data: Some(serde_json::json!({ "release": 1 })),
        }],
        ..Change::default()
    }
}

fn user_version(path: &Path) -> u32 {
    Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn open_creates_the_directory_and_a_wal_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a").join("b").join("turnout.db");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.path(), path);
    store.commit(&everything("hello")).unwrap();
    assert!(path.is_file());
    // WAL is a property of the file: another connection sees it, and the
    // log sits beside the database while the store is open.
    let mode: String = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert!(dir.path().join("a/b/turnout.db-wal").exists());
    assert_eq!(user_version(&path), SCHEMA_VERSION);
}

#[test]
fn a_reopened_store_has_every_committed_change() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("turnout.db");
    let change = everything("hello");
    let (result, second) = {
        let store = Store::open(&path).unwrap();
        let result = store.commit(&change).unwrap();
        let second = store.commit(&everything("shop")).unwrap();
        (result, second)
    };
    let store = Store::open(&path).unwrap();
    assert_eq!(store.apps().unwrap(), vec![app("hello"), app("shop")]);
    assert_eq!(store.templates("hello").unwrap(), change.templates);
    let id = result.release_ids[0];
    assert_eq!(
        store.current_release("hello").unwrap(),
        Some(ReleaseRecord {
            id,
            ..change.releases[0].clone()
        })
    );
    assert_eq!(store.instances("hello").unwrap(), change.instances);
    assert_eq!(store.all_instances().unwrap().len(), 2);
    let events = store.events(None, 0, 10).unwrap();
    assert_eq!(events, [result.events, second.events].concat());
    // New ids continue after the reopen rather than starting over.
    let third = store.commit(&everything("third")).unwrap();
    assert!(third.release_ids[0] > second.release_ids[0]);
    assert!(third.events[0].id > events.last().unwrap().id);
}

#[test]
fn reopening_does_not_run_the_migrations_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("turnout.db");
    Store::open(&path)
        .unwrap()
        .commit(&everything("hello"))
        .unwrap();
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    // Migration 1's plain CREATE TABLE would fail on a second run, and a
    // migration that recreated tables would lose the app.
    let store = Store::open(&path).unwrap();
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    assert_eq!(store.app("hello").unwrap(), Some(app("hello")));
}

#[test]
fn a_file_from_a_newer_turnout_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("turnout.db");
    Store::open(&path)
        .unwrap()
        .commit(&everything("hello"))
        .unwrap();
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found, supported, .. }
            if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "store {} has schema version {}, newer than version {} that this turnout knows: \
             run the newer turnout, or move the data dir away to start afresh",
            path.display(),
            SCHEMA_VERSION + 1,
            SCHEMA_VERSION
        )
    );
    assert_eq!(user_version(&path), SCHEMA_VERSION + 1);
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("turnout.db");
    std::fs::write(
        &path,
        "this is not SQLite, it is a text file long enough to be read",
    )
    .unwrap();
    let err = Store::open(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("cannot open store {}", path.display()))
            && err.contains("not a database"),
        "{err}"
    );
}

#[test]
fn a_directory_that_cannot_be_created_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "").unwrap();
    let err = Store::open(&blocker.join("sub").join("turnout.db")).unwrap_err();
    assert!(
        err.to_string().starts_with(&format!(
            "cannot create directory {}",
            blocker.join("sub").display()
        )),
        "{err}"
    );
}

#[test]
fn a_rolled_back_change_is_absent_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("turnout.db");
    {
        let store = Store::open(&path).unwrap();
        store.commit(&everything("hello")).unwrap();
        let mut bad = everything("shop");
        bad.apps[0].weights[1].weight = 101;
        let err = store.commit(&bad).unwrap_err();
        assert!(err.to_string().contains("CHECK constraint failed"), "{err}");
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.apps().unwrap(), vec![app("hello")]);
    assert_eq!(store.all_instances().unwrap().len(), 1);
    assert_eq!(store.events(None, 0, 10).unwrap().len(), 1);
    assert_eq!(store.templates("shop").unwrap(), vec![]);
}

#[test]
fn commits_from_many_threads_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("turnout.db");
    let store = Arc::new(Store::open(&path).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for n in 0..10 {
                    store.commit(&everything(&format!("app-{t}-{n}"))).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    drop(store);
    let store = Store::open(&path).unwrap();
    assert_eq!(store.apps().unwrap().len(), 40);
    let events = store.events(None, 0, 1000).unwrap();
    assert_eq!(events.len(), 40);
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
}

#[test]
fn only_the_newest_events_of_each_app_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("turnout.db")).unwrap();
    let event = |app: &str, n: usize| NewEvent {
        app: app.into(),
        kind: "test".into(),
        message: format!("event {n}"),
        data: None,
    };
    // One app over the limit by 50, another with a few events.
    let change = Change {
        events: (0..turnout_store::EVENTS_KEPT + 50)
            .map(|n| event("busy", n))
            .chain((0..3).map(|n| event("quiet", n)))
            .collect(),
        ..Change::default()
    };
    store.commit(&change).unwrap();
    let busy = store.events(Some("busy"), 0, usize::MAX).unwrap();
    assert_eq!(busy.len(), turnout_store::EVENTS_KEPT);
    assert_eq!(busy[0].event.message, "event 50", "the oldest 50 went");
    assert_eq!(
        busy.last().unwrap().event.message,
        format!("event {}", turnout_store::EVENTS_KEPT + 49)
    );
    assert_eq!(store.events(Some("quiet"), 0, usize::MAX).unwrap().len(), 3);
    // The next commit prunes again, and ids keep growing.
    let last = busy.last().unwrap().id;
    store
        .commit(&Change {
            events: vec![event("busy", 0)],
            ..Change::default()
        })
        .unwrap();
    let busy = store.events(Some("busy"), 0, usize::MAX).unwrap();
    assert_eq!(busy.len(), turnout_store::EVENTS_KEPT);
    assert_eq!(busy[0].event.message, "event 51");
    assert!(busy.last().unwrap().id > last);
}
