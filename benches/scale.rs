//! Scale benchmark: `cargo bench --bench scale` prints one table (see the README,
//! "Performance"). It owns nothing but its measurements: it never asserts on a
//! timing, and it talks to calsync only the way an operator does (a generated
//! config file, `calsync migrate`, `calsync once --format json`, `calsync run`),
//! apart from one replay through calsync's own `Store` to attribute time.
//!
//! For each backend (SQLite file in a temp dir; PostgreSQL: a fresh database) and
//! each size (accounts × 100 event types), it starts the Cal.com simulator in this
//! process and runs the `calsync` binary cargo built for the bench (release
//! profile) as a child, so wall time, CPU time and peak RSS (`wait4`, through a
//! small helper process, see [`measure_child`]) are the child's alone. Passes:
//! first (imports everything), steady (nothing changed), drift (1% of event types
//! edited in the simulator first). Each is also run for one account alone
//! (`--account`), where calsync's statement counter is exact. Beside them,
//! measured in this process on the same data:
//!
//! - the floor: the same listing requests (same concurrency) + one `SELECT` of all
//!   services + one batched `last_calcom_sync` write; no reconcile logic;
//! - the baseline: the old importer's per-row strategy (per event type one
//!   `SELECT … WHERE calcom_event_type_id = ?` and one `UPDATE`, autocommit);
//! - the steady pass's database work through calsync's `Store`: `load_account`,
//!   then `apply` with and without the metadata update of unchanged rows, to price
//!   that update (time, and on PostgreSQL WAL bytes, table growth, VACUUM time);
//! - the idle daemon: `calsync run` with a far-away schedule, VmRSS a few seconds
//!   after `/readyz` turned ready (after its start-up pass).
//!
//! PostgreSQL databases get `VACUUM` between phases (`VACUUM ANALYZE` after the
//! import), standing in for autovacuum, so no phase pays for another's dead rows.
//!
//! Knobs (environment): `CALSYNC_BENCH_SIZES` (event types, multiples of the
//! event types per account; default `1000,10000,100000`),
//! `CALSYNC_BENCH_PER_ACCOUNT` (event types per account, 100),
//! `CALSYNC_BENCH_BACKENDS` (`sqlite,postgres`),
//! `CALSYNC_BENCH_CONCURRENCY` (16: `sync.max_concurrent_accounts` and the floor's
//! and baseline's fetch), `CALSYNC_BENCH_MAX_CONNECTIONS` (8),
//! `CALSYNC_BENCH_BASELINE_MAX_ROWS` (unset: every row; else the baseline's SQL is
//! timed on that many rows and extrapolated linearly, and the table says so),
//! `CALSYNC_BENCH_META_ROUNDS` (3: rounds of the `apply` replay), `CALSYNC_BENCH_IDLE_SECS` (5; 0 skips the
//! daemon), `CALSYNC_BENCH_POSTGRES_URL` (admin URL; the bench databases keep its
//! query string; default `postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable`),
//! `CALSYNC_BENCH_KEEP=1` (keep the databases and logs).
//!
//! Under `cargo test` (no `--bench` argument) it runs a smoke version (SQLite,
//! one account) so the harness itself stays tested without costing minutes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::{NaiveDateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, Connection, PgPool, QueryBuilder, Sqlite, SqlitePool};

use calsync::domain::{EventTypeId, ServiceId, SyncStatus};
use calsync::simulate::{SimConfig, Simulator};
use calsync::store::{AccountScope, AccountWrite, MetadataUpdate, RunRecord, Store};

/// The calsync binary cargo built for this bench (the release profile).
const BIN: &str = env!("CARGO_BIN_EXE_calsync");
/// Event types per account (and per API key): `CALSYNC_BENCH_PER_ACCOUNT`, 100
/// unless set (issue 10's 20k size is 100 accounts × 200).
fn per_account() -> usize {
    static PER_ACCOUNT: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
        std::env::var("CALSYNC_BENCH_PER_ACCOUNT")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(100)
    });
    *PER_ACCOUNT
}
/// Ids per SQLite `IN (…)` list in the floor's write (under the 32766 limit).
const SQLITE_ID_CHUNK: usize = 30_000;
/// The admin connection for creating the bench databases. TLS off: the server
/// here negotiates TLS when asked (`sslmode=prefer`, sqlx's default), which adds
/// connection set-up time to every `calsync once` that is not calsync's work.
const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";
/// The duration written into drifted event types: never a seeded value (15–120).
const DRIFTED_LENGTH: i64 = 125;

/// First argument of the bench binary re-executed as the measuring helper.
const MEASURE_CHILD: &str = "--measure-child";

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == MEASURE_CHILD) {
        return measure_child(&args[2..]);
    }
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary
    // without it, where a full run would cost minutes.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let knobs = match Knobs::from_env(smoke) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("scale bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("scale bench: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(knobs)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scale bench failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `scale --measure-child REPORT ARGS…`: runs calsync with ARGS (stdio
/// inherited), reaps it with `wait4`, writes "exit-code cpu-µs peak-rss-kB" to
/// REPORT. Why a helper: Linux folds the memory of the process a child was
/// spawned from into the child's `ru_maxrss` (until `exec` the child shares or
/// copies the parent's memory), so spawned straight from the bench, which holds
/// the simulator's 100k event types, every calsync would report at least the
/// bench's own size. This freshly started, small process spawns calsync instead.
fn measure_child(args: &[std::ffi::OsString]) -> ExitCode {
    let Some((report, rest)) = args.split_first() else {
        eprintln!("{MEASURE_CHILD} REPORT ARGS…");
        return ExitCode::FAILURE;
    };
    let measured = (|| -> anyhow::Result<()> {
        let child = std::process::Command::new(BIN).args(rest).spawn()?;
        let exit = rusage::wait(child.id() as i32)?;
        std::fs::write(
            report,
            format!(
                "{} {} {}",
                exit.code.unwrap_or(-1),
                exit.cpu.as_micros(),
                exit.max_rss_kb
            ),
        )?;
        Ok(())
    })();
    match measured {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{MEASURE_CHILD}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------- knobs

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

#[derive(Debug)]
struct Knobs {
    /// Event types in total per run (accounts = size / 100).
    sizes: Vec<usize>,
    backends: Vec<Backend>,
    concurrency: usize,
    max_connections: u32,
    baseline_max_rows: Option<usize>,
    meta_rounds: usize,
    idle_secs: u64,
    postgres_admin: String,
    keep: bool,
    smoke: bool,
}

impl Knobs {
    fn from_env(smoke: bool) -> anyhow::Result<Knobs> {
        fn var(name: &str) -> Option<String> {
            std::env::var(name).ok().filter(|v| !v.trim().is_empty())
        }
        fn number<T: FromStr>(name: &str, default: T) -> anyhow::Result<T> {
            match var(name) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a number")),
            }
        }
        let sizes = match var("CALSYNC_BENCH_SIZES") {
            None if smoke => vec![per_account()],
            None => vec![1_000, 10_000, 100_000],
            Some(v) => v
                .split(',')
                .map(|s| {
                    let n: usize = s.trim().replace('_', "").parse().map_err(|_| {
                        anyhow::anyhow!("CALSYNC_BENCH_SIZES: {s:?} is not a number")
                    })?;
                    ensure!(
                        n >= per_account() && n.is_multiple_of(per_account()),
                        "CALSYNC_BENCH_SIZES: {n} is not a positive multiple of {}",
                        per_account()
                    );
                    Ok(n)
                })
                .collect::<anyhow::Result<_>>()?,
        };
        let backends = match var("CALSYNC_BENCH_BACKENDS") {
            None if smoke => vec![Backend::Sqlite],
            None => vec![Backend::Sqlite, Backend::Postgres],
            Some(v) => v
                .split(',')
                .map(|s| match s.trim() {
                    "sqlite" => Ok(Backend::Sqlite),
                    "postgres" | "postgresql" => Ok(Backend::Postgres),
                    other => bail!("CALSYNC_BENCH_BACKENDS: {other:?} (use sqlite, postgres)"),
                })
                .collect::<anyhow::Result<_>>()?,
        };
        Ok(Knobs {
            sizes,
            backends,
            concurrency: number("CALSYNC_BENCH_CONCURRENCY", 16)?,
            max_connections: number("CALSYNC_BENCH_MAX_CONNECTIONS", 8)?,
            baseline_max_rows: var("CALSYNC_BENCH_BASELINE_MAX_ROWS")
                .map(|_| number("CALSYNC_BENCH_BASELINE_MAX_ROWS", 0usize))
                .transpose()?
                .filter(|n| *n > 0),
            meta_rounds: number("CALSYNC_BENCH_META_ROUNDS", if smoke { 1 } else { 3 })?.max(1),
            idle_secs: number("CALSYNC_BENCH_IDLE_SECS", if smoke { 0 } else { 5 })?,
            postgres_admin: var("CALSYNC_BENCH_POSTGRES_URL")
                .unwrap_or_else(|| DEFAULT_POSTGRES.into()),
            keep: var("CALSYNC_BENCH_KEEP").is_some_and(|v| v != "0"),
            smoke,
        })
    }
}

// ---------------------------------------------------------------- results

/// One `calsync` child process, as measured by `wait4`.
#[derive(Debug, Clone, Default)]
struct Pass {
    wall: f64,
    cpu: f64,
    rss_mb: f64,
    /// Sum of `sql_statements` over the accounts of the JSON report. calsync
    /// counts them with one store-wide counter, so under concurrency each account
    /// also counts its neighbours' statements: this sum overstates.
    sql: u64,
    /// Statements of one account's pass run alone (`--account`), where the
    /// counter is exact; every account does the same work in this benchmark.
    sql_solo: Option<u64>,
    /// Seconds from spawning calsync to its first Cal.com request (process
    /// start, config, database connect, schema checks).
    startup: f64,
    /// Sum of `calcom_requests` over the accounts of the JSON report.
    http: u64,
    /// `/v2` requests the simulator logged during the pass.
    http_sim: u64,
    imports: u64,
    in_sync: u64,
    drifted: u64,
    /// Sum of `services_written` (rows of `services` inserted or updated).
    services_written: u64,
    failed_accounts: u64,
    log_bytes: u64,
}

#[derive(Debug, Clone, Default)]
struct Floor {
    fetch: f64,
    select: f64,
    update: f64,
    statements: u64,
    http: u64,
    http_sim: u64,
}

impl Floor {
    fn total(&self) -> f64 {
        self.fetch + self.select + self.update
    }
}

#[derive(Debug, Clone, Default)]
struct Baseline {
    fetch: f64,
    sql: f64,
    rows_done: usize,
    rows_total: usize,
    statements: u64,
    http: u64,
}

impl Baseline {
    /// Fetch + per-row SQL, the SQL scaled up linearly when it was capped.
    fn total(&self) -> f64 {
        let scale = if self.rows_done == 0 {
            1.0
        } else {
            self.rows_total as f64 / self.rows_done as f64
        };
        self.fetch + self.sql * scale
    }
    fn extrapolated(&self) -> bool {
        self.rows_done < self.rows_total
    }
}

/// The steady pass's database work replayed through calsync's `Store`.
#[derive(Debug, Clone, Default)]
struct StoreCosts {
    /// `load_account` for every account.
    load: f64,
    load_statements_per_account: f64,
    /// `apply` of every account's run journal line alone (medians over rounds).
    apply_without: f64,
    /// … and with the metadata update of its unchanged rows.
    apply_with: f64,
    /// SQLite: `apply` with metadata through a one-connection store.
    apply_with_one_connection: Option<f64>,
    /// PostgreSQL WAL bytes written by the two `apply` rounds.
    wal_without: Option<u64>,
    wal_with: Option<u64>,
}

#[derive(Debug, Clone, Default)]
struct PgWrites {
    steady_wal: u64,
    steady_growth: i64,
    vacuum_after_steady: f64,
    floor_update_wal: u64,
}

#[derive(Debug, Clone, Default)]
struct Idle {
    rss_mb: f64,
    hwm_mb: f64,
}

#[derive(Debug, Clone)]
struct Scenario {
    backend: Backend,
    size: usize,
    first: Pass,
    steady: Pass,
    drift: Pass,
    floor: Floor,
    baseline: Baseline,
    store: StoreCosts,
    pg: Option<PgWrites>,
    idle: Option<Idle>,
}

// ---------------------------------------------------------------- the run

async fn run(knobs: Knobs) -> anyhow::Result<()> {
    // reqwest is built without a TLS provider of its own (see TOOLING.md).
    let _ = rustls::crypto::ring::default_provider().install_default();
    eprintln!(
        "scale bench{}: calsync binary {BIN}; sizes {:?}; backends {:?}; concurrency {}, max_connections {}",
        if knobs.smoke { " (smoke)" } else { "" },
        knobs.sizes,
        knobs.backends,
        knobs.concurrency,
        knobs.max_connections
    );
    // The machine may be shared: say how busy it was before the bench started.
    eprintln!(
        "load average at start: {}; CPU busy over 2 s before start: {:.0}%",
        load_average(),
        machine_busy(Duration::from_secs(2)).await
    );
    let started = Instant::now();
    let mut scenarios = Vec::new();
    for backend in &knobs.backends {
        for size in &knobs.sizes {
            let s = scenario(&knobs, *backend, *size)
                .await
                .with_context(|| format!("{} with {size} event types", backend.name()))?;
            scenarios.push(s);
        }
    }
    eprintln!(
        "scale bench: done in {:.0} s; load average now: {}\n",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    println!("{}", render_table(&scenarios));
    println!("\n{}", render_metadata(&scenarios, knobs.concurrency));
    Ok(())
}

async fn scenario(knobs: &Knobs, backend: Backend, size: usize) -> anyhow::Result<Scenario> {
    let accounts = size / per_account();
    let tag = format!("{}-{size}", backend.name());
    let say = |what: &str| eprintln!("[{tag}] {what}");

    let keys: Vec<String> = (0..accounts)
        .map(|i| format!("cal_bench_{i:05}_{:08x}", rand::random::<u32>()))
        .collect();
    let clock = Instant::now();
    let sim = Simulator::start(
        "127.0.0.1:0".parse()?,
        SimConfig {
            api_keys: keys.clone(),
            seed_event_types: per_account(),
            // The benchmark measures calsync, not Cal.com's throttling: the
            // simulator never says no; calsync keeps its own 120/min per key.
            rate_limit: 10_000_000,
            ..SimConfig::default()
        },
    )
    .await
    .context("starting the simulator")?;
    let sim_started = Instant::now();
    say(&format!(
        "simulator seeded {size} event types for {accounts} keys in {:.1} s",
        clock.elapsed().as_secs_f64()
    ));

    // Removed at the end of a successful scenario unless CALSYNC_BENCH_KEEP is
    // set; kept after a failure, for its logs.
    let dir = tempfile::Builder::new()
        .prefix("calsync-bench-")
        .disable_cleanup(true)
        .tempdir()
        .context("creating a temp dir")?;
    let mut db = BenchDb::create(knobs, backend, &dir, size).await?;
    let listen = free_port()?;
    let config = write_config(dir.path(), &db.url, &sim.base_url(), &keys, knobs, listen)?;
    let calsync = Calsync {
        config: config.clone(),
        dir: dir.path().to_path_buf(),
        sim_started,
    };

    // 1. First pass: imports everything. One account's first pass alone first
    // (its exact statement count), in a database made afresh afterwards: an
    // emptied one would not do, PostgreSQL would plan for an empty table.
    calsync.migrate().await?;
    let first_solo = calsync.solo(&sim, "first-solo").await?;
    db.drop_database(false).await;
    db = BenchDb::create(knobs, backend, &dir, size).await?;
    calsync.migrate().await?;
    let mut first = calsync.pass(&sim, "first").await?;
    first.sql_solo = Some(first_solo);
    say(&format!(
        "first pass: {:.2} s, {} imported, {:.1} MB peak",
        first.wall, first.imports, first.rss_mb
    ));
    // Stand-in for autovacuum (off on this machine) after a bulk import, so the
    // planner has statistics as it would in production.
    db.maintain(true).await?;

    // 2. Steady pass: nothing changed.
    let wal_before = db.wal_position().await?;
    let size_before = db.services_bytes().await?;
    let mut steady = calsync.pass(&sim, "steady").await?;
    let wal_after = db.wal_position().await?;
    let size_after = db.services_bytes().await?;
    steady.sql_solo = Some(calsync.solo(&sim, "steady-solo").await?);
    say(&format!(
        "steady pass: {:.2} s ({:.2} s CPU), {} in sync, {} SQL statements",
        steady.wall, steady.cpu, steady.in_sync, steady.sql
    ));
    let mut pg = None;
    if backend == Backend::Postgres {
        let clock = Instant::now();
        db.maintain(false).await?;
        pg = Some(PgWrites {
            steady_wal: wal_after.zip(wal_before).map_or(0, |(a, b)| (a - b) as u64),
            steady_growth: size_after.zip(size_before).map_or(0, |(a, b)| a - b),
            vacuum_after_steady: clock.elapsed().as_secs_f64(),
            floor_update_wal: 0,
        });
    }

    // 3. The floor.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(knobs.concurrency)
        .build()
        .context("building the bench's HTTP client")?;
    sim.clear_requests();
    let (listings, fetch) =
        fetch_listings(&http, &sim.base_url(), &keys, knobs.concurrency).await?;
    let mut floor = Floor {
        fetch,
        http: listings.len() as u64,
        http_sim: sim.requests().len() as u64,
        ..Floor::default()
    };
    let listed: usize = listings.iter().map(Vec::len).sum();
    ensure!(
        listed == size,
        "the simulator listed {listed} event types, expected {size}"
    );
    let clock = Instant::now();
    let services = db.select_all().await?;
    floor.select = clock.elapsed().as_secs_f64();
    ensure!(
        services.len() == size,
        "the database holds {} services after the first pass, expected {size}",
        services.len()
    );
    let ids: Vec<i64> = services.iter().map(|s| s.id).collect();
    let wal_before = db.wal_position().await?;
    let clock = Instant::now();
    floor.statements = 1 + db.touch_all(&ids, Utc::now().naive_utc()).await?;
    floor.update = clock.elapsed().as_secs_f64();
    if let (Some(pg), Some(after), Some(before)) =
        (pg.as_mut(), db.wal_position().await?, wal_before)
    {
        pg.floor_update_wal = (after - before) as u64;
    }
    say(&format!(
        "floor: {:.2} s (fetch {:.2}, select {:.2}, update {:.2})",
        floor.total(),
        floor.fetch,
        floor.select,
        floor.update
    ));
    db.maintain(false).await?;

    // 4. Where the steady pass's database time goes, and what its metadata
    // UPDATE costs, through calsync's own store.
    let store = measure_store(&db, &listings, knobs).await?;
    say(&format!(
        "store: load_account {:.2} s ({:.1} statements/account); apply {:.2} s without metadata, {:.2} s with",
        store.load, store.load_statements_per_account, store.apply_without, store.apply_with
    ));

    // 5. The baseline: the old importer's per-row statements.
    let baseline = run_baseline(&db, &http, &sim.base_url(), &keys, knobs, size).await?;
    say(&format!(
        "baseline: {:.2} s{} ({} statements on {} rows, SQL {:.2} s)",
        baseline.total(),
        if baseline.extrapolated() {
            " extrapolated"
        } else {
            ""
        },
        baseline.statements,
        baseline.rows_done,
        baseline.sql
    ));
    db.maintain(false).await?;

    // 6. Drift: 1% of the event types edited in Cal.com.
    let mut edited = 0;
    for listing in &listings {
        for (i, id) in listing.iter().enumerate() {
            if i % 100 == 0
                && sim.edit_event_type(
                    *id,
                    serde_json::json!({ "lengthInMinutes": DRIFTED_LENGTH }),
                )
            {
                edited += 1;
            }
        }
    }
    let mut drift = calsync.pass(&sim, "drift").await?;
    // Alone, the account sees its drifted event type again: the same statements.
    drift.sql_solo = Some(calsync.solo(&sim, "drift-solo").await?);
    say(&format!(
        "drift pass ({edited} edited): {:.2} s, {} drifted",
        drift.wall, drift.drifted
    ));

    // 7. The idle daemon.
    let idle = if knobs.idle_secs > 0 {
        let i = calsync.idle(listen, knobs.idle_secs).await?;
        say(&format!(
            "idle daemon: VmRSS {:.1} MB (VmHWM {:.1} MB)",
            i.rss_mb, i.hwm_mb
        ));
        Some(i)
    } else {
        None
    };

    sim.shutdown().await;
    db.drop_database(knobs.keep).await;
    if knobs.keep {
        say(&format!("kept {}", dir.path().display()));
    } else {
        let _ = std::fs::remove_dir_all(dir.path());
    }
    Ok(Scenario {
        backend,
        size,
        first,
        steady,
        drift,
        floor,
        baseline,
        store,
        pg,
        idle,
    })
}

// ---------------------------------------------------------------- calsync, the child

struct Calsync {
    config: PathBuf,
    dir: PathBuf,
    /// When the simulator started: its request log counts milliseconds from it.
    sim_started: Instant,
}

/// How a child ended, with its resources.
struct ChildRun {
    spawned: Instant,
    exit: Option<i32>,
    wall: f64,
    cpu: f64,
    max_rss_kb: u64,
    stdout: Vec<u8>,
    log: PathBuf,
}

#[derive(Deserialize)]
struct PassJson {
    accounts: Vec<AccountJson>,
}

#[derive(Deserialize)]
struct AccountJson {
    result: String,
    error: Option<String>,
    imported: u64,
    calcom_requests: u64,
    sql_statements: u64,
    #[serde(default)]
    services_written: u64,
    counts: CountsJson,
}

#[derive(Deserialize)]
struct CountsJson {
    in_sync: u64,
    drifted: u64,
}

impl Calsync {
    /// Runs `calsync --config … ARGS`, stdout captured, stderr (logs) to a file.
    async fn run(&self, args: &[&str], label: &str) -> anyhow::Result<ChildRun> {
        let log = self.dir.join(format!("{label}.log"));
        let usage = self.dir.join(format!("{label}.rusage"));
        let mut command = std::process::Command::new(std::env::current_exe()?);
        scrub_env(&mut command);
        command
            .arg(MEASURE_CHILD)
            .arg(&usage)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?);
        tokio::task::spawn_blocking(move || {
            let spawned = Instant::now();
            let mut child = command.spawn().context("starting calsync")?;
            let mut stdout = child.stdout.take().context("calsync's stdout")?;
            // Read while it runs: a 100k-item report does not fit a pipe buffer.
            let reader = std::thread::spawn(move || {
                let mut buf = Vec::new();
                stdout.read_to_end(&mut buf).map(|_| buf)
            });
            let helper = child.wait()?;
            let wall = spawned.elapsed().as_secs_f64();
            let stdout = reader
                .join()
                .map_err(|_| anyhow::anyhow!("the stdout reader panicked"))??;
            ensure!(helper.success(), "the measuring helper failed ({helper})");
            let usage = std::fs::read_to_string(&usage)?;
            let fields: Vec<i64> = usage
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .with_context(|| format!("reading {usage:?}"))?;
            let [code, cpu_us, max_rss_kb] = fields[..] else {
                bail!("the measuring helper wrote {usage:?}");
            };
            Ok(ChildRun {
                spawned,
                exit: (code >= 0).then_some(code as i32),
                wall,
                cpu: cpu_us as f64 / 1e6,
                max_rss_kb: max_rss_kb as u64,
                stdout,
                log,
            })
        })
        .await?
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let run = self.run(&["migrate"], "migrate").await?;
        ensure!(
            run.exit == Some(0),
            "calsync migrate failed (exit {:?}): {}",
            run.exit,
            log_tail(&run.log)
        );
        Ok(())
    }

    /// `calsync once --format json`, with the simulator's request log around it.
    async fn pass(&self, sim: &Simulator, label: &str) -> anyhow::Result<Pass> {
        self.once(sim, &[], label).await
    }

    /// One account's pass alone: its exact statement count.
    async fn solo(&self, sim: &Simulator, label: &str) -> anyhow::Result<u64> {
        let pass = self.once(sim, &["--account", "acct-0000"], label).await?;
        Ok(pass.sql)
    }

    async fn once(&self, sim: &Simulator, extra: &[&str], label: &str) -> anyhow::Result<Pass> {
        sim.clear_requests();
        let mut args = vec!["once", "--format", "json"];
        args.extend_from_slice(extra);
        let run = self.run(&args, label).await?;
        let requests = sim.requests();
        let http_sim = requests.len() as u64;
        let offset = run.spawned.saturating_duration_since(self.sim_started);
        let startup = requests
            .iter()
            .map(|r| r.at_ms)
            .min()
            .map_or(f64::NAN, |ms| ms as f64 / 1000.0 - offset.as_secs_f64());
        let report: PassJson = serde_json::from_slice(&run.stdout).with_context(|| {
            format!(
                "calsync once ({label}) exited {:?} without a JSON report: {}",
                run.exit,
                log_tail(&run.log)
            )
        })?;
        let mut pass = Pass {
            startup,
            wall: run.wall,
            cpu: run.cpu,
            rss_mb: run.max_rss_kb as f64 / 1024.0,
            http_sim,
            log_bytes: std::fs::metadata(&run.log).map_or(0, |m| m.len()),
            ..Pass::default()
        };
        for a in &report.accounts {
            pass.sql += a.sql_statements;
            pass.http += a.calcom_requests;
            pass.imports += a.imported;
            pass.in_sync += a.counts.in_sync;
            pass.drifted += a.counts.drifted;
            pass.services_written += a.services_written;
            if a.result != "success" {
                pass.failed_accounts += 1;
                eprintln!(
                    "  {label}: an account failed: {}",
                    a.error.as_deref().unwrap_or("?")
                );
            }
        }
        if pass.http != pass.http_sim {
            eprintln!(
                "  {label}: calsync reported {} Cal.com requests, the simulator logged {}",
                pass.http, pass.http_sim
            );
        }
        Ok(pass)
    }

    /// `calsync run`: waits for `/readyz` (after the start-up pass), lets it
    /// settle, reads VmRSS, then stops it with SIGTERM.
    async fn idle(&self, port: u16, settle_secs: u64) -> anyhow::Result<Idle> {
        let log = self.dir.join("run.log");
        let mut command = std::process::Command::new(BIN);
        scrub_env(&mut command);
        let mut child = tokio::process::Command::from(command)
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(self.dir.join("run.stderr"))?)
            .kill_on_drop(true)
            .spawn()
            .context("starting calsync run")?;
        let pid = child.id().context("calsync run's pid")?;
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/readyz");
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            if let Ok(r) = http.get(&url).send().await
                && r.status().is_success()
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                bail!("calsync run exited ({status}); see {}", log.display());
            }
            ensure!(
                Instant::now() < deadline,
                "calsync run was not ready within 15 minutes; see {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(settle_secs)).await;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kb = |field: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
                .unwrap_or(f64::NAN)
        };
        let idle = Idle {
            rss_mb: kb("VmRSS:") / 1024.0,
            hwm_mb: kb("VmHWM:") / 1024.0,
        };
        rusage::terminate(pid as i32)?;
        match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("  calsync run did not stop within 60 s of SIGTERM; killing it");
                let _ = child.kill().await;
            }
        }
        Ok(idle)
    }
}

/// calsync reads every `CALSYNC_*` variable as configuration and rejects unknown
/// keys, so the bench's own knobs (`CALSYNC_BENCH_*`) must not reach it; nor may
/// an operator's overrides or log filter change what is measured.
fn scrub_env(command: &mut std::process::Command) {
    for (name, _) in std::env::vars_os() {
        let n = name.to_string_lossy();
        if n.starts_with("CALSYNC_") || n == "CALCOM_ALLOW_OVERWRITES" || n == "RUST_LOG" {
            command.env_remove(&name);
        }
    }
}

/// `wait4(2)` and `kill(2)` from the C library std already links: one child's own
/// peak RSS and CPU time (`RUSAGE_CHILDREN` would mix every child reaped so far).
/// Declared here because `libc` is not a dependency of this package.
mod rusage {
    use std::io;
    use std::os::raw::{c_int, c_long};
    use std::time::Duration;

    #[repr(C)]
    #[derive(Default)]
    struct Timeval {
        sec: c_long,
        usec: c_long,
    }

    /// `struct rusage` on Linux: two timevals, then 14 longs (`ru_maxrss` first).
    #[repr(C)]
    #[derive(Default)]
    struct Rusage {
        utime: Timeval,
        stime: Timeval,
        maxrss: c_long,
        rest: [c_long; 13],
    }

    unsafe extern "C" {
        fn wait4(pid: c_int, status: *mut c_int, options: c_int, usage: *mut Rusage) -> c_int;
        fn kill(pid: c_int, signal: c_int) -> c_int;
    }

    pub struct Exit {
        /// The exit code, or `None` when a signal ended it.
        pub code: Option<i32>,
        /// User + system time.
        pub cpu: Duration,
        /// Peak resident set size (kB on Linux).
        pub max_rss_kb: u64,
    }

    /// Reaps `pid` (which must be a child not waited for otherwise).
    pub fn wait(pid: i32) -> io::Result<Exit> {
        let mut status: c_int = 0;
        let mut usage = Rusage::default();
        loop {
            // SAFETY: both pointers are valid for writes for the duration of the
            // call, and `Rusage` has the C layout of `struct rusage` on Linux.
            let r = unsafe { wait4(pid, &mut status, 0, &mut usage) };
            if r == pid {
                break;
            }
            let e = io::Error::last_os_error();
            if r == -1 && e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let time = |t: &Timeval| Duration::from_micros((t.sec as u64) * 1_000_000 + t.usec as u64);
        Ok(Exit {
            code: ((status & 0x7f) == 0).then_some((status >> 8) & 0xff),
            cpu: time(&usage.utime) + time(&usage.stime),
            max_rss_kb: usage.maxrss.max(0) as u64,
        })
    }

    /// Sends SIGTERM.
    pub fn terminate(pid: i32) -> io::Result<()> {
        const SIGTERM: c_int = 15;
        // SAFETY: kill has no memory effects; pid is our own child.
        if unsafe { kill(pid, SIGTERM) } == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

fn write_config(
    dir: &Path,
    db_url: &str,
    base_url: &str,
    keys: &[String],
    knobs: &Knobs,
    listen: u16,
) -> anyhow::Result<PathBuf> {
    // calcom.requests_per_minute stays at its default (120): one listing per
    // account and pass fits it. The schedule is far away, so `calsync run` makes
    // only its start-up pass.
    let mut toml = format!(
        "[database]\nurl = \"{db_url}\"\nmax_connections = {}\n\n\
         [calcom]\nbase_url = \"{base_url}\"\n\n\
         [sync]\nschedule = \"0 0 0 1 1 *\"\njitter_secs = 0\nmax_concurrent_accounts = {}\n\n\
         [server]\nlisten = \"127.0.0.1:{listen}\"\n",
        knobs.max_connections, knobs.concurrency
    );
    for (i, key) in keys.iter().enumerate() {
        write!(
            toml,
            "\n[[accounts]]\nname = \"acct-{i:04}\"\ncompany_id = {}\napi_key = \"{key}\"\n",
            i + 1
        )?;
    }
    let path = dir.join("calsync.toml");
    // It holds API keys: calsync warns about a config readable by others.
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    std::io::Write::write_all(&mut file, toml.as_bytes())?;
    Ok(path)
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

// ---------------------------------------------------------------- the bench's own database access

/// The benchmark's database: its URL (for calsync) and a pool for the floor,
/// baseline and metadata measurements, configured like calsync's.
struct BenchDb {
    url: String,
    pool: Pool,
    /// PostgreSQL: the database to drop at the end.
    pg_name: Option<(String, String)>,
    /// SQLite: the file (its -wal and -shm beside it).
    sqlite_path: Option<PathBuf>,
}

enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The columns a reconcile reads, in one shape for both dialects.
#[derive(Debug, sqlx::FromRow)]
#[allow(dead_code)] // read to make the floor's SELECT decode what calsync decodes
struct ServiceRow {
    id: i64,
    company_id: i64,
    name: String,
    description: Option<String>,
    duration_minutes: i64,
    cents: i64,
    currency: String,
    is_active: bool,
    is_online: bool,
    calcom_event_type_id: Option<i64>,
    sync_status: String,
    last_calcom_sync: Option<NaiveDateTime>,
    sync_error: Option<String>,
}

const PG_COLUMNS: &str = "id::int8 AS id, company_id::int8 AS company_id, name::text AS name, \
    description::text AS description, duration_minutes::int8 AS duration_minutes, \
    round(price * 100)::int8 AS cents, currency::text AS currency, \
    COALESCE(is_active, false) AS is_active, COALESCE(is_online, false) AS is_online, \
    calcom_event_type_id::int8 AS calcom_event_type_id, sync_status::text AS sync_status, \
    last_calcom_sync::timestamp AS last_calcom_sync, sync_error::text AS sync_error";

const SQLITE_COLUMNS: &str = "id, company_id, name, description, duration_minutes, \
    CAST(ROUND(price * 100) AS INTEGER) AS cents, currency, \
    (COALESCE(is_active, 0) <> 0) AS is_active, (COALESCE(is_online, 0) <> 0) AS is_online, \
    calcom_event_type_id, sync_status, last_calcom_sync, sync_error";

impl BenchDb {
    async fn create(
        knobs: &Knobs,
        backend: Backend,
        dir: &tempfile::TempDir,
        size: usize,
    ) -> anyhow::Result<BenchDb> {
        match backend {
            Backend::Sqlite => {
                let path = dir.path().join("calsync.db");
                let url = format!("sqlite://{}?mode=rwc", path.display());
                Ok(BenchDb {
                    pool: Pool::Sqlite(sqlite_pool(&url, knobs.max_connections).await?),
                    url,
                    pg_name: None,
                    sqlite_path: Some(path),
                })
            }
            Backend::Postgres => {
                let name = format!("calsync_bench_{}_{size}", std::process::id());
                let mut admin = sqlx::PgConnection::connect(&knobs.postgres_admin)
                    .await
                    .with_context(|| {
                        format!("connecting to PostgreSQL (CALSYNC_BENCH_POSTGRES_URL, default {DEFAULT_POSTGRES})")
                    })?;
                sqlx::query(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await?;
                sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await?;
                let _ = admin.close().await;
                let mut url = url::Url::parse(&knobs.postgres_admin)?;
                url.set_path(&format!("/{name}"));
                let url = url.to_string();
                let pool = PgPoolOptions::new()
                    .max_connections(knobs.max_connections)
                    .connect(&url)
                    .await?;
                Ok(BenchDb {
                    url,
                    pool: Pool::Postgres(pool),
                    pg_name: Some((knobs.postgres_admin.clone(), name)),
                    sqlite_path: None,
                })
            }
        }
    }

    async fn drop_database(self, keep: bool) {
        match self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
        }
        if let (Some(path), false) = (self.sqlite_path, keep) {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        if let (Some((admin, name)), false) = (self.pg_name, keep)
            && let Ok(mut c) = sqlx::PgConnection::connect(&admin).await
        {
            let _ = sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut c)
            .await;
        }
    }

    /// Between measured phases: PostgreSQL `VACUUM` (and `ANALYZE`), as autovacuum
    /// would, so no phase pays for another's dead rows. SQLite needs nothing:
    /// it updates in place, and calsync's exit checkpointed its WAL.
    async fn maintain(&self, analyze: bool) -> anyhow::Result<()> {
        if let Pool::Postgres(p) = &self.pool {
            let sql = if analyze { "VACUUM ANALYZE" } else { "VACUUM" };
            sqlx::query(sql).execute(p).await.context("VACUUM")?;
        }
        Ok(())
    }

    /// PostgreSQL's WAL insert position (bytes); cluster-wide.
    async fn wal_position(&self) -> anyhow::Result<Option<i64>> {
        match &self.pool {
            Pool::Postgres(p) => Ok(Some(
                sqlx::query_scalar("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8")
                    .fetch_one(p)
                    .await?,
            )),
            Pool::Sqlite(_) => Ok(None),
        }
    }

    /// PostgreSQL: size of `services` with its indexes.
    async fn services_bytes(&self) -> anyhow::Result<Option<i64>> {
        match &self.pool {
            Pool::Postgres(p) => Ok(Some(
                sqlx::query_scalar("SELECT pg_total_relation_size('services')::int8")
                    .fetch_one(p)
                    .await?,
            )),
            Pool::Sqlite(_) => Ok(None),
        }
    }

    /// The floor's read: one SELECT of every service.
    async fn select_all(&self) -> anyhow::Result<Vec<ServiceRow>> {
        Ok(match &self.pool {
            Pool::Postgres(p) => {
                sqlx::query_as(AssertSqlSafe(format!("SELECT {PG_COLUMNS} FROM services")))
                    .fetch_all(p)
                    .await?
            }
            Pool::Sqlite(p) => {
                sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT {SQLITE_COLUMNS} FROM services"
                )))
                .fetch_all(p)
                .await?
            }
        })
    }

    /// The floor's write: `last_calcom_sync = now` on every id, batched; returns
    /// the statements sent.
    async fn touch_all(&self, ids: &[i64], now: NaiveDateTime) -> anyhow::Result<u64> {
        match &self.pool {
            Pool::Postgres(p) => {
                sqlx::query("UPDATE services SET last_calcom_sync = $1 WHERE id = ANY($2::int8[])")
                    .bind(now)
                    .bind(ids)
                    .execute(p)
                    .await?;
                Ok(1)
            }
            Pool::Sqlite(p) => {
                let mut tx = p.begin_with("BEGIN IMMEDIATE").await?;
                let mut statements = 2;
                for chunk in ids.chunks(SQLITE_ID_CHUNK) {
                    let mut qb =
                        QueryBuilder::<Sqlite>::new("UPDATE services SET last_calcom_sync = ");
                    qb.push_bind(now).push(" WHERE id IN (");
                    let mut list = qb.separated(", ");
                    for id in chunk {
                        list.push_bind(*id);
                    }
                    qb.push(")");
                    qb.build().persistent(false).execute(&mut *tx).await?;
                    statements += 1;
                }
                tx.commit().await?;
                Ok(statements)
            }
        }
    }
}

async fn sqlite_pool(url: &str, max_connections: u32) -> anyhow::Result<SqlitePool> {
    // The options calsync's store uses (src/store/connect.rs).
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    Ok(SqlitePoolOptions::new()
        .max_connections(max_connections)
        .connect_with(options)
        .await?)
}

// ---------------------------------------------------------------- floor and baseline

#[derive(Deserialize)]
struct ListEnvelope {
    data: Vec<ListItem>,
}

#[derive(Deserialize)]
struct ListItem {
    id: i64,
}

/// Every account's `GET /v2/event-types` (ids only), `concurrency` at a time, in
/// account order; returns the listings and the seconds it took.
async fn fetch_listings(
    http: &reqwest::Client,
    base: &str,
    keys: &[String],
    concurrency: usize,
) -> anyhow::Result<(Vec<Vec<i64>>, f64)> {
    let clock = Instant::now();
    let url = format!("{base}/v2/event-types");
    let listings: Vec<Vec<i64>> = futures::stream::iter(keys)
        .map(|key| {
            let request = http
                .get(&url)
                .bearer_auth(key)
                .header("cal-api-version", calsync::calcom::wire::API_VERSION);
            async move {
                let response = request.send().await?.error_for_status()?;
                let body = response.bytes().await?;
                let envelope: ListEnvelope = serde_json::from_slice(&body)?;
                anyhow::Ok(envelope.data.into_iter().map(|i| i.id).collect())
            }
        })
        .buffered(concurrency.max(1))
        .try_collect()
        .await?;
    Ok((listings, clock.elapsed().as_secs_f64()))
}

/// The old importer: list, then per event type one SELECT by event type id and
/// one UPDATE by id, each its own (autocommit) transaction. Accounts run
/// `concurrency` at a time over the same pool size as calsync on PostgreSQL; on
/// SQLite over one connection (SQLite takes one writer at a time, and more
/// connections would only add its busy-wait sleeps to the baseline).
async fn run_baseline(
    db: &BenchDb,
    http: &reqwest::Client,
    base: &str,
    keys: &[String],
    knobs: &Knobs,
    size: usize,
) -> anyhow::Result<Baseline> {
    let (listings, fetch) = fetch_listings(http, base, keys, knobs.concurrency).await?;
    let cap = knobs.baseline_max_rows.unwrap_or(usize::MAX).min(size);
    let mut work: Vec<Vec<i64>> = Vec::new();
    let mut left = cap;
    for listing in listings {
        if left == 0 {
            break;
        }
        let take = listing.len().min(left);
        left -= take;
        work.push(listing.into_iter().take(take).collect());
    }
    let rows_done: usize = work.iter().map(Vec::len).sum();
    let now = Utc::now().naive_utc();
    let clock = Instant::now();
    match &db.pool {
        Pool::Postgres(pool) => {
            let select =
                format!("SELECT {PG_COLUMNS} FROM services WHERE calcom_event_type_id = $1");
            let select = select.as_str();
            futures::stream::iter(work)
                .map(|ids| async move {
                    for id in ids {
                        let row: Option<ServiceRow> = sqlx::query_as(AssertSqlSafe(select))
                            .bind(id)
                            .fetch_optional(pool)
                            .await?;
                        let row = row.with_context(|| format!("no service for event type {id}"))?;
                        sqlx::query(
                            "UPDATE services SET sync_status = 'synced', sync_error = NULL, \
                             last_calcom_sync = $1 WHERE id = $2",
                        )
                        .bind(now)
                        .bind(row.id)
                        .execute(pool)
                        .await?;
                    }
                    anyhow::Ok(())
                })
                .buffer_unordered(knobs.concurrency.max(1))
                .try_collect::<Vec<()>>()
                .await?;
        }
        Pool::Sqlite(_) => {
            let pool = sqlite_pool(&db.url, 1).await?;
            let select =
                format!("SELECT {SQLITE_COLUMNS} FROM services WHERE calcom_event_type_id = ?");
            let (pool, select) = (&pool, select.as_str());
            futures::stream::iter(work)
                .map(|ids| async move {
                    for id in ids {
                        let row: Option<ServiceRow> = sqlx::query_as(AssertSqlSafe(select))
                            .bind(id)
                            .fetch_optional(pool)
                            .await?;
                        let row = row.with_context(|| format!("no service for event type {id}"))?;
                        sqlx::query(
                            "UPDATE services SET sync_status = 'synced', sync_error = NULL, \
                             last_calcom_sync = ? WHERE id = ?",
                        )
                        .bind(now)
                        .bind(row.id)
                        .execute(pool)
                        .await?;
                    }
                    anyhow::Ok(())
                })
                .buffer_unordered(knobs.concurrency.max(1))
                .try_collect::<Vec<()>>()
                .await?;
            pool.close().await;
        }
    }
    Ok(Baseline {
        fetch,
        sql: clock.elapsed().as_secs_f64(),
        rows_done,
        rows_total: size,
        statements: 2 * rows_done as u64,
        http: keys.len() as u64,
    })
}

// ---------------------------------------------------------------- calsync's store, in process

/// Replays the steady pass's database work through calsync's own [`Store`], one
/// account at a time per task, `concurrency` accounts at once: `load_account`
/// with the listed ids, then `apply` of the run journal line alone and of the
/// run line plus the metadata update of the account's 100 unchanged rows (what
/// a steady pass writes). Rounds alternate without/with; medians are kept.
async fn measure_store(
    db: &BenchDb,
    listings: &[Vec<i64>],
    knobs: &Knobs,
) -> anyhow::Result<StoreCosts> {
    let store = Store::connect(&db.url, knobs.max_connections)
        .await
        .context("connecting calsync's store")?;
    let accounts: Vec<(String, i64, Vec<EventTypeId>)> = listings
        .iter()
        .enumerate()
        .map(|(i, ids)| {
            (
                format!("acct-{i:04}"),
                i as i64 + 1,
                ids.iter().map(|id| EventTypeId(*id)).collect(),
            )
        })
        .collect();

    // Load: the services of each account, as a pass reads them.
    let before = store.statements();
    let clock = Instant::now();
    let loaded: Vec<Vec<ServiceId>> = futures::stream::iter(&accounts)
        .map(|(account, company_id, listed)| {
            let store = &store;
            async move {
                let snapshot = store
                    .load_account(AccountScope {
                        account,
                        company_id: *company_id,
                        listed,
                    })
                    .await?;
                anyhow::Ok(snapshot.services.iter().map(|l| l.service.id).collect())
            }
        })
        .buffered(knobs.concurrency.max(1))
        .try_collect()
        .await?;
    let load = clock.elapsed().as_secs_f64();
    let load_statements = store.statements() - before;

    let mut costs = StoreCosts {
        load,
        load_statements_per_account: load_statements as f64 / accounts.len() as f64,
        ..StoreCosts::default()
    };
    let (mut without, mut with, mut wal_without, mut wal_with) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..knobs.meta_rounds {
        for metadata in [false, true] {
            let wal = db.wal_position().await?;
            let secs = apply_all(&store, &accounts, &loaded, metadata, knobs.concurrency).await?;
            let wal = db
                .wal_position()
                .await?
                .zip(wal)
                .map(|(a, b)| (a - b) as u64);
            if metadata {
                with.push(secs);
                wal_with.extend(wal);
            } else {
                without.push(secs);
                wal_without.extend(wal);
            }
            db.maintain(false).await?;
        }
    }
    costs.apply_without = median(&without);
    costs.apply_with = median(&with);
    costs.wal_without = (!wal_without.is_empty()).then(|| median_u64(&wal_without));
    costs.wal_with = (!wal_with.is_empty()).then(|| median_u64(&wal_with));
    store.close().await;

    // SQLite takes one writer at a time; the same writes through one connection
    // show what the pool's waiting on the file lock costs.
    if let Pool::Sqlite(_) = db.pool {
        let single = Store::connect(&db.url, 1).await?;
        let mut one = Vec::new();
        for _ in 0..knobs.meta_rounds {
            one.push(apply_all(&single, &accounts, &loaded, true, knobs.concurrency).await?);
        }
        costs.apply_with_one_connection = Some(median(&one));
        single.close().await;
    }
    Ok(costs)
}

/// One `Store::apply` per account (`concurrency` at once); returns the seconds.
async fn apply_all(
    store: &Store,
    accounts: &[(String, i64, Vec<EventTypeId>)],
    loaded: &[Vec<ServiceId>],
    metadata: bool,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let clock = Instant::now();
    futures::stream::iter(accounts.iter().zip(loaded))
        .map(|((account, _, _), ids)| async move {
            let now = Utc::now().naive_utc();
            let mut write = AccountWrite::new(account.clone(), now);
            if metadata {
                write.metadata = ids
                    .iter()
                    .map(|id| MetadataUpdate {
                        id: *id,
                        status: SyncStatus::Synced,
                        error: None,
                    })
                    .collect();
            }
            write.run = Some(RunRecord {
                account: account.clone(),
                started_at: now,
                finished_at: now,
                result: "success",
                summary: serde_json::json!({}),
                error: None,
            });
            store.apply(write).await?;
            anyhow::Ok(())
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(clock.elapsed().as_secs_f64())
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn median_u64(values: &[u64]) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// The last lines of a child's log, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "{} (from {})",
        lines[lines.len().saturating_sub(5)..].join("\n"),
        path.display()
    )
}

/// Share of CPU time (all cores) not idle over `window`, from /proc/stat.
async fn machine_busy(window: Duration) -> f64 {
    fn sample() -> Option<(u64, u64)> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        let values: Vec<u64> = text
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let total: u64 = values.iter().take(8).sum();
        let idle = values.get(3)? + values.get(4)?;
        Some((total, idle))
    }
    let before = sample();
    tokio::time::sleep(window).await;
    match (before, sample()) {
        (Some((t0, i0)), Some((t1, i1))) if t1 > t0 => {
            100.0 * (1.0 - (i1 - i0) as f64 / (t1 - t0) as f64)
        }
        _ => f64::NAN,
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

// ---------------------------------------------------------------- output

fn size_label(n: usize) -> String {
    if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

fn mb(bytes: f64) -> String {
    format!("{:.1}", bytes / (1024.0 * 1024.0))
}

/// A Markdown table with aligned columns (readable in a terminal too).
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s = String::from("|");
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            let _ = write!(s, " {c}{} |", " ".repeat(pad));
        }
        s
    };
    let mut out = line(header.iter().map(|h| (*h).to_owned()).collect());
    out.push('\n');
    out.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect()));
    for row in rows {
        out.push('\n');
        out.push_str(&line(row.clone()));
    }
    out
}

fn render_table(scenarios: &[Scenario]) -> String {
    // Wall time of (backend, size, pass), for growth ratios.
    let mut walls: BTreeMap<(&str, usize, &str), f64> = BTreeMap::new();
    for s in scenarios {
        let b = s.backend.name();
        walls.insert((b, s.size, "first"), s.first.wall);
        walls.insert((b, s.size, "steady"), s.steady.wall);
        walls.insert((b, s.size, "drift 1%"), s.drift.wall);
        walls.insert((b, s.size, "floor"), s.floor.total());
        walls.insert((b, s.size, "baseline"), s.baseline.total());
    }
    let growth = |s: &Scenario, pass: &str, wall: f64| {
        let previous = scenarios
            .iter()
            .filter(|p| p.backend == s.backend && p.size < s.size)
            .map(|p| p.size)
            .max();
        match previous.and_then(|p| walls.get(&(s.backend.name(), p, pass)).map(|w| (p, *w))) {
            Some((p, w)) if w > 0.0 => format!("×{:.1} vs {}", wall / w, size_label(p)),
            _ => "–".into(),
        }
    };
    let mut rows = Vec::new();
    for s in scenarios {
        let b = s.backend.name().to_owned();
        let size = size_label(s.size);
        let accounts = (s.size / per_account()) as u64;
        let pass_row = |name: &str, p: &Pass, note: String| {
            vec![
                b.clone(),
                size.clone(),
                name.to_owned(),
                format!("{:.2}", p.wall),
                format!("{:.2}", p.cpu),
                format!("{:.2}", p.startup),
                format!("{:.1}", p.rss_mb),
                p.sql_solo
                    .map_or("?".into(), |n| format!("{n} ({})", n * accounts)),
                p.sql.to_string(),
                format!("{} / {}", p.http, p.http_sim),
                String::new(),
                String::new(),
                growth(s, name, p.wall),
                note,
            ]
        };
        let failed = |p: &Pass| {
            if p.failed_accounts > 0 {
                format!("; {} ACCOUNTS FAILED", p.failed_accounts)
            } else {
                String::new()
            }
        };
        rows.push(pass_row(
            "first",
            &s.first,
            format!(
                "{} imported; log {} MB{}",
                s.first.imports,
                mb(s.first.log_bytes as f64),
                failed(&s.first)
            ),
        ));
        let mut steady = pass_row(
            "steady",
            &s.steady,
            format!(
                "{} in sync; {} services rows written{}",
                s.steady.in_sync,
                s.steady.services_written,
                failed(&s.steady)
            ),
        );
        steady[10] = format!("{:.2}×", s.steady.wall / s.floor.total());
        steady[11] = format!("{:.1}×", s.baseline.total() / s.steady.wall);
        rows.push(steady);
        rows.push(pass_row(
            "drift 1%",
            &s.drift,
            format!(
                "{} drifted, {} in sync; {} services rows written{}",
                s.drift.drifted,
                s.drift.in_sync,
                s.drift.services_written,
                failed(&s.drift)
            ),
        ));
        rows.push(vec![
            b.clone(),
            size.clone(),
            "floor".into(),
            format!("{:.2}", s.floor.total()),
            "–".into(),
            "–".into(),
            "–".into(),
            "–".into(),
            s.floor.statements.to_string(),
            format!("{} / {}", s.floor.http, s.floor.http_sim),
            String::new(),
            String::new(),
            growth(s, "floor", s.floor.total()),
            format!(
                "in bench: fetch {:.2} + select {:.2} + update {:.2}",
                s.floor.fetch, s.floor.select, s.floor.update
            ),
        ]);
        rows.push(vec![
            b.clone(),
            size.clone(),
            "baseline".into(),
            format!(
                "{:.2}{}",
                s.baseline.total(),
                if s.baseline.extrapolated() { "*" } else { "" }
            ),
            "–".into(),
            "–".into(),
            "–".into(),
            "2 per row".into(),
            format!("{}", 2 * s.baseline.rows_total as u64),
            format!("{}", s.baseline.http),
            String::new(),
            String::new(),
            growth(s, "baseline", s.baseline.total()),
            if s.baseline.extrapolated() {
                format!(
                    "*per-row SQL timed on {} of {} rows, extrapolated linearly; fetch {:.2}",
                    s.baseline.rows_done, s.baseline.rows_total, s.baseline.fetch
                )
            } else {
                format!(
                    "in bench: fetch {:.2} + per-row SQL {:.2}",
                    s.baseline.fetch, s.baseline.sql
                )
            },
        ]);
        if let Some(idle) = &s.idle {
            rows.push(vec![
                b.clone(),
                size.clone(),
                "idle (run)".into(),
                "–".into(),
                "–".into(),
                "–".into(),
                format!("{:.1}", idle.rss_mb),
                "–".into(),
                "–".into(),
                "–".into(),
                String::new(),
                String::new(),
                "–".into(),
                format!(
                    "VmRSS after start-up pass + settle; VmHWM {:.1} MB",
                    idle.hwm_mb
                ),
            ]);
        }
    }
    table(
        &[
            "backend",
            "size",
            "pass",
            "wall s",
            "CPU s",
            "start-up s",
            "peak RSS MB",
            "SQL stmts/account alone (× accounts)",
            "SQL stmts (report Σ)",
            "HTTP reqs (report / sim)",
            "calsync ÷ floor",
            "baseline ÷ calsync",
            "growth (wall)",
            "note",
        ],
        &rows,
    )
}

fn render_metadata(scenarios: &[Scenario], concurrency: usize) -> String {
    let rows: Vec<Vec<String>> = scenarios
        .iter()
        .map(|s| {
            let st = &s.store;
            let cost = st.apply_with - st.apply_without;
            let pg = s.pg.as_ref();
            vec![
                s.backend.name().to_owned(),
                size_label(s.size),
                format!("{:.2}", s.steady.wall),
                format!("{:.2}", s.floor.fetch),
                format!("{:.2} ({:.0})", st.load, st.load_statements_per_account),
                format!("{:.2}", st.apply_without),
                format!("{:.2}", st.apply_with),
                format!("{:+.2} ({:.0}%)", cost, 100.0 * cost / s.steady.wall),
                st.apply_with_one_connection
                    .map_or("–".into(), |v| format!("{v:.2}")),
                format!("{:.2}", s.floor.update),
                match (st.wal_without, st.wal_with) {
                    (Some(a), Some(b)) => format!("{} → {}", mb(a as f64), mb(b as f64)),
                    _ => "–".into(),
                },
                pg.map_or("–".into(), |p| mb(p.steady_wal as f64)),
                pg.map_or("–".into(), |p| mb(p.floor_update_wal as f64)),
                pg.map_or("–".into(), |p| mb(p.steady_growth as f64)),
                pg.map_or("–".into(), |p| format!("{:.2}", p.vacuum_after_steady)),
            ]
        })
        .collect();
    format!(
        "Steady pass, database work replayed in process through calsync's Store \
         ({} accounts at a time), and the cost of the metadata UPDATE on unchanged rows:\n{}",
        concurrency,
        table(
            &[
                "backend",
                "size",
                "steady s",
                "listing fetch s",
                "load_account s (stmts/acct)",
                "apply: run line only s",
                "apply: + metadata s",
                "metadata cost s (% of steady)",
                "apply + metadata, 1 conn s",
                "floor's one UPDATE s",
                "apply WAL MB (w/o → with)",
                "steady pass WAL MB",
                "floor UPDATE WAL MB",
                "services growth MB",
                "VACUUM after steady s",
            ],
            &rows,
        )
    )
}
