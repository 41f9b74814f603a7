//! `kill -9` of a process that is committing: every change it acknowledged
//! is in the store when it is opened again, and nothing half-written is.
//!
//! This binary is its own writer: run with `TURNOUT_STORE_CRASH_CHILD` set
//! to a database path, it commits changes in a loop and prints `acked N`
//! after each commit returns, like a server acknowledging requests. Without
//! it, it is the test: it starts itself as that writer, kills it with
//! SIGKILL at some point, reopens the file and checks. It has its own
//! `main` (the test target sets `harness = false`) so that the writer is not
//! a test that passes trivially when run on its own.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use turnout_store::{
    AppRecord, Change, InstanceRecord, NewEvent, ServiceRecord, Store, WeightRecord,
};

const CHILD_ENV: &str = "TURNOUT_STORE_CRASH_CHILD";
const TEST_NAME: &str = "kill9_keeps_every_acked_commit";
const APP: &str = "crash";

fn main() {
    if let Some(path) = std::env::var_os(CHILD_ENV) {
        writer(Path::new(&path));
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{TEST_NAME}: test");
        return;
    }
    // Honour a name filter the way libtest would, so that
    // `cargo test -p turnout-store some_other_test` does not run this.
    if let Some(filter) = args.iter().find(|a| !a.starts_with('-'))
        && !TEST_NAME.contains(filter.as_str())
    {
        println!("running 0 tests (filtered out: {TEST_NAME})");
        return;
    }
    kill9_keeps_every_acked_commit();
    println!("test {TEST_NAME} ... ok");
}

/// Commit number `n` of the writer: the app at template version `n` with a
/// weight of `n % 101`, instance `web.n` and the event `commit n`.
fn change(n: u32) -> Change {
    Change {
        apps: vec![AppRecord {
            name: APP.into(),
            template_version: n,
            created_at: 1,
            updated_at: i64::from(n),
            services: vec![ServiceRecord {
                name: "web".into(),
                template_version: n,
                spec_hash: format!("hash-{n}"),
                scale: n,
                state: "running".into(),
            }],
            weights: vec![WeightRecord {
                route_id: "web.localhost".into(),
                service: "web".into(),
                weight: (n % 101) as u8,
            }],
        }],
        instances: vec![InstanceRecord {
            id: format!("web.{n}"),
            app: APP.into(),
            service: "web".into(),
            ordinal: n,
            pid: Some(n + 1000),
            handle: Some(format!("{}:{}", n + 1000, n * 7)),
            address: Some("127.0.0.1".into()),
            ports: BTreeMap::from([(80, 40000 + n as u16)]),
            token: format!("tok-{n}"),
            spec_hash: format!("hash-{n}"),
            state: "ready".into(),
            restarts: 0,
            created_at: 1,
            updated_at: 1,
        }],
        events: vec![NewEvent {
            app: APP.into(),
            kind: "commit".into(),
            message: format!("commit {n}"),
            data: Some(serde_json::json!({ "n": n })),
        }],
        ..Change::default()
    }
}

/// The child: continues numbering from what the file holds and commits
/// until it is killed (or, should the parent never kill it, for a bounded
/// number of commits).
fn writer(path: &Path) {
    let store = Store::open(path).expect("child opens the store");
    let start = store
        .app(APP)
        .expect("child reads the app")
        .map_or(1, |a| a.template_version + 1);
    for n in start..start + 100_000 {
        store.commit(&change(n)).expect("child commits");
        // Printed only after commit returned, as a server would answer only
        // then. Stdout is line-buffered, so the line leaves at once.
        println!("acked {n}");
    }
}

fn kill9_keeps_every_acked_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data").join("turnout.db");
    let mut acked_total = 0;
    // Several rounds on one file: each writer starts on a file whose last
    // writer was killed, so recovery is followed by more writes.
    for kill_after in [5, 40, 120] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the writer");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut acked = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            acked.push(parse_ack(&line));
            if acked.len() == kill_after {
                // SIGKILL, while the writer is most likely in the middle of
                // its next commit.
                child.kill().unwrap();
                break;
            }
        }
        // Lines the writer printed before it died are still in the pipe.
        for line in lines {
            acked.push(parse_ack(&line.unwrap()));
        }
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "the writer must have been killed, not have finished: {status}"
        );
        assert!(acked.len() >= kill_after, "acked only {acked:?}");
        let last_acked = *acked.last().unwrap();
        acked_total += acked.len();

        let store = Store::open(&path).unwrap();
        let app = store.app(APP).unwrap().expect("the app survived");
        // The in-flight commit at the kill may or may not have landed, but
        // never an acknowledged one lost.
        let latest = app.template_version;
        assert!(
            latest == last_acked || latest == last_acked + 1,
            "acked up to {last_acked}, store has {latest}"
        );
        let events = store.events(Some(APP), 0, usize::MAX).unwrap();
        let instances = store.instances(APP).unwrap();
        // Every commit is whole: commit n wrote version n, instance web.n and
        // event `commit n` together, so the store holds exactly 1..=latest
        // of each.
        let messages: Vec<String> = events.iter().map(|e| e.event.message.clone()).collect();
        let expected: Vec<String> = (1..=latest).map(|n| format!("commit {n}")).collect();
        assert_eq!(messages, expected);
        let ids: std::collections::BTreeSet<String> =
            instances.iter().map(|i| i.id.clone()).collect();
        let expected: std::collections::BTreeSet<String> =
            (1..=latest).map(|n| format!("web.{n}")).collect();
        assert_eq!(ids, expected);
        for n in &acked {
            let i = store.instance(&format!("web.{n}")).unwrap().unwrap();
            assert_eq!(i, change(*n).instances[0], "acked instance web.{n}");
        }
        println!("round killed after {kill_after}: acked up to {last_acked}, store has {latest}");
        assert_eq!(app.services, change(latest).apps[0].services);
        assert_eq!(app.weights, change(latest).apps[0].weights);
    }
    assert!(acked_total >= 165);
}

fn parse_ack(line: &str) -> u32 {
    line.strip_prefix("acked ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line from the writer: {line:?}"))
}
