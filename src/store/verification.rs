//! When each account was last verified (`calsync_accounts`): one row per account,
//! written once per pass that applied its write, so a steady pass need not stamp
//! every unchanged service. The `calsync_service_status` view (migration 5) reads
//! it per service.

use chrono::NaiveDateTime;
use sqlx::{Pool, QueryBuilder};

use super::batch::{ID_CHUNK, Statements};
use super::dialect::{Cell, Dialect, id_list, values};
use super::error::{StoreError, on};

/// Upserts the account's `last_verified_at`.
pub(super) async fn record<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    account: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let mut qb = QueryBuilder::<D>::new("");
    push_record(&mut qb, account, now);
    st.tick();
    D::execute_prepared(conn, qb)
        .await
        .map_err(on(D::BACKEND, "recording when the account was verified"))?;
    Ok(())
}

/// `INSERT INTO calsync_accounts … ` upserting the account's `last_verified_at`.
pub(super) fn push_record<D: Dialect>(qb: &mut QueryBuilder<D>, account: &str, now: NaiveDateTime) {
    qb.push("INSERT INTO calsync_accounts (account, last_verified_at)");
    values(
        qb,
        std::iter::once(vec![Cell::Text(account), Cell::Time(now)]),
    );
    qb.push(D::upsert(
        "account",
        &[("last_verified_at", D::excluded("last_verified_at"))],
    ));
}

/// When each of these services was last verified, from `calsync_service_status`
/// (a service never verified is left out).
pub(super) async fn of_services<D: Dialect>(
    pool: &Pool<D>,
    st: &Statements,
    ids: &[i64],
) -> Result<Vec<(i64, Option<NaiveDateTime>)>, StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(on(D::BACKEND, "reading when services were verified"))?;
    let mut out = Vec::new();
    for ids in ids.chunks(ID_CHUNK) {
        let mut qb = QueryBuilder::<D>::new(format!(
            "SELECT {}, {} FROM calsync_service_status WHERE service_id IN ",
            D::int("service_id"),
            D::time("last_verified_at")
        ));
        id_list(&mut qb, ids.iter().copied());
        st.tick();
        out.extend(
            D::times(&mut conn, qb)
                .await
                .map_err(on(D::BACKEND, "reading when services were verified"))?,
        );
    }
    Ok(out)
}
