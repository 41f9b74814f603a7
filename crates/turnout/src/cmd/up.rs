//! `turnout up FILE`: the server in the foreground with an app deployed
//! from FILE — the one command that runs an app on a fresh machine.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use turnout_engine::AppStatus;

use crate::cmd::deploy::app_name;
use crate::output::{paint, print_diagnostics, use_color};
use crate::server::{Server, ServerArgs, Signals, init_logging};

/// Arguments of `turnout up`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "On a data dir that already holds the app, `up` resumes it when FILE \
    is the app's current template (during a release: the target); when FILE differs it exits \
    1 and changes nothing: use `turnout release FILE` from another terminal.\n\n\
    Example:\n  turnout up examples/hello/app.yaml\n  \
    curl -H 'Host: serviceb.localhost' http://127.0.0.1:8080/"
)]
pub struct Args {
    /// The template to run.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The app's name; default: the template's `name:`, else its directory's
    /// name (`examples/hello/app.yaml` → `hello`), as compose does.
    #[arg(long, value_name = "APP")]
    name: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// The template in force of `app` in the data dir's store, if any.
fn stored_template(
    data_dir: &std::path::Path,
    app: &str,
) -> anyhow::Result<Option<turnout_spec::Template>> {
    let path = data_dir.join(crate::server::STORE_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let store = turnout_store::Store::open(&path)?;
    let Some(record) = store.app(app)? else {
        return Ok(None);
    };
    // During a release the app's version is the target's: the one `up`
    // must be given to resume.
    let Some(text) = store.template(app, record.template_version)? else {
        return Ok(None);
    };
    Ok(Some(turnout_engine::stored_template(&text)?))
}

/// Runs the server with the app until Ctrl-C or SIGTERM, then stops the
/// instances.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // The template is checked before anything starts.
    let parsed = match turnout_spec::load(&args.file) {
        Ok(parsed) => parsed,
        Err(turnout_spec::SpecError::Invalid { diagnostics, .. }) => {
            print_diagnostics(&diagnostics);
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    print_diagnostics(&parsed.warnings);
    let name = app_name(
        args.name.as_deref(),
        parsed.template.name.as_deref(),
        &args.file,
    )?;
    // A data dir that holds the app with another template is left as it
    // is: nothing starts.
    match stored_template(&args.server.data_dir, &name) {
        Ok(Some(current)) if current != parsed.template => {
            eprintln!(
                "error: app {name} in {} runs another template than {}",
                args.server.data_dir.display(),
                args.file.display()
            );
            eprintln!(
                "  hint: release it with `turnout release {}` (blue-green by default), or use another --data-dir",
                args.file.display()
            );
            return Ok(ExitCode::from(1));
        }
        Ok(_) => {}
        Err(e) => return Err(e),
    }
    init_logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("turnout")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let mut signals = Signals::new()?;
        let server = Server::start(&args.server).await?;
        let source = args.file.display().to_string();
        match server.controller.template(&name).await {
            Some(_) => {
                eprintln!(
                    "resuming app {name} from {}",
                    args.server.data_dir.display()
                );
            }
            None => {
                if let Err(e) = server
                    .controller
                    .deploy(&name, &source, parsed.template)
                    .await
                {
                    eprintln!("error: {e}");
                    if let turnout_engine::ControlError::Refused(r) = &e {
                        eprintln!("  hint: {}", r.hint());
                    }
                    server.stop(false).await;
                    return Ok(ExitCode::from(1));
                }
            }
        }
        println!("{}", server.listening_line());
        let ready_timeout = Duration::from_secs(args.server.ready_timeout);
        let early = tokio::select! {
            signal = signals.recv() => Some(signal),
            () = wait_ready(&server, &name, ready_timeout) => None,
        };
        let signal = match early {
            Some(signal) => signal,
            None => {
                if let Ok(status) = server.controller.status(&name).await {
                    print_urls(&server, &status);
                }
                signals.recv().await
            }
        };
        eprintln!("{signal}: stopping app {name}'s instances");
        server.stop(false).await;
        Ok(ExitCode::SUCCESS)
    })
}

/// Shows progress until every instance is ready (or the timeout).
async fn wait_ready(server: &Server, app: &str, timeout: Duration) {
    let started = Instant::now();
    let tty = use_color(true);
    let mut last = String::new();
    loop {
        let Ok(status) = server.controller.status(app).await else {
            return;
        };
        let (ready, scale): (u32, u32) = status.services.iter().fold((0, 0), |(r, s), svc| {
            (r + svc.ready.min(svc.scale), s + svc.scale)
        });
        let line = format!("starting instances: {ready}/{scale} ready");
        if line != last {
            if tty {
                eprint!("\r{line}");
                let _ = std::io::stderr().flush();
            } else {
                eprintln!("{line}");
            }
            last = line;
        }
        if ready >= scale {
            if tty {
                eprintln!();
            }
            return;
        }
        if started.elapsed() > timeout {
            if tty {
                eprintln!();
            }
            eprintln!(
                "warning: not every instance is ready after {}s; see `turnout ps` and `turnout logs SERVICE`",
                timeout.as_secs()
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print_urls(server: &Server, status: &AppStatus) {
    let color = use_color(false);
    let public = server.addrs.public;
    println!("app {} is up:", paint(&status.app, "bold", color));
    for route in &status.routes {
        if route.internal {
            println!("  {:<28} internal route (for the app's services)", route.id);
            continue;
        }
        let (host, path) = match route.id.split_once('/') {
            Some((h, p)) => (h.to_string(), format!("/{p}")),
            None => (route.id.clone(), "/".to_string()),
        };
        println!(
            "  {:<28} curl -H 'Host: {host}' http://{public}{path}",
            route.id
        );
    }
    println!(
        "API and console: http://{}  (token in {})",
        server.addrs.admin,
        server.token_path.display()
    );
    println!("Ctrl-C stops the app; `turnout status` from another terminal shows it.");
}
