//! `calsync run` as a child process of a test: started with a clean environment
//! (see [`super::binary`]), its stdout and stderr written to a file (a pipe nobody
//! reads would eventually block it), stopped with SIGTERM as systemd stops it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::binary;
use super::net::{wait_listening, wait_ok};

/// One running `calsync run`.
pub struct DaemonProcess {
    pub child: Child,
    /// The port of its `server.listen`.
    pub port: u16,
    pub http: reqwest::Client,
    output: PathBuf,
}

impl DaemonProcess {
    /// Starts `calsync --config CONFIG run`, whose config listens on `port`,
    /// with its output going to the file `output`. `NOTIFY_SOCKET` is removed
    /// (the test may run under systemd); `tweak` may set it, or other variables.
    pub fn start(
        config: &Path,
        port: u16,
        output: PathBuf,
        tweak: impl FnOnce(&mut Command),
    ) -> DaemonProcess {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let file = std::fs::File::create(&output)
            .unwrap_or_else(|e| panic!("creating {}: {e}", output.display()));
        let mut command = binary::calsync();
        command
            .arg("--config")
            .arg(config)
            .arg("run")
            .env_remove("NOTIFY_SOCKET")
            .stdout(Stdio::from(
                file.try_clone().expect("cloning the output file"),
            ))
            .stderr(Stdio::from(file));
        tweak(&mut command);
        let child = command.spawn().expect("starting calsync run");
        DaemonProcess {
            child,
            port,
            http: reqwest::Client::new(),
            output,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Everything it printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Sends `signal` (`"HUP"`, `"TERM"`, …); whether it was delivered.
    pub fn signal(&self, signal: &str) -> bool {
        binary::signal(&self.child, signal)
    }

    /// Waits until its HTTP server answers at all.
    pub async fn wait_listening(&self) {
        wait_listening(&self.http, &self.url("/healthz")).await;
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        wait_ok(&self.http, &self.url("/readyz")).await;
    }

    /// SIGTERM, then its exit code (`None` when it did not stop `within` and was
    /// killed) and everything it printed.
    pub async fn stop(mut self, within: Duration) -> (Option<i32>, String) {
        self.signal("TERM");
        let code = match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => Some(status.expect("waiting for calsync").code().unwrap_or(-1)),
            Err(_) => {
                let _ = self.child.kill().await;
                None
            }
        };
        (code, self.output())
    }
}

/// A `calsync run` with its own simulator and SQLite file, for tests of what it
/// serves over HTTP (the console): one pass at start, then none for a year.
pub struct RunningDaemon {
    /// Killed on drop.
    process: DaemonProcess,
    pub port: u16,
    pub sim: calsync::simulate::Simulator,
    /// Follows no redirects and keeps no cookies: tests see every answer.
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// What a [`RunningDaemon`] is started with.
pub struct DaemonSpec<'a> {
    pub accounts: Vec<super::config::AccountSpec>,
    /// Event types the simulator starts with, per account key.
    pub seed_event_types: usize,
    /// Lines of `[server]` after `listen` (tokens).
    pub server: &'a str,
    /// Further sections (e.g. `[console]`).
    pub extra: &'a str,
}

impl RunningDaemon {
    /// Starts the simulator and `calsync run`, and waits until `/readyz` answers
    /// 200: the first pass finished.
    pub async fn start(spec: DaemonSpec<'_>) -> RunningDaemon {
        // No rate limit worth the name: a browser test runs many passes.
        let sim = calsync::simulate::Simulator::start(
            "127.0.0.1:0".parse().expect("loopback"),
            calsync::simulate::SimConfig {
                api_keys: spec.accounts.iter().map(|a| a.api_key.clone()).collect(),
                seed_event_types: spec.seed_event_types,
                rate_limit: 100_000,
                ..calsync::simulate::SimConfig::default()
            },
        )
        .await
        .expect("starting the simulator");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = super::net::free_port();
        let db = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("calsync.db").display()
        );
        let mut text = super::config::ConfigFile::new(&db, &sim.base_url())
            .set("calcom.retry_initial_delay_ms", 10)
            .set("calcom.max_attempts", 2)
            .accounts(&spec.accounts)
            .text();
        text.push_str(&format!(
            "\n[sync]\nschedule = \"0 0 0 1 1 *\"\njitter_secs = 0\n\n[server]\nlisten = {}\n{}\n{}\n",
            super::config::toml_string(&format!("127.0.0.1:{port}")),
            spec.server,
            spec.extra,
        ));
        let cfg = super::config::write_text(dir.path().join("calsync.toml"), &text, 0o600);
        let migrated = binary::calsync()
            .args(["--config", cfg.to_str().expect("utf-8 path"), "migrate"])
            .output()
            .await
            .expect("running calsync migrate");
        assert!(
            migrated.status.success(),
            "{}",
            String::from_utf8_lossy(&migrated.stderr)
        );
        let process = DaemonProcess::start(&cfg, port, dir.path().join("calsync.log"), |_| {});
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        let running = RunningDaemon {
            process,
            port,
            sim,
            http,
            _dir: dir,
        };
        wait_ok(&running.http, &running.url("/readyz")).await;
        running
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A pass now, through the operator API (`POST /api/v1/reconcile`).
    pub async fn reconcile(&self, admin_token: &str) {
        let r = self
            .http
            .post(self.url("/api/v1/reconcile"))
            .bearer_auth(admin_token)
            .send()
            .await
            .expect("POST /api/v1/reconcile");
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }

    /// Everything the daemon logged so far (stdout and stderr).
    pub fn logs(&self) -> String {
        self.process.output()
    }
}
