//! `turnout ps`: an app's instances with their state, endpoint, pid and
//! restarts.

use std::process::ExitCode;

use crate::client::AppArgs;
use crate::output::{OutputFormat, paint, use_color};
use crate::output::{out, outln};
use turnout_api_types::{ServiceList, ServiceStatus};

/// Arguments of `turnout ps`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  turnout ps --app hello")]
pub struct Args {
    #[command(flatten)]
    on: AppArgs,
}

/// Runs the verb.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    args.on.run(async |client, app| {
        let services = client.services(&app).await?;
        match args.on.output {
            OutputFormat::Json => outln!(
                "{}",
                serde_json::to_string_pretty(&ServiceList { services })?
            ),
            OutputFormat::Human => out!("{}", render(&services, use_color(false))),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The colour of an instance state.
fn state_color(state: &str) -> &'static str {
    match state {
        "ready" => "green",
        "starting" => "yellow",
        "unhealthy" | "exited" => "red",
        "draining" => "dim",
        _ => "",
    }
}

/// A table of instances: `ID STATE ENDPOINT PID RESTARTS`.
fn render(services: &[ServiceStatus], color: bool) -> String {
    let rows: Vec<[String; 5]> = services
        .iter()
        .flat_map(|s| &s.instances)
        .map(|i| {
            [
                i.id.clone(),
                i.state.clone(),
                i.endpoint.clone().unwrap_or_else(|| "-".into()),
                i.pid.map_or_else(|| "-".into(), |p| p.to_string()),
                i.restarts.to_string(),
            ]
        })
        .collect();
    if rows.is_empty() {
        return "no instances\n".into();
    }
    let header = ["ID", "STATE", "ENDPOINT", "PID", "RESTARTS"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let line = |cells: [&str; 5], state_painted: String| {
        format!(
            "{:w0$}  {state_painted}  {:w2$}  {:>w3$}  {:>w4$}\n",
            cells[0],
            cells[2],
            cells[3],
            cells[4],
            w0 = widths[0],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4],
        )
    };
    out.push_str(&line(header, format!("{:w$}", header[1], w = widths[1])));
    for row in &rows {
        // Pad before painting: escape sequences have no width.
        let state = paint(
            &format!("{:w$}", row[1], w = widths[1]),
            state_color(&row[1]),
            color,
        );
        out.push_str(&line([&row[0], &row[1], &row[2], &row[3], &row[4]], state));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_listed_in_columns() {
        let services: Vec<ServiceStatus> = serde_json::from_value(serde_json::json!([
            {"name": "serviceB-v2", "role": "new", "color": "green", "scale": 2, "ready": 1,
             "instances": [
                {"id": "serviceB-v2.1", "state": "ready", "endpoint": "127.0.0.1:41234", "pid": 4242, "restarts": 0},
                {"id": "serviceB-v2.2", "state": "starting", "endpoint": null, "pid": null, "restarts": 3}
             ]}
        ]))
        .unwrap();
        assert_eq!(
            render(&services, false),
            "ID             STATE     ENDPOINT          PID  RESTARTS\n\
             serviceB-v2.1  ready     127.0.0.1:41234  4242         0\n\
             serviceB-v2.2  starting  -                   -         3\n"
        );
        assert!(render(&services, true).contains("\u{1b}[32mready   \u{1b}[39m"));
        assert_eq!(render(&[], false), "no instances\n");
    }
}
