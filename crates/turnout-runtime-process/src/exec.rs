//! Probe commands, run beside an instance with its environment.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use turnout_runtime::{ExecOutcome, RuntimeError};

/// Runs `argv` with `env` on top of the server's environment, in `dir`,
/// killing it and everything it started after `timeout`.
pub(crate) async fn run(
    instance: &str,
    argv: &[String],
    env: &[(String, String)],
    dir: Option<&Path>,
    timeout: Duration,
) -> Result<ExecOutcome, RuntimeError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(RuntimeError::EmptyCommand {
            instance: instance.to_string(),
        });
    };
    let spawn_error = |source| RuntimeError::Spawn {
        instance: instance.to_string(),
        program: program.clone(),
        source,
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own group, so that a timeout kills what it started too.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    let mut child = cmd.spawn().map_err(spawn_error)?;
    let pid = child.id();
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => Ok(status
            .code()
            .map_or(ExecOutcome::Signalled, ExecOutcome::Exited)),
        Ok(Err(e)) => Err(spawn_error(e)),
        Err(_) => {
            // The child is not reaped yet, so its pid (the group id) is
            // still its own.
            if let Some(pid) = pid {
                let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            let _ = child.wait().await;
            Ok(ExecOutcome::TimedOut)
        }
    }
}
