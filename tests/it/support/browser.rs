//! Headless Chromium through WebDriver (fantoccini and Debian's chromedriver),
//! with the checks every console page gets: no console errors, and axe-core
//! without serious or critical violations.
//!
//! The tools come from `.ci/run` section 1: `chromium` and `chromium-driver`
//! (apt), `axe-core` (npm, into `~/.cache/calsync-npm`, or the file named by
//! `CALSYNC_TEST_AXE_CORE`). Without them a test is skipped with a message,
//! except under `CI=true`, where it fails: CI always runs the browser.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use super::net::free_port;

/// What the browser tests need on the machine.
pub struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
    /// The source of `axe.min.js`.
    axe: String,
}

fn axe_path() -> PathBuf {
    std::env::var_os("CALSYNC_TEST_AXE_CORE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/calsync-npm/node_modules/axe-core/axe.min.js")
        })
}

/// The tools, or `None` (with a message) when one is missing outside CI.
/// Under `CI=true` a missing tool fails the test.
pub fn tools() -> Option<Tools> {
    // Debian's /usr/bin/chromium is a wrapper script; chromedriver wants the
    // browser itself.
    let chromium = ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let chromedriver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let axe = std::fs::read_to_string(axe_path()).ok();
    let mut missing = Vec::new();
    if chromium.is_none() {
        missing.push("chromium (apt-get install chromium)".to_owned());
    }
    if chromedriver.is_none() {
        missing.push("chromedriver (apt-get install chromium-driver)".to_owned());
    }
    if axe.is_none() {
        missing.push(format!(
            "axe-core at {} (npm install --no-save --prefix ~/.cache/calsync-npm axe-core@4)",
            axe_path().display()
        ));
    }
    if !missing.is_empty() {
        let message = format!("the browser test needs {}", missing.join(", "));
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}; CI=true, so it must run (.ci/run section 1 installs them)");
        }
        eprintln!("SKIPPED: {message}");
        return None;
    }
    Some(Tools {
        chromium: chromium?,
        chromedriver: chromedriver?,
        axe: axe?,
    })
}

/// One headless Chromium with its own chromedriver and profile.
pub struct Browser {
    pub client: Client,
    axe: String,
    _driver: Child,
    _profile: tempfile::TempDir,
}

/// `POST /session/{id}/se/log {"type": "browser"}`: the console messages since
/// the last call (chromedriver's log endpoint).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (hyper::Method, Option<String>) {
        (
            hyper::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// `POST /session/{id}/goog/cdp/execute`: a Chrome DevTools command.
#[derive(Debug)]
struct Cdp(Value);

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (hyper::Method, Option<String>) {
        (hyper::Method::POST, Some(self.0.to_string()))
    }
}

impl Browser {
    /// From now on the pages see `prefers-color-scheme: dark`.
    pub async fn prefer_dark(&self) {
        self.client
            .issue_cmd(Cdp(json!({
                "cmd": "Emulation.setEmulatedMedia",
                "params": {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
            })))
            .await
            .expect("emulating a dark system theme");
    }

    /// The page's computed background colour (`rgb(…)`).
    pub async fn background(&self) -> String {
        self.client
            .execute(
                "return getComputedStyle(document.body).backgroundColor;",
                vec![],
            )
            .await
            .expect("reading a computed style")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A browser whose `Accept-Language` is `language` (e.g. `de-DE,de`).
    pub async fn start(tools: &Tools, language: &str) -> Browser {
        let port = free_port();
        let driver = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting chromedriver");
        let profile = tempfile::tempdir().expect("a fresh profile directory");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        // A first start on a fresh machine (font caches) can be slow.
        let deadline = Instant::now() + Duration::from_secs(60);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let lang = language.split(',').next().unwrap_or("en");
        let caps = json!({
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            // axe-core on a slow machine may need more than the default 30 s.
            "timeouts": {"script": 120_000, "pageLoad": 120_000},
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    // DevTools over a pipe, not a TCP port: a port chromedriver
                    // picks could be one another test just found free.
                    "--remote-debugging-pipe",
                    format!("--lang={lang}"),
                    format!("--user-data-dir={}", profile.path().display()),
                    "--window-size=1280,1000",
                ],
                "prefs": {"intl.accept_languages": language},
            }
        });
        let Value::Object(caps) = caps else {
            unreachable!("an object")
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&base)
            .await
            .expect("a WebDriver session with headless Chromium");
        Browser {
            client,
            axe: tools.axe.clone(),
            _driver: driver,
            _profile: profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigating");
    }

    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .text()
            .await
            .expect("element text")
    }

    pub async fn has(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("finding elements")
            .is_empty()
    }

    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .expect("clicking");
    }

    /// Clicks something that loads a new page, and waits until that page has
    /// loaded (a click may return before the navigation it starts).
    pub async fn click_to_page(&self, css: &str) {
        self.client
            .execute("window.__calsyncOldPage = true;", vec![])
            .await
            .expect("marking the page");
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let loaded = self
                .client
                .execute(
                    "return window.__calsyncOldPage === undefined && document.readyState === 'complete';",
                    vec![],
                )
                .await
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            if loaded {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "clicking {css} loaded no new page"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        field.clear().await.expect("clearing a field");
        field.send_keys(value).await.expect("typing");
    }

    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    pub async fn source(&self) -> String {
        self.client.source().await.expect("page source")
    }

    /// Error messages in the browser console since the last call.
    pub async fn console_errors(&self) -> Vec<String> {
        let log = self
            .client
            .issue_cmd(BrowserLog)
            .await
            .expect("reading the browser log (chromedriver's /se/log)");
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// axe-core's serious and critical violations on the current page.
    pub async fn axe_violations(&self) -> Vec<Value> {
        self.client
            .execute(&self.axe, vec![])
            .await
            .expect("injecting axe-core");
        let found = self
            .client
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                axe.run(document, { resultTypes: ['violations'] })
                  .then(r => done(r.violations
                    .filter(v => v.impact === 'serious' || v.impact === 'critical')
                    .map(v => ({ id: v.id, impact: v.impact, help: v.help,
                                 nodes: v.nodes.map(n => n.target.join(' ')) }))))
                  .catch(e => done([{ id: 'axe-failed', help: String(e) }]));"#,
                vec![],
            )
            .await
            .expect("running axe-core");
        found.as_array().cloned().unwrap_or_default()
    }

    /// The checks of every page: no console errors, no serious or critical
    /// accessibility violations.
    pub async fn check_page(&self, what: &str) {
        let errors = self.console_errors().await;
        assert!(errors.is_empty(), "{what}: console errors {errors:#?}");
        let violations = self.axe_violations().await;
        assert!(
            violations.is_empty(),
            "{what}: axe-core found {violations:#?}"
        );
    }

    /// Sizes the window to the page's height, then saves a PNG.
    pub async fn screenshot(&self, path: &Path) {
        let height = self
            .client
            .execute(
                "return Math.ceil(document.documentElement.scrollHeight);",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_u64())
            .unwrap_or(1000)
            // The window's own frame takes some of its height.
            .saturating_add(100)
            .clamp(600, 2400) as u32;
        let _ = self.client.set_window_size(1280, height).await;
        let png = self.client.screenshot().await.expect("a screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot directory");
        }
        std::fs::write(path, png).expect("writing the screenshot");
    }

    /// `POST` from the page's own origin with the browser's cookies (as a
    /// forged or broken form would), returning the status.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> u64 {
        let fields: serde_json::Map<String, Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect();
        self.client
            .execute_async(
                r#"const [path, fields, done] = arguments;
                fetch(path, { method: 'POST', credentials: 'same-origin', redirect: 'manual',
                              body: new URLSearchParams(fields) })
                  .then(r => done(r.status)).catch(e => done(-1));"#,
                vec![Value::String(path.to_owned()), Value::Object(fields)],
            )
            .await
            .expect("posting from the page")
            .as_u64()
            .unwrap_or(0)
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}
