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
//!
//! By concern: `conn` (the connection loop and its clock), `request`
//! (request heads: parse, route, the upstream head), `forward` (attempts
//! and the response body), `response` (response heads: parse, framing,
//! rewrite), `chunked` (where a chunked body ends). The routing decision
//! and retry rules are `crate::dispatch`'s, the hop-by-hop list
//! `crate::hop`'s, shared with the hyper path.

mod chunked;
mod conn;
mod forward;
mod request;
mod response;

pub(crate) use conn::{Ended, serve};

/// Bytes a connection reads at a time.
pub(super) const READ_CHUNK: usize = 4096;
