//! Every file of the compose corpus (`../shared/compose-corpus` beside the
//! repository: real compose files as their authors wrote them, with their
//! `.env`) validates through the real binary, warnings allowed, reading
//! the `.env` next to it as compose does (DESIGN §7; issue 11).

use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/compose-corpus")
}

/// The compose files of the corpus, one per sample folder.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let sample = entry.unwrap().path();
        if !sample.is_dir() {
            continue;
        }
        for name in [
            "compose.yaml",
            "compose.yml",
            "docker-compose.yaml",
            "docker-compose.yml",
        ] {
            if sample.join(name).is_file() {
                out.push(sample.join(name));
            }
        }
    }
    out.sort();
    out
}

/// The variable names a folder's `.env` sets, so that the test can make
/// sure they do not come from its own environment.
fn dotenv_keys(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join(".env"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim().to_string()))
        .filter(|k| !k.is_empty() && !k.starts_with('#'))
        .collect()
}

#[test]
fn every_corpus_file_validates_with_its_dotenv() {
    let dir = corpus();
    if !dir.is_dir() {
        eprintln!(
            "skipped: no compose corpus at {} (it lives beside the repository)",
            dir.display()
        );
        return;
    }
    let files = files(&dir);
    assert!(
        files.len() >= 30,
        "expected the corpus's samples, found {}",
        files.len()
    );
    let mut failed = Vec::new();
    let mut with_dotenv = 0;
    for file in &files {
        let folder = file.parent().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_turnout"));
        cmd.arg("validate").arg(file).env("NO_COLOR", "1");
        let keys = dotenv_keys(folder);
        with_dotenv += usize::from(!keys.is_empty());
        for key in keys {
            cmd.env_remove(key);
        }
        let out = cmd.output().expect("turnout runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !stdout.contains(": valid (") {
            failed.push(format!(
                "{}:\n{}{}",
                file.display(),
                stdout,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(with_dotenv >= 1, "the corpus has samples with a .env");
    assert!(
        failed.is_empty(),
        "{} of {} corpus files do not validate:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}
