//! Probes of instances of the process runtime: probe commands run beside
//! the instance, and the engine's probe loop against a real server.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::*;
use turnout_runtime::{
    Handle, InstanceSpec, ProbePlan, ProbeResult, ProbeSchedule, ProbeTarget, Readiness, Runtime,
    allocate_ports, instance_env, primary_port, probe, probe_instance, service_ports,
};
use turnout_runtime_process::ProcessRuntime;
use turnout_spec::Service;

const TIMEOUT: Duration = Duration::from_secs(5);

fn service(yaml: &str) -> Service {
    let parsed = turnout_spec::parse("app.yaml", yaml, &|_| None).unwrap();
    parsed.template.services.into_iter().next().unwrap()
}

fn instance(service: &Service) -> InstanceSpec {
    let ports = allocate_ports(&service_ports(service)).unwrap();
    let primary = primary_port(service);
    let mut env = vec![("ROLE".to_string(), "web".to_string())];
    env.extend(instance_env(&ports, primary, None, "web.1"));
    InstanceSpec {
        id: "web.1".into(),
        app: "app".into(),
        service: service.name.clone(),
        key: "key-web.1".into(),
        command: service.command.clone().unwrap(),
        env,
        ports,
        primary_port: primary,
        working_dir: Some(PathBuf::from("/tmp")),
        container: None,
    }
}

/// Probes with `sh -c cmd` as an instance whose environment is `env`.
async fn sh_probe(cmd: &str, env: &[(&str, &str)], timeout: Duration) -> ProbeResult {
    let target = ProbeTarget::Exec {
        argv: vec!["/bin/sh".into(), "-c".into(), cmd.into()],
    };
    exec_probe(&target, env, timeout).await
}

async fn exec_probe(target: &ProbeTarget, env: &[(&str, &str)], timeout: Duration) -> ProbeResult {
    let dir = TempDir::new("exec");
    let rt = ProcessRuntime::new(PathBuf::from("/bin/false"), dir.path().to_path_buf());
    let mut spec = spec("web.1", shell("unused"), dir.path());
    spec.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // The process runtime runs probe commands beside the instance, so no
    // instance needs to run for them.
    probe_instance(&rt, &Handle::new("1:1"), &spec, target, timeout).await
}

#[tokio::test]
async fn command_probes_want_exit_status_0() {
    assert_eq!(sh_probe("exit 0", &[], TIMEOUT).await, ProbeResult::Healthy);
    assert_eq!(
        sh_probe("exit 1", &[], TIMEOUT).await,
        ProbeResult::Unhealthy("probe command exit status: 1".into())
    );
    // The instance's environment.
    assert!(
        sh_probe("test \"$ROLE\" = web", &[("ROLE", "web")], TIMEOUT)
            .await
            .is_healthy()
    );
    assert!(
        !sh_probe("test \"$ROLE\" = web", &[("ROLE", "db")], TIMEOUT)
            .await
            .is_healthy()
    );
    let missing = ProbeTarget::Exec {
        argv: vec!["/nonexistent/check".into()],
    };
    assert!(!exec_probe(&missing, &[], TIMEOUT).await.is_healthy());
}

#[tokio::test]
async fn a_command_probe_is_killed_with_its_children_at_the_timeout() {
    let dir = TempDir::new("probe-timeout");
    let pidfile = dir.path().join("pid");
    let result = sh_probe(
        &format!("sleep 300 & echo $! > '{}'; wait", pidfile.display()),
        &[],
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(
        result,
        ProbeResult::Unhealthy("probe command timed out after 300ms".into())
    );
    let pid: u32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let start = stat(pid).map(|s| s.start_time);
    let _guard = start.map(|start_time| Guard { pid, start_time });
    eventually("the probe's sleep to die", || async {
        (!runs(pid, start)).then_some(())
    })
    .await;
}

/// The engine's loop in miniature: start python's http.server on an
/// allocated port, probe it on the schedule until it is ready, stop it.
#[tokio::test]
async fn a_started_http_server_becomes_ready_on_schedule() {
    let dir = TempDir::new("ready");
    let web = service(
        "services:\n  web:\n    command: python3 -m http.server ${PORT} --bind 127.0.0.1\n    \
         labels:\n      aliyun.routing.port_8000: web\n      aliyun.probe.url: http://container/\n",
    );
    let mut spec = instance(&web);
    spec.working_dir = Some(dir.path().to_path_buf());
    let rt = ProcessRuntime::new(PathBuf::from("/bin/false"), dir.path().to_path_buf());
    let started = rt.start(&spec).await.unwrap();
    let _guard = Guard::new(&started);
    let target = ProbeTarget::from_service(&web, &spec, started.address).unwrap();
    assert_eq!(
        target.to_string(),
        format!("http://127.0.0.1:{}/", spec.ports[&8000])
    );

    let mut schedule = ProbeSchedule::new(ProbePlan::from_service(&web));
    let mut delay = schedule.first_delay();
    assert_eq!(delay, Duration::ZERO);
    let deadline = Instant::now() + DEADLINE;
    let became = loop {
        // The schedule's own pace (100 ms until ready) is what is tested.
        tokio::time::sleep(delay).await;
        let step = schedule.record(probe(&target, schedule.timeout()).await.is_healthy());
        delay = step.next;
        if let Some(readiness) = step.changed {
            break readiness;
        }
        assert_eq!(delay, Duration::from_millis(100));
        assert!(
            Instant::now() < deadline,
            "the http server never became ready"
        );
    };
    assert_eq!(became, Readiness::Ready);
    assert_eq!(delay, Duration::from_secs(2));
    rt.stop(&started.handle, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(!rt.status(&started.handle).await.is_running());
    assert!(
        !probe(&target, Duration::from_secs(1)).await.is_healthy(),
        "the stopped server still answers"
    );
}
