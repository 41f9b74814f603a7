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

const GRAY: &str = "examples/hello-gray/app-v2.yaml";

#[test]
fn plan_prints_the_steps_shares_and_least_times_of_the_example() {
    let o = turnout(
        &["plan", GRAY, "--from", "examples/hello-gray/app.yaml"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "no warning for the example");
    assert_eq!(
        stdout(&o),
        "\
plan of examples/hello-gray/app-v2.yaml: gray
analysis: every 30s, at least 100 requests to the new version per window; gates: max_error_rate: 1%, max_p99: 500ms, max_p99_increase: 100ms
lanes: on
step 1/3: 10 %  pause 30s, analysis every 30s (at least 30s)
  servicea.local      new  10 %  old  90 %  serviceA-v2  (internal)
  serviceb.localhost  new  10 %  old  90 %  serviceB-v2
step 2/3: 50 %  pause 30s, analysis every 30s (at least 30s)
  servicea.local      new  50 %  old  50 %  serviceA-v2  (internal)
  serviceb.localhost  new  50 %  old  50 %  serviceB-v2
step 3/3: 100 %  pause 30s, analysis every 30s (at least 30s)
  servicea.local      new 100 %  old   0 %  serviceA-v2  (internal)
  serviceb.localhost  new 100 %  old   0 %  serviceB-v2
then: pending-confirmation
minimum time to promote: 90s (every step's pause and analysis window), after the new instances are ready
minimum time to roll back: 30s (the first failing check: one window)
note: this server does not release gray yet; `turnout release` refuses it
"
    );
}

#[test]
fn plan_flags_override_the_block_and_json_carries_the_plan() {
    let o = turnout(
        &[
            "plan",
            GRAY,
            "--output",
            "json",
            "--steps",
            "20,100",
            "--pause",
            "1m",
            "--window",
            "10s",
            "--max-error-rate",
            "0.02",
            "--on-success",
            "confirm",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["plan"]["strategy"], "gray");
    assert_eq!(v["plan"]["steps"], serde_json::json!([20, 100]));
    assert_eq!(v["plan"]["analysis"]["max_error_rate"], "2%");
    assert_eq!(
        v["plan"]["analysis"]["max_p99"], "500ms",
        "the block's gate stays"
    );
    let shares: Vec<u64> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["share"].as_u64().unwrap())
        .collect();
    assert_eq!(shares, [20, 100]);
    assert_eq!(v["steps"][0]["routes"][1]["route"], "serviceb.localhost");
    assert_eq!(v["steps"][0]["routes"][1]["old"], 80);
    assert_eq!(v["steps"][0]["pause"], "1m");
    assert_eq!(v["min_promote_ms"], 120_000);
    assert_eq!(v["min_rollback_ms"], 10_000);
    assert_eq!(v["then"], "confirmed");
    assert_eq!(v["warnings"], serde_json::json!([]));

    // A flag of another strategy warns, and the plan still prints.
    let o = turnout(&["plan", GRAY, "--strategy", "canary"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "x-turnout.release.steps: steps is for gray releases; a canary release ignores it"
        ),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("step 1/1: 5 %"), "{}", stdout(&o));

    // Blue-green and standard have no steps.
    let o = turnout(&["plan", "examples/hello/app-frontend-v2.yaml"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("plan of examples/hello/app-frontend-v2.yaml: blue-green\nthe new services start beside the old ones"), "{}", stdout(&o));
}

#[test]
fn plan_refuses_bad_flags_before_reading_anything() {
    for (flag, value, says) in [
        (
            "--steps",
            "50,10",
            "the steps do not increase: 10 comes after 50",
        ),
        ("--steps", "10,150", "the step 150 is outside 1..100"),
        ("--canary-share", "101", "the share 101 is outside 0..100"),
        ("--pause", "30", "the duration \"30\" has no unit"),
        ("--window", "5h", "unknown duration unit \"h\""),
        ("--max-error-rate", "150%", "is above 100 %"),
        ("--max-error-increase", "-1%", "is negative"),
        ("--strategy", "grey", "did you mean \"gray\"?"),
        ("--on-success", "yes", "unknown on_success \"yes\""),
        ("--goal", "checkout", "does not start with /"),
        ("--canary-scale", "0", "0 is not in 1.."),
    ] {
        let o = turnout(&["plan", "no-such-file.yaml", flag, value], &[]);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("invalid value '{value}' for '{flag}")),
            "{flag}: {err}"
        );
        assert!(err.contains(says), "{flag} {value}: {err}");
        assert!(stdout(&o).is_empty());
    }
    // The same flags on `release` are refused before any request: no
    // server is needed to see it.
    let o = turnout(
        &["release", GRAY, "--steps", "50,10"],
        &[("TURNOUT_DATA_DIR", "/nonexistent")],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("the steps do not increase"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_bad_plan_exits_1_with_every_diagnostic() {
    let file = write_temp(
        "bad-plan.yaml",
        "web:\n  command: run\n  labels: { aliyun.scale: 2 }\nx-turnout:\n  release:\n    strategy: canary\n    canary: { share: 120 }\n    analysis: { window: 30 }\n",
    );
    let f = file.to_str().unwrap();
    let o = turnout(&["plan", f], &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{f}:7:22: x-turnout.release.canary.share: the share 120 is outside 0..100"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "{f}:8:25: x-turnout.release.analysis.window: the duration \"30\" has no unit"
        )),
        "{err}"
    );
    assert!(
        stdout(&o).contains("invalid plan (2 errors); nothing was started"),
        "{}",
        stdout(&o)
    );

    // A merged plan the flags make bad: named by the flag.
    let ok = write_temp(
        "canary.yaml",
        "web:\n  command: run\n  labels: { aliyun.scale: 2 }\nx-turnout: { release: { strategy: canary } }\n",
    );
    let o = turnout(
        &[
            "plan",
            ok.to_str().unwrap(),
            "--canary-scale",
            "3",
            "--output",
            "json",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["path"], "--canary-scale");
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("above the scale of every service"),
        "{v}"
    );
}
