//! Shared pieces of the binary's end-to-end tests: a server started as a
//! real child process on ephemeral ports (stopped on drop), and a tiny
//! blocking HTTP/1.1 client.

#![allow(dead_code)]

#[macro_use]
pub mod docker;
pub mod load;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The repository root (for `examples/`).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "turnout-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
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

/// A running `turnout up` or `turnout serve`.
pub struct Server {
    pub child: Option<Child>,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    pub internal: SocketAddr,
    pub token: String,
    pub data_dir: PathBuf,
    /// Lines the server printed on stdout after the listening line.
    pub stdout: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `turnout <args> --data-dir D --listen 127.0.0.1:0 ...` and
    /// waits for its listening line.
    pub fn start(args: &[&str], data_dir: &Path, extra_env: &[(&str, &str)]) -> Server {
        Server::start_on(args, data_dir, extra_env, "127.0.0.1:0")
    }

    /// [`Server::start`] with the admin address given (a restarted server
    /// that its clients find where they left it).
    pub fn start_on(
        args: &[&str],
        data_dir: &Path,
        extra_env: &[(&str, &str)],
        admin: &str,
    ) -> Server {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_turnout"));
        cmd.args(args)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--admin", admin])
            .args(["--internal-listen", "127.0.0.1:0"])
            .current_dir(root())
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("turnout starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("turnout prints its listening line");
        assert!(line.starts_with("turnout listening "), "{line}");
        let field = |name: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name}= in {line}"))
                .parse()
                .unwrap()
        };
        let token = std::fs::read_to_string(data_dir.join("token"))
            .unwrap()
            .trim()
            .to_string();
        Server {
            public: field("public"),
            admin: field("admin"),
            internal: field("internal"),
            child: Some(child),
            token,
            data_dir: data_dir.to_path_buf(),
            stdout: rx,
        }
    }

    /// Waits for a stdout line containing `text`.
    pub fn wait_line(&self, text: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line with {text:?} within {timeout:?}"),
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// An API call with the server's token.
    pub fn api(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        request(
            self.admin,
            method,
            path,
            &[("Authorization", &format!("Bearer {}", self.token))],
            body,
        )
    }

    /// A GET on the public listener for `host`.
    pub fn get(&self, host: &str) -> Response {
        request(self.public, "GET", "/", &[("Host", host)], None)
    }

    /// The app's status as JSON.
    pub fn status(&self, app: &str) -> serde_json::Value {
        let r = self.api("GET", &format!("/v1/apps/{app}"), None);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }

    /// Polls the status until `check` holds.
    pub fn wait_status(
        &self,
        app: &str,
        timeout: Duration,
        check: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.status(app);
            if check(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "status never matched: {s:#}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server with SIGTERM and waits for it.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        signal(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server with SIGKILL (its instances live on).
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
    }
}

/// Sends a signal with kill(1) (the tests avoid unsafe code).
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status();
}

/// Whether a process is alive (and not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Every process id in /proc.
fn all_pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
}

/// Pids of the processes whose environment holds `key=value`.
pub fn processes_with_env(key: &str, value: &str) -> Vec<u32> {
    let wanted = format!("{key}={value}");
    let mut pids = Vec::new();
    for pid in all_pids() {
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ"))
            && env.split(|b| *b == 0).any(|v| v == wanted.as_bytes())
            && alive(pid)
        {
            pids.push(pid);
        }
    }
    pids
}

/// Pids of the processes whose stdout is a file under `dir`: the
/// instances of the server on that data dir, whose output goes to its
/// `logs/` (found so even when the server is gone).
pub fn processes_logging_to(dir: &Path) -> Vec<u32> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mut pids = Vec::new();
    for pid in all_pids() {
        if std::fs::read_link(format!("/proc/{pid}/fd/1")).is_ok_and(|p| p.starts_with(&dir))
            && alive(pid)
        {
            pids.push(pid);
        }
    }
    pids
}

/// Kills every process of the instance pids given (cleanup after a test
/// that left instances on purpose).
pub fn kill_all(pids: &[u32]) {
    for pid in pids {
        // `--` first: procps' kill reads `kill -KILL -<pgid>` as
        // kill(-1, SIGKILL), every process the caller may signal.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
        signal(*pid, "KILL");
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a new connection (`Connection: close`).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() || method != "GET" {
        req.push_str("Content-Type: application/json\r\n");
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].strip_prefix("\r\n").unwrap_or(&rest[size..]);
    }
    out
}

/// The JSON body of a release request for a file of `examples/hello`.
pub fn template_body(file: &str, extra: &[(&str, &str)]) -> String {
    let text = std::fs::read_to_string(root().join("examples/hello").join(file)).unwrap();
    let mut body = serde_json::json!({ "template": text, "source_name": file });
    for (k, v) in extra {
        body[*k] = serde_json::Value::String((*v).to_string());
    }
    body.to_string()
}

/// The pids of the instances in a status.
pub fn instance_pids(status: &serde_json::Value) -> Vec<u32> {
    status["services"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["instances"].as_array().unwrap().clone())
        .filter_map(|i| i["pid"].as_u64().map(|p| p as u32))
        .collect()
}

/// Runs `cmd` to its end with its output captured. A command still
/// running after `timeout` is stopped (SIGTERM, then SIGKILL) and the test
/// fails: no test waits forever on a server that should have refused.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command starts");
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            signal(child.id(), "TERM");
            std::thread::sleep(Duration::from_secs(2));
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still ran after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Sends `head` (a request line and headers, without the blank line that
/// ends them) and then `body` as bytes on a new connection, writing from
/// another thread while the answer is read (the server may answer before
/// it read everything, e.g. a 413), and parses what comes back. Nothing
/// is added: the caller writes every header, `Connection: close` too.
pub fn raw_request(addr: SocketAddr, head: &[u8], body: Vec<u8>) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut request = head.to_vec();
    request.extend_from_slice(b"\r\n\r\n");
    let sender = std::thread::spawn(move || {
        // The server may close early; a failed write is its answer.
        let _ = writer
            .write_all(&request)
            .and_then(|()| writer.write_all(&body));
    });
    let mut raw = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&chunk[..n]),
            // A reset after the answer was read ends it too.
            Err(_) if !raw.is_empty() => break,
            Err(e) => panic!("reading the answer: {e}"),
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sender.join();
    parse_response(&raw)
}

/// The tag of the local images (`turnout:TAG`, `turnout-debian:TAG`) this
/// test process builds and runs: `TURNOUT_TEST_IMAGE_TAG` when set (then
/// the images are left alone), else `test-<binary hash>-<pid>`, which no
/// other test process uses. A shared tag (`dev`) is mutable: two test
/// binaries built from different sources (two worktrees, or a rebuild
/// while a run goes on) would retag it under each other, and
/// `images/build.sh` removes the image a tag pointed at before. The
/// process's own tags are removed when it exits (`docker rmi`: an image
/// another tag names stays).
pub fn test_image_tag() -> String {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        if let Ok(tag) = std::env::var("TURNOUT_TEST_IMAGE_TAG") {
            return tag;
        }
        let binary = env!("CARGO_BIN_EXE_turnout");
        let out = output_within(
            Command::new("sha256sum").arg(binary),
            Duration::from_secs(60),
        );
        assert!(out.status.success(), "sha256sum {binary}");
        let hash = String::from_utf8_lossy(&out.stdout)[..12].to_string();
        let tag = format!("test-{hash}-{}", std::process::id());
        remove_at_exit(&tag);
        tag
    })
    .clone()
}

/// Removes the images of `tag` once this process has exited, however it
/// ends (a failed test, an abort, a kill): a watcher shell waits for the
/// process to be gone, then untags them (`docker rmi`: an image another
/// tag names stays, one a container still uses too).
fn remove_at_exit(tag: &str) {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
         docker rmi turnout:{tag} turnout-debian:{tag} >/dev/null 2>&1",
        pid = std::process::id()
    );
    let _ = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// `turnout ARGS` finding its server through the data dir `dir` (no admin
/// address or token from the environment, no colour), within 30 s.
pub fn cli_in(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_turnout"));
    cmd.args(args)
        .env("TURNOUT_DATA_DIR", dir)
        .env_remove("TURNOUT_ADMIN")
        .env_remove("TURNOUT_TOKEN")
        .env("NO_COLOR", "1");
    output_within(&mut cmd, Duration::from_secs(30))
}

/// Whether `program ARGS` runs and succeeds (a tool a test needs).
pub fn have(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}
