//! The local images of the docker runtime (`images/build.sh`, issue 11),
//! checked outside turnout with the plain docker CLI: `turnout:TAG` serves
//! demo-app inside containers on a user-defined bridge network, one
//! demo-app calls another by its network alias, and a Python `urllib`
//! client in `turnout-debian:TAG` (a debootstrapped Debian, no proxy
//! settings) fetches from them by alias. Also: a second build is a no-op,
//! the image carries the binary's hash, the docker twins of
//! `examples/hello` validate, and the script's errors are clear.
//!
//! Where no Docker engine answers, the engine tests print a skip and pass.
//! The images' tag is this process's own (`test-<binary hash>-<pid>`,
//! removed at exit; `TURNOUT_TEST_IMAGE_TAG` picks a fixed one instead,
//! e.g. `dev`, the tag the examples use, which is then kept).

#[macro_use]
mod support;

use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::docker::tag;
use support::{output_within, root, signal};

/// The whole build, a cold debootstrap included (about 2.5 minutes here).
const BUILD_BOUND: Duration = Duration::from_secs(15 * 60);
const DOCKER_BOUND: Duration = Duration::from_secs(60);

fn script() -> PathBuf {
    root().join("images/build.sh")
}

/// `docker ARGS`, which must succeed; its stdout, trimmed.
fn docker(args: &[&str]) -> String {
    let out = output_within(Command::new("docker").args(args), DOCKER_BOUND);
    assert!(
        out.status.success(),
        "docker {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Runs images/build.sh with its progress on the test's stdout and
/// stderr, at most `BUILD_BOUND`: past it, SIGTERM (which the script passes
/// on to debootstrap or docker), then SIGKILL, and the test fails.
fn build(args: &[&str]) -> ExitStatus {
    let mut child = Command::new(script())
        .args(args)
        .stdin(Stdio::null())
        .spawn()
        .expect("images/build.sh starts");
    let deadline = Instant::now() + BUILD_BOUND;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            signal(child.id(), "TERM");
            let grace = Instant::now() + Duration::from_secs(30);
            while child.try_wait().unwrap().is_none() && Instant::now() < grace {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "images/build.sh {args:?} did not finish within {BUILD_BOUND:?}: look at its output above \
                 (a slow apt mirror? try `images/build.sh --mirror URL`)"
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Containers and networks this test made, removed when it ends, on a
/// failure too.
#[derive(Default)]
struct Cleanup {
    containers: Vec<String>,
    networks: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = output_within(Command::new("docker").args(["rm", "-f", c]), DOCKER_BOUND);
        }
        for n in &self.networks {
            let _ = output_within(
                Command::new("docker").args(["network", "rm", n]),
                DOCKER_BOUND,
            );
        }
    }
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn sha256(path: &std::path::Path) -> String {
    let out = output_within(Command::new("sha256sum").arg(path), DOCKER_BOUND);
    assert!(out.status.success(), "sha256sum {}", path.display());
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// Fetches each URL from inside the network, retrying while the servers
/// start (20 s at most), and prints one JSON line per URL.
const CLIENT: &str = r#"
import json, os, sys, time, urllib.request
assert not [k for k in os.environ if k.lower().endswith("_proxy")], os.environ
for url in sys.argv[1:]:
    deadline = time.time() + 20
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                print(json.dumps({"url": url, "status": r.status, "instance": r.headers["X-Demo-Instance"], "body": r.read().decode()}))
                break
        except OSError as e:
            if time.time() > deadline:
                print(json.dumps({"url": url, "error": str(e)}))
                break
            time.sleep(0.1)
import requests
print(json.dumps({"requests": requests.__version__}))
"#;

/// Two test processes never share a tag: the tag names this process and
/// the binary it tests, unless TURNOUT_TEST_IMAGE_TAG fixes it.
#[test]
fn the_test_image_tag_is_this_process_own() {
    if std::env::var_os("TURNOUT_TEST_IMAGE_TAG").is_some() {
        eprintln!("skipped: TURNOUT_TEST_IMAGE_TAG fixes the tag");
        return;
    }
    let tag = tag();
    let hash = sha256(std::path::Path::new(env!("CARGO_BIN_EXE_turnout")));
    assert_eq!(
        tag,
        format!("test-{}-{}", &hash[..12], std::process::id()),
        "{tag}"
    );
    assert_eq!(tag, support::test_image_tag(), "one tag per process");
}

#[test]
fn images_serve_demo_app_to_a_python_client_by_network_alias() {
    need_docker!();
    let tag = tag();
    let (debian, turnout) = (format!("turnout-debian:{tag}"), format!("turnout:{tag}"));
    let binary = env!("CARGO_BIN_EXE_turnout");
    let status = build(&["--tag", &tag, "--binary", binary]);
    assert!(status.success(), "images/build.sh failed: {status}");

    // The image holds this binary, by its label.
    let label = docker(&[
        "image",
        "inspect",
        "--format",
        "{{ index .Config.Labels \"turnout.binary-sha256\" }}",
        &turnout,
    ]);
    assert_eq!(label, sha256(std::path::Path::new(binary)));

    // A second run changes nothing and says so.
    let ids = |images: &[&str]| -> Vec<String> {
        images
            .iter()
            .map(|i| docker(&["image", "inspect", "--format", "{{.Id}}", i]))
            .collect()
    };
    let before = ids(&[&debian, &turnout]);
    let again = output_within(
        Command::new(script()).args(["--tag", &tag, "--binary", binary]),
        Duration::from_secs(120),
    );
    let said = String::from_utf8_lossy(&again.stdout);
    assert!(
        again.status.success(),
        "second build: {said}{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert!(said.contains(&format!("{debian} is up to date")), "{said}");
    assert!(said.contains(&format!("{turnout} is up to date")), "{said}");
    assert_eq!(ids(&[&debian, &turnout]), before, "{said}");

    let mut cleanup = Cleanup::default();
    let net = unique("turnout-images-test");
    docker(&["network", "create", &net]);
    cleanup.networks.push(net.clone());
    let start = |cleanup: &mut Cleanup, alias: &str, command: &[&str]| -> String {
        let name = format!("{net}-{alias}");
        cleanup.containers.push(name.clone());
        let mut args = vec!["run", "-d", "--name", &name, "--network", &net];
        args.extend(["--network-alias", alias, &turnout]);
        args.extend(command);
        docker(&args)
    };
    let a = start(
        &mut cleanup,
        "servicea",
        &[
            "turnout",
            "demo-app",
            "--listen",
            "0.0.0.0:5000",
            "--text",
            "world!",
        ],
    );
    let b = start(
        &mut cleanup,
        "serviceb",
        &[
            "turnout",
            "demo-app",
            "--listen",
            "0.0.0.0:5001",
            "--upstream",
            "http://servicea:5000/",
            "--prefix",
            "Hello ",
        ],
    );
    // The image's own command: `turnout demo-app` on 8080.
    let d = start(&mut cleanup, "plain", &[]);

    let client = format!("{net}-client");
    cleanup.containers.push(client.clone());
    let out = output_within(
        Command::new("docker").args([
            "run",
            "--rm",
            "--name",
            &client,
            "--network",
            &net,
            &debian,
            "python3",
            "-c",
            CLIENT,
            "http://servicea:5000/",
            "http://serviceb:5001/",
            "http://plain:8080/",
        ]),
        Duration::from_secs(120),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the python client failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    assert_eq!(lines.len(), 4, "{text}");
    // demo-app names itself by the host name: the container's short id.
    for (line, id, body) in [
        (&lines[0], &a, "world!"),
        (&lines[1], &b, "Hello world!"),
        (&lines[2], &d, "Hello from turnout demo-app\n"),
    ] {
        assert_eq!(line["status"], 200, "{text}");
        assert_eq!(line["body"], body, "{text}");
        assert_eq!(line["instance"], id[..12], "{text}");
    }
    assert!(lines[3]["requests"].is_string(), "{text}");
}

#[test]
fn build_script_says_what_to_do_when_the_engine_is_away() {
    let out = output_within(
        Command::new(script())
            .arg("turnout")
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock"),
        DOCKER_BOUND,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let no_cli = Command::new("docker").arg("--version").output().is_err();
    if no_cli {
        assert!(
            err.contains("docker not found: install the docker CLI"),
            "{err}"
        );
    } else {
        assert!(
            err.contains("docker is not reachable at /nonexistent/docker.sock: start the engine"),
            "{err}"
        );
    }

    let out = output_within(Command::new(script()).arg("--bogus"), DOCKER_BOUND);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown argument: --bogus"));
    let out = output_within(Command::new(script()).arg("--help"), DOCKER_BOUND);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Usage: images/build.sh"));
}

/// The docker twins of examples/hello run from the image the script
/// builds, each service on the fixed port its route names.
#[test]
fn the_docker_twins_of_hello_validate_and_use_the_built_image() {
    let files = [
        "examples/hello/app-docker.yaml",
        "examples/hello/app-docker-frontend-v2.yaml",
        "examples/hello/app-docker-backend-v2.yaml",
    ];
    let out = output_within(
        Command::new(env!("CARGO_BIN_EXE_turnout"))
            .arg("validate")
            .args(files)
            .current_dir(root()),
        DOCKER_BOUND,
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for file in files {
        assert!(
            said.contains(&format!("{file}: valid (2 services, 2 routes)")),
            "{said}"
        );
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        assert_eq!(text.matches("image: turnout:dev").count(), 2, "{file}");
        for port in ["5000", "5001"] {
            assert!(
                text.contains(&format!("aliyun.routing.port_{port}:")),
                "{file}"
            );
            assert!(text.contains(&format!("\"0.0.0.0:{port}\"")), "{file}");
        }
        assert!(text.contains("\"http://servicea.local/\""), "{file}");
        assert!(!text.contains("PROXY"), "{file}");
    }
}
