//! Accept loops: each connection is served by hyper (HTTP/1.1 with
//! upgrades, or HTTP/2 by prior knowledge or ALPN), closed when it idles
//! or sends a head too slowly, and shut down gracefully when the proxy
//! stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use turnout_routing::Listener;

use crate::caller::ConnInfo;
use crate::connection::{Check, ClientIo, ConnState};
use crate::forward::handle;
use crate::h1;
use crate::shared::Shared;

/// How long a client may take for the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type Builder = Arc<auto::Builder<TokioExecutor>>;

/// Serves `listener` until the proxy stops, then lets open connections
/// finish their requests until the drain timeout.
pub(crate) async fn serve(
    listener: TcpListener,
    kind: Listener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
) {
    let stop = shared.stop.clone();
    serve_until(listener, kind, tls, shared, stop, None).await;
}

/// [`serve`] until `stop` is cancelled (a listener closed while the proxy
/// runs, or the proxy stopping); `closed` is told once the listening
/// socket is closed, before the open connections are waited for, so its
/// address can be bound again at once.
pub(crate) async fn serve_until(
    listener: TcpListener,
    kind: Listener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    closed: Option<oneshot::Sender<()>>,
) {
    let builder: Builder = Arc::new(connection_builder(&shared));
    // This listener's connections, to wait for when the proxy stops.
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: back off briefly
                // instead of spinning.
                tracing::warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = ConnInfo::new(kind, peer, tls.is_some());
        match &tls {
            None => {
                let task = serve_plain(shared.clone(), builder.clone(), stream, conn);
                shared.tasks.spawn(connections.track_future(task));
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let shared_for_task = shared.clone();
                let builder = builder.clone();
                // The handshake runs in the connection's task so a slow
                // client does not hold up the accept loop.
                let task = async move {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let stream = tokio::select! {
                        result = handshake => match result {
                            Ok(Ok(stream)) => stream,
                            _ => return,
                        },
                        () = shared_for_task.hard_stop.cancelled() => return,
                    };
                    serve_connection(shared_for_task, builder, stream, conn, Vec::new()).await;
                };
                shared.tasks.spawn(connections.track_future(task));
            }
        }
    }
    drop(listener);
    if let Some(closed) = closed {
        let _ = closed.send(());
    }
    connections.close();
    let deadline = shared.current.load().table.drain_timeout();
    tokio::select! {
        () = connections.wait() => {}
        () = tokio::time::sleep(deadline) => {
            tracing::warn!("connections still open at the drain deadline; closing them");
        }
    }
}

/// Serves a plain-TCP connection: HTTP/1.1 requests on the fast path
/// ([`h1`]) as long as they are ordinary, then hyper from the first one
/// that is not (or from the first byte, for an HTTP/2 client).
async fn serve_plain(shared: Arc<Shared>, builder: Builder, mut stream: TcpStream, conn: ConnInfo) {
    let ended = {
        let fast = h1::serve(&shared, &conn, &mut stream);
        tokio::pin!(fast);
        tokio::select! {
            ended = &mut fast => ended,
            () = shared.hard_stop.cancelled() => return,
        }
    };
    if let h1::Ended::Handoff(read) = ended {
        // Boxed: inline, hyper's connection state would make every
        // connection's task (most never hand off) 2 KB larger.
        Box::pin(serve_connection(shared, builder, stream, conn, read)).await;
    }
}

/// Serves one connection until it ends, idles for `client_idle`, takes
/// longer than `header_read` for a request head, or the proxy stops.
/// `read` are bytes already read from `stream` (by the fast path), served
/// first.
async fn serve_connection<I>(
    shared: Arc<Shared>,
    builder: Builder,
    stream: I,
    conn: ConnInfo,
    read: Vec<u8>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = ConnState::new();
    let conn = Arc::new(conn);
    let io = TokioIo::new(ClientIo::new(stream, state.clone(), read));
    let service = {
        let (shared, state, conn) = (shared.clone(), state.clone(), conn.clone());
        service_fn(move |req| handle(shared.clone(), conn.clone(), state.clone(), req))
    };
    let connection = builder.serve_connection_with_upgrades(io, service);
    tokio::pin!(connection);
    let timeouts = shared.config.timeouts;
    // The first check is due when the first head would be late.
    let timer = tokio::time::sleep(timeouts.header_read.min(timeouts.client_idle));
    tokio::pin!(timer);
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%err, "connection ended with an error");
                }
                return;
            }
            () = shared.stop.cancelled(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            () = &mut timer, if !closing => match state.check(Instant::now(), &timeouts) {
                Check::Wait(at) => timer.as_mut().reset(tokio::time::Instant::from_std(at)),
                Check::Idle => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                Check::SlowHead => {
                    tracing::debug!(peer = %conn.peer, "request head too slow; closing");
                    return;
                }
            },
            () = shared.hard_stop.cancelled() => return,
        }
    }
}

fn connection_builder(shared: &Shared) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let config = &shared.config;
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper's head timer also runs while a keep-alive connection waits
        // for its next request, which would cap the idle time at
        // `header_read`; `serve_connection` keeps both clocks instead.
        .header_read_timeout(None)
        .max_buf_size(config.max_header_bytes.max(8192))
        .max_headers(config.max_headers)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    builder
}
