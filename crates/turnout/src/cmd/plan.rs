//! `turnout plan FILE [flags]`: the release plan of a template (its
//! `x-turnout.release` block with the flags on top, DESIGN §8), step by
//! step, with the least time to promote and to roll back. Starts nothing
//! and needs no server. Also the plan flags `turnout release` shares.

use std::path::PathBuf;
use std::process::ExitCode;

use turnout_spec::plan::{
    AbBlock, AnalysisBlock, CanaryBlock, Millis, Pause, Rate, parse_duration, parse_pause,
    parse_rate, parse_share, parse_steps, parse_strategy,
};
use turnout_spec::{
    Diagnostic, GoalSpec, OnSuccess, ReleaseBlock, ReleasePlan, Schedule, Strategy, Template,
};

use super::validate::load_diagnosed;
use crate::output::outln;
use crate::output::{OutputFormat, paint, print_diagnostics, use_color};

/// Gray steps as `--steps` writes them (`10,50,100`): one value, so that
/// clap does not read it as a list of flags.
#[derive(Debug, Clone)]
pub(crate) struct Steps(Vec<u32>);

fn steps(s: &str) -> Result<Steps, turnout_spec::plan::ValueError> {
    parse_steps(s).map(Steps)
}

fn goal(s: &str) -> Result<String, String> {
    if s.starts_with('/') {
        Ok(s.to_string())
    } else {
        Err(format!(
            "the goal's path {s:?} does not start with / (write it from the root: `/{s}`)"
        ))
    }
}

/// The plan flags of DESIGN §8, each overriding the template's
/// `x-turnout.release` block. A bad value is refused here, by the same
/// functions the template reader and the server use.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct PlanFlags {
    /// How to release: blue-green, standard, canary, gray or ab-test
    /// (default: the template's, else blue-green).
    #[arg(long, value_parser = parse_strategy, help_heading = "Plan")]
    strategy: Option<Strategy>,
    /// Gray: the new version's share at each step, in percent.
    #[arg(long, value_name = "10,50,100", value_parser = steps, help_heading = "Plan")]
    steps: Option<Steps>,
    /// Bake time per step (`30s`), or `until-promoted`.
    #[arg(long, value_name = "DURATION", value_parser = parse_pause, help_heading = "Plan")]
    pause: Option<Pause>,
    /// Canary: its share of each shared route, in percent.
    #[arg(long, value_name = "PERCENT", value_parser = parse_share, help_heading = "Plan")]
    canary_share: Option<u8>,
    /// Canary: how many new instances it runs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Plan")]
    canary_scale: Option<u32>,
    /// The metrics window of each check (`30s`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Plan")]
    window: Option<Millis>,
    /// Fewer requests to the new version in a window: inconclusive.
    #[arg(long, value_name = "N", help_heading = "Plan")]
    min_requests: Option<u64>,
    /// The new version's 5xx share (`1%` or `0.01`).
    #[arg(long, value_name = "RATE", value_parser = parse_rate, allow_hyphen_values = true, help_heading = "Plan")]
    max_error_rate: Option<Rate>,
    /// New minus baseline 5xx share (`1%`).
    #[arg(long, value_name = "RATE", value_parser = parse_rate, allow_hyphen_values = true, help_heading = "Plan")]
    max_error_increase: Option<Rate>,
    /// The new version's p99 latency (`500ms`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Plan")]
    max_p99: Option<Millis>,
    /// New minus baseline p99 (`100ms`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, help_heading = "Plan")]
    max_p99_increase: Option<Millis>,
    /// After the last step: pending-confirmation or confirm.
    #[arg(long, value_name = "WHAT", value_parser = clap::builder::ValueParser::new(|s: &str| s.parse::<OnSuccess>()), help_heading = "Plan")]
    on_success: Option<OnSuccess>,
    /// A/B test: the path a conversion reaches (`/checkout`).
    #[arg(long, value_name = "PATH", value_parser = goal, help_heading = "Plan")]
    goal: Option<String>,
    /// A/B test: the new variant's sticky share, in percent.
    #[arg(long, value_name = "PERCENT", value_parser = parse_share, help_heading = "Plan")]
    ab_share: Option<u8>,
}

impl PlanFlags {
    /// The flags as the API's `plan`: a release block holding the fields
    /// the flags set.
    pub(crate) fn overrides(&self) -> ReleaseBlock {
        let canary = CanaryBlock {
            share: self.canary_share.map(u32::from),
            scale: self.canary_scale,
        };
        let analysis = AnalysisBlock {
            window: self.window,
            min_requests: self.min_requests,
            max_error_rate: self.max_error_rate,
            max_error_increase: self.max_error_increase,
            max_p99: self.max_p99,
            max_p99_increase: self.max_p99_increase,
            prometheus: None,
        };
        let ab = AbBlock {
            rules: Vec::new(),
            share: self.ab_share.map(u32::from),
            goal: self
                .goal
                .clone()
                .map(|path| GoalSpec { path, status: None }),
        };
        ReleaseBlock {
            strategy: self.strategy,
            steps: self.steps.clone().map(|s| s.0),
            pause: self.pause,
            canary: (canary != CanaryBlock::default()).then_some(canary),
            analysis: (analysis != AnalysisBlock::default()).then_some(analysis),
            on_success: self.on_success,
            lanes: None,
            ab: (ab != AbBlock::default()).then_some(ab),
        }
    }
}

/// Arguments of `turnout plan`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Prints the plan `turnout release FILE` with the same flags would run: the \
    strategy, each step with the new version's share on each route, the pause and analysis \
    window per step, and the least time to promote and to roll back. Starts nothing and needs \
    no server.\n\nExit status: 0 when the plan is valid (warnings allowed), 1 when the template \
    or the plan is not, 2 on a usage error (a bad flag value).\n\nExample:\n  turnout plan \
    examples/hello-gray/app-frontend-v2.yaml --steps 20,100"
)]
pub struct Args {
    /// The template to release.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The template running now: the routes shown are then the ones the
    /// release shares, with the services it starts.
    #[arg(long, value_name = "OLD")]
    from: Option<PathBuf>,
    /// The route domain a bare route prefix is completed with.
    #[arg(long, env = "TURNOUT_DOMAIN", default_value = turnout_spec::DEFAULT_DOMAIN)]
    domain: String,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t)]
    output: OutputFormat,
    #[command(flatten)]
    plan: PlanFlags,
}

/// Reads a template file, its problems in `diagnostics`.
fn load(
    file: &std::path::Path,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<(Template, turnout_spec::PlanSpans)> {
    let (loaded, d) = crate::local_template::load(file);
    diagnostics.extend(d);
    loaded.map(|l| (l.template, l.plan_spans))
}

/// Runs the verb.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut diagnostics = Vec::new();
    let new = load(&args.file, &mut diagnostics);
    let old = args.from.as_ref().and_then(|f| {
        let (t, d) = load_diagnosed(f);
        diagnostics.extend(d);
        t
    });
    let loaded_all = new.is_some() && (args.from.is_none() || old.is_some());
    let resolved = match (&new, loaded_all) {
        (Some((template, spans)), true) => {
            match ReleasePlan::with_overrides(template, spans, &args.plan.overrides()) {
                Ok(r) => {
                    diagnostics.extend(r.warnings);
                    Some(r.plan)
                }
                Err(d) => {
                    diagnostics.extend(d);
                    None
                }
            }
        }
        _ => None,
    };
    // The block's own warnings come from the parse and again from the
    // merge: show each once.
    let mut seen = Vec::new();
    diagnostics.retain(|d| {
        let new = !seen.contains(d);
        if new {
            seen.push(d.clone());
        }
        new
    });
    let (Some(plan), Some((template, _))) = (resolved, &new) else {
        let errors = diagnostics.iter().filter(|d| d.is_error()).count();
        match args.output {
            OutputFormat::Human => {
                print_diagnostics(&diagnostics);
                outln!(
                    "{}: {} ({errors} errors); nothing was started",
                    args.file.display(),
                    paint("invalid plan", "red", use_color(false))
                );
            }
            OutputFormat::Json => {
                let (errors, warnings): (Vec<_>, Vec<_>) =
                    diagnostics.iter().partition(|d| d.is_error());
                let doc = serde_json::json!({
                    "file": args.file.display().to_string(),
                    "valid": false,
                    "errors": errors,
                    "warnings": warnings,
                });
                outln!("{}", serde_json::to_string_pretty(&doc)?);
            }
        }
        return Ok(ExitCode::from(1));
    };
    let mut rollback_check = Vec::new();
    if let Some(old) = &old {
        rollback_check = plan.check_release(old, template, &args.domain);
        if rollback_check.iter().any(Diagnostic::is_error) {
            diagnostics.extend(rollback_check);
            print_diagnostics(&diagnostics);
            return Ok(ExitCode::from(1));
        }
    }
    diagnostics.append(&mut rollback_check);
    let schedule = Schedule::new(&plan, template, old.as_ref(), &args.domain);
    match args.output {
        OutputFormat::Human => {
            print_diagnostics(&diagnostics);
            render(&args.file.display().to_string(), &schedule);
        }
        OutputFormat::Json => {
            let mut doc = serde_json::to_value(&schedule)?;
            if let Some(map) = doc.as_object_mut() {
                map.insert("file".into(), args.file.display().to_string().into());
                map.insert("valid".into(), true.into());
                map.insert("warnings".into(), serde_json::to_value(&diagnostics)?);
            }
            outln!("{}", serde_json::to_string_pretty(&doc)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn ms(ms: u64) -> String {
    Millis(ms).to_string()
}

/// The human form of a schedule.
fn render(file: &str, s: &Schedule) {
    let p = &s.plan;
    outln!("plan of {file}: {}", p.strategy);
    match p.strategy {
        Strategy::BlueGreen => {
            outln!(
                "the new services start beside the old ones, at weight 0 on shared routes; move \
                 traffic with `turnout weights` or `turnout switch`, then `turnout confirm` or \
                 `turnout rollback`"
            );
            return;
        }
        Strategy::Standard => {
            outln!(
                "changed services are replaced in place, health-gated, batch by batch; the \
                 release ends confirmed"
            );
            return;
        }
        _ => {}
    }
    let gates = p.analysis.gates();
    if gates.is_empty() {
        outln!(
            "analysis: no gate is set: steps advance on their pause, nothing rolls back by itself"
        );
    } else {
        outln!(
            "analysis: every {}, at least {} requests to the new version per window; gates: {}",
            p.analysis.window,
            p.analysis.min_requests,
            gates.join(", ")
        );
    }
    if p.strategy == Strategy::Canary {
        outln!("canary: {} new instance(s) per new service", p.canary.scale);
    }
    if p.strategy == Strategy::AbTest {
        match &p.ab.goal {
            Some(g) => outln!(
                "goal: {} ({}); {} rule(s)",
                g.path,
                g.status.as_deref().unwrap_or("2xx"),
                p.ab.rules.len()
            ),
            None => outln!("goal: none; {} rule(s)", p.ab.rules.len()),
        }
    }
    outln!("lanes: {}", if p.lanes { "on" } else { "off" });
    let count = s.steps.len();
    let width = s
        .steps
        .first()
        .map(|st| st.routes.iter().map(|r| r.route.len()).max().unwrap_or(0))
        .unwrap_or(0);
    for st in &s.steps {
        let window = st.window.map_or_else(
            || "no analysis".to_string(),
            |w| format!("analysis every {w}"),
        );
        let least = st.min_ms.map_or_else(
            || "until `turnout promote`".to_string(),
            |m| format!("at least {}", ms(m)),
        );
        outln!(
            "step {}/{count}: {} %  pause {}, {window} ({least})",
            st.index,
            st.share,
            st.pause
        );
        for r in &st.routes {
            outln!(
                "  {:width$}  new {:>3} %  old {:>3} %  {}{}",
                r.route,
                r.new,
                r.old,
                r.services.join(", "),
                if r.internal { "  (internal)" } else { "" }
            );
        }
        if st.routes.is_empty() {
            outln!("  (the template has no routes)");
        }
    }
    if s.steps.last().is_some_and(|st| st.share < 100) {
        outln!("then: 100 % and {}", s.then);
    } else {
        outln!("then: {}", s.then);
    }
    match s.min_promote_ms {
        Some(m) => outln!(
            "minimum time to promote: {} (every step's pause and analysis window), after the new instances are ready",
            ms(m)
        ),
        None => outln!("minimum time to promote: each step waits for `turnout promote`"),
    }
    match s.min_rollback_ms {
        Some(m) => outln!(
            "minimum time to roll back: {} (the first failing check: one window)",
            ms(m)
        ),
        None => {
            outln!("minimum time to roll back: none automatic (no gate is set): `turnout rollback`")
        }
    }
    if !s.routes_from_diff {
        outln!("routes: every route of {file}; with --from OLD, the ones the release shares");
    }
    outln!(
        "note: this server does not release {} yet; `turnout release` refuses it",
        p.strategy
    );
}
