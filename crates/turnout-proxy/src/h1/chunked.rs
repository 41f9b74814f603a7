//! Where a chunked response body ends, followed over the bytes as they
//! pass.

use std::io;

/// Finds where a chunked body ends (after the last chunk and the
/// trailers), over the bytes as they come, without copying them.
#[derive(Debug, Default)]
pub(super) struct ChunkedEnd {
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
    pub(super) fn feed(&mut self, bytes: &[u8]) -> io::Result<Option<usize>> {
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
}
