//! A `standard` release under load (health-gated rolling replacement, no
//! request lost — the seed's standard release had an outage) and the SSE
//! event stream.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Server, TempDir};

const WAIT: Duration = Duration::from_secs(30);

const V1: &str = "web:\n  command: turnout demo-app --text 'one'\n  labels:\n    aliyun.scale: 3\n    aliyun.routing.port_80: web\n";
const V2: &str = "web:\n  command: turnout demo-app --text 'two'\n  labels:\n    aliyun.scale: 3\n    aliyun.routing.port_80: web\n    aliyun.rolling_updates: true\n    aliyun.rolling_updates.parallelism: 1\n";

#[test]
fn standard_release_replaces_instances_without_losing_a_request() {
    let dir = TempDir::new("standard");
    std::fs::create_dir_all(dir.path().join("web")).unwrap();
    let file = dir.path().join("web/app.yaml");
    std::fs::write(&file, V1).unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&["up", file.to_str().unwrap()], &data, &[]);
    server.wait_line("app web is up", WAIT);
    let before: Vec<u64> = server.status("web")["services"][0]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(before.len(), 3);
    let first_ids: Vec<String> = server.status("web")["services"][0]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    // `logs web -f` from before the release follows the instances that
    // replace these too.
    let mut follower = std::process::Command::new(env!("CARGO_BIN_EXE_turnout"))
        .args(["logs", "web", "-f", "--tail", "1", "--output", "json"])
        .env("TURNOUT_DATA_DIR", &data)
        .env_remove("TURNOUT_ADMIN")
        .env_remove("TURNOUT_TOKEN")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let followed_lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = followed_lines.clone();
        let stdout = follower.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                lines.lock().unwrap().push(line);
            }
        })
    };

    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let (ones, twos) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let public = server.public;
    let started = Instant::now();
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (stop, failed, ones, twos) =
                (stop.clone(), failed.clone(), ones.clone(), twos.clone());
            std::thread::spawn(move || {
                // Bounded in count and time.
                for _ in 0..20_000 {
                    if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(90) {
                        break;
                    }
                    let r =
                        support::request(public, "GET", "/", &[("Host", "web.localhost")], None);
                    match (r.status, r.body.as_str()) {
                        (200, "one") => ones.fetch_add(1, Ordering::Relaxed),
                        (200, "two") => twos.fetch_add(1, Ordering::Relaxed),
                        _ => {
                            failed
                                .lock()
                                .unwrap()
                                .push(format!("{} {}", r.status, r.body));
                            0
                        }
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let body =
        serde_json::json!({"template": V2, "source_name": "v2.yaml", "strategy": "standard"})
            .to_string();
    let r = server.api("POST", "/v1/apps/web/releases", Some(&body));
    assert_eq!(r.status, 201, "{}", r.body);
    // Confirmed once every instance runs the new spec; the last old one
    // may still be draining then.
    server.wait_status("web", WAIT, |s| s["release"]["state"] == "confirmed");
    let s = server.wait_status("web", WAIT, |s| {
        s["services"][0]["instances"].as_array().unwrap().len() == 3
    });
    // Keep the load on a moment after the end of the roll.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let failed = failed.lock().unwrap();
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ones.load(Ordering::Relaxed) > 0 && twos.load(Ordering::Relaxed) > 0);
    let after: Vec<u64> = s["services"][0]["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(after.len(), 3, "{s:#}");
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "every instance was replaced"
    );
    for _ in 0..5 {
        assert_eq!(server.get("web.localhost").body, "two");
    }
    // The follower saw a replacement instance start.
    let deadline = Instant::now() + WAIT;
    let new_instance_line = loop {
        let seen = followed_lines.lock().unwrap().iter().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let id = v["instance"].as_str()?;
            (!first_ids.iter().any(|f| f == id)).then(|| l.clone())
        });
        if let Some(line) = seen {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "logs -f never showed a new instance: {:?}",
            followed_lines.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        new_instance_line.contains("demo-app listening on"),
        "a new instance is followed from its first line: {new_instance_line}"
    );
    let _ = follower.kill();
    let _ = follower.wait();
    reader.join().unwrap();
}

#[test]
fn events_stream_replays_and_follows() {
    let dir = TempDir::new("sse");
    let server = Server::start(&["up", "examples/hello/app.yaml"], dir.path(), &[]);
    server.wait_line("app hello is up", WAIT);
    let mut stream = TcpStream::connect(server.admin).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET /v1/events/stream?app=hello HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        server.token
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    reader.read_line(&mut head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut seen = Vec::new();
    let next_event = |reader: &mut BufReader<TcpStream>| -> String {
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(kind) = line.trim().strip_prefix("event: ") {
                return kind.to_string();
            }
        }
    };
    // The past: the deploy and the instance starts.
    let first = next_event(&mut reader);
    seen.push(first.clone());
    assert_eq!(first, "deployed");
    // Live: a weight change made now arrives on the open stream.
    let r = server.api(
        "PUT",
        "/v1/apps/hello/routes/serviceb/weights",
        Some(r#"{"weights":{"serviceB-v1":50}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    loop {
        let kind = next_event(&mut reader);
        seen.push(kind.clone());
        if kind == "weights" {
            break;
        }
        assert!(seen.len() < 100, "no weights event: {seen:?}");
    }

    // `last`: the newest events only, oldest first, in the list and as
    // the stream's replay.
    let all: serde_json::Value = serde_json::from_str(
        &server
            .api("GET", "/v1/events?app=hello&limit=10000", None)
            .body,
    )
    .unwrap();
    let ids = |v: &serde_json::Value| -> Vec<i64> {
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_i64().unwrap())
            .collect()
    };
    let all = ids(&all);
    assert!(all.len() > 3, "{all:?}");
    let r = server.api("GET", "/v1/events?app=hello&last=2", None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        ids(&serde_json::from_str(&r.body).unwrap()),
        all[all.len() - 2..]
    );
    let newest = *all.last().unwrap();
    let mut stream = TcpStream::connect(server.admin).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "GET /v1/events/stream?app=hello&last=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        server.token
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let next_id = |reader: &mut BufReader<TcpStream>| -> i64 {
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(id) = line.trim().strip_prefix("id: ") {
                return id.parse().unwrap();
            }
        }
    };
    assert_eq!(
        next_id(&mut reader),
        newest,
        "the replay is the newest event"
    );
    let r = server.api(
        "PUT",
        "/v1/apps/hello/routes/serviceb/weights",
        Some(r#"{"weights":{"serviceB-v1":60}}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(next_id(&mut reader) > newest, "then what happens live");
}
