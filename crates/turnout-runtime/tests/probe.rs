//! Probes against real listeners, and probe targets built from templates
//! (probe commands run through a runtime: see the process runtime's
//! tests).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use turnout_runtime::{
    InstanceSpec, ProbeResult, ProbeTarget, allocate_ports, instance_env, primary_port, probe,
    service_ports,
};
use turnout_spec::Service;

const TIMEOUT: Duration = Duration::from_secs(5);
const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A tiny HTTP server: `/ok` → 200, `/moved` → 302, `/fail` → 500,
/// `/silent` → no answer at all.
async fn http_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let status = match path.as_str() {
                    "/ok" => "200 OK",
                    "/moved" => "302 Found\r\nLocation: /ok",
                    "/fail" => "500 Internal Server Error",
                    "/silent" => {
                        std::future::pending::<()>().await;
                        unreachable!()
                    }
                    _ => "404 Not Found",
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
                );
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

fn http(addr: SocketAddr, path: &str) -> ProbeTarget {
    ProbeTarget::Http {
        addr,
        path: path.to_string(),
    }
}

/// A loopback port nobody listens on.
fn closed_port() -> SocketAddr {
    let port = allocate_ports(&[1]).unwrap()[&1];
    SocketAddr::new(LOCALHOST, port)
}

#[tokio::test]
async fn http_probes_want_2xx_or_3xx() {
    let addr = http_server().await;
    assert_eq!(
        probe(&http(addr, "/ok"), TIMEOUT).await,
        ProbeResult::Healthy
    );
    assert_eq!(
        probe(&http(addr, "/moved"), TIMEOUT).await,
        ProbeResult::Healthy
    );
    assert_eq!(
        probe(&http(addr, "/fail"), TIMEOUT).await,
        ProbeResult::Unhealthy("http status 500".into())
    );
    assert_eq!(
        probe(&http(addr, "/nope"), TIMEOUT).await,
        ProbeResult::Unhealthy("http status 404".into())
    );
    let silent = probe(&http(addr, "/silent"), Duration::from_millis(200)).await;
    assert_eq!(
        silent,
        ProbeResult::Unhealthy("timed out after 200ms".into())
    );
    let closed = probe(&http(closed_port(), "/ok"), TIMEOUT).await;
    assert!(!closed.is_healthy());
    let ProbeResult::Unhealthy(reason) = closed else {
        unreachable!()
    };
    assert!(reason.starts_with("connect 127.0.0.1:"), "{reason}");
}

#[tokio::test]
async fn tcp_probes_want_an_accepted_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = ProbeTarget::Tcp {
        addr: listener.local_addr().unwrap(),
    };
    assert_eq!(probe(&open, TIMEOUT).await, ProbeResult::Healthy);
    let closed = ProbeTarget::Tcp {
        addr: closed_port(),
    };
    assert!(!probe(&closed, TIMEOUT).await.is_healthy());
    assert_eq!(
        probe(&ProbeTarget::Started, TIMEOUT).await,
        ProbeResult::Healthy
    );
}

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

#[test]
fn probe_targets_come_from_labels_then_healthcheck_then_the_routed_port() {
    let labelled = service(
        "services:\n  web:\n    command: run\n    healthcheck:\n      test: [\"CMD\", \"false\"]\n    \
         labels:\n      aliyun.routing.port_5000: web\n      aliyun.probe.url: http://container/health?deep=1\n",
    );
    let spec = instance(&labelled);
    assert_eq!(
        ProbeTarget::from_service(&labelled, &spec, LOCALHOST).unwrap(),
        ProbeTarget::Http {
            addr: SocketAddr::new(LOCALHOST, spec.ports[&5000]),
            path: "/health?deep=1".into()
        }
    );

    let tcp = service(
        "services:\n  web:\n    command: run\n    labels:\n      aliyun.routing.port_5000: web\n      \
         aliyun.probe.url: tcp://container:6000\n",
    );
    let spec = instance(&tcp);
    assert_eq!(
        ProbeTarget::from_service(&tcp, &spec, LOCALHOST).unwrap(),
        ProbeTarget::Tcp {
            addr: SocketAddr::new(LOCALHOST, spec.ports[&6000])
        }
    );

    let cmd = service(
        "services:\n  web:\n    command: run\n    labels:\n      aliyun.routing.port_5000: web\n      \
         aliyun.probe.cmd: curl -f localhost:${PORT}\n",
    );
    let spec = instance(&cmd);
    // The runtime runs it: with the instance's environment and directory
    // beside a process, inside a container (exec).
    let ProbeTarget::Exec { argv } = ProbeTarget::from_service(&cmd, &spec, LOCALHOST).unwrap()
    else {
        panic!("not a command probe");
    };
    assert_eq!(
        argv,
        vec![
            "/bin/sh".to_string(),
            "-c".into(),
            format!("curl -f localhost:{}", spec.ports[&5000])
        ]
    );

    let healthcheck = service(
        "services:\n  web:\n    command: run\n    labels:\n      aliyun.routing.port_5000: web\n    \
         healthcheck:\n      test: [\"CMD\", \"check\", \"--port\", \"${PORT_5000}\"]\n",
    );
    let spec = instance(&healthcheck);
    let ProbeTarget::Exec { argv } =
        ProbeTarget::from_service(&healthcheck, &spec, LOCALHOST).unwrap()
    else {
        panic!("not a command probe");
    };
    assert_eq!(
        argv,
        vec![
            "check".to_string(),
            "--port".into(),
            spec.ports[&5000].to_string()
        ]
    );

    // A disabled healthcheck is no healthcheck: the routed port is probed.
    let plain = service(
        "services:\n  web:\n    command: run\n    labels:\n      aliyun.routing.port_5000: web\n    \
         healthcheck:\n      disable: true\n",
    );
    let spec = instance(&plain);
    assert_eq!(
        ProbeTarget::from_service(&plain, &spec, LOCALHOST).unwrap(),
        ProbeTarget::Tcp {
            addr: SocketAddr::new(LOCALHOST, spec.ports[&5000])
        }
    );

    let batch = service("services:\n  job:\n    command: run\n");
    let spec = instance(&batch);
    assert_eq!(
        ProbeTarget::from_service(&batch, &spec, LOCALHOST).unwrap(),
        ProbeTarget::Started
    );

    // A port the engine did not map is an error, not a probe of nothing.
    let mut spec = instance(&labelled);
    spec.ports.clear();
    let err = ProbeTarget::from_service(&labelled, &spec, LOCALHOST).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the probe of web checks container port 5000, which has no mapped port"
    );
}
