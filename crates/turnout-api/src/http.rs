//! What every request meets before its handler, and what every error
//! answer is turned into: the API's limits (URI, headers, body), checked
//! here so they are answered as our JSON errors instead of hyper's and
//! axum's empty or plain-text ones, and the HTTP server that raises
//! hyper's own limits above ours so that the requests between the two
//! reach this code (ARCHITECTURE.md, turnout-api).

use std::future::Future;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest request body read: 8 MiB.
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// The longest request target (path and query): 8 KiB.
pub const MAX_URI: usize = 8 * 1024;
/// The most bytes of request headers (names, values and `: \r\n`): 64 KiB.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The most request header fields.
pub const MAX_HEADER_COUNT: usize = 100;

/// hyper's read buffer, which must hold a request's whole head: past it,
/// hyper answers 431 with an empty body before any of our code runs.
const HYPER_MAX_BUF: usize = 1024 * 1024;
/// hyper's header count: past it, hyper answers 431 with an empty body.
const HYPER_MAX_HEADERS: usize = 1000;

/// Serves `app` on `listener` until `shutdown` completes, then waits for
/// the open connections to finish (as `axum::serve` does), with hyper's
/// limits raised above the API's (see [`guard`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(HYPER_MAX_BUF)
        .max_headers(HYPER_MAX_HEADERS);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on
                    // (as axum::serve does).
                    tracing::warn!(error = %e, "the API cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "an API connection failed");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Refuses what is over the API's limits or malformed before any handler
/// runs, and turns every error answer that is not our JSON (axum's 405,
/// an extractor's plain-text rejection) into it.
pub(crate) async fn guard(request: Request, next: Next) -> Response {
    if let Err(e) = check(&request) {
        return e.into_response();
    }
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    if response.status().is_client_error() || response.status().is_server_error() {
        let is_json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json);
        if !is_json {
            return to_json(response, &method, &path).await;
        }
    }
    response
}

fn check(request: &Request) -> Result<(), ApiError> {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if target > MAX_URI {
        return Err(ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request target is {target} bytes, over the limit of 8 KiB"),
            "no API path or query needs that much; see GET /v1/openapi.json",
        ));
    }
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if bytes > MAX_HEADER_BYTES || headers.len() > MAX_HEADER_COUNT {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the request has {} header fields of {bytes} bytes, over the limit of \
                 {MAX_HEADER_COUNT} fields or 64 KiB",
                headers.len()
            ),
            "send fewer or smaller headers; the API needs only Authorization and Content-Type",
        ));
    }
    let uri = request.uri();
    if let Err(why) = decoded(uri.path(), false) {
        return Err(ApiError::bad_request(
            format!("the path {:?} is malformed: {why}", uri.path()),
            "percent-encode the path's segments as UTF-8 (`%` then two hex digits per byte)",
        ));
    }
    if let Some(query) = uri.query()
        && let Err(why) = decoded(query, true)
    {
        return Err(ApiError::bad_request(
            format!("the query string {query:?} is malformed: {why}"),
            "percent-encode query values as UTF-8 (`%` then two hex digits per byte)",
        ));
    }
    Ok(())
}

/// Percent-decodes `text` (with `+` as a space in a query), refusing a
/// `%` not followed by two hex digits and bytes that are not UTF-8.
fn decoded(text: &str, query: bool) -> Result<String, String> {
    let raw = text.as_bytes();
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3).and_then(|h| {
                    std::str::from_utf8(h)
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                });
                let Some(byte) = hex else {
                    let end = (i + 3).min(raw.len());
                    return Err(format!(
                        "{:?} is not `%` and two hex digits",
                        String::from_utf8_lossy(&raw[i..end])
                    ));
                };
                out.push(byte);
                i += 3;
            }
            b'+' if query => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| "it does not decode to UTF-8".to_string())
}

/// `application/json` or `application/*+json`, with any parameters.
pub(crate) fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"))
}

/// The code of an error status not produced by an [`ApiError`].
fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        413 => "payload_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        422 => "invalid",
        431 => "headers_too_large",
        s if s >= 500 => "internal",
        _ => "bad_request",
    }
}

/// Rewrites an error answer that is not JSON into ours, keeping its
/// status and its headers (a 405's `Allow`).
async fn to_json(response: Response, method: &axum::http::Method, path: &str) -> Response {
    let (mut parts, body) = response.into_parts();
    let status = parts.status;
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let error = if status == StatusCode::METHOD_NOT_ALLOWED {
        let allow = allowed(&parts.headers);
        ApiError::new(
            status,
            "method_not_allowed",
            format!("{method} is not allowed on {path}; allowed: {allow}"),
            format!("use {allow}; see GET /v1/openapi.json"),
        )
    } else {
        let message = if text.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("the request failed")
                .to_string()
        } else {
            text
        };
        if status.is_server_error() {
            tracing::error!(%status, %message, "non-JSON error answer from the API");
            ApiError::internal(&message)
        } else {
            ApiError::new(
                status,
                code_of(status),
                message,
                "see docs/api.md or GET /v1/openapi.json for what this path takes",
            )
        }
    };
    let json = error.into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let (json_parts, body) = json.into_parts();
    parts.status = json_parts.status;
    Response::from_parts(parts, body)
}

/// The methods of a 405's `Allow` header, without HEAD (implied by GET).
fn allowed(headers: &HeaderMap) -> String {
    headers
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty() && *m != "HEAD")
        .collect::<Vec<_>>()
        .join(", ")
}

/// A JSON request body, read with our limits and errors: a body over
/// [`MAX_BODY`] is 413, a body not declared JSON is 415, malformed JSON
/// is 400. An empty body is `{}` and needs no `Content-Type`.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let headers = req.headers();
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if length.is_some_and(|n| n > MAX_BODY as u64) {
            return Err(too_large());
        }
        let has_body = length.map_or(headers.contains_key(header::TRANSFER_ENCODING), |n| n > 0);
        if has_body {
            check_content_type(headers)?;
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::bad_request(
                    format!("cannot read the request body: {}", e.body_text()),
                    "send the body again",
                )
            }
        })?;
        crate::handlers::body(&bytes).map(JsonBody)
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is over the limit of 8 MiB",
        "send a smaller body; a template of that size is not one turnout can run either",
    )
}

fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    match given {
        Some(ct) if is_json(&ct) => Ok(()),
        Some(ct) => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("the request body is {ct:?}; the API reads application/json"),
            "send the body as JSON with `Content-Type: application/json`",
        )),
        None => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request has a body but no Content-Type; the API reads application/json",
            "send `Content-Type: application/json` with the body",
        )),
    }
}

/// A query string, refused with our error when it does not fit.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(q)| ApiQuery(q))
            .map_err(|e| {
                ApiError::bad_request(
                    e.body_text(),
                    "see docs/api.md or GET /v1/openapi.json for this path's query parameters",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(decoded("/v1/apps/hello", false).unwrap(), "/v1/apps/hello");
        assert_eq!(decoded("/a%20b+c", false).unwrap(), "/a b+c");
        assert_eq!(decoded("app=a+b%2Bc", true).unwrap(), "app=a b+c");
        assert_eq!(decoded("/%C3%A9", false).unwrap(), "/é");
        assert!(decoded("/%FF", false).is_err());
        assert!(decoded("/%C3%28", false).is_err());
        assert!(decoded("/%zz", false).is_err());
        assert!(decoded("/a%2", false).is_err());
        assert!(decoded("/a%", false).is_err());
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/jsonx",
            "text/json+x",
            "",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    #[test]
    fn every_error_status_has_a_code() {
        assert_eq!(
            code_of(StatusCode::METHOD_NOT_ALLOWED),
            "method_not_allowed"
        );
        assert_eq!(code_of(StatusCode::BAD_GATEWAY), "internal");
        assert_eq!(code_of(StatusCode::IM_A_TEAPOT), "bad_request");
    }
}
