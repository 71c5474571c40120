//! `calsync run` as operators run it: a real process with systemd notifications,
//! the HTTP surface, the operator API, SIGHUP/SIGTERM, and a real Prometheus
//! server scraping it and evaluating the alert rules.

use crate::support::binary;
use crate::support::config::{AccountSpec, ConfigFile};
use crate::support::daemon::DaemonProcess;
use crate::support::net::{free_port, wait_listening};
use crate::support::simulator::simulator;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use calsync::simulate::Simulator;
use serde_json::{Value, json};
use tokio::process::Command;

const KEY: &str = "cal_live_daemon_test_key_0001";
const TOKEN: &str = "admin-token-for-tests-0123456789";

struct Running {
    process: DaemonProcess,
    /// What was written to [`Running::config_path`] at start.
    config: ConfigFile,
    dir: tempfile::TempDir,
    sim: Simulator,
    /// Everything the daemon sent to $NOTIFY_SOCKET, drained by a thread (like
    /// systemd, so the daemon's datagrams never back up).
    notified: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// The daemon's config: a SQLite file and the log directory in `dir`, the
/// simulator, one account with `key`.
fn config(
    dir: &Path,
    sim: &Simulator,
    port: u16,
    schedule: &str,
    jitter_secs: u64,
    key: &str,
) -> ConfigFile {
    ConfigFile::new(
        &format!("sqlite://{}?mode=rwc", dir.join("calsync.db").display()),
        &sim.base_url(),
    )
    .set("calcom.retry_initial_delay_ms", 10)
    .set("calcom.max_attempts", 2)
    .set("sync.schedule", schedule)
    .set("sync.jitter_secs", jitter_secs as i64)
    .set("sync.shutdown_timeout_secs", 20)
    .set("server.listen", format!("127.0.0.1:{port}"))
    .set("server.admin_token", TOKEN)
    .set("log.directory", dir.join("logs").display().to_string())
    .account(AccountSpec::new("berlin", 1, key))
}

async fn start(schedule: &str) -> Running {
    start_with_jitter(schedule, 0).await
}

async fn start_with_jitter(schedule: &str, jitter_secs: u64) -> Running {
    start_with(schedule, jitter_secs, KEY, true).await
}

/// A daemon with its own simulator and SQLite file. `key` is the account's API
/// key (the simulator knows only [`KEY`]; any other gets 401, like a revoked
/// key); `migrate = false` leaves the database without calsync's tables.
async fn start_with(schedule: &str, jitter_secs: u64, key: &str, migrate: bool) -> Running {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = simulator(&[KEY], 3).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = config(dir.path(), &sim, port, schedule, jitter_secs, key);
    let cfg = config.write(dir.path().join("calsync.toml"));
    if migrate {
        let migrated = binary::calsync()
            .args(["--config", cfg.to_str().unwrap(), "migrate"])
            .output()
            .await
            .unwrap();
        assert!(
            migrated.status.success(),
            "{}",
            String::from_utf8_lossy(&migrated.stderr)
        );
    }

    let sock = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&sock).unwrap();
    let notified = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = notified.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = notify.recv(&mut buf) {
            sink.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    let process = DaemonProcess::start(&cfg, port, dir.path().join("calsync.out"), |run| {
        run.env("NOTIFY_SOCKET", &sock)
            .env("WATCHDOG_USEC", "1000000")
            .env_remove("WATCHDOG_PID");
    });
    Running {
        process,
        config,
        dir,
        sim,
        notified,
    }
}

impl Running {
    fn url(&self, path: &str) -> String {
        self.process.url(path)
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("calsync.toml")
    }

    /// Waits until the daemon has sent `want` (e.g. `READY=1`).
    async fn wait_notify(&self, want: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let seen = self.notified.lock().unwrap().clone();
            if seen.iter().any(|m| m.lines().any(|l| l == want)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no {want} within {within:?}; got {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn wait_ready(&self) {
        self.process.wait_ready().await;
    }

    async fn api(&self, method: reqwest::Method, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.process.http.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// A POST with a JSON body and the admin token.
    async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .process
            .http
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn metrics(&self) -> String {
        self.process
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    fn signal(&self, sig: &str) {
        assert!(self.process.signal(sig), "kill -s {sig}");
    }

    /// SIGTERM; the exit code and everything it printed and wrote to its log
    /// directory.
    async fn stop(self) -> (i32, String) {
        let (code, mut logs) = self.process.stop(Duration::from_secs(30)).await;
        for entry in std::fs::read_dir(self.dir.path().join("logs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            logs.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
        let code = code.unwrap_or_else(|| {
            panic!("calsync did not stop within 30 s of SIGTERM; its logs:\n{logs}")
        });
        (code, logs)
    }
}

#[tokio::test]
async fn after_sigterm_no_new_pass_starts_even_from_a_tick_in_its_jitter() {
    // A tick every second, each waiting up to an hour of jitter before its pass.
    let daemon = start_with_jitter("* * * * * *", 3600).await;
    daemon.wait_ready().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !daemon
        .metrics()
        .await
        .contains("calsync_last_success_timestamp_seconds{")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the first pass did not finish"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let a few ticks start sleeping in their jitter.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let asked = tokio::time::Instant::now();
    let (code, logs) = daemon.stop().await;

    assert_eq!(code, 0, "{logs}");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "stopping waited for a pass that had not started: {:?}\n{logs}",
        asked.elapsed()
    );
    assert!(!logs.contains("did not finish within"), "{logs}");
    let stopping = logs.find("Stopping: no new passes").expect("the stop line");
    let stopped = stopping
        + logs[stopping..]
            .find("calsync stopped")
            .expect("the stopped line");
    assert!(
        !logs[stopping..stopped].contains("Reconcile pass finished"),
        "a pass ran after SIGTERM:\n{logs}"
    );
}

fn promtool() -> Option<PathBuf> {
    let found = ["/usr/bin/promtool", "/usr/local/bin/promtool"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() && std::env::var_os("CI").is_some() {
        panic!("promtool is missing; .ci/run installs the Debian package `prometheus`");
    }
    found
}

#[tokio::test]
async fn the_daemon_notifies_systemd_serves_health_and_stops_cleanly_on_sigterm() {
    let app = start("0 0 * * * *").await;
    app.wait_notify("READY=1", Duration::from_secs(30)).await;
    app.wait_notify("WATCHDOG=1", Duration::from_secs(5)).await;
    app.wait_ready().await;
    let (status, body) = app.api(reqwest::Method::GET, "/healthz", None).await;
    assert_eq!(status, 200, "{body}");

    let metrics = app.metrics().await;
    assert!(
        metrics.contains("calsync_imported_total{account=\"berlin\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("calsync_build_info"));
    assert!(!metrics.contains(KEY) && !metrics.contains(TOKEN));
    if let Some(promtool) = promtool() {
        let mut child = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(metrics.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let notified = app.notified.clone();
    let (code, logs) = app.stop().await;
    assert_eq!(code, 0, "{logs}");
    assert!(logs.contains("calsync stopped"), "{logs}");
    assert!(
        notified
            .lock()
            .unwrap()
            .iter()
            .any(|m| m.contains("STOPPING=1"))
    );
    assert!(
        !logs.contains(KEY) && !logs.contains(TOKEN),
        "a secret reached the logs"
    );
}

#[tokio::test]
async fn the_operator_api_needs_the_token_and_answers_the_status_tooltip() {
    let app = start("0 0 * * * *").await;
    app.wait_ready().await;
    for token in [None, Some("wrong-token-wrong-token")] {
        for (m, p) in [
            (reqwest::Method::GET, "/api/v1/drift"),
            (reqwest::Method::POST, "/api/v1/reconcile"),
            (reqwest::Method::GET, "/api/v1/services/1"),
            (reqwest::Method::POST, "/api/v1/services/1/push"),
        ] {
            let (status, body) = app.api(m, p, token).await;
            assert_eq!(status, 401, "{p} with {token:?}: {body}");
            assert!(!body.to_string().contains(TOKEN));
        }
    }
    let (status, s) = app
        .api(reqwest::Method::GET, "/api/v1/services/1", Some(TOKEN))
        .await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["sync_status"], "synced");
    assert_eq!(s["sync_direction"], "platform → Cal.com");
    assert!(s["bookable"].is_boolean() && s["last_calcom_sync"].is_string());
    let et = s["calcom_event_type_id"].as_i64().unwrap();

    app.sim.edit_event_type(et, json!({"lengthInMinutes": 7}));
    let (status, report) = app
        .api(reqwest::Method::POST, "/api/v1/reconcile", Some(TOKEN))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["accounts"][0]["counts"]["drifted"], 1, "{report}");
    let (_, drift) = app
        .api(reqwest::Method::GET, "/api/v1/drift", Some(TOKEN))
        .await;
    assert_eq!(drift[0]["field"], "duration_minutes", "{drift}");
    assert_eq!(drift[0]["calcom_value"], "7");
    let (_, s) = app
        .api(reqwest::Method::GET, "/api/v1/services/1", Some(TOKEN))
        .await;
    assert_eq!(s["open_drift"][0]["field"], "duration_minutes", "{s}");

    let (status, pushed) = app
        .api(
            reqwest::Method::POST,
            "/api/v1/services/1/push",
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, 200, "{pushed}");
    assert_ne!(app.sim.event_type(et).unwrap()["lengthInMinutes"], 7);
    let (status, _) = app
        .api(reqwest::Method::GET, "/api/v1/services/999999", Some(TOKEN))
        .await;
    assert_eq!(status, 404);
    let (code, _) = app.stop().await;
    assert_eq!(code, 0);
}

#[tokio::test]
async fn the_operator_api_adopts_acknowledges_and_approves_with_the_decisions_journaled() {
    let app = start("0 0 * * * *").await;
    app.wait_ready().await;
    for (m, p) in [
        (reqwest::Method::POST, "/api/v1/services/1/adopt"),
        (reqwest::Method::POST, "/api/v1/services/1/acknowledge"),
        (reqwest::Method::POST, "/api/v1/accounts/berlin/approve"),
        (reqwest::Method::GET, "/api/v1/decisions"),
    ] {
        assert_eq!(app.api(m, p, None).await.0, 401, "{p}");
    }
    let (_, s) = app
        .api(reqwest::Method::GET, "/api/v1/services/1", Some(TOKEN))
        .await;
    let et = s["calcom_event_type_id"].as_i64().unwrap();
    assert_eq!(s["ownership"]["duration_minutes"], "platform", "{s}");
    assert!(s["last_verified_at"].is_string(), "{s}");
    assert_eq!(s["needs_human"], false, "{s}");
    app.sim.edit_event_type(
        et,
        json!({"lengthInMinutes": 7, "title": "Renamed in Cal.com"}),
    );
    app.api(reqwest::Method::POST, "/api/v1/reconcile", Some(TOKEN))
        .await;

    // Bad bodies are 400s naming the problem; nothing changes.
    let (status, e) = app
        .post_json("/api/v1/services/1/adopt", json!({"fields": ["nmae"]}))
        .await;
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().contains("nmae"), "{e}");
    let (status, e) = app
        .post_json("/api/v1/services/1/acknowledge", json!({"note": "x"}))
        .await;
    assert_eq!(status, 400, "{e}");
    let (status, e) = app
        .post_json(
            "/api/v1/services/1/acknowledge",
            json!({"for": "3 fortnights and a bit", "note": "x"}),
        )
        .await;
    assert_eq!(status, 400, "{e}");
    assert!(e["error"].as_str().unwrap().starts_with("for:"), "{e}");
    let (status, e) = app
        .post_json("/api/v1/services/1/adopt", json!({"fields": ["price"]}))
        .await;
    assert_eq!(status, 409, "no open entry for price: {e}");
    let (status, _) = app
        .post_json("/api/v1/services/999999/adopt", json!({}))
        .await;
    assert_eq!(status, 404);

    let (status, done) = app
        .post_json(
            "/api/v1/services/1/adopt",
            json!({"fields": ["duration_minutes"], "note": "the salon changed it"}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(
        (done["kind"].clone(), done["by"].clone()),
        (json!("adopt"), json!("api"))
    );
    let (status, done) = app
        .post_json(
            "/api/v1/services/1/acknowledge",
            json!({"fields": ["name"], "for": "2h", "note": "rename under discussion"}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    let (_, acked) = app
        .api(
            reqwest::Method::GET,
            "/api/v1/drift?state=acknowledged",
            Some(TOKEN),
        )
        .await;
    assert_eq!(acked.as_array().map(Vec::len), Some(1), "{acked}");
    assert_eq!(acked[0]["acknowledged_by"], "api");
    assert_eq!(acked[0]["acknowledged_note"], "rename under discussion");
    let (_, s) = app
        .api(reqwest::Method::GET, "/api/v1/services/1", Some(TOKEN))
        .await;
    assert_eq!(s["acknowledged_drift"][0]["field"], "name", "{s}");
    assert_eq!(s["decisions"].as_array().map(Vec::len), Some(2), "{s}");

    // Not held: approving is refused (409); an unknown account is a 404.
    let (status, e) = app
        .post_json("/api/v1/accounts/berlin/approve", json!({"note": "x"}))
        .await;
    assert_eq!(status, 409, "{e}");
    assert!(e["error"].as_str().unwrap().contains("is not held"), "{e}");
    assert_eq!(
        app.post_json("/api/v1/accounts/nosuch/approve", json!({}))
            .await
            .0,
        404
    );
    let (_, journal) = app
        .api(reqwest::Method::GET, "/api/v1/decisions", Some(TOKEN))
        .await;
    let kinds: Vec<&str> = journal
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["acknowledge", "adopt"]);
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("calsync_decisions_total{kind=\"adopt\"} 1"),
        "{metrics}"
    );
    let (code, _) = app.stop().await;
    assert_eq!(code, 0);
}

#[tokio::test]
async fn sighup_applies_a_good_config_and_rejects_a_bad_one_without_stopping() {
    let app = start("0 0 * * * *").await;
    app.wait_ready().await;
    app.config
        .clone()
        .set("bogus.key", 1)
        .write(app.config_path());
    app.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = app.api(reqwest::Method::GET, "/healthz", None).await;
    assert_eq!(status, 200, "a bad reload must not stop the daemon");
    app.config
        .clone()
        .set("calcom.max_attempts", 3)
        .write(app.config_path());
    app.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (code, logs) = app.stop().await;
    assert_eq!(code, 0);
    assert!(logs.contains("Config reload rejected"), "{logs}");
    assert!(
        logs.contains("bogus"),
        "the rejection names the key: {logs}"
    );
    assert!(logs.contains("Configuration reloaded"), "{logs}");
}

#[tokio::test]
async fn a_bad_config_at_start_exits_2_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ConfigFile::default()
        .set("sync.schedule", "every 5 minutes")
        .write(dir.path().join("bad.toml"));
    let out = binary::calsync()
        .args(["--config", cfg.to_str().unwrap(), "run"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sync.schedule"));
}

/// Every `calsync_*` metric named by the dashboard or the alert rules, bucket
/// suffixes stripped.
fn referenced_metrics() -> Vec<String> {
    let mut text = std::fs::read_to_string(binary::repo_file("dashboards/calsync.json")).unwrap();
    text.push_str(&std::fs::read_to_string(binary::repo_file("alerts/calsync.rules.yml")).unwrap());
    let mut names: Vec<String> = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(pos) = text[i..].find("calsync_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let preceded =
            start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let name = &text[start..end];
        if !preceded {
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.push(base.to_owned());
        }
        i = end;
    }
    names.sort();
    names.dedup();
    names
}

#[tokio::test]
async fn every_metric_the_dashboard_and_alerts_use_is_exported_and_every_expression_parses() {
    let app = start("0 0 * * * *").await;
    app.wait_ready().await;
    let metrics = app.metrics().await;
    let referenced = referenced_metrics();
    assert!(referenced.len() >= 10, "{referenced:?}");
    for name in &referenced {
        assert!(
            metrics.contains(&format!("# TYPE {name} ")),
            "{name} is used by the dashboard or alerts but not exported"
        );
    }
    // The dashboard's PromQL, checked by promtool as recording rules.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(binary::repo_file("dashboards/calsync.json")).unwrap(),
    )
    .unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "{exprs:?}");
    if let Some(promtool) = promtool() {
        let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
        for (i, e) in exprs.iter().enumerate() {
            let e = e
                .replace("$__rate_interval", "5m")
                .replace("$__interval", "1m")
                .replace("$__range", "1h")
                .replace("${account}", "berlin")
                .replace("$account", "berlin");
            rules.push_str(&format!(
                "      - record: dashboard:expr{i}\n        expr: {}\n",
                serde_json::to_string(&e).unwrap()
            ));
        }
        let file = app.dir.path().join("dashboard.rules.yml");
        std::fs::write(&file, rules).unwrap();
        let out = std::process::Command::new(promtool)
            .args(["check", "rules"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "dashboard PromQL: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    app.stop().await;
}

fn collect_exprs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                if k == "expr"
                    && let Some(s) = val.as_str()
                    && !s.is_empty()
                {
                    out.push(s.to_owned());
                } else {
                    collect_exprs(val, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_exprs(x, out)),
        _ => {}
    }
}

/// A real Prometheus scraping these calsync ports every second with the shipped
/// rules, on a free port of its own; killed when dropped.
fn start_prometheus(bin: &Path, dir: &Path, targets: &[u16]) -> (tokio::process::Child, u16) {
    let port = free_port();
    std::fs::create_dir_all(dir).unwrap();
    let targets: Vec<String> = targets.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: calsync\n    static_configs:\n      - targets: [{}]\n",
            binary::repo_file("alerts/calsync.rules.yml").display(),
            targets.join(", ")
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg("--web.console.templates=/dev/null")
        .arg("--web.console.libraries=/dev/null")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    (child, port)
}

fn prometheus_bin() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/prometheus");
    if p.exists() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!("prometheus is missing; .ci/run installs the Debian package `prometheus`");
    }
    None
}

async fn prom_query(http: &reqwest::Client, port: u16, q: &str) -> Vec<Value> {
    let r = http
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await;
    let Ok(r) = r else { return Vec::new() };
    let v: Value = r.json().await.unwrap_or(Value::Null);
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_real_prometheus_sees_a_calcom_edit_and_the_protection_alert_fires() {
    let Some(prometheus) = prometheus_bin() else {
        return;
    };
    let app = start("*/2 * * * * *").await;
    app.wait_ready().await;
    let (mut prom, prom_port) = start_prometheus(
        &prometheus,
        &app.dir.path().join("prom"),
        &[app.process.port],
    );

    let http = reqwest::Client::new();
    // Baseline scrape first, so the counter's rise is visible to increase().
    let deadline = Instant::now() + Duration::from_secs(40);
    while prom_query(&http, prom_port, "up{job=\"calsync\"} == 1")
        .await
        .is_empty()
    {
        assert!(
            Instant::now() < deadline,
            "Prometheus never scraped calsync"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Someone edits an event type in Cal.com's UI.
    let (_, s) = app
        .api(reqwest::Method::GET, "/api/v1/services/1", Some(TOKEN))
        .await;
    let et = s["calcom_event_type_id"].as_i64().unwrap();
    app.sim
        .edit_event_type(et, json!({"title": "Edited in Cal.com"}));

    let rules = std::fs::read_to_string(binary::repo_file("alerts/calsync.rules.yml")).unwrap();
    assert!(rules.contains("CalsyncProtectionTriggered"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rose = false;
    let mut alerting = false;
    while Instant::now() < deadline && !(rose && alerting) {
        rose = rose
            || !prom_query(
                &http,
                prom_port,
                "calsync_protection_triggered_total{account=\"berlin\",field=\"name\"} > 0",
            )
            .await
            .is_empty();
        alerting = alerting
            || !prom_query(
                &http,
                prom_port,
                "ALERTS{alertname=\"CalsyncProtectionTriggered\"}",
            )
            .await
            .is_empty();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let _ = prom.kill().await;
    app.stop().await;
    assert!(
        rose,
        "calsync_protection_triggered_total never rose in Prometheus"
    );
    assert!(
        alerting,
        "the CalsyncProtectionTriggered alert expression returned nothing"
    );
}

/// Alerts for failures that leave no other trace: a daemon that never becomes
/// ready, an account that never succeeded, a rejected reload. Each alert has a
/// `for:` of minutes, so the test waits for it to be pending: its expression
/// fires on what a real daemon exports, scraped by a real Prometheus.
#[tokio::test]
async fn a_real_prometheus_sees_never_ready_never_succeeded_and_a_rejected_reload() {
    let Some(prometheus) = prometheus_bin() else {
        return;
    };
    // Migrated, but its account's key is refused by Cal.com from the start.
    let revoked = start_with("*/2 * * * * *", 0, "cal_live_revoked_0000000000", true).await;
    // Its signal handlers are installed before /metrics answers.
    wait_listening(&revoked.process.http, &revoked.url("/metrics")).await;
    // Never migrated: it keeps retrying and never becomes ready.
    let unmigrated = start_with("*/2 * * * * *", 0, KEY, false).await;

    let (mut prom, prom_port) = start_prometheus(
        &prometheus,
        &revoked.dir.path().join("prom"),
        &[revoked.process.port, unmigrated.process.port],
    );
    let http = reqwest::Client::new();

    // A bad file on SIGHUP: rejected, the old configuration stays.
    ConfigFile::default()
        .set("sync.schedule", "whenever")
        .write(revoked.config_path());
    revoked.signal("HUP");

    let wanted = [
        "CalsyncNotReady",
        "CalsyncAccountNeverSucceeded",
        "CalsyncConfigReloadFailed",
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = std::collections::HashSet::new();
    while Instant::now() < deadline && seen.len() < wanted.len() {
        for name in wanted {
            if !prom_query(&http, prom_port, &format!("ALERTS{{alertname=\"{name}\"}}"))
                .await
                .is_empty()
            {
                seen.insert(name);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ready = prom_query(&http, prom_port, "calsync_ready == 0").await;
    let _ = prom.kill().await;
    let (_, revoked_logs) = revoked.stop().await;
    let (_, unmigrated_logs) = unmigrated.stop().await;
    for name in wanted {
        assert!(
            seen.contains(name),
            "{name} never became pending or firing; calsync_ready == 0 gave {ready:?}\nrevoked:\n{revoked_logs}\nunmigrated:\n{unmigrated_logs}"
        );
    }
    assert!(
        revoked_logs.contains("Config reload rejected"),
        "{revoked_logs}"
    );
}

#[tokio::test]
async fn sigterm_stops_a_pass_that_has_not_started_writing() {
    let daemon = start("*/2 * * * * *").await;
    daemon.wait_ready().await;
    // Every listing now takes 15 s: the next pass is caught listing.
    daemon.sim.inject_fault(calsync::simulate::Fault {
        method: Some("GET".into()),
        path_prefix: Some("/v2/event-types".into()),
        api_key: None,
        kind: calsync::simulate::FaultKind::Delay { ms: 15_000 },
        times: 0,
    });
    tokio::time::sleep(Duration::from_secs(3)).await;

    let asked = Instant::now();
    let (code, logs) = daemon.stop().await;

    assert_eq!(code, 0, "{logs}");
    assert!(
        asked.elapsed() < Duration::from_secs(8),
        "stopping waited for a listing that had nothing to commit: {:?}\n{logs}",
        asked.elapsed()
    );
    assert!(logs.contains("stopped before writing"), "{logs}");
    assert!(
        !logs.contains("Reconcile pass failed"),
        "a shutdown is not a failure:\n{logs}"
    );
}

#[test]
fn the_default_shutdown_timeout_fits_the_units_stop_timeout() {
    let unit = std::fs::read_to_string(binary::repo_file("systemd/calsync.service")).unwrap();
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .and_then(|v| v.trim().trim_end_matches('s').parse().ok())
        .expect("TimeoutStopSec=<seconds>s in the unit");
    let example =
        std::fs::read_to_string(binary::repo_file("config/calsync.example.toml")).unwrap();
    let configured: u64 = example
        .lines()
        .find_map(|l| l.trim().strip_prefix("shutdown_timeout_secs = "))
        .and_then(|v| v.trim().parse().ok())
        .expect("shutdown_timeout_secs in the example config");
    let default = calsync::config::Config::from_toml("")
        .unwrap()
        .sync
        .shutdown_timeout_secs;
    for secs in [configured, default] {
        // Room for the lease hand-back and closing the pool after the pass.
        assert!(
            secs + 10 <= stop,
            "shutdown_timeout_secs {secs} leaves no room under TimeoutStopSec={stop}s"
        );
    }
}
