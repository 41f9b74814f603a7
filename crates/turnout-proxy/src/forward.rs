//! The request path: find the route, ask `turnout_routing::pick`, choose a
//! ready instance, forward with retries, and pass upgrades through.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Scheme, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Incoming};
use turnout_routing::{Listener, PREVIEW_TOKEN_HEADER, RouteIndex, Target, request_host};

use crate::body::{ClientBody, ResponseBody};
use crate::caller::{self, ConnInfo, proxy_token};
use crate::connection::ConnState;
use crate::dispatch::{self, Asked, Attempts, Failure, MALFORMED_BODY, MAX_ROUTINGS};
use crate::egress;
use crate::feed::Account;
use crate::hop::{self, Token, strip_hop_by_hop};
use crate::in_flight::InFlight;
use crate::response::{local, refuse};
use crate::shared::Shared;
use crate::snapshot::Snapshot;
use crate::tunnel;

/// Body of requests to upstreams: streamed from the client, or bytes the
/// proxy holds (a buffered request body for retries, or a chunked one read
/// whole).
pub(crate) type ProxyBody = Either<ClientBody, Full<Bytes>>;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static(caller::X_FORWARDED_FOR);
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static(caller::X_FORWARDED_PROTO);
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static(caller::X_FORWARDED_HOST);

/// What routing a request with one snapshot came to.
enum Routed {
    Done(Response<ResponseBody>),
    /// The snapshot was replaced and none of the chosen service's instances
    /// takes requests any more: route the untouched request again.
    Stale(Request<Incoming>),
}

impl From<Response<ResponseBody>> for Routed {
    fn from(response: Response<ResponseBody>) -> Routed {
        Routed::Done(response)
    }
}

/// Serves one request. Never fails: every problem becomes a response.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    conn_state: Arc<ConnState>,
    req: Request<Incoming>,
) -> Result<Response<ResponseBody>, Infallible> {
    // Dropped with the response body, or with this future if the client
    // goes away first.
    let in_progress = conn_state.begin_request(req.version());
    let ambiguous = conn_state.ambiguous(in_progress.index());
    let mut response = respond(&shared, &conn, ambiguous, req).await;
    response.body_mut().hold(in_progress);
    Ok(response)
}

async fn respond(
    shared: &Shared,
    conn: &ConnInfo,
    ambiguous_head: bool,
    mut req: Request<Incoming>,
) -> Response<ResponseBody> {
    let started = Instant::now();
    if let Some(problem) =
        framing_problem(&req, ambiguous_head).or_else(|| crate::host::problem(req.headers()))
    {
        return refuse(problem);
    }
    for _ in 0..MAX_ROUTINGS {
        let snapshot = shared.current.load_full();
        match route_request(shared, &snapshot, conn, req, started).await {
            Routed::Done(response) => return response,
            Routed::Stale(back) => req = back,
        }
    }
    local(StatusCode::SERVICE_UNAVAILABLE, dispatch::KEPT_CHANGING)
}

async fn route_request(
    shared: &Shared,
    snapshot: &Snapshot,
    conn: &ConnInfo,
    req: Request<Incoming>,
    started: Instant,
) -> Routed {
    if req.method() == Method::CONNECT {
        return local(
            StatusCode::METHOD_NOT_ALLOWED,
            "turnout does not tunnel CONNECT; send plain http:// requests through the proxy\n",
        )
        .into();
    }
    let headers = req.headers();
    let Some(host) = request_host(req.uri(), headers) else {
        return local(StatusCode::BAD_REQUEST, "missing host\n").into();
    };
    let token = match conn.listener {
        Listener::Internal => headers
            .get(header::PROXY_AUTHORIZATION)
            .and_then(|v| proxy_token(v.as_bytes())),
        Listener::Public => None,
    };
    let asked = Asked {
        listener: conn.listener,
        host,
        path: req.uri().path(),
        query: req.uri().query(),
        headers,
        token: token.as_deref(),
        address: conn.caller_address(),
    };
    match dispatch::route(shared, snapshot, &asked) {
        dispatch::Routed::Forward {
            route,
            target,
            first,
            account,
        } => {
            let routed = (route, target, first, account);
            forward(shared, snapshot, routed, req, conn, started).await
        }
        dispatch::Routed::Local(status, text) => {
            let text = match text {
                Cow::Borrowed(text) => Bytes::from_static(text.as_bytes()),
                Cow::Owned(text) => Bytes::from(text),
            };
            local(status, text).into()
        }
        dispatch::Routed::Egress => egress::pass_on(shared, snapshot, req, started).await.into(),
        dispatch::Routed::Stale => Routed::Stale(req),
    }
}

async fn forward(
    shared: &Shared,
    snapshot: &Snapshot,
    (route_index, target, first, account): (RouteIndex, Target, (usize, InFlight), Account),
    mut req: Request<Incoming>,
    conn: &ConnInfo,
    started: Instant,
) -> Routed {
    let (Some(route_state), Some(route)) = (
        snapshot.routes.get(route_index as usize),
        snapshot.table.route(route_index),
    ) else {
        return local(StatusCode::NOT_FOUND, "unknown host\n").into();
    };
    let (Some(state), Some(service)) = (
        route_state.services.get(usize::from(target.service)),
        route.service(target.service),
    ) else {
        return local(StatusCode::SERVICE_UNAVAILABLE, "no such service\n").into();
    };
    let upgrade = is_upgrade(&req);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let idempotent = dispatch::idempotent(req.method().as_str());
    let (mut parts, body) = req.into_parts();
    prepare_request_headers(&mut parts.headers, &parts.uri, conn, upgrade);
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));

    // A body that is empty or small and idempotent can be sent again, so the
    // request may be retried on another instance.
    let mut streamed = None;
    let replay = if body.is_end_stream() {
        Some(Bytes::new())
    } else if idempotent
        && body
            .size_hint()
            .exact()
            .is_some_and(|n| n <= shared.config.max_retry_body_bytes as u64)
    {
        match body.collect().await {
            Ok(collected) => Some(collected.to_bytes()),
            Err(_) => {
                return local(StatusCode::BAD_REQUEST, "request body ended early\n").into();
            }
        }
    } else if parts.version <= Version::HTTP_11 && body.size_hint().exact().is_none() {
        // HTTP/1.1 without a length: chunked.
        let limit = shared.config.max_retry_body_bytes;
        match read_ahead(body, limit, shared.config.timeouts.header_read).await {
            Ok(ReadAhead::Whole(bytes)) => Some(bytes),
            Ok(ReadAhead::Started(body)) => {
                streamed = Some(body);
                None
            }
            Err(_) => return refuse(MALFORMED_BODY).into(),
        }
    } else {
        streamed = Some(ClientBody::new(Bytes::new(), body));
        None
    };
    let mut attempts = Attempts::new(state, target, first, replay.is_some() && !upgrade);
    let mut failure = None;
    // The request counts in the instance's in-flight from here until its
    // response body is dropped (or the attempt fails).
    while let Some((slot_index, in_flight)) = attempts.next() {
        let slot = &state.instances[slot_index];
        let body = match (&replay, streamed.take()) {
            (Some(bytes), _) => Either::Right(Full::new(bytes.clone())),
            (None, Some(body)) => Either::Left(body),
            (None, None) => break,
        };
        let mut upstream = Request::new(body);
        *upstream.method_mut() = parts.method.clone();
        *upstream.version_mut() = Version::HTTP_11;
        *upstream.uri_mut() = upstream_uri(&slot.instance.authority, &path_and_query);
        *upstream.headers_mut() = if attempts.last() {
            std::mem::take(&mut parts.headers)
        } else {
            parts.headers.clone()
        };
        // At the drain deadline the connector shuts the connection down,
        // which ends this wait too.
        let sent = match tokio::time::timeout(
            shared.config.timeouts.upstream_response,
            shared.client.request(upstream),
        )
        .await
        {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(err)) if err.is_connect() => Err(Failure::Connect),
            Ok(Err(err)) if ClientBody::failed(&err) => Err(Failure::ClientBody),
            Ok(Err(_)) if slot.instance.link.drained.is_cancelled() => Err(Failure::Drained),
            Ok(Err(_)) => Err(Failure::Protocol),
            Err(_) => Err(Failure::Timeout),
        };
        match sent {
            Ok(mut response) => {
                let status = response.status();
                dispatch::answered(shared, state, slot_index, status.as_u16(), started, account);
                if shared.config.access_log {
                    dispatch::access_log(
                        route.id(),
                        service.name(),
                        &slot.instance.id,
                        parts.method.as_str(),
                        path_and_query.as_str(),
                        status.as_u16(),
                        started,
                    );
                }
                if status == StatusCode::SWITCHING_PROTOCOLS
                    && let Some(client_upgrade) = client_upgrade
                {
                    let upstream_upgrade = hyper::upgrade::on(&mut response);
                    tunnel::spawn(shared, client_upgrade, upstream_upgrade, in_flight.clone());
                } else {
                    let _ = strip_hop_by_hop(response.headers_mut());
                }
                let headers = response.headers_mut();
                let pin = dispatch::pin(target, slot_index, &slot.instance.id);
                dispatch::cookies(target, pin, |value| {
                    if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
                        headers.append(header::SET_COOKIE, value);
                    }
                });
                return response
                    .map(|body| ResponseBody::upstream(body, in_flight))
                    .into();
            }
            Err(kind) => {
                failure = Some(kind);
                if !kind.counted(shared, state, &slot.instance, idempotent) {
                    break;
                }
            }
        }
    }
    let (status, text) = dispatch::failed(shared, state, failure, account, started);
    if failure == Some(Failure::ClientBody) {
        return refuse(text).into();
    }
    local(status, text).into()
}

/// How much of a chunked request body [`read_ahead`] read.
enum ReadAhead {
    /// All of it: forwarded with a length, and as any held body, sent
    /// again to another instance when the request may be.
    Whole(Bytes),
    /// The start, followed by the rest as it comes.
    Started(ClientBody),
}

/// Reads a chunked request body before anything of the request goes
/// upstream, until it ends, more than `limit` bytes of it are in, or
/// `wait` passes. hyper's decoder refuses any framing error (a chunk size
/// that overflows or is not hex digits, a missing CRLF, a bare LF), so a
/// malformed body that fits is an error here, with nothing forwarded. A
/// larger or slower one streams on, and an error later cuts the upstream
/// request (see [`ClientBody`]).
///
/// Trailers are dropped: the upstream client sends trailers only when the
/// request's `Trailer` field names them, and that field is hop-by-hop.
async fn read_ahead(
    mut body: Incoming,
    limit: usize,
    wait: std::time::Duration,
) -> Result<ReadAhead, hyper::Error> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut read = bytes::BytesMut::new();
    while read.len() <= limit {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Ok(Some(frame)) => frame?,
            Ok(None) => return Ok(ReadAhead::Whole(read.freeze())),
            Err(_) => break,
        };
        if let Ok(data) = frame.into_data() {
            read.extend_from_slice(&data);
        }
    }
    Ok(ReadAhead::Started(ClientBody::new(read.freeze(), body)))
}

/// Why a request's framing is refused (request smuggling, RFC 9112 §6.1,
/// §6.3 and §11.2), if it is: both `Transfer-Encoding` and
/// `Content-Length`, or a transfer coding other than `chunked` alone.
///
/// hyper drops `Content-Length` when `Transfer-Encoding` is present, so an
/// HTTP/1.1 head that carried both is known from the connection's framing
/// follower (`ambiguous_head`). hyper itself refuses a `Transfer-Encoding`
/// whose last coding is not `chunked`, and duplicate `Content-Length`
/// values that differ. The upstream request is framed anew by our client
/// in any case; refusing is defence in depth, and keeps a coding such as
/// `gzip, chunked` from reaching an upstream as if it were plain bytes.
fn framing_problem(req: &Request<Incoming>, ambiguous_head: bool) -> Option<&'static str> {
    let headers = req.headers();
    // One lookup for the usual request without `Transfer-Encoding`.
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter();
    let first = codings.next();
    if ambiguous_head || (first.is_some() && headers.contains_key(header::CONTENT_LENGTH)) {
        return Some("both transfer-encoding and content-length\n");
    }
    match (first, codings.next()) {
        (None, _) => None,
        (Some(coding), None)
            if coding
                .as_bytes()
                .trim_ascii()
                .eq_ignore_ascii_case(b"chunked") =>
        {
            None
        }
        _ => Some("transfer-encoding other than chunked\n"),
    }
}

fn upstream_uri(authority: &http::uri::Authority, path_and_query: &PathAndQuery) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority.clone());
    parts.path_and_query = Some(path_and_query.clone());
    // Scheme, authority and path are all set, which is all from_parts needs.
    Uri::from_parts(parts).unwrap_or_default()
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(header::UPGRADE)
        && hop::connection_has(req.headers(), Token::Upgrade)
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) end at the proxy; the forwarding
/// headers tell the upstream who asked and how.
fn prepare_request_headers(headers: &mut HeaderMap, uri: &Uri, conn: &ConnInfo, upgrade: bool) {
    // Absolute form wins; userinfo never travels on.
    let absolute_host = uri.authority().and_then(|authority| {
        HeaderValue::from_str(
            authority
                .as_str()
                .rsplit_once('@')
                .map_or(authority.as_str(), |(_, h)| h),
        )
        .ok()
    });
    let host_header = headers.get(header::HOST).cloned();
    // One pass over the names: a removal costs a hash lookup, and these
    // headers are rare.
    let (mut credentials, mut preview, mut upgrade_header) = (false, false, false);
    for name in headers.keys() {
        if name == header::PROXY_AUTHORIZATION {
            credentials = true;
        } else if name == header::UPGRADE {
            upgrade_header = true;
        } else if name.as_str() == PREVIEW_TOKEN_HEADER {
            preview = true;
        }
    }
    let named_removed = strip_hop_by_hop(headers);
    if credentials {
        headers.remove(header::PROXY_AUTHORIZATION);
    }
    if preview {
        headers.remove(PREVIEW_TOKEN_HEADER);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else if upgrade_header {
        headers.remove(header::UPGRADE);
    }
    match (absolute_host, host_header) {
        (Some(host), _) => {
            headers.insert(X_FORWARDED_HOST.clone(), host.clone());
            headers.insert(header::HOST, host);
        }
        (None, Some(host)) => {
            // `Host` is still there, unless `Connection` named it.
            if named_removed {
                headers.insert(header::HOST, host.clone());
            }
            headers.insert(X_FORWARDED_HOST.clone(), host);
        }
        (None, None) => {}
    }
    let forwarded_for = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(before) => HeaderValue::from_str(&format!("{before}, {}", conn.peer.ip())).ok(),
        None => conn.peer_ip.clone(),
    };
    if let Some(value) = forwarded_for {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if conn.tls { "https" } else { "http" }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("app.localhost"));
        headers.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        let conn = ConnInfo::new(Listener::Public, "127.0.0.9:5000".parse().unwrap(), false);
        prepare_request_headers(&mut headers, &Uri::from_static("/x"), &conn, false);
        assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.9");
        assert_eq!(headers["x-forwarded-proto"], "http");
        assert_eq!(headers["x-forwarded-host"], "app.localhost");

        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("wrong"));
        let uri = Uri::from_static("http://servicea.local/y");
        prepare_request_headers(&mut headers, &uri, &conn, false);
        assert_eq!(headers[header::HOST], "servicea.local");

        // Hop-by-hop and private headers go; Host stays even when
        // Connection names it.
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("app.localhost"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("host, te"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(PREVIEW_TOKEN_HEADER, HeaderValue::from_static("secret"));
        headers.insert(
            header::PROXY_AUTHORIZATION,
            HeaderValue::from_static("Basic eDo="),
        );
        prepare_request_headers(&mut headers, &Uri::from_static("/x"), &conn, false);
        assert_eq!(headers[header::HOST], "app.localhost");
        assert_eq!(headers["x-forwarded-host"], "app.localhost");
        assert_eq!(headers["x-forwarded-for"], "127.0.0.9");
        for gone in [
            "connection",
            "te",
            "upgrade",
            PREVIEW_TOKEN_HEADER,
            "proxy-authorization",
        ] {
            assert!(!headers.contains_key(gone), "{gone} still there");
        }
    }
}
