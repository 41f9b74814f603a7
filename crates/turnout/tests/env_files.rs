//! The files a template names, read by the CLI (DESIGN §6, §7): the `.env`
//! of its folder feeds `${VAR}` (the environment wins), `env_file` values
//! come before `environment`, a missing `env_file` deploys nothing, and a
//! restarted server reads the stored template back as it was deployed.
//! Through the real binary and a real `turnout up`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{Server, TempDir, output_within};

const WAIT: Duration = Duration::from_secs(30);

/// An app folder whose one service answers its variables A, B and C.
fn app_folder(dir: &Path, env_file: &str) {
    std::fs::write(
        dir.join("app.yaml"),
        format!(
            "\
services:
  web:
    command: turnout demo-app --text \"$$A/$$B/${{C}}/${{D}}\"
    env_file: {env_file}
    environment:
      B: from-environment
    labels:
      aliyun.routing.port_5000: envweb
"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join(".env"),
        "# substitution only\nC=from-dotenv\nD='dotenv-d' # comment\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    std::fs::write(
        dir.join("conf/web.env"),
        "A=from-env-file\nB=from-env-file\n",
    )
    .unwrap();
}

fn turnout(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_turnout"));
    cmd.args(args).current_dir(cwd).env("NO_COLOR", "1");
    cmd.env_remove("C").env_remove("D");
    for (k, v) in env {
        cmd.env(k, v);
    }
    output_within(&mut cmd, WAIT)
}

#[test]
fn validate_substitutes_from_dotenv_and_the_environment_wins() {
    let dir = TempDir::new("dotenv-validate");
    app_folder(dir.path(), "conf/web.env");
    let out = turnout(
        &["validate", "--output", "json", "app.yaml"],
        dir.path(),
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let service = &doc["files"][0]["template"]["services"][0];
    assert_eq!(
        service["command"]["shell"],
        "turnout demo-app --text \"$A/$B/from-dotenv/dotenv-d\""
    );
    let env = &service["environment"];
    assert_eq!(env["A"], "from-env-file");
    assert_eq!(
        env["B"], "from-environment",
        "environment wins over env_file"
    );
    assert_eq!(
        doc["files"][0]["template"]["base_dir"],
        dir.path().canonicalize().unwrap().display().to_string()
    );
    let out = turnout(
        &["validate", "--output", "json", "app.yaml"],
        dir.path(),
        &[("C", "from-shell")],
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let command = doc["files"][0]["template"]["services"][0]["command"]["shell"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        command.contains("/from-shell/"),
        "the environment wins over .env: {command}"
    );
}

#[test]
fn an_unset_variable_is_still_an_error_with_a_hint() {
    let dir = TempDir::new("dotenv-unset");
    app_folder(dir.path(), "conf/web.env");
    std::fs::write(dir.path().join(".env"), "C=only-c\n").unwrap();
    let out = turnout(&["validate", "app.yaml"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("app.yaml:3:14: services.web.command: variable D is not set"),
        "{stdout}"
    );
    assert!(
        stdout.contains("hint: set D in the environment"),
        "{stdout}"
    );
}

#[test]
fn a_bad_dotenv_line_names_the_file_and_line() {
    let dir = TempDir::new("dotenv-bad");
    app_folder(dir.path(), "conf/web.env");
    std::fs::write(dir.path().join(".env"), "C=1\nD=\"open\n").unwrap();
    let out = turnout(&["validate", "app.yaml"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains(".env:2:1: D: the value of D has no closing \""),
        "{stdout}"
    );
}

#[test]
fn a_missing_env_file_names_the_file_and_the_template_and_starts_nothing() {
    let dir = TempDir::new("env-file-missing");
    app_folder(dir.path(), "[conf/web.env, nope.env]");
    let data = dir.path().join("data");
    let out = turnout(
        &[
            "up",
            "app.yaml",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--internal-listen",
            "127.0.0.1:0",
        ],
        dir.path(),
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "app.yaml: web.env_file[1]: cannot read env_file \"nope.env\" of service web"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("create the file, or remove it from env_file"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "nothing started: {out:?}");
    assert!(
        !data.join("turnout.db").exists() && !data.join("server.json").exists(),
        "no server ran"
    );
    let out = turnout(&["validate", "app.yaml"], dir.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "validate refuses it too");
}

#[test]
fn env_file_values_reach_the_instance_and_survive_a_restart() {
    let dir = TempDir::new("env-file-up");
    let app = dir.path().join("shop");
    std::fs::create_dir_all(&app).unwrap();
    app_folder(&app, "conf/web.env");
    let file = app.join("app.yaml");
    let file = file.to_str().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&["up", file], &data, &[]);
    server.wait_line("app shop is up", WAIT);
    let r = server.get("envweb.localhost");
    assert_eq!(
        r.body, "from-env-file/from-environment/from-dotenv/dotenv-d",
        "{r:?}"
    );
    assert_eq!(server.stop().code(), Some(0));
    // The stored template (env_file values merged, its folder in the store)
    // reads back equal to the file read again: `up` resumes instead of
    // refusing "another template".
    let server = Server::start(&["up", file], &data, &[]);
    server.wait_line("app shop is up", WAIT);
    let r = server.get("envweb.localhost");
    assert_eq!(
        r.body, "from-env-file/from-environment/from-dotenv/dotenv-d",
        "{r:?}"
    );
}

#[test]
fn the_api_merges_env_files_and_refuses_a_template_without_their_values() {
    let dir = TempDir::new("env-file-api");
    let mut server = Server::start(&["serve"], dir.path(), &[]);
    let template = "services:\n  web:\n    command: turnout demo-app --text \"$$A/$$B\"\n    env_file: [a.env]\n    environment: {B: b-environment}\n    labels:\n      aliyun.routing.port_5000: apiweb\n";
    let body = |env_files: serde_json::Value, base_dir: &str| {
        serde_json::json!({
            "name": "shop", "template": template, "source_name": "compose.yaml",
            "env_files": env_files, "base_dir": base_dir,
        })
        .to_string()
    };
    let r = server.api(
        "POST",
        "/v1/apps",
        Some(&body(serde_json::json!({}), "/srv/shop")),
    );
    assert_eq!(r.status, 422, "{r:?}");
    assert!(
        r.body
            .contains("the values of env_file \\\"a.env\\\" of service web were not sent"),
        "{}",
        r.body
    );
    let r = server.api(
        "POST",
        "/v1/apps",
        Some(&body(
            serde_json::json!({"a.env": {"A": "a-file", "B": "b-file"}}),
            "srv/shop",
        )),
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.body
            .contains("base_dir \\\"srv/shop\\\" is not an absolute path"),
        "{}",
        r.body
    );
    assert_eq!(
        server.api("GET", "/v1/apps", None).json()["apps"],
        serde_json::json!([]),
        "nothing deployed"
    );
    let r = server.api(
        "POST",
        "/v1/apps",
        Some(&body(
            serde_json::json!({"a.env": {"A": "a-file", "B": "b-file"}}),
            "/srv/shop",
        )),
    );
    assert_eq!(r.status, 201, "{r:?}");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let r = server.get("apiweb.localhost");
        if r.status == 200 {
            assert_eq!(r.body, "a-file/b-environment");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never ready: {r:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    server.api("DELETE", "/v1/apps/shop", None);
    server.stop();
}
