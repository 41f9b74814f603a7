//! Upstream response heads on the fast path: read (1xx passed on),
//! parsed, their framing found (RFC 9112 §6.3) and the client's head
//! rewritten in the same pass.

use std::io;
use std::mem::MaybeUninit;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use turnout_routing::Target;

use crate::dispatch;
use crate::hop::{self, Hop, Token};

use super::READ_CHUNK;
use super::conn::spare;
use super::request::parse_decimal;

/// Largest response head accepted from an upstream.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Most header fields read from an upstream's response head.
const MAX_RESPONSE_HEADERS: usize = 128;

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes; the client connection closes after it.
    Close,
}

/// The parts of an upstream response head the proxy acts on.
#[derive(Debug, Clone, Copy)]
pub(super) struct ResponseHead {
    pub(super) status: u16,
    /// Bytes of the head in the response buffer (the body follows).
    pub(super) len: usize,
    pub(super) framing: Framing,
    /// The upstream keeps the connection open after this response.
    pub(super) keep_alive: bool,
}

pub(super) enum HeadError {
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
pub(super) async fn read_response_head(
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
pub(super) fn write_cookies(out: &mut Vec<u8>, target: Target, pin: Option<&str>) {
    use std::io::Write;
    dispatch::cookies(target, pin, |value| {
        out.extend_from_slice(b"set-cookie: ");
        let _ = out.write_fmt(value);
        out.extend_from_slice(b"\r\n");
    });
}

#[cfg(test)]
mod tests {
    use super::*;

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
