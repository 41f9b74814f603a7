//! The CLI verbs that talk to a server (`deploy`, `status`, `weights`...),
//! driven through the real binary: server discovery and its errors without
//! a server, then a real `turnout serve` on ephemeral ports.
//!
//! The pure formatting (shares, colours, tables, app defaulting, address
//! parsing) is unit-tested inside the binary's modules, which an
//! integration test cannot reach; here the same output is checked as a
//! user sees it.

mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{Server, TempDir, alive, instance_pids, kill_all, root};

/// Runs `turnout ARGS` from the repository root with a clean environment
/// (no server, token or colour settings from the caller's shell).
fn turnout(args: &[&str], env: &[(&str, &str)]) -> Output {
    turnout_in(&root(), args, env)
}

fn turnout_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_turnout"));
    cmd.args(args).current_dir(dir);
    for var in [
        "TURNOUT_ADMIN",
        "TURNOUT_TOKEN",
        "TURNOUT_DATA_DIR",
        "NO_COLOR",
        "CLICOLOR_FORCE",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("turnout runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn without_a_server_the_error_says_how_to_start_one() {
    let dir = TempDir::new("cli-noserver");
    let data = dir.path().to_str().unwrap();
    let o = turnout(&["status", "--data-dir", data], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with(
            "error: no turnout server found: start one with `turnout up FILE` or `turnout \
             serve`, or set TURNOUT_ADMIN\n"
        ),
        "{err}"
    );
    assert!(err.contains(&format!("{data}/server.json")), "{err}");
    // TURNOUT_DATA_DIR is the flag's twin.
    let o = turnout(&["ps"], &[("TURNOUT_DATA_DIR", data)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("{data}/server.json")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn server_json_is_read_and_a_dead_server_is_named() {
    let dir = TempDir::new("cli-deadserver");
    let port = closed_port();
    std::fs::write(
        dir.path().join("server.json"),
        format!(
            r#"{{"public": "127.0.0.1:1", "admin": "127.0.0.1:{port}", "internal": "127.0.0.1:2", "pid": 4194304}}"#
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("token"), "t0ken\n").unwrap();
    let data = dir.path().to_str().unwrap();
    let o = turnout(&["history", "--data-dir", data], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "error: the turnout server at 127.0.0.1:{port} (from {data}/server.json) does not answer"
        )),
        "{err}"
    );
    // The pid in server.json is not running: the hint says the server stopped.
    assert!(
        err.contains("names pid 4194304, which is not running"),
        "{err}"
    );
}

#[test]
fn the_admin_address_takes_host_port_or_http_url() {
    let port = closed_port();
    for given in [
        format!("127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}/"),
    ] {
        let o = turnout(&["routes", "--admin", &given], &[("TURNOUT_TOKEN", "x")]);
        assert_eq!(o.status.code(), Some(1));
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "server at 127.0.0.1:{port} (from --admin/TURNOUT_ADMIN) does not answer"
            )),
            "{given}: {err}"
        );
    }
    let o = turnout(
        &["routes"],
        &[
            ("TURNOUT_ADMIN", "http://127.0.0.1"),
            ("TURNOUT_TOKEN", "x"),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: invalid admin address \"http://127.0.0.1\" (from --admin/TURNOUT_ADMIN): the port is missing\n  hint: "),
        "{}",
        stderr(&o)
    );
    // An address but no token anywhere.
    let dir = TempDir::new("cli-notoken");
    let o = turnout(
        &[
            "routes",
            "--admin",
            "127.0.0.1:7070",
            "--data-dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: no API token"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn usage_errors_are_clap_errors() {
    for args in [
        &["weights", "serviceb"][..],
        &["weights", "serviceb", "serviceB-v2"],
        &["weights", "serviceb", "serviceB-v2=101"],
        &["release", "x.yaml", "--strategy", "sideways"],
        &["logs"],
    ] {
        let o = turnout(args, &[]);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
    }
    let o = turnout(&["weights", "r", "a=300"], &[]);
    assert!(
        stderr(&o).contains("not an integer from 0 to 100"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_invalid_template_is_shown_like_validate_and_not_sent() {
    let dir = TempDir::new("cli-invalid");
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        "web-v1:\n  command: turnout demo-app\n  lables:\n    aliyun.scale: 2\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let validate = turnout(&["validate", file], &[]);
    // No server anywhere: the template is refused before one is looked for.
    let empty = TempDir::new("cli-invalid-data");
    let deploy = turnout(
        &["deploy", file, "--data-dir", empty.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(deploy.status.code(), Some(1));
    let err = stderr(&deploy);
    let diagnostic = stderr(&validate);
    assert!(diagnostic.contains(&format!("{file}:3:3:")), "{diagnostic}");
    assert!(
        err.starts_with(&diagnostic),
        "deploy:\n{err}\nvalidate:\n{diagnostic}"
    );
    assert!(
        err.contains("is invalid (1 errors)\n  hint: fix it and try again; nothing was sent"),
        "{err}"
    );
}

/// A `turnout serve` for one test; its instances are killed on drop even
/// if the server failed to stop them, so no test leaves processes behind.
struct Running {
    server: Server,
    dir: TempDir,
    pids: Vec<u32>,
}

impl Running {
    fn start(name: &str) -> Running {
        let dir = TempDir::new(name);
        // A short readiness deadline, so that a release that cannot
        // become ready fails within the test.
        let server = Server::start(&["serve", "--ready-timeout", "3"], dir.path(), &[]);
        Running {
            server,
            dir,
            pids: Vec::new(),
        }
    }

    /// `turnout ARGS` finding this server through its data dir only.
    fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let data = self.dir.path().to_str().unwrap();
        let mut all = vec![("TURNOUT_DATA_DIR", data)];
        all.extend_from_slice(env);
        turnout(args, &all)
    }

    /// Remembers the instance pids of every app, for the cleanup.
    fn track(&mut self) {
        for app in ["hello", "other", "hello-gray"] {
            let r = self.server.api("GET", &format!("/v1/apps/{app}"), None);
            if r.status == 200 {
                for pid in instance_pids(&r.json()) {
                    if !self.pids.contains(&pid) {
                        self.pids.push(pid);
                    }
                }
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.server.child.is_some() {
            self.server.stop();
        }
        let left: Vec<u32> = self.pids.iter().copied().filter(|p| alive(*p)).collect();
        kill_all(&left);
    }
}

#[test]
fn the_verbs_drive_a_real_server() {
    let mut s = Running::start("cli-e2e");

    // deploy: the name comes from the directory, progress goes to stderr,
    // and the status is printed once every instance is ready.
    let o = s.cli(&["deploy", "examples/hello/app.yaml"], &[]);
    s.track();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.starts_with("app hello  template v1\nrelease none\n"),
        "{out}"
    );
    assert!(out.contains("  serviceA-v1  current  3/3 ready\n"), "{out}");
    assert!(
        out.contains("  serviceb.localhost  serviceB-v1 100 (100%)\n"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "try: curl -H 'Host: serviceb.localhost' http://{}/",
            s.server.public
        )),
        "{out}"
    );
    assert!(
        stderr(&o).contains("deployed app hello from examples/hello/app.yaml"),
        "{}",
        stderr(&o)
    );
    assert_eq!(s.server.get("serviceb.localhost").body, "Hello world!");

    // status --output json is the API's document (DESIGN §5).
    let o = s.cli(&["status", "--output", "json"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(status["app"], "hello");
    assert_eq!(status["template_version"], 1);
    assert!(status["release"].is_null());
    assert_eq!(status["services"].as_array().unwrap().len(), 2);
    assert_eq!(status["services"][0]["role"], "current");
    assert_eq!(
        status["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == "serviceb.localhost")
            .unwrap()["weights"],
        serde_json::json!({"serviceB-v1": 100})
    );

    // release --wait: ends in pending-confirmation with the new service green.
    let o = s.cli(
        &["release", "examples/hello/app-frontend-v2.yaml", "--wait"],
        &[],
    );
    s.track();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("release 1  blue-green  pending-confirmation  v1 -> v2\n"),
        "{out}"
    );
    assert!(
        out.contains("  serviceB-v2  new        2/2 ready\n"),
        "{out}"
    );
    assert!(
        out.contains("serviceB-v1 100 (100%)  serviceB-v2 0 (0%)"),
        "{out}"
    );
    // Not a terminal: progress is plain lines, without escape sequences.
    assert!(!stderr(&o).contains('\u{1b}'), "{:?}", stderr(&o));

    // Colours as the console: old blue, new green, unchanged yellow.
    let o = s.cli(&["status"], &[("CLICOLOR_FORCE", "1")]);
    let out = stdout(&o);
    assert!(out.contains("\u{1b}[34mserviceB-v1\u{1b}[39m"), "{out:?}");
    assert!(out.contains("\u{1b}[32mserviceB-v2\u{1b}[39m"), "{out:?}");
    assert!(out.contains("\u{1b}[33munchanged\u{1b}[39m"), "{out:?}");
    assert!(
        out.contains("\u{1b}[1mpending-confirmation\u{1b}[0m"),
        "{out:?}"
    );
    let o = s.cli(&["status"], &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]);
    assert!(!stdout(&o).contains('\u{1b}'), "{:?}", stdout(&o));

    // weights by bare prefix: one line with the shares.
    let o = s.cli(&["weights", "serviceb", "serviceB-v2=100"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "serviceb.localhost  serviceB-v1 100 (50%)  serviceB-v2 100 (50%)\n"
    );
    let weights = &s.server.status("hello")["routes"];
    let route = weights
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "serviceb.localhost")
        .unwrap();
    assert_eq!(
        route["weights"],
        serde_json::json!({"serviceB-v1": 100, "serviceB-v2": 100})
    );

    // A refused command: a second release while one is running.
    let o = s.cli(&["release", "examples/hello/app-backend-v2.yaml"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("error: ") && err.contains("pending-confirmation"),
        "{err}"
    );
    assert!(err.contains("\n  hint: "), "{err}");
    assert_eq!(
        s.server.status("hello")["release"]["id"],
        1,
        "nothing changed"
    );

    // A weight for a service that is not on the route: the server's hint.
    let o = s.cli(&["weights", "serviceb.localhost", "serviceA-v1=5"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("\n  hint: "), "{}", stderr(&o));

    // A wrong token is refused, and the CLI says where the token came from.
    let o = s.cli(&["status"], &[("TURNOUT_TOKEN", "not-the-token")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with(
            "error: unauthorized: wrong bearer token (the token came from TURNOUT_TOKEN)\n  hint: "
        ),
        "{}",
        stderr(&o)
    );

    // From another directory, with only TURNOUT_ADMIN (as a URL) and the token.
    let elsewhere = TempDir::new("cli-elsewhere");
    let admin = format!("http://{}", s.server.admin);
    let o = turnout_in(
        elsewhere.path(),
        &["routes"],
        &[
            ("TURNOUT_ADMIN", &admin),
            ("TURNOUT_TOKEN", &s.server.token),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("serviceb.localhost  public    sticky=version   serviceB-v1 100 (50%)  serviceB-v2 100 (50%)"),
        "{}",
        stdout(&o)
    );

    // ps: every instance, with pid and endpoint.
    let o = s.cli(&["ps"], &[]);
    let out = stdout(&o);
    assert!(out.starts_with("ID "), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.contains(" ready ")).count(),
        7,
        "{out}"
    );
    assert!(out.contains("serviceB-v2.2  ready  127.0.0.1:"), "{out}");

    // logs of a service (prefixed) and of one instance (bare), and -f.
    let o = s.cli(&["logs", "serviceB-v2", "--tail", "5"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("serviceB-v2.1 | "), "{}", stdout(&o));
    assert!(stdout(&o).contains("serviceB-v2.2 | "), "{}", stdout(&o));
    let mut follow = Command::new(env!("CARGO_BIN_EXE_turnout"))
        .args([
            "logs",
            "serviceB-v2.1",
            "-f",
            "--tail",
            "1",
            "--output",
            "json",
        ])
        .env("TURNOUT_DATA_DIR", s.dir.path())
        .env_remove("TURNOUT_ADMIN")
        .env_remove("TURNOUT_TOKEN")
        .current_dir(root())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(follow.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _ = follow.kill();
    let _ = follow.wait();
    let line: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(line["instance"], "serviceB-v2.1", "{first}");

    // history lists the release.
    let o = s.cli(&["history"], &[]);
    assert!(
        stdout(&o).contains("1   blue-green  pending-confirmation  v1 -> v2"),
        "{}",
        stdout(&o)
    );

    // rollback restores the weights from before the release.
    let o = s.cli(&["rollback"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("release 1  blue-green  rolled-back"),
        "{}",
        stdout(&o)
    );
    let after = s
        .server
        .wait_status("hello", Duration::from_secs(30), |st| {
            st["services"].as_array().unwrap().len() == 2
        });
    let route = after["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "serviceb.localhost")
        .unwrap()
        .clone();
    assert_eq!(route["weights"], serde_json::json!({"serviceB-v1": 100}));

    // release --wait on a release whose new service never gets ready:
    // the server fails it and rolls back; the CLI stops with the reason.
    let broken = TempDir::new("cli-broken");
    let file = broken.path().join("app-v3.yaml");
    // serviceA-v1 as in app.yaml (unchanged), serviceB-v1 replaced by a
    // serviceB-v3 that listens nowhere, so its routed port never accepts
    // a connection.
    let hello = std::fs::read_to_string(root().join("examples/hello/app.yaml")).unwrap();
    let mut text = hello[..hello.find("serviceB-v1:").unwrap()].to_string();
    text.push_str(
        "serviceB-v3:\n  command: sleep 30\n  labels:\n    aliyun.routing.port_5001: serviceb\n",
    );
    std::fs::write(&file, text).unwrap();
    let o = s.cli(
        &[
            "release",
            file.to_str().unwrap(),
            "--wait",
            "--app",
            "hello",
        ],
        &[],
    );
    s.track();
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(err.contains("serviceB-v3 0/1 ready"), "{err}");
    assert!(
        err.contains("error: release 2 rolled-back: failed"),
        "{err}"
    );
    assert!(err.contains("\n  hint: "), "{err}");
    assert!(
        stdout(&o).contains("release 2  blue-green  rolled-back"),
        "{}",
        stdout(&o)
    );

    // A second app, named after its directory: then --app is needed.
    let other = TempDir::new("cli-other");
    let other_dir = other.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    std::fs::write(
        other_dir.join("app.yaml"),
        "worker-v1:\n  command: turnout demo-app --text other\n",
    )
    .unwrap();
    let o = s.cli(
        &["deploy", other_dir.join("app.yaml").to_str().unwrap()],
        &[],
    );
    s.track();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("app other  template v1\n"),
        "{}",
        stdout(&o)
    );
    let o = s.cli(&["status"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: the server runs 2 apps: hello, other\n  hint: choose one with --app APP\n"
    );
    let o = s.cli(&["status", "--app", "other"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("  worker-v1  current  1/1 ready"),
        "{}",
        stdout(&o)
    );

    // SIGTERM stops the server and every instance it started.
    s.track();
    assert!(!s.pids.is_empty());
    let status = s.server.stop();
    assert!(status.success(), "{status:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.pids.iter().any(|p| alive(*p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<u32> = s.pids.iter().copied().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "instances left running: {left:?}");

    // The stale server.json now names a dead server.
    let o = s.cli(&["status"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("does not answer"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("which is not running"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_gray_template_releases_gray_and_a_flag_releases_it_blue_green() {
    let mut s = Running::start("cli-gray");
    let o = s.cli(&["deploy", "examples/hello-gray/app.yaml"], &[]);
    s.track();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // The block travels to the server with the template: a gray release
    // with its gates; `release` returns once its first step runs.
    let o = s.cli(&["release", "examples/hello-gray/app-v2.yaml"], &[]);
    s.track();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let status = s.server.status("hello-gray");
    assert_eq!(status["release"]["strategy"], "gray", "{status}");
    assert_eq!(status["release"]["step"]["share"], 10, "{status}");
    let o = s.cli(&["abort", "--app", "hello-gray", "--reason", "test"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let status = s.server.status("hello-gray");
    assert_eq!(status["release"]["state"], "rolled-back", "{status}");
    assert_eq!(status["release"]["reason"], "aborted: test", "{status}");

    // --strategy overrides the block.
    let o = s.cli(
        &[
            "release",
            "examples/hello-gray/app-v2.yaml",
            "--strategy",
            "blue-green",
            "--no-wait",
        ],
        &[],
    );
    s.track();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let status = s.server.status("hello-gray");
    assert_eq!(status["release"]["strategy"], "blue-green", "{status}");
    s.track();
}
