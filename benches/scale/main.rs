//! Scale benchmark: `cargo bench --bench scale` prints one table (see the README,
//! "Performance"). It owns nothing but its measurements: it never asserts on a
//! timing, and it talks to calsync only the way an operator does (a generated
//! config file, `calsync migrate`, `calsync once --format json`, `calsync run`),
//! apart from an optional replay through calsync's own `Store`.
//!
//! calsync runs with its **default configuration**: the generated config sets the
//! database URL, Cal.com's base URL, the accounts, a far-away schedule and the
//! listen address, nothing else, unless `CALSYNC_BENCH_CONCURRENCY` or
//! `CALSYNC_BENCH_MAX_CONNECTIONS` are set. Nothing maintains the database between
//! phases (no `VACUUM`, no `ANALYZE`): the table reports what repeated passes cost
//! on the server as configured, dead rows and stale statistics included.
//!
//! For each backend (SQLite: a file in a temp dir; PostgreSQL and MariaDB: a fresh
//! database `calsync_bench_<pid>_<size>`, dropped afterwards) and each size
//! (accounts × event types per account), it starts the Cal.com simulator in this
//! process and runs the `calsync` binary cargo built for the bench (release
//! profile) as a child, so wall time, CPU time and peak RSS (`wait4`, through a
//! small helper process, see [`child`]) are the child's alone. Passes: first
//! (imports everything), steady (nothing changed), drift (1% of event types edited
//! in the simulator first). Each is also run for one account alone (`--account`),
//! where calsync's statement counter is exact. Per pass it records HTTP requests
//! (calsync's report and the simulator's log), SQL statements (calsync's report),
//! rows written to `services` (PostgreSQL: `n_tup_ins + n_tup_upd + n_tup_del` of
//! `pg_stat_user_tables`; SQLite and MariaDB: rows whose content changed, from a
//! before/after read of every row), and on PostgreSQL the WAL bytes (cluster-wide).
//! A pass longer than `CALSYNC_BENCH_PASS_TIMEOUT_SECS` is killed, its cells say
//! so, and the run goes on. Beside the passes, measured in this process on the same
//! data (see [`workloads`]):
//!
//! - the steady floor: the same listing requests (same concurrency) + one `SELECT`
//!   of all services; no writes;
//! - the first-pass floor: the same listing requests + one batched insert of all
//!   rows into a scratch table shaped like `services`, in one transaction;
//! - the baseline: the old importer's per-row strategy (per event type one
//!   `SELECT … WHERE calcom_event_type_id = ?` and one `UPDATE`, autocommit);
//! - with `CALSYNC_BENCH_STORE_COSTS=1`, the steady pass's database work replayed
//!   through calsync's `Store` (see [`store_costs`]);
//! - the idle daemon: `calsync run` with a far-away schedule, VmRSS a few seconds
//!   after `/readyz` turned ready (after its start-up pass).
//!
//! Knobs (environment):
//! - `CALSYNC_BENCH_SIZES`: comma-separated; `TOTAL` (accounts of
//!   `CALSYNC_BENCH_PER_ACCOUNT` event types, 100 unless set) or `TOTALxPER` (PER
//!   event types per account); default `1000,10000,20000x200,100000,1000000`;
//! - `CALSYNC_BENCH_BACKENDS`: `sqlite,postgres,mariadb` (the default);
//! - `CALSYNC_BENCH_CONCURRENCY`, `CALSYNC_BENCH_MAX_CONNECTIONS`: unset, calsync's
//!   defaults (`sync.max_concurrent_accounts`, `database.max_connections`), which
//!   the floors, baseline and replay use too; set, written into calsync's config;
//! - `CALSYNC_BENCH_PASS_TIMEOUT_SECS` (1800);
//! - `CALSYNC_BENCH_BASELINE_MAX_ROWS`: unset, every row up to 10,000 rows, above
//!   that 5,000 rows extrapolated linearly (the table says so); set, that cap;
//! - `CALSYNC_BENCH_STORE_COSTS=1` (off), `CALSYNC_BENCH_META_ROUNDS` (3: rounds of
//!   the replay's `apply`);
//! - `CALSYNC_BENCH_IDLE_SECS` (5; 0 skips the idle daemon);
//! - `CALSYNC_BENCH_POSTGRES_URL` (admin URL; the bench databases keep its query
//!   string; default `postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable`),
//!   `CALSYNC_BENCH_MARIADB_URL` (default `mysql://root@127.0.0.1:3306/test`);
//! - `CALSYNC_BENCH_KEEP=1` (keep the databases and logs);
//! - `CALSYNC_BENCH_SETUP_ONLY=1`: per scenario only seed and import (the first
//!   pass), print where the data is and keep it.
//!
//! Under `cargo test` (no `--bench` argument) it runs a smoke version (SQLite, one
//! account, the replay on) so the harness itself stays tested without costing
//! minutes.

mod child;
mod databases;
mod store_costs;
mod table;
mod workloads;

use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

use calsync::config::{DatabaseConfig, SyncConfig};
use calsync::simulate::{SimConfig, Simulator};

use child::{Calsync, Idle, Pass};
use databases::{Backend, BenchDb};
use store_costs::StoreCosts;
use workloads::{Baseline, Floors};

/// The calsync binary cargo built for this bench (the release profile).
const BIN: &str = env!("CARGO_BIN_EXE_calsync");
/// The duration written into drifted event types: never a seeded value (15–120).
const DRIFTED_LENGTH: i64 = 125;
/// Above this many rows the baseline's per-row SQL is timed on
/// [`BASELINE_SAMPLE_ROWS`] rows and extrapolated, unless the knob says otherwise.
const BASELINE_FULL_UP_TO: usize = 10_000;
const BASELINE_SAMPLE_ROWS: usize = 5_000;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == child::MEASURE_CHILD) {
        return child::measure_child(&args[2..]);
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

// ---------------------------------------------------------------- knobs

/// One size: `total` event types, `per_account` per account (and API key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Size {
    total: usize,
    per_account: usize,
}

impl Size {
    fn accounts(self) -> usize {
        self.total / self.per_account
    }

    /// `TOTAL` (with `per_account`) or `TOTALxPER`.
    fn parse(text: &str, per_account: usize) -> anyhow::Result<Size> {
        let text = text.trim().replace('_', "");
        let number = |s: &str| {
            s.parse::<usize>().map_err(|_| {
                anyhow::anyhow!("CALSYNC_BENCH_SIZES: {text:?} is not TOTAL or TOTALxPER")
            })
        };
        let size = match text.split_once('x') {
            Some((total, per)) => Size {
                total: number(total)?,
                per_account: number(per)?,
            },
            None => Size {
                total: number(&text)?,
                per_account,
            },
        };
        ensure!(
            size.per_account > 0
                && size.total >= size.per_account
                && size.total.is_multiple_of(size.per_account),
            "CALSYNC_BENCH_SIZES: {} is not a positive multiple of {}",
            size.total,
            size.per_account
        );
        Ok(size)
    }
}

#[derive(Debug)]
struct Knobs {
    sizes: Vec<Size>,
    backends: Vec<Backend>,
    /// Written into calsync's config only when set.
    concurrency: Option<usize>,
    max_connections: Option<u32>,
    baseline_max_rows: Option<usize>,
    pass_timeout: Duration,
    store_costs: bool,
    meta_rounds: usize,
    idle_secs: u64,
    postgres_admin: String,
    mariadb_admin: String,
    keep: bool,
    setup_only: bool,
    smoke: bool,
}

impl Knobs {
    fn from_env(smoke: bool) -> anyhow::Result<Knobs> {
        fn var(name: &str) -> Option<String> {
            std::env::var(name).ok().filter(|v| !v.trim().is_empty())
        }
        fn number<T: FromStr>(name: &str) -> anyhow::Result<Option<T>> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse()
                        .map_err(|_| anyhow::anyhow!("{name}={v:?} is not a number"))
                })
                .transpose()
        }
        fn flag(name: &str) -> bool {
            var(name).is_some_and(|v| v != "0")
        }
        let per_account = number("CALSYNC_BENCH_PER_ACCOUNT")?
            .filter(|n| *n > 0)
            .unwrap_or(100);
        let sizes = match var("CALSYNC_BENCH_SIZES") {
            None if smoke => vec![Size {
                total: per_account,
                per_account,
            }],
            None => ["1000", "10000", "20000x200", "100000", "1000000"]
                .iter()
                .map(|s| Size::parse(s, per_account))
                .collect::<anyhow::Result<_>>()?,
            Some(v) => v
                .split(',')
                .map(|s| Size::parse(s, per_account))
                .collect::<anyhow::Result<_>>()?,
        };
        let backends = match var("CALSYNC_BENCH_BACKENDS") {
            None if smoke => vec![Backend::Sqlite],
            None => vec![Backend::Sqlite, Backend::Postgres, Backend::MariaDb],
            Some(v) => v
                .split(',')
                .map(|s| match s.trim() {
                    "sqlite" => Ok(Backend::Sqlite),
                    "postgres" | "postgresql" => Ok(Backend::Postgres),
                    "mariadb" | "mysql" => Ok(Backend::MariaDb),
                    other => {
                        bail!("CALSYNC_BENCH_BACKENDS: {other:?} (use sqlite, postgres, mariadb)")
                    }
                })
                .collect::<anyhow::Result<_>>()?,
        };
        Ok(Knobs {
            sizes,
            backends,
            concurrency: number("CALSYNC_BENCH_CONCURRENCY")?,
            max_connections: number("CALSYNC_BENCH_MAX_CONNECTIONS")?,
            baseline_max_rows: number("CALSYNC_BENCH_BASELINE_MAX_ROWS")?.filter(|n| *n > 0),
            pass_timeout: Duration::from_secs(
                number("CALSYNC_BENCH_PASS_TIMEOUT_SECS")?.unwrap_or(1800),
            ),
            // The smoke run keeps the replay's code path tested.
            store_costs: smoke || flag("CALSYNC_BENCH_STORE_COSTS"),
            meta_rounds: number("CALSYNC_BENCH_META_ROUNDS")?
                .unwrap_or(if smoke { 1 } else { 3 })
                .max(1),
            idle_secs: number("CALSYNC_BENCH_IDLE_SECS")?.unwrap_or(if smoke { 0 } else { 5 }),
            postgres_admin: var("CALSYNC_BENCH_POSTGRES_URL")
                .unwrap_or_else(|| databases::DEFAULT_POSTGRES.into()),
            mariadb_admin: var("CALSYNC_BENCH_MARIADB_URL")
                .unwrap_or_else(|| databases::DEFAULT_MARIADB.into()),
            keep: flag("CALSYNC_BENCH_KEEP"),
            setup_only: flag("CALSYNC_BENCH_SETUP_ONLY"),
            smoke,
        })
    }

    /// Accounts at once in the floors, baseline and replay: calsync's
    /// `sync.max_concurrent_accounts`, its default unless the knob set it.
    fn fetch_concurrency(&self) -> usize {
        self.concurrency
            .unwrap_or_else(|| SyncConfig::default().max_concurrent_accounts)
            .max(1)
    }

    /// Connections of the bench's own pools: calsync's `database.max_connections`.
    fn pool_size(&self) -> u32 {
        self.max_connections
            .unwrap_or_else(|| DatabaseConfig::default().max_connections)
            .max(1)
    }
}

// ---------------------------------------------------------------- the run

/// Everything measured for one backend and size.
#[derive(Debug, Clone)]
struct Scenario {
    backend: Backend,
    size: Size,
    first: Pass,
    steady: Pass,
    drift: Pass,
    floors: Floors,
    baseline: Baseline,
    store: Option<StoreCosts>,
    idle: Option<Idle>,
}

async fn run(knobs: Knobs) -> anyhow::Result<()> {
    // reqwest is built without a TLS provider of its own (see TOOLING.md).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let configured = |v: Option<String>| v.unwrap_or_else(|| "calsync's default".into());
    eprintln!(
        "scale bench{}: calsync binary {}; sizes {:?}; backends {:?}; max_concurrent_accounts: {}; max_connections: {}; pass timeout {} s",
        if knobs.smoke { " (smoke)" } else { "" },
        BIN,
        knobs.sizes,
        knobs.backends,
        configured(knobs.concurrency.map(|n| n.to_string())),
        configured(knobs.max_connections.map(|n| n.to_string())),
        knobs.pass_timeout.as_secs()
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
                .with_context(|| format!("{} with {} event types", backend.name(), size.total))?;
            scenarios.extend(s);
        }
    }
    eprintln!(
        "scale bench: done in {:.0} s; load average now: {}\n",
        started.elapsed().as_secs_f64(),
        load_average()
    );
    if knobs.setup_only {
        return Ok(());
    }
    println!("{}", table::render_passes(&scenarios, &knobs));
    if knobs.store_costs {
        println!(
            "\n{}",
            table::render_store_costs(&scenarios, knobs.fetch_concurrency())
        );
    }
    Ok(())
}

/// One backend and size; `None` with `CALSYNC_BENCH_SETUP_ONLY`.
async fn scenario(knobs: &Knobs, backend: Backend, size: Size) -> anyhow::Result<Option<Scenario>> {
    let accounts = size.accounts();
    let tag = format!("{}-{}x{}", backend.name(), size.total, size.per_account);
    let say = |what: &str| eprintln!("[{tag}] {what}");

    let keys: Vec<String> = (0..accounts)
        .map(|i| format!("cal_bench_{i:05}_{:08x}", rand::random::<u32>()))
        .collect();
    let clock = Instant::now();
    let sim = Simulator::start(
        "127.0.0.1:0".parse()?,
        SimConfig {
            api_keys: keys.clone(),
            seed_event_types: size.per_account,
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
        "simulator seeded {} event types for {accounts} keys in {:.1} s",
        size.total,
        clock.elapsed().as_secs_f64()
    ));

    // Removed at the end of a successful scenario unless CALSYNC_BENCH_KEEP is
    // set; kept after a failure, for its logs.
    let dir = tempfile::Builder::new()
        .prefix("calsync-bench-")
        .disable_cleanup(true)
        .tempdir()
        .context("creating a temp dir")?;
    let mut db = BenchDb::create(knobs, backend, dir.path(), size).await?;
    let calsync = Calsync::new(
        knobs,
        dir.path(),
        &db.url,
        &sim.base_url(),
        &keys,
        sim_started,
    )?;

    // 1. First pass: imports everything. One account's first pass alone first
    // (its exact statement count), in a database made afresh afterwards: an
    // emptied one would not do, PostgreSQL would plan for an empty table.
    calsync.migrate().await?;
    let first_solo = calsync.solo(&sim, "first-solo").await?;
    db.drop_database(false).await;
    db = BenchDb::create(knobs, backend, dir.path(), size).await?;
    calsync.migrate().await?;
    let mut first = calsync.pass(&sim, &db, "first").await?;
    first.sql_solo = first_solo;
    say(&format!("first pass: {}", first.summary()));
    if knobs.setup_only {
        sim.shutdown().await;
        say(&format!(
            "setup only: database {} (config and logs in {}), kept; the simulator stopped with this process",
            db.url,
            dir.path().display()
        ));
        db.drop_database(true).await;
        return Ok(None);
    }

    // 2. Steady pass: nothing changed.
    let mut steady = calsync.pass(&sim, &db, "steady").await?;
    steady.sql_solo = calsync.solo(&sim, "steady-solo").await?;
    say(&format!("steady pass: {}", steady.summary()));

    // 3. The floors.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(knobs.fetch_concurrency())
        .build()
        .context("building the bench's HTTP client")?;
    let (floors, listings) = workloads::floors(&db, &sim, &http, &keys, knobs, size).await?;
    say(&format!(
        "floors: steady {:.2} s (fetch {:.2}, select {:.2}); first {:.2} s (fetch {:.2}, insert {:.2})",
        floors.steady.total(),
        floors.steady.fetch,
        floors.steady.database,
        floors.first.total(),
        floors.first.fetch,
        floors.first.database
    ));

    // 4. Optionally: where the steady pass's database time goes, through calsync's
    // own store.
    let store = if knobs.store_costs {
        let costs = store_costs::measure(&db, &listings, knobs).await?;
        say(&format!(
            "store: load_account {:.2} s ({:.1} statements/account); apply {:.2} s without metadata, {:.2} s with",
            costs.load, costs.load_statements_per_account, costs.apply_without, costs.apply_with
        ));
        Some(costs)
    } else {
        None
    };

    // 5. The baseline: the old importer's per-row statements.
    let baseline = workloads::baseline(&db, &http, &sim.base_url(), &keys, knobs, size).await?;
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
    let mut drift = calsync.pass(&sim, &db, "drift").await?;
    // Alone, the account sees its drifted event type again: the same statements.
    drift.sql_solo = calsync.solo(&sim, "drift-solo").await?;
    say(&format!(
        "drift pass ({edited} edited): {}",
        drift.summary()
    ));

    // 7. The idle daemon.
    let idle = if knobs.idle_secs > 0 {
        let i = calsync.idle(knobs.idle_secs).await?;
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
    Ok(Some(Scenario {
        backend,
        size,
        first,
        steady,
        drift,
        floors,
        baseline,
        store,
        idle,
    }))
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
