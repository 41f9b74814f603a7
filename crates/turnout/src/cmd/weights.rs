//! `turnout weights ROUTE SERVICE=W...`: set the weights of some services
//! on a route, in one atomic step.

use std::process::ExitCode;
use turnout_routing::Weight;

use crate::client::{self, ApiError, Client, Connection};
use crate::cmd::routes::route_line;
use crate::cmd::status::service_color;
use crate::output::outln;
use crate::output::{OutputFormat, use_color};
use turnout_api_types::AppStatus;

/// Arguments of `turnout weights`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Weights are integers from 0 to 100 and relative: 100 and 100 is half the \
    traffic each. Only the services named change; the others keep theirs.\n\nExamples:\n  \
    turnout weights serviceb serviceB-v2=100\n  turnout weights serviceb.localhost \
    serviceB-v1=0 serviceB-v2=100"
)]
pub struct Args {
    /// The route: its id (`serviceb.localhost`) or an unambiguous bare
    /// prefix (`serviceb`).
    #[arg(value_name = "ROUTE")]
    route: String,
    /// New weights, `SERVICE=W` with W from 0 to 100.
    #[arg(value_name = "SERVICE=W", required = true, value_parser = parse_weight)]
    weights: Vec<(String, Weight)>,
    /// The app; default: the only app on the server.
    #[arg(long, value_name = "APP")]
    app: Option<String>,
    /// Output format (json: the app's status after the change).
    #[arg(long, short, value_enum, default_value_t)]
    output: OutputFormat,
    #[command(flatten)]
    conn: Connection,
}

/// Reads `SERVICE=W`.
fn parse_weight(s: &str) -> Result<(String, Weight), String> {
    let (name, weight) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not SERVICE=W (e.g. serviceB-v2=100)"))?;
    if name.is_empty() {
        return Err(format!("{s:?} names no service"));
    }
    let weight = weight
        .parse::<u8>()
        .ok()
        .and_then(Weight::new)
        .ok_or_else(|| format!("weight {weight:?} for {name} is not an integer from 0 to 100"))?;
    Ok((name.to_string(), weight))
}

/// Runs the verb.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut seen = std::collections::BTreeSet::new();
    for (name, _) in &args.weights {
        if !seen.insert(name) {
            return Err(ApiError::local(
                format!("{name} is given two weights"),
                "name each service once",
            )
            .into());
        }
    }
    client::block_on(async {
        let client = Client::connect(&args.conn)?;
        let app = client.app(args.app.as_deref()).await?;
        let status = client.set_weights(&app, &args.route, &args.weights).await?;
        print_route(&status, &args.route, args.output)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Prints the route a command changed (the status, for `--output json`).
pub(crate) fn print_route(s: &AppStatus, route: &str, output: OutputFormat) -> anyhow::Result<()> {
    if output == OutputFormat::Json {
        outln!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    let color = use_color(false);
    let lower = route.to_ascii_lowercase();
    // The route may have been named by its bare prefix.
    let matching: Vec<_> = s
        .routes
        .iter()
        .filter(|r| r.id == lower || r.id.starts_with(&format!("{lower}.")))
        .collect();
    let shown = if matching.is_empty() {
        s.routes.iter().collect()
    } else {
        matching
    };
    let id_w = shown.iter().map(|r| r.id.len()).max().unwrap_or(0);
    for r in shown {
        outln!(
            "{}",
            route_line(r, id_w, &|name| service_color(s, name).to_string(), color)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_are_service_equals_integer() {
        assert_eq!(
            parse_weight("serviceB-v2=100").unwrap(),
            ("serviceB-v2".into(), Weight::MAX)
        );
        assert_eq!(parse_weight("a=0").unwrap(), ("a".into(), Weight::ZERO));
        assert!(parse_weight("a=101").unwrap_err().contains("0 to 100"));
        assert!(parse_weight("a=-1").is_err());
        assert!(parse_weight("a").unwrap_err().contains("SERVICE=W"));
        assert!(parse_weight("=5").is_err());
    }
}
