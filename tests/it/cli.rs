//! The command line: exit codes, output formats, environment overrides and
//! secrets, by running the real binary against a SQLite file and an in-process
//! Cal.com simulator. Every run checks that no secret of its configuration shows
//! up in stdout or stderr.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use calsync::domain::ServiceId;
use calsync::simulate::Simulator;
use serde_json::{Value, json};

use crate::support::app::{API_KEY, COMPANY};
use crate::support::binary;
use crate::support::config::{AccountSpec, ConfigFile};
use crate::support::db::{TestBackend, TestDb, empty, fresh};
use crate::support::simulator::simulator;

const ADMIN_TOKEN: &str = "admin-token-5be1c0ffee0dd00d";
const DB_PASSWORD: &str = "hunter2-db-password";
/// The fixed key `calsync demo` gives its own simulator.
const DEMO_API_KEY: &str = "cal_demo_0123456789abcdef";
/// No run of the binary may take longer than this.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// What one run of the binary did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

/// Runs `calsync ARGS` with a clean environment (no inherited `CALSYNC_*`,
/// `CALCOM_ALLOW_OVERWRITES` or `RUST_LOG`) plus `env`, and checks that none of
/// `secrets` appears in its output.
async fn calsync(args: &[&str], env: &[(&str, &str)], secrets: &[&str]) -> Run {
    let mut command = binary::calsync();
    command.args(args).envs(env.iter().copied());
    let output = tokio::time::timeout(RUN_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("calsync {args:?} did not finish within {RUN_TIMEOUT:?}"))
        .expect("running the calsync binary");
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    for secret in secrets {
        assert!(
            !run.stdout.contains(secret),
            "calsync {args:?} printed a secret on stdout:\n{}",
            run.stdout
        );
        assert!(
            !run.stderr.contains(secret),
            "calsync {args:?} printed a secret on stderr:\n{}",
            run.stderr
        );
    }
    run
}

/// The config of [`Setup`]: its database and simulator, one account with `api_key`.
fn setup_config(database_url: &str, base_url: &str, api_key: &str) -> ConfigFile {
    ConfigFile::new(database_url, base_url)
        .set("calcom.max_attempts", 2)
        .set("calcom.retry_initial_delay_ms", 1)
        .set("server.admin_token", ADMIN_TOKEN)
        .account(AccountSpec::new("berlin", COMPANY, api_key))
}

/// A SQLite database, a simulator with [`API_KEY`], and a config file for both.
struct Setup {
    db: TestDb,
    calcom: Simulator,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Setup {
    /// Migrated database.
    async fn new() -> Setup {
        Self::with_db(fresh(TestBackend::Sqlite).await).await
    }

    async fn with_db(db: TestDb) -> Setup {
        let calcom = simulator(&[API_KEY], 0).await;
        let dir = tempfile::tempdir().expect("temp dir for the config");
        let config = setup_config(&db.url, &calcom.base_url(), API_KEY)
            .write(dir.path().join("calsync.toml"));
        Setup {
            db,
            calcom,
            config,
            _dir: dir,
        }
    }

    async fn run(&self, args: &[&str]) -> Run {
        self.run_with_env(args, &[]).await
    }

    async fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let config = self.config.to_str().expect("UTF-8 temp path");
        let mut all = vec!["--config", config];
        all.extend_from_slice(args);
        calsync(&all, env, &[API_KEY, ADMIN_TOKEN]).await
    }

    /// A haircut event type, imported by `calsync once`.
    async fn imported_haircut(&self) -> (i64, ServiceId) {
        let created = self.calcom.create_event_type(
            API_KEY,
            json!({"title": "Haircut", "slug": "haircut", "lengthInMinutes": 30}),
        );
        let et = created["id"].as_i64().expect("event type id");
        let once = self.run(&["once"]).await;
        assert_eq!(once.code, 0, "{once:?}");
        let service = self
            .db
            .raw_services()
            .await
            .into_iter()
            .find(|s| s.calcom_event_type_id == Some(et))
            .expect("`once` imported the event type");
        (et, ServiceId(service.id))
    }

    fn edit_in_calcom(&self, id: i64, fields: Value) {
        assert!(
            self.calcom.edit_event_type(id, fields),
            "no event type {id}"
        );
    }

    fn calcom_title(&self, id: i64) -> Value {
        self.calcom.event_type(id).expect("event type exists")["title"].clone()
    }
}

// ---------------------------------------------------------------- migrate

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_exits_0_and_is_idempotent() {
    let setup = Setup::with_db(empty(TestBackend::Sqlite).await).await;

    let first = setup.run(&["migrate"]).await;
    let second = setup.run(&["migrate"]).await;

    assert_eq!(first.code, 0, "{first:?}");
    assert!(
        first.stdout.contains("applied calsync migrations"),
        "{first:?}"
    );
    assert_eq!(second.code, 0, "{second:?}");
    assert!(second.stdout.contains("already current"), "{second:?}");
    assert!(
        setup
            .db
            .store
            .migrations_current()
            .await
            .expect("reading migrations")
    );
}

// ---------------------------------------------------------------- check-config

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_exits_0_and_prints_secrets_redacted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = ConfigFile::default()
        .set(
            "database.url",
            format!("postgres://calsync:{DB_PASSWORD}@db.example:5432/platform"),
        )
        .set("server.admin_token", ADMIN_TOKEN)
        .account(AccountSpec::new("berlin", 1, API_KEY))
        .write(dir.path().join("calsync.toml"));

    let run = calsync(
        &[
            "--config",
            config.to_str().expect("UTF-8 path"),
            "check-config",
        ],
        &[],
        &[API_KEY, ADMIN_TOKEN, DB_PASSWORD],
    )
    .await;

    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("db.example"), "{run:?}");
    assert!(run.stdout.contains("[redacted]"), "{run:?}");
    assert!(run.stdout.contains("name = \"berlin\""), "{run:?}");
    assert!(run.stderr.contains("configuration is valid"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_exits_2_naming_an_unknown_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = ConfigFile::default()
        .set("sync.repush_drifed", true)
        .account(AccountSpec::new("berlin", 1, API_KEY))
        .write(dir.path().join("calsync.toml"));

    let run = calsync(
        &[
            "--config",
            config.to_str().expect("UTF-8 path"),
            "check-config",
        ],
        &[],
        &[API_KEY],
    )
    .await;

    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("repush_drifed"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_exits_2_naming_the_key_of_a_bad_value() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = ConfigFile::default()
        .set("calcom.requests_per_minute", 0)
        .account(AccountSpec::new("berlin", 1, API_KEY))
        .write(dir.path().join("calsync.toml"));

    let run = calsync(
        &[
            "--config",
            config.to_str().expect("UTF-8 path"),
            "check-config",
        ],
        &[],
        &[API_KEY],
    )
    .await;

    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("calcom.requests_per_minute"), "{run:?}");
}

// ---------------------------------------------------------------- once / plan / drift

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_exits_0_in_sync_and_1_on_drift_and_writes_nothing() {
    let setup = Setup::new().await;
    let (et, id) = setup.imported_haircut().await;

    let in_sync = setup.run(&["plan"]).await;
    assert_eq!(in_sync.code, 0, "{in_sync:?}");

    setup.edit_in_calcom(et, json!({"title": "Haircut deluxe"}));
    let rows = setup.db.raw_services().await;
    let runs = setup.db.count("SELECT COUNT(*) FROM calsync_runs").await;
    let drifted = setup.run(&["plan", "--format", "json"]).await;

    assert_eq!(drifted.code, 1, "{drifted:?}");
    let report = drifted.json();
    assert_eq!(report["dry_run"], true);
    let items = report["accounts"][0]["items"]
        .as_array()
        .expect("items")
        .clone();
    let drift = items
        .iter()
        .find(|i| i["action"] == "drift")
        .unwrap_or_else(|| panic!("no drift item in {report:#}"));
    assert_eq!(drift["service_id"], id.0);
    assert_eq!(drift["event_type_id"], et);
    assert_eq!(drift["fields"][0]["field"], "name");
    assert_eq!(
        setup.db.raw_services().await,
        rows,
        "plan wrote to services"
    );
    assert!(
        setup
            .db
            .store
            .open_drift(None)
            .await
            .expect("ledger")
            .is_empty(),
        "plan wrote to the ledger"
    );
    assert_eq!(
        setup.db.count("SELECT COUNT(*) FROM calsync_runs").await,
        runs,
        "plan wrote a run"
    );

    // With drift already recorded, plan still leaves the ledger as it was.
    assert_eq!(setup.run(&["once"]).await.code, 0);
    let ledger = setup.db.store.open_drift(None).await.expect("ledger");
    let rows = setup.db.raw_services().await;
    setup.edit_in_calcom(et, json!({"lengthInMinutes": 45}));
    assert_eq!(setup.run(&["plan"]).await.code, 1);
    assert_eq!(
        setup.db.store.open_drift(None).await.expect("ledger"),
        ledger
    );
    assert_eq!(setup.db.raw_services().await, rows);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_records_drift_and_drift_json_lists_it() {
    let setup = Setup::new().await;
    let (et, id) = setup.imported_haircut().await;
    setup.edit_in_calcom(et, json!({"title": "Haircut deluxe"}));

    let once = setup.run(&["once"]).await;
    let drift = setup.run(&["drift", "--format", "json"]).await;

    assert_eq!(once.code, 0, "drift is protection, not failure: {once:?}");
    assert_eq!(drift.code, 0, "{drift:?}");
    let entries = drift.json();
    let entries = entries.as_array().expect("an array");
    assert_eq!(entries.len(), 1, "{entries:#?}");
    let entry = entries[0].as_object().expect("an object");
    for key in [
        "service_id",
        "calcom_event_type_id",
        "field",
        "platform_value",
        "calcom_value",
        "first_seen_at",
        "last_seen_at",
    ] {
        assert!(entry.contains_key(key), "{key} missing from {entry:#?}");
    }
    assert_eq!(entry["service_id"], id.0);
    assert_eq!(entry["calcom_event_type_id"], et);
    assert_eq!(entry["field"], "name");
    assert_eq!(
        (
            entry["platform_value"].clone(),
            entry["calcom_value"].clone()
        ),
        (json!("Haircut"), json!("Haircut deluxe"))
    );
    assert_eq!(setup.db.raw_service(id).await.name, "Haircut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_decisions_adopt_acknowledge_and_unacknowledge_from_the_command_line() {
    let setup = Setup::new().await;
    let (et, id) = setup.imported_haircut().await;
    let service = id.0.to_string();
    setup.edit_in_calcom(
        et,
        json!({"lengthInMinutes": 45, "title": "Haircut deluxe"}),
    );
    assert_eq!(setup.run(&["once"]).await.code, 0);

    let adopt = setup
        .run(&[
            "drift",
            "adopt",
            "--service",
            &service,
            "--field",
            "duration_minutes",
            "--note",
            "the salon lengthened it",
            "--by",
            "maria",
            "--format",
            "json",
        ])
        .await;
    assert_eq!(adopt.code, 0, "{adopt:?}");
    let done = adopt.json();
    assert_eq!(
        (
            done["kind"].clone(),
            done["by"].clone(),
            done["fields"].clone()
        ),
        (json!("adopt"), json!("maria"), json!(["duration_minutes"]))
    );
    assert_eq!(setup.db.raw_service(id).await.duration_minutes, 45);

    let ack = setup
        .run(&[
            "drift",
            "ack",
            "--service",
            &service,
            "--for",
            "2h",
            "--note",
            "rename under discussion",
        ])
        .await;
    assert_eq!(ack.code, 0, "{ack:?}");
    assert!(ack.stdout.contains("acknowledged name until"), "{ack:?}");
    let acked = setup
        .run(&["drift", "--state", "acknowledged", "--format", "json"])
        .await;
    assert_eq!(acked.code, 0, "{acked:?}");
    let entries = acked.json();
    assert_eq!(entries.as_array().map(Vec::len), Some(1), "{entries:#}");
    assert_eq!(entries[0]["acknowledged_note"], "rename under discussion");
    assert_eq!(entries[0]["decisions"][0]["kind"], "acknowledge");

    let unack = setup.run(&["drift", "unack", "--service", &service]).await;
    assert_eq!(unack.code, 0, "{unack:?}");
    let all = setup.run(&["drift", "--state", "all"]).await;
    assert_eq!(all.code, 0, "{all:?}");
    for word in [
        "Decisions (newest first)",
        "adopt",
        "acknowledge",
        "unacknowledge",
        "maria",
    ] {
        assert!(all.stdout.contains(word), "{word} missing:\n{}", all.stdout);
    }
    assert!(all.stdout.contains("adopted"), "{}", all.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_decisions_are_refused_naming_the_flag_or_entry_and_change_nothing() {
    let setup = Setup::new().await;
    let (et, id) = setup.imported_haircut().await;
    let service = id.0.to_string();
    setup.edit_in_calcom(et, json!({"lengthInMinutes": 45}));
    assert_eq!(setup.run(&["once"]).await.code, 0);

    for (args, expected) in [
        (
            vec![
                "drift",
                "ack",
                "--service",
                &service,
                "--for",
                "3x",
                "--note",
                "n",
            ],
            "--for",
        ),
        (
            vec!["drift", "ack", "--service", &service, "--note", "n"],
            "--for",
        ),
        (
            vec![
                "drift",
                "ack",
                "--service",
                &service,
                "--until",
                "2001-01-01T00:00:00Z",
                "--note",
                "n",
            ],
            "is not in the future",
        ),
        (
            vec!["drift", "adopt", "--service", &service, "--field", "nmae"],
            "--field",
        ),
        (
            vec!["drift", "adopt", "--service", &service, "--field", "price"],
            "no open drift entry for price",
        ),
        (
            vec!["drift", "unack", "--service", &service],
            "is not acknowledged",
        ),
        (
            vec!["drift", "adopt", "--service", "999999"],
            "service 999999",
        ),
        (vec!["approve", "--account", "berlin"], "is not held"),
        (vec!["approve", "--account", "nosuch"], "nosuch"),
    ] {
        let run = setup.run(&args).await;
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert!(
            run.stderr.contains(expected),
            "{args:?} should name {expected:?}: {run:?}"
        );
    }
    let decisions = setup.db.store.decisions(None, None, 10).await.unwrap();
    assert!(decisions.is_empty(), "{decisions:?}");
    assert_eq!(setup.db.raw_service(id).await.duration_minutes, 30);
    let json = setup
        .run(&["approve", "--account", "berlin", "--format", "json"])
        .await;
    assert_eq!(json.code, 2);
    assert!(
        json.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is not held")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_prints_the_field_ownership_in_force_per_account() {
    let dir = tempfile::tempdir().unwrap();
    let config = ConfigFile::new("sqlite://unused.db", "http://127.0.0.1:9")
        .set("sync.ownership.price", "calcom")
        .set("sync.ownership.description", "ignore")
        .account(AccountSpec::new("berlin", COMPANY, API_KEY))
        .write(dir.path().join("c.toml"));
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}ownership = {{ visibility = \"calcom\" }}\n"),
    )
    .unwrap();
    let run = calsync(
        &["--config", config.to_str().unwrap(), "check-config"],
        &[],
        &[API_KEY],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains(
            "# berlin: name=platform description=ignore duration_minutes=platform visibility=calcom price=calcom"
        ),
        "{}",
        run.stdout
    );

    let bad = ConfigFile::new("sqlite://unused.db", "http://127.0.0.1:9")
        .set("sync.ownership.nmae", "calcom")
        .account(AccountSpec::new("berlin", COMPANY, API_KEY))
        .write(dir.path().join("bad.toml"));
    let run = calsync(
        &["--config", bad.to_str().unwrap(), "check-config"],
        &[],
        &[API_KEY],
    )
    .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("sync.ownership.nmae"), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_exits_2_on_an_unreadable_record() {
    let setup = Setup::new().await;
    let (et, id) = setup.imported_haircut().await;
    setup.edit_in_calcom(et, json!({"lengthInMinutes": 0}));

    let once = setup.run(&["once"]).await;

    assert_eq!(once.code, 2, "{once:?}");
    assert!(
        once.stdout.contains(&format!("event type {et}")),
        "{once:?}"
    );
    assert_eq!(setup.db.raw_service(id).await.duration_minutes, 30);
}

// ---------------------------------------------------------------- push

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_service_exits_0_and_repairs_calcom() {
    let setup = Setup::new().await;
    let (et, id) = setup.imported_haircut().await;
    setup.edit_in_calcom(et, json!({"title": "Haircut deluxe"}));
    assert_eq!(setup.run(&["once"]).await.code, 0);

    let push = setup.run(&["push", "--service", &id.0.to_string()]).await;

    assert_eq!(push.code, 0, "{push:?}");
    assert!(push.stdout.contains("pushed name"), "{push:?}");
    assert_eq!(setup.calcom_title(et), "Haircut");
    assert_eq!(setup.db.raw_service(id).await.sync_status, "synced");
}

// ---------------------------------------------------------------- environment

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_overwrite_variable_makes_once_overwrite() {
    let setup = Setup::new().await;
    let (et, id) = setup.imported_haircut().await;
    setup.edit_in_calcom(et, json!({"title": "Haircut deluxe"}));

    let once = setup
        .run_with_env(&["once"], &[("CALCOM_ALLOW_OVERWRITES", "true")])
        .await;

    assert_eq!(once.code, 0, "{once:?}");
    assert_eq!(setup.db.raw_service(id).await.name, "Haircut deluxe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrites_stay_off_without_the_variable() {
    let setup = Setup::new().await;
    let (et, id) = setup.imported_haircut().await;
    setup.edit_in_calcom(et, json!({"title": "Haircut deluxe"}));

    let once = setup.run(&["once"]).await;

    assert_eq!(once.code, 0, "{once:?}");
    assert_eq!(setup.db.raw_service(id).await.name, "Haircut");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_override_turns_on_repush() {
    let setup = Setup::new().await;
    let (et, id) = setup.imported_haircut().await;
    setup.edit_in_calcom(et, json!({"title": "Haircut deluxe"}));

    let once = setup
        .run_with_env(&["once"], &[("CALSYNC_SYNC__REPUSH_DRIFTED", "true")])
        .await;

    assert_eq!(once.code, 0, "{once:?}");
    assert_eq!(
        setup.calcom_title(et),
        "Haircut",
        "the platform value went back to Cal.com"
    );
    assert_eq!(setup.db.raw_service(id).await.name, "Haircut");
}

// ---------------------------------------------------------------- demo

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_exits_0_and_shows_protection() {
    let run = calsync(&["demo"], &[], &[DEMO_API_KEY]).await;

    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("PROTECTION"), "{run:?}");
}

// ---------------------------------------------------------------- logs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protection_lines_keep_the_word_and_both_values_in_json_logs() {
    let setup = Setup::new().await;
    let (et, id) = setup.imported_haircut().await;
    setup.edit_in_calcom(et, json!({"lengthInMinutes": 45}));

    let once = setup
        .run_with_env(&["once"], &[("CALSYNC_LOG__FORMAT", "json")])
        .await;

    assert_eq!(once.code, 0, "{once:?}");
    let line = once
        .stderr
        .lines()
        .find(|l| l.contains("PROTECTION"))
        .unwrap_or_else(|| panic!("no PROTECTION line in {}", once.stderr));
    let event: Value = serde_json::from_str(line).expect("one JSON object per line");
    assert_eq!(event["level"], "WARN");
    let fields = &event["fields"];
    assert!(
        fields["message"]
            .as_str()
            .unwrap()
            .starts_with("PROTECTION")
    );
    assert_eq!(fields["service_id"], id.0);
    assert_eq!(fields["event_type_id"], et);
    // Structured: each value is a key of its own.
    assert_eq!(fields["field"], "duration_minutes");
    assert_eq!(fields["platform"], "30");
    assert_eq!(fields["calcom"], "45");
    assert_eq!(fields["baseline"], "30");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protection_reaches_the_log_whatever_the_filter_says() {
    let setup = Setup::new().await;
    let (et, _) = setup.imported_haircut().await;
    setup.edit_in_calcom(et, json!({"lengthInMinutes": 45}));

    // Errors only, and everything of calsync switched off: PROTECTION still shows.
    let once = setup
        .run_with_env(&["once"], &[("RUST_LOG", "error,calsync=off")])
        .await;

    assert_eq!(once.code, 0, "{once:?}");
    assert!(once.stderr.contains("PROTECTION"), "{once:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_log_filter_is_refused_naming_the_key_or_variable() {
    let setup = Setup::new().await;

    let by_key = setup
        .run_with_env(&["once"], &[("CALSYNC_LOG__LEVEL", "verbose")])
        .await;
    assert_eq!(by_key.code, 2, "{by_key:?}");
    assert!(by_key.stderr.contains("log.level"), "{by_key:?}");

    let by_env = setup
        .run_with_env(&["once"], &[("RUST_LOG", "verbose")])
        .await;
    assert_eq!(by_env.code, 2, "{by_env:?}");
    assert!(by_env.stderr.contains("RUST_LOG"), "{by_env:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_rejects_an_unknown_account_and_lists_closed_entries_by_state() {
    let setup = Setup::new().await;
    let (et, _) = setup.imported_haircut().await;
    setup.edit_in_calcom(et, json!({"lengthInMinutes": 45}));
    assert_eq!(setup.run(&["once"]).await.code, 0);
    setup.edit_in_calcom(et, json!({"lengthInMinutes": 30}));
    assert_eq!(setup.run(&["once"]).await.code, 0);

    let unknown = setup.run(&["drift", "--account", "nosuchaccount"]).await;
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(unknown.stderr.contains("nosuchaccount"), "{unknown:?}");

    let open = setup.run(&["drift", "--format", "json"]).await;
    assert_eq!(open.code, 0, "{open:?}");
    assert_eq!(open.json(), json!([]));
    let closed = setup
        .run(&["drift", "--state", "closed", "--format", "json"])
        .await;
    assert_eq!(closed.code, 0, "{closed:?}");
    let entries = closed.json();
    assert_eq!(entries.as_array().map(Vec::len), Some(1), "{entries}");
    let e = &entries[0];
    assert_eq!(e["origin"], "calcom_edit");
    assert_eq!(e["state"], "closed");
    assert_eq!(e["resolution"], "agreed");
    assert_eq!(e["calcom_value"], "45");
    assert!(e["resolved_at"].is_string(), "{e}");
    let all = setup.run(&["drift", "--state", "all"]).await;
    assert_eq!(all.code, 0, "{all:?}");
    assert!(all.stdout.contains("agreed"), "{all:?}");
    let bad = setup.run(&["drift", "--state", "shut"]).await;
    assert_eq!(bad.code, 2, "{bad:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_environment_error_names_the_variable_as_it_must_be_spelled() {
    let setup = Setup::new().await;
    let run = setup
        .run_with_env(
            &["check-config"],
            &[("CALSYNC_SYNC__REPUSH_DRIFTED", "maybe")],
        )
        .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("CALSYNC_SYNC__REPUSH_DRIFTED"),
        "{run:?}"
    );
    assert!(!run.stderr.contains("default."), "{run:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_config_file_the_error_names_the_default_path() {
    let default = Path::new("/etc/calsync/calsync.toml");
    let run = calsync(&["check-config"], &[], &[]).await;
    assert_eq!(run.code, 2, "{run:?}");
    if !default.exists() {
        assert!(
            run.stderr.contains("/etc/calsync/calsync.toml") && run.stderr.contains("--config"),
            "{run:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_calcom_is_named_with_its_url_and_key() {
    let setup = Setup::new().await;
    let run = setup
        .run_with_env(
            &["once"],
            &[
                ("CALSYNC_CALCOM__BASE_URL", "http://127.0.0.1:9"),
                ("CALSYNC_CALCOM__MAX_ATTEMPTS", "1"),
            ],
        )
        .await;
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stdout.contains("http://127.0.0.1:9") && run.stdout.contains("calcom.base_url"),
        "{run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_import_logs_one_summary_per_account_not_a_line_per_event_type() {
    let setup = Setup::new().await;
    for i in 0..120 {
        setup.calcom.create_event_type(
            API_KEY,
            json!({"title": format!("Service {i}"), "slug": format!("s-{i}"), "lengthInMinutes": 30}),
        );
    }

    let once = setup.run(&["once"]).await;

    assert_eq!(once.code, 0, "{once:?}");
    assert_eq!(
        once.stderr
            .matches("Imported a new Cal.com event type")
            .count(),
        0,
        "per event type only at DEBUG: {once:?}"
    );
    let summary = once
        .stderr
        .lines()
        .find(|l| l.contains("Account pass finished"))
        .unwrap_or_else(|| panic!("no summary line: {once:?}"));
    assert!(summary.contains("imported=120"), "{summary}");
    assert!(summary.contains("duration_ms="), "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_connect_reports_the_database_and_each_key() {
    let setup = Setup::new().await;
    let good = setup.run(&["check-config", "--connect"]).await;
    assert_eq!(good.code, 0, "{good:?}");
    assert!(good.stderr.contains("database: reachable"), "{good:?}");
    assert!(
        good.stderr
            .contains("account berlin: the Cal.com key works"),
        "{good:?}"
    );

    // A key Cal.com refuses: named per account, exit 2.
    let refused = setup_config(
        &setup.db.url,
        &setup.calcom.base_url(),
        "cal_live_refused_0000000000",
    )
    .write(setup._dir.path().join("refused.toml"));
    let bad = calsync(
        &[
            "--config",
            refused.to_str().unwrap(),
            "check-config",
            "--connect",
        ],
        &[],
        &["cal_live_refused_0000000000", ADMIN_TOKEN],
    )
    .await;
    assert_eq!(bad.code, 2, "{bad:?}");
    assert!(bad.stderr.contains("account berlin:"), "{bad:?}");
    assert!(bad.stderr.contains("401"), "{bad:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_and_the_manual_page_are_printed_without_a_config() {
    for (shell, marker) in [
        ("bash", "complete -F _calsync"),
        ("zsh", "#compdef calsync"),
        ("fish", "complete -c calsync"),
    ] {
        let run = calsync(&["completions", shell], &[], &[]).await;
        assert_eq!(run.code, 0, "{run:?}");
        assert!(run.stdout.contains(marker), "{shell}: {}", run.stdout);
    }
    let man = calsync(&["manpage"], &[], &[]).await;
    assert_eq!(man.code, 0, "{man:?}");
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH calsync 1"),
        "{man:?}"
    );
    assert!(
        man.stdout.contains(r"check\-config"),
        "the subcommands are listed"
    );
    let bad = calsync(&["completions", "tcsh"], &[], &[]).await;
    assert_eq!(bad.code, 2, "{bad:?}");
}

/// The JSON a command printed, checked against `docs/pass-report.schema.json`.
fn assert_schema_valid(value: &Value) {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(binary::repo_file("docs/pass-report.schema.json"))
            .expect("reading the schema"),
    )
    .expect("the schema is JSON");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\n{value:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_and_plan_json_follow_the_published_schema_even_when_they_fail() {
    let setup = Setup::new().await;
    let (et, _) = setup.imported_haircut().await;
    setup
        .calcom
        .edit_event_type(et, json!({"lengthInMinutes": 45}));
    setup.calcom.create_event_type(
        API_KEY,
        json!({"title": "Broken", "slug": "broken", "lengthInMinutes": 0}),
    );

    let plan = setup.run(&["plan", "--format", "json"]).await;
    assert_eq!(plan.code, 1, "{plan:?}");
    let report = plan.json();
    assert_schema_valid(&report);
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["dry_run"], true);

    let once = setup.run(&["once", "--format", "json"]).await;
    assert_eq!(once.code, 2, "an unreadable record: {once:?}");
    let report = once.json();
    assert_schema_valid(&report);
    assert_eq!(report["accounts"][0]["result"], "partial");
    assert!(report["duration_ms"].is_u64());

    // A command that fails as a whole still prints JSON on stdout.
    let failed = setup
        .run_with_env(
            &["once", "--format", "json"],
            &[("CALSYNC_SYNC__SCHEDULE", "never")],
        )
        .await;
    assert_eq!(failed.code, 2, "{failed:?}");
    let error = failed.json();
    assert_schema_valid(&error);
    assert!(
        error["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("sync.schedule")),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_pass_shows_its_progress_on_a_terminal_and_not_in_a_pipe() {
    let setup = Setup::new().await;
    setup.calcom.create_event_type(
        API_KEY,
        json!({"title": "Cut", "slug": "cut", "lengthInMinutes": 30}),
    );
    // The listing takes 2.5 s: long enough for progress lines.
    setup.calcom.inject_fault(calsync::simulate::Fault {
        method: Some("GET".into()),
        path_prefix: None,
        api_key: None,
        kind: calsync::simulate::FaultKind::Delay { ms: 2_500 },
        times: 0,
    });
    // `script` runs calsync on a pseudo-terminal, as an operator's shell would.
    let command = format!(
        "{} --config {} once",
        env!("CARGO_BIN_EXE_calsync"),
        setup.config.display()
    );
    let mut script = tokio::process::Command::new("script");
    script
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null());
    for (name, _) in std::env::vars_os() {
        if binary::is_configuration(&name.to_string_lossy()) {
            script.env_remove(name);
        }
    }
    let out = script
        .output()
        .await
        .expect("running script(1) from util-linux");
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{terminal}");
    assert!(terminal.contains("accounts finished"), "{terminal}");

    // In a pipe (logs to journald, a script), no progress noise.
    let piped = setup.run(&["once"]).await;
    assert_eq!(piped.code, 0, "{piped:?}");
    assert!(!piped.stderr.contains("accounts finished"), "{piped:?}");
}
