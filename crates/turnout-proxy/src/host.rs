//! The client's `Host` field, checked the same way on both paths: the fast
//! path ([`crate::h1`]) hands a request whose `Host` fails here to hyper,
//! and the general path ([`crate::forward`]) refuses it with 400 before
//! anything is routed or forwarded.
//!
//! RFC 9112 §3.2: a server MUST answer 400 to a request with more than one
//! `Host` field line, or with an invalid one. hyper checks neither: it
//! keeps every `Host` line of a head, and a value is any field value.

use http::HeaderMap;
use http::header::HOST;

/// Why a request's `Host` is refused (the body of the 400).
pub(crate) fn problem(headers: &HeaderMap) -> Option<&'static str> {
    let mut hosts = headers.get_all(HOST).iter();
    let first = hosts.next()?;
    if hosts.next().is_some() {
        Some("more than one host field\n")
    } else if !valid(first.as_bytes()) {
        Some("the host field is not a host[:port]\n")
    } else {
        None
    }
}

/// Whether `value` is a `Host` field value: `uri-host [ ":" port ]` (RFC
/// 9110 §7.2), the host being a name, an IPv4 address or a bracketed IPv6
/// literal, and the port at most five digits (RFC 3986 allows it empty).
/// Nothing else: no userinfo (`user@`), path, whitespace or list.
///
/// A name is the unreserved characters of RFC 3986 and percent escapes;
/// its sub-delimiters (`!$&'()*+,;=`) are refused too. No DNS name, and
/// so no route, contains one, and `a,b` is what two `Host` fields folded
/// into one look like. An empty name is allowed (RFC 9112 §3.2: a target
/// without an authority); such a request finds no route.
pub(crate) fn valid(value: &[u8]) -> bool {
    // The usual value is a name, or a name and a port: one scan with a
    // table, since this runs for every request.
    let name_end = value
        .iter()
        .position(|&b| !UNRESERVED[usize::from(b)])
        .unwrap_or(value.len());
    match value.get(name_end) {
        None => true,
        Some(b':') if port(&value[name_end + 1..]) => true,
        Some(_) => valid_otherwise(value.trim_ascii()),
    }
}

/// The rest of the grammar: a bracketed IPv6 literal, percent escapes,
/// whitespace around the value.
fn valid_otherwise(value: &[u8]) -> bool {
    let (host, port_digits) = if let Some(literal) = value.strip_prefix(b"[") {
        let Some(end) = literal.iter().position(|&b| b == b']') else {
            return false;
        };
        let address = &literal[..end];
        if address.is_empty()
            || !address
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match &literal[end + 1..] {
            [] => return true,
            [b':', digits @ ..] => (&[][..], digits),
            _ => return false,
        }
    } else {
        match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon + 1..]),
            None => (value, &[][..]),
        }
    };
    port(port_digits) && name(host)
}

/// A port: at most five digits, at most 65535, or none.
fn port(digits: &[u8]) -> bool {
    digits.len() <= 5
        && digits.iter().all(u8::is_ascii_digit)
        && digits
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'))
            <= 65535
}

/// An RFC 3986 `reg-name` without sub-delimiters (or an IPv4 address,
/// which is one).
fn name(host: &[u8]) -> bool {
    let mut i = 0;
    while i < host.len() {
        match host[i] {
            b if UNRESERVED[usize::from(b)] => i += 1,
            b'%' if host.len() > i + 2
                && host[i + 1].is_ascii_hexdigit()
                && host[i + 2].is_ascii_hexdigit() =>
            {
                i += 3
            }
            _ => return false,
        }
    }
    true
}

/// The unreserved characters of RFC 3986: `ALPHA DIGIT - . _ ~`.
static UNRESERVED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] =
            matches!(b as u8, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~');
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_ports() {
        for good in [
            "app.localhost",
            "APP.LocalHost.",
            "app.localhost:8080",
            "app.localhost:",
            "my_app-1.localhost:65535",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8080",
            "[::ffff:127.0.0.1]",
            "xn--bcher-kva.example",
            "%41pp.localhost",
            "",
            " app.localhost ",
            "app.localhost:80\t",
        ] {
            assert!(valid(good.as_bytes()), "{good:?}");
        }
    }

    #[test]
    fn what_is_not_host_port() {
        for bad in [
            "user@app.localhost",
            "user:secret@app.localhost:80",
            "@app.localhost",
            "app.localhost/x",
            "app.localhost?q",
            "app.localhost#f",
            "app.localhost:80:80",
            "app.localhost:8o",
            "app.localhost:123456",
            "app.localhost:65536",
            "app.localhost,evil.localhost",
            "app.localhost evil.localhost",
            "app.local\thost",
            "app;localhost",
            "app%4",
            "app%zz",
            "[::1",
            "[]",
            "[::1]x",
            "[::1]:x",
            "[v1.x]",
            "[::1%25eth0]",
            "app.lôcalhost",
            "app\\localhost",
        ] {
            assert!(!valid(bad.as_bytes()), "{bad:?}");
        }
        assert!(!valid(b"app\xff"));
    }

    #[test]
    fn one_host_field() {
        let mut headers = HeaderMap::new();
        assert_eq!(problem(&headers), None);
        headers.append(HOST, "app.localhost".parse().unwrap());
        assert_eq!(problem(&headers), None);
        headers.append(HOST, "app.localhost".parse().unwrap());
        assert_eq!(problem(&headers), Some("more than one host field\n"));
        let mut headers = HeaderMap::new();
        headers.append(HOST, "user@app.localhost".parse().unwrap());
        assert_eq!(
            problem(&headers),
            Some("the host field is not a host[:port]\n")
        );
    }
}
