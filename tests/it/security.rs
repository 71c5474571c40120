//! Secrets and the operator API, proven end to end with the real binary.
//!
//! Known secret values (Cal.com API keys, a PostgreSQL password in the database
//! URL, a wrong password, the admin token) go into real configurations; every CLI
//! command, its failure modes and `calsync run` are exercised with `log.directory`
//! set; then stdout, stderr, the log files, `/metrics`, every HTTP answer and the
//! database columns that hold error text (`services.sync_error`,
//! `calsync_runs.error`) are searched for each secret.
//!
//! The PostgreSQL role `calsync_sec` is created here through the admin connection.
//! The test server trusts loopback connections, so a wrong password for an existing
//! role still connects; the failing-credential cases use an unknown role and a
//! wrong MariaDB password, which the servers do refuse.

use std::path::Path;
use std::time::{Duration, Instant};

use calsync::simulate::{Fault, FaultKind, Simulator};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::support::binary;
use crate::support::config::{AccountSpec, ConfigFile, toml_string, write_text};
use crate::support::daemon::DaemonProcess;
use crate::support::db::{TestBackend, TestDb, admin_url, empty, fresh};
use crate::support::net::free_port;
use crate::support::simulator::simulator;

const API_KEY: &str = "cal_live_sec_9f8e7d6c5b4a3210fedc";
const REVOKED_KEY: &str = "cal_live_sec_revoked_11223344aabb";
const ADMIN_TOKEN: &str = "admin-sec-token-7c1f0e9d8b2a4c6e";
const DB_ROLE: &str = "calsync_sec";
const DB_PASSWORD: &str = "pw-Sec-4f1d9b7e2c6a";
const WRONG_PASSWORD: &str = "wrong-pw-0b1c2d3e4f5a";
/// Too short to be accepted as an admin token, and still a secret.
const SHORT_TOKEN: &str = "short-tok-8d2e1";

const SECRETS: &[&str] = &[
    API_KEY,
    REVOKED_KEY,
    ADMIN_TOKEN,
    DB_PASSWORD,
    WRONG_PASSWORD,
    SHORT_TOKEN,
];

const RUN_TIMEOUT: Duration = Duration::from_secs(25);
const WAIT: Duration = Duration::from_secs(25);

// ====================================================================== helpers

/// Fails naming the channel if any secret appears in `text`.
fn assert_no_secret(channel: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "a secret ({}…) appeared in {channel}:\n{text}",
            &secret[..8]
        );
    }
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `calsync --config CONFIG ARGS` with no inherited calsync environment and
/// checks stdout and stderr for secrets.
async fn calsync(config: &Path, args: &[&str]) -> Out {
    let out = run_calsync(config, args).await;
    assert_no_secret(&format!("stdout of calsync {args:?}"), &out.stdout);
    assert_no_secret(&format!("stderr of calsync {args:?}"), &out.stderr);
    out
}

/// Runs `calsync --config CONFIG ARGS` with no inherited calsync environment.
async fn run_calsync(config: &Path, args: &[&str]) -> Out {
    let mut command = binary::calsync();
    command.arg("--config").arg(config).args(args);
    let output = tokio::time::timeout(RUN_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("calsync {args:?} did not finish"))
        .expect("running calsync");
    Out {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The secrets found in `text`, shortened for the report.
fn secrets_in(text: &str) -> Vec<String> {
    SECRETS
        .iter()
        .filter(|s| text.contains(*s))
        .map(|s| format!("{}…", &s[..8]))
        .collect()
}

/// Every file under `dir`, concatenated.
fn read_logs(dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
    }
    text
}

static ROLE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

/// Creates (once per run) the login role `calsync_sec` with [`DB_PASSWORD`].
async fn ensure_role() {
    ROLE.get_or_init(|| async {
        let mut admin = sqlx::PgConnection::connect(&admin_url(TestBackend::Postgres))
            .await
            .expect("the PostgreSQL test server is unreachable");
        let create = format!(
            "DO $$ BEGIN CREATE ROLE {DB_ROLE} LOGIN PASSWORD '{DB_PASSWORD}'; \
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
        );
        sqlx::query(sqlx::AssertSqlSafe(create))
            .execute(&mut admin)
            .await
            .expect("creating the role");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER ROLE {DB_ROLE} WITH LOGIN PASSWORD '{DB_PASSWORD}'"
        )))
        .execute(&mut admin)
        .await
        .expect("setting the role's password");
        let _ = admin.close().await;
    })
    .await;
}

/// An empty PostgreSQL database owned by `calsync_sec` (so it may migrate it).
async fn database_for_role() -> TestDb {
    ensure_role().await;
    let db = empty(TestBackend::Postgres).await;
    let mut admin = sqlx::PgConnection::connect(&admin_url(TestBackend::Postgres))
        .await
        .expect("admin connection");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{}\" OWNER TO {DB_ROLE}",
        db.name()
    )))
    .execute(&mut admin)
    .await
    .expect("handing the database to the role");
    let _ = admin.close().await;
    db
}

/// `postgres://calsync_sec:<password>@127.0.0.1:<port>/<db>`.
fn role_url(db: &TestDb, password: &str, port: u16) -> String {
    format!(
        "postgres://{DB_ROLE}:{password}@127.0.0.1:{port}/{}",
        db.name()
    )
}

/// The text columns a failure can write into: `services.sync_error` and
/// `calsync_runs.error`, all rows.
async fn error_columns(db: &TestDb) -> String {
    let mut conn = sqlx::PgConnection::connect(&db.url)
        .await
        .expect("reading the test database");
    let mut text = String::new();
    for sql in [
        "SELECT COALESCE(sync_error, '') FROM services",
        "SELECT COALESCE(error, '') FROM calsync_runs",
        "SELECT summary::text FROM calsync_runs",
    ] {
        let rows: Vec<String> = sqlx::query_scalar(sql)
            .fetch_all(&mut conn)
            .await
            .expect("reading error columns");
        for r in rows {
            text.push_str(&r);
            text.push('\n');
        }
    }
    let _ = conn.close().await;
    text
}

/// A 401 whose message echoes the key, as a gateway may.
fn echoing_401(key: &str) -> Fault {
    Fault::new(FaultKind::Status {
        status: 401,
        body: Some(
            json!({"status": "error", "error": {"code": "UNAUTHORIZED",
                   "message": format!("Invalid API key {key} (Authorization: Bearer {key})")}})
            .to_string(),
        ),
    })
    .api_key(key)
    .times(0)
}

struct ConfigSpec<'a> {
    database_url: &'a str,
    base_url: &'a str,
    /// `(name, company, key)`.
    accounts: &'a [(&'a str, i64, &'a str)],
    admin_token: Option<&'a str>,
    listen: Option<u16>,
    log_dir: &'a Path,
}

/// Fast retries, a schedule that never fires, logs in `log_dir`.
fn config(c: &ConfigSpec<'_>) -> ConfigFile {
    let mut file = ConfigFile::new(c.database_url, c.base_url)
        .set("calcom.max_attempts", 2)
        .set("calcom.retry_initial_delay_ms", 10)
        .set("calcom.timeout_secs", 5)
        .set("sync.schedule", "0 0 0 1 1 *")
        .set("sync.jitter_secs", 0)
        .set("log.directory", c.log_dir.display().to_string());
    if let Some(port) = c.listen {
        file = file.set("server.listen", format!("127.0.0.1:{port}"));
    }
    if let Some(token) = c.admin_token {
        file = file.set("server.admin_token", token);
    }
    for (name, company, key) in c.accounts {
        file = file.account(AccountSpec::new(name, *company, key));
    }
    file
}

// ====================================================================== daemon

/// `calsync run`, its output next to its config (`NAME.out`).
struct Daemon {
    process: DaemonProcess,
}

impl Daemon {
    async fn start(config: &Path, port: u16) -> Daemon {
        let output = config.with_extension("out");
        Daemon {
            process: DaemonProcess::start(config, port, output, |_| {}),
        }
    }

    fn url(&self, path: &str) -> String {
        self.process.url(path)
    }

    /// `(status, body)`; the body is checked for secrets.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, String) {
        let mut request = self.process.http.request(method.clone(), self.url(path));
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request.body(b);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        assert_no_secret(&format!("the answer to {method} {path}"), &text);
        (status, text)
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: Option<&str>) -> (u16, String) {
        self.call(reqwest::Method::POST, path, token, None).await
    }

    async fn wait_listening(&self) {
        self.process.wait_listening().await;
    }

    async fn wait_ready(&self) {
        self.process.wait_ready().await;
    }

    /// SIGTERM, then everything it printed.
    async fn stop(self) -> String {
        self.process.stop(WAIT).await.1
    }
}

// ====================================================================== CLI

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cli_command_shows_a_secret_in_its_output_logs_or_error_columns() {
    let db = database_for_role().await;
    let sim = simulator(&[API_KEY], 0).await;
    let haircut = sim.create_event_type(
        API_KEY,
        json!({"title": "Haircut", "slug": "haircut", "lengthInMinutes": 30}),
    )["id"]
        .as_i64()
        .expect("id");
    let facial = sim.create_event_type(
        API_KEY,
        json!({"title": "Facial", "slug": "facial", "lengthInMinutes": 45}),
    )["id"]
        .as_i64()
        .expect("id");
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    let url = role_url(&db, DB_PASSWORD, 5432);
    let config = config(&ConfigSpec {
        database_url: &url,
        base_url: &sim.base_url(),
        accounts: &[("berlin", 1, API_KEY)],
        admin_token: Some(ADMIN_TOKEN),
        listen: None,
        log_dir: &logs,
    })
    .write(dir.path().join("calsync.toml"));

    let checked = calsync(&config, &["check-config"]).await;
    assert_eq!(checked.code, 0, "{}", checked.stderr);
    assert!(checked.stdout.contains("[redacted]"), "{}", checked.stdout);
    assert!(
        checked.stdout.contains(DB_ROLE),
        "the user is shown, only the password is not"
    );
    assert!(!checked.stderr.contains("warning"), "{}", checked.stderr);
    let migrated = calsync(&config, &["migrate"]).await;
    assert_eq!(migrated.code, 0, "{}", migrated.stderr);
    let once = calsync(&config, &["once"]).await;
    assert_eq!(once.code, 0, "{}{}", once.stdout, once.stderr);
    assert_eq!(
        db.raw_services().await.len(),
        2,
        "migrated and reconciled as the role"
    );
    assert_eq!(calsync(&config, &["plan"]).await.code, 0);

    assert!(sim.edit_event_type(haircut, json!({"title": "Haircut (edited)"})));
    assert_eq!(
        calsync(&config, &["plan", "--format", "json"]).await.code,
        1
    );
    assert_eq!(calsync(&config, &["once", "--dry-run"]).await.code, 0);
    assert_eq!(
        calsync(&config, &["once", "--format", "json"]).await.code,
        0
    );
    let drift = calsync(&config, &["drift"]).await;
    assert_eq!(drift.code, 0);
    assert!(
        drift.stdout.contains("Haircut (edited)"),
        "{}",
        drift.stdout
    );
    assert_eq!(
        calsync(&config, &["drift", "--format", "json"]).await.code,
        0
    );
    let id = db
        .raw_services()
        .await
        .into_iter()
        .find(|s| s.calcom_event_type_id == Some(haircut))
        .expect("imported")
        .id
        .to_string();
    let pushed = calsync(&config, &["push", "--service", &id]).await;
    assert_eq!(pushed.code, 0, "{}{}", pushed.stdout, pushed.stderr);

    // Failures that write error text into the database.
    assert!(sim.edit_event_type(facial, json!({"lengthInMinutes": 0})));
    assert_eq!(calsync(&config, &["once"]).await.code, 2);
    assert!(sim.edit_event_type(haircut, json!({"title": "Haircut (again)"})));
    sim.inject_fault(echoing_401(API_KEY).method("PATCH"));
    let refused = calsync(&config, &["push", "--service", &id]).await;
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("401"), "{}", refused.stderr);
    assert!(refused.stderr.contains("[redacted]"), "{}", refused.stderr);
    assert_eq!(
        calsync(&config, &["push", "--service", "999999"])
            .await
            .code,
        2
    );

    let columns = error_columns(&db).await;
    assert!(columns.contains("lengthInMinutes 0"), "{columns}");
    assert!(columns.contains("manual push failed"), "{columns}");
    assert_no_secret("services.sync_error / calsync_runs", &columns);
    let written = read_logs(&logs);
    assert!(!written.is_empty(), "log.directory received nothing");
    assert_no_secret("the log files", &written);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_cli_commands_show_no_secret() {
    let db = database_for_role().await;
    let sim = simulator(&[API_KEY], 2).await;
    sim.inject_fault(echoing_401(REVOKED_KEY));
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    let good_url = role_url(&db, DB_PASSWORD, 5432);
    let with = |url: &str, accounts: &[(&str, i64, &str)]| {
        config(&ConfigSpec {
            database_url: url,
            base_url: &sim.base_url(),
            accounts,
            admin_token: Some(ADMIN_TOKEN),
            listen: None,
            log_dir: &logs,
        })
    };
    let write = |name: &str, url: &str, accounts: &[(&str, i64, &str)]| {
        with(url, accounts).write(dir.path().join(name))
    };
    let good = write("good.toml", &good_url, &[("berlin", 1, API_KEY)]);
    assert_eq!(calsync(&good, &["migrate"]).await.code, 0);

    // A revoked key, whose 401 echoes it.
    let revoked = write(
        "revoked.toml",
        &good_url,
        &[("berlin", 1, API_KEY), ("porto", 2, REVOKED_KEY)],
    );
    let once = calsync(&revoked, &["once"]).await;
    assert_eq!(once.code, 2, "{}{}", once.stdout, once.stderr);
    assert!(
        once.stdout
            .contains("rejected the API key of account porto"),
        "{}",
        once.stdout
    );
    assert_eq!(calsync(&revoked, &["plan"]).await.code, 2);
    assert_eq!(
        calsync(&revoked, &["once", "--dry-run", "--account", "porto"])
            .await
            .code,
        2
    );

    // The database unreachable, refused, or reached with a wrong password.
    let unreachable = role_url(&db, DB_PASSWORD, free_port());
    let unknown_role = format!(
        "postgres://calsync_nobody:{WRONG_PASSWORD}@127.0.0.1:5432/{}",
        db.name()
    );
    let wrong_mariadb = format!("mysql://root:{WRONG_PASSWORD}@127.0.0.1:3306/test");
    let bad_port = format!("postgres://{DB_ROLE}:{DB_PASSWORD}@127.0.0.1:notaport/x");
    let bad_option = format!("{good_url}?sslmode=bogus");
    for (name, url) in [
        ("unreachable.toml", unreachable.as_str()),
        ("unknown-role.toml", unknown_role.as_str()),
        ("wrong-mariadb.toml", wrong_mariadb.as_str()),
        ("bad-port.toml", bad_port.as_str()),
        ("bad-option.toml", bad_option.as_str()),
    ] {
        let config = write(name, url, &[("berlin", 1, API_KEY)]);
        for args in [
            &["migrate"][..],
            &["once"],
            &["plan"],
            &["drift"],
            &["push", "--service", "1"],
        ] {
            let out = calsync(&config, args).await;
            assert_eq!(out.code, 2, "{name} {args:?}: {}{}", out.stdout, out.stderr);
            assert!(
                out.stderr.contains("database"),
                "{name} {args:?} does not say what failed: {}",
                out.stderr
            );
        }
        let shown = calsync(&config, &["check-config"]).await;
        assert_eq!(shown.code, 0, "{name}: {}", shown.stderr);
    }
    // The test server trusts loopback, so a wrong password for the role connects;
    // whatever happens, it is never shown.
    let wrong = write(
        "wrong-password.toml",
        &role_url(&db, WRONG_PASSWORD, 5432),
        &[("berlin", 1, API_KEY)],
    );
    for args in [&["check-config"][..], &["migrate"], &["once"], &["drift"]] {
        calsync(&wrong, args).await;
    }

    // Bad configurations that hold secrets.
    let bad_value = with(&good_url, &[("berlin", 1, API_KEY)])
        .set("sync.max_concurrent_accounts", 0)
        .write(dir.path().join("bad-value.toml"));
    let out = calsync(&bad_value, &["check-config"]).await;
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("sync.max_concurrent_accounts"),
        "{}",
        out.stderr
    );
    let short_token = config(&ConfigSpec {
        database_url: &good_url,
        base_url: &sim.base_url(),
        accounts: &[("berlin", 1, API_KEY)],
        admin_token: Some(SHORT_TOKEN),
        listen: None,
        log_dir: &logs,
    })
    .write(dir.path().join("short-token.toml"));
    for args in [&["check-config"][..], &["once"], &["run"]] {
        let out = calsync(&short_token, args).await;
        assert_eq!(out.code, 2);
        assert!(out.stderr.contains("server.admin_token"), "{}", out.stderr);
    }
    let unknown_key = with(&good_url, &[("berlin", 1, API_KEY)])
        .set("bogus.api_key", "x")
        .write(dir.path().join("unknown-key.toml"));
    assert_eq!(calsync(&unknown_key, &["check-config"]).await.code, 2);

    let columns = error_columns(&db).await;
    assert!(columns.contains("account porto"), "{columns}");
    assert_no_secret("services.sync_error / calsync_runs", &columns);
    assert_no_secret("the log files", &read_logs(&logs));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_and_trace_logs_show_no_secret() {
    let db = database_for_role().await;
    let sim = simulator(&[API_KEY], 2).await;
    sim.inject_fault(echoing_401(REVOKED_KEY));
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    let url = role_url(&db, DB_PASSWORD, 5432);
    for level in ["debug", "trace"] {
        let config = config(&ConfigSpec {
            database_url: &url,
            base_url: &sim.base_url(),
            accounts: &[("berlin", 1, API_KEY), ("porto", 2, REVOKED_KEY)],
            admin_token: Some(ADMIN_TOKEN),
            listen: None,
            log_dir: &logs,
        })
        .set("log.level", level)
        .write(dir.path().join(format!("{level}.toml")));
        assert_eq!(calsync(&config, &["migrate"]).await.code, 0);
        let once = calsync(&config, &["once"]).await;
        assert_eq!(once.code, 2, "porto's key is refused");
        assert!(
            once.stderr.len() > 1000,
            "{level} logs were written: {}",
            once.stderr
        );
    }
    assert_no_secret("the debug and trace log files", &read_logs(&logs));
}

// A TOML syntax error names the line and column but never quotes the line,
// which may hold a secret (stderr, and the daemon's logs on SIGHUP).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syntax_error_on_a_secret_line_never_echoes_the_secret() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut leaks: Vec<String> = Vec::new();
    let mut check = |channel: String, text: &str| {
        let found = secrets_in(text);
        if !found.is_empty() {
            leaks.push(format!("{channel}: {found:?}\n{text}"));
        }
    };
    let broken = [
        (
            "key.toml",
            format!("[[accounts]]\nname = \"berlin\"\ncompany_id = 1\napi_key = \"{API_KEY}\" x\n"),
        ),
        (
            "key-open.toml",
            format!("[[accounts]]\nname = \"berlin\"\ncompany_id = 1\napi_key = \"{API_KEY}\n"),
        ),
        (
            "token.toml",
            format!("[server]\nadmin_token = \"{ADMIN_TOKEN}\nlisten = \"127.0.0.1:0\"\n"),
        ),
        (
            "url.toml",
            format!(
                "[database]\nurl = \"postgres://{DB_ROLE}:{DB_PASSWORD}@127.0.0.1:5432/x\" y\n"
            ),
        ),
    ];
    for (name, text) in &broken {
        let config = write_text(dir.path().join(name), text, 0o600);
        for args in [&["check-config"][..], &["once"]] {
            let out = run_calsync(&config, args).await;
            assert_eq!(out.code, 2, "{name} {args:?}");
            assert!(out.stderr.contains("TOML parse error"), "{}", out.stderr);
            check(
                format!("stderr of calsync {args:?} with {name}"),
                &out.stderr,
            );
            check(
                format!("stdout of calsync {args:?} with {name}"),
                &out.stdout,
            );
        }
    }

    // The same typo made while the daemon runs, then SIGHUP.
    let sim = simulator(&[API_KEY], 1).await;
    let db = fresh(TestBackend::Sqlite).await;
    let logs = dir.path().join("logs");
    let port = free_port();
    let good = config(&ConfigSpec {
        database_url: &db.url,
        base_url: &sim.base_url(),
        accounts: &[("berlin", 1, API_KEY)],
        admin_token: Some(ADMIN_TOKEN),
        listen: Some(port),
        log_dir: &logs,
    });
    let config = good.write(dir.path().join("daemon.toml"));
    let good = good.text();
    let daemon = Daemon::start(&config, port).await;
    daemon.wait_ready().await;
    let typo = good.replace(
        &format!("api_key = {}", toml_string(API_KEY)),
        &format!("api_key = \"{API_KEY}"),
    );
    assert_ne!(typo, good);
    write_text(&config, &typo, 0o600);
    assert!(daemon.process.signal("HUP"));
    let deadline = Instant::now() + WAIT;
    while !read_logs(&logs).contains("Config reload rejected") {
        assert!(Instant::now() < deadline, "the reload was never rejected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let printed = daemon.stop().await;
    check("stdout/stderr of calsync run after SIGHUP".into(), &printed);
    check("the log files after SIGHUP".into(), &read_logs(&logs));

    assert!(
        leaks.is_empty(),
        "secrets were printed in {} place(s):\n\n{}",
        leaks.len(),
        leaks.join("\n\n")
    );
}

// ====================================================================== the daemon's surface

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_shows_no_secret_in_metrics_health_api_answers_logs_or_error_columns() {
    let db = database_for_role().await;
    let sim = simulator(&[API_KEY], 2).await;
    sim.inject_fault(echoing_401(REVOKED_KEY));
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    let port = free_port();
    let config = config(&ConfigSpec {
        database_url: &role_url(&db, DB_PASSWORD, 5432),
        base_url: &sim.base_url(),
        accounts: &[("berlin", 1, API_KEY), ("porto", 2, REVOKED_KEY)],
        admin_token: Some(ADMIN_TOKEN),
        listen: Some(port),
        log_dir: &logs,
    })
    .write(dir.path().join("calsync.toml"));
    assert_eq!(calsync(&config, &["migrate"]).await.code, 0);
    let daemon = Daemon::start(&config, port).await;
    daemon.wait_ready().await;

    let (status, metrics) = daemon.get("/metrics", None).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("calsync_calcom_requests_total{") && metrics.contains("code=\"401\""),
        "{metrics}"
    );
    assert_eq!(daemon.get("/readyz", None).await.0, 200);
    assert_eq!(daemon.get("/healthz", None).await.0, 200);
    let api = [
        (reqwest::Method::GET, "/api/v1/drift"),
        (reqwest::Method::POST, "/api/v1/reconcile"),
        (reqwest::Method::GET, "/api/v1/services/1"),
        (reqwest::Method::POST, "/api/v1/services/1/push"),
    ];
    for token in [None, Some("wrong-token-wrong-token-wrong"), Some(API_KEY)] {
        for (method, path) in &api {
            let (status, _) = daemon.call(method.clone(), path, token, None).await;
            assert_eq!(
                status,
                401,
                "{method} {path} with {:?}",
                token.map(|t| &t[..4])
            );
        }
    }
    let t = Some(ADMIN_TOKEN);
    let (status, report) = daemon.post("/api/v1/reconcile", t).await;
    assert_eq!(status, 200, "{report}");
    assert!(
        report.contains("rejected the API key of account porto"),
        "{report}"
    );
    assert_eq!(daemon.get("/api/v1/drift", t).await.0, 200);
    assert_eq!(daemon.get("/api/v1/services/1", t).await.0, 200);
    assert_eq!(daemon.get("/api/v1/services/abc", t).await.0, 400);
    assert_eq!(daemon.get("/api/v1/services/999999", t).await.0, 404);
    assert_eq!(daemon.post("/api/v1/services/999999/push", t).await.0, 404);
    assert_eq!(daemon.get("/api/v1/nothing", t).await.0, 404);
    assert_eq!(daemon.get("/nothing", None).await.0, 404);
    assert_eq!(daemon.post("/metrics", None).await.0, 405);
    // A push Cal.com refuses with a message echoing the key.
    sim.inject_fault(echoing_401(API_KEY).method("PATCH"));
    db.exec("UPDATE services SET name = 'Renamed', sync_status = 'pending' WHERE id = 1")
        .await;
    let (status, refused) = daemon.post("/api/v1/services/1/push", t).await;
    assert_eq!(status, 502, "{refused}");
    assert!(refused.contains("[redacted]"), "{refused}");
    let (status, _) = daemon
        .call(
            reqwest::Method::POST,
            "/api/v1/reconcile",
            t,
            Some(vec![b'x'; 80 * 1024]),
        )
        .await;
    assert_eq!(status, 413);
    let (_, metrics) = daemon.get("/metrics", None).await;
    assert_no_secret("/metrics", &metrics);

    let printed = daemon.stop().await;
    assert!(printed.contains("calsync stopped"), "{printed}");
    assert_no_secret("stdout/stderr of calsync run", &printed);
    let written = read_logs(&logs);
    assert!(written.contains("porto"), "{written}");
    assert_no_secret("the log files", &written);
    let columns = error_columns(&db).await;
    assert!(columns.contains("account porto"), "{columns}");
    assert!(columns.contains("manual push failed"), "{columns}");
    assert_no_secret("services.sync_error / calsync_runs", &columns);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_without_its_database_shows_no_secret() {
    ensure_role().await;
    let sim = simulator(&[API_KEY], 1).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    let port = free_port();
    let url = format!(
        "postgres://{DB_ROLE}:{DB_PASSWORD}@127.0.0.1:{}/nowhere",
        free_port()
    );
    let config = config(&ConfigSpec {
        database_url: &url,
        base_url: &sim.base_url(),
        accounts: &[("berlin", 1, API_KEY)],
        admin_token: Some(ADMIN_TOKEN),
        listen: Some(port),
        log_dir: &logs,
    })
    .write(dir.path().join("calsync.toml"));
    let daemon = Daemon::start(&config, port).await;
    daemon.wait_listening().await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = daemon.get("/readyz", None).await;
        assert_eq!(status, 503, "{body}");
        if body.contains("cannot") {
            assert!(body.contains("database"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t = Some(ADMIN_TOKEN);
    for (status, body) in [
        daemon.post("/api/v1/reconcile", t).await,
        daemon.get("/api/v1/drift", t).await,
        daemon.get("/api/v1/services/1", t).await,
        daemon.post("/api/v1/services/1/push", t).await,
    ] {
        assert_eq!(status, 503, "{body}");
    }
    daemon.get("/metrics", None).await;
    let printed = daemon.stop().await;
    assert!(printed.contains("Database not ready"), "{printed}");
    assert_no_secret("stdout/stderr of calsync run", &printed);
    assert_no_secret("the log files", &read_logs(&logs));
}

// ====================================================================== config file mode

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_with_secrets_readable_by_others_is_warned_about_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    let key_file = write_text(dir.path().join("key"), API_KEY, 0o600);
    let with_secret = |db_url: &str, account: AccountSpec| {
        ConfigFile::default()
            .set("database.url", db_url)
            .set("log.directory", logs.display().to_string())
            .account(account)
    };
    let key_inline = AccountSpec::new("berlin", 1, API_KEY);
    let key_in_file = AccountSpec::new("berlin", 1, API_KEY).key_file(&key_file);
    let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("x.db").display());
    let password_url = format!("postgres://{DB_ROLE}:{DB_PASSWORD}@127.0.0.1:5432/x");
    let cases = [
        (
            "open-key.toml",
            with_secret(&sqlite, key_inline.clone()),
            0o644,
            true,
        ),
        (
            "open-url.toml",
            with_secret(&password_url, key_in_file.clone()),
            0o644,
            true,
        ),
        (
            "group-key.toml",
            with_secret(&sqlite, key_inline.clone()),
            0o640,
            true,
        ),
        (
            "closed-key.toml",
            with_secret(&sqlite, key_inline.clone()),
            0o600,
            false,
        ),
        (
            "open-no-secret.toml",
            with_secret(&sqlite, key_in_file.clone()),
            0o644,
            false,
        ),
    ];
    for (name, text, mode, warned) in cases {
        let config = text.write_with_mode(dir.path().join(name), mode);
        let out = calsync(&config, &["check-config"]).await;
        assert_eq!(out.code, 0, "{name}: {}", out.stderr);
        let warnings: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("warning:"))
            .collect();
        if warned {
            assert_eq!(warnings.len(), 1, "{name} (mode {mode:o}): {}", out.stderr);
            assert!(
                warnings[0].contains(&config.display().to_string()),
                "the warning names the file: {}",
                warnings[0]
            );
            assert!(warnings[0].contains("chmod 600"), "{}", warnings[0]);
        } else {
            assert!(
                warnings.is_empty(),
                "{name} (mode {mode:o}): {}",
                out.stderr
            );
        }
    }
}

// ====================================================================== operator API

/// A daemon on a SQLite database with one imported service.
async fn api_daemon(admin_token: Option<&str>) -> (Daemon, TestDb, Simulator, tempfile::TempDir) {
    let db = fresh(TestBackend::Sqlite).await;
    let sim = simulator(&[API_KEY], 2).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = config(&ConfigSpec {
        database_url: &db.url,
        base_url: &sim.base_url(),
        accounts: &[("berlin", 1, API_KEY)],
        admin_token,
        listen: Some(port),
        log_dir: &dir.path().join("logs"),
    })
    .write(dir.path().join("calsync.toml"));
    let daemon = Daemon::start(&config, port).await;
    daemon.wait_ready().await;
    (daemon, db, sim, dir)
}

async fn runs(db: &TestDb) -> i64 {
    db.count("SELECT COUNT(*) FROM calsync_runs").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_api_needs_the_right_token_and_refuses_large_bodies() {
    let (daemon, db, sim, _dir) = api_daemon(Some(ADMIN_TOKEN)).await;
    let first = sim.requests().len();
    let runs_before = runs(&db).await;
    let rows = db.raw_services().await;
    assert_eq!(rows.len(), 2);

    for token in [
        None,
        Some("wrong-token-wrong-token"),
        Some(&ADMIN_TOKEN[..20]),
    ] {
        for path in ["/api/v1/reconcile", "/api/v1/services/1/push"] {
            let (status, body) = daemon.post(path, token).await;
            assert_eq!(status, 401, "{path}: {body}");
            assert!(body.contains("bearer token"), "{body}");
        }
        assert_eq!(daemon.get("/api/v1/drift", token).await.0, 401);
    }
    // A token in the wrong scheme is no token.
    let (status, _) = daemon
        .process
        .http
        .post(daemon.url("/api/v1/reconcile"))
        .header("authorization", format!("Basic {ADMIN_TOKEN}"))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .expect("answer");
    assert_eq!(status, 401);
    assert_eq!(runs(&db).await, runs_before, "a refused request ran a pass");
    assert_eq!(
        sim.requests().len(),
        first,
        "a refused request reached Cal.com"
    );

    // Over the 64 KiB limit: refused before anything runs.
    let (status, body) = daemon
        .call(
            reqwest::Method::POST,
            "/api/v1/reconcile",
            Some(ADMIN_TOKEN),
            Some(vec![b'{'; 65 * 1024]),
        )
        .await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(runs(&db).await, runs_before, "a refused request ran a pass");
    // Just under it is read and the request served.
    let (status, body) = daemon
        .call(
            reqwest::Method::POST,
            "/api/v1/reconcile",
            Some(ADMIN_TOKEN),
            Some(vec![b' '; 60 * 1024]),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(runs(&db).await, runs_before + 1);
    let (status, body) = daemon.get("/api/v1/services/1", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    let service: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(service["service_id"], 1);
    // Headers are bounded too: an oversized one is refused, and the server goes on.
    let oversized = daemon
        .process
        .http
        .get(daemon.url("/api/v1/drift"))
        .bearer_auth(ADMIN_TOKEN)
        .header("x-padding", "p".repeat(64 * 1024))
        .send()
        .await;
    if let Ok(r) = oversized {
        assert_eq!(r.status(), 431, "an oversized header was accepted");
    }
    assert_eq!(daemon.get("/api/v1/drift", Some(ADMIN_TOKEN)).await.0, 200);
    daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_admin_token_the_operator_api_is_disabled_and_writes_nothing() {
    let (daemon, db, sim, _dir) = api_daemon(None).await;
    let rows = db.raw_services().await;
    assert_eq!(rows.len(), 2);
    let runs_before = runs(&db).await;
    let requests = sim.requests().len();
    let id = rows[0].calcom_event_type_id.expect("linked");
    // Something a pass or a push would change, were one to run.
    assert!(sim.edit_event_type(id, json!({"title": "Edited in Cal.com"})));
    db.exec("UPDATE services SET name = 'Platform edit', sync_status = 'pending' WHERE id = 2")
        .await;
    let rows = db.raw_services().await;

    for token in [None, Some(ADMIN_TOKEN), Some("anything-anything-anything")] {
        for (method, path) in [
            (reqwest::Method::POST, "/api/v1/reconcile"),
            (reqwest::Method::POST, "/api/v1/services/1/push"),
            (reqwest::Method::POST, "/api/v1/services/2/push"),
            (reqwest::Method::GET, "/api/v1/drift"),
            (reqwest::Method::GET, "/api/v1/services/1"),
        ] {
            let (status, body) = daemon.call(method.clone(), path, token, None).await;
            assert_eq!(status, 404, "{method} {path}: {body}");
            assert!(body.contains("operator API is disabled"), "{body}");
        }
    }
    assert_eq!(
        db.raw_services().await,
        rows,
        "a disabled API wrote to services"
    );
    assert_eq!(runs(&db).await, runs_before, "a disabled API ran a pass");
    assert!(db.store.open_drift(None).await.expect("ledger").is_empty());
    assert_eq!(
        sim.requests().len(),
        requests,
        "a disabled API reached Cal.com"
    );
    assert_eq!(
        sim.event_type(id).expect("exists")["title"],
        "Edited in Cal.com"
    );
    daemon.stop().await;
}
