//! `turnout history`: an app's releases, newest first.

use std::process::ExitCode;

use crate::client::AppArgs;
use crate::output::{OutputFormat, paint, use_color};
use crate::output::{out, outln};
use turnout_api_types::{ReleaseList, ReleaseRecord};

/// Arguments of `turnout history`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  turnout history --app hello")]
pub struct Args {
    #[command(flatten)]
    on: AppArgs,
}

/// Runs the verb.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    args.on.run(async |client, app| {
        let releases = client.releases(&app).await?;
        match args.on.output {
            OutputFormat::Json => outln!(
                "{}",
                serde_json::to_string_pretty(&ReleaseList { releases })?
            ),
            OutputFormat::Human if releases.is_empty() => {
                outln!("app {app} has no releases yet");
            }
            OutputFormat::Human => out!("{}", render(&releases, use_color(false))),
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// A table of releases: `ID STRATEGY STATE VERSIONS STARTED REASON`.
fn render(releases: &[ReleaseRecord], color: bool) -> String {
    let rows: Vec<[String; 6]> = releases
        .iter()
        .map(|r| {
            [
                r.id.to_string(),
                r.strategy.clone(),
                r.state.clone(),
                format!("v{} -> v{}", r.from_version, r.to_version),
                utc(r.created_at),
                r.reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["ID", "STRATEGY", "STATE", "VERSIONS", "STARTED", "REASON"];
    crate::cmd::render::table(header, &rows, |column, cell| {
        if column == 2 {
            paint(cell, "bold", color)
        } else {
            cell.to_string()
        }
    })
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SSZ` (UTC), without a date
/// crate: the civil-from-days algorithm of Howard Hinnant.
pub(crate) fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00Z");
        assert_eq!(utc(1_714_564_983_999), "2024-05-01 12:03:03Z");
    }

    #[test]
    fn releases_are_listed_in_columns() {
        let releases: Vec<ReleaseRecord> = serde_json::from_value(serde_json::json!([
            {"id": 3, "app": "hello", "strategy": "blue-green", "state": "rolled-back",
             "from_version": 2, "to_version": 3, "reason": "failed: serviceB-v3 not ready",
             "saved_weights": [], "created_at": 0, "updated_at": 0},
            {"id": 2, "app": "hello", "strategy": "blue-green", "state": "confirmed",
             "from_version": 1, "to_version": 2, "reason": null,
             "saved_weights": [], "created_at": 0, "updated_at": 0}
        ]))
        .unwrap();
        let text = render(&releases, false);
        assert_eq!(
            text,
            "ID  STRATEGY    STATE        VERSIONS  STARTED               REASON\n\
             3   blue-green  rolled-back  v2 -> v3  1970-01-01 00:00:00Z  failed: serviceB-v3 not ready\n\
             2   blue-green  confirmed    v1 -> v2  1970-01-01 00:00:00Z\n"
        );
        assert!(render(&releases, true).contains("\u{1b}[1mconfirmed  \u{1b}[0m"));
    }
}
