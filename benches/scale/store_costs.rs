//! The steady pass's database work replayed in this process through calsync's
//! own [`Store`] (`CALSYNC_BENCH_STORE_COSTS=1`), to attribute time: how long
//! `load_account` takes, and what `apply` costs with and without the metadata
//! update of an account's unchanged rows (what `sync.touch_last_calcom_sync`
//! writes). It depends on the store's public API: `Store::connect`,
//! `Store::statements`, `Store::load_account` (with `AccountScope`),
//! `Store::apply` (with `AccountWrite`, `MetadataUpdate`, `RunRecord`) and
//! `Store::close`.

use std::time::Instant;

use anyhow::Context;
use chrono::Utc;
use futures::{StreamExt, TryStreamExt};

use calsync::domain::{EventTypeId, ServiceId, SyncStatus};
use calsync::store::{AccountScope, AccountWrite, MetadataUpdate, RunRecord, Store};

use crate::Knobs;
use crate::databases::{Backend, BenchDb};

#[derive(Debug, Clone, Default)]
pub struct StoreCosts {
    /// `load_account` for every account.
    pub load: f64,
    pub load_statements_per_account: f64,
    /// `apply` of every account's run journal line alone (medians over rounds).
    pub apply_without: f64,
    /// … and with the metadata update of its unchanged rows.
    pub apply_with: f64,
    /// SQLite: `apply` with metadata through a one-connection store.
    pub apply_with_one_connection: Option<f64>,
    /// PostgreSQL WAL bytes written by the two `apply` rounds.
    pub wal_without: Option<u64>,
    pub wal_with: Option<u64>,
}

/// An account as the replay sees it: name, company id, listed event types.
type Account = (String, i64, Vec<EventTypeId>);

/// Replays the steady pass's database work through calsync's own [`Store`], one
/// account at a time per task, calsync's concurrency of accounts at once:
/// `load_account` with the listed ids, then `apply` of the run journal line alone
/// and of the run line plus the metadata update of the account's unchanged rows.
/// Rounds alternate without/with; medians are kept.
pub async fn measure(
    db: &BenchDb,
    listings: &[Vec<i64>],
    knobs: &Knobs,
) -> anyhow::Result<StoreCosts> {
    let concurrency = knobs.fetch_concurrency();
    let store = Store::connect(&db.url, knobs.pool_size())
        .await
        .context("connecting calsync's store")?;
    let accounts: Vec<Account> = listings
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
        .buffered(concurrency)
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
            let secs = apply_all(&store, &accounts, &loaded, metadata, concurrency).await?;
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
        }
    }
    costs.apply_without = median(&without).unwrap_or(f64::NAN);
    costs.apply_with = median(&with).unwrap_or(f64::NAN);
    costs.wal_without = median(&wal_without);
    costs.wal_with = median(&wal_with);
    store.close().await;

    // SQLite takes one writer at a time; the same writes through one connection
    // show what the pool's waiting on the file lock costs.
    if db.backend == Backend::Sqlite {
        let single = Store::connect(&db.url, 1).await?;
        let mut one = Vec::new();
        for _ in 0..knobs.meta_rounds {
            one.push(apply_all(&single, &accounts, &loaded, true, concurrency).await?);
        }
        costs.apply_with_one_connection = median(&one);
        single.close().await;
    }
    Ok(costs)
}

/// One `Store::apply` per account (`concurrency` at once); returns the seconds.
async fn apply_all(
    store: &Store,
    accounts: &[Account],
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
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(clock.elapsed().as_secs_f64())
}

fn median<T: Copy + PartialOrd>(values: &[T]) -> Option<T> {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v.get(v.len() / 2).copied()
}
