//! The account transaction: the order of its statements, written once for every
//! dialect. Each dialect's connection implements [`AccountTx`] (one batched
//! statement per step, chunked where a dialect needs it); [`write`] runs the steps
//! in the order the contract needs:
//!
//! 1. imports (new services; their ids feed the baselines of step 8);
//! 2. overwrites, guarded by the values read (the only business-column writes);
//! 3. confirmations, guarded likewise (a platform edit made meanwhile stays pending);
//! 4. sync metadata (a row the platform set `pending` stays `pending`);
//! 5. ledger entries whose Cal.com value Cal.com itself replaced are closed,
//! 6. then this pass's observations are upserted,
//! 7. then entries are resolved (so one seen and repaired in the same pass keeps its
//!    Cal.com value in the history);
//! 8. baselines, 9. the event type registry, 10. confirmed deletions, 11. the run
//!    journal line.

use std::future::Future;

use super::batch::{PreparedWrite, Statements};
use super::{ApplyOutcome, StoreError};
use crate::domain::{EventTypeId, Resolution, ServiceId};

/// One step per kind of write, on a connection inside the account transaction.
pub(super) trait AccountTx: Send {
    fn import(
        &mut self,
        st: &Statements,
        w: &PreparedWrite<'_>,
        out: &mut ApplyOutcome,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn overwrite(
        &mut self,
        st: &Statements,
        w: &PreparedWrite<'_>,
        out: &mut ApplyOutcome,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn confirm(
        &mut self,
        st: &Statements,
        w: &PreparedWrite<'_>,
        out: &mut ApplyOutcome,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn metadata(
        &mut self,
        st: &Statements,
        w: &PreparedWrite<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn resolve_drift(
        &mut self,
        st: &Statements,
        now: chrono::NaiveDateTime,
        groups: &[(Resolution, Vec<String>)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn upsert_drift(
        &mut self,
        st: &Statements,
        w: &PreparedWrite<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn upsert_baselines(
        &mut self,
        st: &Statements,
        w: &PreparedWrite<'_>,
        imported: &[(EventTypeId, ServiceId)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn register(
        &mut self,
        st: &Statements,
        w: &PreparedWrite<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn mark_gone(
        &mut self,
        st: &Statements,
        w: &PreparedWrite<'_>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn insert_run(
        &mut self,
        st: &Statements,
        run: &super::RunRecord,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Every write of one account's pass, in order, inside the caller's transaction.
pub(super) async fn write<C: AccountTx>(
    c: &mut C,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<ApplyOutcome, StoreError> {
    let mut out = ApplyOutcome::default();
    c.import(st, w, &mut out).await?;
    c.overwrite(st, w, &mut out).await?;
    c.confirm(st, w, &mut out).await?;
    c.metadata(st, w).await?;
    c.resolve_drift(st, w.now, &w.drift_replaced).await?;
    c.upsert_drift(st, w).await?;
    c.resolve_drift(st, w.now, &w.drift_resolutions).await?;
    let imported = out.imported.clone();
    c.upsert_baselines(st, w, &imported).await?;
    c.register(st, w).await?;
    c.mark_gone(st, w).await?;
    if let Some(run) = w.run {
        c.insert_run(st, run).await?;
    }
    Ok(out)
}

/// Implements [`AccountTx`] for a dialect's connection type by delegating each
/// step to the dialect module's function of the same name.
macro_rules! account_tx {
    ($conn:ty) => {
        impl super::account::AccountTx for $conn {
            fn import(
                &mut self,
                st: &Statements,
                w: &PreparedWrite<'_>,
                out: &mut ApplyOutcome,
            ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
                import(self, st, w, out)
            }
            fn overwrite(
                &mut self,
                st: &Statements,
                w: &PreparedWrite<'_>,
                out: &mut ApplyOutcome,
            ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
                overwrite(self, st, w, out)
            }
            fn confirm(
                &mut self,
                st: &Statements,
                w: &PreparedWrite<'_>,
                out: &mut ApplyOutcome,
            ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
                confirm(self, st, w, out)
            }
            fn metadata(
                &mut self,
                st: &Statements,
                w: &PreparedWrite<'_>,
            ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
                metadata(self, st, w)
            }
            fn resolve_drift(
                &mut self,
                st: &Statements,
                now: chrono::NaiveDateTime,
                groups: &[(crate::domain::Resolution, Vec<String>)],
            ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
                resolve_drift(self, st, now, groups)
            }
            fn upsert_drift(
                &mut self,
                st: &Statements,
                w: &PreparedWrite<'_>,
            ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
                upsert_drift(self, st, w)
            }
            fn upsert_baselines(
                &mut self,
                st: &Statements,
                w: &PreparedWrite<'_>,
                imported: &[(EventTypeId, ServiceId)],
            ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
                upsert_baselines(self, st, w, imported)
            }
            fn register(
                &mut self,
                st: &Statements,
                w: &PreparedWrite<'_>,
            ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
                register(self, st, w)
            }
            fn mark_gone(
                &mut self,
                st: &Statements,
                w: &PreparedWrite<'_>,
            ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
                mark_gone(self, st, w)
            }
            fn insert_run(
                &mut self,
                st: &Statements,
                run: &RunRecord,
            ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
                insert_run(self, st, run)
            }
        }
    };
}

pub(super) use account_tx;
