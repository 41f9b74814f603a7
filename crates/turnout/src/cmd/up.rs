//! `turnout up FILE`: the server in the foreground with an app deployed
//! from FILE — the one command that runs an app on a fresh machine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use turnout_api_types::AppStatus;
use turnout_engine::Controller;

use crate::cmd::deploy::app_name;
use crate::output::{err, errln, outln, paint, print_diagnostics, use_color};
use crate::server::{ProxyPlane, Server, ServerArgs, ServerFile, Signals, init_logging};

/// Arguments of `turnout up`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "On a data dir that already holds the app, `up` resumes it when FILE \
    is the app's current template (during a release: the target); when FILE differs it exits \
    1 and changes nothing: use `turnout release FILE` from another terminal.\n\n\
    An instance that cannot start as things stand (its command is not found, a host port it \
    publishes is held) ends `up` with exit 1 and its last lines of output; an app this `up` \
    deployed is then deleted, so that nothing of it is kept.\n\n\
    Output: the listening line and the app's URLs on stdout, progress and logs on stderr; \
    the server keeps running when either is closed (`turnout up FILE | head -1`).\n\n\
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
fn stored_template(data_dir: &Path, app: &str) -> anyhow::Result<Option<turnout_spec::Template>> {
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
    // With its `.env` and `env_file`s, as `deploy` reads it.
    let (loaded, diagnostics) = crate::local_template::load(&args.file);
    print_diagnostics(&diagnostics);
    let Some(loaded) = loaded else {
        return Ok(ExitCode::from(1));
    };
    let parsed = loaded;
    let name = app_name(
        args.name.as_deref(),
        parsed.template.name.as_deref(),
        &args.file,
    )?;
    // A data dir that holds the app with another template is left as it
    // is: nothing starts.
    if let Some(current) = stored_template(&args.server.data_dir, &name)?
        && current != parsed.template
    {
        errln!(
            "error: app {name} in {} runs another template than {}",
            args.server.data_dir.display(),
            args.file.display()
        );
        errln!(
            "  hint: release it with `turnout release {}` (blue-green by default), or use another --data-dir",
            args.file.display()
        );
        return Ok(ExitCode::from(1));
    }
    init_logging();
    let runtime = crate::server::async_runtime()?;
    runtime.block_on(async move {
        let signals = Signals::new()?;
        let mut server = Server::start(&args.server).await?;
        // From here every way out goes through `server.stop`, which stops
        // the instances. The foreground part runs as its own task, so a
        // panic in it ends here as an error instead of unwinding past the
        // stop and leaving the instances running with no server; a
        // reconciler or API that dies stops the whole server too.
        let foreground = Foreground {
            controller: server.controller.clone(),
            addrs: server.addrs.clone(),
            token_path: server.token_path.clone(),
            name: name.clone(),
            source: args.file.display().to_string(),
            data_dir: args.server.data_dir.clone(),
            ready_timeout: Duration::from_secs(args.server.ready_timeout),
        };
        let mut task = tokio::spawn(foreground.run(parsed.template, signals));
        let code = tokio::select! {
            joined = &mut task => joined.unwrap_or_else(|e| {
                errln!("error: {e}; stopping app {name}'s instances");
                ExitCode::from(1)
            }),
            part = server.ended() => {
                task.abort();
                errln!("error: the server's {part} stopped; stopping app {name}'s instances");
                ExitCode::from(1)
            }
        };
        server.stop(false).await;
        Ok(code)
    })
}

/// What `up` does in the foreground once the server runs: deploy or
/// resume the app, show progress and the URLs, wait for a signal.
struct Foreground {
    controller: Controller<crate::runtime::AnyRuntime, ProxyPlane>,
    addrs: ServerFile,
    token_path: PathBuf,
    name: String,
    source: String,
    data_dir: PathBuf,
    ready_timeout: Duration,
}

impl Foreground {
    /// Returns the exit code; the caller stops the server.
    async fn run(self, template: turnout_spec::Template, mut signals: Signals) -> ExitCode {
        let name = &self.name;
        let resumed = self.controller.template(name).await.is_some();
        if resumed {
            errln!("resuming app {name} from {}", self.data_dir.display());
        } else if let Err(e) = self.controller.deploy(name, &self.source, template).await {
            errln!("error: {e}");
            if let turnout_engine::ControlError::Refused(r) = &e {
                errln!("  hint: {}", r.hint());
            }
            return ExitCode::from(1);
        }
        outln!("{}", self.addrs.listening_line());
        let early = tokio::select! {
            signal = signals.recv() => Some(signal),
            waited = self.wait_ready() => {
                if let Err((id, error)) = waited {
                    return self.cannot_start(&id, &error, resumed).await;
                }
                None
            }
        };
        let signal = match early {
            Some(signal) => signal,
            None => {
                if let Ok(status) = self.controller.status(name).await {
                    self.print_urls(&status);
                }
                signals.recv().await
            }
        };
        errln!("{signal}: stopping app {name}'s instances");
        ExitCode::SUCCESS
    }

    /// Ends `up` at an instance that cannot start as things stand: exit 1.
    /// An app deployed by this `up` is deleted first (nothing of it ran),
    /// so that the data dir is as it was and `up` of a fixed template
    /// starts afresh; a resumed one is kept.
    async fn cannot_start(&self, id: &str, error: &str, resumed: bool) -> ExitCode {
        let name = &self.name;
        errln!("error: {error}");
        // Its last words (`sh: 1: x: not found`): once `up` has ended there
        // is no server for `turnout logs` to ask.
        if let Ok(logs) = self.controller.logs(name, id, 5, false).await
            && !logs.lines.is_empty()
        {
            errln!("  {id}'s last output:");
            for line in &logs.lines {
                errln!("    {line}");
            }
        }
        if resumed {
            errln!(
                "  hint: app {name} is kept in {}; fix the cause and run `turnout up` again, or \
                 release a fixed template with `turnout release FILE` from another terminal",
                self.data_dir.display()
            );
        } else {
            if let Err(e) = self.controller.delete(name).await {
                errln!("error: cannot delete app {name}: {e}");
            }
            errln!(
                "  hint: nothing of app {name} is kept; fix the cause and run `turnout up {}` \
                 again",
                self.source
            );
        }
        errln!("stopping app {name}'s instances");
        ExitCode::from(1)
    }

    /// Shows progress until every instance is ready (or the timeout); an
    /// error when one cannot start as things stand (a host port held
    /// outside turnout, a command that is not found: the status's
    /// `error`), since waiting for it is pointless.
    async fn wait_ready(&self) -> Result<(), (String, String)> {
        let started = Instant::now();
        let tty = use_color(true);
        let mut last = String::new();
        loop {
            let Ok(status) = self.controller.status(&self.name).await else {
                return Ok(());
            };
            let services: Vec<_> = status.services.iter().collect();
            if let Some((id, error)) = crate::cmd::release::cannot_start(&services) {
                if tty && !last.is_empty() {
                    err!("\n");
                }
                return Err((id.to_string(), error.to_string()));
            }
            let (ready, scale): (u32, u32) = status.services.iter().fold((0, 0), |(r, s), svc| {
                (r + svc.ready.min(svc.scale), s + svc.scale)
            });
            let line = format!("starting instances: {ready}/{scale} ready");
            if line != last {
                if tty {
                    err!("\r{line}");
                } else {
                    errln!("{line}");
                }
                last = line;
            }
            if ready >= scale {
                if tty {
                    err!("\n");
                }
                return Ok(());
            }
            if started.elapsed() > self.ready_timeout {
                if tty {
                    err!("\n");
                }
                errln!(
                    "warning: not every instance is ready after {}s; see `turnout ps` and `turnout logs SERVICE`",
                    self.ready_timeout.as_secs()
                );
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn print_urls(&self, status: &AppStatus) {
        let color = use_color(false);
        let public = self.addrs.public;
        outln!("app {} is up:", paint(&status.app, "bold", color));
        for route in &status.routes {
            if route.internal {
                outln!("  {:<28} internal route (for the app's services)", route.id);
                continue;
            }
            let (host, path) = match route.id.split_once('/') {
                Some((h, p)) => (h.to_string(), format!("/{p}")),
                None => (route.id.clone(), "/".to_string()),
            };
            outln!(
                "  {:<28} curl -H 'Host: {host}' http://{public}{path}",
                route.id
            );
        }
        // The console is not served yet (DESIGN §9): only the API is named.
        outln!(
            "API: http://{}  (token in {})",
            self.addrs.admin,
            self.token_path.display()
        );
        outln!("Ctrl-C stops the app; `turnout status` from another terminal shows it.");
    }
}
