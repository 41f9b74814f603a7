//! The preview override (DESIGN §8, issue 12 item 7): during a release an
//! operator tries the new version at weight 0 with `X-Turnout-Service`
//! and the preview token that the control plane keeps in its data dir and
//! shows in the status.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use support::{Server, TempDir, request, template_body};

const WAIT: Duration = Duration::from_secs(30);

fn get(server: &Server, headers: &[(&str, &str)]) -> String {
    let mut all = vec![("Host", "serviceb.localhost")];
    all.extend_from_slice(headers);
    let r = request(server.public, "GET", "/", &all, None);
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

#[test]
fn a_new_version_at_weight_0_answers_previews_only() {
    let dir = TempDir::new("preview");
    let server = Server::start(&["up", "examples/hello/app.yaml"], dir.path(), &[]);
    server.wait_line("app hello is up", WAIT);
    let path = dir.path().join("preview-token");
    let token = std::fs::read_to_string(&path).unwrap().trim().to_string();
    assert!(token.len() >= 32, "{token:?}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the preview token is a secret");
    // No release: nothing shown.
    assert!(server.status("hello")["release"].is_null());

    let r = server.api(
        "POST",
        "/v1/apps/hello/releases",
        Some(&template_body("app-frontend-v2.yaml", &[])),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let s = server.wait_status("hello", WAIT, |s| {
        s["release"]["state"] == "pending-confirmation"
    });
    assert_eq!(s["release"]["preview_token"], token.as_str());
    let weights = &s["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "serviceb.localhost")
        .unwrap()["weights"];
    assert_eq!(weights["serviceB-v2"], 0, "{s:#}");

    let preview = [
        ("X-Turnout-Service", "serviceB-v2"),
        ("X-Turnout-Preview-Token", token.as_str()),
    ];
    let wrong = [
        ("X-Turnout-Service", "serviceB-v2"),
        ("X-Turnout-Preview-Token", "not-the-token"),
    ];
    for _ in 0..5 {
        // The new version, at weight 0, only for previews.
        assert_eq!(get(&server, &preview), "Welcome to the world!");
        assert_eq!(get(&server, &[]), "Hello world!");
        assert_eq!(get(&server, &wrong), "Hello world!");
        assert_eq!(
            get(&server, &[("X-Turnout-Service", "serviceB-v2")]),
            "Hello world!"
        );
    }

    // The CLI shows how to preview while the release runs.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_turnout"))
        .args(["status", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "-H 'X-Turnout-Service: serviceB-v2' -H 'X-Turnout-Preview-Token: {token}'"
        )),
        "{text}"
    );

    // Once the release is over the token is no longer shown.
    let r = server.api(
        "POST",
        "/v1/apps/hello/confirm",
        Some(r#"{"switch": true}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let s = server.status("hello");
    assert_eq!(s["release"]["state"], "confirmed");
    assert!(s["release"].get("preview_token").is_none(), "{s:#}");
}
