//! The engine's values and the store's records, both ways: what the
//! controller commits (apps, releases, templates, events) and how it reads
//! an app back on start. The one place that knows both shapes.

use std::collections::BTreeMap;

use turnout_routing::Weight;
use turnout_spec::Template;
use turnout_store::{
    AppRecord, NewEvent, ReleaseRecord, ServiceRecord, Store, TemplateRecord, WeightRecord,
    now_millis,
};

use crate::controller::ControlError;
use crate::error::EngineError;
use crate::model::{
    App, PauseReason, Progress, Release, ReleaseState, RouteWeight, ServiceEntry, ServiceRole,
    Weights,
};
use crate::step::Effect;

/// Converts the engine's weights into store records (route order kept).
pub(crate) fn weight_records(weights: &Weights) -> Vec<WeightRecord> {
    weights
        .iter()
        .flat_map(|(route, ws)| {
            ws.iter().map(move |w| WeightRecord {
                route_id: route.clone(),
                service: w.service.clone(),
                weight: w.weight.get(),
            })
        })
        .collect()
}

pub(crate) fn weights_from(records: &[WeightRecord]) -> Weights {
    let mut weights: Weights = BTreeMap::new();
    for r in records {
        weights
            .entry(r.route_id.clone())
            .or_default()
            .push(RouteWeight {
                service: r.service.clone(),
                // The store's column is checked 0..=100 (`CHECK`).
                weight: Weight::new(r.weight).unwrap_or(Weight::MAX),
            });
    }
    weights
}

pub(crate) fn app_record(app: &App, created_at: i64) -> AppRecord {
    AppRecord {
        name: app.name.clone(),
        template_version: app.version,
        created_at,
        updated_at: now_millis(),
        services: app
            .services
            .values()
            .map(|e| ServiceRecord {
                name: e.name().to_string(),
                template_version: e.template_version,
                spec_hash: e.spec_hash.clone(),
                scale: e.spec.settings.scale,
                state: e.role.to_string(),
            })
            .collect(),
        weights: weight_records(&app.weights),
    }
}

pub(crate) fn release_record(app: &str, r: &Release) -> ReleaseRecord {
    let now = now_millis();
    ReleaseRecord {
        id: r.id,
        app: app.to_string(),
        strategy: r.strategy.to_string(),
        state: r.state.to_string(),
        from_version: r.from_version,
        to_version: r.to_version,
        reason: r.reason.clone(),
        saved_weights: weight_records(&r.saved_weights),
        created_at: r.started_at_ms,
        updated_at: now,
        progress: r.progress.as_ref().map(progress_json),
    }
}

/// A progressive release's plan and step as the store keeps them: the
/// overrides (the plan is made again from them and the template), the
/// step and its start, why it is paused, whether a canary is scaling up.
fn progress_json(p: &Progress) -> serde_json::Value {
    serde_json::json!({
        "overrides": serde_json::to_value(&p.overrides).unwrap_or_default(),
        "step": p.step,
        "step_started_ms": p.step_started_ms,
        "paused": p.paused.map(PauseReason::as_str),
        "scaling": p.scaling,
        "passed": p.passed,
    })
}

/// Reads [`progress_json`] back, with the plan made again from
/// `template`; `None` when it does not read (the release then goes on as
/// a blue-green one would: the operator confirms or rolls back).
fn progress_from(value: &serde_json::Value, template: Option<&Template>) -> Option<Progress> {
    let overrides: turnout_spec::ReleaseBlock =
        serde_json::from_value(value.get("overrides")?.clone()).ok()?;
    let plan = turnout_spec::ReleasePlan::with_overrides(
        template?,
        &turnout_spec::PlanSpans::default(),
        &overrides,
    )
    .ok()?
    .plan;
    Some(Progress {
        overrides,
        plan,
        step: value
            .get("step")
            .and_then(serde_json::Value::as_u64)
            .map(|s| s as usize),
        step_started_ms: value.get("step_started_ms")?.as_i64()?,
        paused: value
            .get("paused")
            .and_then(serde_json::Value::as_str)
            .and_then(PauseReason::parse),
        scaling: value
            .get("scaling")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
        passed: value
            .get("passed")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false),
    })
}

pub(crate) fn events_of(app: &str, effects: &[Effect]) -> Vec<NewEvent> {
    effects
        .iter()
        .map(|e| match e {
            Effect::Event { kind, message } => NewEvent {
                app: app.to_string(),
                kind: (*kind).to_string(),
                message: message.clone(),
                data: None,
            },
        })
        .collect()
}

/// Reads a template stored by the controller (normalised YAML, so no
/// environment is needed to read it back).
pub fn stored_template(record: &TemplateRecord) -> Result<Template, EngineError> {
    turnout_spec::parse(&record.source_name, &record.text, &|_| None)
        .map(|p| Template {
            // The folder is not in the text; `env_file` values are, merged
            // into `environment` before the template was stored.
            base_dir: record.base_dir.clone(),
            ..p.template
        })
        .map_err(|diagnostics| {
            EngineError::invalid(
                format!(
                    "stored template {} of app {} no longer reads: {}",
                    record.version,
                    record.app,
                    diagnostics
                        .first()
                        .map(ToString::to_string)
                        .unwrap_or_default()
                ),
                "the data dir was written by another turnout version; deploy the app again",
            )
        })
}

pub(crate) fn template_record(app: &App, version: u32, source_name: &str) -> TemplateRecord {
    TemplateRecord {
        app: app.name.clone(),
        version,
        source_name: source_name.to_string(),
        text: turnout_spec::to_yaml(&app.templates[&version]),
        created_at: now_millis(),
        base_dir: app.templates[&version].base_dir.clone(),
    }
}

/// Rebuilds an app from its records.
pub(crate) fn load_app(
    store: &Store,
    record: &AppRecord,
    domain: &str,
) -> Result<App, ControlError> {
    let release = store.current_release(&record.name)?;
    let mut templates = BTreeMap::new();
    let mut versions = vec![record.template_version];
    if let Some(r) = &release
        && !r
            .state
            .parse::<ReleaseState>()
            .is_ok_and(ReleaseState::is_terminal)
    {
        versions.push(r.from_version);
        versions.push(r.to_version);
    }
    for s in &record.services {
        versions.push(s.template_version);
    }
    versions.sort_unstable();
    versions.dedup();
    for v in versions {
        if let Some(t) = store.template(&record.name, v)? {
            templates.insert(v, stored_template(&t)?);
        }
    }
    let mut services = BTreeMap::new();
    for s in &record.services {
        let Some(spec) = templates
            .get(&s.template_version)
            .and_then(|t| t.service(&s.name))
        else {
            continue;
        };
        let role = match s.state.as_str() {
            "unchanged" => ServiceRole::Unchanged,
            "old" => ServiceRole::Old,
            "new" => ServiceRole::New,
            "changed" => ServiceRole::Changed,
            _ => ServiceRole::Current,
        };
        services.insert(
            s.name.clone(),
            ServiceEntry::new(spec.clone(), s.template_version, role),
        );
    }
    let release = release.map(|r| Release {
        id: r.id,
        strategy: r.strategy.parse().unwrap_or_default(),
        state: r.state.parse().unwrap_or(ReleaseState::RolledBack),
        from_version: r.from_version,
        to_version: r.to_version,
        reason: r.reason.clone(),
        saved_weights: weights_from(&r.saved_weights),
        started_at_ms: r.created_at,
        progress: r
            .progress
            .as_ref()
            .and_then(|p| progress_from(p, templates.get(&r.to_version))),
    });
    // Only the templates the app still needs stay in memory.
    let keep: Vec<u32> = match release.as_ref().filter(|r| !r.state.is_terminal()) {
        Some(r) => vec![r.from_version, r.to_version],
        None => vec![record.template_version],
    };
    templates.retain(|v, _| keep.contains(v));
    Ok(App {
        name: record.name.clone(),
        domain: domain.to_string(),
        version: record.template_version,
        templates,
        services,
        weights: weights_from(&record.weights),
        release,
    })
}
