//! The process runtime: each instance is a child process of the server, in
//! its own process group, with its output appended to a log file.
//!
//! Crash safety (DESIGN §5) shapes everything here: an instance must
//! outlive a `kill -9` of the server and be found again by the next one.
//! So instances get their own process group (no terminal signal or group
//! kill aimed at the server reaches them), write to files rather than
//! pipes (a pipe would break with the server), and are named by pid *and*
//! start time, read from `/proc`, which works the same for the server's
//! own children and for those it adopted from an earlier server.

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::Pid;
use parking_lot::Mutex;
use turnout_runtime::command::{self, PortVars};
use turnout_runtime::{
    ExecOutcome, Handle, InstanceSpec, InstanceStatus, LogTarget, Logs, Runtime, RuntimeError,
    RuntimeWarning, Started,
};
use turnout_spec::{Service, Template};

use crate::log::{LogFollower, log_path};
use crate::proc_stat::ProcStat;

/// The environment variable that carries an instance's
/// [`key`](InstanceSpec::key), by which a restarted server finds a process
/// it started but did not record.
pub const INSTANCE_KEY: &str = "TURNOUT_INSTANCE_KEY";

/// How often `stop` looks whether the instance has gone.
const STOP_POLL: Duration = Duration::from_millis(20);
/// How long `stop` waits for a SIGKILLed instance to disappear.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How often the reaper looks at its children when no SIGCHLD arrives
/// (a safety net: signals can coalesce or arrive before the listener).
const REAP_INTERVAL: Duration = Duration::from_secs(1);
/// How long the exit status of a reaped instance is remembered.
const EXIT_MEMORY: Duration = Duration::from_secs(600);

/// Runs instances as local processes (the default runtime).
#[derive(Debug)]
pub struct ProcessRuntime {
    /// What a command's leading `turnout` runs: the server's own binary.
    turnout_exe: PathBuf,
    /// The data dir: instance logs go to its `logs/`.
    data_dir: PathBuf,
    /// The children this server started.
    children: Arc<Children>,
    /// Whether the background reaper task runs.
    reaper_started: AtomicBool,
}

impl ProcessRuntime {
    /// A process runtime; `turnout_exe` is what a command whose first word
    /// is `turnout` runs (the binary itself: `std::env::current_exe()`),
    /// and instances log to `<data_dir>/logs/<app>/<instance>.log`.
    pub fn new(turnout_exe: PathBuf, data_dir: PathBuf) -> Self {
        ProcessRuntime {
            turnout_exe,
            data_dir,
            children: Arc::new(Children::default()),
            reaper_started: AtomicBool::new(false),
        }
    }

    /// Reaps this server's exited children in the background: on SIGCHLD,
    /// and every second in case a signal was missed. The task holds the
    /// table weakly and ends once the runtime is dropped.
    fn ensure_reaper(&self) {
        if self.reaper_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // Not on tokio: `status` and `stop` still reap as they poll.
            self.reaper_started.store(false, Ordering::Release);
            return;
        };
        let children = Arc::downgrade(&self.children);
        handle.spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let mut sigchld = signal(SignalKind::child()).ok();
            loop {
                match sigchld.as_mut() {
                    Some(s) => {
                        tokio::select! {
                            received = s.recv() => if received.is_none() { sigchld = None },
                            () = tokio::time::sleep(REAP_INTERVAL) => {}
                        }
                    }
                    None => tokio::time::sleep(REAP_INTERVAL).await,
                }
                let Some(children) = children.upgrade() else {
                    break;
                };
                children.reap_all();
            }
        });
    }

    /// Whether the instance, or anything left of its process group, still
    /// runs.
    fn alive(&self, pid: u32, start_time: u64, group: bool) -> bool {
        self.children.reap(pid);
        let leader = ProcStat::read_matching(pid, start_time).is_some_and(|s| !s.is_zombie());
        leader || (group && group_has_live_members(pid))
    }
}

impl Runtime for ProcessRuntime {
    fn name(&self) -> &'static str {
        "process"
    }

    fn warnings(&self, template: &Template) -> Vec<RuntimeWarning> {
        crate::warnings(template)
    }

    fn check(&self, service: &Service) -> Result<(), RuntimeError> {
        if service.command.is_some() {
            return Ok(());
        }
        let what = if service.image.is_some() {
            "it has only an image and no command"
        } else {
            "it has no command"
        };
        Err(RuntimeError::Unsupported {
            service: service.name.clone(),
            runtime: self.name(),
            reason: what.to_string(),
            hint: "the process runtime runs a service's `command` on this machine: add a \
                   `command`, or use a container runtime (--runtime docker) for images"
                .to_string(),
        })
    }

    fn ports(&self, container_ports: &[u16]) -> Result<BTreeMap<u16, u16>, RuntimeError> {
        turnout_runtime::allocate_ports(container_ports)
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<Started, RuntimeError> {
        let vars = PortVars {
            ports: &spec.ports,
            primary: spec.primary_port,
            env: &spec.env,
        };
        let argv = command::argv(&spec.command, vars, &self.turnout_exe)
            .map_err(|e| RuntimeError::UnknownPort {
                instance: spec.id.clone(),
                variable: e.variable,
                reason: e.reason,
            })?
            .ok_or_else(|| RuntimeError::EmptyCommand {
                instance: spec.id.clone(),
            })?;
        let program = argv[0].to_string_lossy().into_owned();
        let spawn_error = |source: io::Error| RuntimeError::Spawn {
            instance: spec.id.clone(),
            program: program.clone(),
            source,
        };
        if let Some(dir) = &spec.working_dir
            && !dir.is_dir()
        {
            return Err(spawn_error(io::Error::new(
                io::ErrorKind::NotFound,
                format!("working directory {} does not exist", dir.display()),
            )));
        }
        let log_path = log_path(&self.data_dir, &spec.app, &spec.id);
        let log = open_log(&log_path)?;
        let log_err = log.try_clone().map_err(|source| RuntimeError::LogFile {
            path: log_path.clone(),
            source,
        })?;

        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            // Lets a restarted server find the process if it died between
            // starting it and recording its handle.
            .env(INSTANCE_KEY, &spec.key)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: the server's death, a Ctrl-C in the
            // server's terminal or a kill of the server's group leave it
            // alone, and `stop` can signal everything it started.
            .process_group(0);
        if let Some(dir) = &spec.working_dir {
            cmd.current_dir(dir);
        }
        self.ensure_reaper();
        let child = cmd.spawn().map_err(spawn_error)?;
        let pid = child.id();
        // Dropping a `std::process::Child` neither waits nor kills; the
        // reaper owns the pid from here on. Until it is reaped the process
        // exists (possibly as a zombie), so its stat line can be read.
        drop(child);
        let stat = match ProcStat::read(pid) {
            Ok(Some(stat)) => stat,
            other => {
                let reason = match other {
                    Err(e) => e.to_string(),
                    _ => "no such process".to_string(),
                };
                let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
                let _ = waitpid(Pid::from_raw(pid as i32), None);
                return Err(RuntimeError::ProcStat {
                    instance: spec.id.clone(),
                    pid,
                    reason,
                });
            }
        };
        self.children.adopt(pid, stat.start_time);
        tracing::info!(instance = %spec.id, pid, program = %program, "instance started");
        Ok(started(pid, stat.start_time))
    }

    async fn status(&self, handle: &Handle) -> InstanceStatus {
        let Some((pid, start_time)) = parse_handle(handle) else {
            return InstanceStatus::Gone;
        };
        self.children.reap(pid);
        if let Some(code) = self.children.exit_code(pid, start_time) {
            return InstanceStatus::Exited { code };
        }
        match ProcStat::read(pid) {
            Ok(Some(stat)) if stat.start_time == start_time => {
                if stat.is_zombie() {
                    // Not ours to reap: an adopted instance whose parent
                    // died.
                    InstanceStatus::Exited { code: None }
                } else {
                    InstanceStatus::Running
                }
            }
            Ok(_) => InstanceStatus::Gone,
            Err(e) => {
                // Saying "gone" would make the engine start a duplicate;
                // an instance that really died fails its probes instead.
                tracing::warn!(pid, error = %e, "cannot read the instance's stat; assuming it runs");
                InstanceStatus::Running
            }
        }
    }

    async fn stop(&self, handle: &Handle, grace: Duration) -> Result<(), RuntimeError> {
        let Some((pid, start_time)) = parse_handle(handle) else {
            return Ok(());
        };
        self.children.reap(pid);
        let Some(stat) = ProcStat::read_matching(pid, start_time) else {
            // Gone, or the pid is someone else's now: nothing to signal.
            return Ok(());
        };
        // Instances lead their own group. A process that does not (started
        // by other means) is signalled alone rather than with a group that
        // is not its own.
        let group = stat.pgrp == pid;
        self.children.mark_stopping(pid);
        if !stat.is_zombie() {
            // A zombie leader needs no SIGTERM; it still pins the group id,
            // so what is left of the group can be killed safely below.
            signal(pid, group, Signal::SIGTERM)?;
            let deadline = Instant::now() + grace;
            while self.alive(pid, start_time, group) {
                if Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(STOP_POLL).await;
            }
        }
        if self.alive(pid, start_time, group) {
            tracing::info!(
                pid,
                ?grace,
                "instance did not stop in time; sending SIGKILL"
            );
            signal(pid, group, Signal::SIGKILL)?;
            let deadline = Instant::now() + KILL_WAIT;
            while self.alive(pid, start_time, group) {
                if Instant::now() >= deadline {
                    return Err(RuntimeError::StillRunning { pid });
                }
                tokio::time::sleep(STOP_POLL).await;
            }
        }
        Ok(())
    }

    async fn find(&self, spec: &InstanceSpec) -> Option<Started> {
        let wanted = format!("{INSTANCE_KEY}={}", spec.key);
        let entries = std::fs::read_dir("/proc").ok()?;
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // Processes of other users (or gone by now) cannot be read:
            // they are not ours.
            let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            if !environ.split(|b| *b == 0).any(|v| v == wanted.as_bytes()) {
                continue;
            }
            if let Ok(Some(stat)) = ProcStat::read(pid)
                && !stat.is_zombie()
                // The program itself leads its group; its children share
                // the environment but not the pid.
                && stat.pgrp == pid
            {
                return Some(started(pid, stat.start_time));
            }
        }
        None
    }

    async fn exec(
        &self,
        _handle: &Handle,
        spec: &InstanceSpec,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutcome, RuntimeError> {
        crate::exec::run(
            &spec.id,
            argv,
            &spec.env,
            spec.working_dir.as_deref(),
            timeout,
        )
        .await
    }

    async fn logs(
        &self,
        target: LogTarget<'_>,
        tail: usize,
        follow: bool,
    ) -> Result<Logs, RuntimeError> {
        let path = log_path(&self.data_dir, target.app, target.id);
        let last = crate::log::tail(&path, tail).await?;
        let follow = follow.then(|| {
            let (tx, rx) = tokio::sync::mpsc::channel(64);
            let mut follower = LogFollower::new(path, last.end);
            tokio::spawn(async move {
                loop {
                    let line = tokio::select! {
                        line = follower.next_line() => line,
                        // The reader went away while nothing was written.
                        () = tx.closed() => break,
                    };
                    let Ok(line) = line else { break };
                    if tx.send(line).await.is_err() {
                        break;
                    }
                }
            });
            rx
        });
        Ok(Logs {
            lines: last.lines,
            follow,
        })
    }
}

/// The handle of the process `pid` started at `start_time`.
fn started(pid: u32, start_time: u64) -> Started {
    Started {
        handle: Handle::new(format!("{pid}:{start_time}")),
        address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        pid: Some(pid),
    }
}

/// The pid and start time a handle names; `None` for a handle this
/// runtime did not make (it names no process of ours).
pub(crate) fn parse_handle(handle: &Handle) -> Option<(u32, u64)> {
    let (pid, start) = handle.as_str().split_once(':')?;
    Some((pid.parse().ok()?, start.parse().ok()?))
}

/// Sends `sig` to the process group led by `pid`, or to `pid` alone. A
/// group or process that no longer exists is not an error.
fn signal(pid: u32, group: bool, sig: Signal) -> Result<(), RuntimeError> {
    let target = Pid::from_raw(pid as i32);
    let sent = if group {
        killpg(target, sig)
    } else {
        kill(target, sig)
    };
    match sent {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(source) => Err(RuntimeError::Signal {
            pid,
            signal: sig.as_str(),
            source,
        }),
    }
}

/// Whether any process of group `pgid` still runs (zombies do not count).
///
/// The group id cannot be taken by a new process while any member lives,
/// and the kernel hands out pids in turn, so a group watched every few
/// milliseconds is the one the instance started.
fn group_has_live_members(pgid: u32) -> bool {
    // Cheap first answer: no member at all.
    if killpg(Pid::from_raw(pgid as i32), None) == Err(Errno::ESRCH) {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| ProcStat::read(pid).ok().flatten())
        .any(|stat| stat.pgrp == pgid && !stat.is_zombie())
}

/// Opens the log file for appending, creating it and its folders.
fn open_log(path: &Path) -> Result<std::fs::File, RuntimeError> {
    let error = |source| RuntimeError::LogFile {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(error)
}

/// The server's own children: live ones to reap, and the exit status of
/// the reaped ones.
#[derive(Debug, Default)]
struct Children {
    table: Mutex<ChildTable>,
}

#[derive(Debug, Default)]
struct ChildTable {
    /// Live children: pid → start time, and whether `stop` is stopping it.
    live: HashMap<u32, LiveChild>,
    /// Reaped children: (pid, start time) → exit status and when.
    exits: HashMap<(u32, u64), (Option<i32>, Instant)>,
}

#[derive(Debug, Clone, Copy)]
struct LiveChild {
    start_time: u64,
    stopping: bool,
}

impl Children {
    fn adopt(&self, pid: u32, start_time: u64) {
        self.table.lock().live.insert(
            pid,
            LiveChild {
                start_time,
                stopping: false,
            },
        );
    }

    fn mark_stopping(&self, pid: u32) {
        if let Some(child) = self.table.lock().live.get_mut(&pid) {
            child.stopping = true;
        }
    }

    /// The exit status of a reaped child: `Some(code)` when it is known.
    fn exit_code(&self, pid: u32, start_time: u64) -> Option<Option<i32>> {
        self.table
            .lock()
            .exits
            .get(&(pid, start_time))
            .map(|(code, _)| *code)
    }

    fn reap_all(&self) {
        let mut table = self.table.lock();
        let pids: Vec<u32> = table.live.keys().copied().collect();
        for pid in pids {
            reap_locked(&mut table, pid);
        }
    }

    fn reap(&self, pid: u32) {
        let mut table = self.table.lock();
        if table.live.contains_key(&pid) {
            reap_locked(&mut table, pid);
        }
    }
}

/// Reaps child `pid` if it has exited.
///
/// It first looks without reaping (`WNOWAIT`): while the exited leader is
/// a zombie its pid, and so its process group id, cannot be reused, which
/// makes it safe to kill what is left of the group (the background
/// programs of a shell that exited), as a container's processes die with
/// its main process. During a `stop` the group is left to `stop`, which
/// gives every member the grace period.
fn reap_locked(table: &mut ChildTable, pid: u32) {
    let Some(child) = table.live.get(&pid).copied() else {
        return;
    };
    let target = Pid::from_raw(pid as i32);
    match waitid(
        Id::Pid(target),
        WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
    ) {
        Ok(WaitStatus::StillAlive) | Err(Errno::EINTR) => return,
        Err(Errno::ECHILD) => {
            // Reaped by someone else: the exit status is lost.
            table.live.remove(&pid);
            remember(table, pid, child.start_time, None);
            return;
        }
        // Exited, or a status nix cannot name (a real-time signal).
        _ => {}
    }
    if !child.stopping {
        let _ = killpg(target, Signal::SIGKILL);
    }
    let code = match waitpid(target, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::StillAlive) => return,
        Ok(WaitStatus::Exited(_, code)) => Some(code),
        _ => None,
    };
    table.live.remove(&pid);
    tracing::debug!(pid, ?code, "instance exited");
    remember(table, pid, child.start_time, code);
}

fn remember(table: &mut ChildTable, pid: u32, start_time: u64, code: Option<i32>) {
    let now = Instant::now();
    table
        .exits
        .retain(|_, (_, at)| now.duration_since(*at) < EXIT_MEMORY);
    table.exits.insert((pid, start_time), (code, now));
}
