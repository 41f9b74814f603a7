//! Shared helpers of the runtime's integration tests: temporary folders,
//! instance specs, guards that kill what a test started, and bounded
//! polling.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use turnout_runtime::{Handle, InstanceSpec, Started};
use turnout_spec::Command;

/// How long a test waits for something that should happen at once.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// A fresh folder under the system's temporary folder, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "turnout-runtime-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An instance spec running `command`, logging into `dir`.
pub fn spec(id: &str, command: Command, dir: &Path) -> InstanceSpec {
    let _ = dir;
    InstanceSpec {
        id: id.to_string(),
        app: "test".to_string(),
        service: id.split('.').next().unwrap_or(id).to_string(),
        key: format!("key-{id}-{}", std::process::id()),
        command,
        env: Vec::new(),
        ports: BTreeMap::new(),
        primary_port: None,
        working_dir: None,
        container: None,
    }
}

pub fn shell(s: &str) -> Command {
    Command::Shell(s.to_string())
}

pub fn exec(args: &[&str]) -> Command {
    Command::Exec(args.iter().map(|s| s.to_string()).collect())
}

/// Kills an instance's process group (or a lone process) on drop, if it
/// (same pid, same start time) still exists, so that a failing test leaves
/// nothing behind.
#[derive(Debug)]
pub struct Guard {
    pub pid: u32,
    pub start_time: u64,
}

impl Guard {
    pub fn new(started: &Started) -> Guard {
        Guard {
            pid: pid_of(started),
            start_time: start_of(started),
        }
    }
}

/// The pid a process-runtime handle (`<pid>:<start time>`) names.
pub fn pid_of(started: &Started) -> u32 {
    let pid = started.handle.as_str().split_once(':').unwrap().0;
    let pid = pid.parse().unwrap();
    assert_eq!(started.pid, Some(pid), "the handle's pid is the one shown");
    pid
}

/// The process-runtime handle of process `pid` started at `start_time`.
pub fn handle(pid: u32, start_time: u64) -> Handle {
    Handle::new(format!("{pid}:{start_time}"))
}

/// The start time a process-runtime handle names.
pub fn start_of(started: &Started) -> u64 {
    started
        .handle
        .as_str()
        .split_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap()
}

/// Where the process runtime on data dir `dir` logs `spec`'s output.
pub fn log_of(dir: &Path, spec: &InstanceSpec) -> PathBuf {
    turnout_runtime_process::log_path(dir, &spec.app, &spec.id)
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(s) = stat(self.pid).filter(|s| s.start_time == self.start_time) {
            let pid = Pid::from_raw(self.pid as i32);
            let _ = if s.pgrp == self.pid {
                killpg(pid, Signal::SIGKILL)
            } else {
                kill(pid, Signal::SIGKILL)
            };
        }
    }
}

/// Kills a child process on drop.
#[derive(Debug)]
pub struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Fields of `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub state: char,
    pub ppid: u32,
    pub pgrp: u32,
    pub start_time: u64,
}

pub fn stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some(Stat {
        state: fields[0].chars().next()?,
        ppid: fields[1].parse().ok()?,
        pgrp: fields[2].parse().ok()?,
        start_time: fields[19].parse().ok()?,
    })
}

/// The program name of a process (`/proc/<pid>/comm`).
pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Whether process `pid` (started at `start_time`, if given) runs: absent,
/// replaced or a zombie is not running.
pub fn runs(pid: u32, start_time: Option<u64>) -> bool {
    stat(pid).is_some_and(|s| start_time.is_none_or(|t| t == s.start_time) && s.state != 'Z')
}

/// Polls `check` until it gives a value, panicking after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the log file holds a line for which `find` gives a value.
pub async fn log_line<T>(path: &Path, find: impl Fn(&str) -> Option<T>) -> T {
    eventually(&format!("a line in {}", path.display()), || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let found = text.lines().find_map(&find);
        async move { found }
    })
    .await
}

/// The number after `key=` in a log line.
pub fn value_after(line: &str, key: &str) -> Option<u32> {
    line.strip_prefix(key)?.trim().parse().ok()
}
