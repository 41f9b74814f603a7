//! `turnout demo-app`: a small HTTP service for examples, docs, tests and
//! benchmarks, in the spirit of `traefik/whoami`. It answers a fixed text or
//! the body of an upstream, says which instance answered, and can be told to
//! fail or slow down, at start or while it runs.

mod app;
mod control;
mod upstream;

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use self::app::{App, Content};
use self::control::{Controls, Settings};
use self::upstream::Upstream;

/// The answer when neither `--text` nor `--upstream` is given.
const DEFAULT_TEXT: &str = "Hello from turnout demo-app\n";
/// How long a graceful stop waits for in-flight requests; the same as the
/// router's default drain timeout, so the demo app never cuts a drain short.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments of `turnout demo-app`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = PATHS_HELP)]
pub struct Args {
    /// Address to listen on, as HOST:PORT; overrides --bind and --port
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,

    /// Host name or IP address to listen on
    ///
    /// The default, 0.0.0.0, accepts connections on every interface, which
    /// is what a container needs. Use 127.0.0.1 to stay local.
    #[arg(long, value_name = "HOST", default_value = "0.0.0.0")]
    bind: String,

    /// Port to listen on; 0 picks a free one
    ///
    /// The bound address is printed on stdout as one line,
    /// `demo-app listening on ADDR`, once the app accepts connections.
    #[arg(long, value_name = "N", env = "PORT", default_value_t = 8080)]
    port: u16,

    /// Answer every ordinary path with exactly this text
    ///
    /// The text is sent as is, with no newline added. Without --text and
    /// --upstream the answer is "Hello from turnout demo-app" and a newline.
    #[arg(long, value_name = "T", conflicts_with = "upstream")]
    text: Option<String>,

    /// Answer with --prefix followed by the body of GET URL
    ///
    /// One upstream request per incoming request, whatever its path, on
    /// pooled connections. Only http:// URLs. HTTP_PROXY (or http_proxy,
    /// ALL_PROXY) names a forward proxy to go through, credentials in it
    /// (http://user:password@host:port, or http://token@host:port) are sent
    /// as Proxy-Authorization: Basic; NO_PROXY (or no_proxy) lists hosts,
    /// domain suffixes, IPs or CIDRs to reach directly, or * for all. An
    /// upstream that answers other than 2xx, cannot be reached or takes
    /// more than 30 s gives a 502 naming the upstream and the problem.
    // Kept as text (checked here, parsed again in `run`) so that `Args`
    // stays small inside main's `Command` enum.
    #[arg(long, value_name = "URL", value_parser = |text: &str| upstream::parse_url(text).map(|_| text.to_owned()))]
    upstream: Option<String>,

    /// Text put before the upstream's body
    #[arg(long, value_name = "P", requires = "upstream")]
    prefix: Option<String>,

    /// Instance name sent in the X-Demo-Instance header of every answer
    ///
    /// Defaults to the host name, so containers are told apart by their id;
    /// an empty value means the default too.
    #[arg(long, value_name = "NAME", env = "TURNOUT_INSTANCE", value_parser = |text: &str| parse_name(text).map(|_| text.to_owned()))]
    name: Option<String>,

    /// Status of an injected failure, 200 to 599
    ///
    /// Only has an effect while --fail-rate is above 0.
    #[arg(long, value_name = "CODE", allow_negative_numbers = true, default_value = "500", value_parser = control::parse_fail_status)]
    fail_status: u16,

    /// Fraction of ordinary requests that fail, 0.0 to 1.0
    ///
    /// Failures are counted, not drawn at random: request n fails when
    /// floor(n * RATE) steps up, so 0.5 fails every second request, 0.25
    /// every fourth, and any run of N requests holds N * RATE failures give
    /// or take one.
    #[arg(long, value_name = "RATE", allow_negative_numbers = true, default_value = "0", value_parser = control::parse_fail_rate)]
    fail_rate: f64,

    /// Milliseconds to wait before each ordinary answer, 0 to 3600000
    #[arg(long, value_name = "N", default_value = "0", allow_negative_numbers = true, value_parser = control::parse_latency_ms)]
    latency_ms: u64,

    /// Start with /health answering 503
    #[arg(long)]
    unhealthy: bool,
}

const PATHS_HELP: &str = "\
Paths:
  /health   200 \"ok\", or 503 while unhealthy
  /control  GET: the settings as JSON,
            {\"fail_status\":500,\"fail_rate\":0.0,\"latency_ms\":0,\"healthy\":true}
            POST: change any subset of them and get the new settings back, e.g.
            curl -d '{\"fail_rate\":0.5,\"fail_status\":503}' localhost:8080/control
            A bad value is a 400 naming the field, and nothing changes.
  /stats    GET: {\"requests\":N,\"failed\":N,\"in_flight\":N} for ordinary paths
  /whoami   the request line and headers as received (an ordinary path)
  any other the --text or --upstream answer (an ordinary path)
Ordinary paths get the injected latency and failures; /health, /control and
/stats never do. Every answer carries X-Demo-Instance. HTTP/1.1 and HTTP/2
without TLS (prior knowledge) are served on the same port. SIGTERM or Ctrl-C
stops accepting and lets requests in flight finish (30 s at most).";

/// Parses `--name`: it goes into a header, so it must be a valid value.
fn parse_name(text: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(text).map_err(|_| {
        "the name must be usable as an HTTP header value (no control characters)".to_owned()
    })
}

/// The host name without `libc` (the workspace forbids `unsafe`): the
/// kernel's value on Linux, then `HOSTNAME`, then a fixed word.
fn host_name() -> HeaderValue {
    let from_kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    let from_env = std::env::var("HOSTNAME").ok();
    [from_kernel, from_env]
        .into_iter()
        .flatten()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .find_map(|name| parse_name(&name).ok())
        .unwrap_or_else(|| HeaderValue::from_static("demo-app"))
}

/// Runs the demo service until SIGTERM or Ctrl-C.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // One thread is plenty for a demo service, and keeps a dozen instances
    // on a small machine from spawning a dozen thread pools.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<ExitCode> {
    let content = match args.upstream {
        Some(url) => Content::Upstream {
            upstream: Box::new(Upstream::from_env(
                upstream::parse_url(&url).map_err(anyhow::Error::msg)?,
            )?),
            prefix: Bytes::from(args.prefix.unwrap_or_default()),
        },
        None => Content::Text(Bytes::from(
            args.text.unwrap_or_else(|| DEFAULT_TEXT.to_owned()),
        )),
    };
    let settings = Settings {
        fail_status: args.fail_status,
        fail_rate: args.fail_rate,
        latency_ms: args.latency_ms,
        healthy: !args.unhealthy,
    };
    // An empty TURNOUT_INSTANCE is treated as unset rather than refused,
    // since runtimes and shells often export empty variables.
    let instance = match args.name.filter(|name| !name.trim().is_empty()) {
        Some(name) => parse_name(&name).map_err(anyhow::Error::msg)?,
        None => host_name(),
    };
    let app = Arc::new(App::new(instance, content, Controls::new(settings)));

    let addr = listen_addr(args.listen.as_deref(), &args.bind, args.port).await?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener
        .local_addr()
        .context("cannot read the bound address")?;
    // Signal handlers go in before the announcement, so that a SIGTERM sent
    // as soon as the line is read stops the app gracefully.
    let mut stop = std::pin::pin!(stop_signal()?);
    announce(bound)?;

    let server = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors and the like: pause rather
                        // than spin, and keep serving the open connections.
                        eprintln!("demo-app: accept failed: {err}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                // Small answers should leave at once, not wait for Nagle.
                let _ = stream.set_nodelay(true);
                let app = Arc::clone(&app);
                let service = service_fn(move |request| Arc::clone(&app).handle(remote, request));
                let connection = server
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    // A client that hangs up mid-request is not our error.
                    let _ = connection.await;
                });
            }
            () = &mut stop => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!(
            "demo-app: requests still in flight after {} s, stopping anyway",
            DRAIN_TIMEOUT.as_secs()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--listen` wins; otherwise `--bind` and `--port`. Names are resolved and
/// the first address is used.
async fn listen_addr(listen: Option<&str>, bind: &str, port: u16) -> anyhow::Result<SocketAddr> {
    if let Some(listen) = listen {
        if let Ok(addr) = listen.parse() {
            return Ok(addr);
        }
        return tokio::net::lookup_host(listen)
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .with_context(|| {
                format!(
                    "cannot resolve --listen {listen}; expected HOST:PORT such as 127.0.0.1:8080"
                )
            });
    }
    if let Ok(ip) = bind.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    tokio::net::lookup_host((bind, port))
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .with_context(|| {
            format!("cannot resolve --bind {bind}; expected a host name or an IP address")
        })
}

/// Prints the one line that scripts and tests wait for.
fn announce(bound: SocketAddr) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "demo-app listening on {bound}")
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
#[cfg(unix)]
fn stop_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// Completes on Ctrl-C, the only stop signal outside Unix.
#[cfg(not(unix))]
fn stop_signal() -> anyhow::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
