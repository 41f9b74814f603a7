//! Health probes of one instance: what to check, and checking it once.
//!
//! What to check comes from the template (DESIGN §4): turnout's probe
//! labels first, else the compose `healthcheck`, else a TCP connection to
//! the instance's primary (first routed) port, else nothing — the
//! instance is ready once started. When to check is
//! [`ProbeSchedule`](crate::ProbeSchedule)'s business.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use turnout_spec::template::HealthTest;
use turnout_spec::{ProbeCheck, Service};

use crate::error::RuntimeError;
use crate::runtime::{ExecOutcome, Handle, InstanceSpec, Runtime};

/// What to check on one instance, addresses resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeTarget {
    /// `GET path` over HTTP/1.1; a 2xx or 3xx answer is healthy.
    Http {
        /// The instance's address and mapped port.
        addr: SocketAddr,
        /// The path (and query) to request.
        path: String,
    },
    /// An accepted TCP connection is healthy.
    Tcp {
        /// The instance's address and mapped port.
        addr: SocketAddr,
    },
    /// A command run in the instance through [`Runtime::exec`]; exit
    /// status 0 is healthy.
    Exec {
        /// The program and its arguments (`sh -c <cmd>` for shell forms).
        argv: Vec<String>,
    },
    /// No probe: the instance is ready once started.
    Started,
}

impl ProbeTarget {
    /// The probe of one instance of `service`, started from `spec` and
    /// listening on `address` (from [`Started`](crate::Started)).
    ///
    /// In the order DESIGN §4 gives: `aliyun.probe.*`/`turnout.probe.*`
    /// labels, else the compose `healthcheck` (unless disabled), else TCP
    /// to `spec.primary_port`, else [`ProbeTarget::Started`]. Ports in
    /// urls are container ports, mapped through `spec.ports`; an http url
    /// without a port probes the first routed port. `${PORT}` forms in
    /// probe commands are filled in as in the instance's command.
    pub fn from_service(
        service: &Service,
        spec: &InstanceSpec,
        address: IpAddr,
    ) -> Result<ProbeTarget, RuntimeError> {
        let mapped = |port: u16| {
            spec.ports
                .get(&port)
                .map(|host| SocketAddr::new(address, *host))
                .ok_or_else(|| RuntimeError::UnmappedPort {
                    service: service.name.clone(),
                    port,
                })
        };
        let expand = |s: &str| spec.expand_ports(s);
        let command = |argv: Vec<String>| ProbeTarget::Exec { argv };
        let shell = |cmd: &str| -> Result<ProbeTarget, RuntimeError> {
            Ok(command(vec!["/bin/sh".into(), "-c".into(), expand(cmd)?]))
        };
        if let Some(probe) = &service.settings.probe {
            return match &probe.check {
                ProbeCheck::Http { port, path } => {
                    let port = port
                        .or_else(|| service.settings.routes.first().map(|r| r.container_port))
                        .or(spec.primary_port);
                    let Some(port) = port else {
                        // The template reader refuses this; be explicit anyway.
                        return Err(RuntimeError::UnmappedPort {
                            service: service.name.clone(),
                            port: 0,
                        });
                    };
                    Ok(ProbeTarget::Http {
                        addr: mapped(port)?,
                        path: path.clone(),
                    })
                }
                ProbeCheck::Tcp { port } => Ok(ProbeTarget::Tcp {
                    addr: mapped(*port)?,
                }),
                ProbeCheck::Cmd(cmd) => shell(cmd),
            };
        }
        let healthcheck = service
            .healthcheck
            .as_ref()
            .filter(|h| !h.disable)
            .and_then(|h| h.test.as_ref());
        match healthcheck {
            Some(HealthTest::Shell(cmd)) => shell(cmd),
            Some(HealthTest::Cmd(argv)) if !argv.is_empty() => Ok(command(
                argv.iter().map(|a| expand(a)).collect::<Result<_, _>>()?,
            )),
            _ => match spec.primary_port {
                Some(port) => Ok(ProbeTarget::Tcp {
                    addr: mapped(port)?,
                }),
                None => Ok(ProbeTarget::Started),
            },
        }
    }
}

impl fmt::Display for ProbeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeTarget::Http { addr, path } => write!(f, "http://{addr}{path}"),
            ProbeTarget::Tcp { addr } => write!(f, "tcp://{addr}"),
            ProbeTarget::Exec { argv } => write!(f, "command {}", argv.join(" ")),
            ProbeTarget::Started => f.write_str("started"),
        }
    }
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// The check passed.
    Healthy,
    /// The check failed, and why (for events and logs).
    Unhealthy(String),
}

impl ProbeResult {
    /// Whether the check passed.
    pub fn is_healthy(&self) -> bool {
        *self == ProbeResult::Healthy
    }
}

/// Probes an instance once through its runtime: network checks from
/// here, commands inside the instance ([`Runtime::exec`]). A check that
/// takes longer than `timeout` fails.
pub async fn probe_instance<R: Runtime>(
    runtime: &R,
    handle: &Handle,
    spec: &InstanceSpec,
    target: &ProbeTarget,
    timeout: Duration,
) -> ProbeResult {
    let ProbeTarget::Exec { argv } = target else {
        return probe(target, timeout).await;
    };
    match runtime.exec(handle, spec, argv, timeout).await {
        Ok(ExecOutcome::Exited(0)) => ProbeResult::Healthy,
        Ok(ExecOutcome::Exited(code)) => {
            ProbeResult::Unhealthy(format!("probe command exit status: {code}"))
        }
        Ok(ExecOutcome::Signalled) => {
            ProbeResult::Unhealthy("probe command was ended by a signal".into())
        }
        Ok(ExecOutcome::TimedOut) => {
            ProbeResult::Unhealthy(format!("probe command timed out after {timeout:?}"))
        }
        Err(e) => ProbeResult::Unhealthy(format!("probe command: {e}")),
    }
}

/// Probes `target` once over the network; a check that takes longer than
/// `timeout` fails. A command ([`ProbeTarget::Exec`]) needs the instance's
/// runtime: [`probe_instance`] runs it, this fails it.
pub async fn probe(target: &ProbeTarget, timeout: Duration) -> ProbeResult {
    let outcome = match target {
        ProbeTarget::Started => return ProbeResult::Healthy,
        ProbeTarget::Exec { argv } => {
            return ProbeResult::Unhealthy(format!(
                "command {} runs through the instance's runtime (probe_instance)",
                argv.join(" ")
            ));
        }
        ProbeTarget::Http { addr, path } => {
            tokio::time::timeout(timeout, probe_http(*addr, path)).await
        }
        ProbeTarget::Tcp { addr } => {
            tokio::time::timeout(timeout, async {
                TcpStream::connect(addr)
                    .await
                    .map(|_| ProbeResult::Healthy)
                    .unwrap_or_else(|e| ProbeResult::Unhealthy(format!("connect {addr}: {e}")))
            })
            .await
        }
    };
    outcome.unwrap_or_else(|_| ProbeResult::Unhealthy(format!("timed out after {timeout:?}")))
}

/// The status line of an HTTP/1.1 answer to `GET path` is read; the body
/// is not.
async fn probe_http(addr: SocketAddr, path: &str) -> ProbeResult {
    let mut stream = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return ProbeResult::Unhealthy(format!("connect {addr}: {e}")),
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: turnout-probe\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    if let Err(e) = stream.write_all(request.as_bytes()).await {
        return ProbeResult::Unhealthy(format!("send to {addr}: {e}"));
    }
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    // The status line is short; 4 KiB without a line end is not HTTP.
    while !head.contains(&b'\n') && head.len() < 4096 {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return ProbeResult::Unhealthy(format!("read from {addr}: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default();
    let status = line
        .strip_prefix("HTTP/")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok());
    match status {
        Some(code) if (200..400).contains(&code) => ProbeResult::Healthy,
        Some(code) => ProbeResult::Unhealthy(format!("http status {code}")),
        None if head.is_empty() => {
            ProbeResult::Unhealthy("connection closed without an answer".into())
        }
        None => ProbeResult::Unhealthy(format!("not an http answer: {line:?}")),
    }
}
