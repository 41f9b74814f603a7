//! `turnout report`: the figures of an app's current (or last) release per
//! version since its traffic split began, and the comparison of the old
//! and new version (DESIGN §8): conversions by a two-proportion z-test,
//! latency by Mann-Whitney U.

use std::process::ExitCode;

use crate::client::AppArgs;
use crate::cmd::render::table;
use crate::output::{OutputFormat, out, outln};
use turnout_api_types::ReleaseReport;

/// Arguments of `turnout report`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Shows, for the release in progress (or the last one, once it ended, \
    while the same server runs), each service's clients, requests, error rate, p50 and p99 \
    and goal conversions on the routes the release shares, counted from its first step; then \
    whether the new version converts differently from the old (two-proportion z-test) and is \
    slower or faster (Mann-Whitney U), at 95 % confidence. Clients are told apart by their \
    turnout_pos cookie.\n\nExamples:\n  turnout report --app shop\n  turnout report --app shop --output json"
)]
pub struct Args {
    #[command(flatten)]
    on: AppArgs,
}

/// Runs the verb.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    args.on.run(async |client, app| {
        let report = client.report(&app).await?;
        match args.on.output {
            OutputFormat::Json => outln!("{}", serde_json::to_string_pretty(&report)?),
            OutputFormat::Human => out!("{}", render(&report)),
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn percent(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.1}%", v * 100.0))
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1} ms"))
}

fn p_value(p: Option<f64>) -> String {
    match p {
        None => "p: -".into(),
        Some(p) if p < 0.0001 => "p < 0.0001".into(),
        Some(p) => format!("p = {p:.4}"),
    }
}

/// The report as text: one row per service, then the comparison.
fn render(r: &ReleaseReport) -> String {
    let mut out = format!(
        "release {} ({}, {}), figures since {}\n",
        r.release_id,
        r.strategy,
        if r.running { "running" } else { "ended" },
        crate::cmd::history::utc(r.since_ms)
    );
    let rows: Vec<[String; 10]> = r
        .variants
        .iter()
        .map(|v| {
            [
                v.route.clone(),
                v.service.clone(),
                v.role.clone(),
                v.clients.to_string(),
                v.requests.to_string(),
                percent(v.error_rate),
                ms(v.p50_ms),
                ms(v.p99_ms),
                v.conversions.to_string(),
                percent(v.conversion_rate),
            ]
        })
        .collect();
    let header = [
        "ROUTE",
        "SERVICE",
        "ROLE",
        "CLIENTS",
        "REQUESTS",
        "5XX",
        "P50",
        "P99",
        "CONVERTED",
        "RATE",
    ];
    out.push_str(&table(header, &rows, |_, cell| cell.to_string()));
    let confidence = r.conversion.confidence * 100.0;
    let verdict = |significant: bool, p: Option<f64>| match (p, significant) {
        (None, _) => "cannot be judged yet (a side has no clients or requests)".to_string(),
        (Some(_), true) => format!("significant at {confidence:.0} %"),
        (Some(_), false) => format!("no significant difference at {confidence:.0} %"),
    };
    out.push_str(&format!(
        "\non {}, new against old:\n  conversion: {} (difference {}, {})\n  latency: {} ({})\n",
        r.route,
        verdict(r.conversion.significant, r.conversion.p_value),
        r.conversion
            .difference
            .map_or_else(|| "-".into(), |d| format!("{:+.1} points", d * 100.0)),
        p_value(r.conversion.p_value),
        verdict(r.latency.significant, r.latency.p_value),
        p_value(r.latency.p_value),
    ));
    out
}
