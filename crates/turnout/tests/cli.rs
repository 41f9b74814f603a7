//! The `validate` and `diff` verbs, driven through the real binary: exit
//! codes, human output (with and without colour) and the JSON shape.

use std::path::PathBuf;
use std::process::{Command, Output};

fn turnout(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_turnout"));
    cmd.args(args)
        .current_dir(root())
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("turnout runs")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write_temp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("turnout-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn validate_accepts_the_examples() {
    let o = turnout(
        &[
            "validate",
            "examples/hello/app.yaml",
            "examples/hello/app-frontend-v2.yaml",
            "examples/hello/app-backend-v2.yaml",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("examples/hello/app.yaml: valid (2 services, 2 routes)"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 3, "{out}");
    // Not a terminal: no escape sequences.
    assert!(!out.contains('\u{1b}'), "{out:?}");
}

#[test]
fn validate_reports_every_error_with_place_and_exits_1() {
    let bad = write_temp(
        "bad.yaml",
        "serviceB-v1:\n  command: x\n  labels:\n    aliyun.scale: abc\n    turnout.route.weight: 300\n",
    );
    let o = turnout(&["validate", bad.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(r#"bad.yaml:4:19: serviceB-v1.labels."aliyun.scale": invalid aliyun.scale: found "abc", expected a positive integer"#),
        "{err}"
    );
    assert!(
        err.contains(r#"bad.yaml:5:27: serviceB-v1.labels."turnout.route.weight""#),
        "{err}"
    );
    assert!(err.contains("hint: "), "{err}");
    assert!(stdout(&o).contains("invalid (2 errors)"), "{}", stdout(&o));
}

#[test]
fn validate_json_lists_errors_and_the_template() {
    let bad = write_temp("bad-json.yaml", "web:\n  lables: {}\n");
    let o = turnout(
        &[
            "validate",
            "--output",
            "json",
            "examples/hello/app.yaml",
            bad.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(doc["valid"], false);
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files[0]["valid"], true);
    assert_eq!(files[0]["template"]["services"][0]["name"], "serviceA-v1");
    assert_eq!(files[0]["template"]["services"][0]["settings"]["scale"], 3);
    assert_eq!(files[1]["valid"], false);
    let errors = files[1]["errors"].as_array().unwrap();
    assert_eq!(
        errors.len(),
        2,
        "the typo and the missing command: {errors:?}"
    );
    let e = errors.iter().find(|e| e["path"] == "web.lables").unwrap();
    assert_eq!(e["path"], "web.lables");
    assert_eq!(e["line"], 2);
    assert_eq!(e["column"], 3);
    assert_eq!(e["hint"], "did you mean \"labels\"?");
}

#[test]
fn validate_missing_file_is_invalid_input() {
    let o = turnout(&["validate", "no/such/file.yaml"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("cannot read no/such/file.yaml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn diff_frontend_release() {
    let o = turnout(
        &[
            "diff",
            "examples/hello/app.yaml",
            "examples/hello/app-frontend-v2.yaml",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let role = |name: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(role("serviceA-v1"), "unchanged", "{out}");
    assert_eq!(role("serviceB-v1"), "old", "{out}");
    assert_eq!(role("serviceB-v2"), "new", "{out}");
    assert!(
        out.contains("serviceb.localhost  shared  serviceB-v1, serviceB-v2"),
        "{out}"
    );
}

#[test]
fn diff_backend_release_json() {
    let o = turnout(
        &[
            "diff",
            "-o",
            "json",
            "examples/hello/app-frontend-v2.yaml",
            "examples/hello/app-backend-v2.yaml",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let services = doc["services"].as_array().unwrap();
    let find = |n: &str| services.iter().find(|s| s["name"] == n).cloned().unwrap();
    assert_eq!(find("serviceB-v2")["role"], "unchanged");
    assert_eq!(find("serviceB-v2")["color"], "yellow");
    assert_eq!(find("serviceA-v1")["role"], "old");
    assert_eq!(find("serviceA-v1")["color"], "blue");
    assert_eq!(find("serviceA-v2")["role"], "new");
    assert_eq!(find("serviceA-v2")["color"], "green");
    let route = doc["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "servicea.local")
        .cloned()
        .unwrap();
    assert_eq!(route["change"], "shared");
    assert_eq!(
        route["services"],
        serde_json::json!(["serviceA-v1", "serviceA-v2"])
    );
    assert_eq!(doc["errors"], serde_json::json!([]));
    assert!(doc["warnings"].is_array());
}

#[test]
fn diff_refuses_a_changed_service_for_blue_green_only() {
    let old = write_temp("old.yaml", "web-v1:\n  command: demo --text a\n");
    let new = write_temp("new.yaml", "web-v1:\n  command: demo --text b\n");
    let o = turnout(&["diff", old.to_str().unwrap(), new.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("service web-v1 changed"), "{err}");
    assert!(
        err.contains("web-v2"),
        "the hint suggests the next name: {err}"
    );
    let o = turnout(
        &[
            "diff",
            "--strategy",
            "standard",
            old.to_str().unwrap(),
            new.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("replaced in place"), "{}", stdout(&o));
}

#[test]
fn diff_of_identical_templates_has_nothing_to_release() {
    let o = turnout(
        &["diff", "examples/hello/app.yaml", "examples/hello/app.yaml"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nothing to release"), "{}", stderr(&o));
}

#[test]
fn colour_follows_no_color_and_force() {
    let args = [
        "diff",
        "examples/hello/app.yaml",
        "examples/hello/app-frontend-v2.yaml",
    ];
    let forced = stdout(&turnout(&args, &[("CLICOLOR_FORCE", "1")]));
    // Blue for old, green for new, yellow for unchanged (ANSI 34, 32, 33).
    assert!(forced.contains("\u{1b}[34mserviceB-v1"), "{forced:?}");
    assert!(forced.contains("\u{1b}[32mserviceB-v2"), "{forced:?}");
    assert!(forced.contains("\u{1b}[33mserviceA-v1"), "{forced:?}");
    let plain = stdout(&turnout(
        &args,
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")],
    ));
    assert!(!plain.contains('\u{1b}'), "{plain:?}");
}

#[test]
fn usage_errors_exit_2() {
    let o = turnout(&["diff", "only-one.yaml"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let o = turnout(&["diff", "--strategy", "sideways", "a.yaml", "b.yaml"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown strategy"), "{}", stderr(&o));
    let o = turnout(&["frobnicate"], &[]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn help_lists_the_working_verbs() {
    let o = turnout(&["--help"], &[]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    for verb in ["validate", "diff", "demo-app"] {
        assert!(out.contains(verb), "{verb} missing from --help:\n{out}");
    }
}

#[test]
fn completions_cover_the_verbs() {
    for shell in ["bash", "zsh", "fish"] {
        let o = turnout(&["completions", shell], &[]);
        assert_eq!(o.status.code(), Some(0), "{shell}: {}", stderr(&o));
        let out = stdout(&o);
        for verb in ["release", "confirm", "rollback", "weights"] {
            assert!(out.contains(verb), "{shell} completion lacks {verb}");
        }
    }
    assert_eq!(
        turnout(&["completions", "cmd.exe"], &[]).status.code(),
        Some(2)
    );
}

/// `turnout diff A B | head -1`, `turnout validate ... | less` quit early:
/// a closed stdout ends the verb quietly, with no panic.
#[test]
fn a_closed_stdout_is_no_panic() {
    for args in [
        vec![
            "diff",
            "examples/hello/app.yaml",
            "examples/hello/app-frontend-v2.yaml",
        ],
        vec!["validate", "examples/hello/app.yaml"],
        vec!["validate", "--output", "json", "examples/hello/app.yaml"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        // The reading end is gone before the verb writes anything.
        drop(reader);
        let output = Command::new(env!("CARGO_BIN_EXE_turnout"))
            .args(&args)
            .current_dir(root())
            .stdout(writer)
            .output()
            .unwrap();
        let err = stderr(&output);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(output.status.code(), Some(101), "{args:?}: {err}");
    }
}
