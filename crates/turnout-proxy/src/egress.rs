//! Egress: `HTTP_PROXY` sends every plain-HTTP call of an instance to the
//! internal listener, so a request there for a host that no internal route
//! serves is passed on to that host — when the caller is known (its proxy
//! credential is one of the table's caller tokens). Unknown callers get
//! 403; the public listener never passes anything on.
//!
//! The destination is the absolute-form URI's authority (forward-proxy
//! requests), else the `Host` header; port 80 when none is given. The
//! request goes as it came, without `Proxy-Authorization`, the preview
//! token and hop-by-hop headers; the response is streamed back. There are
//! no retries: a request that reached another host may have acted there.
//! The fast path hands such requests to hyper, so this is the only place
//! they are served.

use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Request, Response, StatusCode, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use turnout_routing::{Caller, PREVIEW_TOKEN_HEADER};

use crate::body::{ClientBody, ResponseBody};
use crate::caller::proxy_token;
use crate::hop::strip_hop_by_hop;
use crate::metrics::{CODE_CLASSES, EgressLabels, code_class, no_app};
use crate::response::local;
use crate::shared::Shared;
use crate::snapshot::Snapshot;

/// Serves a request of the internal listener whose host no internal route
/// serves: passes it on for a known caller, refuses it for anyone else.
pub(crate) async fn pass_on(
    shared: &Shared,
    snapshot: &Snapshot,
    req: Request<Incoming>,
    started: Instant,
) -> Response<ResponseBody> {
    let token = req
        .headers()
        .get(header::PROXY_AUTHORIZATION)
        .and_then(|v| proxy_token(v.as_bytes()));
    let Some(caller) = token.as_deref().and_then(|t| snapshot.table.caller(t)) else {
        return local(StatusCode::FORBIDDEN, refusal(&req, token.is_some()));
    };
    let authority = match destination(&req) {
        Ok(authority) => authority,
        Err(text) => return local(StatusCode::BAD_REQUEST, text),
    };
    let (mut parts, body) = req.into_parts();
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let mut headers = std::mem::take(&mut parts.headers);
    let _ = strip_hop_by_hop(&mut headers);
    headers.remove(header::PROXY_AUTHORIZATION);
    headers.remove(PREVIEW_TOKEN_HEADER);
    // Nothing is tunnelled to another host.
    headers.remove(header::UPGRADE);
    if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
        headers.insert(header::HOST, host);
    }
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(Scheme::HTTP);
    uri.authority = Some(authority.clone());
    uri.path_and_query = Some(path_and_query.clone());
    let mut upstream = Request::new(Either::Left(ClientBody::new(Bytes::new(), body)));
    *upstream.method_mut() = parts.method.clone();
    *upstream.version_mut() = Version::HTTP_11;
    // Scheme, authority and path are all set, which is all from_parts needs.
    *upstream.uri_mut() = Uri::from_parts(uri).unwrap_or_default();
    *upstream.headers_mut() = headers;

    let sent = tokio::time::timeout(
        shared.config.timeouts.upstream_response,
        shared.egress.request(upstream),
    )
    .await;
    let response = match sent {
        Ok(Ok(mut response)) => {
            let _ = strip_hop_by_hop(response.headers_mut());
            response.map(ResponseBody::passed_on)
        }
        Ok(Err(err)) if err.is_connect() => local(
            StatusCode::BAD_GATEWAY,
            format!("cannot reach {authority}: {}\n", innermost(&err)),
        ),
        Ok(Err(err)) => local(
            StatusCode::BAD_GATEWAY,
            format!("{authority} failed: {}\n", innermost(&err)),
        ),
        Err(_) => local(
            StatusCode::GATEWAY_TIMEOUT,
            format!("{authority} did not answer in time\n"),
        ),
    };
    let status = response.status().as_u16();
    count(shared, caller, status);
    if shared.config.access_log {
        tracing::info!(
            target: "turnout::access",
            egress = authority.as_str(),
            app = caller.app().map_or("", |a| &**a),
            service = &**caller.service(),
            method = parts.method.as_str(),
            path = path_and_query.as_str(),
            status,
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        );
    }
    response
}

/// Where the request goes: the absolute-form URI's authority, else the
/// `Host` header; userinfo never travels on.
fn destination(req: &Request<Incoming>) -> Result<Authority, &'static str> {
    let uri = req.uri();
    let written = match uri.authority() {
        Some(authority) => {
            if uri.scheme() != Some(&Scheme::HTTP) {
                return Err(
                    "only plain http:// requests are passed on; https goes through CONNECT, which turnout does not tunnel\n",
                );
            }
            authority.as_str()
        }
        None => req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .ok_or("missing host\n")?,
    };
    let host = written.rsplit_once('@').map_or(written, |(_, host)| host);
    match host.parse::<Authority>() {
        Ok(authority) if !authority.host().is_empty() => Ok(authority),
        _ => Err("the host to pass the request on to is not a valid host[:port]\n"),
    }
}

/// The 403 text for a request without a known credential.
fn refusal(req: &Request<Incoming>, presented: bool) -> String {
    let host = turnout_routing::request_host(req.uri(), req.headers()).unwrap_or("?");
    if presented {
        format!(
            "the proxy credential is not known to this router; {host} is not an internal route, and the internal listener passes other hosts on only for known callers\n"
        )
    } else {
        format!(
            "{host} is not an internal route; the internal listener passes other hosts on only for known callers: call with proxy credentials, HTTP_PROXY=http://<service>:<token>@<internal-address>\n"
        )
    }
}

/// Counts one passed-on request in `turnout_egress_requests_total`.
fn count(shared: &Shared, caller: &Caller, status: u16) {
    let labels = EgressLabels {
        app: caller.app().cloned().unwrap_or_else(no_app),
        service: caller.service().clone(),
        code: CODE_CLASSES[code_class(status)],
    };
    shared.metrics.egress.get_or_create(&labels).inc();
}

/// The innermost cause of a client error: "Connection refused (os error
/// 111)", "failed to lookup address information: ...".
fn innermost(err: &hyper_util::client::legacy::Error) -> String {
    let mut cause: &dyn std::error::Error = err;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}
