//! What the demo app answers: the control paths, and everything else from
//! `--text` or `--upstream` after injected latency and failures.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;

use super::control::Controls;
use super::upstream::Upstream;

/// The header that names the instance on every answer.
pub const INSTANCE_HEADER: HeaderName = HeaderName::from_static("x-demo-instance");
const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const APPLICATION_JSON: HeaderValue = HeaderValue::from_static("application/json");
/// A settings change is a few dozen bytes; anything much larger is a mistake.
const MAX_CONTROL_BODY: usize = 64 << 10;

/// Where the body of an ordinary answer comes from.
#[derive(Debug)]
pub enum Content {
    /// `--text`, or the default greeting.
    Text(Bytes),
    /// `--upstream URL --prefix P`: P followed by the body of GET URL.
    Upstream {
        /// The client for URL, boxed because it dwarfs a text.
        upstream: Box<Upstream>,
        /// P.
        prefix: Bytes,
    },
}

/// Everything a request needs, shared by all connections.
#[derive(Debug)]
pub struct App {
    instance: HeaderValue,
    content: Content,
    controls: Controls,
}

/// The response type of every handler: bodies are small and built whole.
type Answer = Response<Full<Bytes>>;

impl App {
    /// Puts the parts together.
    pub fn new(instance: HeaderValue, content: Content, controls: Controls) -> Self {
        Self {
            instance,
            content,
            controls,
        }
    }

    /// Answers one request and stamps it with the instance name.
    pub async fn handle(
        self: Arc<Self>,
        remote: SocketAddr,
        request: Request<Incoming>,
    ) -> Result<Answer, Infallible> {
        // The control paths are matched exactly so that any other path,
        // including `/health/x`, gets the ordinary answer.
        let mut answer = match request.uri().path() {
            "/health" => self.health(),
            "/control" => self.control(request).await,
            "/stats" => self.stats(request.method()),
            _ => self.ordinary(remote, &request).await,
        };
        answer
            .headers_mut()
            .insert(INSTANCE_HEADER, self.instance.clone());
        Ok(answer)
    }

    fn health(&self) -> Answer {
        if self.controls.settings().healthy {
            text(StatusCode::OK, "ok\n")
        } else {
            text(StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n")
        }
    }

    async fn control(&self, request: Request<Incoming>) -> Answer {
        match *request.method() {
            Method::GET | Method::HEAD => json(StatusCode::OK, &self.controls.settings()),
            Method::POST => {
                let body = match Limited::new(request.into_body(), MAX_CONTROL_BODY)
                    .collect()
                    .await
                {
                    Ok(body) => body.to_bytes(),
                    Err(err) => {
                        return json_error(
                            StatusCode::BAD_REQUEST,
                            &format!("cannot read the body: {err}"),
                        );
                    }
                };
                match self.controls.update(&body) {
                    Ok(settings) => json(StatusCode::OK, &settings),
                    Err(message) => json_error(StatusCode::BAD_REQUEST, &message),
                }
            }
            _ => {
                let mut answer = json_error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "use GET to read the settings or POST to change them",
                );
                answer
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("GET, HEAD, POST"));
                answer
            }
        }
    }

    fn stats(&self, method: &Method) -> Answer {
        if matches!(*method, Method::GET | Method::HEAD) {
            json(StatusCode::OK, &self.controls.stats())
        } else {
            let mut answer = json_error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
            answer
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            answer
        }
    }

    /// Every other path: injected latency first, then an injected failure
    /// or the real answer.
    async fn ordinary(&self, remote: SocketAddr, request: &Request<Incoming>) -> Answer {
        let _in_flight = self.controls.in_flight();
        let decision = self.controls.admit();
        if !decision.latency.is_zero() {
            tokio::time::sleep(decision.latency).await;
        }
        if let Some(status) = decision.fail_status {
            // Validated to 200..=599 where it was set, so this cannot fail.
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return text(status, format!("injected failure: {status}\n"));
        }
        if request.uri().path() == "/whoami" {
            return text(StatusCode::OK, self.whoami(remote, request));
        }
        match &self.content {
            Content::Text(body) => text(StatusCode::OK, body.clone()),
            Content::Upstream { upstream, prefix } => match upstream.fetch().await {
                Ok(body) => {
                    let mut joined = BytesMut::with_capacity(prefix.len() + body.len());
                    joined.extend_from_slice(prefix);
                    joined.extend_from_slice(&body);
                    text(StatusCode::OK, joined.freeze())
                }
                Err(err) => text(StatusCode::BAD_GATEWAY, format!("{err}\n")),
            },
        }
    }

    /// Echoes the request as this instance saw it, to check what a router
    /// in front added or changed.
    fn whoami(&self, remote: SocketAddr, request: &Request<Incoming>) -> String {
        let mut out = String::new();
        let instance = String::from_utf8_lossy(self.instance.as_bytes());
        // Writing to a String cannot fail.
        let _ = writeln!(out, "instance: {instance}");
        let _ = writeln!(out, "remote: {remote}");
        let _ = writeln!(
            out,
            "{} {} {:?}",
            request.method(),
            request.uri(),
            request.version()
        );
        for (name, value) in request.headers() {
            let _ = writeln!(out, "{name}: {}", String::from_utf8_lossy(value.as_bytes()));
        }
        out
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Answer {
    let mut answer = Response::new(Full::new(body.into()));
    *answer.status_mut() = status;
    answer.headers_mut().insert(CONTENT_TYPE, TEXT_PLAIN);
    answer
}

fn json(status: StatusCode, value: &impl Serialize) -> Answer {
    // Serialising these plain structs cannot fail; an empty object is a
    // harmless fallback that keeps the handler infallible.
    let mut body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    body.push(b'\n');
    let mut answer = Response::new(Full::new(Bytes::from(body)));
    *answer.status_mut() = status;
    answer.headers_mut().insert(CONTENT_TYPE, APPLICATION_JSON);
    answer
}

fn json_error(status: StatusCode, message: &str) -> Answer {
    json(status, &serde_json::json!({ "error": message }))
}
