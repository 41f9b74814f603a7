//! Settings of the data plane that are not part of the route table: where
//! to listen, timeouts and limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where and how the proxy listens.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Public listener (public routes).
    pub listen: SocketAddr,
    /// Internal listener (internal routes, forward-proxy requests with
    /// caller credentials); `None` runs none.
    pub internal_listen: Option<SocketAddr>,
    /// Admin listener (`/metrics`, `/healthz`); `None` runs none.
    pub admin: Option<SocketAddr>,
    /// A TLS listener for public routes; `None` runs none.
    pub tls: Option<TlsConfig>,
    /// Timeouts towards clients and upstreams.
    pub timeouts: Timeouts,
    /// Most bytes of request head (request line and headers) accepted from
    /// a client; larger heads get 431. At least 8192.
    pub max_header_bytes: usize,
    /// Most header fields accepted in one request.
    pub max_headers: usize,
    /// Bodies up to this size of idempotent requests are buffered so the
    /// request can be retried on another instance. A chunked request body
    /// is also read up to this size before the request is forwarded, so
    /// that a malformed one is refused with nothing sent upstream.
    pub max_retry_body_bytes: usize,
    /// Write one JSON line per request to the `turnout::access` tracing
    /// target.
    pub access_log: bool,
    /// Threads that accept and serve plain-TCP client connections. 1: the
    /// runtime `Proxy::start` is called in does everything. N > 1: the
    /// public and internal listeners are bound N times with
    /// `SO_REUSEPORT` (the kernel spreads new connections), and N − 1 more
    /// threads, each with a current-thread runtime, serve the extra ones.
    pub workers: usize,
}

impl Default for ProxyConfig {
    /// The addresses of DESIGN §5: public 8080, internal 8081, admin 7070,
    /// all on loopback.
    fn default() -> Self {
        ProxyConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            internal_listen: Some(SocketAddr::from(([127, 0, 0, 1], 8081))),
            admin: Some(SocketAddr::from(([127, 0, 0, 1], 7070))),
            tls: None,
            timeouts: Timeouts::default(),
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            max_retry_body_bytes: 64 * 1024,
            access_log: false,
            workers: 1,
        }
    }
}

/// Timeouts of the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting to an upstream instance.
    pub connect: Duration,
    /// A client sending a request head: from its first byte (for a new
    /// connection, from the accept) to its end. Also the longest wait for
    /// the start of a chunked request body (see `max_retry_body_bytes`)
    /// before the request is forwarded with what came.
    pub header_read: Duration,
    /// A client connection with no request in progress (HTTP/1.1
    /// keep-alive between requests, HTTP/2 without open streams) is closed
    /// after this; HTTP/2 gets a `GOAWAY`.
    pub client_idle: Duration,
    /// An upstream sending its response head.
    pub upstream_response: Duration,
    /// An idle pooled upstream connection is closed after this.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(3),
            header_read: Duration::from_secs(10),
            client_idle: Duration::from_secs(60),
            upstream_response: Duration::from_secs(60),
            idle: Duration::from_secs(90),
        }
    }
}

/// A TLS listener: certificate chain and private key as PEM files.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Address of the TLS listener.
    pub listen: SocketAddr,
    /// PEM file with the certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM file with the private key.
    pub key: PathBuf,
}
