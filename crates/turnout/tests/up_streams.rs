//! `turnout up` and its standard streams: a closed stdout or stderr
//! (`turnout up FILE | head -1`, a `tee` killed by Ctrl-C) never stops the
//! server, and its logs carry colour only on a terminal, never with
//! `NO_COLOR`.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{TempDir, alive, instance_pids, kill_all, processes_logging_to, signal};

const WAIT: Duration = Duration::from_secs(30);

/// A `turnout up examples/hello/app.yaml` in its own process group. On
/// drop (a failed assertion included) it is stopped, its group killed,
/// and every instance left on its data dir killed.
struct Up {
    child: Child,
    data: PathBuf,
}

impl Up {
    fn spawn(data: &Path, stdout: Stdio, stderr: Stdio, env: &[(&str, &str)]) -> Up {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_turnout"));
        cmd.args(["up", "examples/hello/app.yaml", "--data-dir"])
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args(["--internal-listen", "127.0.0.1:0"])
            .current_dir(support::root())
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .env_remove("CLICOLOR_FORCE")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Up {
            child: cmd.spawn().expect("turnout up starts"),
            data: data.to_path_buf(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to end, at most `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, as a graceful stop, and its exit status.
    fn stop(&mut self) -> ExitStatus {
        signal(self.pid(), "TERM");
        self.wait_exit(WAIT)
            .expect("turnout up exits within 30 s of SIGTERM")
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if self.child.try_wait().unwrap().is_none() {
            signal(self.pid(), "TERM");
            if self.wait_exit(Duration::from_secs(10)).is_none() {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", self.pid())])
                    .status();
                let _ = self.child.wait();
            }
        }
        kill_all(&processes_logging_to(&self.data));
    }
}

/// The first line of `pipe`, read in a thread that then closes the pipe.
fn first_line_then_close(pipe: impl Read + Send + 'static) -> String {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        // `reader` is dropped here: the read end of the pipe is closed.
    });
    rx.recv_timeout(WAIT)
        .expect("turnout up prints a first line")
}

/// Where the server listens and its token, from its data dir.
fn server_file(data: &Path) -> (SocketAddr, SocketAddr, u32, String) {
    let text = std::fs::read_to_string(data.join("server.json")).expect("server.json");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let addr = |k: &str| v[k].as_str().unwrap().parse().unwrap();
    let token = std::fs::read_to_string(data.join("token")).unwrap();
    (
        addr("public"),
        addr("admin"),
        v["pid"].as_u64().unwrap() as u32,
        token.trim().to_string(),
    )
}

/// A GET for `host` on the router: its status and body, or `None` when
/// nothing answers (the server is gone).
fn try_get(addr: SocketAddr, host: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    let status = raw.split_whitespace().nth(1)?.parse().ok()?;
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// `up` keeps serving with its stdout closed after the first line (and
/// its stderr closed from the start, with `close_stderr`), and SIGTERM
/// still stops it and every instance.
fn keeps_serving_with_closed_streams(name: &str, close_stderr: bool) {
    let dir = TempDir::new(name);
    let data = dir.path().join("data");
    let stderr = if close_stderr {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut up = Up::spawn(&data, Stdio::piped(), stderr, &[]);
    if close_stderr {
        // The read end goes at once: every write to stderr (progress,
        // warnings, the info logs) meets a closed pipe.
        drop(up.child.stderr.take());
    }
    let line = first_line_then_close(up.child.stdout.take().unwrap());
    assert!(line.starts_with("turnout listening "), "{line:?}");
    let (public, admin, pid, token) = server_file(&data);
    assert_eq!(pid, up.pid());
    let auth = format!("Bearer {token}");
    let status = || {
        let r = support::request(
            admin,
            "GET",
            "/v1/apps/hello",
            &[("Authorization", &auth)],
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    // Every instance ready: `up` now writes its URLs to the closed stdout.
    let deadline = Instant::now() + WAIT;
    let ready = loop {
        let s = status();
        let all_ready = s["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|svc| svc["ready"] == svc["scale"]);
        if all_ready {
            break s;
        }
        assert!(Instant::now() < deadline, "never ready: {s:#}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let pids = instance_pids(&ready);
    assert_eq!(pids.len(), 5, "{ready:#}");
    // `up` notices readiness within its 100 ms poll and writes; it must
    // still be there, serving, well after that.
    let watch_until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < watch_until {
        assert!(alive(pid), "turnout up died with its stdout closed");
        let answer = try_get(public, "serviceb.localhost");
        assert_eq!(
            answer,
            Some((200, "Hello world!".to_string())),
            "the router must keep serving"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let exit = up.stop();
    assert!(exit.success(), "turnout up exited with {exit}");
    let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "instances left running: {left:?}");
    assert_eq!(processes_logging_to(&data), Vec::<u32>::new());
}

#[test]
fn up_keeps_serving_when_its_stdout_is_closed() {
    keeps_serving_with_closed_streams("closed-stdout", false);
}

#[test]
fn up_keeps_serving_when_its_stdout_and_stderr_are_closed() {
    keeps_serving_with_closed_streams("closed-both", true);
}

/// Everything `up` wrote to its stderr (a pipe) from start to a SIGTERM
/// sent once its first instance-start log line was seen.
fn stderr_until_stopped(name: &str, env: &[(&str, &str)]) -> String {
    let dir = TempDir::new(name);
    let data = dir.path().join("data");
    let mut up = Up::spawn(&data, Stdio::null(), Stdio::piped(), env);
    let (tx, rx) = mpsc::channel();
    let pipe = up.child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut text = String::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no log line within {WAIT:?}; stderr:\n{text}"));
        text.push_str(&line);
        text.push('\n');
        if line.contains("instance started") {
            break;
        }
    }
    let exit = up.stop();
    // The rest, up to the end of the pipe (the process is gone).
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        text.push_str(&line);
        text.push('\n');
    }
    assert!(
        exit.success(),
        "turnout up exited with {exit}; stderr:\n{text}"
    );
    text
}

#[test]
fn up_logs_to_a_pipe_without_colour() {
    let text = stderr_until_stopped("no-colour-pipe", &[]);
    assert!(!text.contains("\x1b["), "ANSI codes on a pipe:\n{text:?}");
}

#[test]
fn no_color_turns_the_logs_colour_off_even_when_forced() {
    let text = stderr_until_stopped(
        "no-colour-env",
        &[("NO_COLOR", "1"), ("CLICOLOR_FORCE", "1")],
    );
    assert!(
        !text.contains("\x1b["),
        "ANSI codes with NO_COLOR:\n{text:?}"
    );
}

/// The check above can see colour: forced, the logs carry it.
#[test]
fn clicolor_force_colours_the_logs() {
    let text = stderr_until_stopped("forced-colour", &[("CLICOLOR_FORCE", "1")]);
    assert!(text.contains("\x1b["), "no ANSI codes when forced:\n{text}");
}

/// Waits until every instance of `up` is ready; their pids.
fn ready_pids(data: &Path) -> Vec<u32> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Ok(text) = std::fs::read_to_string(data.join("server.json"))
            && !text.is_empty()
        {
            let (_, admin, _, token) = server_file(data);
            let auth = format!("Bearer {token}");
            let r = support::request(
                admin,
                "GET",
                "/v1/apps/hello",
                &[("Authorization", &auth)],
                None,
            );
            if r.status == 200 {
                let s = r.json();
                let services = s["services"].as_array().unwrap();
                if !services.is_empty() && services.iter().all(|v| v["ready"] == v["scale"]) {
                    return instance_pids(&s);
                }
            }
        }
        assert!(Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The terminal of `up` goes away (SIGHUP): a graceful stop, every
/// instance with it, instead of a server killed with its instances left.
#[test]
fn a_hangup_stops_up_and_its_instances() {
    let dir = TempDir::new("hangup");
    let data = dir.path().join("data");
    let mut up = Up::spawn(&data, Stdio::null(), Stdio::null(), &[]);
    let pids = ready_pids(&data);
    assert_eq!(pids.len(), 5);
    signal(up.pid(), "HUP");
    let exit = up
        .wait_exit(WAIT)
        .expect("turnout up exits within 30 s of SIGHUP");
    assert!(exit.success(), "turnout up exited with {exit}");
    let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "instances left running: {left:?}");
}

/// Under `nohup`, SIGHUP stays ignored: `up` keeps serving.
#[test]
fn under_nohup_a_hangup_is_ignored() {
    if Command::new("nohup").arg("true").output().is_err() {
        eprintln!("skipped: no nohup here");
        return;
    }
    let dir = TempDir::new("nohup");
    let data = dir.path().join("data");
    let mut cmd = Command::new("nohup");
    cmd.arg(env!("CARGO_BIN_EXE_turnout"))
        .args(["up", "examples/hello/app.yaml", "--data-dir"])
        .arg(&data)
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(["--internal-listen", "127.0.0.1:0"])
        .current_dir(support::root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
    let mut up = Up {
        child: cmd.spawn().expect("nohup turnout up starts"),
        data: data.clone(),
    };
    let pids = ready_pids(&data);
    let (public, _, pid, _) = server_file(&data);
    signal(pid, "HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert!(alive(pid), "turnout up died of SIGHUP under nohup");
    assert_eq!(
        try_get(public, "serviceb.localhost"),
        Some((200, "Hello world!".to_string()))
    );
    let exit = up.stop();
    assert!(exit.success(), "{exit}");
    let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "instances left running: {left:?}");
}
