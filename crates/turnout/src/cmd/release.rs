//! `turnout release FILE`: start a release of an app to a new template
//! (blue-green by default), optionally waiting until its new instances
//! are ready. Also the progress display `deploy` shares.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::client::{ApiError, AppArgs, Client};
use crate::cmd::deploy::load_template;
use crate::cmd::plan::PlanFlags;
use crate::cmd::render::print_status;
use crate::output::{OutputFormat, outln, paint, use_color};
use crate::output::{err, errln};
use turnout_api_types::{AcceptedStatus, AppStatus, ReleaseRequest, ServiceStatus};

/// How often the status is polled while instances start.
const POLL: Duration = Duration::from_millis(200);

/// Arguments of `turnout release`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "blue-green starts the new services beside the old ones at weight 0 and waits \
    for you: move traffic with `turnout weights` or `turnout switch`, then `turnout confirm` or \
    `turnout rollback`. standard replaces changed services in place, health-gated, and ends \
    confirmed. The strategy and the other plan flags override the template's \
    x-turnout.release block; `turnout plan FILE` prints the plan without starting anything. \
    gray moves the new version through --steps, each held for --pause (until-promoted: until \
    `turnout promote`); canary gives --canary-share to --canary-scale new instances, then all \
    of them once promoted; `turnout pause`, `resume` and `abort` steer both. The analysis gates are \
    judged every --window; a crossed one rolls back. The template's analysis.prometheus \
    gate (an instant query) is judged with them: a value above its max rolls back, no value \
    pauses. ab-test gives the new version --ab-share of the shared routes' clients (sticky), \
    sends what the plan's ab.rules match to their service, and counts the clients reaching \
    --goal; `turnout report` compares the versions.\n\nExit status: 0 when the new \
    instances are ready (a canary or gray release: its first step runs; with --no-wait: when the \
    release started), 1 when it is refused, fails or times out.\n\nExample:\n  turnout release \
    examples/hello/app-frontend-v2.yaml"
)]
pub struct Args {
    /// The template to release.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Return as soon as the release started, without waiting for the new
    /// instances (by default the command waits, showing progress, until
    /// pending-confirmation, or confirmed for standard).
    #[arg(long)]
    no_wait: bool,
    /// Accepted for compatibility: waiting is the default.
    #[arg(long, hide = true, conflicts_with = "no_wait")]
    wait: bool,
    /// How long to wait, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    timeout: u64,
    #[command(flatten)]
    on: AppArgs,
    #[command(flatten)]
    plan: PlanFlags,
}

/// Runs the verb.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let template = load_template(&args.file)?;
    args.on.run(async |client, app| {
        let request = ReleaseRequest {
            template: template.yaml,
            source_name: Some(template.source_name),
            // The strategy travels with the other flags, in `plan`.
            strategy: None,
            plan: Some(args.plan.overrides()).filter(|o| !o.is_empty()),
            env_files: template.env_files,
            base_dir: Some(template.base_dir),
        };
        let AcceptedStatus { status, warnings } = client.release(&app, &request).await?;
        print_warnings(&warnings);
        let Some(release) = status.release.clone() else {
            anyhow::bail!("the server started a release but its status shows none");
        };
        if args.on.output == OutputFormat::Human {
            errln!(
                "release {} of app {app} started ({}, v{} -> v{})",
                release.id,
                release.strategy,
                release.from_version,
                release.to_version
            );
        }
        if args.no_wait {
            print_accepted(status, warnings, args.on.output)?;
            return Ok(ExitCode::SUCCESS);
        }
        let waited = wait(
            client,
            &app,
            status,
            Goal::Release(release.id),
            Duration::from_secs(args.timeout),
        )
        .await?;
        print_accepted(waited.status.clone(), warnings, args.on.output)?;
        waited.into_result()
    })
}

/// The runtime's warnings of a deploy or release, on stderr, one
/// `warning: ...` line each (as `turnout validate` prints its warnings).
pub(crate) fn print_warnings(warnings: &[String]) {
    let label = paint("warning", "yellow", use_color(true));
    for w in warnings {
        errln!("{label}: {w}");
    }
}

/// The status a deploy or release ends with: as `turnout status` shows
/// it, or as JSON with the runtime's warnings beside it (the API's
/// answer to the deploy or release, with the status brought up to date).
pub(crate) fn print_accepted(
    status: AppStatus,
    warnings: Vec<String>,
    output: OutputFormat,
) -> anyhow::Result<()> {
    match output {
        OutputFormat::Human => print_status(&status, output),
        OutputFormat::Json => {
            let accepted = AcceptedStatus { status, warnings };
            outln!("{}", serde_json::to_string_pretty(&accepted)?);
            Ok(())
        }
    }
}

/// What a wait is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Goal {
    /// A deploy: every service has all its instances ready.
    Deploy,
    /// A release: it leaves `deploying` (the id is the release's).
    Release(i64),
}

/// How a wait ended, with the last status seen.
#[derive(Debug)]
pub(crate) struct Waited {
    /// The last status seen.
    pub status: AppStatus,
    /// `None` when the goal was reached, else the error to report.
    pub failure: Option<ApiError>,
}

impl Waited {
    /// The verb's exit: success, or the failure as an error (`main`
    /// prints it and exits 1).
    pub fn into_result(self) -> anyhow::Result<ExitCode> {
        match self.failure {
            None => Ok(ExitCode::SUCCESS),
            Some(e) => Err(e.into()),
        }
    }
}

/// Where a status stands with respect to a goal.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Still starting; the text says what (`serviceB-v2 1/2 ready`).
    Waiting(String),
    /// The goal is reached.
    Done,
    /// The release failed or was rolled back, or an instance cannot
    /// start: what to say.
    Failed(String),
}

/// An instance of `services` that cannot start as things stand, and why
/// (the server's `error` of it), if one cannot: waiting for it is
/// pointless.
pub(crate) fn cannot_start<'a>(services: &[&'a ServiceStatus]) -> Option<(&'a str, &'a str)> {
    services
        .iter()
        .flat_map(|svc| &svc.instances)
        .find_map(|i| Some((i.id.as_str(), i.error.as_deref()?)))
}

/// Judges one status against a goal. Pure, so the stop rules are tested
/// without a server.
pub(crate) fn progress(s: &AppStatus, goal: Goal) -> Progress {
    let watched: Vec<&ServiceStatus> = s
        .services
        .iter()
        .filter(|svc| match goal {
            Goal::Deploy => true,
            // The services a release starts; the others are running already.
            Goal::Release(_) => matches!(svc.role.as_str(), "new" | "changed"),
        })
        .collect();
    let text = watched
        .iter()
        .map(|svc| {
            format!(
                "{} {}/{} ready",
                svc.name,
                svc.ready.min(svc.scale),
                svc.scale
            )
        })
        .collect::<Vec<_>>()
        .join("  ");
    match goal {
        Goal::Deploy => {
            if let Some((_, error)) = cannot_start(&watched) {
                Progress::Failed(error.to_string())
            } else if watched.iter().all(|svc| svc.ready >= svc.scale) {
                Progress::Done
            } else {
                Progress::Waiting(text)
            }
        }
        Goal::Release(id) => {
            let Some(r) = s.release.as_ref().filter(|r| r.id == id) else {
                return Progress::Failed(format!(
                    "release {id} is no longer the app's latest release"
                ));
            };
            match r.state.as_str() {
                // A canary or gray release is under way once its first
                // step runs; its steps take their pauses (`turnout status`).
                "pending-confirmation" | "confirmed" | "progressing" | "paused" => Progress::Done,
                "rolled-back" | "failed" => Progress::Failed(match &r.reason {
                    Some(reason) => format!("release {id} {}: {reason}", r.state),
                    None => format!("release {id} {}", r.state),
                }),
                state => Progress::Waiting(if text.is_empty() {
                    state.to_string()
                } else {
                    format!("{state}: {text}")
                }),
            }
        }
    }
}

/// Polls the app's status every 200 ms until `goal` is reached, the
/// release fails, or `timeout` passes, showing progress on stderr: one
/// updating line on a terminal, a line per change otherwise.
pub(crate) async fn wait(
    client: &Client,
    app: &str,
    first: AppStatus,
    goal: Goal,
    timeout: Duration,
) -> anyhow::Result<Waited> {
    let tty = std::io::stderr().is_terminal();
    let deadline = Instant::now() + timeout;
    let mut status = first;
    let mut shown = String::new();
    loop {
        let now = progress(&status, goal);
        if let Progress::Waiting(text) = &now
            && *text != shown
        {
            if tty {
                err!("\r\x1b[2K{text}");
                let _ = std::io::stderr().flush();
            } else {
                errln!("{text}");
            }
            shown.clone_from(text);
        }
        let failure = match now {
            Progress::Waiting(_) if Instant::now() >= deadline => Some(ApiError::local(
                format!(
                    "timed out after {} s waiting for the instances: {shown}",
                    timeout.as_secs()
                ),
                match goal {
                    Goal::Deploy => format!(
                        "they keep starting on the server; see `turnout ps --app {app}` and \
                         `turnout logs SERVICE --app {app}`"
                    ),
                    Goal::Release(_) => format!(
                        "the release goes on; the server fails it and rolls back at its own \
                         deadline. See `turnout logs SERVICE --app {app}`"
                    ),
                },
            )),
            Progress::Waiting(_) => {
                tokio::time::sleep(POLL).await;
                status = client.status(app).await?;
                continue;
            }
            Progress::Done => None,
            Progress::Failed(message) => Some(ApiError::local(
                message,
                match goal {
                    Goal::Deploy => format!(
                        "the server keeps trying to start it, in case the cause is outside the \
                         template; see `turnout ps --app {app}`, fix the cause, or release a \
                         fixed template with `turnout release FILE --app {app}`"
                    ),
                    Goal::Release(_) => format!(
                        "see `turnout history --app {app}` for what happened and `turnout logs \
                         SERVICE --app {app}` for why the new services were not ready"
                    ),
                },
            )),
        };
        if tty && !shown.is_empty() {
            errln!();
        }
        return Ok(Waited { status, failure });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(state: Option<&str>, reason: Option<&str>, ready: u32) -> AppStatus {
        serde_json::from_value(json!({
            "app": "hello", "template_version": 2,
            "release": state.map(|s| json!({"id": 2, "strategy": "blue-green", "state": s,
                "from_version": 1, "to_version": 2, "reason": reason})),
            "services": [
                {"name": "serviceA-v1", "role": "unchanged", "color": "yellow", "scale": 3, "ready": 3},
                {"name": "serviceB-v2", "role": "new", "color": "green", "scale": 2, "ready": ready}
            ],
            "routes": []
        }))
        .unwrap()
    }

    #[test]
    fn a_release_waits_for_its_new_services_only() {
        assert_eq!(
            progress(&status(Some("deploying"), None, 1), Goal::Release(2)),
            Progress::Waiting("deploying: serviceB-v2 1/2 ready".into())
        );
        assert_eq!(
            progress(
                &status(Some("pending-confirmation"), None, 2),
                Goal::Release(2)
            ),
            Progress::Done
        );
        assert_eq!(
            progress(&status(Some("confirmed"), None, 2), Goal::Release(2)),
            Progress::Done
        );
    }

    #[test]
    fn a_failed_release_stops_the_wait_with_its_reason() {
        let s = status(
            Some("rolled-back"),
            Some("failed: serviceB-v2 not ready in 60 s"),
            0,
        );
        assert_eq!(
            progress(&s, Goal::Release(2)),
            Progress::Failed("release 2 rolled-back: failed: serviceB-v2 not ready in 60 s".into())
        );
        // Another release in its place is a failure of ours, not a success.
        assert!(matches!(
            progress(
                &status(Some("pending-confirmation"), None, 2),
                Goal::Release(3)
            ),
            Progress::Failed(_)
        ));
    }

    #[test]
    fn a_deploy_waits_for_every_service() {
        assert_eq!(
            progress(&status(None, None, 1), Goal::Deploy),
            Progress::Waiting("serviceA-v1 3/3 ready  serviceB-v2 1/2 ready".into())
        );
        assert_eq!(
            progress(&status(None, None, 2), Goal::Deploy),
            Progress::Done
        );
    }

    #[test]
    fn a_deploy_stops_at_an_instance_that_cannot_start() {
        let mut s = status(None, None, 1);
        s.services[1].instances = serde_json::from_value(json!([
            {"id": "serviceB-v2.1", "state": "ready"},
            {"id": "serviceB-v2.2", "state": "exited", "restarts": 3,
             "error": "cannot start serviceB-v2.2: host port 8080 is taken: address in use"}
        ]))
        .unwrap();
        assert_eq!(
            progress(&s, Goal::Deploy),
            Progress::Failed(
                "cannot start serviceB-v2.2: host port 8080 is taken: address in use".into()
            )
        );
        // An error that went away (the port was freed, the start worked).
        s.services[1].instances[1].error = None;
        assert!(matches!(progress(&s, Goal::Deploy), Progress::Waiting(_)));
    }
}
