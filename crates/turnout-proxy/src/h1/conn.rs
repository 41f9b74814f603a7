//! A client connection's loop on the fast path: read heads, hand each
//! request on, keep one lazily moved timer (`Clock`) for `header_read`,
//! `client_idle` and `upstream_response`, and the per-thread spare
//! buffers.

use std::future::Future;
use std::io;
use std::task::Poll;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::caller::ConnInfo;
use crate::shared::Shared;

use super::READ_CHUNK;
use super::forward::forward;
use super::request::{Step, prepare};

/// How a client connection left the fast path.
pub(crate) enum Ended {
    /// It is finished (closed by either side, timed out, or the proxy is
    /// stopping).
    Closed,
    /// The next request is not one for the fast path: hyper serves the
    /// connection from here, starting with these bytes already read.
    Handoff(Vec<u8>),
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
pub(super) struct Clock<'s> {
    sleep: std::pin::Pin<&'s mut tokio::time::Sleep>,
    at: tokio::time::Instant,
}

impl Clock<'_> {
    pub(super) fn set(&mut self, at: tokio::time::Instant) {
        if at < self.sleep.deadline() {
            self.sleep.as_mut().reset(at);
        }
        self.at = at;
    }

    /// Completes once the deadline set last has passed.
    pub(super) async fn fired(&mut self) {
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
pub(super) struct Conn {
    pub(super) buf: Vec<u8>,
    pub(super) upstream_head: Vec<u8>,
    pub(super) response: Vec<u8>,
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
pub(super) mod spare {
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

/// A response from the proxy itself.
pub(super) async fn write_local(
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
