//! What calsync's passes are compared with, run in this process against the same
//! simulator and database: the floors (the least any sync must do: list every
//! account, then read every service, or for a first pass insert every row) and
//! the baseline (the old importer's per-row statements). Both list with the same
//! concurrency as calsync (`sync.max_concurrent_accounts`).

use std::time::Instant;

use anyhow::{Context, ensure};
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use sqlx::AssertSqlSafe;

use calsync::simulate::Simulator;

use crate::databases::{Backend, BenchDb, Pool, ServiceRow, on_pool};
use crate::{BASELINE_FULL_UP_TO, BASELINE_SAMPLE_ROWS, Knobs, Size};

/// One floor: listing fetch + one database step, timed apart.
#[derive(Debug, Clone, Default)]
pub struct Floor {
    pub fetch: f64,
    /// The steady floor's `SELECT`, or the first floor's batched insert.
    pub database: f64,
    pub statements: u64,
    pub http: u64,
    pub http_sim: u64,
    /// PostgreSQL: WAL bytes of the database step.
    pub wal: Option<u64>,
}

impl Floor {
    pub fn total(&self) -> f64 {
        self.fetch + self.database
    }
}

#[derive(Debug, Clone, Default)]
pub struct Floors {
    /// Fetch + one `SELECT` of all services, no writes.
    pub steady: Floor,
    /// Fetch + one batched insert of all rows into a scratch table.
    pub first: Floor,
}

#[derive(Debug, Clone, Default)]
pub struct Baseline {
    pub fetch: f64,
    pub sql: f64,
    pub rows_done: usize,
    pub rows_total: usize,
    pub statements: u64,
    pub http: u64,
}

impl Baseline {
    /// Fetch + per-row SQL, the SQL scaled up linearly when it was capped.
    pub fn total(&self) -> f64 {
        let scale = if self.rows_done == 0 {
            1.0
        } else {
            self.rows_total as f64 / self.rows_done as f64
        };
        self.fetch + self.sql * scale
    }

    pub fn extrapolated(&self) -> bool {
        self.rows_done < self.rows_total
    }
}

/// Both floors; also returns the listings (event type ids per account).
pub async fn floors(
    db: &BenchDb,
    sim: &Simulator,
    http: &reqwest::Client,
    keys: &[String],
    knobs: &Knobs,
    size: Size,
) -> anyhow::Result<(Floors, Vec<Vec<i64>>)> {
    // Steady: fetch + one read of every service.
    let (listings, mut steady) = listed(sim, http, keys, knobs).await?;
    let count: usize = listings.iter().map(Vec::len).sum();
    ensure!(
        count == size.total,
        "the simulator listed {count} event types, expected {}",
        size.total
    );
    let clock = Instant::now();
    let services = db.select_all().await?;
    steady.database = clock.elapsed().as_secs_f64();
    steady.statements = 1;
    if services.len() != size.total {
        // A pass timed out: the floors still run, on what the database holds.
        eprintln!(
            "  floors: the database holds {} services, expected {}",
            services.len(),
            size.total
        );
    }

    // First: fetch + one batched insert of the same rows into an empty table
    // shaped like `services`.
    let (_, mut first) = listed(sim, http, keys, knobs).await?;
    db.create_scratch().await?;
    let wal = db.wal_position().await?;
    let clock = Instant::now();
    first.statements = db.insert_scratch(&services).await?;
    first.database = clock.elapsed().as_secs_f64();
    first.wal = db
        .wal_position()
        .await?
        .zip(wal)
        .map(|(a, b)| (a - b) as u64);
    db.drop_scratch().await?;
    Ok((Floors { steady, first }, listings))
}

/// The listings, with a floor holding their fetch time and request counts.
async fn listed(
    sim: &Simulator,
    http: &reqwest::Client,
    keys: &[String],
    knobs: &Knobs,
) -> anyhow::Result<(Vec<Vec<i64>>, Floor)> {
    sim.clear_requests();
    let (listings, fetch) =
        fetch_listings(http, &sim.base_url(), keys, knobs.fetch_concurrency()).await?;
    let floor = Floor {
        fetch,
        http: listings.len() as u64,
        http_sim: sim.requests().len() as u64,
        ..Floor::default()
    };
    Ok((listings, floor))
}

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
/// one UPDATE by id, each its own (autocommit) transaction, accounts
/// `concurrency` at a time over a pool of calsync's size; on SQLite over one
/// connection (SQLite takes one writer at a time, and more connections would only
/// add its busy-wait sleeps to the baseline). Above 10,000 rows only 5,000 are
/// run (or `CALSYNC_BENCH_BASELINE_MAX_ROWS`) and the SQL time is extrapolated.
pub async fn baseline(
    db: &BenchDb,
    http: &reqwest::Client,
    base: &str,
    keys: &[String],
    knobs: &Knobs,
    size: Size,
) -> anyhow::Result<Baseline> {
    let concurrency = knobs.fetch_concurrency();
    let (listings, fetch) = fetch_listings(http, base, keys, concurrency).await?;
    let cap = knobs
        .baseline_max_rows
        .unwrap_or(if size.total > BASELINE_FULL_UP_TO {
            BASELINE_SAMPLE_ROWS
        } else {
            size.total
        })
        .min(size.total);
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
    let backend = db.backend;
    let select = format!(
        "SELECT {} FROM services WHERE calcom_event_type_id = {}",
        backend.columns(),
        backend.param(1)
    );
    let update = format!(
        "UPDATE services SET sync_status = 'synced', sync_error = NULL, \
         last_calcom_sync = {} WHERE id = {}",
        backend.param(1),
        backend.param(2)
    );
    let (select, update) = (select.as_str(), update.as_str());
    // A pool of its own, closed when done: a PostgreSQL backend reports its row
    // counters when it exits (an idle one only after 10 s), so the baseline's
    // writes are counted before the next pass, not during it.
    let size_of_pool = match backend {
        Backend::Sqlite => 1,
        Backend::Postgres | Backend::MariaDb => knobs.pool_size(),
    };
    let pool = Pool::connect(backend, &db.url, size_of_pool).await?;
    let now = Utc::now().naive_utc();
    let clock = Instant::now();
    on_pool!(&pool, p => {
        futures::stream::iter(work)
            .map(|ids| async move {
                for id in ids {
                    let row: Option<ServiceRow> = sqlx::query_as(AssertSqlSafe(select))
                        .bind(id)
                        .fetch_optional(p)
                        .await?;
                    let row = row.with_context(|| format!("no service for event type {id}"))?;
                    sqlx::query(AssertSqlSafe(update))
                        .bind(now)
                        .bind(row.id)
                        .execute(p)
                        .await?;
                }
                anyhow::Ok(())
            })
            .buffer_unordered(concurrency)
            .try_collect::<Vec<()>>()
            .await?
    });
    let sql = clock.elapsed().as_secs_f64();
    pool.close().await;
    Ok(Baseline {
        fetch,
        sql,
        rows_done,
        rows_total: size.total,
        statements: 2 * rows_done as u64,
        http: keys.len() as u64,
    })
}
