//! The Docker end-to-end tests' shared pieces: whether an engine
//! answers (`need_docker!` prints a skip where none does), the docker CLI
//! for looking at what turnout made and cleaning up, the test images
//! (`images/build.sh`, this process's own tag), a cleanup guard for what a
//! server made, and `turnout up` run until it says the app is up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::{Server, output_within, root};

pub const BUILD_BOUND: Duration = Duration::from_secs(15 * 60);
pub const DOCKER_BOUND: Duration = Duration::from_secs(60);
pub const WAIT: Duration = Duration::from_secs(60);
/// This process's own image tag (see [`support::test_image_tag`]).
pub fn tag() -> String {
    super::test_image_tag()
}

/// Why the engine tests cannot run here, if they cannot.
pub fn docker_missing() -> Option<String> {
    if let Err(e) = Command::new("docker").arg("--version").output() {
        return Some(format!("no docker CLI ({e})"));
    }
    let out = output_within(
        Command::new("docker").args(["version", "--format", "{{.Server.APIVersion}}"]),
        DOCKER_BOUND,
    );
    if out.status.success() {
        None
    } else {
        let host =
            std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
        Some(format!(
            "no Docker engine answers at {host}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Returns from the test, saying why, where no engine answers.
#[allow(unused_macros)]
macro_rules! need_docker {
    () => {
        if let Some(why) = $crate::support::docker::docker_missing() {
            eprintln!(
                "skipped: {why}; these tests need a Docker engine (start it: systemctl start docker)"
            );
            return;
        }
    };
}

/// `docker ARGS`; its stdout, trimmed (empty when it failed).
pub fn docker(args: &[&str]) -> String {
    let out = output_within(Command::new("docker").args(args), DOCKER_BOUND);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Makes sure `turnout:TAG` holds the binary under test (images/build.sh
/// rebuilds only when the binary changed).
pub fn ensure_image() {
    let out = output_within(
        Command::new(root().join("images/build.sh"))
            .args(["--tag", &tag(), "--binary", env!("CARGO_BIN_EXE_turnout")])
            .arg("turnout"),
        BUILD_BOUND,
    );
    assert!(
        out.status.success(),
        "images/build.sh turnout failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes sure `turnout-debian:TAG` (python3, from the cached Debian root
/// filesystem) and `turnout:TAG` are there.
pub fn ensure_images() {
    let out = output_within(
        Command::new(root().join("images/build.sh"))
            .args(["--tag", &tag(), "--binary", env!("CARGO_BIN_EXE_turnout")])
            .arg("all"),
        BUILD_BOUND,
    );
    assert!(
        out.status.success(),
        "images/build.sh all failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An app name no other test run uses.
pub fn unique_app(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}{}x{nanos}", std::process::id())
}

/// Removes, when the test ends (a failure too), every container, network
/// and volume labelled with the data dir's server id, and the containers
/// the test made itself by name. Nothing else is touched.
pub struct Cleanup {
    pub data_dir: PathBuf,
    pub own: Vec<String>,
    /// Networks the test made itself, by name.
    pub own_networks: Vec<String>,
}

impl Cleanup {
    /// What the server of `data_dir` makes; nothing the test made itself.
    pub fn of(data_dir: &Path) -> Cleanup {
        Cleanup {
            data_dir: data_dir.to_path_buf(),
            own: Vec::new(),
            own_networks: Vec::new(),
        }
    }

    pub fn server_id(&self) -> Option<String> {
        std::fs::read_to_string(self.data_dir.join("server-id"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(id) = self.server_id() {
            let filter = format!("label=turnout.server={id}");
            for c in docker(&["ps", "-aq", "--filter", &filter]).lines() {
                docker(&["rm", "-f", "-v", c]);
            }
            for n in docker(&["network", "ls", "-q", "--filter", &filter]).lines() {
                docker(&["network", "rm", n]);
            }
            for v in docker(&["volume", "ls", "-q", "--filter", &filter]).lines() {
                docker(&["volume", "rm", v]);
            }
        }
        for c in &self.own {
            docker(&["rm", "-f", c]);
        }
        for n in &self.own_networks {
            docker(&["network", "rm", n]);
        }
    }
}

/// The app's containers: name → (service label, state).
pub fn containers(app: &str) -> BTreeMap<String, (String, String)> {
    let filter = format!("label=turnout.app={app}");
    docker(&[
        "ps",
        "-a",
        "--filter",
        &filter,
        "--format",
        "{{.Names}} {{.Label \"turnout.service\"}} {{.State}}",
    ])
    .lines()
    .filter_map(|l| {
        let mut w = l.split_whitespace();
        Some((
            w.next()?.to_string(),
            (w.next()?.to_string(), w.next()?.to_string()),
        ))
    })
    .collect()
}

pub fn wait_containers(
    app: &str,
    what: &str,
    check: impl Fn(&BTreeMap<String, (String, String)>) -> bool,
) -> BTreeMap<String, (String, String)> {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = containers(app);
        if check(&now) {
            return now;
        }
        assert!(Instant::now() < deadline, "never {what}: {now:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `turnout up --runtime docker --name APP TEMPLATE` with its data in
/// `data`, once it says the app is up.
pub fn up(app: &str, template: &Path, data: &Path) -> Server {
    let template = template.to_str().unwrap();
    let server = Server::start(
        &["up", "--runtime", "docker", "--name", app, template],
        data,
        &[],
    );
    server.wait_line(&format!("app {app} is up"), WAIT);
    server
}

/// The hello example's templates with this run's image tag.
pub fn hello_templates(dir: &Path) -> [PathBuf; 3] {
    [
        "app-docker.yaml",
        "app-docker-frontend-v2.yaml",
        "app-docker-backend-v2.yaml",
    ]
    .map(|name| {
        let text = std::fs::read_to_string(root().join("examples/hello").join(name)).unwrap();
        let path = dir.join(name);
        std::fs::write(
            &path,
            text.replace("turnout:dev", &format!("turnout:{}", tag())),
        )
        .unwrap();
        path
    })
}

/// `turnout VERB ARGS` against `server`, uncoloured: (success, stdout,
/// stderr).
pub fn verb(server: &Server, args: &[&str]) -> (bool, String, String) {
    let out = output_within(
        Command::new(env!("CARGO_BIN_EXE_turnout"))
            .args(args)
            .env("TURNOUT_DATA_DIR", &server.data_dir)
            .env("TURNOUT_ADMIN", server.admin.to_string())
            .env("NO_COLOR", "1"),
        WAIT,
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A CLI verb against the server that must succeed: what it wrote
/// (stdout and stderr).
pub fn cli(server: &Server, args: &[&str]) -> String {
    let (ok, out, err) = verb(server, args);
    assert!(ok, "turnout {args:?} failed: {out}{err}");
    out + &err
}

/// Bodies of `n` requests to `host`, counted.
pub fn answers(server: &Server, host: &str, n: usize) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let r = server.get(host);
        assert_eq!(r.status, 200, "{r:?}");
        *counts.entry(r.body.trim().to_string()).or_insert(0) += 1;
    }
    counts
}

/// `turnout up --runtime docker --name APP FILE` on ephemeral loopback
/// ports with its data in `data`, uncoloured, until it exits: for a start
/// that is refused (a hung one fails the test at [`WAIT`]).
pub fn up_refused(app: &str, file: &Path, data: &Path) -> std::process::Output {
    output_within(
        Command::new(env!("CARGO_BIN_EXE_turnout"))
            .args(["up", "--runtime", "docker", "--name", app])
            .arg(file)
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args(["--internal-listen", "127.0.0.1:0"])
            .env("NO_COLOR", "1"),
        WAIT,
    )
}

/// Runs `turnout up ARGS` until it says the app is up, stops it with
/// SIGTERM and returns what it wrote on stderr, and whether it came up.
pub fn up_stderr(args: &[&str], data: &Path) -> (bool, String) {
    up_stderr_logging(args, data, "warn")
}

/// [`up_stderr`] with the server's log at `rust_log` (`info` shows the
/// progress lines).
pub fn up_stderr_logging(args: &[&str], data: &Path, rust_log: &str) -> (bool, String) {
    use std::io::{BufRead as _, Read as _};
    let mut child = Command::new(env!("CARGO_BIN_EXE_turnout"))
        .arg("up")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(["--internal-listen", "127.0.0.1:0"])
        .env("RUST_LOG", rust_log)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("turnout up starts");
    let mut stderr = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains(" is up") {
                let _ = tx.send(());
            }
        }
    });
    let up = rx.recv_timeout(WAIT).is_ok();
    super::signal(child.id(), "TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (up, err.join().unwrap())
}

/// Removes the image tags a test made, when it ends.
pub struct RemoveImages(pub Vec<String>);

impl Drop for RemoveImages {
    fn drop(&mut self) {
        for image in &self.0 {
            docker(&["rmi", "-f", image]);
        }
    }
}

/// A CLI verb against the server that must be refused: what it wrote
/// (stdout and stderr); the test fails if it succeeded.
pub fn cli_refused(server: &Server, args: &[&str]) -> String {
    let (ok, out, err) = verb(server, args);
    assert!(!ok, "turnout {args:?} succeeded: {out}{err}");
    out + &err
}

/// What the engine holds of a server (by its id in `cleanup`'s data dir):
/// the ids of its containers, networks and volumes, sorted. Two equal
/// snapshots around a refused request show it started and made nothing.
pub fn engine_objects(cleanup: &Cleanup) -> Vec<String> {
    let Some(id) = cleanup.server_id() else {
        return Vec::new();
    };
    let filter = format!("label=turnout.server={id}");
    let mut out: Vec<String> = Vec::new();
    for (kind, args) in [
        (
            "container",
            vec!["ps", "-aq", "--no-trunc", "--filter", &filter],
        ),
        (
            "network",
            vec!["network", "ls", "-q", "--no-trunc", "--filter", &filter],
        ),
        ("volume", vec!["volume", "ls", "-q", "--filter", &filter]),
    ] {
        out.extend(docker(&args).lines().map(|l| format!("{kind} {l}")));
    }
    out.sort();
    out
}

/// A host port that was free a moment ago (bound on every address and let
/// go), for a template's `ports:`.
pub fn free_host_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
