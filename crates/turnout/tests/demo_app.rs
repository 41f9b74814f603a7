//! `turnout demo-app` as users run it: real child processes on ephemeral
//! loopback ports, real HTTP/1.1 and h2c clients, and a tiny forward proxy
//! that records what it is sent.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{HeaderMap, Method, Request, StatusCode, Uri, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Variables the child must not inherit from whoever runs the tests: a
/// developer's proxy settings would change what the upstream tests see.
const SCRUBBED_ENV: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "REQUEST_METHOD",
    "PORT",
    "TURNOUT_INSTANCE",
];

/// A running `turnout demo-app`, killed when the test lets go of it.
struct DemoApp {
    child: Child,
    addr: SocketAddr,
    // Held so that the app never writes into a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl DemoApp {
    /// Starts on an ephemeral loopback port with extra flags.
    fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut all = vec!["--port", "0"];
        all.extend_from_slice(args);
        Self::spawn(&all, env)
    }

    /// Starts with exactly these flags after `demo-app --bind 127.0.0.1`.
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = demo_app_command(args, env);
        command.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = command.spawn().expect("spawn turnout demo-app");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("read the listening line");
        let Some(addr) = line.trim_end().strip_prefix("demo-app listening on ") else {
            let _ = child.kill();
            let status = child.wait();
            panic!("unexpected first line {line:?}; the app exited with {status:?}");
        };
        let addr = addr.parse().expect("the listening line ends in an address");
        Self {
            child,
            addr,
            _stdout: stdout,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Sends SIGTERM, as a container runtime or `turnout` does to stop it.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the process to exit on its own, without blocking the
    /// runtime; the bound is generous and only there so a bug fails the test
    /// instead of hanging it.
    async fn exited(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "demo-app did not exit after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for DemoApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn demo_app_command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_turnout"));
    command
        .args(["demo-app", "--bind", "127.0.0.1"])
        .args(args)
        .stdin(Stdio::null());
    for name in SCRUBBED_ENV {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command
}

/// Runs the app expecting it to refuse to start; returns (code, stderr).
fn refused(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut all = vec!["--port", "0"];
    all.extend_from_slice(args);
    let output = demo_app_command(&all, env)
        .output()
        .expect("run turnout demo-app");
    assert!(
        output.stdout.is_empty(),
        "{args:?} should not start, but printed {:?}",
        String::from_utf8_lossy(&output.stdout)
    );
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// One answer, read whole.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn instance(&self) -> &str {
        self.headers
            .get("x-demo-instance")
            .map(|v| v.to_str().expect("ascii instance name"))
            .unwrap_or_default()
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|err| panic!("{err}: {:?}", self.body))
    }
}

/// An HTTP/1.1 keep-alive connection.
struct Http1 {
    addr: SocketAddr,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Http1 {
    async fn open(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("http/1.1 handshake");
        tokio::spawn(connection);
        Self { addr, sender }
    }

    async fn send(&mut self, method: Method, path: &str, body: &str) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.addr.to_string())
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .expect("valid request");
        self.sender.ready().await.expect("connection ready");
        let response = self.sender.send_request(request).await.expect("response");
        read_reply(response).await
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send(Method::GET, path, "").await
    }
}

async fn read_reply(response: hyper::Response<hyper::body::Incoming>) -> Reply {
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("read body").to_bytes();
    Reply {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).expect("utf-8 body"),
    }
}

/// GET on a fresh connection.
async fn get(addr: SocketAddr, path: &str) -> Reply {
    Http1::open(addr).await.get(path).await
}

/// POST /control on a fresh connection.
async fn control(addr: SocketAddr, body: &str) -> Reply {
    Http1::open(addr)
        .await
        .send(Method::POST, "/control", body)
        .await
}

/// What the forward proxy was sent.
#[derive(Debug, Clone)]
struct Seen {
    request_line: String,
    host: Option<String>,
    proxy_authorization: Option<String>,
}

/// A minimal forward proxy: records each request's line and headers, then
/// sends it to `backend` whatever host it names (so `servicea.local` needs
/// no DNS), with `Connection: close`, and relays the answer.
struct Proxy {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Proxy {
    async fn start(backend: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(relay(client, backend, Arc::clone(&record)));
            }
        });
        Self { addr, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("proxy log").clone()
    }
}

async fn relay(client: TcpStream, backend: SocketAddr, record: Arc<Mutex<Vec<Seen>>>) {
    let mut client = tokio::io::BufReader::new(client);
    let mut request_line = String::new();
    if client.read_line(&mut request_line).await.unwrap_or(0) == 0 {
        return;
    }
    let request_line = request_line.trim_end().to_owned();
    let (mut host, mut proxy_authorization) = (None, None);
    loop {
        let mut line = String::new();
        client.read_line(&mut line).await.expect("read a header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("a header line");
        match name.to_ascii_lowercase().as_str() {
            "host" => host = Some(value.trim().to_owned()),
            "proxy-authorization" => proxy_authorization = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    record.lock().expect("proxy log").push(Seen {
        request_line: request_line.clone(),
        host: host.clone(),
        proxy_authorization,
    });
    let target: Uri = request_line
        .split(' ')
        .nth(1)
        .and_then(|uri| uri.parse().ok())
        .expect("a request target");
    let path = target.path_and_query().map_or("/", |p| p.as_str());
    let mut upstream = TcpStream::connect(backend)
        .await
        .expect("proxy reaches backend");
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        host.unwrap_or_default()
    );
    upstream.write_all(head.as_bytes()).await.expect("forward");
    let mut client = client.into_inner();
    let _ = tokio::io::copy(&mut upstream, &mut client).await;
    let _ = client.shutdown().await;
}

#[tokio::test]
async fn text_answers_every_ordinary_path_and_names_the_instance() {
    let app = DemoApp::start(&["--text", "Hello world!", "--name", "blue-1"]);
    for path in ["/", "/some/path?x=1", "/health/not-quite"] {
        let reply = get(app.addr, path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(reply.body, "Hello world!", "{path}");
        assert_eq!(reply.instance(), "blue-1", "{path}");
        assert_eq!(reply.headers[CONTENT_TYPE], "text/plain; charset=utf-8");
    }
}

#[tokio::test]
async fn default_text_and_instance_name_from_the_environment() {
    let app = DemoApp::start_with_env(&[], &[("TURNOUT_INSTANCE", "from-env")]);
    let reply = get(app.addr, "/").await;
    assert_eq!(reply.body, "Hello from turnout demo-app\n");
    assert_eq!(reply.instance(), "from-env");

    // An empty variable means unset, not an error.
    let app = DemoApp::start_with_env(&[], &[("TURNOUT_INSTANCE", "")]);
    assert!(!get(app.addr, "/").await.instance().is_empty());
}

#[tokio::test]
async fn instance_name_defaults_to_the_host_name() {
    let app = DemoApp::start(&[]);
    let reply = get(app.addr, "/").await;
    let expected = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| reply.instance().to_owned());
    assert!(!reply.instance().is_empty());
    assert_eq!(reply.instance(), expected);
}

#[tokio::test]
async fn port_comes_from_the_port_variable_and_listen_overrides() {
    // PORT=0 with no --port: the app must read the variable to get an
    // ephemeral port instead of the default 8080.
    let from_env = DemoApp::spawn(&[], &[("PORT", "0")]);
    assert_ne!(from_env.addr.port(), 8080);
    assert_eq!(get(from_env.addr, "/health").await.status, StatusCode::OK);

    let listen = DemoApp::spawn(&["--listen", "127.0.0.1:0", "--port", "8080"], &[]);
    assert_ne!(listen.addr.port(), 8080);
    assert!(listen.addr.ip().is_loopback());
    assert_eq!(get(listen.addr, "/health").await.status, StatusCode::OK);
}

#[tokio::test]
async fn health_follows_the_flag_and_control() {
    let healthy = DemoApp::start(&[]);
    let reply = get(healthy.addr, "/health").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::OK, "ok\n")
    );

    let app = DemoApp::start(&["--unhealthy", "--name", "sick"]);
    let reply = get(app.addr, "/health").await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.instance(), "sick");
    assert_eq!(
        control(app.addr, r#"{"healthy":true}"#).await.status,
        StatusCode::OK
    );
    assert_eq!(get(app.addr, "/health").await.status, StatusCode::OK);
    assert_eq!(
        control(app.addr, r#"{"healthy":false}"#).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(app.addr, "/health").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
}

#[tokio::test]
async fn upstream_chaining_prefixes_the_upstream_body() {
    let backend = DemoApp::start(&["--text", "world!", "--name", "backend"]);
    let frontend = DemoApp::start(&[
        "--upstream",
        &backend.url(),
        "--prefix",
        "Hello ",
        "--name",
        "frontend",
    ]);
    let mut connection = Http1::open(frontend.addr).await;
    // Several requests on one connection: each makes its own upstream call.
    for _ in 0..3 {
        let reply = connection.get("/any/path").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "Hello world!");
        assert_eq!(reply.instance(), "frontend");
    }
    assert_eq!(get(backend.addr, "/stats").await.json()["requests"], 3);
}

#[tokio::test]
async fn upstream_failures_become_502_naming_the_upstream() {
    let failing = DemoApp::start(&["--fail-rate", "1", "--fail-status", "503"]);
    let frontend = DemoApp::start(&["--upstream", &failing.url(), "--prefix", "Hello "]);
    let reply = get(frontend.addr, "/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(reply.body.contains(&failing.url()), "{}", reply.body);
    assert!(reply.body.contains("answered 503"), "{}", reply.body);

    // A port nobody listens on: bind one, note it, close it.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}/");
    let frontend = DemoApp::start(&["--upstream", &url]);
    let reply = get(frontend.addr, "/").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert!(reply.body.contains(&url), "{}", reply.body);
    assert!(
        reply.body.to_lowercase().contains("refused"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn upstream_goes_through_http_proxy_with_credentials() {
    let backend = DemoApp::start(&["--text", "world!"]);
    let proxy = Proxy::start(backend.addr).await;
    // Percent-encoded userinfo: the header must carry the decoded
    // "user@corp:p:ss".
    let proxy_url = format!("http://user%40corp:p%3Ass@{}", proxy.addr);
    let frontend = DemoApp::start_with_env(
        &["--upstream", "http://servicea.local/", "--prefix", "Hello "],
        &[("HTTP_PROXY", &proxy_url)],
    );
    let reply = get(frontend.addr, "/").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body, "Hello world!");
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].request_line, "GET http://servicea.local/ HTTP/1.1");
    assert_eq!(seen[0].host.as_deref(), Some("servicea.local"));
    assert_eq!(
        seen[0].proxy_authorization.as_deref(),
        Some("Basic dXNlckBjb3JwOnA6c3M=")
    );
}

#[tokio::test]
async fn lower_case_http_proxy_with_a_token_alone() {
    let backend = DemoApp::start(&["--text", "world!"]);
    let proxy = Proxy::start(backend.addr).await;
    let proxy_url = format!("http://tok3n@{}", proxy.addr);
    let frontend = DemoApp::start_with_env(
        &[
            "--upstream",
            "http://servicea.local:8080/path?q=1",
            "--prefix",
            "Hello ",
        ],
        &[("http_proxy", &proxy_url)],
    );
    assert_eq!(get(frontend.addr, "/").await.body, "Hello world!");
    let seen = proxy.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        seen[0].request_line,
        "GET http://servicea.local:8080/path?q=1 HTTP/1.1"
    );
    // A token alone is the user name with an empty password: "tok3n:".
    assert_eq!(
        seen[0].proxy_authorization.as_deref(),
        Some("Basic dG9rM246")
    );
}

#[tokio::test]
async fn no_proxy_bypasses_the_proxy() {
    let backend = DemoApp::start(&["--text", "world!"]);
    // The proxy would answer from another backend, so a body from the
    // wrong path would show, as well as the proxy's log.
    let decoy = DemoApp::start(&["--text", "proxied!"]);
    let proxy = Proxy::start(decoy.addr).await;
    let proxy_url = format!("http://{}", proxy.addr);
    for no_proxy in [("NO_PROXY", "localhost,127.0.0.1"), ("no_proxy", "*")] {
        let frontend = DemoApp::start_with_env(
            &["--upstream", &backend.url(), "--prefix", "Hello "],
            &[("HTTP_PROXY", &proxy_url), no_proxy],
        );
        assert_eq!(
            get(frontend.addr, "/").await.body,
            "Hello world!",
            "{no_proxy:?}"
        );
    }
    assert!(proxy.seen().is_empty(), "{:?}", proxy.seen());

    // The same upstream without NO_PROXY does go through the proxy, so the
    // assertions above are not vacuous.
    let frontend = DemoApp::start_with_env(
        &["--upstream", &backend.url(), "--prefix", "Hello "],
        &[("HTTP_PROXY", &proxy_url)],
    );
    assert_eq!(get(frontend.addr, "/").await.body, "Hello proxied!");
    assert_eq!(proxy.seen().len(), 1);
}

#[tokio::test]
async fn unusable_proxy_variable_is_refused_at_start() {
    let (code, stderr) = refused(
        &["--upstream", "http://servicea.local/"],
        &[("HTTP_PROXY", "not a url")],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("HTTP_PROXY is set but is not a proxy URL"),
        "{stderr}"
    );
}

#[tokio::test]
async fn control_reports_and_switches_failures_with_status_and_rate() {
    let app = DemoApp::start(&["--text", "fine", "--name", "c1"]);
    let reply = get(app.addr, "/control").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({"fail_status": 500, "fail_rate": 0.0, "latency_ms": 0, "healthy": true})
    );

    let reply = control(app.addr, r#"{"fail_status":503,"fail_rate":0.5}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({"fail_status": 503, "fail_rate": 0.5, "latency_ms": 0, "healthy": true})
    );
    assert_eq!(get(app.addr, "/control").await.json(), reply.json());

    let mut connection = Http1::open(app.addr).await;
    let mut failed = 0;
    for _ in 0..200 {
        let reply = connection.get("/").await;
        assert_eq!(reply.instance(), "c1");
        match reply.status {
            StatusCode::OK => assert_eq!(reply.body, "fine"),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(reply.body.starts_with("injected failure"), "{}", reply.body);
                failed += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    // Counted, not random: 200 requests at 0.5 hold 100 failures, give or
    // take one.
    assert!((99..=101).contains(&failed), "{failed} failures out of 200");
    // Control paths are never failed.
    assert_eq!(get(app.addr, "/health").await.status, StatusCode::OK);
    let stats = get(app.addr, "/stats").await.json();
    assert_eq!(stats["requests"], 200);
    assert_eq!(stats["failed"], failed);

    assert_eq!(
        control(app.addr, r#"{"fail_rate":1}"#).await.status,
        StatusCode::OK
    );
    for _ in 0..20 {
        assert_eq!(
            connection.get("/").await.status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
    assert_eq!(
        control(app.addr, r#"{"fail_rate":0}"#).await.status,
        StatusCode::OK
    );
    for _ in 0..20 {
        assert_eq!(connection.get("/").await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn failure_flags_apply_from_the_start_but_not_to_control_paths() {
    let app = DemoApp::start(&["--fail-rate", "1.0", "--fail-status", "418"]);
    assert_eq!(get(app.addr, "/").await.status, StatusCode::IM_A_TEAPOT);
    assert_eq!(
        get(app.addr, "/whoami").await.status,
        StatusCode::IM_A_TEAPOT
    );
    assert_eq!(get(app.addr, "/health").await.status, StatusCode::OK);
    let settings = get(app.addr, "/control").await;
    assert_eq!(settings.status, StatusCode::OK);
    assert_eq!(settings.json()["fail_status"], 418);
    assert_eq!(get(app.addr, "/stats").await.status, StatusCode::OK);
}

#[tokio::test]
async fn latency_delays_ordinary_answers_by_at_least_the_setting() {
    let app = DemoApp::start(&["--latency-ms", "200"]);
    let started = Instant::now();
    assert_eq!(get(app.addr, "/").await.status, StatusCode::OK);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");

    let reply = control(app.addr, r#"{"latency_ms":350}"#).await;
    assert_eq!(reply.json()["latency_ms"], 350);
    let started = Instant::now();
    assert_eq!(get(app.addr, "/").await.status, StatusCode::OK);
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(350), "{elapsed:?}");
}

#[tokio::test]
async fn health_and_control_ignore_latency() {
    // An hour of latency: if /health or /control waited for it, the
    // (deliberately generous) guard below would fire long before.
    let app = DemoApp::start(&["--latency-ms", "3600000"]);
    let guard = Duration::from_secs(60);
    let health = tokio::time::timeout(guard, get(app.addr, "/health"))
        .await
        .expect("/health is not delayed");
    assert_eq!(health.status, StatusCode::OK);
    let settings = tokio::time::timeout(guard, get(app.addr, "/control"))
        .await
        .expect("/control is not delayed");
    assert_eq!(settings.json()["latency_ms"], 3_600_000);
}

#[tokio::test]
async fn bad_control_bodies_are_400_naming_the_field_and_change_nothing() {
    let app = DemoApp::start(&["--fail-status", "503", "--latency-ms", "5"]);
    let before = get(app.addr, "/control").await.json();
    let cases = [
        ("{not json", "body is not valid JSON"),
        ("[]", "body must be a JSON object"),
        (
            r#"{"fail_status":99}"#,
            "fail_status must be an HTTP status code from 200 to 599",
        ),
        (r#"{"fail_status":600}"#, "fail_status"),
        (
            r#"{"fail_rate":1.5}"#,
            "fail_rate must be a number from 0.0 to 1.0, got 1.5",
        ),
        (r#"{"fail_rate":"half"}"#, "fail_rate"),
        (
            r#"{"latency_ms":-1}"#,
            "latency_ms must be a whole number of milliseconds",
        ),
        (r#"{"healthy":"yes"}"#, "healthy must be true or false"),
        (
            r#"{"fail_rate":0.5,"colour":"red"}"#,
            "unknown field \"colour\"",
        ),
        // A valid field next to an invalid one is not applied either.
        (r#"{"fail_status":502,"latency_ms":1e9}"#, "latency_ms"),
    ];
    for (body, want) in cases {
        let reply = control(app.addr, body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        let message = reply.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(want), "{body}: {message:?} lacks {want:?}");
    }
    assert_eq!(get(app.addr, "/control").await.json(), before);

    let mut connection = Http1::open(app.addr).await;
    let reply = connection.send(Method::DELETE, "/control", "").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.headers["allow"], "GET, HEAD, POST");
}

#[tokio::test]
async fn h2c_with_prior_knowledge_is_served() {
    let app = DemoApp::start(&["--text", "over h2", "--name", "h2"]);
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2c handshake");
    tokio::spawn(connection);
    for path in ["/", "/health"] {
        let request = Request::builder()
            .uri(format!("http://{}{path}", app.addr))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let reply = read_reply(sender.send_request(request).await.expect("h2 response")).await;
        assert_eq!(reply.version, Version::HTTP_2);
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.instance(), "h2");
        if path == "/" {
            assert_eq!(reply.body, "over h2");
        }
    }
}

#[tokio::test]
async fn whoami_echoes_the_request() {
    let app = DemoApp::start(&["--name", "me"]);
    let mut connection = Http1::open(app.addr).await;
    let request = Request::builder()
        .uri("/whoami?x=1")
        .header(HOST, "serviceb.localhost")
        .header("x-test", "42")
        .body(Full::new(Bytes::new()))
        .unwrap();
    connection.sender.ready().await.unwrap();
    let reply = read_reply(connection.sender.send_request(request).await.unwrap()).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.body.starts_with("instance: me\nremote: 127.0.0.1:"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("\nGET /whoami?x=1 HTTP/1.1\n"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("\nhost: serviceb.localhost\n"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("\nx-test: 42\n"), "{}", reply.body);
}

#[tokio::test]
async fn sigterm_lets_the_request_in_flight_finish() {
    let mut app = DemoApp::start(&["--text", "finished", "--latency-ms", "500"]);
    let addr = app.addr;
    let in_flight = tokio::spawn(async move { get(addr, "/").await });
    // Wait until the app holds the request, so SIGTERM surely arrives
    // while it is in flight.
    loop {
        if get(addr, "/stats").await.json()["in_flight"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.terminate();
    let reply = in_flight.await.expect("request task");
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "finished");
    let status = app.exited().await;
    assert!(status.success(), "{status:?}");
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--fail-rate", "1.5"], "--fail-rate"),
        (&["--fail-rate", "-0.1"], "0.0 to 1.0"),
        (&["--fail-status", "99"], "--fail-status"),
        (&["--fail-status", "600"], "200 to 599"),
        (&["--latency-ms", "-1"], "--latency-ms"),
        (
            &["--upstream", "https://servicea.local/"],
            "only http:// upstreams are supported",
        ),
        (&["--upstream", "servicea.local"], "--upstream"),
        (&["--prefix", "Hello "], "--upstream"),
        (
            &["--text", "a", "--upstream", "http://a.local/"],
            "cannot be used with",
        ),
        (&["--name", "bad\u{1}name"], "--name"),
        (&["--port", "70000"], "--port"),
        (&["--no-such-flag"], "--no-such-flag"),
    ];
    for (args, want) in cases {
        let (code, stderr) = refused(args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr:?} lacks {want:?}");
    }
}

#[test]
fn help_documents_every_flag_and_the_control_shape() {
    let output = Command::new(env!("CARGO_BIN_EXE_turnout"))
        .args(["demo-app", "--help"])
        .output()
        .expect("run --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--listen",
        "--bind",
        "--port",
        "[env: PORT=",
        "--text",
        "--upstream",
        "--prefix",
        "--name",
        "[env: TURNOUT_INSTANCE=",
        "--fail-status",
        "--fail-rate",
        "--latency-ms",
        "--unhealthy",
        "HTTP_PROXY",
        "NO_PROXY",
        r#"{"fail_status":500,"fail_rate":0.0,"latency_ms":0,"healthy":true}"#,
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}
