//! Keep-alive HTTP/1.1 connections to upstream instances for the fast
//! path ([`crate::h1`]): opened on demand, pooled per address without a
//! lock, checked for a close by the upstream without a syscall, and cut at
//! the address's drain deadline or at shutdown.

use std::io;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use tokio::net::TcpStream;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::instance::Instance;
use crate::shared::Shared;

/// Most idle connections kept per address; more are closed when they
/// become idle.
const POOL_CAPACITY: usize = 256;

/// What the instances listed at one address share until its drain
/// deadline: the cut signal and the idle connections. An address listed
/// again before its deadline (a rollback) keeps both.
#[derive(Debug, Clone)]
pub(crate) struct Link {
    /// Cancelled at the drain deadline (or shutdown): the connections to
    /// the address, and whatever they carry, are cut.
    pub drained: CancellationToken,
    pub pool: Arc<Pool>,
}

impl Link {
    pub fn new() -> Link {
        Link {
            drained: CancellationToken::new(),
            pool: Arc::new(Pool::default()),
        }
    }
}

/// Idle keep-alive connections to one address, most recently used last.
#[derive(Debug)]
pub(crate) struct Pool {
    idle: ArrayQueue<Upstream>,
}

impl Default for Pool {
    fn default() -> Pool {
        Pool {
            idle: ArrayQueue::new(POOL_CAPACITY),
        }
    }
}

impl Pool {
    /// An idle connection that is still open and has idled less than
    /// `max_idle`, if there is one. Connections the upstream closed (or
    /// wrote to, which a keep-alive upstream never does between requests)
    /// are dropped: the runtime marked them readable when it saw the event,
    /// so the check costs no syscall.
    pub fn take(&self, now: Instant, max_idle: Duration) -> Option<Upstream> {
        let mut cx = Context::from_waker(Waker::noop());
        while let Some(upstream) = self.idle.pop() {
            let fresh = now.saturating_duration_since(upstream.since) < max_idle;
            if fresh && upstream.stream.poll_read_ready(&mut cx).is_pending() {
                return Some(upstream);
            }
        }
        None
    }

    /// Keeps a connection whose last response ended cleanly for the next
    /// request; closes it when the pool is full.
    pub fn put(&self, mut upstream: Upstream) {
        upstream.since = Instant::now();
        let _ = self.idle.push(upstream);
    }
}

/// One connection to an upstream instance.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub stream: TcpStream,
    /// When it was opened or last became idle.
    since: Instant,
    /// Stops the cut watch when the connection is dropped.
    _watch: DropGuard,
}

/// Opens a connection to `instance`, unless its address has been drained.
/// A watch task shuts the socket down at the address's drain deadline or
/// at the proxy's hard stop, which ends any read or write on it.
pub(crate) async fn connect(shared: &Shared, instance: &Instance) -> io::Result<Upstream> {
    let drained = instance.link.drained.clone();
    if drained.is_cancelled() {
        return Err(io::Error::other("the instance has been drained"));
    }
    let stream = while_taking_requests(
        instance,
        tokio::time::timeout(shared.config.timeouts.connect, open(shared, instance.addr)),
    )
    .await?
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    let watch = cut_at_drain(shared, &stream, drained)?;
    Ok(Upstream {
        stream,
        since: Instant::now(),
        _watch: watch,
    })
}

/// A new connection to `addr`: from inside the address's own network
/// namespace where the control plane gave one ([`crate::netns`]), else
/// from the router's.
pub(crate) async fn open(shared: &Shared, addr: std::net::SocketAddr) -> io::Result<TcpStream> {
    if let Some(namespaces) = shared.namespaces.get()
        && let Some(connected) = namespaces.connect(addr).await
    {
        return connected;
    }
    TcpStream::connect(addr).await
}

/// How long a connect in progress may still take once its instance
/// stopped taking requests. An instance that is up answers a connect at
/// once (loopback or a local bridge: well under a millisecond), so one
/// still pending then is to an address that went away; the grace keeps a
/// connect to a removed instance that is alive, and about to succeed,
/// from being cut (its request would have nowhere else to go).
pub(crate) const LEAVING_GRACE: std::time::Duration = std::time::Duration::from_millis(100);

/// Runs `connecting` (a connect to `instance`) unless the instance stops
/// taking requests meanwhile ([`Instance::leaving`]) and the connect is
/// still pending [`LEAVING_GRACE`] later: then it is an error, which the
/// request counts as a failed connect and retries on another instance,
/// instead of waiting out the connect timeout. A change from before the
/// connect started is not seen; the timeout still bounds it.
pub(crate) async fn while_taking_requests<T>(
    instance: &Instance,
    connecting: impl std::future::Future<Output = T>,
) -> io::Result<T> {
    let leaving = instance.leaving.notified();
    tokio::pin!(leaving);
    leaving.as_mut().enable();
    tokio::pin!(connecting);
    tokio::select! {
        biased;
        done = &mut connecting => return Ok(done),
        () = leaving => {}
    }
    tokio::time::timeout(LEAVING_GRACE, connecting)
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!(
                    "instance {} stopped taking requests while being connected to",
                    instance.id
                ),
            )
        })
}

/// Shuts `stream` down when `drained` or the proxy's hard stop is
/// cancelled, from a small task holding a duplicate of its descriptor:
/// reads on the connection then see the end and writes fail, which ends
/// whatever request or body it carries, with no cost per request. The
/// watch ends when the returned guard is dropped (with the connection).
pub(crate) fn cut_at_drain(
    shared: &Shared,
    stream: &TcpStream,
    drained: CancellationToken,
) -> io::Result<DropGuard> {
    let socket = std::net::TcpStream::from(stream.as_fd().try_clone_to_owned()?);
    let closed = CancellationToken::new();
    let watch = closed.clone();
    let hard_stop = shared.hard_stop.clone();
    shared.tasks.spawn(async move {
        tokio::select! {
            () = drained.cancelled() => {}
            () = hard_stop.cancelled() => {}
            () = watch.cancelled() => return,
        }
        let _ = socket.shutdown(Shutdown::Both);
    });
    Ok(closed.drop_guard())
}
