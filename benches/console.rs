//! How fast the console answers at scale: a `calsync run` over a database of
//! 100,000 services (10 accounts, 2% with open drift, 0.1% orphaned), each
//! console page requested over HTTP as a logged-in browser would, timed end to
//! end (query, HTML, transfer). `cargo bench --bench console`.
//!
//! Knobs (environment): `CALSYNC_BENCH_SIZE` (services, default 100000),
//! `CALSYNC_BENCH_BACKENDS` (`sqlite,postgres`), `CALSYNC_BENCH_POSTGRES_URL`
//! (admin URL; the bench database is created and dropped), `CALSYNC_BENCH_ROUNDS`
//! (requests per page, default 7; the median is reported).
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs a smoke
//! version instead: 1,000 services on SQLite, one request per page.
//!
//! Cal.com is unreachable on purpose (a closed port): the daemon's passes fail
//! fast and the console, which reads only the database, is what is measured.

use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_calsync");
const TOKEN: &str = "console-bench-admin-token-0123456789";
const ACCOUNTS: i64 = 10;
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it, and gets the smoke version.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match runtime.block_on(run(smoke)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("console bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn run(smoke: bool) -> anyhow::Result<()> {
    // One TLS provider for reqwest (unused on loopback, but it must exist).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let size: i64 = var("CALSYNC_BENCH_SIZE")
        .map(|v| v.parse())
        .transpose()
        .context("CALSYNC_BENCH_SIZE")?
        .unwrap_or(if smoke { 1_000 } else { 100_000 });
    let rounds: usize = var("CALSYNC_BENCH_ROUNDS")
        .map(|v| v.parse())
        .transpose()
        .context("CALSYNC_BENCH_ROUNDS")?
        .unwrap_or(if smoke { 1 } else { 7 });
    let backends = var("CALSYNC_BENCH_BACKENDS")
        .unwrap_or_else(|| if smoke { "sqlite" } else { "sqlite,postgres" }.into());
    println!("console pages at {size} services, median of {rounds} requests each (ms)\n");
    for backend in backends.split(',').map(str::trim) {
        match backend {
            "sqlite" => {
                let dir = tempfile::tempdir()?;
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("console.db").display()
                );
                fill(&url, size).await?;
                measure("SQLite", &url, size, rounds).await?;
            }
            "postgres" => {
                let admin = var("CALSYNC_BENCH_POSTGRES_URL").unwrap_or(DEFAULT_POSTGRES.into());
                let name = format!("calsync_console_bench_{}", std::process::id());
                let pool = sqlx::PgPool::connect(&admin).await.context("PostgreSQL")?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&pool)
                    .await?;
                let mut url = url::Url::parse(&admin)?;
                url.set_path(&name);
                let result = async {
                    fill(url.as_str(), size).await?;
                    measure("PostgreSQL", url.as_str(), size, rounds).await
                }
                .await;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&pool)
                .await?;
                result?;
            }
            other => bail!("CALSYNC_BENCH_BACKENDS: {other:?} (use sqlite, postgres)"),
        }
    }
    Ok(())
}

/// Migrates and fills the database: `size` services over [`ACCOUNTS`] companies,
/// each registered to its company's account, every 50th with an open drift entry
/// (and `sync_status = 'error'`), every 97th pending, every 1000th orphaned.
async fn fill(url: &str, size: i64) -> anyhow::Result<()> {
    let store = calsync::store::Store::connect(url, 4).await?;
    store.migrate().await?;
    store.close().await;
    let started = Instant::now();
    let services = |numbers: &str| {
        format!(
            "INSERT INTO services (company_id, name, description, duration_minutes, price, \
             currency, calcom_event_type_id, sync_status, last_calcom_sync) \
             SELECT 1 + (i % {ACCOUNTS}), 'Service ' || i, 'Description of service ' || i, \
             30 + (i % 4) * 15, 25.00, 'EUR', 1000000 + i, \
             CASE WHEN i % 50 = 0 THEN 'error' WHEN i % 97 = 0 THEN 'pending' ELSE 'synced' END, \
             CURRENT_TIMESTAMP FROM {numbers}"
        )
    };
    let rest = [
        "INSERT INTO calsync_event_types (event_type_id, account, team_id, last_seen_at, gone_at) \
         SELECT calcom_event_type_id, 'a' || company_id, NULL, CURRENT_TIMESTAMP, \
         CASE WHEN id % 1000 = 0 THEN CURRENT_TIMESTAMP END FROM services"
            .to_owned(),
        "INSERT INTO calsync_drift (service_id, calcom_event_type_id, account, field, \
         platform_value, calcom_value, first_seen_at, last_seen_at, times_seen, open_key, \
         origin, baseline_value) SELECT id, calcom_event_type_id, 'a' || company_id, \
         'duration_minutes', '30', '45', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 1, \
         id || ':duration_minutes', 'calcom_edit', '30' FROM services WHERE id % 50 = 0"
            .to_owned(),
    ];
    if url.starts_with("sqlite") {
        let pool = sqlx::SqlitePool::connect(url).await?;
        let numbers = format!(
            "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {size}) \
             SELECT i FROM n)"
        );
        sqlx::query(sqlx::AssertSqlSafe(services(&numbers)))
            .execute(&pool)
            .await?;
        for s in &rest {
            sqlx::query(sqlx::AssertSqlSafe(s.as_str()))
                .execute(&pool)
                .await?;
        }
        sqlx::query("ANALYZE").execute(&pool).await?;
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(url).await?;
        let numbers = format!("generate_series(1, {size}) AS g(i)");
        sqlx::query(sqlx::AssertSqlSafe(services(&numbers)))
            .execute(&pool)
            .await?;
        for s in &rest {
            sqlx::query(sqlx::AssertSqlSafe(s.as_str()))
                .execute(&pool)
                .await?;
        }
        sqlx::query("ANALYZE").execute(&pool).await?;
        pool.close().await;
    }
    eprintln!("filled in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn measure(label: &str, url: &str, size: i64, rounds: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let mut config = format!(
        "[database]\nurl = {url:?}\n\n[calcom]\nbase_url = \"http://127.0.0.1:9\"\nmax_attempts = 1\n\n\
         [sync]\nschedule = \"0 0 0 1 1 *\"\njitter_secs = 0\n\n\
         [server]\nlisten = \"127.0.0.1:{port}\"\nadmin_token = \"{TOKEN}\"\n"
    );
    for a in 1..=ACCOUNTS {
        config.push_str(&format!(
            "\n[[accounts]]\nname = \"a{a}\"\ncompany_id = {a}\napi_key = \"cal_bench_key_{a:04}\"\n"
        ));
    }
    let file = dir.path().join("calsync.toml");
    std::fs::write(&file, config)?;
    let mut command = Command::new(BIN);
    command
        .args(["--config", file.to_str().context("utf-8 path")?, "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    // The bench's own knobs are not config keys.
    for (key, _) in std::env::vars() {
        if key.starts_with("CALSYNC_") {
            command.env_remove(key);
        }
    }
    let _daemon = command.spawn()?;

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let base = format!("http://127.0.0.1:{port}");
    let cookie = log_in(&http, &base).await?;
    let last = size - 100;
    let pages = [
        ("services, first page", "/console/services".to_owned()),
        (
            "services, last page",
            format!("/console/services?after={last}"),
        ),
        (
            "services of one account",
            "/console/services?account=a3".to_owned(),
        ),
        (
            "one account, page 100",
            format!("/console/services?account=a3&after={}", 100 * 50 * ACCOUNTS),
        ),
        ("filter: error", "/console/services?show=error".to_owned()),
        (
            "filter: pending",
            "/console/services?show=pending".to_owned(),
        ),
        (
            "filter: drifted",
            "/console/services?show=drifted".to_owned(),
        ),
        (
            "filter: orphaned",
            "/console/services?show=orphaned".to_owned(),
        ),
        (
            "filter: never (none match)",
            "/console/services?show=never".to_owned(),
        ),
        (
            "search: a name",
            format!("/console/services?q=Service+{}", size / 2),
        ),
        (
            "search: no match",
            "/console/services?q=nothing+like+this".to_owned(),
        ),
        ("a service with drift", "/console/services/500".to_owned()),
        ("accounts", "/console/accounts".to_owned()),
    ];
    println!("{label}");
    for (what, path) in pages {
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let started = Instant::now();
            let r = http
                .get(format!("{base}{path}"))
                .header("cookie", &cookie)
                .send()
                .await?;
            let status = r.status();
            let body = r.bytes().await?;
            times.push(started.elapsed());
            if status != 200 {
                bail!("{path}: {status}: {}", String::from_utf8_lossy(&body));
            }
        }
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "  {what:<28} {:>8.1}   {path}",
            median.as_secs_f64() * 1000.0
        );
    }
    println!();
    Ok(())
}

/// Logs in with the admin token; returns the session cookie.
async fn log_in(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let form = loop {
        match http.get(format!("{base}/console/login")).send().await {
            Ok(r) if r.status() == 200 => break r,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            other => bail!("the console did not answer: {other:?}"),
        }
    };
    let login_cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("calsync_login="))
        .and_then(|c| c.split(';').next())
        .context("no login cookie")?
        .to_owned();
    let page = form.text().await?;
    let marker = "name=\"login_csrf\" value=\"";
    let start = page.find(marker).context("no login_csrf")? + marker.len();
    let csrf = page[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_owned();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("login_csrf", &csrf)
        .append_pair("token", TOKEN)
        .finish();
    let r = http
        .post(format!("{base}/console/login"))
        .header("cookie", login_cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    // The database may still be connecting: the console then says so (503).
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("calsync_session="))
        .and_then(|c| c.split(';').next())
        .context("login refused")?
        .to_owned();
    loop {
        let r = http
            .get(format!("{base}/console/accounts"))
            .header("cookie", &session)
            .send()
            .await?;
        if r.status() == 200 {
            return Ok(session);
        }
        if Instant::now() > deadline {
            bail!("the console never had its database: {}", r.status());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
