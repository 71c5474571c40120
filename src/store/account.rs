//! The account transaction: the order of its statements, written once for every
//! dialect (one batched statement per step, chunked to stay under parameter and
//! packet limits):
//!
//! 1. imports (new services; their ids feed the baselines of step 8);
//! 2. overwrites, guarded by the values read (the only business-column writes);
//! 3. confirmations, guarded likewise (a platform edit made meanwhile stays pending);
//! 4. sync metadata (a row the platform set `pending` stays `pending`), then
//!    pushes that need a human (`error` even over `pending`, guarded likewise);
//! 5. ledger entries whose Cal.com value Cal.com itself replaced are closed,
//! 6. then this pass's observations are upserted,
//! 7. then entries are resolved (so one seen and repaired in the same pass keeps its
//!    Cal.com value in the history);
//! 8. baselines, 9. the event type registry, 10. confirmed deletions, 11. push
//!    retry states, 12. acknowledgements, 13. decisions and the approval used,
//!    14. the run journal line and the account's verification time (once per
//!    account and pass: unchanged services are not stamped one by one).
//!
//! Step 14 is one statement on PostgreSQL (a data-modifying `WITH`), two
//! elsewhere. On PostgreSQL and MySQL, a write holding nothing but step 14 (a
//! steady pass) runs without a transaction: no `BEGIN` and `COMMIT` round trips.
//!
//! A write that asks for all its overwrites or nothing (an operator's adoption)
//! rolls back when a guard did not hold.

use sqlx::Pool;

use super::Backend;
use super::batch::{PreparedWrite, Statements};
use super::dialect::Dialect;
use super::error::on;
use super::{
    ApplyOutcome, StoreError, baseline, decisions, drift, push_state, registry, runs, services,
};

/// One account's write in one transaction.
pub(super) async fn apply<D: Dialect>(
    pool: &Pool<D>,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<ApplyOutcome, StoreError> {
    if let Some(run) = w.run
        && w.journal_only()
        && D::BACKEND != Backend::Sqlite
    {
        // A steady pass on a server: no transaction, whose BEGIN and COMMIT
        // would be round trips of their own. On MySQL the journal is two
        // statements (a crash between them leaves a journal line with the
        // previous verification time, which only understates how fresh the
        // account is). SQLite has no round trips, and one commit is cheaper
        // there than two.
        let mut c = pool
            .acquire()
            .await
            .map_err(on(D::BACKEND, "writing the run journal"))?;
        runs::journal::<D>(&mut c, st, run, w.account, w.now).await?;
        return Ok(ApplyOutcome::default());
    }
    st.tick();
    let begun = match D::BEGIN {
        Some(begin) => pool.begin_with(begin).await,
        None => pool.begin().await,
    };
    let mut tx = begun.map_err(on(D::BACKEND, "starting the account transaction"))?;
    let mut out = write::<D>(&mut tx, st, w).await?;
    if w.all_overwrites_or_nothing && out.overwritten < w.overwrites.len() as u64 {
        st.tick();
        tx.rollback()
            .await
            .map_err(on(D::BACKEND, "rolling back the account transaction"))?;
        out.rolled_back = true;
        return Ok(out);
    }
    st.tick();
    tx.commit()
        .await
        .map_err(on(D::BACKEND, "committing the account transaction"))?;
    Ok(out)
}

/// Every write of one account's pass, in order, inside the caller's transaction.
async fn write<D: Dialect>(
    c: &mut D::Connection,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<ApplyOutcome, StoreError> {
    let mut out = ApplyOutcome::default();
    services::import::<D>(c, st, w, &mut out).await?;
    services::overwrite::<D>(c, st, w, &mut out).await?;
    services::confirm::<D>(c, st, w, &mut out).await?;
    services::metadata::<D>(c, st, w, &mut out).await?;
    services::give_up::<D>(c, st, w, &mut out).await?;
    drift::resolve::<D>(c, st, w.now, &w.drift_replaced).await?;
    drift::upsert::<D>(c, st, w).await?;
    drift::resolve::<D>(c, st, w.now, &w.drift_resolutions).await?;
    baseline::upsert::<D>(c, st, w, &out.imported).await?;
    registry::register::<D>(c, st, w).await?;
    registry::mark_gone::<D>(c, st, w).await?;
    push_state::write::<D>(c, st, w).await?;
    drift::acknowledge::<D>(c, st, w).await?;
    decisions::write::<D>(c, st, w).await?;
    if let Some(run) = w.run {
        runs::journal::<D>(c, st, run, w.account, w.now).await?;
    }
    Ok(out)
}
