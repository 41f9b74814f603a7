//! Host normalisation: the one place that decides which spelling of a host
//! names a route.

use http::header::HOST;
use http::{HeaderMap, Uri};

/// Longest host name the router looks up; longer ones are unknown hosts.
pub const MAX_HOST_LEN: usize = 255;

/// The host a request is for: the authority of an absolute-form URI wins
/// over the `Host` header (RFC 9112 §3.2.2), which is what forward-proxy
/// clients and HTTP/2 (`:authority`) send.
pub fn request_host<'r>(uri: &'r Uri, headers: &'r HeaderMap) -> Option<&'r str> {
    if let Some(authority) = uri.authority() {
        return Some(authority.as_str());
    }
    headers.get(HOST).and_then(|h| h.to_str().ok())
}

/// The canonical spelling of `raw`: userinfo and port stripped, one
/// trailing dot removed, ASCII lowercased (written into `buf` when `raw`
/// has capitals; a slice of `raw` otherwise, the usual case). Returns
/// `None` for an empty or overlong host. No allocation.
pub fn normalize_host<'h>(raw: &'h str, buf: &'h mut [u8; MAX_HOST_LEN]) -> Option<&'h str> {
    // Byte scans from the end rather than `rsplit_once`: hosts are short,
    // and this runs for every request.
    let bytes = raw.as_bytes();
    // An authority may carry `user@`; the host is what follows the last `@`.
    let start = bytes
        .iter()
        .rposition(|&b| b == b'@')
        .map_or(0, |at| at + 1);
    let rest = &bytes[start..];
    let end = if rest.first() == Some(&b'[') {
        // IPv6 literal: keep the brackets, drop what follows `]`.
        start + rest.iter().position(|&b| b == b']')? + 1
    } else {
        match rest.iter().rposition(|&b| b == b':') {
            Some(colon) if rest[colon + 1..].iter().all(u8::is_ascii_digit) => start + colon,
            Some(_) => return None,
            None => bytes.len(),
        }
    };
    // The cuts are at ASCII bytes, so on character boundaries.
    let host = raw.get(start..end)?;
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host.len() > MAX_HOST_LEN {
        return None;
    }
    if !host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(host);
    }
    let out = &mut buf[..host.len()];
    out.copy_from_slice(host.as_bytes());
    out.make_ascii_lowercase();
    // Lowercasing ASCII keeps UTF-8 valid, so this never fails.
    std::str::from_utf8(out).ok()
}

/// Whether `path` lies under the context path `prefix` on a segment
/// boundary: `/ctx` serves `/ctx` and `/ctx/a`, not `/ctxa`.
pub(crate) fn path_under(path: &str, prefix: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Option<String> {
        let mut buf = [0u8; MAX_HOST_LEN];
        normalize_host(raw, &mut buf).map(str::to_owned)
    }

    #[test]
    fn strips_port_dot_and_case() {
        assert_eq!(norm("App.LocalHost:8080").as_deref(), Some("app.localhost"));
        assert_eq!(norm("app.localhost.").as_deref(), Some("app.localhost"));
        assert_eq!(norm("app.localhost.:80").as_deref(), Some("app.localhost"));
        assert_eq!(
            norm("user@app.localhost:80").as_deref(),
            Some("app.localhost")
        );
        assert_eq!(norm("[::1]:8080").as_deref(), Some("[::1]"));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(norm(""), None);
        assert_eq!(norm(":80"), None);
        assert_eq!(norm("a:b"), None);
        assert_eq!(norm(&"a".repeat(300)), None);
    }

    #[test]
    fn absolute_form_wins() {
        let uri: Uri = "http://servicea.local/x".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(HOST, "other.localhost".parse().unwrap());
        assert_eq!(request_host(&uri, &headers), Some("servicea.local"));
        let origin: Uri = "/x".parse().unwrap();
        assert_eq!(request_host(&origin, &headers), Some("other.localhost"));
    }

    #[test]
    fn context_paths_on_segment_boundaries() {
        assert!(path_under("/anything", "/"));
        assert!(path_under("/ctx", "/ctx"));
        assert!(path_under("/ctx/a", "/ctx"));
        assert!(!path_under("/ctxa", "/ctx"));
        assert!(!path_under("/", "/ctx"));
    }
}
