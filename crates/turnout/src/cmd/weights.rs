//! `turnout weights ROUTE SERVICE=W...`: set the weights of some services
//! on a route, in one atomic step.

use std::process::ExitCode;
use turnout_routing::Weight;

use crate::client::{ApiError, AppArgs};
use crate::cmd::render::print_route;

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
    #[command(flatten)]
    on: AppArgs,
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
    args.on.run(async |client, app| {
        let status = client.set_weights(&app, &args.route, &args.weights).await?;
        print_route(&status, &args.route, args.on.output)?;
        Ok(ExitCode::SUCCESS)
    })
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
