//! `turnout serve`: the server alone (router, control plane, API). On an
//! existing data dir it resumes exactly where it was.

use std::process::ExitCode;

use crate::output::outln;
use crate::server::{Server, ServerArgs, Signals, init_logging};

/// Arguments of `turnout serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = "The bound addresses are printed in one line at start \
    (`turnout listening public=... admin=... internal=...`) and written to \
    <data-dir>/server.json; the API token is in <data-dir>/token.\n\n\
    Example:\n  turnout serve --data-dir /var/lib/turnout")]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,
    /// Leave the instances running on Ctrl-C/SIGTERM; the next server on
    /// this data dir adopts them.
    #[arg(long)]
    keep_instances: bool,
}

/// Runs the server until Ctrl-C or SIGTERM.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    init_logging();
    let runtime = crate::server::async_runtime()?;
    runtime.block_on(async {
        let mut signals = Signals::new()?;
        let mut server = Server::start(&args.server).await?;
        outln!("{}", server.addrs.listening_line());
        // A reconciler or API that died (a panic) stops the server rather
        // than leaving a router nobody reconciles; a supervisor restarting
        // `serve` adopts the instances (with --keep-instances).
        let code = tokio::select! {
            signal = signals.recv() => {
                tracing::info!(signal, "stopping");
                ExitCode::SUCCESS
            }
            part = server.ended() => {
                tracing::error!(part, "a part of the server stopped; stopping");
                ExitCode::from(1)
            }
        };
        server.stop(args.keep_instances).await;
        Ok(code)
    })
}
