//! What the console's browser tests share: Debian's Chromium and
//! chromedriver found and started (one browser at a time), WebDriver
//! helpers, screenshots under `target/console-screenshots/`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::support::{self, Server};

pub const APP: &str = "hello";
pub const WAIT: Duration = Duration::from_secs(30);

/// One browser test at a time: three Chromiums at once on a two-core
/// machine starve the servers they watch.
pub static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Where Debian puts the browser and its driver.
pub fn browser() -> Option<(PathBuf, PathBuf)> {
    let find = |names: &[&str]| {
        names
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .or_else(|| {
                let path = std::env::var_os("PATH")?;
                std::env::split_paths(&path)
                    .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
                    .find(|p| p.exists())
            })
    };
    let chromium = find(&["/usr/bin/chromium", "chromium", "chromium-browser"])?;
    let driver = find(&["/usr/bin/chromedriver", "chromedriver"])?;
    Some((chromium, driver))
}

/// chromedriver in its own process group, killed with every browser it
/// started when dropped.
pub struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    pub fn start(path: &Path) -> Driver {
        use std::os::unix::process::CommandExt;
        // A free port for the driver (it cannot report one it chose).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        support::kill_all(&[self.child.id()]);
        let _ = self.child.wait();
    }
}

/// Kills what is left of the instances logging under a data dir.
pub struct Instances(pub PathBuf);

impl Drop for Instances {
    fn drop(&mut self) {
        support::kill_all(&support::processes_logging_to(&self.0));
    }
}

/// A browser session on a fresh profile.
pub async fn open(chromium: &Path, driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            // As root Chromium runs only without its sandbox.
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1700",
                     "--no-first-run", "--no-default-browser-check"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    tokio::time::timeout(
        WAIT,
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port)),
    )
    .await
    .expect("a browser session within 30 s")
    .expect("a browser session")
}

/// Where the screenshots go: `target/console-screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| support::root().join("target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub async fn screenshot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name} is a PNG");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

/// Runs `script` (a function body returning a value) until it returns
/// something truthy, and returns that; fails after `WAIT` with `what`
/// and the last value.
pub async fn wait_js(c: &Client, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = c.execute(script, vec![]).await.unwrap();
        let truthy = match &v {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::String(s) => !s.is_empty(),
            Value::Number(n) => n.as_f64() != Some(0.0),
            _ => true,
        };
        if truthy {
            return v;
        }
        assert!(Instant::now() < deadline, "never: {what} (last: {v})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn css(c: &Client, selector: &str) -> fantoccini::elements::Element {
    c.find(Locator::Css(selector))
        .await
        .unwrap_or_else(|e| panic!("no {selector}: {e}"))
}

pub async fn log_in(c: &Client, server: &Server, token: &str) {
    c.goto(&format!("http://{}/", server.admin)).await.unwrap();
    let field = css(c, "#token").await;
    field.clear().await.unwrap();
    field.send_keys(token).await.unwrap();
    field.send_keys(&Key::Enter.to_string()).await.unwrap();
}

/// Accepts the open confirmation dialog after checking that its accept
/// button names `action`.
pub async fn accept(c: &Client, action: &str) {
    wait_js(
        c,
        "the dialog opens",
        "return document.querySelector('#ask').open",
    )
    .await;
    let ok = css(c, "#ask-ok").await;
    assert_eq!(ok.text().await.unwrap(), action);
    ok.click().await.unwrap();
    wait_js(
        c,
        "the dialog closes",
        "return !document.querySelector('#ask').open",
    )
    .await;
}

pub fn state_is(state: &str) -> String {
    format!(
        "return document.querySelector('[data-fact=state]')?.textContent === '{state}' \
         && document.querySelector('#release-facts').textContent"
    )
}
