//! An instance that cannot start as things stand (its command is not
//! found, its `working_dir` does not exist) ends the wait at once: `up`
//! exits 1 keeping nothing of an app it deployed, `deploy` exits 1, the
//! status names the reason; nobody waits out a ready timeout for it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{Server, TempDir, cli_in, output_within};

/// Far beyond every wait below: only the start error can end one in time.
const READY_TIMEOUT: &str = "600";
const WAIT: Duration = Duration::from_secs(60);

/// A one-service app whose command is `command`.
fn template(dir: &Path, name: &str, command: &str) -> PathBuf {
    let file = dir.join(name);
    std::fs::write(
        &file,
        format!("web:\n  command: {command}\n  labels:\n    aliyun.routing.port_5000: web\n"),
    )
    .unwrap();
    file
}

/// `turnout up FILE` on ephemeral ports, run to its end.
fn up_to_its_end(file: &Path, data: &Path) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let out = output_within(
        Command::new(env!("CARGO_BIN_EXE_turnout"))
            .args(["up", "--name", "nf"])
            .arg(file)
            .arg("--data-dir")
            .arg(data)
            .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .args(["--internal-listen", "127.0.0.1:0"])
            .args(["--ready-timeout", READY_TIMEOUT])
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1"),
        WAIT,
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn up_stops_at_a_command_that_is_not_found_and_keeps_nothing() {
    let dir = TempDir::new("up-not-found");
    let data = dir.path().join("data");
    let bad = template(
        dir.path(),
        "bad.yaml",
        "turnout-no-such-program --port 5000",
    );
    let (code, stderr, took) = up_to_its_end(&bad, &data);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "error: cannot start web.1: it exited with status 127 before it was ready: its \
             command was not found"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("nothing of app nf is kept"), "{stderr}");
    // The shell's own words, from the instance's log.
    assert!(
        stderr.contains("web.1's last output:")
            && stderr.contains("turnout-no-such-program: not found"),
        "{stderr}"
    );
    eprintln!("up ended {took:?} after it started (its ready timeout: {READY_TIMEOUT} s)");
    // Nothing is kept: `up` of the fixed template in the same data dir
    // starts it, instead of refusing "another template than" the bad one.
    let good = template(dir.path(), "good.yaml", "turnout demo-app --text fixed");
    let mut server = Server::start(&["up", "--name", "nf", good.to_str().unwrap()], &data, &[]);
    server.wait_line("app nf is up", WAIT);
    assert_eq!(server.get("web.localhost").body, "fixed");
    let status = server.status("nf");
    assert!(
        status["services"][0]["instances"][0].get("error").is_none(),
        "{status}"
    );
    assert!(server.stop().success());
}

#[test]
fn up_resuming_an_app_that_cannot_start_keeps_it() {
    let dir = TempDir::new("up-resume-not-found");
    let data = dir.path().join("data");
    let workdir = dir.path().join("workdir");
    std::fs::create_dir(&workdir).unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        format!(
            "web:\n  command: turnout demo-app --text here\n  working_dir: {}\n  labels:\n    \
             aliyun.routing.port_5000: web\n",
            workdir.display()
        ),
    )
    .unwrap();
    let mut server = Server::start(&["up", "--name", "nf", file.to_str().unwrap()], &data, &[]);
    server.wait_line("app nf is up", WAIT);
    assert!(server.stop().success());
    // The machine changed under the app: its working_dir is gone.
    std::fs::remove_dir(&workdir).unwrap();
    let (code, stderr, _) = up_to_its_end(&file, &data);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("resuming app nf"), "{stderr}");
    assert!(
        stderr.contains("error: cannot start web.1")
            && stderr.contains(&format!(
                "working directory {} does not exist",
                workdir.display()
            )),
        "{stderr}"
    );
    assert!(stderr.contains("app nf is kept in"), "{stderr}");
    // Kept: with the directory back, `up` resumes it.
    std::fs::create_dir(&workdir).unwrap();
    let mut server = Server::start(&["up", "--name", "nf", file.to_str().unwrap()], &data, &[]);
    server.wait_line("app nf is up", WAIT);
    assert_eq!(server.get("web.localhost").body, "here");
    assert!(server.stop().success());
}

#[test]
fn deploy_stops_at_an_instance_that_cannot_start_and_the_status_says_why() {
    let dir = TempDir::new("deploy-not-found");
    let mut server = Server::start(&["serve"], dir.path(), &[]);
    let bad = template(dir.path(), "bad.yaml", "turnout-no-such-program");
    let out = cli_in(
        dir.path(),
        &[
            "deploy",
            bad.to_str().unwrap(),
            "--name",
            "nf",
            "--timeout",
            READY_TIMEOUT,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot start web.1: it exited with status 127 before it was ready"),
        "{stderr}"
    );
    assert!(
        stderr.contains("the server keeps trying to start it"),
        "{stderr}"
    );
    // The status says so while it is not running (between its restarts).
    let status = server.wait_status("nf", WAIT, |s| {
        s["services"][0]["instances"][0]["error"].is_string()
    });
    let error = status["services"][0]["instances"][0]["error"]
        .as_str()
        .unwrap();
    assert!(error.contains("its command was not found"), "{error}");
    assert!(server.stop().success());
}
