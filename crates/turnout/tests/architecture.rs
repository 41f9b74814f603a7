//! Architecture invariants that a test can read off the tree
//! (ARCHITECTURE.md names this file where it states them).

use std::path::{Path, PathBuf};

fn crates() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// The `[dependencies]` table of a manifest (not dev-dependencies).
fn dependencies(manifest: &str) -> Vec<String> {
    let mut deps = Vec::new();
    let mut inside = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == "[dependencies]";
            continue;
        }
        if inside && let Some((name, _)) = line.split_once('=') {
            deps.push(name.trim().to_string());
        }
    }
    deps
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_the_binary_uses_anyhow() {
    let crates = crates();
    assert!(crates.len() >= 8, "{crates:?}");
    for dir in crates {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let uses = dependencies(&manifest).contains(&"anyhow".to_string());
        assert_eq!(
            uses,
            name == "turnout",
            "{name}: library crates report errors with their own thiserror types, only the binary uses anyhow"
        );
    }
}

/// Outside tests (a `#[cfg(test)]` module ends what is read of a file).
#[test]
fn only_the_binary_names_a_concrete_runtime() {
    for dir in crates() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        // The binary picks a runtime; each backend is one.
        if name == "turnout" || name.starts_with("turnout-runtime-") {
            continue;
        }
        // Not a dependency either (a crate's tests may use one).
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let normal = manifest
            .split("[dev-dependencies]")
            .next()
            .unwrap_or_default();
        assert!(
            !normal.contains("turnout-runtime-"),
            "{name} depends on a concrete runtime crate; only the binary may"
        );
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            // A crate's own tests may pick a runtime to run on.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            assert!(
                !code.contains("ProcessRuntime") && !code.contains("turnout_runtime_"),
                "{} names a concrete runtime; only the binary picks one",
                file.display()
            );
        }
    }
}

/// What doing IO or reading a clock looks like in source.
const IO: [&str; 10] = [
    "std::fs::",
    "File::open",
    "TcpStream",
    "TcpListener",
    "UdpSocket",
    "std::process::Command",
    "tokio::",
    "Instant::now",
    "SystemTime::now",
    "std::env::var",
];

/// `turnout-spec` does no IO but `load` reading one file; turnout-routing
/// none; the engine's `step`, `plan`, `model`, `routes` and the release
/// analysis (`analysis`, `histogram`, `stats`) neither IO nor a clock
/// (ARCHITECTURE.md states each).
#[test]
fn the_pure_parts_do_no_io_and_read_no_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_files(&root.join("turnout-spec/src"), &mut files);
    rust_files(&root.join("turnout-routing/src"), &mut files);
    for name in [
        "step",
        "plan",
        "model",
        "routes",
        "analysis",
        "histogram",
        "stats",
    ] {
        files.push(root.join(format!("turnout-engine/src/{name}.rs")));
    }
    let mut reads = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for marker in IO {
            for (n, line) in code.lines().enumerate() {
                if line.trim_start().starts_with("//") || !line.contains(marker) {
                    continue;
                }
                // `turnout_spec::load`: its file and the environment.
                if file.ends_with("turnout-spec/src/lib.rs")
                    && (line.contains("std::fs::read_to_string(path)")
                        || line.contains("std::env::var(name)"))
                {
                    reads += 1;
                    continue;
                }
                panic!(
                    "{}:{}: {marker} in a pure part: {line}",
                    file.display(),
                    n + 1
                );
            }
        }
    }
    assert_eq!(
        reads, 2,
        "turnout_spec::load reads its file and the environment"
    );
}

/// What taking a lock looks like in source: the lock types (std, tokio,
/// parking_lot), their calls, and a prometheus-client `Family` lookup
/// (`get_or_create*` takes the family's `RwLock`).
const LOCKS: [&str; 12] = [
    "Mutex",
    "RwLock",
    "parking_lot",
    "Condvar",
    "Semaphore",
    "Barrier",
    ".lock()",
    ".try_lock()",
    ".blocking_lock()",
    ".read()",
    ".write()",
    "get_or_create",
];

/// turnout-proxy's modules that requests run through (`src/`, relative):
/// accept, the fast path and the hyper path, routing, forwarding, bodies,
/// tunnels, the upstream pool and connector, in-flight accounting, the
/// per-version figures and the A/B feed's queue, and the snapshot they
/// read.
const REQUEST_PATH: [&str; 28] = [
    "body.rs",
    "caller.rs",
    "connection.rs",
    "connector.rs",
    "dispatch.rs",
    "egress.rs",
    "error.rs",
    "feed.rs",
    "figures.rs",
    "forward.rs",
    "framing.rs",
    "h1/chunked.rs",
    "h1/conn.rs",
    "h1/forward.rs",
    "h1/mod.rs",
    "h1/request.rs",
    "h1/response.rs",
    "hop.rs",
    "host.rs",
    "in_flight.rs",
    "instance.rs",
    "listener.rs",
    "netns.rs",
    "response.rs",
    "snapshot.rs",
    "tunnel.rs",
    "upstream.rs",
    "write_through.rs",
];

/// turnout-proxy's modules off the request path, and why each is.
const OFF_REQUEST_PATH: [(&str, &str); 11] = [
    ("admin.rs", "the admin listener: scrapes and /healthz"),
    ("config.rs", "settings, read at start"),
    (
        "conversions.rs",
        "the A/B feed's aggregator: its drainer task, publishes and the control plane's reads lock it; requests only push into the lock-free queue (feed.rs)",
    ),
    ("health_check.rs", "background probe tasks"),
    (
        "internal_listeners.rs",
        "the control plane opens and closes listeners; their connections are served by listener.rs",
    ),
    ("lib.rs", "module list"),
    (
        "metrics.rs",
        "series are resolved once per label set (a OnceLock in the snapshot), and only the control plane's release-state calls lock",
    ),
    (
        "proxy.rs",
        "start, publish, shutdown, control-plane queries",
    ),
    (
        "registry.rs",
        "instances by address, changed by publish and drains",
    ),
    (
        "shared.rs",
        "publish and the drain tasks lock the registry; requests read only its ArcSwaps",
    ),
    ("tls.rs", "builds the acceptor at start"),
];

/// Locks on the request path that are known and not yet removed: (file,
/// the code that takes it, why). Each must still be there, so an entry
/// goes when its lock does.
const KNOWN_REQUEST_PATH_LOCKS: [(&str, &str, &str); 1] = [(
    "egress.rs",
    "shared.metrics.egress.get_or_create(&labels)",
    "each egress request looks its counter up in the family (a read lock, a write lock for a new series)",
)];

/// The lines of `file` outside tests and comments that take a lock, as
/// `file:line: marker in: code`.
fn lock_lines(file: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(file).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut found = Vec::new();
    for (n, line) in code.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for marker in LOCKS {
            if code.contains(marker) {
                found.push((
                    line.trim().to_string(),
                    format!(
                        "{}:{}: {marker} on the request path: {}",
                        file.display(),
                        n + 1,
                        line.trim()
                    ),
                ));
            }
        }
    }
    found
}

/// ARCHITECTURE.md: the proxy's request path takes no lock (a reload is one
/// `ArcSwap::store`). Every module of turnout-proxy is either on the
/// request path, and then read for lock types and calls, or listed as off
/// it with a reason, so a new module cannot escape the check.
#[test]
fn the_request_path_takes_no_lock() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../turnout-proxy/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut unlisted = Vec::new();
    for file in &files {
        let name = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let on = REQUEST_PATH.contains(&name.as_str());
        let off = OFF_REQUEST_PATH.iter().any(|(off, _)| *off == name);
        assert!(
            !(on && off),
            "{name} is listed both on and off the request path"
        );
        if !on && !off {
            unlisted.push(name);
        }
    }
    assert!(
        unlisted.is_empty(),
        "list these turnout-proxy modules in REQUEST_PATH or OFF_REQUEST_PATH (with why): {unlisted:?}"
    );
    for name in REQUEST_PATH
        .iter()
        .chain(OFF_REQUEST_PATH.iter().map(|(n, _)| n))
    {
        assert!(src.join(name).is_file(), "{name} is listed but gone");
    }
    let mut violations = Vec::new();
    let mut known_seen = [false; KNOWN_REQUEST_PATH_LOCKS.len()];
    for name in REQUEST_PATH {
        for (code, violation) in lock_lines(&src.join(name)) {
            match KNOWN_REQUEST_PATH_LOCKS
                .iter()
                .position(|(file, known, _)| *file == name && code.contains(known))
            {
                Some(i) => known_seen[i] = true,
                None => violations.push(violation),
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    for (seen, (file, known, _)) in known_seen.iter().zip(KNOWN_REQUEST_PATH_LOCKS) {
        assert!(
            seen,
            "{file} no longer has `{known}`: remove it from KNOWN_REQUEST_PATH_LOCKS"
        );
    }
}

/// ARCHITECTURE.md: `pick` and `lookup` take no lock; turnout-routing has
/// none anywhere.
#[test]
fn the_routing_decision_takes_no_lock() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../turnout-routing/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 10, "{files:?}");
    let violations: Vec<String> = files
        .iter()
        .flat_map(|file| lock_lines(file))
        .map(|(_, violation)| violation)
        .collect();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// Where serde derives may be (DESIGN §3): the template (turnout-spec,
/// with its diagnostics and diff output), the route file
/// (turnout-routing's schema), the API's bodies (turnout-api-types, their
/// one definition) and the store's records — plus the binary's own files
/// and the demo app's control API.
const SERDE_ALLOWED: [&str; 7] = [
    "turnout-spec/src/",
    "turnout-routing/src/route_file.rs",
    "turnout-routing/src/weight.rs",
    "turnout-api-types/src/",
    "turnout-store/src/",
    "turnout/src/server.rs",
    "turnout/src/cmd/demo_app/control.rs",
];

/// serde derives only on the template, the route file, API DTOs and store
/// records: an API body defined again anywhere else (a mirror in the
/// client, a DTO in the engine) fails here, naming the file and line.
#[test]
fn serde_derives_only_where_the_design_allows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut offenders = Vec::new();
    for dir in crates() {
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        for file in files {
            let rel = file
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if SERDE_ALLOWED.iter().any(|allowed| rel.starts_with(allowed)) {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            // A crate's own tests may derive what they like.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for (n, line) in code.lines().enumerate() {
                let derive = line.trim_start().starts_with("#[derive(");
                if derive && (line.contains("Serialize") || line.contains("Deserialize")) {
                    offenders.push(format!("{rel}:{}: {}", n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "serde derives outside the template, route file, API types and store \
         (put API bodies in turnout-api-types): {offenders:#?}"
    );
}

/// The methods of a trait in `source` (its `fn` lines one indent deep).
fn trait_methods(source: &str, header: &str) -> Vec<String> {
    let start = source.find(header).expect("the trait");
    let body = &source[start..];
    let end = body.find("\n}\n").expect("the trait's end");
    body[..end]
        .lines()
        .filter_map(|l| l.strip_prefix("    fn "))
        .map(|l| l[..l.find(['(', '<']).unwrap()].to_string())
        .collect()
}

/// `AnyRuntime` hands every `Runtime` method to the runtime chosen: a
/// method with a default body that the binary's `delegate_runtime!` list
/// leaves out would silently answer with the default (`publishes_ports`
/// did, and the ports check never ran on docker).
#[test]
fn the_binary_delegates_every_runtime_method() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let methods = trait_methods(
        &read("turnout-runtime/src/runtime.rs"),
        "pub trait Runtime: Send + Sync {",
    );
    assert!(methods.len() >= 10, "{methods:?}");
    let binary = read("turnout/src/runtime.rs");
    let list = &binary[binary.find("delegate_runtime! {").expect("the list")..];
    let missing: Vec<&String> = methods
        .iter()
        .filter(|m| !list.contains(&format!("fn {m}(&self")))
        .collect();
    assert!(
        missing.is_empty(),
        "crates/turnout/src/runtime.rs: delegate_runtime! does not list {missing:?}"
    );
}
