//! Shared fixtures: tiny hyper backends, a client, and a proxy on
//! ephemeral loopback ports.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use turnout_proxy::{Proxy, ProxyConfig, Timeouts};
use turnout_routing::RouteTable;

/// A test backend: answers its name, and a few test endpoints.
///
/// - `/hold` waits until [`Backend::release`] (after signalling arrival);
/// - `/stream` sends `first\n` at once and `rest\n` after
///   [`Backend::release`];
/// - `/headers` echoes the request headers, one `name: value` a line;
/// - `/port` answers the port the connection came from (the proxy's end);
/// - `/ws` answers 101 and echoes bytes on the upgraded connection;
/// - `/health` answers 200;
/// - anything else answers the backend's name;
/// - on any of those, a query `status=NNN` makes it answer with that
///   status, and `sleep=MS` makes it wait that long first.
pub struct Backend {
    pub addr: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub connections: Arc<AtomicUsize>,
    /// Bytes read from all its connections.
    pub received: Arc<AtomicUsize>,
    arrived: Arc<Notify>,
    release: CancellationToken,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Backend {
    pub async fn start(name: &'static str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Backend::serve(name, listener)
    }

    /// Starts a backend on a given (previously used) address.
    pub async fn start_on(name: &'static str, addr: SocketAddr) -> Backend {
        let listener = TcpListener::bind(addr).await.unwrap();
        Backend::serve(name, listener)
    }

    fn serve(name: &'static str, listener: TcpListener) -> Backend {
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(AtomicUsize::new(0));
        let arrived = Arc::new(Notify::new());
        let release = CancellationToken::new();
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let state = (hits.clone(), arrived.clone(), release.clone());
        let (conn_count, stop_accept, task_tracker) =
            (connections.clone(), stop.clone(), tasks.clone());
        let received_count = received.clone();
        tasks.spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => continue },
                    () = stop_accept.cancelled() => return,
                };
                conn_count.fetch_add(1, Ordering::Relaxed);
                let state = state.clone();
                let stop_conn = stop_accept.clone();
                let stream = Counted(stream, received_count.clone());
                task_tracker.spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(answer(name, &state, peer, req).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades();
                    tokio::select! {
                        _ = conn => {}
                        () = stop_conn.cancelled() => {}
                    }
                });
            }
        });
        Backend {
            addr,
            hits,
            connections,
            received,
            arrived,
            release,
            stop,
            tasks,
        }
    }

    /// Resolves when a `/hold` request has arrived.
    pub async fn held(&self) {
        self.arrived.notified().await;
    }

    /// Lets every `/hold` request answer.
    pub fn release(&self) {
        self.release.cancel();
    }

    /// Kills the backend: the listener closes and open connections drop,
    /// so later connects are refused.
    pub async fn kill(&self) {
        self.stop.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::Relaxed)
    }

    /// Connections accepted so far (requests and probes alike).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Bytes the backend has read, from every connection: what reached it,
    /// whether or not it made a request.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::Relaxed)
    }
}

/// A backend connection that counts the bytes read from it.
struct Counted(tokio::net::TcpStream, Arc<AtomicUsize>);

impl tokio::io::AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.0).poll_read(cx, buf);
        this.1
            .fetch_add(buf.filled().len() - before, Ordering::Relaxed);
        read
    }
}

impl tokio::io::AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

type BackendState = (Arc<AtomicUsize>, Arc<Notify>, CancellationToken);

/// A response body fed through a channel, one frame per message.
pub struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| Ok(Frame::data(chunk))))
    }
}

type BackendBody = Either<Full<Bytes>, ChannelBody>;

async fn answer(
    name: &'static str,
    (hits, arrived, release): &BackendState,
    peer: SocketAddr,
    mut req: Request<Incoming>,
) -> Response<BackendBody> {
    hits.fetch_add(1, Ordering::Relaxed);
    let query = |name: &str| {
        req.uri()
            .query()
            .unwrap_or("")
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse::<u64>().ok())
    };
    let status = query("status").and_then(|s| StatusCode::from_u16(s as u16).ok());
    if let Some(ms) = query("sleep") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let text = match req.uri().path() {
        "/stream" => {
            let (tx, rx) = mpsc::channel(2);
            let _ = tx.try_send(Bytes::from_static(b"first\n"));
            let release = release.clone();
            // Ends when released, or when the response is dropped.
            tokio::spawn(async move {
                tokio::select! {
                    () = release.cancelled() => {
                        let _ = tx.send(Bytes::from_static(b"rest\n")).await;
                    }
                    () = tx.closed() => {}
                }
            });
            let mut response = Response::new(Either::Right(ChannelBody(rx)));
            response
                .headers_mut()
                .insert("x-backend", name.parse().unwrap());
            return response;
        }
        "/hold" => {
            arrived.notify_one();
            release.cancelled().await;
            name.to_owned()
        }
        "/port" => peer.port().to_string(),
        "/headers" => {
            let mut out = String::new();
            for (k, v) in req.headers() {
                out.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
            }
            out
        }
        "/echo" => {
            let body = req
                .body_mut()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            String::from_utf8_lossy(&body).into_owned()
        }
        "/ws" => {
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(upgraded) = upgrade.await {
                    let mut io = TokioIo::new(upgraded);
                    let mut buf = [0u8; 1024];
                    loop {
                        match io.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if io.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            });
            let mut response = Response::new(Either::Left(Full::new(Bytes::new())));
            *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            response
                .headers_mut()
                .insert("upgrade", "websocket".parse().unwrap());
            response
                .headers_mut()
                .insert("connection", "upgrade".parse().unwrap());
            return response;
        }
        _ => name.to_owned(),
    };
    let mut response = Response::new(Either::Left(Full::new(Bytes::from(text))));
    if let Some(status) = status {
        *response.status_mut() = status;
    }
    response
        .headers_mut()
        .insert("x-backend", name.parse().unwrap());
    response
}

/// A proxy on ephemeral ports, with an internal and an admin listener.
pub async fn proxy(yaml: &str) -> Proxy {
    proxy_with(yaml, Timeouts::default()).await
}

/// [`proxy`] with other timeouts.
pub async fn proxy_with(yaml: &str, timeouts: Timeouts) -> Proxy {
    let config = ProxyConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        internal_listen: Some("127.0.0.1:0".parse().unwrap()),
        admin: Some("127.0.0.1:0".parse().unwrap()),
        timeouts,
        ..ProxyConfig::default()
    };
    Proxy::start(config, table(yaml)).await.unwrap()
}

pub fn table(yaml: &str) -> RouteTable {
    RouteTable::from_yaml(yaml).unwrap_or_else(|err| panic!("{err}\n{yaml}"))
}

/// An HTTP/1.1 client with a keep-alive pool.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// What a test reads from a response.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    /// The `Set-Cookie` values, `name=value` without attributes.
    pub fn cookies(&self) -> HashMap<String, String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }
}

/// Sends a GET to `addr` with `Host: host` and extra headers.
pub async fn get(
    client: &Client<HttpConnector, Full<Bytes>>,
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut builder = Request::get(format!("http://{addr}{path}")).header("host", host);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    send(client, builder.body(Full::new(Bytes::new())).unwrap()).await
}

pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Answer {
    let response = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .expect("request finished in time")
        .expect("request sent");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Sends raw bytes and returns what the server answered until it closed
/// (or the first response head, if it keeps the connection open).
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("server answered in time");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends raw bytes and returns everything the server sent until it closed
/// the connection.
pub async fn raw_until_close(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .expect("server closed the connection in time");
    // A reset after the last response is a close too.
    let _ = read;
    String::from_utf8_lossy(&out).into_owned()
}

/// Waits for a condition that no event announces (health state), checking
/// every 10 ms, for at most 10 s.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// A route file with one public route `app.localhost` split between the
/// given (name, weight, backend) services.
pub fn split_file(services: &[(&str, u8, &Backend)], extra: &str) -> String {
    let mut yaml = String::from("routes:\n  - host: app.localhost\n");
    yaml.push_str(extra);
    yaml.push_str("    services:\n");
    for (name, weight, backend) in services {
        yaml.push_str(&format!(
            "      - {{ name: {name}, weight: {weight}, endpoints: [\"{}\"] }}\n",
            backend.addr
        ));
    }
    yaml
}
