//! A real `calsync run` process with its own simulator and SQLite file, for tests
//! of what it serves over HTTP (the console): its config is written with the
//! shared [`accounts_toml`] writer, and it is killed when dropped.

use std::process::Stdio;

use calsync::simulate::{SimConfig, Simulator};
use tokio::process::{Child, Command};

use super::app::{AccountSpec, accounts_toml, toml_string};
use super::net::{free_port, wait_ok};

pub const BIN: &str = env!("CARGO_BIN_EXE_calsync");

/// A running daemon.
pub struct RunningDaemon {
    /// Killed on drop.
    _child: Child,
    pub port: u16,
    pub sim: Simulator,
    /// Follows no redirects and keeps no cookies: tests see every answer.
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

/// What the daemon is started with.
pub struct DaemonSpec<'a> {
    pub accounts: Vec<AccountSpec>,
    /// Event types the simulator starts with, per account key.
    pub seed_event_types: usize,
    /// Lines of `[server]` after `listen` (tokens).
    pub server: &'a str,
    /// Further sections (e.g. `[console]`).
    pub extra: &'a str,
}

impl RunningDaemon {
    /// Starts the simulator and `calsync run` (one pass at start, then none for a
    /// year), and waits until `/readyz` answers 200: the first pass finished.
    pub async fn start(spec: DaemonSpec<'_>) -> RunningDaemon {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let sim = Simulator::start(
            "127.0.0.1:0".parse().expect("loopback"),
            SimConfig {
                api_keys: spec.accounts.iter().map(|a| a.api_key.clone()).collect(),
                seed_event_types: spec.seed_event_types,
                rate_limit: 100_000,
                ..SimConfig::default()
            },
        )
        .await
        .expect("starting the simulator");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let db = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("calsync.db").display()
        );
        let mut toml = accounts_toml(
            &db,
            &sim.base_url(),
            "retry_initial_delay_ms = 10\nmax_attempts = 2\n",
            &spec.accounts,
        );
        toml.push_str(&format!(
            "\n[sync]\nschedule = \"0 0 0 1 1 *\"\njitter_secs = 0\n\n[server]\nlisten = {}\n{}\n{}\n",
            toml_string(&format!("127.0.0.1:{port}")),
            spec.server,
            spec.extra,
        ));
        let cfg = dir.path().join("calsync.toml");
        std::fs::write(&cfg, toml).expect("writing the config");
        let migrated = Command::new(BIN)
            .args(["--config", cfg.to_str().expect("utf-8 path"), "migrate"])
            .output()
            .await
            .expect("running calsync migrate");
        assert!(
            migrated.status.success(),
            "{}",
            String::from_utf8_lossy(&migrated.stderr)
        );
        // A file, not a pipe: nobody drains a pipe while the test runs.
        let log = std::fs::File::create(dir.path().join("calsync.log")).expect("log file");
        let child = Command::new(BIN)
            .args(["--config", cfg.to_str().expect("utf-8 path"), "run"])
            .stdout(Stdio::from(log.try_clone().expect("log file")))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("starting calsync run");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        let running = RunningDaemon {
            _child: child,
            port,
            sim,
            http,
            dir,
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
        std::fs::read_to_string(self.dir.path().join("calsync.log")).unwrap_or_default()
    }
}
