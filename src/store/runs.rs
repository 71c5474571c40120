//! The run journal (`calsync_runs`): one line per account pass, `summary` as JSON.

use sqlx::{Pool, QueryBuilder};

use super::batch::Statements;
use super::dialect::{Cell, Dialect, list};
use super::error::{StoreError, on};
use super::{RunRecord, StoredRun};

pub(super) async fn insert<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    run: &RunRecord,
) -> Result<(), StoreError> {
    let summary = run.summary.to_string();
    let mut qb = QueryBuilder::<D>::new("");
    push_insert(&mut qb, run, &summary);
    st.tick();
    D::execute_prepared(conn, qb)
        .await
        .map_err(on(D::BACKEND, "recording a run"))?;
    Ok(())
}

/// Appends the account pass's journal line and stamps the account's
/// verification time (`calsync_accounts`). Where the dialect allows it
/// ([`Dialect::WRITING_WITH`]) that is ONE statement, the insert running as a
/// data-modifying `WITH`: one round trip, and outside a transaction one commit
/// that a crash cannot split; elsewhere two.
pub(super) async fn journal<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    run: &RunRecord,
    account: &str,
    now: chrono::NaiveDateTime,
) -> Result<(), StoreError> {
    if !D::WRITING_WITH {
        insert::<D>(conn, st, run).await?;
        return super::verification::record::<D>(conn, st, account, now).await;
    }
    let summary = run.summary.to_string();
    let mut qb = QueryBuilder::<D>::new("WITH journal AS (");
    push_insert(&mut qb, run, &summary);
    qb.push(") ");
    super::verification::push_record(&mut qb, account, now);
    st.tick();
    D::execute_prepared(conn, qb).await.map_err(on(
        D::BACKEND,
        "recording a run and when the account was verified",
    ))?;
    Ok(())
}

/// `INSERT INTO calsync_runs …` of one line.
fn push_insert<D: Dialect>(qb: &mut QueryBuilder<D>, run: &RunRecord, summary: &str) {
    qb.push(
        "INSERT INTO calsync_runs (account, started_at, finished_at, result, summary, error) VALUES (",
    );
    list(
        qb,
        vec![
            Cell::Text(&run.account),
            Cell::Time(run.started_at),
            Cell::Time(run.finished_at),
            Cell::Text(run.result),
            Cell::Text(summary),
        ],
    );
    qb.push(D::JSON).push(", ");
    D::cell(qb, Cell::OptText(run.error.as_deref()));
    qb.push(")");
}

/// Appends a line outside a pass's transaction.
pub(super) async fn record<D: Dialect>(
    pool: &Pool<D>,
    st: &Statements,
    run: &RunRecord,
) -> Result<(), StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(on(D::BACKEND, "recording a run"))?;
    insert::<D>(&mut conn, st, run).await
}

/// Journal lines in the shape of [`RunRow`](super::rows::RunRow).
fn select<D: Dialect>() -> String {
    format!(
        "SELECT id, {} AS account, started_at, finished_at, {} AS result, {} AS summary, \
         error FROM calsync_runs",
        D::text("account"),
        D::text("result"),
        D::text("summary"),
    )
}

pub(super) async fn last<D: Dialect>(
    pool: &Pool<D>,
    st: &Statements,
    limit: i64,
) -> Result<Vec<StoredRun>, StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(on(D::BACKEND, "reading runs"))?;
    let qb = QueryBuilder::<D>::new(format!("{} ORDER BY id DESC LIMIT {limit}", select::<D>()));
    st.tick();
    let rows = D::runs(&mut conn, qb)
        .await
        .map_err(on(D::BACKEND, "reading runs"))?;
    Ok(rows.into_iter().map(StoredRun::from).collect())
}

/// The result word of an account's latest journal line.
pub(super) async fn last_result<D: Dialect>(
    pool: &Pool<D>,
    st: &Statements,
    account: &str,
) -> Result<Option<String>, StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(on(D::BACKEND, "reading runs"))?;
    let mut qb = QueryBuilder::<D>::new(format!("{} WHERE account = ", select::<D>()));
    D::cell(&mut qb, Cell::Text(account));
    qb.push(" ORDER BY id DESC LIMIT 1");
    st.tick();
    let rows = D::runs(&mut conn, qb)
        .await
        .map_err(on(D::BACKEND, "reading runs"))?;
    Ok(rows.into_iter().next().map(|r| r.result))
}

/// Each account's latest line (or latest failure), by account; one statement on
/// the `(account, id)` index.
pub(super) async fn latest_per_account<D: Dialect>(
    pool: &Pool<D>,
    st: &Statements,
    failures_only: bool,
) -> Result<Vec<StoredRun>, StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(on(D::BACKEND, "reading runs"))?;
    let qb = QueryBuilder::<D>::new(format!(
        "{} WHERE id IN (SELECT MAX(id) FROM calsync_runs {} GROUP BY account) ORDER BY account",
        select::<D>(),
        if failures_only {
            "WHERE result = 'failure'"
        } else {
            ""
        },
    ));
    st.tick();
    let rows = D::runs(&mut conn, qb)
        .await
        .map_err(on(D::BACKEND, "reading runs"))?;
    Ok(rows.into_iter().map(StoredRun::from).collect())
}
