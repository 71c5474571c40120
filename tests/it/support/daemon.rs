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
