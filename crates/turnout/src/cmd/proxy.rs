//! `turnout proxy`: the data plane alone, fed by a route file (DESIGN §4),
//! reloaded atomically on SIGHUP and whenever the file changes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use notify::{RecursiveMode, Watcher};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use turnout_proxy::{Proxy, ProxyConfig, Publisher, TlsConfig, load_route_file};

/// Editors save in several steps (truncate, write, rename); events closer
/// together than this become one reload.
const SETTLE: Duration = Duration::from_millis(50);

/// Arguments of `turnout proxy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Route file; reloaded on SIGHUP and when it changes. A bad file is
    /// logged and the routes in use keep serving.
    #[arg(long, env = "TURNOUT_ROUTES", value_name = "FILE")]
    config: PathBuf,
    /// Public listener (public routes), host:port; port 0 picks a free one.
    #[arg(long, env = "TURNOUT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Internal listener (internal routes, forward-proxy requests).
    #[arg(
        long,
        env = "TURNOUT_INTERNAL_LISTEN",
        default_value = "127.0.0.1:8081"
    )]
    internal_listen: SocketAddr,
    /// Admin listener for /metrics and /healthz (http://host:port accepted).
    #[arg(long, env = "TURNOUT_ADMIN", default_value = "127.0.0.1:7070", value_parser = parse_admin)]
    admin: SocketAddr,
    /// Worker threads of the proxy, each with its own listeners
    /// (SO_REUSEPORT) and event loop; the number of CPUs when absent.
    #[arg(long, env = "TURNOUT_WORKERS")]
    workers: Option<usize>,
    /// TLS listener for public routes; needs --tls-cert and --tls-key.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for the TLS listener.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for the TLS listener.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Log one JSON line per request (tracing target turnout::access).
    #[arg(long)]
    access_log: bool,
}

fn parse_admin(text: &str) -> Result<SocketAddr, String> {
    let bare = text.strip_prefix("http://").unwrap_or(text);
    let bare = bare.strip_suffix('/').unwrap_or(bare);
    bare.parse()
        .map_err(|_| format!("{text:?} is not host:port (or http://host:port)"))
}

/// Runs the proxy until Ctrl-C or SIGTERM.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_logging(args.access_log);
    // Every worker is a thread with a current-thread runtime and its own
    // listeners (SO_REUSEPORT), as nginx runs worker processes: no
    // work-stealing scheduler and no wake-ups between threads. This thread
    // is the first worker, and also runs the admin and TLS listeners,
    // health checks and reloads.
    let workers = match args.workers {
        Some(0) => anyhow::bail!("--workers must be at least 1"),
        Some(workers) => workers,
        None => std::thread::available_parallelism().map_or(1, usize::from),
    };
    let mut runtime = tokio::runtime::Builder::new_current_thread();
    let runtime = runtime
        .enable_all()
        .thread_name("turnout-proxy")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args, workers))
}

async fn serve(args: Args, workers: usize) -> anyhow::Result<ExitCode> {
    let table = load_route_file(&args.config)?;
    let tls = match (args.tls_listen, args.tls_cert, args.tls_key) {
        (Some(listen), Some(cert), Some(key)) => Some(TlsConfig { listen, cert, key }),
        _ => None,
    };
    let config = ProxyConfig {
        listen: args.listen,
        internal_listen: Some(args.internal_listen),
        admin: Some(args.admin),
        tls,
        access_log: args.access_log,
        workers,
        ..ProxyConfig::default()
    };
    let proxy = Proxy::start(config, table).await?;
    crate::output::outln!("turnout listening {}", proxy.addrs());

    let (changed_tx, mut changed) = mpsc::channel::<()>(1);
    // The watcher lives as long as this function; dropping it stops it.
    let _watcher = watch(&args.config, changed_tx)?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let publisher = proxy.publisher();
    // The text last loaded: a file that still says the same (a write that
    // both the watcher and a SIGHUP report) is not loaded twice.
    let mut loaded = std::fs::read(&args.config).ok();
    loop {
        tokio::select! {
            _ = hangup.recv() => reload(&publisher, &args.config, &mut loaded, "SIGHUP"),
            Some(()) = changed.recv() => {
                tokio::time::sleep(SETTLE).await;
                // Events that arrived while settling belong to this reload.
                while changed.try_recv().is_ok() {}
                reload(&publisher, &args.config, &mut loaded, "file change");
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    tracing::info!("stopping: draining in-flight requests");
    proxy.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

fn reload(publisher: &Publisher, path: &Path, loaded: &mut Option<Vec<u8>>, why: &str) {
    let text = std::fs::read(path).ok();
    if text.is_some() && text == *loaded {
        tracing::info!("route file unchanged ({why}); nothing to reload");
        return;
    }
    *loaded = text;
    match publisher.reload_file(path) {
        Ok(()) => tracing::info!("reloaded routes from {} ({why})", path.display()),
        Err(err) => {
            tracing::error!("rejected route file ({why}): {err}; the previous routes keep serving")
        }
    }
}

/// Watches the route file's directory (editors and `mv` replace the file,
/// which a watch on the file itself would lose) and signals changes to it.
fn watch(path: &Path, changed: mpsc::Sender<()>) -> anyhow::Result<notify::RecommendedWatcher> {
    let file = std::path::absolute(path).context("cannot resolve the route file path")?;
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .context("the route file has no directory")?;
    let name = file.file_name().map(|n| n.to_os_string());
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        if event.paths.iter().any(|p| p.file_name() == name.as_deref()) {
            // A full channel already holds a pending reload.
            let _ = changed.try_send(());
        }
    })
    .context("cannot watch the route file")?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("cannot watch {}", dir.display()))?;
    Ok(watcher)
}

fn init_logging(access_log: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if access_log {
        "info"
    } else {
        "info,turnout::access=off"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::output::Stream::Stderr)
        .with_ansi(crate::output::use_color(true))
        .log_internal_errors(false);
    // JSON lines when the access log is on, so every line parses.
    let _ = if access_log {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
