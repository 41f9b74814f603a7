//! turnout's REST API (`docs/api.md`): apps, releases, routes, services,
//! logs and events under `/v1`, behind a bearer token; `/healthz` and
//! `/metrics` open.

mod console;
mod error;
mod handlers;
mod http;
mod metrics_stream;
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
pub use token::{
    PREVIEW_TOKEN_FILE, TOKEN_FILE, load_or_create_preview_token, load_or_create_token,
};

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

/// Every (method, path) [`router`] serves, kept next to it (axum cannot
/// list a router's routes): a test checks that the router serves each and
/// answers 405 to the other methods of these paths, and that they are
/// exactly the OpenAPI document's operations. Add a route to both.
#[cfg(test)]
pub(crate) const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/apps"),
    ("POST", "/v1/apps"),
    ("GET", "/v1/apps/{app}"),
    ("DELETE", "/v1/apps/{app}"),
    ("GET", "/v1/apps/{app}/releases"),
    ("GET", "/v1/apps/{app}/report"),
    ("POST", "/v1/apps/{app}/plan"),
    ("POST", "/v1/apps/{app}/releases"),
    ("GET", "/v1/apps/{app}/releases/{id}"),
    ("POST", "/v1/apps/{app}/confirm"),
    ("POST", "/v1/apps/{app}/rollback"),
    ("POST", "/v1/apps/{app}/promote"),
    ("POST", "/v1/apps/{app}/pause"),
    ("POST", "/v1/apps/{app}/resume"),
    ("POST", "/v1/apps/{app}/abort"),
    ("GET", "/v1/apps/{app}/routes"),
    ("PUT", "/v1/apps/{app}/routes/{route}/weights"),
    ("POST", "/v1/apps/{app}/routes/{route}/switch"),
    ("GET", "/v1/apps/{app}/services"),
    ("GET", "/v1/apps/{app}/services/{service}/logs"),
    ("GET", "/v1/apps/{app}/instances/{id}/logs"),
    ("GET", "/v1/apps/{app}/metrics/stream"),
    ("GET", "/v1/events"),
    ("GET", "/v1/events/stream"),
    ("GET", "/v1/openapi.json"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
];

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
        .route("/apps/{app}/report", get(handlers::report::<R, D>))
        .route("/apps/{app}/plan", post(handlers::plan_release::<R, D>))
        .route("/apps/{app}/confirm", post(handlers::confirm::<R, D>))
        .route("/apps/{app}/rollback", post(handlers::rollback::<R, D>))
        .route("/apps/{app}/promote", post(handlers::promote::<R, D>))
        .route("/apps/{app}/pause", post(handlers::pause::<R, D>))
        .route("/apps/{app}/resume", post(handlers::resume::<R, D>))
        .route("/apps/{app}/abort", post(handlers::abort::<R, D>))
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
        .route(
            "/apps/{app}/metrics/stream",
            get(metrics_stream::stream::<R, D>),
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
        .route("/", get(console::index))
        .route("/console/console.js", get(console::script))
        .route("/console/console.css", get(console::style))
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::path::PathBuf;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use turnout_engine::{Controller, DataPlane, Settings};
    use turnout_runtime_process::ProcessRuntime;
    use turnout_store::Store;

    use super::*;

    /// A router that is never published to.
    struct NoPlane;

    impl DataPlane for NoPlane {
        fn publish(&self, _: turnout_routing::RouteTable) {}
        fn in_flight(&self, _: SocketAddr) -> Option<usize> {
            None
        }
        fn release_state(&self, _: &str, _: Option<&str>) {}
    }

    /// The API on 127.0.0.1:0 with an empty store.
    async fn start() -> SocketAddr {
        let dir = std::env::temp_dir().join(format!("turnout-api-routes-{}", std::process::id()));
        let controller = Controller::new(
            Store::open_in_memory().unwrap(),
            ProcessRuntime::new(PathBuf::from("/bin/false"), dir.clone()),
            NoPlane,
            Settings::new(dir),
        )
        .unwrap();
        let metrics: MetricsFn = Arc::new(String::new);
        let app = router(controller, "t0ken", metrics);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, app, std::future::pending()));
        addr
    }

    /// Status and body of one request (the head and at most 64 KiB: an
    /// event stream does not end).
    async fn call(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let body = if method == "GET" { "" } else { "{}" };
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Authorization: Bearer t0ken\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let read = tokio::time::timeout(
                std::time::Duration::from_millis(500),
                stream.read(&mut chunk),
            )
            .await;
            match read {
                Ok(Ok(n)) if n > 0 => raw.extend_from_slice(&chunk[..n]),
                _ => break,
            }
            if raw.len() > 64 * 1024 {
                break;
            }
        }
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, text)
    }

    fn concrete(path: &str) -> String {
        path.replace("{app}", "no-such-app")
            .replace("{route}", "r")
            .replace("{id}", "1")
            .replace("{service}", "s")
    }

    #[tokio::test]
    async fn the_router_serves_exactly_the_listed_routes() {
        let addr = start().await;
        for (method, path) in ROUTES {
            let (status, text) = call(addr, method, &concrete(path)).await;
            assert!(
                status != 405 && !text.contains("no such API path"),
                "{method} {path} is not routed: {text}"
            );
        }
        for (_, path) in ROUTES {
            for method in ["GET", "POST", "PUT", "DELETE", "PATCH"] {
                if ROUTES.contains(&(method, path)) {
                    continue;
                }
                let (status, text) = call(addr, method, &concrete(path)).await;
                assert_eq!(status, 405, "{method} {path} is routed: {text}");
                assert!(text.contains("method_not_allowed"), "{text}");
            }
        }
        let (status, text) = call(addr, "GET", "/v1/no-such-path").await;
        assert_eq!(status, 404, "{text}");
    }

    #[tokio::test]
    async fn the_console_is_served_without_a_token_with_its_types() {
        let addr = start().await;
        for (path, content_type) in console::ASSETS {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            stream.write_all(req.as_bytes()).await.unwrap();
            let mut raw = String::new();
            stream.read_to_string(&mut raw).await.unwrap();
            let head = raw.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
            assert!(
                head.contains(&format!("content-type: {content_type}")),
                "{path}: {head}"
            );
            assert!(
                head.contains("content-security-policy: default-src 'none'"),
                "{head}"
            );
        }
        let (status, _) = call(addr, "POST", "/").await;
        assert_eq!(status, 405);
    }

    #[tokio::test]
    async fn the_metrics_stream_refuses_a_bad_interval_and_an_unknown_app() {
        let addr = start().await;
        let (status, text) = call(addr, "GET", "/v1/apps/x/metrics/stream?interval_ms=5").await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("interval_ms 5 is out of range"), "{text}");
        let (status, text) = call(addr, "GET", "/v1/apps/x/metrics/stream?every=1").await;
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("every"), "{text}");
        let (status, text) = call(addr, "GET", "/v1/apps/x/metrics/stream").await;
        assert_eq!(status, 404, "{text}");
        assert!(text.contains("not_found"), "{text}");
    }

    #[tokio::test]
    async fn the_served_openapi_document_is_json_with_every_route() {
        let addr = start().await;
        let (status, text) = call(addr, "GET", "/v1/openapi.json").await;
        assert_eq!(status, 200, "{text}");
        let body = text.split_once("\r\n\r\n").unwrap().1;
        let doc: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(doc, openapi::build());
    }
}
