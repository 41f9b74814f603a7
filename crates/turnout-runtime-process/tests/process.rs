//! The process runtime with real child processes.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use turnout_runtime::{
    Handle, InstanceStatus, Runtime, RuntimeError, allocate_ports, instance_env,
};
use turnout_runtime_process::{LogFollower, ProcessRuntime};

/// A runtime whose instances log under `dir`.
fn runtime_in(dir: &Path) -> ProcessRuntime {
    // Tests that do not use a leading `turnout` can give any executable.
    ProcessRuntime::new(PathBuf::from("/bin/echo"), dir.to_path_buf())
}

#[tokio::test]
async fn a_started_instance_runs_until_stopped() {
    let dir = TempDir::new("run");
    let rt = runtime_in(dir.path());
    let started = rt
        .start(&spec("sleeper.1", shell("sleep 300"), dir.path()))
        .await
        .unwrap();
    let _guard = Guard::new(&started);
    assert_eq!(started.address.to_string(), "127.0.0.1");
    assert_eq!(rt.status(&started.handle).await, InstanceStatus::Running);
    // `exec`: the pid becomes the program's own (once the shell has
    // exec'd it), leading its own group.
    eventually("the shell to exec sleep", || async {
        (comm(pid_of(&started)).as_deref() == Some("sleep")).then_some(())
    })
    .await;
    let st = stat(pid_of(&started)).unwrap();
    assert_eq!(st.pgrp, pid_of(&started));
    assert_eq!(st.start_time, start_of(&started));
    assert_ne!(st.pgrp, stat(std::process::id()).unwrap().pgrp);

    rt.stop(&started.handle, Duration::from_secs(10))
        .await
        .unwrap();
    let after = rt.status(&started.handle).await;
    assert!(
        matches!(
            after,
            InstanceStatus::Exited { code: None } | InstanceStatus::Gone
        ),
        "{after:?}"
    );
    assert!(!runs(pid_of(&started), Some(start_of(&started))));
    // Stopping again is fine and sends nothing.
    rt.stop(&started.handle, Duration::from_secs(1))
        .await
        .unwrap();
}

/// The engine is generic over the runtime and polls from spawned tasks.
async fn status_from_a_task<R: Runtime + 'static>(rt: Arc<R>, handle: Handle) -> InstanceStatus {
    tokio::spawn(async move { rt.status(&handle).await })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_generic_engine_can_poll_from_tasks_and_follow_logs() {
    let dir = TempDir::new("generic");
    let rt = Arc::new(runtime_in(dir.path()));
    let spec = spec(
        "counter.1",
        shell("for i in 1 2 3; do echo line$i; sleep 0.1; done; sleep 300"),
        dir.path(),
    );
    let started = rt.start(&spec).await.unwrap();
    let _guard = Guard::new(&started);
    assert_eq!(
        status_from_a_task(rt.clone(), started.handle.clone()).await,
        InstanceStatus::Running
    );
    // `turnout logs -f`: the lines come as the instance writes them.
    let mut follower = LogFollower::new(log_of(dir.path(), &spec), 0);
    for want in ["line1", "line2", "line3"] {
        assert_eq!(follower.next_line().await.unwrap(), want);
    }
    rt.stop(&started.handle, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        !status_from_a_task(rt, started.handle.clone())
            .await
            .is_running()
    );
}

#[tokio::test]
async fn exited_children_are_reaped_with_their_exit_status() {
    let dir = TempDir::new("exit");
    let rt = runtime_in(dir.path());
    let started = rt
        .start(&spec("quitter.1", shell("exit 3"), dir.path()))
        .await
        .unwrap();
    let _guard = Guard::new(&started);
    let code = eventually("the exit status", || {
        let rt = &rt;
        let handle = &started.handle;
        async move {
            match rt.status(handle).await {
                InstanceStatus::Exited { code } => Some(code),
                _ => None,
            }
        }
    })
    .await;
    assert_eq!(code, Some(3));
    // Reaped: no zombie is left behind.
    assert!(stat(pid_of(&started)).is_none_or(|s| s.start_time != start_of(&started)));

    // The background reaper does it without anyone asking for the status.
    let quick = rt
        .start(&spec("quick.1", exec(&["true"]), dir.path()))
        .await
        .unwrap();
    let _guard = Guard::new(&quick);
    eventually("the reaper to reap `true`", || async {
        stat(pid_of(&quick))
            .is_none_or(|s| s.start_time != start_of(&quick))
            .then_some(())
    })
    .await;
    assert_eq!(
        rt.status(&quick.handle).await,
        InstanceStatus::Exited { code: Some(0) }
    );
}

#[tokio::test]
async fn a_program_ignoring_sigterm_is_killed_after_the_grace_period() {
    let dir = TempDir::new("term");
    let rt = runtime_in(dir.path());
    let spec = spec(
        "stubborn.1",
        shell("trap '' TERM; echo armed; sleep 30"),
        dir.path(),
    );
    let started = rt.start(&spec).await.unwrap();
    let _guard = Guard::new(&started);
    // Only once the trap is set does SIGTERM go unheard.
    log_line(&log_of(dir.path(), &spec), |l| (l == "armed").then_some(())).await;

    let grace = Duration::from_millis(400);
    let begun = Instant::now();
    rt.stop(&started.handle, grace).await.unwrap();
    assert!(begun.elapsed() >= grace, "stopped before the grace period");
    // SIGKILL, not an exit of its own.
    assert_eq!(
        rt.status(&started.handle).await,
        InstanceStatus::Exited { code: None }
    );
}

#[tokio::test]
async fn stop_takes_the_instances_own_children_with_it() {
    let dir = TempDir::new("group");
    let rt = runtime_in(dir.path());
    let spec = spec(
        "parent.1",
        shell("sleep 300 & echo child=$!; wait"),
        dir.path(),
    );
    let started = rt.start(&spec).await.unwrap();
    let _guard = Guard::new(&started);
    let child = log_line(&log_of(dir.path(), &spec), |l| value_after(l, "child=")).await;
    let child_start = stat(child).unwrap().start_time;
    let _child_guard = Guard {
        pid: child,
        start_time: child_start,
    };
    assert_eq!(stat(child).unwrap().pgrp, pid_of(&started));
    assert!(runs(child, Some(child_start)));

    rt.stop(&started.handle, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        !runs(child, Some(child_start)),
        "the background sleep survived"
    );
}

#[tokio::test]
async fn what_an_exited_instance_left_running_is_killed() {
    let dir = TempDir::new("leftover");
    let rt = runtime_in(dir.path());
    let spec = spec("daemon.1", shell("sleep 300 & echo child=$!"), dir.path());
    let started = rt.start(&spec).await.unwrap();
    let _guard = Guard::new(&started);
    let child = log_line(&log_of(dir.path(), &spec), |l| value_after(l, "child=")).await;
    let child_start = stat(child).map(|s| s.start_time);
    let _child_guard = child_start.map(|start_time| Guard {
        pid: child,
        start_time,
    });
    let code = eventually("the shell to exit", || {
        let rt = &rt;
        let handle = &started.handle;
        async move {
            match rt.status(handle).await {
                InstanceStatus::Exited { code } => Some(code),
                _ => None,
            }
        }
    })
    .await;
    assert_eq!(code, Some(0));
    // Like a container's processes when its main process exits.
    eventually("the leftover sleep to die", || async {
        (!runs(child, child_start)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn port_variables_are_filled_in_string_and_list_commands() {
    let dir = TempDir::new("ports");
    let rt = runtime_in(dir.path());
    let ports = allocate_ports(&[5000, 9000]).unwrap();
    let (p5000, p9000) = (ports[&5000], ports[&9000]);

    let mut string = spec(
        "web.1",
        shell("echo shell $PORT ${PORT_9000} ${PORT_7:-seven} ${PORT_5000-x}"),
        dir.path(),
    );
    string.ports = ports.clone();
    string.primary_port = Some(5000);
    // The runtime fills the command in itself, not the shell from the
    // environment.
    string.env = vec![("PORT".into(), "wrong".into())];
    let a = rt.start(&string).await.unwrap();
    let _a = Guard::new(&a);
    let line = log_line(&log_of(dir.path(), &string), |l| {
        l.starts_with("shell").then(|| l.to_string())
    })
    .await;
    assert_eq!(line, format!("shell {p5000} {p9000} seven {p5000}"));

    let mut list = spec(
        "web.2",
        exec(&[
            "printf",
            "list %s %s %s\\n",
            "${PORT}",
            "$PORT_5000",
            "${PORT_9:-nine}",
        ]),
        dir.path(),
    );
    list.ports = ports.clone();
    list.primary_port = Some(9000);
    let b = rt.start(&list).await.unwrap();
    let _b = Guard::new(&b);
    let line = log_line(&log_of(dir.path(), &list), |l| {
        l.starts_with("list").then(|| l.to_string())
    })
    .await;
    assert_eq!(line, format!("list {p9000} {p5000} nine"));

    // A port the instance was not given, without a default, starts nothing.
    let mut missing = spec("web.3", exec(&["echo", "${PORT_8080}"]), dir.path());
    missing.ports = ports;
    let err = rt.start(&missing).await.unwrap_err();
    assert!(matches!(err, RuntimeError::UnknownPort { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "PORT_8080 is not set for web.3: the service declares no container port 8080"
    );
    assert_eq!(
        err.hint().unwrap(),
        "declare the port (a routing label, a probe url or `ports: [\"8080\"]`), or give a \
         default: ${PORT_8080:-8080}"
    );
    assert!(!log_of(dir.path(), &missing).exists());
}

#[tokio::test]
async fn environment_is_the_servers_then_the_templates_then_turnouts() {
    let dir = TempDir::new("env");
    let rt = runtime_in(dir.path());
    let mut spec = spec(
        "env.1",
        // `$(printenv PORT)`: the variable, not the runtime's filling-in.
        shell(
            "echo \"home=$HOME path=$PATH port=$(printenv PORT) instance=$TURNOUT_INSTANCE \
             no_proxy=$no_proxy\"",
        ),
        dir.path(),
    );
    let ports = BTreeMap::from([(80, 41234)]);
    // Template first (overriding the server's HOME; its PORT and
    // TURNOUT_INSTANCE are overridden by turnout's).
    spec.env = vec![
        ("HOME".into(), "/template-home".into()),
        ("PORT".into(), "1".into()),
        ("TURNOUT_INSTANCE".into(), "bogus".into()),
    ];
    spec.env
        .extend(instance_env(&ports, Some(80), None, "env.1"));
    let started = rt.start(&spec).await.unwrap();
    let _guard = Guard::new(&started);
    let line = log_line(&log_of(dir.path(), &spec), |l| {
        l.starts_with("home=").then(|| l.to_string())
    })
    .await;
    let path = std::env::var("PATH").unwrap();
    assert_eq!(
        line,
        format!(
            "home=/template-home path={path} port=41234 instance=env.1 \
             no_proxy=localhost,127.0.0.1,::1"
        )
    );
}

#[tokio::test]
async fn stdout_and_stderr_are_appended_to_the_log_file() {
    let dir = TempDir::new("log");
    let rt = runtime_in(dir.path());
    let spec = spec(
        "talker.1",
        shell("echo out; echo err >&2; echo done"),
        dir.path(),
    );
    assert!(!log_of(dir.path(), &spec).parent().unwrap().exists());
    for _ in 0..2 {
        let started = rt.start(&spec).await.unwrap();
        let _guard = Guard::new(&started);
        eventually("the instance to exit", || {
            let rt = &rt;
            let handle = &started.handle;
            async move { (!rt.status(handle).await.is_running()).then_some(()) }
        })
        .await;
    }
    let text = std::fs::read_to_string(log_of(dir.path(), &spec)).unwrap();
    assert_eq!(text, "out\nerr\ndone\nout\nerr\ndone\n");
    let tail = turnout_runtime_process::tail(&log_of(dir.path(), &spec), 2)
        .await
        .unwrap();
    assert_eq!(tail.lines, vec!["err", "done"]);
}

#[tokio::test]
async fn a_leading_turnout_runs_the_given_executable() {
    let dir = TempDir::new("turnout");
    let rt = runtime_in(dir.path()); // "turnout" is /bin/echo here
    let mut string = spec("self.1", shell("turnout from-shell $PORT"), dir.path());
    string.ports = BTreeMap::from([(80, 40000)]);
    string.primary_port = Some(80);
    let list = spec("self.2", exec(&["turnout", "from-list"]), dir.path());
    for (spec, want) in [(string, "from-shell 40000"), (list, "from-list")] {
        let started = rt.start(&spec).await.unwrap();
        let _guard = Guard::new(&started);
        log_line(&log_of(dir.path(), &spec), |l| (l == want).then_some(())).await;
    }
}

#[tokio::test]
async fn the_working_directory_is_the_specs() {
    let dir = TempDir::new("cwd");
    let work = dir.path().join("work dir");
    std::fs::create_dir_all(&work).unwrap();
    let rt = runtime_in(dir.path());
    let mut spec = spec("pwd.1", exec(&["pwd"]), dir.path());
    spec.working_dir = Some(work.clone());
    let started = rt.start(&spec).await.unwrap();
    let _guard = Guard::new(&started);
    let want = work.canonicalize().unwrap().display().to_string();
    log_line(&log_of(dir.path(), &spec), |l| (l == want).then_some(())).await;

    spec.working_dir = Some(dir.path().join("missing"));
    let err = rt.start(&spec).await.unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[tokio::test]
async fn a_program_that_cannot_start_is_an_error() {
    let dir = TempDir::new("spawn");
    let rt = runtime_in(dir.path());
    let err = rt
        .start(&spec(
            "ghost.1",
            exec(&["/nonexistent/program"]),
            dir.path(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, RuntimeError::Spawn { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("cannot start ghost.1 (/nonexistent/program)")
    );
    let err = rt
        .start(&spec("empty.1", shell("   "), dir.path()))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "instance empty.1 has an empty command");
}

#[tokio::test]
async fn a_wrong_start_time_is_never_signalled() {
    let dir = TempDir::new("reuse");
    let rt = runtime_in(dir.path());
    let started = rt
        .start(&spec("victim.1", shell("sleep 300"), dir.path()))
        .await
        .unwrap();
    let _guard = Guard::new(&started);
    // As if the pid had been reused by another process.
    let other = start_of(&started) + 1;
    assert_eq!(
        rt.status(&handle(pid_of(&started), other)).await,
        InstanceStatus::Gone
    );
    rt.stop(&handle(pid_of(&started), other), Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(rt.status(&started.handle).await, InstanceStatus::Running);
    assert!(runs(pid_of(&started), Some(start_of(&started))));
    // A pid that exists nowhere is gone too.
    assert_eq!(
        rt.status(&handle(u32::MAX >> 1, 1)).await,
        InstanceStatus::Gone
    );
}

#[test]
fn the_process_runtime_needs_a_command() {
    let yaml = "services:\n  web:\n    image: nginx\n  job:\n    command: run\n";
    let template = turnout_spec::parse("app.yaml", yaml, &|_| None)
        .unwrap()
        .template;
    let dir = TempDir::new("check");
    let rt = runtime_in(dir.path());
    assert_eq!(rt.name(), "process");
    assert!(rt.check(template.service("job").unwrap()).is_ok());
    let err = rt.check(template.service("web").unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "service web cannot run on the process runtime: it has only an image and no command"
    );
    let RuntimeError::Unsupported { hint, .. } = err else {
        panic!("{err:?}");
    };
    assert!(hint.contains("--runtime docker"), "{hint}");
}

/// Set in the environment of the test binary when it re-runs itself as
/// the "server" that starts an instance and is then killed.
const PARENT_ENV: &str = "TURNOUT_RUNTIME_TEST_PARENT_DIR";
const OUTLIVES: &str = "an_instance_outlives_the_server_that_started_it";

#[test]
fn an_instance_outlives_the_server_that_started_it() {
    if let Ok(dir) = std::env::var(PARENT_ENV) {
        act_as_the_server(Path::new(&dir));
    }
    let dir = TempDir::new("outlive");
    let server = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", OUTLIVES, "--nocapture", "--test-threads=1"])
        .env(PARENT_ENV, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = ChildGuard(server);
    let server_pid = server.0.id();
    let stdout = server.0.stdout.take().unwrap();
    // The server says which instance it started, then waits to be killed.
    // libtest writes `test NAME ... ` before it on the same line.
    let line = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| Some(l.split_once("started ")?.1.to_string()))
        .expect("the server reports its instance");
    let mut words = line.split_whitespace();
    let pid: u32 = words.next().unwrap().parse().unwrap();
    let start_time: u64 = words.next().unwrap().parse().unwrap();
    let _guard = Guard { pid, start_time };
    assert_eq!(stat(pid).unwrap().ppid, server_pid);

    // kill -9 of the server.
    server.0.kill().unwrap();
    server.0.wait().unwrap();

    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(async {
        // A new server finds the instance by pid and start time.
        let rt = runtime_in(dir.path());
        let h = handle(pid, start_time);
        assert_eq!(rt.status(&h).await, InstanceStatus::Running);
        assert_ne!(stat(pid).unwrap().ppid, server_pid, "not re-parented");
        assert_eq!(
            rt.status(&handle(pid, start_time + 1)).await,
            InstanceStatus::Gone
        );
        rt.stop(&h, Duration::from_secs(10)).await.unwrap();
        let after = rt.status(&h).await;
        // Not our child: reaped by whoever adopted it (gone), or a zombie
        // there (exited).
        assert!(
            matches!(
                after,
                InstanceStatus::Gone | InstanceStatus::Exited { code: None }
            ),
            "{after:?}"
        );
        assert!(!runs(pid, Some(start_time)));
    });
}

/// The "server" side of [`an_instance_outlives_the_server_that_started_it`]:
/// starts `sleep 300`, prints its pid and start time, waits forever.
fn act_as_the_server(dir: &Path) -> ! {
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(async {
        let rt = runtime_in(dir);
        let started = rt
            .start(&spec("orphan.1", shell("sleep 300"), dir))
            .await
            .unwrap();
        println!("started {} {}", pid_of(&started), start_of(&started));
        std::future::pending::<()>().await;
    });
    unreachable!("the server waits to be killed")
}

/// A server killed between starting an instance and recording its pid finds
/// it again by a variable of its environment.
#[tokio::test]
async fn an_instance_is_found_by_a_variable_of_its_environment() {
    let dir = TempDir::new("find");
    let rt = runtime_in(dir.path());
    let mut s = spec("finder.1", shell("sleep 300"), dir.path());
    s.key = format!("tok-{}", std::process::id());
    let started = rt.start(&s).await.unwrap();
    let _guard = Guard::new(&started);
    // While the shell execs sleep its environment reads empty for an
    // instant (the new image's is not mapped yet), so the search is
    // retried until the exec is done.
    let found = eventually("the instance to be found after its exec", || async {
        let found = rt.find(&s).await?;
        (comm(pid_of(&found)).as_deref() == Some("sleep")).then_some(found)
    })
    .await;
    assert_eq!(
        (pid_of(&found), start_of(&found)),
        (pid_of(&started), start_of(&started))
    );
    // The key reaches the instance as TURNOUT_INSTANCE_KEY.
    let environ = std::fs::read(format!("/proc/{}/environ", pid_of(&found))).unwrap();
    let wanted = format!("TURNOUT_INSTANCE_KEY={}", s.key);
    assert!(environ.split(|b| *b == 0).any(|v| v == wanted.as_bytes()));
    s.key = "tok-nobody".into();
    assert!(rt.find(&s).await.is_none());
}
