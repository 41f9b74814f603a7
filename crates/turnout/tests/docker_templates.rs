//! Templates on the docker runtime with the real binary and the real
//! engine (issue 11, DESIGN §6.1, §7): the runtime's warnings about the
//! fields it ignores (from `up`, `deploy` and `release`, on both runtimes,
//! and from `validate --runtime` offline), `build:` through the engine API
//! with progress lines and with the context's `.dockerignore` honoured, a
//! bad build refused before anything starts, and pulls the template asks
//! for failing clearly with no registry.
//!
//! Where no engine answers, the engine tests print a skip and pass.

#[macro_use]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::docker::{
    Cleanup, RemoveImages, WAIT, containers, docker, ensure_image, tag, unique_app, up_refused,
    up_stderr, up_stderr_logging, verb,
};
use support::{Server, TempDir, output_within};

/// Warnings about fields a runtime ignores come from the runtime the
/// server runs: the process runtime names itself for `volumes` and `user`;
/// the docker runtime, which honours them, says nothing of them and warns
/// only about what it ignores (`container_name`).
#[test]
fn warnings_name_the_runtime_in_use() {
    let dir = TempDir::new("runtime-warnings");
    let file = dir.path().join("app.yaml");
    let body = |image: &str| {
        format!(
            "services:\n  web:\n    image: {image}\n    command: [\"turnout\", \"demo-app\", \
             \"--listen\", \"0.0.0.0:${{PORT}}\", \"--text\", \"w\"]\n    container_name: shop\n    \
             volumes: [\"data:/data\"]\n    tmpfs: [/run]\n    \
             labels:\n      aliyun.routing.port_5000: web\nvolumes:\n  data: {{}}\n"
        )
    };
    std::fs::write(&file, body("turnout:none")).unwrap();
    let app = unique_app("warnp");
    let (up, stderr) = up_stderr(
        &["--name", &app, file.to_str().unwrap()],
        &dir.path().join("process"),
    );
    assert!(up, "{stderr}");
    for field in ["volumes", "tmpfs", "container_name"] {
        assert!(
            stderr.contains(&format!("service web: the process runtime ignores {field}")),
            "{field}: {stderr}"
        );
    }
    assert!(
        stderr.contains("the process runtime ignores top-level volumes"),
        "{stderr}"
    );
    assert!(!stderr.contains("docker runtime ignores"), "{stderr}");

    need_docker!();
    ensure_image();
    std::fs::write(&file, body(&format!("turnout:{}", tag()))).unwrap();
    let data = dir.path().join("docker");
    let _cleanup = Cleanup::of(&data);
    let app = unique_app("warnd");
    let (up, stderr) = up_stderr(
        &[
            "--runtime",
            "docker",
            "--name",
            &app,
            file.to_str().unwrap(),
        ],
        &data,
    );
    assert!(up, "{stderr}");
    assert!(
        stderr.contains("service web: the docker runtime ignores container_name"),
        "{stderr}"
    );
    assert!(!stderr.contains("process runtime"), "{stderr}");
    for field in ["volumes", "tmpfs"] {
        assert!(
            !stderr.contains(&format!("ignores {field}")),
            "{field}: {stderr}"
        );
    }
}

/// `build:` on the docker runtime (DESIGN §6.1): the context folder,
/// relative to the template's, is sent to the engine as a tar with the
/// Dockerfile and args the template names, the image is tagged with the
/// service's `image:`, containers run it, and the build's steps and the
/// containers' start are shown while `up` waits.
#[test]
fn a_build_is_made_through_the_engine_api_with_progress() {
    need_docker!();
    ensure_image();
    let dir = TempDir::new("docker-build");
    let data = dir.path().join("data");
    let app = unique_app("dkbuild");
    let image = format!("turnout-test-built-{app}:1").to_lowercase();
    let _images = RemoveImages(vec![image.clone()]);
    let _cleanup = Cleanup::of(&data);
    let web = dir.path().join("web");
    std::fs::create_dir(&web).unwrap();
    std::fs::write(web.join("hello.txt"), "hello\n").unwrap();
    std::fs::write(
        web.join("Dockerfile.turnout"),
        format!(
            "FROM turnout:{}\nARG GREETING=unset\nLABEL turnout-test.greeting=$GREETING\n\
             COPY hello.txt /hello.txt\n\
             CMD [\"turnout\", \"demo-app\", \"--listen\", \"0.0.0.0:5000\", \"--text\", \"built\"]\n",
            tag()
        ),
    )
    .unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        format!(
            "services:\n  web:\n    image: {image}\n    build:\n      context: ./web\n      \
             dockerfile: Dockerfile.turnout\n      args: {{ GREETING: hi }}\n    \
             labels:\n      aliyun.routing.port_5000: web\n"
        ),
    )
    .unwrap();
    let (up, stderr) = up_stderr_logging(
        &[
            "--runtime",
            "docker",
            "--name",
            &app,
            file.to_str().unwrap(),
        ],
        &data,
        "info",
    );
    assert!(up, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "building image {image} of service web from {}",
            web.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("build {image}: Step 1/6 : FROM turnout:{}", tag())),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("built image {image} of service web")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("creating container {app}-web-1 ({image})"))
            && stderr.contains("starting container "),
        "{stderr}"
    );
    // The args reached the build; the image is the one the template names.
    assert_eq!(
        docker(&[
            "image",
            "inspect",
            "--format",
            "{{index .Config.Labels \"turnout-test.greeting\"}}",
            &image
        ]),
        "hi"
    );
}

/// A bad `build:` is refused before anything starts, naming what is wrong:
/// a context folder that is not there, and a Dockerfile whose base image
/// is not on this machine (nothing can be pulled here).
#[test]
fn a_bad_build_is_refused_before_anything_starts() {
    need_docker!();
    let dir = TempDir::new("docker-badbuild");
    let data = dir.path().join("data");
    let app = unique_app("dkbadb");
    let _cleanup = Cleanup::of(&data);
    let up = |file: &Path| up_refused(&app, file, &data);
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        "services:\n  web:\n    build: ./nope\n    labels:\n      aliyun.routing.port_5000: web\n",
    )
    .unwrap();
    let out = up(&file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot build image turnout-build-web:")
            && stderr.contains(&format!(
                "the build context {} is not a folder",
                dir.path().join("nope").display()
            )),
        "{stderr}"
    );
    assert!(
        stderr.contains("relative to the template's folder"),
        "{stderr}"
    );
    assert!(containers(&app).is_empty());

    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    let base = format!("turnout-no-such-base-{app}:1").to_lowercase();
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {base}\n")).unwrap();
    std::fs::write(
        &file,
        "services:\n  web:\n    build: ./ctx\n    labels:\n      aliyun.routing.port_5000: web\n",
    )
    .unwrap();
    let started = Instant::now();
    let out = up(&file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot build image turnout-build-web:") && stderr.contains(&base),
        "{stderr}"
    );
    assert!(started.elapsed() < WAIT, "{:?}", started.elapsed());
    assert!(containers(&app).is_empty());
}

/// `pull_policy: always` and `aliyun.latest_image: true` ask for the
/// newest image: with no registry the pull fails, and that is a clear
/// error naming the image and what the pull ran into; the local image is
/// not used in its place. `pull_policy: missing` (and no policy) uses the
/// local image and pulls nothing.
#[test]
fn a_pull_the_template_asks_for_fails_clearly_without_a_registry() {
    need_docker!();
    ensure_image();
    let dir = TempDir::new("docker-pull");
    let data = dir.path().join("data");
    let app = unique_app("dkpull");
    let _cleanup = Cleanup::of(&data);
    let image = format!("turnout:{}", tag());
    let file = dir.path().join("app.yaml");
    // `field` goes under the service, `label` under its labels.
    let write = |field: &str, label: &str| {
        std::fs::write(
            &file,
            format!(
                "services:\n  web:\n    image: {image}\n{field}    command: [\"turnout\", \
                 \"demo-app\", \"--listen\", \"0.0.0.0:5000\"]\n    labels:\n{label}      \
                 aliyun.routing.port_5000: web\n"
            ),
        )
        .unwrap();
    };
    for (field, label, why) in [
        ("    pull_policy: always\n", "", "pull_policy: always"),
        (
            "",
            "      aliyun.latest_image: true\n",
            "aliyun.latest_image: true",
        ),
    ] {
        write(field, label);
        let started = Instant::now();
        let out = up_refused(&app, &file, &data);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{why}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "error: cannot pull image {image} of service web: "
            )),
            "{why}: {stderr}"
        );
        assert!(stderr.contains(&format!("({why})")), "{why}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{why}: {:?}",
            started.elapsed()
        );
        assert!(containers(&app).is_empty(), "{why}");
    }
    // The local image is there all along: `missing` uses it.
    write("    pull_policy: missing\n", "");
    let (up, stderr) = up_stderr_logging(
        &[
            "--runtime",
            "docker",
            "--name",
            &app,
            file.to_str().unwrap(),
        ],
        &data,
        "info",
    );
    assert!(up, "{stderr}");
    assert!(!stderr.contains("pulling image"), "{stderr}");
}

/// A template of `web` (or `web-v2`) and `other`, each serving demo-app on
/// its route (`web`, `other`, or with a `plain-` prefix for the file
/// `plain.yaml`), with `extra` under each service (the fields to warn
/// about).
fn two_services(dir: &Path, file: &str, web: &str, image: &str, extra: &str) -> String {
    let prefix = if file == "plain.yaml" { "plain-" } else { "" };
    let service = |name: &str, route: &str, extra: &str| {
        format!(
            "  {name}:\n    image: {image}\n    command: [\"turnout\", \"demo-app\", \"--listen\", \
             \"0.0.0.0:${{PORT}}\", \"--text\", \"{name}\"]\n{extra}    labels:\n      \
             aliyun.routing.port_5000: {route}\n"
        )
    };
    let text = format!(
        "services:\n{}{}",
        service(web, &format!("{prefix}web"), &extra.replace("NAME", web)),
        service(
            "other",
            &format!("{prefix}other"),
            &extra.replace("NAME", "other")
        ),
    );
    let path = dir.join(file);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The `warning: ...` lines of a verb's stderr.
fn warning_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect()
}

/// `turnout deploy` and `turnout release` print the warnings of the
/// runtime the server runs on stderr (`warning: ...`, with the hint), and
/// keep them in `--output json` beside the status: on the process runtime
/// for a field it ignores (`user`), on docker for `container_name`, which
/// docker ignores, and nothing for `user`, which docker honours. A
/// release warns about the services it starts only (`other` is unchanged).
#[test]
fn deploy_and_release_print_the_runtime_warnings() {
    let dir = TempDir::new("verb-warnings");
    // The process runtime: `user` is ignored.
    let data = dir.path().join("process");
    let server = Server::start(&["serve"], &data, &[]);
    let user = "    user: '1000'\n";
    let v1 = two_services(dir.path(), "v1.yaml", "web", "turnout:none", user);
    let v2 = two_services(dir.path(), "v2.yaml", "web-v2", "turnout:none", user);
    let (ok, _, stderr) = verb(&server, &["deploy", &v1, "--name", "shop"]);
    assert!(ok, "{stderr}");
    let hint = "; hint: the docker runtime (`--runtime docker`) honours it";
    assert_eq!(
        warning_lines(&stderr),
        [
            format!(
                "warning: service web: the process runtime ignores user{hint}; on the process runtime it has no effect"
            ),
            format!(
                "warning: service other: the process runtime ignores user{hint}; on the process runtime it has no effect"
            ),
        ],
        "{stderr}"
    );
    let (ok, stdout, stderr) = verb(&server, &["release", &v2, "--app", "shop", "-o", "json"]);
    assert!(ok, "{stderr}");
    let lines = warning_lines(&stderr);
    assert_eq!(lines.len(), 1, "only the incoming web-v2: {stderr}");
    assert!(
        lines[0].starts_with("warning: service web-v2: the process runtime ignores user; hint: "),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["app"], "shop", "{stdout}");
    assert_eq!(json["release"]["state"], "pending-confirmation", "{stdout}");
    assert_eq!(
        json["warnings"],
        serde_json::json!([lines[0].strip_prefix("warning: ").unwrap()]),
        "{stdout}"
    );
    // A template the runtime has nothing to say about: an empty list.
    let plain = two_services(dir.path(), "plain.yaml", "web", "turnout:none", "");
    let (ok, stdout, stderr) = verb(
        &server,
        &["deploy", &plain, "--name", "plain", "-o", "json"],
    );
    assert!(ok, "{stderr}");
    assert!(warning_lines(&stderr).is_empty(), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["warnings"], serde_json::json!([]), "{stdout}");
    assert_eq!(
        json["services"].as_array().map(Vec::len),
        Some(2),
        "{stdout}"
    );
    drop(server);

    // The docker runtime: `container_name` is ignored, `user` honoured.
    need_docker!();
    ensure_image();
    let data = dir.path().join("docker");
    let _cleanup = Cleanup::of(&data);
    let server = Server::start(&["serve", "--runtime", "docker"], &data, &[]);
    let image = format!("turnout:{}", tag());
    let fields = "    container_name: NAME-box\n    user: '1000'\n";
    let v1 = two_services(dir.path(), "d1.yaml", "web", &image, fields);
    let v2 = two_services(dir.path(), "d2.yaml", "web-v2", &image, fields);
    let app = unique_app("dkwarn");
    let (ok, stdout, stderr) = verb(&server, &["deploy", &v1, "--name", &app, "-o", "json"]);
    assert!(ok, "{stderr}");
    let hint = "; hint: containers are named <app>-<service>-<n>";
    let lines = warning_lines(&stderr);
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with(&format!(
            "warning: service web: the docker runtime ignores container_name{hint}"
        )) && lines[1].starts_with(&format!(
            "warning: service other: the docker runtime ignores container_name{hint}"
        )),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        json["warnings"].as_array().map(Vec::len),
        Some(2),
        "{stdout}"
    );
    let (ok, _, stderr) = verb(&server, &["release", &v2, "--app", &app]);
    assert!(ok, "{stderr}");
    let lines = warning_lines(&stderr);
    assert_eq!(lines.len(), 1, "only the incoming web-v2: {stderr}");
    assert!(
        lines[0].starts_with(&format!(
            "warning: service web-v2: the docker runtime ignores container_name{hint}"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("ignores user"), "{stderr}");
    assert!(!stderr.contains("process runtime"), "{stderr}");
}

/// `turnout validate` gives the warnings of the runtime it is asked for
/// (`--runtime`, else `TURNOUT_RUNTIME`, else process), offline: no
/// server, and no engine even for docker (DOCKER_HOST points nowhere).
#[test]
fn validate_gives_the_warnings_of_the_runtime_it_is_asked_for() {
    let dir = TempDir::new("validate-runtime");
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        "services:\n  web:\n    image: shop:1\n    container_name: shop\n    user: '1000'\n    \
         volumes: [\"data:/data\"]\n    labels:\n      aliyun.routing.port_5000: web\n\
         volumes:\n  data: {}\nnetworks:\n  back: {}\n",
    )
    .unwrap();
    let validate = |args: &[&str], runtime_env: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_turnout"));
        cmd.arg("validate")
            .args(args)
            .arg(&file)
            .env("NO_COLOR", "1")
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .env_remove("TURNOUT_RUNTIME");
        if let Some(r) = runtime_env {
            cmd.env("TURNOUT_RUNTIME", r);
        }
        let out = output_within(&mut cmd, Duration::from_secs(30));
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let name = file.display().to_string();

    let (code, stdout, stderr) = validate(&[], None);
    assert_eq!(code, Some(0), "{stderr}");
    for w in [
        "the process runtime ignores top-level volumes",
        "the process runtime ignores top-level networks",
        "service web: the process runtime ignores container_name",
        "service web: the process runtime ignores user",
        "service web: the process runtime ignores volumes",
    ] {
        assert!(
            stderr.contains(&format!("warning: {name}: {w}\n  hint: ")),
            "{w}: {stderr}"
        );
    }
    assert!(!stderr.contains("docker runtime ignores"), "{stderr}");
    assert!(
        stdout.contains("valid (1 services, 1 routes, 5 warnings)"),
        "{stdout}"
    );

    let docker_says = |stdout: &str, stderr: &str| {
        assert_eq!(
            warning_lines(stderr),
            [
                format!("warning: {name}: the docker runtime ignores top-level networks"),
                format!("warning: {name}: service web: the docker runtime ignores container_name"),
            ],
            "{stderr}"
        );
        assert!(
            stdout.contains("valid (1 services, 1 routes, 2 warnings)"),
            "{stdout}"
        );
    };
    let (code, stdout, stderr) = validate(&["--runtime", "docker"], None);
    assert_eq!(code, Some(0), "{stderr}");
    docker_says(&stdout, &stderr);
    let (code, stdout, stderr) = validate(&[], Some("docker"));
    assert_eq!(code, Some(0), "{stderr}");
    docker_says(&stdout, &stderr);
    // The flag wins over the environment.
    let (_, _, stderr) = validate(&["--runtime", "process"], Some("docker"));
    assert!(stderr.contains("process runtime ignores user"), "{stderr}");

    let (code, stdout, stderr) = validate(&["--runtime", "docker", "-o", "json"], None);
    assert_eq!(code, Some(0), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let warnings = json["files"][0]["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2, "{stdout}");
    assert_eq!(
        warnings[1]["message"],
        "service web: the docker runtime ignores container_name"
    );
    assert_eq!(warnings[1]["severity"], "warning");
    assert!(
        warnings[1]["hint"]
            .as_str()
            .unwrap()
            .starts_with("containers are named <app>-<service>-<n>"),
        "{stdout}"
    );

    let (code, _, stderr) = validate(&["--runtime", "kubernetes"], None);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("invalid value 'kubernetes'") && stderr.contains("process, docker"),
        "{stderr}"
    );
    let (code, _, stderr) = validate(&[], Some("swarm"));
    assert_eq!(code, Some(2), "{stderr}");
}

/// Whether `path` is in the (created, not started) container `name`.
fn in_container(name: &str, path: &str) -> bool {
    let out = output_within(
        Command::new("docker").args(["cp", &format!("{name}:{path}"), "-"]),
        Duration::from_secs(60),
    );
    out.status.success() && !out.stdout.is_empty()
}

/// A `build:` context's `.dockerignore` is honoured as `docker build`
/// honours it: what it excludes is not sent, so `COPY . /ctx/` does not
/// put the secret, the large file or the excluded folder in the image; a
/// `!` line takes a file back; the Dockerfile, though excluded, is still
/// read (the build works). A `.dockerignore` line that is no pattern is a
/// clear error naming the file and the line, and nothing starts.
#[test]
fn a_build_leaves_out_what_the_dockerignore_excludes() {
    need_docker!();
    ensure_image();
    let dir = TempDir::new("docker-ignore");
    let data = dir.path().join("data");
    let app = unique_app("dkign");
    let image = format!("turnout-test-ignored-{app}:1").to_lowercase();
    let probe = format!("{app}-probe");
    let _images = RemoveImages(vec![image.clone()]);
    let _cleanup = Cleanup {
        data_dir: data.clone(),
        own: vec![probe.clone()],
        own_networks: Vec::new(),
    };
    let web = dir.path().join("web");
    std::fs::create_dir_all(web.join("logs")).unwrap();
    std::fs::write(
        web.join("Dockerfile"),
        format!(
            "FROM turnout:{}\nCOPY . /ctx/\n\
             CMD [\"turnout\", \"demo-app\", \"--listen\", \"0.0.0.0:5000\", \"--text\", \"ign\"]\n",
            tag()
        ),
    )
    .unwrap();
    std::fs::write(
        web.join(".dockerignore"),
        "# secrets and bulk stay here\nsecret.key\n**/*.bin\nlogs/\n!logs/keep.log\nDockerfile\n",
    )
    .unwrap();
    std::fs::write(web.join("secret.key"), "do not ship\n").unwrap();
    std::fs::write(web.join("big.bin"), vec![7u8; 32 << 20]).unwrap();
    std::fs::write(web.join("hello.txt"), "hello\n").unwrap();
    std::fs::write(web.join("logs/a.log"), "a\n").unwrap();
    std::fs::write(web.join("logs/keep.log"), "keep\n").unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(
        &file,
        format!(
            "services:\n  web:\n    image: {image}\n    build: ./web\n    \
             labels:\n      aliyun.routing.port_5000: web\n"
        ),
    )
    .unwrap();
    let up_args = [
        "--runtime",
        "docker",
        "--name",
        &app,
        file.to_str().unwrap(),
    ];
    let (up, stderr) = up_stderr_logging(&up_args, &data, "info");
    assert!(up, "{stderr}");
    assert!(
        stderr.contains(&format!("built image {image} of service web")),
        "{stderr}"
    );
    docker(&["create", "--name", &probe, &image]);
    assert!(
        in_container(&probe, "/ctx/hello.txt"),
        "the context was sent"
    );
    assert!(
        in_container(&probe, "/ctx/logs/keep.log"),
        "taken back by !"
    );
    for left_out in [
        "/ctx/secret.key",
        "/ctx/big.bin",
        "/ctx/logs/a.log",
        "/ctx/Dockerfile",
    ] {
        assert!(!in_container(&probe, left_out), "{left_out} was sent");
    }
    // The 32 MiB file is not in the image's size either.
    let size: u64 = docker(&["image", "inspect", "--format", "{{.Size}}", &image])
        .parse()
        .unwrap();
    let base: u64 = docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Size}}",
        &format!("turnout:{}", tag()),
    ])
    .parse()
    .unwrap();
    assert!(size < base + (1 << 20), "{size} vs {base}");

    std::fs::write(web.join(".dockerignore"), "secret.key\n[oops\n").unwrap();
    let data = dir.path().join("data2");
    let _cleanup2 = Cleanup::of(&data);
    let (up, stderr) = up_stderr(&up_args, &data);
    assert!(!up, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: line 2: \"[oops\": a `[` class is not closed with `]`",
            web.join(".dockerignore").display()
        )),
        "{stderr}"
    );
    assert!(containers(&app).is_empty(), "nothing started");
}
