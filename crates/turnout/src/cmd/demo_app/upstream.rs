//! The `--upstream` client: one GET of a fixed URL per incoming request, on
//! pooled connections, through the `HTTP_PROXY` forward proxy when the
//! environment names one.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::bail;
use bytes::Bytes;
use http::header::{PROXY_AUTHORIZATION, USER_AGENT};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

/// How long one upstream call may take, connect to last body byte. Long
/// enough for an upstream demo-app slowed down on purpose; a hung upstream
/// still gets its 502 eventually.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take, so a black-holed address fails fast.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upstream bodies are small texts; this only stops a runaway stream.
const MAX_BODY: usize = 8 << 20;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Parses `--upstream`: an absolute `http://` URL. TLS is refused because
/// the demo app has no TLS client, and routing inside turnout is plain HTTP.
pub fn parse_url(text: &str) -> Result<Uri, String> {
    let uri: Uri = text
        .parse()
        .map_err(|err| format!("not a URL ({err}); expected one such as http://servicea.local/"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(format!(
                "only http:// upstreams are supported, not {other}://; the demo app speaks plain HTTP"
            ));
        }
        None => return Err("expected an absolute URL such as http://servicea.local/".to_owned()),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err("the URL has no host; expected one such as http://servicea.local/".to_owned());
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("credentials in the upstream URL are not supported".to_owned());
    }
    Ok(uri)
}

/// Why an upstream call produced no body; the text becomes the 502 body.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream answered, with a status other than 2xx.
    #[error("upstream {url}{via} answered {status}")]
    Status {
        /// The `--upstream` URL.
        url: Uri,
        /// ` via proxy host:port`, or empty.
        via: String,
        /// What it answered.
        status: StatusCode,
    },
    /// Connecting, sending or reading failed.
    #[error("upstream {url}{via} failed: {detail}")]
    Request {
        /// The `--upstream` URL.
        url: Uri,
        /// ` via proxy host:port`, or empty.
        via: String,
        /// The error and its causes, outermost first.
        detail: String,
    },
    /// The whole call took longer than [`TIMEOUT`].
    #[error("upstream {url}{via} did not answer within {} s", TIMEOUT.as_secs())]
    Timeout {
        /// The `--upstream` URL.
        url: Uri,
        /// ` via proxy host:port`, or empty.
        via: String,
    },
}

/// A client for the one `--upstream` URL.
#[derive(Debug)]
pub struct Upstream {
    url: Uri,
    /// `Basic ...` when the proxy URL carries credentials.
    proxy_authorization: Option<HeaderValue>,
    /// Names the proxy in error messages (without its credentials).
    via: String,
    client: Client<Connector, Empty<Bytes>>,
}

impl Upstream {
    /// Decides once, from `HTTP_PROXY`/`http_proxy` (or `ALL_PROXY`) and
    /// `NO_PROXY`/`no_proxy`, whether calls go through a proxy. Variables
    /// are read the way curl reads them: `NO_PROXY` is a comma list of
    /// hosts, domain suffixes, IPs or CIDRs, or `*`, and credentials in the
    /// proxy URL are percent-decoded and sent as `Proxy-Authorization: Basic`.
    pub fn from_env(url: Uri) -> anyhow::Result<Self> {
        check_proxy_env()?;
        let no_proxy = ["NO_PROXY", "no_proxy"]
            .into_iter()
            .find_map(|name| std::env::var(name).ok())
            .unwrap_or_default();
        // The matcher applies a `*` entry to host names only, not to IP
        // addresses, where curl bypasses the proxy for every host.
        let matcher = if has_wildcard(&no_proxy) {
            Matcher::builder().build()
        } else {
            Matcher::from_env()
        };
        Self::with_matcher(url, &matcher)
    }

    fn with_matcher(url: Uri, matcher: &Matcher) -> anyhow::Result<Self> {
        let intercept = matcher.intercept(&url);
        let (proxy, proxy_authorization) = match &intercept {
            Some(intercept) => {
                let proxy = intercept.uri().clone();
                if proxy.scheme_str() != Some("http") {
                    bail!(
                        "the proxy for {url} is {}://{}; only http:// proxies are supported",
                        proxy.scheme_str().unwrap_or_default(),
                        proxy.authority().map_or("", |a| a.as_str())
                    );
                }
                (Some(proxy), intercept.basic_auth().cloned())
            }
            None => (None, None),
        };
        let via = proxy
            .as_ref()
            .and_then(Uri::authority)
            .map(|proxy| format!(" via proxy {proxy}"))
            .unwrap_or_default();
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new()).build(Connector { http, proxy });
        Ok(Self {
            url,
            proxy_authorization,
            via,
            client,
        })
    }

    /// GETs the URL and returns its body if the status is 2xx.
    pub async fn fetch(&self) -> Result<Bytes, UpstreamError> {
        match tokio::time::timeout(TIMEOUT, self.fetch_inner()).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::Timeout {
                url: self.url.clone(),
                via: self.via.clone(),
            }),
        }
    }

    async fn fetch_inner(&self) -> Result<Bytes, UpstreamError> {
        let failed = |err: &(dyn StdError + 'static)| UpstreamError::Request {
            url: self.url.clone(),
            via: self.via.clone(),
            detail: chain(err),
        };
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(self.url.clone())
            .header(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        if let Some(auth) = &self.proxy_authorization {
            request = request.header(PROXY_AUTHORIZATION, auth.clone());
        }
        let request = request.body(Empty::new()).map_err(|err| failed(&err))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|err| failed(&err))?;
        let status = response.status();
        if !status.is_success() {
            return Err(UpstreamError::Status {
                url: self.url.clone(),
                via: self.via.clone(),
                status,
            });
        }
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|err| failed(&*err))?;
        Ok(body.to_bytes())
    }
}

const USER_AGENT_VALUE: &str = concat!("turnout-demo-app/", env!("CARGO_PKG_VERSION"));

/// Refuses a proxy variable that is set but unusable: the matcher would
/// ignore it silently and call the upstream directly, hiding the mistake.
fn check_proxy_env() -> anyhow::Result<()> {
    // The same order of precedence as the matcher: upper case first.
    for name in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
        let Ok(value) = std::env::var(name) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let probe = Uri::from_static("http://upstream.invalid/");
        if Matcher::builder()
            .http(value)
            .build()
            .intercept(&probe)
            .is_none()
        {
            bail!(
                "{name} is set but is not a proxy URL; expected http://[user:password@]host:port"
            );
        }
        return Ok(());
    }
    Ok(())
}

/// Whether a `NO_PROXY` list holds the `*` entry that means "no proxy at all".
fn has_wildcard(no_proxy: &str) -> bool {
    no_proxy.split(',').any(|entry| entry.trim() == "*")
}

/// Joins an error with its causes, which is where hyper puts the useful
/// part ("client error (Connect): tcp connect error: Connection refused").
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // hyper repeats a cause in its parent's message; keep it once.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Connects either to the upstream itself or to the proxy. Marking the
/// connection as proxied makes hyper's pooled client send requests in
/// absolute form (`GET http://servicea.local/ HTTP/1.1`), which is what a
/// forward proxy expects.
#[derive(Debug, Clone)]
pub struct Connector {
    http: HttpConnector,
    proxy: Option<Uri>,
}

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let proxied = self.proxy.is_some();
        let connecting = self.http.call(self.proxy.clone().unwrap_or(dst));
        Box::pin(async move {
            let io = connecting.await?;
            Ok(Conn { io, proxied })
        })
    }
}

/// A TCP connection that knows whether it leads to a proxy.
#[derive(Debug)]
pub struct Conn {
    io: TokioIo<TcpStream>,
    proxied: bool,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_url_must_be_absolute_http() {
        assert!(parse_url("http://servicea.local").is_ok());
        assert!(parse_url("http://127.0.0.1:8080/x?y=1").is_ok());
        let https = parse_url("https://servicea.local/").unwrap_err();
        assert!(
            https.contains("only http:// upstreams are supported, not https://"),
            "{https}"
        );
        let relative = parse_url("/path").unwrap_err();
        assert!(relative.contains("absolute URL"), "{relative}");
        assert!(parse_url("servicea.local").is_err());
        assert!(
            parse_url("http://user:pw@servicea.local/")
                .unwrap_err()
                .contains("credentials")
        );
        assert!(
            parse_url("http://exa mple/")
                .unwrap_err()
                .contains("not a URL")
        );
    }

    #[test]
    fn proxy_applies_unless_no_proxy_matches() {
        let url = Uri::from_static("http://servicea.local/");
        let matcher = Matcher::builder()
            .http("http://tok%3Aen@127.0.0.1:3128")
            .build();
        let up = Upstream::with_matcher(url.clone(), &matcher).unwrap();
        assert_eq!(up.via, " via proxy 127.0.0.1:3128");
        // "tok:en:" after percent-decoding, token alone means empty password.
        assert_eq!(up.proxy_authorization.unwrap(), "Basic dG9rOmVuOg==");

        let bypass = Matcher::builder()
            .http("http://127.0.0.1:3128")
            .no("localhost, .local")
            .build();
        let up = Upstream::with_matcher(url, &bypass).unwrap();
        assert_eq!(up.via, "");
        assert!(up.proxy_authorization.is_none());
    }

    #[test]
    fn wildcard_is_an_entry_of_its_own() {
        assert!(has_wildcard("*"));
        assert!(has_wildcard("localhost, * ,10.0.0.0/8"));
        assert!(!has_wildcard(""));
        assert!(!has_wildcard("*.example.com"));
    }

    #[test]
    fn socks_proxy_is_refused_with_a_reason() {
        let matcher = Matcher::builder().all("socks5://127.0.0.1:1080").build();
        let err = Upstream::with_matcher(Uri::from_static("http://a.local/"), &matcher)
            .unwrap_err()
            .to_string();
        assert!(err.contains("only http:// proxies are supported"), "{err}");
    }

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Layer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1
                .as_deref()
                .map(|layer| layer as &(dyn StdError + 'static))
        }
    }

    #[test]
    fn error_chain_keeps_each_cause_once() {
        let refused = Layer("connection refused", None);
        let tcp = Layer(
            "tcp connect error: connection refused",
            Some(Box::new(refused)),
        );
        let outer = Layer("client error (Connect)", Some(Box::new(tcp)));
        assert_eq!(
            chain(&outer),
            "client error (Connect): tcp connect error: connection refused"
        );
    }
}
