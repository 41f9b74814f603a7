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
/// none; the engine's `step`, `plan`, `model` and `routes` neither IO nor
/// a clock (ARCHITECTURE.md states each).
#[test]
fn the_pure_parts_do_no_io_and_read_no_clock() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    rust_files(&root.join("turnout-spec/src"), &mut files);
    rust_files(&root.join("turnout-routing/src"), &mut files);
    for name in ["step", "plan", "model", "routes"] {
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
