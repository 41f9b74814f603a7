//! turnout's REST API (`docs/api.md`): apps, releases, routes, services,
//! logs and events under `/v1`, behind a bearer token; `/healthz` and
//! `/metrics` open.

mod error;
mod handlers;
mod http;
mod openapi;
mod token;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use turnout_engine::{Controller, DataPlane};
use turnout_runtime::Runtime;

pub use error::ApiError;
pub use http::{MAX_BODY, MAX_HEADER_BYTES, MAX_HEADER_COUNT, MAX_URI, serve};
pub use token::{TOKEN_FILE, load_or_create_token};

/// Renders the Prometheus text of `/metrics`.
pub type MetricsFn = Arc<dyn Fn() -> String + Send + Sync>;

/// What the handlers share.
pub struct ApiState<R, D> {
    controller: Controller<R, D>,
    token: Arc<str>,
    metrics: MetricsFn,
}

impl<R, D> Clone for ApiState<R, D> {
    fn clone(&self) -> Self {
        Self {
            controller: self.controller.clone(),
            token: Arc::clone(&self.token),
            metrics: Arc::clone(&self.metrics),
        }
    }
}

impl<R, D> std::fmt::Debug for ApiState<R, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState").finish_non_exhaustive()
    }
}

/// The API's router. Serve it with [`serve`], which raises hyper's limits
/// above the router's own so that those are answered as JSON errors.
pub fn router<R: Runtime + 'static, D: DataPlane>(
    controller: Controller<R, D>,
    token: &str,
    metrics: MetricsFn,
) -> Router {
    let state = ApiState {
        controller,
        token: Arc::from(token),
        metrics,
    };
    let v1 = Router::new()
        .route(
            "/apps",
            get(handlers::list_apps::<R, D>).post(handlers::deploy::<R, D>),
        )
        .route(
            "/apps/{app}",
            get(handlers::get_app::<R, D>).delete(handlers::delete_app::<R, D>),
        )
        .route(
            "/apps/{app}/releases",
            get(handlers::list_releases::<R, D>).post(handlers::start_release::<R, D>),
        )
        .route(
            "/apps/{app}/releases/{id}",
            get(handlers::get_release::<R, D>),
        )
        .route("/apps/{app}/confirm", post(handlers::confirm::<R, D>))
        .route("/apps/{app}/rollback", post(handlers::rollback::<R, D>))
        .route("/apps/{app}/routes", get(handlers::list_routes::<R, D>))
        .route(
            "/apps/{app}/routes/{route}/weights",
            put(handlers::set_weights::<R, D>),
        )
        .route(
            "/apps/{app}/routes/{route}/switch",
            post(handlers::switch::<R, D>),
        )
        .route("/apps/{app}/services", get(handlers::list_services::<R, D>))
        .route(
            "/apps/{app}/services/{service}/logs",
            get(handlers::service_logs::<R, D>),
        )
        .route(
            "/apps/{app}/instances/{id}/logs",
            get(handlers::instance_logs::<R, D>),
        )
        .route("/events", get(handlers::events::<R, D>))
        .route("/events/stream", get(handlers::event_stream::<R, D>))
        .route("/openapi.json", get(openapi::document))
        .fallback(not_found)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_token::<R, D>,
        ));
    let api = Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_text::<R, D>))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(http::MAX_BODY))
        .with_state(state);
    // The guard wraps the whole router, not each route (as `.layer` on it
    // would): it sees axum's answers complete, a 405 with its `Allow`.
    Router::new()
        .fallback_service(api)
        .layer(middleware::from_fn(http::guard))
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such API path",
        "the API is under /v1; see GET /v1/openapi.json",
    )
}

async fn metrics_text<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        (s.metrics)(),
    )
        .into_response()
}

/// Refuses requests without the right bearer token.
async fn require_token<R: Runtime + 'static, D: DataPlane>(
    State(s): State<ApiState<R, D>>,
    request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if token::same(t, &s.token) => next.run(request).await,
        Some(_) => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "wrong bearer token",
            "use the token in <data-dir>/token (TURNOUT_TOKEN for the CLI)",
        )
        .into_response(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the request has no bearer token",
            "send `Authorization: Bearer <token>` with the token in <data-dir>/token",
        )
        .into_response(),
    }
}
