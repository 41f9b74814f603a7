//! The routing decision and the retry rules, once for both request paths:
//! the fast path ([`crate::h1`]) over `httparse` fields and the hyper path
//! ([`crate::forward`]) over a `HeaderMap`.
//!
//! [`route`] is lookup → `pick` → choose an instance; [`Attempts`] hands
//! out the instances a request may try, [`Failure::counted`] says whether
//! a failed attempt may go on, and [`failed`] what the client is told when
//! none succeeded. The stickiness cookies are written by [`cookies`].
//! Everything here is generic or plain data, so the fast path pays no
//! dynamic dispatch and no allocation for sharing it.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use http::StatusCode;
use turnout_routing::{
    Decision, Forbidden, INSTANCE_COOKIE, Listener, POSITION_COOKIE, RequestHeaders, RequestKey,
    RouteIndex, Target, Via, pick,
};

use crate::feed::Account;
use crate::figures::micros;
use crate::in_flight::InFlight;
use crate::instance::Instance;
use crate::metrics::code_class;
use crate::shared::Shared;
use crate::snapshot::{ServiceState, Snapshot};

/// Most attempts one request makes on different instances.
pub(crate) const MAX_ATTEMPTS: usize = 3;

/// Most times one request is routed: again when the snapshot it read was
/// replaced meanwhile and none of its instances takes requests any more.
pub(crate) const MAX_ROUTINGS: usize = 3;

/// The answer when every routing found a replaced snapshot.
pub(crate) const KEPT_CHANGING: &str = "the route table kept changing; try again\n";

/// The answer to a chunked request body that is not one (or that ended
/// before its last chunk).
pub(crate) const MALFORMED_BODY: &str = "malformed chunked request body\n";

/// How long a position cookie lasts: a year, so a client keeps its version
/// through a release.
const POSITION_MAX_AGE: &str = "31536000";

/// Whether a request with this method may be sent again after an attempt
/// that may have reached the upstream (RFC 9110 §9.2.2). Always inlined
/// into the fast path's head parsing, as it was before it was shared.
#[inline(always)]
pub(crate) fn idempotent(method: &str) -> bool {
    matches!(
        method,
        "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
    )
}

/// What the routing decision reads of a request.
pub(crate) struct Asked<'a, H: ?Sized> {
    pub listener: Listener,
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a H,
    /// The proxy credential presented on the internal listener.
    pub token: Option<&'a str>,
    /// On the internal listener, the connection's source address: the
    /// caller when no credential was sent (`caller_addresses`, containers).
    pub address: Option<IpAddr>,
}

/// What routing a request with one snapshot came to.
pub(crate) enum Routed {
    /// Forward to `first` (counted in its in-flight), an instance of the
    /// target's service.
    Forward {
        route: RouteIndex,
        target: Target,
        first: (usize, InFlight),
        /// How its answer is counted in the figures and the A/B feed.
        account: Account,
    },
    /// The proxy answers itself (counted where it is counted).
    Local(StatusCode, Cow<'static, str>),
    /// On the internal listener, a host no internal route serves: egress.
    Egress,
    /// The snapshot was replaced meanwhile and none of the chosen
    /// service's instances takes requests any more: route again with the
    /// current one.
    Stale,
}

/// Lookup → `pick` → the first instance, with `snapshot`. Synchronous and
/// generic over the header representation, so each path gets its own
/// copy with nothing dynamic in it.
#[inline]
pub(crate) fn route<H: RequestHeaders + ?Sized>(
    shared: &Shared,
    snapshot: &Snapshot,
    asked: &Asked<'_, H>,
) -> Routed {
    let unknown = || Routed::Local(StatusCode::NOT_FOUND, Cow::Borrowed("unknown host\n"));
    let table = &snapshot.table;
    let Some(route_index) = table.lookup(asked.listener, asked.host, asked.path) else {
        if asked.listener == Listener::Internal
            && !table.serves_host(Listener::Internal, asked.host)
        {
            return Routed::Egress;
        }
        return unknown();
    };
    let Some(route_state) = snapshot.routes.get(route_index as usize) else {
        return unknown();
    };
    let seq = route_state.seq.fetch_add(1, Ordering::Relaxed);
    let decision = pick(
        table,
        &RequestKey {
            route: route_index,
            seq,
            headers: asked.headers,
            query: asked.query,
            caller_token: asked.token,
            caller_address: asked.address,
        },
    );
    let target = match decision {
        Decision::Forward(target) => target,
        Decision::Forbidden(reason) => {
            route_state.local.inc(&shared.metrics, code_class(403));
            let hint = forbidden_hint(snapshot, route_index, reason, asked.token, asked.address);
            return Routed::Local(StatusCode::FORBIDDEN, Cow::Owned(hint));
        }
        Decision::NoService => {
            route_state.local.inc(&shared.metrics, code_class(503));
            return Routed::Local(
                StatusCode::SERVICE_UNAVAILABLE,
                Cow::Borrowed("no service of this route takes traffic (every weight is 0)\n"),
            );
        }
        Decision::UnknownRoute => return unknown(),
    };
    let Some(state) = route_state.services.get(usize::from(target.service)) else {
        return Routed::Local(
            StatusCode::SERVICE_UNAVAILABLE,
            Cow::Borrowed("no such service\n"),
        );
    };
    let account = Account {
        preview: target.via == Via::Preview,
        // Only a goal route's services have a tap.
        visit: match &state.tap {
            None => None,
            Some(tap) => tap.visit(&target, asked.headers, asked.path),
        },
    };
    // The first instance is chosen (and the request counted in its
    // in-flight) before anything of the request is consumed, so that a
    // request holding a replaced snapshot can still be routed again.
    let Some(first) = choose(state, target.pinned, 0) else {
        if !std::ptr::eq(&**shared.current.load(), snapshot) {
            return Routed::Stale;
        }
        state.local.inc(&shared.metrics, code_class(503));
        count(state, account, 503, 0);
        return Routed::Local(
            StatusCode::SERVICE_UNAVAILABLE,
            Cow::Borrowed("no ready instance of the chosen service\n"),
        );
    };
    Routed::Forward {
        route: route_index,
        target,
        first,
        account,
    }
}

/// The pinned instance if it is ready, else the next ready one in round
/// robin that this request has not tried yet, with the request counted in
/// its in-flight. Never a draining instance: only a request that read the
/// snapshot just before a swap can see one, and it routes again instead,
/// so that a drain that reads 0 in flight can end at once.
pub(crate) fn choose(
    state: &ServiceState,
    pinned: Option<u32>,
    tried: u64,
) -> Option<(usize, InFlight)> {
    let n = state.instances.len();
    let untried = |i: usize| tried & (1 << (i % 64)) == 0;
    let take = |i: usize| {
        let instance = &state.instances[i].instance;
        // The plain load first spares unready instances the increment.
        if instance.is_ready() {
            InFlight::acquire(instance).map(|in_flight| (i, in_flight))
        } else {
            None
        }
    };
    if let Some(p) = pinned.map(|p| p as usize)
        && p < n
        && untried(p)
        && let Some(chosen) = take(p)
    {
        return Some(chosen);
    }
    if n == 0 {
        return None;
    }
    let start = state.next.fetch_add(1, Ordering::Relaxed);
    (0..n)
        .map(|k| (start + k) % n)
        .filter(|&i| untried(i))
        .find_map(take)
}

/// The instances one request tries: the routed one first, then others of
/// its service it has not tried, up to [`MAX_ATTEMPTS`] when the request
/// can be sent again (`replayable`), else only the first.
pub(crate) struct Attempts<'s> {
    state: &'s ServiceState,
    pinned: Option<u32>,
    first: Option<(usize, InFlight)>,
    tried: u64,
    left: usize,
}

impl<'s> Attempts<'s> {
    pub fn new(
        state: &'s ServiceState,
        target: Target,
        first: (usize, InFlight),
        replayable: bool,
    ) -> Attempts<'s> {
        let left = if replayable {
            MAX_ATTEMPTS.min(state.instances.len()).max(1)
        } else {
            1
        };
        Attempts {
            state,
            pinned: target.pinned,
            first: Some(first),
            tried: 0,
            left,
        }
    }

    /// The next instance to try (its slot, counted in its in-flight), or
    /// `None` when the attempts are spent or no untried one is ready.
    #[inline]
    pub fn next(&mut self) -> Option<(usize, InFlight)> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let chosen = self
            .first
            .take()
            .or_else(|| choose(self.state, self.pinned, self.tried))?;
        self.tried |= 1 << (chosen.0 % 64);
        Some(chosen)
    }

    /// Whether the attempt just handed out is the last one.
    pub fn last(&self) -> bool {
        self.left == 0
    }
}

/// Why an upstream attempt failed; classified, not formatted, on the hot
/// path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Nothing reached the upstream: safe to retry any request.
    Connect,
    /// The request may have reached the upstream; retried only when
    /// idempotent.
    Protocol,
    /// No response head in time; not retried (the upstream may still act).
    Timeout,
    /// The instance's drain deadline passed.
    Drained,
    /// The client's body broke while it was being sent (malformed chunked
    /// framing, or the client went away): the upstream request was cut
    /// before its end. Not retried; 400. Only the hyper path streams
    /// bodies, so only it sees this.
    ClientBody,
}

impl Failure {
    /// Counts the failure on the service (a connect error also ejects the
    /// instance: its health check brings it back) and tells whether
    /// another instance may be tried.
    pub fn counted(
        self,
        shared: &Shared,
        state: &ServiceState,
        instance: &Instance,
        idempotent: bool,
    ) -> bool {
        match self {
            Failure::Connect => {
                state.series.get(&shared.metrics).errors.connect.inc();
                instance.eject();
                true
            }
            Failure::Protocol => {
                state.series.get(&shared.metrics).errors.protocol.inc();
                idempotent
            }
            Failure::Timeout => {
                state.series.get(&shared.metrics).errors.timeout.inc();
                false
            }
            Failure::Drained | Failure::ClientBody => false,
        }
    }
}

/// The proxy's answer when no attempt got a response (`failure` is the
/// last attempt's, `None` when no instance was left to try), counted on
/// the service.
pub(crate) fn failed(
    shared: &Shared,
    state: &ServiceState,
    failure: Option<Failure>,
    account: Account,
    started: Instant,
) -> (StatusCode, &'static str) {
    let answer = match failure {
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no ready instance of the chosen service\n",
        ),
        Some(Failure::Timeout) => (StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n"),
        Some(Failure::Connect | Failure::Protocol | Failure::Drained) => {
            (StatusCode::BAD_GATEWAY, "upstream failed\n")
        }
        Some(Failure::ClientBody) => (StatusCode::BAD_REQUEST, MALFORMED_BODY),
    };
    let status = answer.0.as_u16();
    state.local.inc(&shared.metrics, code_class(status));
    count(state, account, status, micros(started.elapsed()));
    answer
}

/// Counts a response instance `slot` gave: its code on the instance, its
/// duration on the service, both in the figures (and the A/B feed).
#[inline]
pub(crate) fn answered(
    shared: &Shared,
    state: &ServiceState,
    slot: usize,
    status: u16,
    started: Instant,
    account: Account,
) {
    let elapsed = started.elapsed();
    state.instances[slot]
        .requests
        .inc(&shared.metrics, code_class(status));
    state
        .series
        .get(&shared.metrics)
        .duration
        .observe(elapsed.as_secs_f64());
    count(state, account, status, micros(elapsed));
}

/// Counts an answer of `status` after `micros` µs in the service's figures
/// and, on a goal route, reports it to the A/B feed.
#[inline]
fn count(state: &ServiceState, account: Account, status: u16, micros: u64) {
    state.figures.record(account.preview, status, micros);
    if let (Some(visit), Some(tap)) = (account.visit, &state.tap) {
        tap.offer(visit, status);
    }
}

/// The instance a response pins the client to: the one that answered,
/// when the decision asked for a pin or the pinned instance was not the
/// one that answered.
#[inline]
pub(crate) fn pin(target: Target, slot: usize, id: &str) -> Option<&str> {
    let moved = target.pinned.is_some_and(|p| p as usize != slot);
    (target.set_pin || moved).then_some(id)
}

/// The stickiness cookies of a response, each handed to `each` as the
/// value of one `Set-Cookie` field: the position (a year, so a client
/// keeps its version through a release) and the pinned instance.
#[inline]
pub(crate) fn cookies(target: Target, pin: Option<&str>, mut each: impl FnMut(fmt::Arguments<'_>)) {
    if let Some(position) = target.set_position {
        each(format_args!(
            "{POSITION_COOKIE}={}; Path=/; Max-Age={POSITION_MAX_AGE}; HttpOnly; SameSite=Lax",
            position.get()
        ));
    }
    if let Some(id) = pin {
        each(format_args!(
            "{INSTANCE_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax"
        ));
    }
}

/// The text of a 403: which callers the route accepts and what to do.
pub(crate) fn forbidden_hint(
    snapshot: &Snapshot,
    route_index: RouteIndex,
    reason: Forbidden,
    token: Option<&str>,
    address: Option<IpAddr>,
) -> String {
    let Some(route) = snapshot.table.route(route_index) else {
        return "forbidden\n".to_owned();
    };
    let allowed = route
        .callers()
        .map(|c| c.iter().map(|s| &**s).collect::<Vec<_>>().join(", "))
        .unwrap_or_default();
    let allowed = if allowed.is_empty() {
        "none".to_owned()
    } else {
        allowed
    };
    let app = route
        .app()
        .map_or_else(String::new, |app| format!(" of app {app}"));
    match reason {
        Forbidden::NoCredential => format!(
            "route {}{app} only accepts known callers ({allowed}); call through the internal listener with proxy credentials, HTTP_PROXY=http://<service>:<token>@<internal-address>, or from a container of the app ({} is no known caller's address)\n",
            route.id(),
            address.map_or_else(|| "the source".to_owned(), |a| a.to_string()),
        ),
        Forbidden::UnknownCredential => format!(
            "the proxy credential is not known to this router; route {}{app} accepts callers: {allowed} (HTTP_PROXY=http://<service>:<token>@<internal-address>)\n",
            route.id()
        ),
        Forbidden::NotAllowed => {
            let caller = snapshot
                .table
                .identify(token, address)
                .map_or("this caller", |c| &**c.service());
            format!(
                "service {caller} may not call {}{app}; add it to external_links of {caller} (allowed callers: {allowed})\n",
                route.id()
            )
        }
        Forbidden::OtherApp => {
            let caller = snapshot
                .table
                .identify(token, address)
                .map_or_else(|| "this caller".to_owned(), |c| c.to_string());
            format!(
                "service {caller} may not call {}{app}: apps are isolated, only services of the route's own app may call it; to call it, deploy the caller in the same template (app) and list the host in its external_links\n",
                route.id()
            )
        }
    }
}

/// One line of `turnout::access` for a forwarded request.
pub(crate) fn access_log(
    route: &str,
    service: &str,
    instance: &str,
    method: &str,
    path: &str,
    status: u16,
    started: Instant,
) {
    tracing::info!(
        target: "turnout::access",
        route,
        service,
        instance,
        method,
        path,
        status,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
    );
}

#[cfg(test)]
mod tests {
    use turnout_routing::{Position, Via};

    use super::*;

    #[test]
    fn idempotent_methods_of_rfc_9110() {
        for method in ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"] {
            assert!(idempotent(method), "{method}");
            assert!(idempotent(
                http::Method::from_bytes(method.as_bytes())
                    .unwrap()
                    .as_str()
            ));
        }
        for method in ["POST", "PATCH", "CONNECT", "get", "PROPFIND"] {
            assert!(!idempotent(method), "{method}");
        }
    }

    fn target(pinned: Option<u32>, set_pin: bool, position: Option<u32>) -> Target {
        Target {
            service: 0,
            pinned,
            via: Via::Weighted,
            set_pin,
            set_position: position.and_then(Position::new),
        }
    }

    #[test]
    fn pin_follows_the_instance_that_answered() {
        assert_eq!(pin(target(None, false, None), 1, "i1"), None);
        assert_eq!(pin(target(None, true, None), 1, "i1"), Some("i1"));
        assert_eq!(pin(target(Some(1), false, None), 1, "i1"), None);
        assert_eq!(pin(target(Some(0), false, None), 1, "i1"), Some("i1"));
    }

    #[test]
    fn cookie_values() {
        let mut values = Vec::new();
        cookies(target(None, false, Some(7)), Some("web-1"), |v| {
            values.push(v.to_string());
        });
        assert_eq!(
            values,
            [
                format!("{POSITION_COOKIE}=7; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"),
                format!("{INSTANCE_COOKIE}=web-1; Path=/; HttpOnly; SameSite=Lax"),
            ]
        );
        let mut none = 0;
        cookies(target(None, false, None), None, |_| none += 1);
        assert_eq!(none, 0);
    }
}
