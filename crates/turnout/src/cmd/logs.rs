//! `turnout logs SERVICE`: the output of a service's instances (or of one
//! instance, `serviceB-v2.1`), optionally followed as it is written.

use std::collections::HashSet;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use http_body_util::BodyExt;
use serde_json::json;
use tokio::sync::mpsc;

use crate::client::{self, ApiError, AppArgs, Client};
use crate::output::OutputFormat;
use turnout_api_types::AppStatus;

/// Arguments of `turnout logs`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Lines of a service are prefixed with the instance they come from \
    (`serviceB-v2.1 | ...`). With -f on a service, instances that start later (a restart, a \
    standard release, a new scale) are followed too, from their first line; it ends with \
    Ctrl-C, or once the service is gone and its streams have ended. With -f on one \
    instance, until the instance stops.\n\nExamples:\n  turnout logs serviceB-v2 --tail \
    20\n  turnout logs serviceB-v2.1 -f"
)]
pub struct Args {
    /// A service (`serviceB-v2`) or one instance of it (`serviceB-v2.1`).
    #[arg(value_name = "SERVICE")]
    service: String,
    /// Keep printing new lines as they are written.
    #[arg(short, long)]
    follow: bool,
    /// How many of the last lines to show first, per instance.
    #[arg(long, value_name = "N", default_value_t = 100)]
    tail: usize,
    #[command(flatten)]
    on: AppArgs,
}

/// What SERVICE names.
#[derive(Debug, PartialEq, Eq)]
enum Source {
    /// A service and its instance ids.
    Service(String, Vec<String>),
    /// One instance.
    Instance(String),
}

/// Finds what `name` is in an app: a service first, else an instance.
fn find(s: &AppStatus, name: &str) -> Result<Source, ApiError> {
    if let Some(svc) = s.services.iter().find(|x| x.name == name) {
        return Ok(Source::Service(
            svc.name.clone(),
            svc.instances.iter().map(|i| i.id.clone()).collect(),
        ));
    }
    if s.services
        .iter()
        .any(|x| x.instances.iter().any(|i| i.id == name))
    {
        return Ok(Source::Instance(name.to_string()));
    }
    let names: Vec<&str> = s.services.iter().map(|x| x.name.as_str()).collect();
    Err(ApiError::local(
        format!("app {} has no service or instance {name:?}", s.app),
        format!(
            "services: {}; `turnout ps` lists the instances",
            names.join(", ")
        ),
    ))
}

/// Runs the verb.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    args.on.run(async |client, app| {
        let status = client.status(&app).await?;
        let source = find(&status, &args.service)?;
        if !args.follow {
            let (text, prefixed) = match &source {
                Source::Service(name, _) => {
                    (client.service_logs(&app, name, args.tail).await?, true)
                }
                Source::Instance(id) => (client.instance_logs(&app, id, args.tail).await?, false),
            };
            let single = match &source {
                Source::Instance(id) => Some(id.as_str()),
                Source::Service(..) => None,
            };
            let mut out = std::io::stdout().lock();
            for line in text.lines() {
                let (instance, line) = if prefixed {
                    line.split_once(" | ").unwrap_or(("", line))
                } else {
                    (single.unwrap_or(""), line)
                };
                write_line(&mut out, args.on.output, instance, line, prefixed)?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        let (ids, service) = match source {
            Source::Service(name, ids) => (ids, Some(name)),
            Source::Instance(id) => (vec![id], None),
        };
        follow(client, &app, ids, service, args.tail, args.on.output).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Prints one log line: `instance | line` (or the bare line for one
/// instance), or a JSON object.
fn write_line(
    out: &mut impl Write,
    output: OutputFormat,
    instance: &str,
    line: &str,
    prefixed: bool,
) -> std::io::Result<()> {
    match output {
        OutputFormat::Json => writeln!(out, "{}", json!({ "instance": instance, "line": line })),
        OutputFormat::Human if prefixed => writeln!(out, "{instance} | {line}"),
        OutputFormat::Human => writeln!(out, "{line}"),
    }
}

/// How often a followed service is looked at for new instances.
const DISCOVER_EVERY: Duration = Duration::from_secs(1);

/// Lines shown of an instance that started while the service was followed:
/// all of them, up to this many.
const NEW_INSTANCE_TAIL: usize = 10_000;

/// Follows the logs of `ids` at once; lines are printed whole, in the
/// order they arrive. For a service, its instances are looked up every
/// second and new ones followed too; it ends once the service (or the
/// server) is gone and every stream has ended. For one instance, when its
/// stream ends.
async fn follow(
    client: &Client,
    app: &str,
    ids: Vec<String>,
    service: Option<String>,
    tail: usize,
    output: OutputFormat,
) -> anyhow::Result<()> {
    let prefixed = service.is_some();
    let (tx, mut rx) = mpsc::channel::<(String, String)>(256);
    let mut tasks = tokio::task::JoinSet::new();
    let mut followed = HashSet::new();
    for id in ids {
        // Open every stream before printing, so a refusal is reported
        // before any output.
        let body = open(client, app, &id, tail).await?;
        tasks.spawn(stream_lines(body, id.clone(), tx.clone()));
        followed.insert(id);
    }
    // Held while new instances may still come; dropping it lets `rx` end
    // once the streams have.
    let mut discovering = service.map(|name| (name, tx, tokio::time::interval(DISCOVER_EVERY)));
    loop {
        tokio::select! {
            line = rx.recv() => {
                let Some((id, line)) = line else { break };
                let mut out = std::io::stdout().lock();
                write_line(&mut out, output, &id, &line, prefixed)?;
                out.flush()?;
            }
            () = next_look(&mut discovering), if discovering.is_some() => {
                let Some((name, tx, _)) = &discovering else { continue };
                match instances_of(client, app, name).await {
                    Some(ids) => {
                        let new: Vec<String> =
                            ids.into_iter().filter(|id| !followed.contains(id)).collect();
                        for id in new {
                            // Not opened (it may not have started yet):
                            // tried again next time.
                            if let Ok(body) = open(client, app, &id, NEW_INSTANCE_TAIL).await {
                                tasks.spawn(stream_lines(body, id.clone(), tx.clone()));
                                followed.insert(id);
                            }
                        }
                    }
                    // The service, the app or the server is gone.
                    None => discovering = None,
                }
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Completes when it is time to look for new instances; never without a
/// service to look at.
async fn next_look<T, U>(discovering: &mut Option<(T, U, tokio::time::Interval)>) {
    match discovering {
        Some((_, _, every)) => {
            every.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Opens the log stream of one instance.
async fn open(
    client: &Client,
    app: &str,
    id: &str,
    tail: usize,
) -> Result<hyper::body::Incoming, client::ClientError> {
    client.follow_instance_logs(app, id, tail).await
}

/// The instance ids of a service now; `None` when the service, its app or
/// the server cannot be found.
async fn instances_of(client: &Client, app: &str, service: &str) -> Option<Vec<String>> {
    let status = client.status(app).await.ok()?;
    let svc = status.services.iter().find(|s| s.name == service)?;
    Some(svc.instances.iter().map(|i| i.id.clone()).collect())
}

/// Sends the lines of one stream, whole, as they arrive.
async fn stream_lines(
    mut body: hyper::body::Incoming,
    id: String,
    tx: mpsc::Sender<(String, String)>,
) {
    // A frame may end inside a line: keep the rest for the next.
    let mut pending = Vec::new();
    while let Some(Ok(frame)) = body.frame().await {
        let Ok(data) = frame.into_data() else {
            continue;
        };
        pending.extend_from_slice(&data);
        while let Some(n) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=n).collect();
            let text = String::from_utf8_lossy(&line[..n]).into_owned();
            if tx.send((id.clone(), text)).await.is_err() {
                return;
            }
        }
    }
    if !pending.is_empty() {
        let _ = tx
            .send((id.clone(), String::from_utf8_lossy(&pending).into_owned()))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_a_service_first_then_an_instance() {
        let s: AppStatus = serde_json::from_value(json!({
            "app": "hello", "template_version": 1, "release": null, "routes": [],
            "services": [{"name": "serviceB-v2", "role": "current", "color": "default",
                "scale": 2, "ready": 2, "instances": [
                    {"id": "serviceB-v2.1", "state": "ready"},
                    {"id": "serviceB-v2.2", "state": "ready"}]}]
        }))
        .unwrap();
        assert_eq!(
            find(&s, "serviceB-v2").unwrap(),
            Source::Service(
                "serviceB-v2".into(),
                vec!["serviceB-v2.1".into(), "serviceB-v2.2".into()]
            )
        );
        assert_eq!(
            find(&s, "serviceB-v2.1").unwrap(),
            Source::Instance("serviceB-v2.1".into())
        );
        let err = find(&s, "serviceC").unwrap_err().to_string();
        assert!(err.contains("no service or instance \"serviceC\""), "{err}");
        assert!(err.contains("services: serviceB-v2"), "{err}");
    }

    #[test]
    fn lines_are_prefixed_or_json() {
        let mut out = Vec::new();
        write_line(&mut out, OutputFormat::Human, "b.1", "hi", true).unwrap();
        write_line(&mut out, OutputFormat::Human, "b.1", "hi", false).unwrap();
        write_line(&mut out, OutputFormat::Json, "b.1", "hi", true).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "b.1 | hi\nhi\n{\"instance\":\"b.1\",\"line\":\"hi\"}\n"
        );
    }
}
