//! The CLI's side of the REST API (`docs/api.md`): finding the server and
//! its token (DESIGN §5), sending requests, and turning answers into
//! either `turnout-api-types` bodies or an [`ApiError`] that prints as
//! `error: ...` / `hint: ...`.
//!
//! The verbs that talk to a server (`deploy`, `status`, `weights`, ...)
//! call [`Client`]'s typed methods (`status(app)`, `set_weights(app,
//! route, ...)`, ...), one per API call; paths are built only here and
//! no verb builds a request by hand.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use turnout_routing::Weight;

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use turnout_api_types::{
    AbortRequest, AcceptedStatus, AppList, AppStatus, ConfirmRequest, DeployRequest, EmptyRequest,
    ErrorBody, LogQuery, PromoteRequest, ReleaseList, ReleaseRecord, ReleaseReport, ReleaseRequest,
    RouteList, RouteStatus, ServiceList, ServiceStatus, WeightsRequest,
};
use turnout_spec::Diagnostic;

use crate::output::{OutputFormat, print_diagnostics};
use crate::server::ServerFile;

/// The file a running server describes itself in, inside its data dir
/// (written by `crate::server`; read here leniently, so a CLI of another
/// version still finds the address).
pub const SERVER_FILE: &str = "server.json";
/// The file holding the API token, inside the server's data dir.
pub const TOKEN_FILE: &str = "token";

/// How long a plain API call may take before the server counts as not
/// answering. Generous: a confirm waits for the new route table to be in
/// the router, and a loaded machine can be slow.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// The flags every verb that talks to a server shares.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// The server's admin (API) address, `host:port` or `http://host:port`.
    /// Default: the address in <DATA_DIR>/server.json.
    #[arg(long, env = "TURNOUT_ADMIN", value_name = "ADDR")]
    pub admin: Option<String>,
    /// The server's data dir: where server.json and the API token are
    /// (the token can also come from TURNOUT_TOKEN).
    #[arg(
        long,
        env = "TURNOUT_DATA_DIR",
        value_name = "DIR",
        default_value = ".turnout"
    )]
    pub data_dir: PathBuf,
}

/// The flags every verb that acts on one app shares: `--app`, `--output`
/// and the connection's.
#[derive(Debug, Clone, clap::Args)]
pub struct AppArgs {
    /// The app; default: the only app on the server.
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,
    /// Output format: human, or json (the API's answer, see docs/api.md).
    #[arg(long, short, value_enum, default_value_t)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub conn: Connection,
}

impl AppArgs {
    /// Connects to the server, picks the app (`--app`, else the only one)
    /// and runs `verb` with the client and the app's name: what every
    /// such verb does around its own call and rendering.
    pub fn run(
        &self,
        verb: impl AsyncFnOnce(&Client, String) -> anyhow::Result<ExitCode>,
    ) -> anyhow::Result<ExitCode> {
        block_on(async {
            let client = Client::connect(&self.conn)?;
            let app = client.app(self.app.as_deref()).await?;
            verb(&client, app).await
        })
    }
}

/// A failure to reach the server or a refusal from it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Neither `--admin`/`TURNOUT_ADMIN` nor a `server.json` says where
    /// the server is.
    #[error(
        "no turnout server found: start one with `turnout up FILE` or `turnout serve`, or set \
         TURNOUT_ADMIN\n  hint: looked for {} (set --data-dir or TURNOUT_DATA_DIR to the \
         server's data dir)",
        path.display()
    )]
    NoServer {
        /// The `server.json` that does not exist.
        path: PathBuf,
    },
    /// The admin address is not `host:port` or `http://host:port`.
    #[error(
        "invalid admin address {given:?} (from {origin}): {reason}\n  hint: write it as host:port or http://host:port, e.g. 127.0.0.1:7070"
    )]
    BadAddress {
        /// The address as given.
        given: String,
        /// Where it came from (`--admin`, `server.json`).
        origin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `server.json` exists but cannot be read.
    #[error("cannot read {}: {reason}\n  hint: it is written by `turnout serve`; remove it if no server uses this data dir", path.display())]
    BadServerFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No token in `TURNOUT_TOKEN` nor in the data dir.
    #[error(
        "no API token: TURNOUT_TOKEN is not set and {} does not exist\n  hint: set \
         TURNOUT_TOKEN, or point --data-dir (TURNOUT_DATA_DIR) at the server's data dir",
        path.display()
    )]
    NoToken {
        /// The token file that does not exist.
        path: PathBuf,
    },
    /// The server did not answer (refused, reset, timed out).
    #[error(
        "the turnout server at {addr} (from {origin}) does not answer: {reason}\n  hint: {hint}"
    )]
    Unreachable {
        /// The address tried.
        addr: String,
        /// Where the address came from.
        origin: String,
        /// What happened.
        reason: String,
        /// What to do about it.
        hint: String,
    },
    /// The server answered something that is not turnout's API.
    #[error(
        "the server at {addr} answered {status} with an unexpected body: {body}\n  hint: is --admin the address of a turnout server's API?"
    )]
    Protocol {
        /// The address asked.
        addr: String,
        /// The status it answered.
        status: StatusCode,
        /// The start of what it said.
        body: String,
    },
    /// The server answered 2xx with a body that is not what the API
    /// documents for the call.
    #[error(
        "unexpected answer from the server at {addr}: {reason}\n  hint: is the CLI as new as the server?"
    )]
    Unexpected {
        /// The address asked.
        addr: String,
        /// What did not read.
        reason: String,
    },
    /// The API refused the request.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// An error answered by the API: `{"error": {"code", "message", "hint"}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The machine-readable code (`not_found`, `conflict`, `invalid`...).
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// The problems of a template refused as `invalid` (422).
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for ApiError {
    /// `message` and, on the next line, `  hint: ...` — `main` puts
    /// `error: ` in front, which gives the CLI's usual two-line error.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = self.hint.as_deref().filter(|h| !h.is_empty()) {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// Reads an error body; `None` when it is not turnout's error shape.
    fn from_body(status: StatusCode, body: &[u8]) -> Option<Self> {
        let ErrorBody { error } = serde_json::from_slice(body).ok()?;
        Some(Self {
            status,
            code: error.code,
            message: error.message,
            hint: Some(error.hint).filter(|h| !h.is_empty()),
            diagnostics: error.diagnostics,
        })
    }

    /// A refusal found by the CLI itself, printed like the server's.
    pub fn local(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "usage".into(),
            message: message.into(),
            hint: Some(hint.into()),
            diagnostics: Vec::new(),
        }
    }
}

/// Where the server is and how to authenticate, once found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port` of the admin API.
    pub authority: String,
    /// Where the address came from, for messages (`--admin`, a path).
    pub origin: String,
    /// The bearer token.
    pub token: String,
    /// Where the token came from, for messages.
    pub token_origin: String,
    /// The public router address, when `server.json` says it.
    pub public: Option<String>,
    /// The server's pid, when `server.json` says it.
    pub pid: Option<u32>,
}

/// Reads an admin address: `host:port` or `http://host:port` (a trailing
/// `/` is allowed). An unspecified host (`0.0.0.0`, `[::]`) is what a
/// server listening everywhere reports; it is reached on loopback.
pub fn parse_admin(given: &str) -> Result<String, String> {
    let s = given.trim();
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err("the API speaks plain HTTP; use http:// or host:port".into());
    }
    let rest = if lower.starts_with("http://") {
        &s["http://".len()..]
    } else if s.contains("://") {
        return Err("only http:// is understood".into());
    } else {
        s
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') {
        return Err("an admin address has no path".into());
    }
    if rest.contains('@') {
        return Err("an admin address has no user part; the token goes in TURNOUT_TOKEN".into());
    }
    let authority: http::uri::Authority =
        rest.parse().map_err(|_| "not a host:port".to_string())?;
    if authority.host().is_empty() {
        return Err("the host is missing".into());
    }
    let port = match authority.port_u16() {
        Some(0) => return Err("port 0 is what a server binds, not where it is".into()),
        Some(p) => p,
        None => return Err("the port is missing".into()),
    };
    let host = match authority.host() {
        "0.0.0.0" => "127.0.0.1",
        "[::]" => "[::1]",
        h => h,
    };
    Ok(format!("{host}:{port}"))
}

/// Finds the server and the token as DESIGN §5 says: `--admin` or
/// `TURNOUT_ADMIN`, else `<data-dir>/server.json`; the token from
/// `env_token` (`TURNOUT_TOKEN`), else `<data-dir>/token`.
pub fn discover(conn: &Connection, env_token: Option<String>) -> Result<Endpoint, ClientError> {
    let server_path = conn.data_dir.join(SERVER_FILE);
    let (authority, origin, public, pid) = match conn.admin.as_deref().filter(|a| !a.is_empty()) {
        Some(given) => {
            let authority = parse_admin(given).map_err(|reason| ClientError::BadAddress {
                given: given.to_string(),
                origin: "--admin/TURNOUT_ADMIN".into(),
                reason,
            })?;
            // server.json may still know the public address, for hints.
            let file = read_server_file(&server_path).ok().flatten();
            let public = file
                .as_ref()
                .filter(|f| {
                    parse_admin(&f.admin.to_string()).ok().as_deref() == Some(authority.as_str())
                })
                .map(|f| f.public.to_string());
            (authority, "--admin/TURNOUT_ADMIN".to_string(), public, None)
        }
        None => {
            let file = read_server_file(&server_path)?.ok_or_else(|| ClientError::NoServer {
                path: server_path.clone(),
            })?;
            let origin = server_path.display().to_string();
            let admin = file.admin.to_string();
            let authority = parse_admin(&admin).map_err(|reason| ClientError::BadAddress {
                given: admin.clone(),
                origin: origin.clone(),
                reason,
            })?;
            (
                authority,
                origin,
                Some(file.public.to_string()),
                Some(file.pid),
            )
        }
    };
    let (token, token_origin) = match env_token.filter(|t| !t.trim().is_empty()) {
        Some(t) => (t.trim().to_string(), "TURNOUT_TOKEN".to_string()),
        None => {
            let path = conn.data_dir.join(TOKEN_FILE);
            match std::fs::read_to_string(&path) {
                Ok(t) => (t.trim().to_string(), path.display().to_string()),
                Err(_) => return Err(ClientError::NoToken { path }),
            }
        }
    };
    Ok(Endpoint {
        authority,
        origin,
        token,
        token_origin,
        public: public.and_then(|p| parse_admin(&p).ok()),
        pid,
    })
}

/// Reads `server.json`: `Ok(None)` when there is none.
/// (The one definition of the file is the server's, [`ServerFile`].)
fn read_server_file(path: &Path) -> Result<Option<ServerFile>, ClientError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ClientError::BadServerFile {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ClientError::BadServerFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// `/apps/{app}/{kind}/{name}/logs?...`, the log paths of a service or an
/// instance.
fn logs_path(kind: &str, app: &str, name: &str, tail: usize, follow: bool) -> String {
    let query = LogQuery {
        tail: Some(tail),
        follow: follow.then_some(true),
    };
    format!(
        "/apps/{}/{kind}/{}/logs?{}",
        segment(app),
        segment(name),
        query.to_query()
    )
}

/// Percent-encodes one path segment (a route id holds `/`).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A connection to one server's API.
#[derive(Debug, Clone)]
pub struct Client {
    http: HttpClient<HttpConnector, Full<Bytes>>,
    endpoint: Endpoint,
}

impl Client {
    /// Finds the server (see [`discover`]) and prepares a client; nothing
    /// is sent yet.
    pub fn connect(conn: &Connection) -> Result<Self, ClientError> {
        let endpoint = discover(conn, std::env::var("TURNOUT_TOKEN").ok())?;
        Ok(Self::new(endpoint))
    }

    /// A client for a known endpoint.
    pub fn new(endpoint: Endpoint) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let http = HttpClient::builder(TokioExecutor::new()).build(connector);
        Self { http, endpoint }
    }

    /// Where the server is.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Sends a request and returns the response head and body stream,
    /// whatever its status.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<http::Response<Incoming>, ClientError> {
        let uri = format!("http://{}/v1{path}", self.endpoint.authority);
        let mut req = Request::builder()
            .method(method)
            .uri(&uri)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.endpoint.token),
            )
            .header(header::ACCEPT, "application/json");
        let bytes = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(v)
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(bytes))
            .map_err(|e| self.unreachable(format!("cannot build a request for {uri}: {e}")))?;
        self.http.request(req).await.map_err(|e| {
            // The legacy client's error says little on its own; the
            // innermost source says what happened (connection refused...).
            let mut innermost: &dyn std::error::Error = &e;
            while let Some(source) = innermost.source() {
                innermost = source;
            }
            self.unreachable(innermost.to_string())
        })
    }

    fn unreachable(&self, reason: String) -> ClientError {
        let hint = match self.endpoint.pid {
            Some(pid)
                if Path::new("/proc").is_dir() && !Path::new(&format!("/proc/{pid}")).exists() =>
            {
                format!(
                    "{} names pid {pid}, which is not running: the server stopped; start it again \
                     with `turnout serve --data-dir DIR`",
                    self.endpoint.origin
                )
            }
            _ => {
                "is the server running? start one with `turnout up FILE` or `turnout serve`".into()
            }
        };
        ClientError::Unreachable {
            addr: self.endpoint.authority.clone(),
            origin: self.endpoint.origin.clone(),
            reason,
            hint,
        }
    }

    /// Sends a request and reads the whole answer: the body of a 2xx, or
    /// the API's error.
    async fn call_bytes(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, ClientError> {
        let exchange = async {
            let resp = self.send(method, path, body).await?;
            let status = resp.status();
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| self.unreachable(format!("the answer broke off: {e}")))?
                .to_bytes();
            Ok::<_, ClientError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                self.unreachable(format!("no answer in {} s", CALL_TIMEOUT.as_secs()))
            })??;
        if status.is_success() {
            return Ok(bytes);
        }
        Err(self.refusal(status, &bytes))
    }

    /// Turns a non-2xx answer into the error to show.
    fn refusal(&self, status: StatusCode, bytes: &[u8]) -> ClientError {
        match ApiError::from_body(status, bytes) {
            Some(mut e) => {
                if status == StatusCode::UNAUTHORIZED {
                    // Say which token was refused: the server cannot know.
                    e.message = format!(
                        "unauthorized: {} (the token came from {})",
                        e.message, self.endpoint.token_origin
                    );
                }
                ClientError::Api(e)
            }
            None => ClientError::Protocol {
                addr: self.endpoint.authority.clone(),
                status,
                body: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
            },
        }
    }

    /// Sends a request with a JSON body (or none) and reads a typed JSON
    /// answer.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| self.unreachable(format!("cannot encode the request: {e}")))?;
        let bytes = self.call_bytes(method, path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Unexpected {
            addr: self.endpoint.authority.clone(),
            reason: e.to_string(),
        })
    }

    /// `GET path`, a typed JSON answer.
    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&EmptyRequest>).await
    }

    /// `GET path`, text (logs).
    async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let bytes = self.call_bytes(Method::GET, path, None).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// `GET /v1/apps`: every app's status.
    pub async fn apps(&self) -> Result<Vec<AppStatus>, ClientError> {
        let list: AppList = self.get("/apps").await?;
        Ok(list.apps)
    }

    /// `GET /v1/apps/{app}`: the app's status.
    pub async fn status(&self, app: &str) -> Result<AppStatus, ClientError> {
        self.get(&format!("/apps/{}", segment(app))).await
    }

    /// `GET /v1/apps/{app}/services`.
    pub async fn services(&self, app: &str) -> Result<Vec<ServiceStatus>, ClientError> {
        let list: ServiceList = self
            .get(&format!("/apps/{}/services", segment(app)))
            .await?;
        Ok(list.services)
    }

    /// `GET /v1/apps/{app}/routes`.
    pub async fn routes(&self, app: &str) -> Result<Vec<RouteStatus>, ClientError> {
        let list: RouteList = self.get(&format!("/apps/{}/routes", segment(app))).await?;
        Ok(list.routes)
    }

    /// `POST /v1/apps`: deploys an app; its first status and the
    /// runtime's warnings.
    pub async fn deploy(&self, request: &DeployRequest) -> Result<AcceptedStatus, ClientError> {
        self.call(Method::POST, "/apps", Some(request)).await
    }

    /// `POST /v1/apps/{app}/releases`: starts a release; the app's status
    /// and the runtime's warnings.
    pub async fn release(
        &self,
        app: &str,
        request: &ReleaseRequest,
    ) -> Result<AcceptedStatus, ClientError> {
        let path = format!("/apps/{}/releases", segment(app));
        self.call(Method::POST, &path, Some(request)).await
    }

    /// `GET /v1/apps/{app}/releases`, newest first.
    pub async fn releases(&self, app: &str) -> Result<Vec<ReleaseRecord>, ClientError> {
        let list: ReleaseList = self
            .get(&format!("/apps/{}/releases", segment(app)))
            .await?;
        Ok(list.releases)
    }

    /// `GET /v1/apps/{app}/report`.
    pub async fn report(&self, app: &str) -> Result<ReleaseReport, ClientError> {
        self.get(&format!("/apps/{}/report", segment(app))).await
    }

    /// `POST /v1/apps/{app}/confirm`.
    pub async fn confirm(&self, app: &str, switch: bool) -> Result<AppStatus, ClientError> {
        let path = format!("/apps/{}/confirm", segment(app));
        self.call(Method::POST, &path, Some(&ConfirmRequest { switch }))
            .await
    }

    /// `POST /v1/apps/{app}/rollback`.
    pub async fn rollback(&self, app: &str) -> Result<AppStatus, ClientError> {
        self.act(app, "rollback").await
    }

    /// `POST /v1/apps/{app}/promote`.
    pub async fn promote(&self, app: &str, full: bool) -> Result<AppStatus, ClientError> {
        let path = format!("/apps/{}/promote", segment(app));
        self.call(Method::POST, &path, Some(&PromoteRequest { full }))
            .await
    }

    /// `POST /v1/apps/{app}/{verb}` with no body: `rollback`, `pause`,
    /// `resume`.
    pub async fn act(&self, app: &str, verb: &str) -> Result<AppStatus, ClientError> {
        let path = format!("/apps/{}/{verb}", segment(app));
        self.call(Method::POST, &path, None::<&EmptyRequest>).await
    }

    /// `POST /v1/apps/{app}/abort`.
    pub async fn abort(&self, app: &str, reason: Option<String>) -> Result<AppStatus, ClientError> {
        let path = format!("/apps/{}/abort", segment(app));
        self.call(Method::POST, &path, Some(&AbortRequest { reason }))
            .await
    }

    /// `PUT /v1/apps/{app}/routes/{route}/weights`: sets the named
    /// services' weights on one route, in one step.
    pub async fn set_weights(
        &self,
        app: &str,
        route: &str,
        weights: &[(String, Weight)],
    ) -> Result<AppStatus, ClientError> {
        let path = format!("/apps/{}/routes/{}/weights", segment(app), segment(route));
        let request = WeightsRequest {
            weights: weights
                .iter()
                .map(|(service, w)| (service.clone(), Value::from(w.get())))
                .collect(),
        };
        self.call(Method::PUT, &path, Some(&request)).await
    }

    /// `POST /v1/apps/{app}/routes/{route}/switch`: flips a two-service
    /// route 0/100.
    pub async fn switch(&self, app: &str, route: &str) -> Result<AppStatus, ClientError> {
        let path = format!("/apps/{}/routes/{}/switch", segment(app), segment(route));
        self.call(Method::POST, &path, None::<&EmptyRequest>).await
    }

    /// `GET /v1/apps/{app}/services/{service}/logs?tail=N`: the last lines
    /// of each instance, each prefixed `<instance> | `.
    pub async fn service_logs(
        &self,
        app: &str,
        service: &str,
        tail: usize,
    ) -> Result<String, ClientError> {
        self.get_text(&logs_path("services", app, service, tail, false))
            .await
    }

    /// `GET /v1/apps/{app}/instances/{id}/logs?tail=N`.
    pub async fn instance_logs(
        &self,
        app: &str,
        id: &str,
        tail: usize,
    ) -> Result<String, ClientError> {
        self.get_text(&logs_path("instances", app, id, tail, false))
            .await
    }

    /// `GET /v1/apps/{app}/instances/{id}/logs?tail=N&follow=true`: the
    /// last lines, then new ones for as long as the server sends them.
    pub async fn follow_instance_logs(
        &self,
        app: &str,
        id: &str,
        tail: usize,
    ) -> Result<Incoming, ClientError> {
        self.get_stream(&logs_path("instances", app, id, tail, true))
            .await
    }

    /// `GET path` whose body streams for as long as the server sends (a
    /// followed log); no timeout beyond the server answering.
    async fn get_stream(&self, path: &str) -> Result<Incoming, ClientError> {
        let resp = tokio::time::timeout(CALL_TIMEOUT, self.send(Method::GET, path, None))
            .await
            .map_err(|_| {
                self.unreachable(format!("no answer in {} s", CALL_TIMEOUT.as_secs()))
            })??;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp.into_body());
        }
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Err(self.refusal(status, &bytes))
    }

    /// The app a verb works on: `--app` when given, else the only app on
    /// the server; with none or several, an error saying what to do.
    pub async fn app(&self, given: Option<&str>) -> Result<String, ClientError> {
        if let Some(app) = given {
            return Ok(app.to_string());
        }
        let names: Vec<String> = self.apps().await?.into_iter().map(|a| a.app).collect();
        choose_app(&names).map_err(ClientError::Api)
    }
}

/// Picks the app when `--app` is not given: the only one, or an error
/// naming them.
pub fn choose_app(names: &[String]) -> Result<String, ApiError> {
    match names {
        [one] => Ok(one.clone()),
        [] => Err(ApiError::local(
            "the server runs no app",
            "deploy one with `turnout deploy FILE`",
        )),
        several => Err(ApiError::local(
            format!(
                "the server runs {} apps: {}",
                several.len(),
                several.join(", ")
            ),
            "choose one with --app APP",
        )),
    }
}

/// Runs a verb's async body on a small runtime. An invalid template
/// refused by the server has its diagnostics printed first, as `turnout
/// validate` prints them; `main` then prints the error and its hint.
pub fn block_on<F>(future: F) -> anyhow::Result<ExitCode>
where
    F: Future<Output = anyhow::Result<ExitCode>>,
{
    // One thread is plenty for a CLI call, and the machine is shared.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(future);
    if let Err(err) = &result
        && let Some(api) = api_error(err)
        && !api.diagnostics.is_empty()
    {
        print_diagnostics(&api.diagnostics);
    }
    result
}

/// The API error inside an `anyhow` error, if that is what it is.
fn api_error(err: &anyhow::Error) -> Option<&ApiError> {
    err.downcast_ref::<ApiError>()
        .or_else(|| match err.downcast_ref::<ClientError>() {
            Some(ClientError::Api(e)) => Some(e),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(dir: &Path, admin: Option<&str>) -> Connection {
        Connection {
            admin: admin.map(str::to_string),
            data_dir: dir.to_path_buf(),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("turnout-client-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn admin_addresses_with_and_without_scheme() {
        assert_eq!(parse_admin("127.0.0.1:7070").unwrap(), "127.0.0.1:7070");
        assert_eq!(
            parse_admin("http://127.0.0.1:7070").unwrap(),
            "127.0.0.1:7070"
        );
        assert_eq!(
            parse_admin("HTTP://localhost:7070/").unwrap(),
            "localhost:7070"
        );
        assert_eq!(parse_admin("[::1]:7070").unwrap(), "[::1]:7070");
        assert_eq!(parse_admin("0.0.0.0:7070").unwrap(), "127.0.0.1:7070");
        assert!(parse_admin("127.0.0.1").unwrap_err().contains("port"));
        assert!(
            parse_admin("https://127.0.0.1:7070")
                .unwrap_err()
                .contains("plain HTTP")
        );
        assert!(
            parse_admin("http://127.0.0.1:7070/v1")
                .unwrap_err()
                .contains("path")
        );
        assert!(parse_admin("127.0.0.1:0").is_err());
        assert!(parse_admin("tok@127.0.0.1:7070").is_err());
        assert!(parse_admin("ftp://x:1").is_err());
    }

    #[test]
    fn discovery_prefers_the_flag_then_server_json() {
        let dir = temp_dir("discover");
        // Nothing at all: the message says how to get a server.
        let err = discover(&conn(&dir, None), None).unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("no turnout server found: start one with `turnout up FILE` or `turnout serve`, or set TURNOUT_ADMIN"), "{text}");

        std::fs::write(
            dir.join(SERVER_FILE),
            r#"{"public": "127.0.0.1:8080", "admin": "127.0.0.1:7171", "internal": "127.0.0.1:8081", "pid": 12}"#,
        )
        .unwrap();
        // Server found, no token anywhere.
        let err = discover(&conn(&dir, None), None).unwrap_err();
        assert!(matches!(err, ClientError::NoToken { .. }), "{err}");

        std::fs::write(dir.join(TOKEN_FILE), "secret\n").unwrap();
        let ep = discover(&conn(&dir, None), None).unwrap();
        assert_eq!(ep.authority, "127.0.0.1:7171");
        assert_eq!(ep.token, "secret");
        assert_eq!(ep.public.as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(ep.pid, Some(12));
        assert!(ep.origin.ends_with("server.json"), "{}", ep.origin);

        // The flag wins over the file, and the env token over the token file.
        let ep = discover(
            &conn(&dir, Some("http://127.0.0.2:9999")),
            Some("env-tok".into()),
        )
        .unwrap();
        assert_eq!(ep.authority, "127.0.0.2:9999");
        assert_eq!(ep.token, "env-tok");
        assert_eq!(ep.token_origin, "TURNOUT_TOKEN");
        assert_eq!(ep.public, None, "the file describes another server");

        std::fs::write(dir.join(SERVER_FILE), "{not json").unwrap();
        let err = discover(&conn(&dir, None), None).unwrap_err();
        assert!(matches!(err, ClientError::BadServerFile { .. }), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn app_defaults_to_the_only_one() {
        assert_eq!(choose_app(&["hello".into()]).unwrap(), "hello");
        let none = choose_app(&[]).unwrap_err();
        assert!(none.to_string().contains("runs no app"), "{none}");
        let two = choose_app(&["a".into(), "b".into()]).unwrap_err();
        assert_eq!(
            two.to_string(),
            "the server runs 2 apps: a, b\n  hint: choose one with --app APP"
        );
    }

    #[test]
    fn api_errors_print_message_and_hint() {
        let body = br#"{"error":{"code":"conflict","message":"a release is running","hint":"confirm it first"}}"#;
        let e = ApiError::from_body(StatusCode::CONFLICT, body).unwrap();
        assert_eq!(e.code, "conflict");
        assert_eq!(
            e.to_string(),
            "a release is running\n  hint: confirm it first"
        );
        assert!(ApiError::from_body(StatusCode::BAD_GATEWAY, b"<html>").is_none());
    }

    #[test]
    fn api_errors_carry_the_templates_diagnostics() {
        let body =
            br#"{"error":{"code":"invalid","message":"the template has 1 errors","hint":"fix it",
            "diagnostics":[{"severity":"error","file":"app.yaml","line":7,"column":5,
            "path":"a.labels.\"aliyun.scale\"","message":"not a number","found":"\"x\"",
            "expected":null,"hint":"write a number"}]}}"#;
        let e = ApiError::from_body(StatusCode::UNPROCESSABLE_ENTITY, body).unwrap();
        assert_eq!(e.diagnostics.len(), 1);
        assert_eq!(
            e.diagnostics[0].to_string(),
            "app.yaml:7:5: a.labels.\"aliyun.scale\": not a number: found \"x\"\n  hint: write a number"
        );
    }

    #[test]
    fn route_ids_are_one_segment() {
        assert_eq!(segment("wp.sample.com/context"), "wp.sample.com%2Fcontext");
        assert_eq!(segment("serviceB-v2.1"), "serviceB-v2.1");
    }
}
