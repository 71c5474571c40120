//! Every `journalctl -u calsync … | grep …` that the README's runbooks and the
//! alert descriptions tell an operator to run must find the line it promises in
//! logs calsync really wrote, in text and in JSON format. The commands are read
//! from README.md and alerts/calsync.rules.yml, so a runbook edited without the
//! log line (or a log line reworded without its runbook) fails here.
//!
//! The logs come from `calsync once` runs against a simulator that provoke each
//! event: a Cal.com edit (PROTECTION), a deleted event type (orphan), an
//! unreadable record, a push Cal.com refuses (HTTP 400: it needs a human), a
//! revoked key (failed pass, HTTP 401), and a pass the blast-radius guard holds.
//! A short `calsync run` adds the daemon's own line: a rejected reload.

use std::path::Path;
use std::process::Stdio;

use calsync::simulate::{Fault, FaultKind};
use serde_json::json;

use crate::support::app::{API_KEY, COMPANY};
use crate::support::binary;
use crate::support::config::{AccountSpec, ConfigFile};
use crate::support::daemon::DaemonProcess;
use crate::support::db::{TestBackend, fresh};
use crate::support::net::free_port;
use crate::support::simulator::simulator;

/// `(priority filter, grep arguments)` of every `journalctl -u calsync [-p P] | grep ARGS`.
fn runbook_greps() -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    for file in ["README.md", "alerts/calsync.rules.yml"] {
        let text = std::fs::read_to_string(binary::repo_file(file)).expect("reading the runbooks");
        // Commands sit in backticks; a YAML description may wrap one over lines.
        let text = text.replace(['\n', '\r'], " ");
        for part in text.split('`').skip(1).step_by(2) {
            let part: String = part.split_whitespace().collect::<Vec<_>>().join(" ");
            let Some(rest) = part.strip_prefix("journalctl -u calsync") else {
                continue;
            };
            let Some((before, grep)) = rest.split_once("| grep ") else {
                continue;
            };
            let priority = before
                .split_once("-p ")
                .map(|(_, p)| p.split_whitespace().next().unwrap_or_default().to_owned());
            let grep = grep.trim().to_owned();
            if !out.contains(&(priority.clone(), grep.clone())) {
                out.push((priority, grep));
            }
        }
    }
    out
}

/// Lines at `priority` or above (journald's `-p`), by the level each line carries.
fn at_priority<'a>(logs: &'a str, priority: Option<&str>) -> Vec<&'a str> {
    let levels: &[&str] = match priority {
        None => return logs.lines().collect(),
        Some("err") => &["ERROR"],
        Some("warning") => &["ERROR", "WARN"],
        Some(other) => {
            panic!("a runbook uses journalctl -p {other}, which this test does not model")
        }
    };
    logs.lines()
        .filter(|l| {
            levels.iter().any(|lv| {
                l.contains(&format!(" {lv} ")) || l.contains(&format!("\"level\":\"{lv}\""))
            })
        })
        .collect()
}

/// Runs the real `grep ARGS` over the lines.
fn grep(lines: &[&str], args: &str) -> bool {
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("grep {args}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("running grep");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(lines.join("\n").as_bytes())
            .expect("feeding grep");
    }
    child.wait().expect("grep finishes").success()
}

/// One account with `key`, a single attempt per request, logs in `format`.
fn config(db: &str, base: &str, key: &str, format: &str) -> ConfigFile {
    ConfigFile::new(db, base)
        .set("calcom.max_attempts", 1)
        .set("calcom.retry_initial_delay_ms", 1)
        .set("log.format", format)
        .account(AccountSpec::new("berlin", COMPANY, key))
}

fn calsync(config: &Path, command_word: &str) -> tokio::process::Command {
    let mut command = binary::calsync();
    command.args(["--config", config.to_str().unwrap(), command_word]);
    command
}

async fn once(config: &Path) -> String {
    let out = calsync(config, "once")
        .output()
        .await
        .expect("running calsync once");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `calsync run` with `config` (and a port to answer on) until it answers, a
/// SIGHUP with a bad file, then SIGTERM; everything it printed.
async fn rejected_reload(config: ConfigFile, path: &Path) -> String {
    let port = free_port();
    let config = config
        .set("server.listen", format!("127.0.0.1:{port}"))
        .write(path);
    let daemon = DaemonProcess::start(&config, port, config.with_extension("out"), |_| {});
    daemon.wait_listening().await;
    ConfigFile::default()
        .set("sync.schedule", "whenever")
        .write(&config);
    assert!(daemon.signal("HUP"));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (code, output) = daemon.stop(std::time::Duration::from_secs(30)).await;
    assert!(
        code.is_some(),
        "calsync run did not stop on SIGTERM:\n{output}"
    );
    output
}

/// The logs of a sequence of passes that provoke every runbook's event.
async fn logs(format: &str) -> String {
    let db = fresh(TestBackend::Sqlite).await;
    let sim = simulator(&[API_KEY], 0).await;
    let dir = tempfile::tempdir().unwrap();
    let good = config(&db.url, &sim.base_url(), API_KEY, format);
    let good_path = good.write(dir.path().join("good.toml"));
    let revoked = config(
        &db.url,
        &sim.base_url(),
        "cal_live_revoked_000000000000",
        format,
    )
    .write(dir.path().join("revoked.toml"));
    let id = |v: serde_json::Value| v["id"].as_i64().unwrap();
    let edited = id(sim.create_event_type(
        API_KEY,
        json!({"title": "Cut", "slug": "cut", "lengthInMinutes": 30}),
    ));
    let deleted = id(sim.create_event_type(
        API_KEY,
        json!({"title": "Colour", "slug": "colour", "lengthInMinutes": 60}),
    ));
    let pushed = id(sim.create_event_type(
        API_KEY,
        json!({"title": "Trim", "slug": "trim", "lengthInMinutes": 15}),
    ));
    let mut all = once(&good_path).await;

    sim.edit_event_type(edited, json!({"title": "Cut & style"}));
    sim.delete_event_type(deleted);
    sim.create_event_type(
        API_KEY,
        json!({"title": "Broken", "slug": "broken", "lengthInMinutes": 0}),
    );
    let service = db
        .raw_services()
        .await
        .into_iter()
        .find(|s| s.calcom_event_type_id == Some(pushed))
        .expect("imported");
    db.exec(&format!(
        "UPDATE services SET duration_minutes = 20, sync_status = 'pending' WHERE id = {}",
        service.id
    ))
    .await;
    sim.inject_fault(Fault {
        method: Some("PATCH".into()),
        path_prefix: None,
        api_key: None,
        kind: FaultKind::Status {
            status: 400,
            body: None,
        },
        times: 0,
    });
    all.push_str(&once(&good_path).await);
    all.push_str(&once(&revoked).await);
    // Another event type gone: with a guard that allows no orphan, the pass is held.
    sim.delete_event_type(edited);
    let guarded = config(&db.url, &sim.base_url(), API_KEY, format)
        .set("sync.guard.min_services", 1)
        .set("sync.guard.max_orphan_percent", 0)
        .write(dir.path().join("guarded.toml"));
    all.push_str(&once(&guarded).await);
    all.push_str(&rejected_reload(good, &good_path).await);
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_runbook_grep_finds_its_line_in_text_and_json_logs() {
    let greps = runbook_greps();
    assert!(
        greps.len() >= 6,
        "expected the runbooks' journalctl | grep commands, found {greps:?}"
    );
    for format in ["text", "json"] {
        let logs = logs(format).await;
        for (priority, args) in &greps {
            let lines = at_priority(&logs, priority.as_deref());
            assert!(
                grep(&lines, args),
                "`journalctl -u calsync{} | grep {args}` finds nothing in {format} logs:\n{logs}",
                priority
                    .as_ref()
                    .map(|p| format!(" -p {p}"))
                    .unwrap_or_default()
            );
        }
    }
}
