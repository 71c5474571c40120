//! When each account was last verified (`calsync_accounts`): one row per account,
//! written once per pass that applied its write, so a steady pass need not stamp
//! every unchanged service. The `calsync_service_status` view (migration 5) reads
//! it per service.

use chrono::NaiveDateTime;
use sqlx::QueryBuilder;

use super::batch::Statements;
use super::dialect::{Cell, Dialect, values};
use super::error::{StoreError, on};

/// Upserts the account's `last_verified_at`.
pub(super) async fn record<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    account: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let mut qb = QueryBuilder::<D>::new("INSERT INTO calsync_accounts (account, last_verified_at)");
    values(
        &mut qb,
        std::iter::once(vec![Cell::Text(account), Cell::Time(now)]),
    );
    qb.push(D::upsert(
        "account",
        &[("last_verified_at", D::excluded("last_verified_at"))],
    ));
    st.tick();
    D::execute(conn, qb)
        .await
        .map_err(on(D::BACKEND, "recording when the account was verified"))?;
    Ok(())
}
