//! Who is calling: the connection a request came in on, the proxy
//! credential a caller sends, and the forwarding headers the proxy writes
//! about it — for the fast path ([`crate::h1`]), the hyper path
//! ([`crate::forward`]) and egress ([`crate::egress`]) alike.

use std::net::{IpAddr, SocketAddr};

use base64::Engine;
use http::HeaderValue;
use turnout_routing::Listener;

/// `X-Forwarded-For`: the client addresses, the proxy's peer last.
pub(crate) const X_FORWARDED_FOR: &str = "x-forwarded-for";
/// `X-Forwarded-Proto`: `http` or `https`, as the client connected.
pub(crate) const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
/// `X-Forwarded-Host`: the host the client asked for.
pub(crate) const X_FORWARDED_HOST: &str = "x-forwarded-host";

/// The connection a request came in on.
#[derive(Debug, Clone)]
pub(crate) struct ConnInfo {
    pub listener: Listener,
    pub peer: SocketAddr,
    pub tls: bool,
    /// The peer's IP as a header value, built once per connection for
    /// `X-Forwarded-For`.
    pub peer_ip: Option<HeaderValue>,
}

impl ConnInfo {
    pub fn new(listener: Listener, peer: SocketAddr, tls: bool) -> ConnInfo {
        ConnInfo {
            listener,
            peer,
            tls,
            peer_ip: HeaderValue::from_str(&peer.ip().to_string()).ok(),
        }
    }

    /// On the internal listener, the address the caller is known by when
    /// it sends no proxy credential (`caller_addresses`: a container's
    /// address on its app's network); an IPv4 peer of a dual-stack socket
    /// as its IPv4 address. `None` on the public listener.
    pub fn caller_address(&self) -> Option<IpAddr> {
        match self.listener {
            Listener::Internal => Some(self.peer.ip().to_canonical()),
            Listener::Public => None,
        }
    }
}

/// The proxy credential of `Proxy-Authorization: Basic`: the password, or
/// the user name when the password is empty. Callers are given
/// `HTTP_PROXY=http://<service>:<token>@...`, for which every common client
/// sends `base64("<service>:<token>")` (Python's `requests` and `urllib`
/// send nothing for a user without a password); curl's
/// `-x http://<token>@...` sends `base64("<token>:")`. The fast path and
/// the hyper path both read it here.
pub(crate) fn proxy_token(value: &[u8]) -> Option<String> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let mut text = String::from_utf8(decoded).ok()?;
    // In place: the one allocation is the decoding's.
    if let Some(colon) = text.find(':') {
        if colon + 1 < text.len() {
            text.drain(..=colon);
        } else {
            text.truncate(colon);
        }
    }
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_token_reads_the_password_or_else_the_user_name() {
        let basic = |credentials: &str| {
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            proxy_token(format!("Basic {encoded}").as_bytes())
        };
        // HTTP_PROXY=http://<service>:<token>@...: the password.
        assert_eq!(basic("web-v1:tok-1f3a").as_deref(), Some("tok-1f3a"));
        // A password may hold ':' itself; the user name never does.
        assert_eq!(basic("web-v1:tok:x").as_deref(), Some("tok:x"));
        // curl -x http://<token>@...: the user name, password empty.
        assert_eq!(basic("tok-1f3a:").as_deref(), Some("tok-1f3a"));
        assert_eq!(basic("tok-1f3a").as_deref(), Some("tok-1f3a"));
        assert_eq!(basic(":tok-1f3a").as_deref(), Some("tok-1f3a"));
        // Nothing to go by.
        assert_eq!(basic(":"), None);
        assert_eq!(basic(""), None);
        let encoded = base64::engine::general_purpose::STANDARD.encode("a:b");
        assert_eq!(
            proxy_token(format!("  basic  {encoded} ").as_bytes()).as_deref(),
            Some("b")
        );
        assert_eq!(proxy_token(b"Bearer x"), None);
        assert_eq!(proxy_token(b"Basic not*base64"), None);
        assert_eq!(proxy_token(b"Basic"), None);
        let not_utf8 = base64::engine::general_purpose::STANDARD.encode([b'a', b':', 0xff]);
        assert_eq!(proxy_token(format!("Basic {not_utf8}").as_bytes()), None);
    }
}
