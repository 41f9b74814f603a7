//! Request heads on the fast path: parsed in place, checked for what the
//! fast path serves, routed (`dispatch::route`), and the upstream head
//! written from them.

use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::Arc;

use turnout_routing::{Listener, PREVIEW_TOKEN_HEADER, RequestHeaders, RouteIndex, Target};

use crate::caller::{self, ConnInfo, proxy_token};
use crate::dispatch::{self, Asked, MAX_ROUTINGS, Routed};
use crate::feed::Account;
use crate::hop::{self, Token};
use crate::in_flight::InFlight;
use crate::shared::Shared;
use crate::snapshot::Snapshot;

use super::conn::spare;

/// What the head at the start of the read buffer came to.
pub(super) enum Step {
    /// More bytes are needed (head or body incomplete).
    Partial,
    /// Not a fast-path request.
    Handoff,
    /// The proxy answers itself.
    Local {
        status: u16,
        text: std::borrow::Cow<'static, str>,
        /// Bytes of the request (head and body) to drop afterwards.
        consumed: usize,
        /// The client asked to close the connection after this request.
        close: bool,
    },
    /// Forward `request` (in the upstream buffer) to an instance.
    Forward(Prepared),
}

/// A routed request whose upstream head is built.
pub(super) struct Prepared {
    pub(super) snapshot: Arc<Snapshot>,
    pub(super) route: RouteIndex,
    pub(super) target: Target,
    pub(super) first: (usize, InFlight),
    pub(super) account: Account,
    /// Bytes of the request (head and body) in the read buffer.
    pub(super) consumed: usize,
    /// The request may be sent again after a failed attempt.
    pub(super) idempotent: bool,
    /// No body: any request may be retried after a failed connect.
    pub(super) bodyless: bool,
    /// A `HEAD` request: the response has no body whatever it says.
    pub(super) head_method: bool,
    /// The client asked to close after this request.
    pub(super) close: bool,
    /// Method and target in the read buffer, for the access log.
    pub(super) method: Range<usize>,
    pub(super) path: Range<usize>,
}

/// The parsed request headers as the routing decision reads them.
struct Parsed<'h, 'b>(&'h [httparse::Header<'b>]);

impl RequestHeaders for Parsed<'_, '_> {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }
}

/// Parses the head at the start of `buf` and, for a fast-path request,
/// routes it and writes the upstream head into `out`. Synchronous: the
/// parsed head borrows `buf` and is gone before anything is awaited.
pub(super) fn prepare(shared: &Shared, conn: &ConnInfo, buf: &[u8], out: &mut Vec<u8>) -> Step {
    let max_headers = shared.config.max_headers;
    let max_head = shared.config.max_header_bytes.max(8192);
    let mut storage = [const { MaybeUninit::uninit() }; 64];
    let mut heap;
    let slots: &mut [MaybeUninit<httparse::Header<'_>>] = if max_headers <= storage.len() {
        &mut storage[..max_headers]
    } else {
        heap = Vec::with_capacity(max_headers);
        heap.resize_with(max_headers, MaybeUninit::uninit);
        &mut heap
    };
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() < max_head => return Step::Partial,
        // Malformed, too many fields or too large: hyper answers those.
        _ => return Step::Handoff,
    };
    if head_len > max_head || req.version != Some(1) {
        return Step::Handoff;
    }
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Step::Handoff;
    };
    let headers = &*req.headers;
    let mut facts = Facts::default();
    for h in headers {
        if !facts.note(h) {
            return Step::Handoff;
        }
    }
    let body_len = match facts.content_length {
        None => 0,
        Some(n) if n <= shared.config.max_retry_body_bytes as u64 => n as usize,
        Some(_) => return Step::Handoff,
    };
    if method == "CONNECT" {
        return Step::Handoff;
    }
    // Origin form, or absolute form (forward-proxy clients); `*` and
    // authority forms go to the general path.
    let (absolute_host, origin) = if target.starts_with('/') {
        (None, target)
    } else if let Some((host, rest)) = split_absolute(target) {
        (Some(host), rest)
    } else {
        return Step::Handoff;
    };
    let host = match (absolute_host, facts.host) {
        (Some(host), _) => host,
        (None, Some(host)) => host,
        (None, None) => return Step::Handoff,
    };
    let consumed = head_len + body_len;
    if buf.len() < consumed {
        return Step::Partial;
    }
    let (path, query) = match origin.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (origin, None),
    };
    let token = match conn.listener {
        Listener::Internal => facts.proxy_authorization.and_then(proxy_token),
        Listener::Public => None,
    };
    let close = facts.close;
    let local = |status: u16, text: &'static str| Step::Local {
        status,
        text: text.into(),
        consumed,
        close,
    };
    let asked = Asked {
        listener: conn.listener,
        host,
        path,
        query,
        headers: &Parsed(headers),
        token: token.as_deref(),
        address: conn.caller_address(),
    };
    for _ in 0..MAX_ROUTINGS {
        let snapshot = shared.current.load_full();
        let (route_index, target, first, account) = match dispatch::route(shared, &snapshot, &asked)
        {
            Routed::Forward {
                route,
                target,
                first,
                account,
            } => (route, target, first, account),
            Routed::Local(status, text) => {
                return Step::Local {
                    status: status.as_u16(),
                    text,
                    consumed,
                    close,
                };
            }
            // Egress (or its refusal): served in one place, by hyper.
            Routed::Egress => return Step::Handoff,
            // Replaced meanwhile: route again with the new table.
            Routed::Stale => continue,
        };
        if out.capacity() == 0 {
            *out = spare::take();
        }
        write_upstream_head(out, method, origin, host, headers, &facts, conn);
        out.extend_from_slice(&buf[head_len..consumed]);
        let base = buf.as_ptr() as usize;
        let range = |s: &str| {
            let start = s.as_ptr() as usize - base;
            start..start + s.len()
        };
        return Step::Forward(Prepared {
            route: route_index,
            target,
            first,
            account,
            consumed,
            idempotent: dispatch::idempotent(method),
            bodyless: body_len == 0,
            head_method: method == "HEAD",
            close: facts.close,
            method: range(method),
            path: range(origin),
            snapshot,
        });
    }
    local(503, dispatch::KEPT_CHANGING)
}

/// What the request's headers say about how to forward it.
#[derive(Default)]
struct Facts<'b> {
    host: Option<&'b str>,
    content_length: Option<u64>,
    proxy_authorization: Option<&'b [u8]>,
    /// `Connection: close`.
    close: bool,
    /// `Connection` names headers other than `keep-alive`/`close`: they
    /// are hop-by-hop too.
    names_others: bool,
}

impl<'b> Facts<'b> {
    /// Notes one header; false for one the fast path leaves to hyper.
    fn note(&mut self, h: &httparse::Header<'b>) -> bool {
        let name = h.name.as_bytes();
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                // Two fields, or one that is not host[:port]: hyper's path
                // answers 400 (`host::problem`).
                if self.host.is_some() || !crate::host::valid(h.value) {
                    return false;
                }
                match std::str::from_utf8(h.value) {
                    Ok(host) => self.host = Some(host),
                    Err(_) => return false,
                }
            }
            6 if name.eq_ignore_ascii_case(b"expect") => return false,
            7 if name.eq_ignore_ascii_case(b"upgrade") => return false,
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for (token, _) in hop::tokens(h.value) {
                    match token {
                        Token::Close => self.close = true,
                        Token::Upgrade => return false,
                        Token::KeepAlive => {}
                        Token::Other => self.names_others = true,
                    }
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                if self.content_length.is_some() {
                    return false;
                }
                match parse_decimal(h.value) {
                    Some(n) => self.content_length = Some(n),
                    None => return false,
                }
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => return false,
            19 if name.eq_ignore_ascii_case(b"proxy-authorization") => {
                self.proxy_authorization = Some(h.value);
            }
            _ => {}
        }
        true
    }
}

/// A `Content-Length` value: digits only, no sign, no list.
pub(super) fn parse_decimal(value: &[u8]) -> Option<u64> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(value.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// `http://[userinfo@]host[:port]/path?query` → (host with port, origin
/// form); the origin is `/` when the URI has no path.
fn split_absolute(target: &str) -> Option<(&str, &str)> {
    let scheme_end = target.find("://")?;
    let scheme = &target[..scheme_end];
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return None;
    }
    let rest = &target[scheme_end + 3..];
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() {
        return None;
    }
    let origin = &rest[end..];
    // `http://host?q` has the path `/` and the query `q`; only `/…` is
    // passed through as is, the rest goes to the general path.
    if origin.is_empty() {
        Some((host, "/"))
    } else if origin.starts_with('/') {
        Some((host, origin))
    } else {
        None
    }
}

/// Is this one of the headers the proxy drops or rewrites on the way to
/// the upstream? Every hop-by-hop one (a fast-path request has no
/// `Upgrade` or `Transfer-Encoding`), and those the proxy writes itself
/// or keeps to itself.
#[inline]
fn dropped_request_header(name: &str) -> bool {
    if hop::kind(name).is_some() {
        return true;
    }
    let n = name.as_bytes();
    match n.len() {
        4 => n.eq_ignore_ascii_case(b"host"),
        15 => n.eq_ignore_ascii_case(caller::X_FORWARDED_FOR.as_bytes()),
        16 => n.eq_ignore_ascii_case(caller::X_FORWARDED_HOST.as_bytes()),
        17 => n.eq_ignore_ascii_case(caller::X_FORWARDED_PROTO.as_bytes()),
        19 => n.eq_ignore_ascii_case(b"proxy-authorization"),
        _ => n.eq_ignore_ascii_case(PREVIEW_TOKEN_HEADER.as_bytes()),
    }
}

/// The head sent upstream: the client's, minus hop-by-hop headers and the
/// proxy's own credentials, with `Host` and the forwarding headers.
fn write_upstream_head(
    out: &mut Vec<u8>,
    method: &str,
    origin: &str,
    host: &str,
    headers: &[httparse::Header<'_>],
    facts: &Facts<'_>,
    conn: &ConnInfo,
) {
    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(origin.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut forwarded_for = None;
    for h in headers {
        if dropped_request_header(h.name) {
            if h.name.eq_ignore_ascii_case(caller::X_FORWARDED_FOR) {
                forwarded_for = Some(h.value);
            }
            continue;
        }
        if facts.names_others && hop::named_by_connection(headers, h.name) {
            continue;
        }
        out.extend_from_slice(h.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(caller::X_FORWARDED_FOR.as_bytes());
    out.extend_from_slice(b": ");
    if let Some(before) = forwarded_for {
        out.extend_from_slice(before);
        out.extend_from_slice(b", ");
    }
    if let Some(ip) = &conn.peer_ip {
        out.extend_from_slice(ip.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(caller::X_FORWARDED_PROTO.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(if conn.tls { b"https" } else { b"http" });
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(caller::X_FORWARDED_HOST.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_targets() {
        assert_eq!(
            split_absolute("http://tok@servicea.local/y?q=1"),
            Some(("servicea.local", "/y?q=1"))
        );
        assert_eq!(
            split_absolute("http://servicea.local"),
            Some(("servicea.local", "/"))
        );
        assert_eq!(split_absolute("http://servicea.local?q"), None);
        assert_eq!(split_absolute("ftp://x/y"), None);
        assert_eq!(split_absolute("*"), None);
    }

    #[test]
    fn content_length_is_digits_only() {
        assert_eq!(parse_decimal(b" 42 "), Some(42));
        for bad in [
            &b""[..],
            b"-1",
            b"1, 2",
            b"abc",
            b"+3",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn upstream_head_drops_hop_by_hop_and_adds_forwarding() {
        let conn = ConnInfo::new(Listener::Public, "127.0.0.9:5000".parse().unwrap(), false);
        let raw = b"GET /x?y HTTP/1.1\r\nHost: app.localhost\r\nConnection: keep-alive, x-private\r\nX-Private: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: ftp\r\nX-Turnout-Preview-Token: s\r\nProxy-Authorization: Basic eDo=\r\nX-Kept: yes\r\n\r\n";
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut slots);
        assert!(req.parse(raw).unwrap().is_complete());
        let mut facts = Facts::default();
        assert!(req.headers.iter().all(|h| facts.note(h)));
        let mut out = Vec::new();
        write_upstream_head(
            &mut out,
            "GET",
            "/x?y",
            "app.localhost",
            req.headers,
            &facts,
            &conn,
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "GET /x?y HTTP/1.1\r\nhost: app.localhost\r\nX-Kept: yes\r\nx-forwarded-for: 10.0.0.1, 127.0.0.9\r\nx-forwarded-proto: http\r\nx-forwarded-host: app.localhost\r\n\r\n"
        );
    }
}
