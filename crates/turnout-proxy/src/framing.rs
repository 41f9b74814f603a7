//! Follows the HTTP/1.1 framing of the requests a client sends, to find
//! request heads that carry both `Transfer-Encoding` and `Content-Length`.
//!
//! hyper resolves such a head the RFC 9112 §6.3 way (`Transfer-Encoding`
//! wins) and drops `Content-Length` before the service sees the request,
//! so the service cannot refuse it by looking at the headers. This reads
//! the same bytes hyper reads, head by head, skipping bodies by their
//! framing, and reports the index of the first ambiguous head on the
//! connection. It keeps no buffer: every state is a few integers.
//!
//! It is a witness, not a parser hyper depends on: on anything it does not
//! expect (an HTTP/2 preface, an upgraded connection's bytes, a malformed
//! head that hyper refuses anyway) it stops following and reports nothing
//! more, so it can miss an ambiguous head after such bytes but never flags
//! a head that is not one.

/// Most bytes of one request head followed; hyper refuses larger heads.
const MAX_HEAD_BYTES: usize = 1 << 20;

const CONTENT_LENGTH: &[u8] = b"content-length";
const TRANSFER_ENCODING: &[u8] = b"transfer-encoding";
const CHUNKED: &[u8] = b"chunked";

/// Where in the byte stream the follower is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a request line; empty lines are skipped (RFC 9112 §2.2).
    HeadStart,
    /// In the request line; `pos` bytes read.
    RequestLine { pos: usize, pri: bool },
    /// At the start of a header line, or of the empty line ending the head.
    LineStart,
    /// After the CR of the empty line.
    HeadEndLf,
    /// In a field name; `pos` bytes read, and whether it can still be one
    /// of the two framing fields.
    Name { pos: usize, cl: bool, te: bool },
    /// In a field value.
    Value(Field),
    /// In a body of known length: bytes left.
    Body(u64),
    /// In a chunk-size line: the size so far.
    ChunkSize { size: u64, digits: bool },
    /// In a chunk extension, up to the end of the line.
    ChunkExt { size: u64 },
    /// After the CR of a chunk-size line.
    ChunkSizeLf { size: u64 },
    /// In chunk data: bytes left.
    ChunkData(u64),
    /// After chunk data: its CR.
    ChunkDataCr,
    /// After chunk data: its LF.
    ChunkDataLf,
    /// After the last chunk: at the start of a trailer line.
    TrailerLineStart,
    /// In a trailer line.
    TrailerLine,
    /// After the CR of the empty line ending the trailers.
    TrailerEndLf,
    /// Not following any more.
    Lost,
}

/// Which field a value belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    ContentLength,
    TransferEncoding,
    Other,
}

/// The framing fields of the head being read.
#[derive(Debug, Clone, Copy, Default)]
struct Head {
    bytes: usize,
    content_length: Option<u64>,
    /// A `Content-Length` value that is not a number, or two that differ:
    /// hyper refuses the request.
    content_length_invalid: bool,
    transfer_encoding: bool,
    /// Whether the last `Transfer-Encoding` line ends in `chunked`, the
    /// way hyper decides.
    chunked: bool,
    /// The value being read: digits of a length, or how much of `chunked`
    /// the current coding matched.
    value: Value,
}

#[derive(Debug, Clone, Copy, Default)]
struct Value {
    number: u64,
    digits: bool,
    /// Bytes of `chunked` matched by the current coding.
    matched: usize,
    /// The current coding differs from `chunked`, or a number has junk.
    mismatch: bool,
    started: bool,
    ended: bool,
}

/// Follows one connection's request framing.
#[derive(Debug)]
pub(crate) struct RequestFraming {
    state: State,
    head: Head,
    /// Heads read to the end so far.
    heads: u64,
    ambiguous: Option<u64>,
}

impl Default for RequestFraming {
    fn default() -> Self {
        RequestFraming {
            state: State::HeadStart,
            head: Head::default(),
            heads: 0,
            ambiguous: None,
        }
    }
}

impl RequestFraming {
    /// Whether it still follows the connection (bytes are worth feeding).
    pub fn following(&self) -> bool {
        self.state != State::Lost
    }

    /// The index (0 for the connection's first request) of the first head
    /// seen with both `Transfer-Encoding` and `Content-Length`.
    pub fn first_ambiguous(&self) -> Option<u64> {
        self.ambiguous
    }

    /// Reads the next bytes the client sent.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while let Some((&byte, rest)) = bytes.split_first() {
            match self.state {
                State::Lost => return,
                State::Body(left) => {
                    let take = left.min(bytes.len() as u64);
                    bytes = &bytes[take as usize..];
                    self.state = if take == left {
                        State::HeadStart
                    } else {
                        State::Body(left - take)
                    };
                    continue;
                }
                State::ChunkData(left) => {
                    let take = left.min(bytes.len() as u64);
                    bytes = &bytes[take as usize..];
                    self.state = if take == left {
                        State::ChunkDataCr
                    } else {
                        State::ChunkData(left - take)
                    };
                    continue;
                }
                _ => {}
            }
            // Runs of bytes that change nothing but the head's size (the
            // rest of a request line, a field that is not a framing field)
            // are skipped in one step; the byte that ends the run goes
            // through `byte` as usual.
            let run = self.skippable(bytes);
            if run > 0 {
                self.head.bytes += run;
                if self.head.bytes > MAX_HEAD_BYTES {
                    self.state = State::Lost;
                    return;
                }
                bytes = &bytes[run..];
                continue;
            }
            self.byte(byte);
            bytes = rest;
        }
    }

    fn byte(&mut self, byte: u8) {
        if self.in_head() {
            self.head.bytes += 1;
            if self.head.bytes > MAX_HEAD_BYTES {
                self.state = State::Lost;
                return;
            }
        }
        self.state = match self.state {
            State::HeadStart => match byte {
                b'\r' | b'\n' => State::HeadStart,
                b if is_tchar(b) => {
                    self.head = Head {
                        bytes: 1,
                        ..Head::default()
                    };
                    State::RequestLine {
                        pos: 1,
                        pri: b == b'P',
                    }
                }
                _ => State::Lost,
            },
            State::RequestLine { pos, pri } => match byte {
                b'\n' => State::LineStart,
                // The HTTP/2 preface starts `PRI * HTTP/2.0`.
                _ if pri && pos == 3 && byte == b' ' => State::Lost,
                _ => State::RequestLine {
                    pos: pos + 1,
                    pri: pri && pos < 3 && byte == b"PRI"[pos],
                },
            },
            State::LineStart => match byte {
                b'\r' => State::HeadEndLf,
                b'\n' => self.end_head(),
                b' ' | b'\t' => State::Lost, // obsolete line folding
                _ => self.name(0, true, true, byte),
            },
            State::HeadEndLf => match byte {
                b'\n' => self.end_head(),
                _ => State::Lost,
            },
            State::Name { pos, cl, te } => match byte {
                b':' => {
                    self.head.value = Value::default();
                    State::Value(if cl && pos == CONTENT_LENGTH.len() {
                        Field::ContentLength
                    } else if te && pos == TRANSFER_ENCODING.len() {
                        Field::TransferEncoding
                    } else {
                        Field::Other
                    })
                }
                b'\r' | b'\n' => State::Lost,
                _ => self.name(pos, cl, te, byte),
            },
            State::Value(field) => match byte {
                b'\n' => {
                    self.end_value(field);
                    State::LineStart
                }
                b'\r' => State::Value(field),
                _ => {
                    self.value_byte(field, byte);
                    State::Value(field)
                }
            },
            State::ChunkSize { size, digits } => match byte {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    match size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(u64::from(hex(byte))))
                    {
                        Some(size) => State::ChunkSize { size, digits: true },
                        None => State::Lost,
                    }
                }
                _ if !digits => State::Lost,
                b';' | b' ' | b'\t' => State::ChunkExt { size },
                b'\r' => State::ChunkSizeLf { size },
                b'\n' => end_chunk_size(size),
                _ => State::Lost,
            },
            State::ChunkExt { size } => match byte {
                b'\r' => State::ChunkSizeLf { size },
                b'\n' => end_chunk_size(size),
                _ => State::ChunkExt { size },
            },
            State::ChunkSizeLf { size } => match byte {
                b'\n' => end_chunk_size(size),
                _ => State::Lost,
            },
            State::ChunkDataCr => match byte {
                b'\r' => State::ChunkDataLf,
                b'\n' => State::ChunkSize {
                    size: 0,
                    digits: false,
                },
                _ => State::Lost,
            },
            State::ChunkDataLf => match byte {
                b'\n' => State::ChunkSize {
                    size: 0,
                    digits: false,
                },
                _ => State::Lost,
            },
            State::TrailerLineStart => match byte {
                b'\r' => State::TrailerEndLf,
                b'\n' => State::HeadStart,
                _ => State::TrailerLine,
            },
            State::TrailerLine => match byte {
                b'\n' => State::TrailerLineStart,
                _ => State::TrailerLine,
            },
            State::TrailerEndLf => match byte {
                b'\n' => State::HeadStart,
                _ => State::Lost,
            },
            // Handled in `feed`.
            State::Body(_) | State::ChunkData(_) | State::Lost => State::Lost,
        };
    }

    /// How many of `bytes`, from the start, leave the state as it is and
    /// only count towards the head's size: the rest of a request line
    /// (past `PRI`), a value of a field other than the framing fields, a
    /// name that can no longer be one of them.
    fn skippable(&self, bytes: &[u8]) -> usize {
        let run = match self.state {
            State::RequestLine { pos, pri } if pos > 3 || !pri => {
                bytes.iter().position(|&b| b == b'\n')
            }
            State::Value(Field::Other) => bytes.iter().position(|&b| b == b'\n'),
            State::Name {
                cl: false,
                te: false,
                ..
            } => bytes
                .iter()
                .position(|&b| matches!(b, b':' | b'\r' | b'\n')),
            _ => Some(0),
        };
        run.unwrap_or(bytes.len())
    }

    fn in_head(&self) -> bool {
        matches!(
            self.state,
            State::RequestLine { .. }
                | State::LineStart
                | State::HeadEndLf
                | State::Name { .. }
                | State::Value(_)
        )
    }

    fn name(&mut self, pos: usize, cl: bool, te: bool, byte: u8) -> State {
        let lower = byte.to_ascii_lowercase();
        State::Name {
            pos: pos + 1,
            cl: cl && CONTENT_LENGTH.get(pos) == Some(&lower),
            te: te && TRANSFER_ENCODING.get(pos) == Some(&lower),
        }
    }

    fn value_byte(&mut self, field: Field, byte: u8) {
        let value = &mut self.head.value;
        match field {
            Field::Other => {}
            Field::ContentLength => match byte {
                b' ' | b'\t' => value.ended |= value.digits,
                b'0'..=b'9' if !value.ended => {
                    match value
                        .number
                        .checked_mul(10)
                        .and_then(|n| n.checked_add(u64::from(byte - b'0')))
                    {
                        Some(n) => {
                            value.number = n;
                            value.digits = true;
                        }
                        None => value.mismatch = true,
                    }
                }
                _ => value.mismatch = true,
            },
            Field::TransferEncoding => match byte {
                b',' => {
                    *value = Value::default();
                }
                b' ' | b'\t' => value.ended |= value.started,
                _ => {
                    value.started = true;
                    if value.ended || CHUNKED.get(value.matched) != Some(&byte.to_ascii_lowercase())
                    {
                        value.mismatch = true;
                    } else {
                        value.matched += 1;
                    }
                }
            },
        }
    }

    fn end_value(&mut self, field: Field) {
        let value = self.head.value;
        match field {
            Field::Other => {}
            Field::ContentLength => {
                let number = (!value.mismatch && value.digits).then_some(value.number);
                match (self.head.content_length, number) {
                    (None, Some(n)) => self.head.content_length = Some(n),
                    (Some(before), Some(n)) if before == n => {}
                    // Not a number, or two that differ: hyper refuses the
                    // request. It still has a length field, which makes it
                    // ambiguous next to Transfer-Encoding.
                    (before, _) => {
                        self.head.content_length_invalid = true;
                        self.head.content_length = Some(before.unwrap_or(0));
                    }
                }
            }
            Field::TransferEncoding => {
                self.head.transfer_encoding = true;
                self.head.chunked = !value.mismatch && value.matched == CHUNKED.len();
            }
        }
    }

    /// The empty line after the fields: note an ambiguous head, then skip
    /// its body the way hyper frames it.
    fn end_head(&mut self) -> State {
        let index = self.heads;
        self.heads += 1;
        let head = self.head;
        if head.transfer_encoding && head.content_length.is_some() && self.ambiguous.is_none() {
            self.ambiguous = Some(index);
        }
        if head.transfer_encoding {
            if head.chunked {
                State::ChunkSize {
                    size: 0,
                    digits: false,
                }
            } else {
                // hyper refuses it and closes the connection.
                State::Lost
            }
        } else if head.content_length_invalid {
            State::Lost
        } else {
            match head.content_length {
                Some(n) if n > 0 => State::Body(n),
                _ => State::HeadStart,
            }
        }
    }
}

fn end_chunk_size(size: u64) -> State {
    if size == 0 {
        State::TrailerLineStart
    } else {
        State::ChunkData(size)
    }
}

fn hex(byte: u8) -> u8 {
    match byte {
        b'0'..=b'9' => byte - b'0',
        b'a'..=b'f' => byte - b'a' + 10,
        _ => byte - b'A' + 10,
    }
}

/// A token character (RFC 9110 §5.6.2), what a method starts with.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` whole, then split at every position, byte by byte,
    /// and checks all agree.
    fn first_ambiguous(input: &[u8]) -> Option<u64> {
        let mut whole = RequestFraming::default();
        whole.feed(input);
        for split in 0..=input.len() {
            let mut parts = RequestFraming::default();
            parts.feed(&input[..split]);
            parts.feed(&input[split..]);
            assert_eq!(
                parts.first_ambiguous(),
                whole.first_ambiguous(),
                "split at {split}"
            );
        }
        let mut bytes = RequestFraming::default();
        for b in input {
            bytes.feed(std::slice::from_ref(b));
        }
        assert_eq!(bytes.first_ambiguous(), whole.first_ambiguous());
        whole.first_ambiguous()
    }

    #[test]
    fn plain_requests_are_not_ambiguous() {
        assert_eq!(
            first_ambiguous(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n"),
            None
        );
        assert_eq!(
            first_ambiguous(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
            None
        );
    }

    #[test]
    fn skipped_runs_end_where_the_byte_path_would() {
        // Names that start like a framing field, or stop matching one, are
        // skipped to their colon; request lines past `PRI` to their end.
        assert_eq!(
            first_ambiguous(
                b"PRIX / HTTP/1.1\r\nX-Content-Length: 4\r\nContent-Lengthy: 1\r\nTransfer-Encodings: chunked\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            Some(1)
        );
        // A name that ends in CR or LF loses the connection, as before.
        let mut lost = RequestFraming::default();
        lost.feed(b"GET / HTTP/1.1\r\nX-Name\r\n");
        assert!(!lost.following());
    }

    #[test]
    fn both_framings_are_ambiguous_in_either_order() {
        assert_eq!(
            first_ambiguous(
                b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
            ),
            Some(0)
        );
        assert_eq!(
            first_ambiguous(
                b"POST / HTTP/1.1\r\ntransfer-encoding: CHUNKED\r\nCONTENT-LENGTH: 4\r\n\r\n0\r\n\r\n"
            ),
            Some(0)
        );
        // A Content-Length that is not a number counts too.
        assert_eq!(
            first_ambiguous(
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n0\r\n\r\n"
            ),
            Some(0)
        );
    }

    #[test]
    fn bodies_are_skipped_so_only_real_heads_count() {
        let fake = b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n";
        let mut input =
            format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", fake.len()).into_bytes();
        input.extend_from_slice(fake);
        // Chunked, with an extension, a fake head as data, and a trailer.
        input.extend_from_slice(
            format!(
                "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n{:x};ext=1\r\n",
                fake.len()
            )
            .as_bytes(),
        );
        input.extend_from_slice(fake);
        input.extend_from_slice(b"\r\n0\r\nx-trailer: 1\r\n\r\n");
        assert_eq!(first_ambiguous(&input), None);
        input.extend_from_slice(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        input.extend_from_slice(
            b"POST / HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        );
        assert_eq!(first_ambiguous(&input), Some(3));
    }

    #[test]
    fn stops_following_what_is_not_http1() {
        let mut framing = RequestFraming::default();
        framing.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert!(!framing.following());
        framing.feed(b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(framing.first_ambiguous(), None);

        // An upgraded connection's first bytes (a WebSocket frame).
        let mut framing = RequestFraming::default();
        framing
            .feed(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\x81\x84");
        assert!(!framing.following());

        // A head hyper refuses.
        let mut framing = RequestFraming::default();
        framing.feed(b"GET / HTTP/1.1\r\nBad header\r\n\r\n");
        assert!(!framing.following());
    }

    #[test]
    fn a_method_starting_like_pri_is_followed() {
        assert_eq!(
            first_ambiguous(b"PRIX / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            Some(1)
        );
    }
}
