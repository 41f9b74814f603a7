//! One client connection: what the proxy learns from its bytes that hyper
//! does not pass on with each request, and its idle clock. The bytes go
//! through [`ClientIo`], which follows the connection's request framing and
//! notes when a request head starts; requests read the framing outcome
//! from the shared [`ConnState`] and hold an [`InProgress`] while they run.
//! The connection's task asks [`ConnState::check`] when to close it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use http::Version;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::config::Timeouts;
use crate::framing::RequestFraming;

/// No request index, no time: nothing seen.
const NONE: u64 = u64::MAX;

/// What requests on one connection share. One allocation per connection;
/// a request only touches its atomics.
#[derive(Debug)]
pub(crate) struct ConnState {
    /// Requests dispatched on the connection so far.
    requests: AtomicU64,
    /// Index of the first request whose head carried both
    /// `Transfer-Encoding` and `Content-Length`, or [`NONE`].
    ambiguous: AtomicU64,
    /// When the connection was accepted; the times below are milliseconds
    /// since then.
    epoch: Instant,
    /// Requests whose response is not finished.
    in_progress: AtomicUsize,
    /// When `in_progress` last dropped to 0.
    idle_since: AtomicU64,
    /// When the first byte of the next request head arrived, or [`NONE`]
    /// while no head is being read. 0 at first: a new connection must send
    /// its first head within the head timeout.
    head_since: AtomicU64,
    /// Set by the first HTTP/2 request: bytes between HTTP/2 requests are
    /// frames (pings, window updates), not the start of a head.
    http2: AtomicBool,
}

/// When a connection's task should act.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Nothing to do before this time.
    Wait(Instant),
    /// No request for `client_idle`: close gracefully (HTTP/2 `GOAWAY`).
    Idle,
    /// A request head took longer than `header_read`: drop the connection.
    SlowHead,
}

impl ConnState {
    pub fn new() -> Arc<ConnState> {
        Arc::new(ConnState {
            requests: AtomicU64::new(0),
            ambiguous: AtomicU64::new(NONE),
            epoch: Instant::now(),
            in_progress: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            http2: AtomicBool::new(false),
        })
    }

    /// Counts a request dispatched on the connection. hyper dispatches
    /// HTTP/1.1 requests one at a time in the order of their heads, so the
    /// guard's index is the head's. The connection is not idle while the
    /// guard lives.
    pub fn begin_request(self: &Arc<Self>, version: Version) -> InProgress {
        if version == Version::HTTP_2 {
            self.http2.store(true, Ordering::Relaxed);
        }
        self.in_progress.fetch_add(1, Ordering::Relaxed);
        self.head_since.store(NONE, Ordering::Relaxed);
        InProgress {
            index: self.requests.fetch_add(1, Ordering::Relaxed),
            state: self.clone(),
        }
    }

    /// Whether the head of request `index`, or of an earlier one, carried
    /// both framings. The head's bytes were read (and followed) before
    /// hyper dispatched the request, in the same connection task.
    pub fn ambiguous(&self, index: u64) -> bool {
        self.ambiguous.load(Ordering::Relaxed) <= index
    }

    /// What the connection's task should do at `now`. A connection with a
    /// request in progress is never closed here; one reading a head gets
    /// `header_read` from the head's first byte; otherwise it may idle for
    /// `client_idle` since its last response ended.
    pub fn check(&self, now: Instant, timeouts: &Timeouts) -> Check {
        let at = |ms: u64| self.epoch + Duration::from_millis(ms);
        // A head can only start, and idling only begin, after now: this is
        // the earliest either could expire.
        let soonest = now + timeouts.client_idle.min(timeouts.header_read);
        if self.in_progress.load(Ordering::Acquire) > 0 {
            return Check::Wait(soonest);
        }
        let head_since = self.head_since.load(Ordering::Relaxed);
        if head_since != NONE {
            let deadline = at(head_since) + timeouts.header_read;
            return if now >= deadline {
                Check::SlowHead
            } else {
                Check::Wait(deadline)
            };
        }
        let deadline = at(self.idle_since.load(Ordering::Relaxed)) + timeouts.client_idle;
        if now >= deadline {
            Check::Idle
        } else {
            // A head may start meanwhile without waking the task; looking
            // again within `header_read` bounds how late it is cut.
            Check::Wait(deadline.min(now + timeouts.header_read))
        }
    }

    /// Now, in whole milliseconds since the accept, rounded up so that a
    /// deadline computed from it is never early.
    fn millis(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros().div_ceil(1000)).unwrap_or(NONE - 1)
    }

    /// Bytes arrived: if no request is in progress, they start a head.
    fn bytes_arrived(&self) {
        if self.head_since.load(Ordering::Relaxed) == NONE
            && self.in_progress.load(Ordering::Relaxed) == 0
            && !self.http2.load(Ordering::Relaxed)
        {
            self.head_since.store(self.millis(), Ordering::Relaxed);
        }
    }
}

/// A request in progress on its connection, from dispatch until its
/// response body is dropped (sent, or the client went away).
#[derive(Debug)]
pub(crate) struct InProgress {
    index: u64,
    state: Arc<ConnState>,
}

impl InProgress {
    /// The request's index on its connection (0 for the first).
    pub fn index(&self) -> u64 {
        self.index
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        // Before the count drops, so that a check that reads 0 also reads
        // this time (HTTP/2 streams end on other tasks than the check).
        self.state
            .idle_since
            .fetch_max(self.state.millis(), Ordering::Relaxed);
        self.state.in_progress.fetch_sub(1, Ordering::Release);
    }
}

/// A client connection's byte stream, followed on the way in.
#[derive(Debug)]
pub(crate) struct ClientIo<I> {
    io: I,
    /// Bytes read from `io` before it came here (by the fast path, which
    /// hands a connection over at a request's first byte), read first.
    read: Vec<u8>,
    /// How much of `read` has been passed on.
    passed: usize,
    framing: RequestFraming,
    reported: bool,
    state: Arc<ConnState>,
}

impl<I> ClientIo<I> {
    pub fn new(io: I, state: Arc<ConnState>, read: Vec<u8>) -> ClientIo<I> {
        ClientIo {
            io,
            read,
            passed: 0,
            framing: RequestFraming::default(),
            reported: false,
            state,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for ClientIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        if this.passed < this.read.len() {
            let rest = &this.read[this.passed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.passed += n;
            if this.passed == this.read.len() {
                this.read = Vec::new();
                this.passed = 0;
            }
        } else {
            ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        }
        if buf.filled().len() > before {
            this.state.bytes_arrived();
        }
        if this.framing.following() {
            this.framing.feed(&buf.filled()[before..]);
            if !this.reported
                && let Some(index) = this.framing.first_ambiguous()
            {
                this.reported = true;
                this.state.ambiguous.store(index, Ordering::Relaxed);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for ClientIo<I> {
    crate::write_through::forward_writes!();
}
