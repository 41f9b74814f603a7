//! `turnout up` names the app as `deploy` does (DESIGN §2): `--name`, else
//! the template's `name:`, else the template's directory.

mod support;

use std::time::Duration;

use support::{Server, TempDir};

const WAIT: Duration = Duration::from_secs(30);

/// A compose template named `other` in a directory named `folder`.
fn named_template(dir: &TempDir) -> String {
    std::fs::create_dir_all(dir.path().join("folder")).unwrap();
    let file = dir.path().join("folder/app.yaml");
    std::fs::write(
        &file,
        "name: other\nservices:\n  web:\n    command: turnout demo-app --text hi\n    labels:\n      aliyun.routing.port_5000: web\n",
    )
    .unwrap();
    file.to_str().unwrap().to_string()
}

/// The names of the apps on the server.
fn apps(server: &Server) -> Vec<String> {
    let r = server.api("GET", "/v1/apps", None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["app"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn up_names_the_app_after_the_templates_name_field() {
    let dir = TempDir::new("up-name-field");
    let file = named_template(&dir);
    let server = Server::start(&["up", &file], &dir.path().join("data"), &[]);
    server.wait_line("app other is up", WAIT);
    assert_eq!(apps(&server), ["other"]);
    assert_eq!(server.get("web.localhost").body, "hi");
}

#[test]
fn up_name_flag_wins_over_the_templates_name_field() {
    let dir = TempDir::new("up-name-flag");
    let file = named_template(&dir);
    let server = Server::start(&["up", &file, "--name", "x"], &dir.path().join("data"), &[]);
    server.wait_line("app x is up", WAIT);
    assert_eq!(apps(&server), ["x"]);
}

#[test]
fn up_refuses_an_invalid_name_before_starting_anything() {
    let dir = TempDir::new("up-name-invalid");
    let file = named_template(&dir);
    let data = dir.path().join("data");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_turnout"));
    cmd.args(["up", &file, "--name", "my app", "--data-dir"])
        .arg(&data)
        .args(["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .args(["--internal-listen", "127.0.0.1:0"]);
    let out = support::output_within(&mut cmd, WAIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("invalid app name \"my app\""), "{stderr}");
    assert!(!data.exists(), "nothing may start for an invalid name");
}
