//! The HTTP/1.1 fast path for plain-TCP client connections.
//!
//! The common request — HTTP/1.1, origin- or absolute-form target, one
//! valid `Host`, no body or a small `Content-Length` body, no upgrade, no
//! `Expect`, no `Transfer-Encoding` — is parsed in place with `httparse`,
//! routed by [`turnout_routing::pick`] over the parsed headers, and
//! forwarded as bytes: the upstream head is written once from the client's
//! head (hop-by-hop headers dropped, forwarding headers added), and the
//! response is passed back with its own framing (`Content-Length`,
//! chunked or close-delimited) after its head is rewritten the same way.
//! No `HeaderMap`, no `Request`, no per-request task or channel; upstream
//! connections come from a lock-free per-address pool
//! ([`crate::upstream`]).
//!
//! Anything else on the connection — an HTTP/2 preface, HTTP/1.0, a
//! chunked or large request body, an upgrade, `Expect`, a head that does
//! not parse or is too large — is handed to the general path (hyper, in
//! [`crate::listener`]) at that request's first byte, with the bytes read
//! so far, and hyper serves the rest of the connection with every check
//! and error answer it has. Both paths give the same answers, metrics and
//! in-flight accounting.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use turnout_routing::{Listener, PREVIEW_TOKEN_HEADER, RequestHeaders, RouteIndex, Target};

use crate::dispatch::{self, Asked, Attempts, Failure, MAX_ROUTINGS, Routed};
use crate::forward::{ConnInfo, proxy_token};
use crate::hop::{self, Hop, Token};
use crate::in_flight::InFlight;
use crate::shared::Shared;
use crate::snapshot::{ServiceState, Snapshot};
use crate::upstream::{self, Upstream};

/// Bytes a connection reads at a time.
const READ_CHUNK: usize = 4096;

/// Largest response head accepted from an upstream.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Most header fields read from an upstream's response head.
const MAX_RESPONSE_HEADERS: usize = 128;

/// How a client connection left the fast path.
pub(crate) enum Ended {
    /// It is finished (closed by either side, timed out, or the proxy is
    /// stopping).
    Closed,
    /// The next request is not one for the fast path: hyper serves the
    /// connection from here, starting with these bytes already read.
    Handoff(Vec<u8>),
}

/// What the head at the start of the read buffer came to.
enum Step {
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
struct Prepared {
    snapshot: Arc<Snapshot>,
    route: RouteIndex,
    target: Target,
    first: (usize, InFlight),
    /// Bytes of the request (head and body) in the read buffer.
    consumed: usize,
    /// The request may be sent again after a failed attempt.
    idempotent: bool,
    /// No body: any request may be retried after a failed connect.
    bodyless: bool,
    /// A `HEAD` request: the response has no body whatever it says.
    head_method: bool,
    /// The client asked to close after this request.
    close: bool,
    /// Method and target in the read buffer, for the access log.
    method: Range<usize>,
    path: Range<usize>,
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes; the client connection closes after it.
    Close,
}

/// Serves the HTTP/1.1 requests of one plain-TCP connection until it ends
/// or a request needs the general path.
pub(crate) async fn serve(shared: &Shared, conn: &ConnInfo, stream: &mut TcpStream) -> Ended {
    let timeouts = shared.config.timeouts;
    let mut cx = Conn {
        buf: Vec::new(),
        upstream_head: Vec::new(),
        response: Vec::new(),
    };
    let stop = shared.stop.cancelled();
    tokio::pin!(stop);
    // A new connection must send its first head within `header_read`.
    let first = tokio::time::Instant::now() + timeouts.header_read.min(timeouts.client_idle);
    let sleep = tokio::time::sleep_until(first);
    tokio::pin!(sleep);
    let mut clock = Clock {
        sleep: sleep.as_mut(),
        at: first,
    };
    let mut phase = Phase::Head;
    loop {
        let step = if cx.buf.is_empty() {
            Step::Partial
        } else {
            prepare(shared, conn, &cx.buf, &mut cx.upstream_head)
        };
        match step {
            Step::Partial => {
                if phase == Phase::HeadStarted {
                    // A head arrived in pieces: it has `header_read` from
                    // its first byte (near enough: from now).
                    clock.set(tokio::time::Instant::now() + timeouts.header_read);
                    phase = Phase::Head;
                }
            }
            Step::Handoff => return Ended::Handoff(std::mem::take(&mut cx.buf)),
            Step::Local {
                status,
                text,
                consumed,
                close,
            } => {
                let close = close || shared.stop.is_cancelled();
                if write_local(stream, &mut cx.response, status, &text, close)
                    .await
                    .is_err()
                    || close
                {
                    return Ended::Closed;
                }
                cx.buf.drain(..consumed);
                phase = cx.finish(&mut clock, &timeouts);
                continue;
            }
            Step::Forward(prepared) => {
                let consumed = prepared.consumed;
                let forwarded = forward(shared, stream, &mut cx, &mut clock, prepared);
                if !Box::pin(forwarded).await || shared.stop.is_cancelled() {
                    return Ended::Closed;
                }
                cx.buf.drain(..consumed);
                phase = cx.finish(&mut clock, &timeouts);
                continue;
            }
        }
        let idle = phase == Phase::Idle;
        if cx.buf.is_empty() {
            // Nothing of the next head yet: wait without a buffer, so that
            // an idle connection holds none, then read into a spare one.
            tokio::select! {
                biased;
                ready = stream.readable() => {
                    if ready.is_err() {
                        return Ended::Closed;
                    }
                }
                () = clock.fired() => return Ended::Closed,
                () = &mut stop => return Ended::Closed,
            }
            let mut buf = spare::take();
            // One poll: a readiness the runtime still remembers from an
            // earlier read can be stale, and then the buffer goes back
            // before waiting again.
            let read = std::future::poll_fn(|task| {
                let read = stream.read_buf(&mut buf);
                tokio::pin!(read);
                Poll::Ready(match read.poll(task) {
                    Poll::Ready(read) => Some(read),
                    Poll::Pending => None,
                })
            })
            .await;
            match read {
                None => spare::give(buf),
                Some(Ok(0) | Err(_)) => return Ended::Closed,
                Some(Ok(_)) => {
                    cx.buf = buf;
                    if idle {
                        phase = Phase::HeadStarted;
                    }
                }
            }
            continue;
        }
        // Read more of the head (or of a small body that comes with it).
        if cx.buf.capacity() - cx.buf.len() < READ_CHUNK / 4 {
            let want = (cx.buf.len() + READ_CHUNK).max(cx.buf.capacity() * 2);
            cx.buf.reserve(want - cx.buf.len());
        }
        tokio::select! {
            biased;
            read = stream.read_buf(&mut cx.buf) => match read {
                Ok(0) | Err(_) => return Ended::Closed,
                Ok(_) => {}
            },
            () = clock.fired() => {
                tracing::debug!(peer = %conn.peer, "request head too slow; closing");
                return Ended::Closed;
            }
        }
    }
}

/// What a connection between requests waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The first byte of the next head, within `client_idle`.
    Idle,
    /// Bytes of the head came in the last read; if it is not complete,
    /// its `header_read` clock starts.
    HeadStarted,
    /// The rest of a head, by the clock's deadline.
    Head,
}

/// A connection's one timer, moved lazily: setting a later deadline only
/// notes it, and the timer, when it fires early, sleeps again until the
/// noted one. So the usual request, which sets the upstream deadline and
/// then the idle deadline, never touches the runtime's timer wheel.
struct Clock<'s> {
    sleep: std::pin::Pin<&'s mut tokio::time::Sleep>,
    at: tokio::time::Instant,
}

impl Clock<'_> {
    fn set(&mut self, at: tokio::time::Instant) {
        if at < self.sleep.deadline() {
            self.sleep.as_mut().reset(at);
        }
        self.at = at;
    }

    /// Completes once the deadline set last has passed.
    async fn fired(&mut self) {
        loop {
            self.sleep.as_mut().await;
            if tokio::time::Instant::now() >= self.at {
                return;
            }
            let at = self.at;
            self.sleep.as_mut().reset(at);
        }
    }
}

/// A connection's buffers: the client's bytes, the upstream head being
/// sent, and the upstream's response being passed on. All three are
/// freed while the connection idles, so an idle keep-alive connection
/// holds no buffer.
struct Conn {
    buf: Vec<u8>,
    upstream_head: Vec<u8>,
    response: Vec<u8>,
}

impl Conn {
    /// A request is done: returns its buffers to the thread's spares and
    /// sets the clock: the idle clock if nothing of the next head is here
    /// yet, else the head clock of that head.
    fn finish(&mut self, clock: &mut Clock<'_>, timeouts: &crate::config::Timeouts) -> Phase {
        spare::give(std::mem::take(&mut self.upstream_head));
        spare::give(std::mem::take(&mut self.response));
        let now = tokio::time::Instant::now();
        if self.buf.is_empty() {
            spare::give(std::mem::take(&mut self.buf));
            clock.set(now + timeouts.client_idle);
            Phase::Idle
        } else {
            clock.set(now + timeouts.header_read);
            Phase::Head
        }
    }
}

/// Buffers of finished requests, kept per thread for the next request, so
/// that a busy connection does not allocate per request and an idle one
/// holds none.
mod spare {
    use std::cell::RefCell;

    /// Size of a new buffer.
    const SIZE: usize = super::READ_CHUNK;
    /// Most buffers kept per thread.
    const KEPT: usize = 64;
    /// Larger buffers are freed, not kept.
    const LARGEST: usize = 64 * 1024;

    thread_local! {
        static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    }

    /// An empty buffer with room for a read.
    pub fn take() -> Vec<u8> {
        SPARE
            .with(|spare| spare.borrow_mut().pop())
            .unwrap_or_else(|| Vec::with_capacity(SIZE))
    }

    /// Keeps `buf` for another request, if it is worth keeping.
    pub fn give(mut buf: Vec<u8>) {
        if buf.capacity() < SIZE || buf.capacity() > LARGEST {
            return;
        }
        buf.clear();
        SPARE.with(|spare| {
            let mut spare = spare.borrow_mut();
            if spare.len() < KEPT {
                spare.push(buf);
            }
        });
    }
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
fn prepare(shared: &Shared, conn: &ConnInfo, buf: &[u8], out: &mut Vec<u8>) -> Step {
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
    };
    for _ in 0..MAX_ROUTINGS {
        let snapshot = shared.current.load_full();
        let (route_index, target, first) = match dispatch::route(shared, &snapshot, &asked) {
            Routed::Forward {
                route,
                target,
                first,
            } => (route, target, first),
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
fn parse_decimal(value: &[u8]) -> Option<u64> {
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
        15 => n.eq_ignore_ascii_case(b"x-forwarded-for"),
        16 => n.eq_ignore_ascii_case(b"x-forwarded-host"),
        17 => n.eq_ignore_ascii_case(b"x-forwarded-proto"),
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
            if h.name.eq_ignore_ascii_case("x-forwarded-for") {
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
    out.extend_from_slice(b"x-forwarded-for: ");
    if let Some(before) = forwarded_for {
        out.extend_from_slice(before);
        out.extend_from_slice(b", ");
    }
    if let Some(ip) = &conn.peer_ip {
        out.extend_from_slice(ip.as_bytes());
    }
    out.extend_from_slice(b"\r\nx-forwarded-proto: ");
    out.extend_from_slice(if conn.tls { b"https" } else { b"http" });
    out.extend_from_slice(b"\r\nx-forwarded-host: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
}

/// Forwards a prepared request with retries and passes the response on.
/// Returns whether the client connection may serve another request.
async fn forward(
    shared: &Shared,
    client: &mut TcpStream,
    cx: &mut Conn,
    clock: &mut Clock<'_>,
    p: Prepared,
) -> bool {
    let started = Instant::now();
    let route_state = &p.snapshot.routes[p.route as usize];
    let state: &ServiceState = &route_state.services[usize::from(p.target.service)];
    let mut attempts = Attempts::new(state, p.target, p.first, p.idempotent || p.bodyless);
    let mut failure = None;
    while let Some((slot_index, in_flight)) = attempts.next() {
        let slot = &state.instances[slot_index];
        let instance = &slot.instance;
        let exchanged = exchange(
            shared,
            instance,
            client,
            cx,
            clock,
            started,
            (p.idempotent, p.head_method),
        )
        .await;
        let (mut upstream, head) = match exchanged {
            Ok(answer) => answer,
            Err(kind) => {
                failure = Some(kind);
                if !kind.counted(shared, state, instance, p.idempotent) {
                    break;
                }
                continue;
            }
        };
        dispatch::answered(shared, state, slot_index, head.status, started);
        if shared.config.access_log
            && let Some(route) = p.snapshot.table.route(p.route)
            && let Some(service) = route.service(p.target.service)
        {
            dispatch::access_log(
                route.id(),
                service.name(),
                &instance.id,
                std::str::from_utf8(&cx.buf[p.method.clone()]).unwrap_or("-"),
                std::str::from_utf8(&cx.buf[p.path.clone()]).unwrap_or("-"),
                head.status,
                started,
            );
        }
        write_cookies(
            &mut cx.upstream_head,
            p.target,
            dispatch::pin(p.target, slot_index, &instance.id),
        );
        let close = p.close || head.framing == Framing::Close || shared.stop.is_cancelled();
        let out = &mut cx.upstream_head;
        if close {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        let passed = pass_body(client, &mut upstream, &mut cx.response, head, out).await;
        // The request stays in flight on the instance until here.
        drop(in_flight);
        return match passed {
            Ok(reusable) => {
                if reusable {
                    instance.link.pool.put(upstream);
                }
                !close
            }
            Err(_) => false,
        };
    }
    let (status, text) = dispatch::failed(shared, state, failure);
    let close = p.close || shared.stop.is_cancelled();
    write_local(client, &mut cx.response, status.as_u16(), text, close)
        .await
        .is_ok()
        && !close
}

/// The parts of an upstream response head the proxy acts on.
#[derive(Debug, Clone, Copy)]
struct ResponseHead {
    status: u16,
    /// Bytes of the head in the response buffer (the body follows).
    len: usize,
    framing: Framing,
    /// The upstream keeps the connection open after this response.
    keep_alive: bool,
}

/// One attempt: a connection (pooled or new), the request written, the
/// response head read within `upstream_response`. The client's head is in
/// `cx.upstream_head` on entry; on success it holds the client's response
/// head without its end (cookies and `Connection` still to come).
async fn exchange(
    shared: &Shared,
    instance: &crate::instance::Instance,
    client: &mut TcpStream,
    cx: &mut Conn,
    clock: &mut Clock<'_>,
    started: Instant,
    (idempotent, head_method): (bool, bool),
) -> Result<(Upstream, ResponseHead), Failure> {
    let timeouts = shared.config.timeouts;
    clock.set(tokio::time::Instant::from_std(
        started + timeouts.upstream_response,
    ));
    let mut pooled = instance.link.pool.take(started, timeouts.idle);
    loop {
        let reused = pooled.is_some();
        let mut upstream = match pooled.take() {
            Some(upstream) => upstream,
            None => upstream::connect(shared, instance).await.map_err(|_| {
                if instance.link.drained.is_cancelled() {
                    Failure::Drained
                } else {
                    Failure::Connect
                }
            })?,
        };
        cx.response.clear();
        let attempt = async {
            upstream.stream.write_all(&cx.upstream_head).await?;
            read_response_head(
                &mut upstream.stream,
                client,
                &mut cx.response,
                &mut cx.upstream_head,
                head_method,
            )
            .await
        };
        let answered = tokio::select! {
            biased;
            answered = attempt => answered,
            () = clock.fired() => return Err(Failure::Timeout),
        };
        match answered {
            Ok(head) => return Ok((upstream, head)),
            Err(_) if instance.link.drained.is_cancelled() => return Err(Failure::Drained),
            // A pooled connection the upstream closed just as it was
            // taken: nothing of a response came, so an idempotent request
            // goes again on a new connection.
            Err(HeadError::Closed) if reused && idempotent => continue,
            Err(_) => return Err(Failure::Protocol),
        }
    }
}

enum HeadError {
    /// The connection ended before any byte of a response.
    Closed,
    /// Anything else: a read error, a malformed or oversized head.
    Bad,
}

impl From<io::Error> for HeadError {
    fn from(_: io::Error) -> HeadError {
        HeadError::Bad
    }
}

/// Reads an upstream's final response head into `buf`, passing interim
/// (1xx) responses on to the client, and writes the client's response head
/// (without its end) into `out`.
async fn read_response_head(
    upstream: &mut TcpStream,
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
    head_method: bool,
) -> Result<ResponseHead, HeadError> {
    let mut received = false;
    loop {
        if !buf.is_empty() {
            match parse_response(buf, out, head_method) {
                ResponseStep::Final(head) => return Ok(head),
                ResponseStep::Interim(len) => {
                    client.write_all(&buf[..len]).await?;
                    buf.drain(..len);
                    continue;
                }
                ResponseStep::Partial if buf.len() < MAX_RESPONSE_HEAD => {}
                ResponseStep::Partial | ResponseStep::Bad => return Err(HeadError::Bad),
            }
        }
        if buf.capacity() == 0 {
            *buf = spare::take();
        } else if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        match upstream.read_buf(buf).await {
            Ok(0) if !received => return Err(HeadError::Closed),
            Ok(0) => return Err(HeadError::Bad),
            Ok(_) => received = true,
            Err(_) if !received => return Err(HeadError::Closed),
            Err(err) => return Err(err.into()),
        }
    }
}

/// What the bytes at the start of an upstream's response came to.
enum ResponseStep {
    Partial,
    /// A 1xx response of this many bytes, to pass on as it is.
    Interim(usize),
    /// The final response's head; the client's head is in `out`.
    Final(ResponseHead),
    /// Malformed, too many fields, an unrequested upgrade, or a body that
    /// cannot be framed.
    Bad,
}

/// Parses a response head and, for a final response, writes the client's
/// head (status line as sent, hop-by-hop headers dropped; without its
/// final CRLF) into `out` in the same pass over the fields that finds the
/// framing (RFC 9112 §6.3) and whether the upstream keeps the connection.
fn parse_response(buf: &[u8], out: &mut Vec<u8>, head_method: bool) -> ResponseStep {
    let mut slots = [const { MaybeUninit::uninit() }; MAX_RESPONSE_HEADERS];
    let mut response = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut response,
        buf,
        &mut slots,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return ResponseStep::Partial,
        Err(_) => return ResponseStep::Bad,
    };
    let status = response.code.unwrap_or(0);
    match status {
        // An upgrade nobody asked for (upgrades go to the general path).
        101 => return ResponseStep::Bad,
        100..=199 => return ResponseStep::Interim(len),
        _ => {}
    }
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    // httparse accepts three-digit codes only.
    let code = status.min(999);
    out.extend_from_slice(&[
        b'0' + (code / 100) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
        b' ',
    ]);
    out.extend_from_slice(response.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let status_line = out.len();
    let (mut chunked, mut length) = (None, None);
    let (mut close, mut names_others) = (false, false);
    for h in response.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"connection") {
            for (token, _) in hop::tokens(h.value) {
                match token {
                    Token::Close => close = true,
                    Token::KeepAlive => {}
                    Token::Upgrade | Token::Other => names_others = true,
                }
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let Some(n) = parse_decimal(h.value) else {
                return ResponseStep::Bad;
            };
            if length.is_some_and(|l| l != n) {
                return ResponseStep::Bad;
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // The last coding decides.
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        }
        if !dropped_response_header(h.name) {
            write_field(out, h);
        }
    }
    if names_others {
        // Rare: `Connection` names other fields, which end here too (but
        // never the framing, which the body is passed on with).
        out.truncate(status_line);
        for h in response.headers.iter() {
            let framing_field = h.name.eq_ignore_ascii_case("transfer-encoding")
                || h.name.eq_ignore_ascii_case("content-length");
            if framing_field
                || !(dropped_response_header(h.name)
                    || hop::named_by_connection(response.headers, h.name))
            {
                write_field(out, h);
            }
        }
    }
    let framing = if head_method || status == 204 || status == 304 {
        Framing::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::Close,
            (None, Some(0)) => Framing::Empty,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::Close,
        }
    };
    ResponseStep::Final(ResponseHead {
        status,
        len,
        framing,
        keep_alive: response.version == Some(1) && !close && framing != Framing::Close,
    })
}

fn write_field(out: &mut Vec<u8>, h: &httparse::Header<'_>) {
    out.extend_from_slice(h.name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(h.value);
    out.extend_from_slice(b"\r\n");
}

/// Is this a response header that ends at the proxy? The hop-by-hop ones
/// but the framing (`Transfer-Encoding`, `Trailer`; `Content-Length` is
/// not one): the body is passed on with its framing.
#[inline]
fn dropped_response_header(name: &str) -> bool {
    matches!(
        hop::kind(name),
        Some(Hop::Connection | Hop::Field | Hop::Upgrade)
    )
}

/// `Set-Cookie` lines for stickiness.
fn write_cookies(out: &mut Vec<u8>, target: Target, pin: Option<&str>) {
    use std::io::Write;
    dispatch::cookies(target, pin, |value| {
        out.extend_from_slice(b"set-cookie: ");
        let _ = out.write_fmt(value);
        out.extend_from_slice(b"\r\n");
    });
}

/// Sends the client's response head (`head_out`, complete) and the body
/// that follows the upstream's head in `buf`, then the rest of the body
/// as it comes. Returns whether the upstream connection may be reused.
async fn pass_body(
    client: &mut TcpStream,
    upstream: &mut Upstream,
    buf: &mut Vec<u8>,
    head: ResponseHead,
    head_out: &mut Vec<u8>,
) -> io::Result<bool> {
    let available = &buf[head.len..];
    let mut chunked = ChunkedEnd::default();
    // How much of `available` belongs to the body, and whether it ends
    // there.
    let (take, mut done) = match head.framing {
        Framing::Empty => (0, true),
        Framing::Length(n) => {
            let take = (available.len() as u64).min(n) as usize;
            (take, take as u64 == n)
        }
        Framing::Chunked => match chunked.feed(available)? {
            Some(end) => (end, true),
            None => (available.len(), false),
        },
        Framing::Close => (available.len(), false),
    };
    // Bytes after the body: the upstream sent more than one response.
    let mut clean = take == available.len();
    let mut left = match head.framing {
        Framing::Length(n) => n - take as u64,
        _ => 0,
    };
    head_out.extend_from_slice(&available[..take]);
    client.write_all(head_out).await?;
    while !done {
        buf.clear();
        if buf.capacity() < READ_CHUNK * 4 {
            buf.reserve(READ_CHUNK * 4);
        }
        let n = upstream.stream.read_buf(buf).await?;
        if n == 0 {
            if head.framing == Framing::Close {
                break;
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let take = match head.framing {
            Framing::Length(_) => {
                let take = (n as u64).min(left) as usize;
                left -= take as u64;
                done = left == 0;
                take
            }
            Framing::Chunked => match chunked.feed(buf)? {
                Some(end) => {
                    done = true;
                    end
                }
                None => n,
            },
            _ => n,
        };
        clean &= take == n;
        client.write_all(&buf[..take]).await?;
    }
    Ok(head.keep_alive && clean)
}

/// Finds where a chunked body ends (after the last chunk and the
/// trailers), over the bytes as they come, without copying them.
#[derive(Debug, Default)]
struct ChunkedEnd {
    state: Chunk,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In the chunk size; `digits` read so far.
    #[default]
    SizeStart,
    Size {
        size: u64,
    },
    /// After the size: extensions up to the line end.
    Extension {
        size: u64,
    },
    Data {
        left: u64,
    },
    /// The CRLF after a chunk's data.
    DataCr,
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    TrailerStart,
    TrailerLf,
    Trailer,
}

impl ChunkedEnd {
    /// Follows `bytes`; the offset just after the body's end when it is in
    /// them. An error for bytes that are not chunked framing.
    fn feed(&mut self, bytes: &[u8]) -> io::Result<Option<usize>> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed chunked body");
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.state = match self.state {
                Chunk::SizeStart => match hex(b) {
                    Some(d) => Chunk::Size { size: d },
                    None => return Err(bad()),
                },
                Chunk::Size { size } => match hex(b) {
                    Some(d) => Chunk::Size {
                        size: size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(d))
                            .ok_or_else(bad)?,
                    },
                    None if b == b'\n' => self.after_size(size),
                    None if matches!(b, b';' | b' ' | b'\t' | b'\r') => Chunk::Extension { size },
                    None => return Err(bad()),
                },
                Chunk::Extension { size } => {
                    if b == b'\n' {
                        self.after_size(size)
                    } else {
                        Chunk::Extension { size }
                    }
                }
                Chunk::Data { left } => {
                    let n = ((bytes.len() - i) as u64).min(left);
                    i += n as usize;
                    self.state = if n == left {
                        Chunk::DataCr
                    } else {
                        Chunk::Data { left: left - n }
                    };
                    continue;
                }
                Chunk::DataCr => match b {
                    b'\r' => Chunk::DataLf,
                    b'\n' => Chunk::SizeStart,
                    _ => return Err(bad()),
                },
                Chunk::DataLf => match b {
                    b'\n' => Chunk::SizeStart,
                    _ => return Err(bad()),
                },
                Chunk::TrailerStart => match b {
                    b'\r' => Chunk::TrailerLf,
                    b'\n' => return Ok(Some(i + 1)),
                    _ => Chunk::Trailer,
                },
                Chunk::TrailerLf => match b {
                    b'\n' => return Ok(Some(i + 1)),
                    _ => return Err(bad()),
                },
                Chunk::Trailer => {
                    if b == b'\n' {
                        Chunk::TrailerStart
                    } else {
                        Chunk::Trailer
                    }
                }
            };
            i += 1;
        }
        Ok(None)
    }

    fn after_size(&self, size: u64) -> Chunk {
        if size == 0 {
            Chunk::TrailerStart
        } else {
            Chunk::Data { left: size }
        }
    }
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

/// A response from the proxy itself.
async fn write_local(
    client: &mut TcpStream,
    out: &mut Vec<u8>,
    status: u16,
    text: &str,
    close: bool,
) -> io::Result<()> {
    use std::io::Write;
    out.clear();
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n{}\r\n{text}",
        text.len(),
        if close { "connection: close\r\n" } else { "" },
    );
    client.write_all(out).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_end_at_every_split() {
        let body =
            b"5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nx-t: 1\r\n\r\nNEXT";
        let end = body.len() - 4;
        for split in 0..=body.len() {
            let mut c = ChunkedEnd::default();
            let (a, b) = body.split_at(split);
            let found = match c.feed(a).unwrap() {
                Some(at) => Some(at),
                None => c.feed(b).unwrap().map(|at| at + split),
            };
            assert_eq!(found, Some(end), "split at {split}");
        }
        let mut c = ChunkedEnd::default();
        assert_eq!(c.feed(b"0\r\n\r\n").unwrap(), Some(5));
        let mut c = ChunkedEnd::default();
        assert!(c.feed(b"zz\r\n").is_err());
        let mut c = ChunkedEnd::default();
        assert!(c.feed(b"ffffffffffffffffff\r\n").is_err());
    }

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

    #[test]
    fn client_head_drops_hop_by_hop_fields() {
        let raw = b"HTTP/1.1 200 Fine\r\nConnection: x-private, close\r\nX-Private: 1\r\nKeep-Alive: 5\r\nContent-Length: 2\r\nX-Kept: yes\r\n\r\nok";
        let mut out = Vec::new();
        let ResponseStep::Final(head) = parse_response(raw, &mut out, false) else {
            panic!("not a final response");
        };
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 Fine\r\nContent-Length: 2\r\nX-Kept: yes\r\n"
        );
        assert_eq!(head.framing, Framing::Length(2));
        assert!(!head.keep_alive, "the upstream said close");
        assert_eq!(head.len, raw.len() - 2);
        let interim = b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n";
        assert!(matches!(
            parse_response(interim, &mut Vec::new(), false),
            ResponseStep::Interim(40)
        ));
        assert!(matches!(
            parse_response(b"HTTP/1.1 101 Switching\r\n\r\n", &mut Vec::new(), false),
            ResponseStep::Bad
        ));
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let framing = |raw: &[u8], head: bool| match parse_response(raw, &mut Vec::new(), head) {
            ResponseStep::Final(head) => Some(head.framing),
            ResponseStep::Bad => None,
            _ => panic!("not a final response"),
        };
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n", false),
            Some(Framing::Length(3))
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n", true),
            Some(Framing::Empty)
        );
        assert_eq!(
            framing(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 3\r\n\r\n",
                false
            ),
            Some(Framing::Chunked)
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\n\r\n", false),
            Some(Framing::Close)
        );
        assert_eq!(
            framing(
                b"HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n",
                false
            ),
            Some(Framing::Empty)
        );
        assert_eq!(
            framing(
                b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n",
                false
            ),
            None
        );
    }
}
