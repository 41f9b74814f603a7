//! The handlers of `/v1`, one per endpoint of `docs/api.md`.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use tokio_stream::StreamExt;
use turnout_api_types::{
    AbortRequest, AppList, ConfirmRequest, DeployRequest, EmptyRequest, EventList, EventQuery,
    EventRecord, LogQuery, PromoteRequest, ReleaseList, ReleaseRecord, ReleaseRequest, RouteList,
    SavedWeight, ServiceList, WeightsRequest,
};
use turnout_engine::{Command, ControlError, DataPlane};
use turnout_routing::Weight;
use turnout_runtime::Runtime;
use turnout_spec::{Diagnostic, PlanSpans, ReleaseBlock, ReleasePlan, Strategy};

use crate::ApiState;
use crate::error::ApiError;
use crate::http::{ApiQuery, JsonBody};

type Result<T> = std::result::Result<T, ApiError>;

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Refused(e) => e.into(),
            // The new state's route table cannot be built (nothing was
            // committed): the request asked for something the router
            // cannot serve, such as more services on one route than it
            // splits between.
            ControlError::Routes(e) => ApiError::new(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!("the router cannot serve this: {e}"),
                "change the template so that its routes are valid; nothing was changed",
            ),
            other => ApiError::internal(&other),
        }
    }
}

/// Reads a JSON body with our own error format (axum's rejections are
/// plain text).
pub(crate) fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T> {
    if bytes.is_empty() {
        return serde_json::from_slice(b"{}").map_err(|e| {
            ApiError::bad_request(
                format!("the request needs a JSON body: {e}"),
                "send a JSON object, see docs/api.md",
            )
        });
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(
            format!("invalid JSON body: {e}"),
            "send a JSON object as docs/api.md describes it",
        )
    })
}

/// Parses a template sent in a request, merges the `env_file` values sent
/// with it and sets its folder; an invalid one is refused with every
/// diagnostic. The spans of its release block come with it, for the
/// plan's diagnostics.
fn template(
    text: &str,
    source_name: &str,
    env_files: &turnout_spec::EnvFiles,
    base_dir: Option<String>,
) -> Result<(turnout_spec::Template, PlanSpans)> {
    if let Some(dir) = &base_dir
        && !std::path::Path::new(dir).is_absolute()
    {
        return Err(ApiError::bad_request(
            format!("base_dir {dir:?} is not an absolute path"),
            "send the template's folder as an absolute path, or leave base_dir out",
        ));
    }
    turnout_spec::parse(source_name, text, &|_| None)
        .and_then(|p| {
            let mut t = p.template;
            turnout_spec::apply_env_files(&mut t, env_files, source_name)?;
            t.base_dir = base_dir;
            Ok((t, p.plan_spans))
        })
        .map_err(|diagnostics| {
            invalid(
                "the template",
                diagnostics,
                "fix the template (`turnout validate FILE` shows every problem) and send it again",
            )
        })
}

/// 422 with every diagnostic, the first error in the message.
fn invalid(what: &str, diagnostics: Vec<Diagnostic>, hint: &str) -> ApiError {
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let first = diagnostics
        .iter()
        .find(|d| d.is_error())
        .map(ToString::to_string)
        .unwrap_or_default();
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid",
        format!("{what} has {errors} errors; the first: {first}"),
        hint,
    )
    .with_diagnostics(diagnostics)
}

/// The plan of a release: the template's block with the request's
/// overrides (`plan`, and the older top-level `strategy`) on top, through
/// turnout-spec's one merge. A bad plan is refused (422) before anything starts;
/// what the engine cannot query (a Prometheus gate's URL that is not
/// http://) or cannot release (an A/B test without a shared route) it
/// refuses.
fn release_plan(
    template: &turnout_spec::Template,
    spans: &PlanSpans,
    strategy: Option<&str>,
    plan: Option<ReleaseBlock>,
) -> Result<(ReleaseBlock, ReleasePlan)> {
    let mut overrides = plan.unwrap_or_default();
    if let Some(s) = strategy {
        let s: Strategy = s.parse().map_err(|e: String| {
            ApiError::bad_request(
                e,
                "strategy is blue-green (default), standard, canary, gray or ab-test",
            )
        })?;
        match overrides.strategy {
            Some(other) if other != s => {
                return Err(ApiError::bad_request(
                    format!("strategy {s} and plan.strategy {other} disagree"),
                    "give the strategy once, in plan.strategy",
                ));
            }
            _ => overrides.strategy = Some(s),
        }
    }
    let resolved = ReleasePlan::with_overrides(template, spans, &overrides).map_err(|d| {
        invalid(
            "the release plan",
            d,
            "fix the template's x-turnout.release block or the flags (`turnout plan FILE` shows \
             the plan); nothing was changed",
        )
    })?;
    Ok((overrides, resolved.plan))
}

pub(crate) async fn list_apps<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
) -> Result<Json<AppList>> {
    Ok(Json(AppList {
        apps: s.controller.statuses().await,
    }))
}

fn check_app_name(name: &str) -> Result<()> {
    if turnout_api_types::valid_app_name(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            format!("invalid app name {name:?}"),
            turnout_api_types::APP_NAME_RULE,
        ))
    }
}

pub(crate) async fn deploy<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    JsonBody(b): JsonBody<DeployRequest>,
) -> Result<Response> {
    check_app_name(&b.name)?;
    let source = b.source_name.unwrap_or_else(|| "template.yaml".into());
    let (t, _) = template(&b.template, &source, &b.env_files, b.base_dir)?;
    let accepted = s.controller.deploy(&b.name, &source, t).await?;
    Ok((StatusCode::CREATED, Json(accepted)).into_response())
}

pub(crate) async fn get_app<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path(app): Path<String>,
) -> Result<Response> {
    Ok(Json(s.controller.status(&app).await?).into_response())
}

pub(crate) async fn delete_app<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path(app): Path<String>,
) -> Result<StatusCode> {
    s.controller.delete(&app).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn start_release<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path(app): Path<String>,
    JsonBody(b): JsonBody<ReleaseRequest>,
) -> Result<Response> {
    let source = b.source_name.unwrap_or_else(|| "template.yaml".into());
    // The app must exist before the template is worth reading.
    s.controller.status(&app).await?;
    let (t, spans) = template(&b.template, &source, &b.env_files, b.base_dir)?;
    let (overrides, plan) = release_plan(&t, &spans, b.strategy.as_deref(), b.plan)?;
    let strategy = plan.strategy;
    let plan = strategy.is_progressive().then_some((overrides, plan));
    let accepted = s
        .controller
        .release(&app, &source, t, strategy, plan)
        .await?;
    Ok((StatusCode::CREATED, Json(accepted)).into_response())
}

/// `POST /v1/apps/{app}/plan`: the release the body would start, laid out
/// in steps against the app's current template (the routes it shares, the
/// least time to promote and to roll back), checked as a release is;
/// nothing starts.
pub(crate) async fn plan_release<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path(app): Path<String>,
    JsonBody(b): JsonBody<ReleaseRequest>,
) -> Result<Json<turnout_spec::Schedule>> {
    let source = b.source_name.unwrap_or_else(|| "template.yaml".into());
    s.controller.status(&app).await?;
    let (t, spans) = template(&b.template, &source, &b.env_files, b.base_dir)?;
    let (_, plan) = release_plan(&t, &spans, b.strategy.as_deref(), b.plan)?;
    let old = s.controller.template(&app).await;
    let domain = &s.controller.settings().domain;
    if let Some(old) = &old {
        let problems: Vec<Diagnostic> = turnout_spec::diff(old, &t, domain)
            .check(plan.strategy)
            .into_iter()
            .chain(plan.check_release(old, &t, domain))
            .filter(Diagnostic::is_error)
            .collect();
        if !problems.is_empty() {
            return Err(invalid(
                "the release",
                problems,
                "fix the template or the plan; nothing was started",
            ));
        }
    }
    Ok(Json(turnout_spec::Schedule::new(
        &plan,
        &t,
        old.as_ref(),
        domain,
    )))
}

pub(crate) async fn list_releases<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path(app): Path<String>,
) -> Result<Json<ReleaseList>> {
    s.controller.status(&app).await?;
    let releases = s
        .controller
        .store()
        .releases(&app)
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(ReleaseList {
        releases: releases.into_iter().map(release_record).collect(),
    }))
}

pub(crate) async fn get_release<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path((app, id)): Path<(String, String)>,
) -> Result<Response> {
    s.controller.status(&app).await?;
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("app {app} has no release {id:?}"),
            format!("list them with GET /v1/apps/{app}/releases"),
        )
    };
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let release = s
        .controller
        .store()
        .release(id)
        .map_err(|e| ApiError::internal(&e))?
        .filter(|r| r.app == app)
        .ok_or_else(not_found)?;
    Ok(Json(release_record(release)).into_response())
}

/// A stored release as the API shows it.
fn release_record(r: turnout_store::ReleaseRecord) -> ReleaseRecord {
    ReleaseRecord {
        id: r.id,
        app: r.app,
        strategy: r.strategy,
        state: r.state,
        from_version: r.from_version,
        to_version: r.to_version,
        reason: r.reason,
        saved_weights: r
            .saved_weights
            .into_iter()
            .map(|w| SavedWeight {
                route_id: w.route_id,
                service: w.service,
                // The store's column is checked 0..=100.
                weight: Weight::new(w.weight).unwrap_or(Weight::MAX),
            })
            .collect(),
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

/// A stored event as the API shows it.
fn event_record(e: turnout_store::EventRecord) -> EventRecord {
    EventRecord {
        id: e.id,
        app: e.event.app,
        at: e.at,
        kind: e.event.kind,
        message: e.event.message,
        data: e.event.data,
    }
}

pub(crate) async fn confirm<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path(app): Path<String>,
    JsonBody(b): JsonBody<ConfirmRequest>,
) -> Result<Response> {
    let status = s
        .controller
        .command(&app, Command::Confirm { switch: b.switch })
        .await?;
    Ok(Json(status).into_response())
}

pub(crate) async fn rollback<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path(app): Path<String>,
    JsonBody(_): JsonBody<EmptyRequest>,
) -> Result<Response> {
    let status = s.controller.command(&app, Command::Rollback).await?;
    Ok(Json(status).into_response())
}

pub(crate) async fn promote<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path(app): Path<String>,
    JsonBody(b): JsonBody<PromoteRequest>,
) -> Result<Response> {
    let command = Command::Promote {
        full: b.full,
        now_ms: turnout_store::now_millis(),
    };
    Ok(Json(s.controller.command(&app, command).await?).into_response())
}

pub(crate) async fn pause<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path(app): Path<String>,
    JsonBody(_): JsonBody<EmptyRequest>,
) -> Result<Response> {
    Ok(Json(s.controller.command(&app, Command::Pause).await?).into_response())
}

pub(crate) async fn resume<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path(app): Path<String>,
    JsonBody(_): JsonBody<EmptyRequest>,
) -> Result<Response> {
    let command = Command::Resume {
        now_ms: turnout_store::now_millis(),
    };
    Ok(Json(s.controller.command(&app, command).await?).into_response())
}

pub(crate) async fn abort<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path(app): Path<String>,
    JsonBody(b): JsonBody<AbortRequest>,
) -> Result<Response> {
    let reason = b
        .reason
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "by the operator".into());
    let command = Command::Abort { reason };
    Ok(Json(s.controller.command(&app, command).await?).into_response())
}

pub(crate) async fn report<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path(app): Path<String>,
) -> Result<Json<turnout_api_types::ReleaseReport>> {
    Ok(Json(s.controller.report(&app).await?))
}

pub(crate) async fn list_routes<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path(app): Path<String>,
) -> Result<Json<RouteList>> {
    let status = s.controller.status(&app).await?;
    Ok(Json(RouteList {
        routes: status.routes,
    }))
}

pub(crate) async fn set_weights<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path((app, route)): Path<(String, String)>,
    JsonBody(b): JsonBody<WeightsRequest>,
) -> Result<Response> {
    let mut weights = Vec::with_capacity(b.weights.len());
    for (service, value) in &b.weights {
        weights.push((service.clone(), weight(service, value)?));
    }
    // The route name is resolved by the step, under the controller's lock.
    let status = s
        .controller
        .command(&app, Command::SetWeights { route, weights })
        .await?;
    Ok(Json(status).into_response())
}

/// A weight from a JSON body: an integer 0..100, written `100` or, as
/// JSON Schema's `integer` allows, `100.0`. The range is `Weight::new`'s.
fn weight(service: &str, value: &serde_json::Value) -> Result<Weight> {
    let integral = value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..=255.0).contains(f))
            // Exact: an integral float that fits a u8.
            .map(|f| f as u64)
    });
    integral
        .and_then(|w| u8::try_from(w).ok())
        .and_then(Weight::new)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid",
                format!(
                    "the weight {value} of service {service} is not an integer in the range 0..100"
                ),
                "weights are integers from 0 to 100 (both included); they are relative \
                 (100 and 100 is 50/50)",
            )
        })
}

pub(crate) async fn switch<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path((app, route)): Path<(String, String)>,
    JsonBody(_): JsonBody<EmptyRequest>,
) -> Result<Response> {
    let status = s
        .controller
        .command(&app, Command::Switch { route })
        .await?;
    Ok(Json(status).into_response())
}

pub(crate) async fn list_services<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path(app): Path<String>,
) -> Result<Json<ServiceList>> {
    let status = s.controller.status(&app).await?;
    Ok(Json(ServiceList {
        services: status.services,
    }))
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

pub(crate) async fn service_logs<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path((app, service)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Response> {
    let status = s.controller.status(&app).await?;
    let svc = status
        .services
        .iter()
        .find(|x| x.name == service)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("app {app} has no service {service:?}"),
                format!(
                    "services: {}",
                    status
                        .services
                        .iter()
                        .map(|x| x.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
    let n = q.tail.unwrap_or(100);
    let mut out = String::new();
    for inst in &svc.instances {
        // One instance's unreadable log does not hide the others'.
        if let Ok(logs) = s.controller.logs(&app, &inst.id, n, false).await {
            for line in logs.lines {
                out.push_str(&format!("{} | {line}\n", inst.id));
            }
        }
    }
    Ok(text(out))
}

pub(crate) async fn instance_logs<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    Path((app, id)): Path<(String, String)>,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> Result<Response> {
    let status = s.controller.status(&app).await?;
    if !status
        .services
        .iter()
        .any(|svc| svc.instances.iter().any(|i| i.id == id))
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("app {app} has no instance {id:?}"),
            "list the instances with `turnout ps`",
        ));
    }
    let follow = q.follow.unwrap_or(false);
    let logs = s
        .controller
        .logs(&app, &id, q.tail.unwrap_or(100), follow)
        .await?;
    let mut out = String::new();
    for line in &logs.lines {
        out.push_str(line);
        out.push('\n');
    }
    let Some(mut live) = logs.follow else {
        return Ok(text(out));
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<Bytes, Infallible>>(64);
    let _ = tx.send(Ok(Bytes::from(out))).await;
    tokio::spawn(async move {
        loop {
            let line = tokio::select! {
                line = live.recv() => line,
                // The client went away while nothing was written: dropping
                // `live` tells the runtime to stop reading.
                () = tx.closed() => break,
            };
            let Some(line) = line else { break };
            if tx.send(Ok(Bytes::from(format!("{line}\n")))).await.is_err() {
                break;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(stream),
    )
        .into_response())
}

pub(crate) async fn events<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<EventList>> {
    if q.last.is_some() && q.limit.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the query gives both `last` and `limit`",
            "give `last=N` for the newest N events or `limit=N` for the oldest N after `after`, not both",
        ));
    }
    let events = past_events(&s, &q, 100)?;
    Ok(Json(EventList {
        events: events.into_iter().map(event_record).collect(),
    }))
}

/// The events a query asks for: with `last`, the newest that many; else
/// the oldest `limit` (`default` when absent) after `after`.
fn past_events<R: Runtime + 'static, D: DataPlane>(
    s: &ApiState<R, D>,
    q: &EventQuery,
    default: usize,
) -> Result<Vec<turnout_store::EventRecord>> {
    let store = s.controller.store();
    let (app, after) = (q.app.as_deref(), q.after.unwrap_or(0));
    match q.last {
        Some(n) => store.latest_events(app, after, n.min(10_000)),
        None => store.events(app, after, q.limit.unwrap_or(default).min(10_000)),
    }
    .map_err(|e| ApiError::internal(&e))
}

pub(crate) async fn event_stream<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Response> {
    // Subscribe before reading the past, so nothing falls between the two.
    let live = s.controller.subscribe();
    // With `last`, what comes live comes after the newest event there is
    // (read before the replay, so nothing falls between the two): with
    // `last=0` nothing from before is sent.
    let newest = match q.last {
        Some(_) => s
            .controller
            .store()
            .latest_events(q.app.as_deref(), 0, 1)
            .map_err(|e| ApiError::internal(&e))?
            .first()
            .map_or(0, |e| e.id),
        None => 0,
    };
    // The stream takes no `limit` (its document lists none).
    let q = EventQuery { limit: None, ..q };
    let past = past_events(&s, &q, 10_000)?;
    let mut last = past
        .last()
        .map_or(q.after.unwrap_or(0), |e| e.id)
        .max(newest);
    let app = q.app;
    // Id 0: a live-only event (an analysis check repeating the verdict
    // before it), never stored: sent without an SSE id, so a client's
    // Last-Event-ID stays on the last stored event.
    let to_event = |e: turnout_store::EventRecord| {
        let e = event_record(e);
        let event = Event::default()
            .event(e.kind.clone())
            .data(serde_json::to_string(&e).unwrap_or_default());
        if e.id == 0 {
            event
        } else {
            event.id(e.id.to_string())
        }
    };
    let past_events: Vec<std::result::Result<Event, Infallible>> =
        past.into_iter().map(|e| Ok(to_event(e))).collect();
    let live = tokio_stream::wrappers::BroadcastStream::new(live).filter_map(move |e| {
        let e = e.ok()?;
        let live_only = e.id == 0;
        if (!live_only && e.id <= last) || app.as_ref().is_some_and(|a| a != &e.event.app) {
            return None;
        }
        if !live_only {
            last = e.id;
        }
        Some(Ok(to_event(e)))
    });
    let stream = tokio_stream::iter(past_events).chain(live);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}
