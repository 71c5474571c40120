//! The MySQL / MariaDB dialect of the store.
//!
//! Portable to MySQL 5.7+ and MariaDB 10.3+: batched updates join a derived table
//! built from `SELECT ... UNION ALL SELECT ...` (neither `VALUES ROW()` nor
//! `JSON_TABLE` exists on all of them). Text comparisons in guards use
//! `utf8mb4_bin`, so a platform edit that only changes letter case is still a
//! change, and mixed column collations cannot make a guard fail to compile.
//!
//! Platform timestamps may be `TIMESTAMP` or `DATETIME`; both are read as
//! `DATETIME(6)` (the session time zone is UTC, so a `TIMESTAMP` converts to UTC).
//!
//! MySQL has no `INSERT ... RETURNING` and `INSERT IGNORE` would swallow unrelated
//! errors, so imports read which event types are already linked, insert the rest
//! with a plain multi-row INSERT, and read the new ids back. A pass that races
//! another on the same event type gets a duplicate-key error; that is reported as
//! contention and the whole transaction is retried, and the retry sees the
//! winner's rows.

use std::collections::HashSet;

use sqlx::{MySql, MySqlConnection, MySqlPool, QueryBuilder};

use super::batch::{self, BUSINESS_COLUMNS, Cell, ID_CHUNK, PreparedWrite, Statements, chunks};
use super::error::{StoreError, classify, on};
use super::rows::{DriftRow, RunRow, ServiceRow};
use super::schema::{self, Column, TableShape};
use super::{
    AccountScope, AccountSnapshot, ApplyOutcome, Backend, DriftQuery, LinkedService, RunRecord,
    StoredRun,
};
use crate::domain::{EventTypeId, ServiceId};

const BACKEND: Backend = Backend::MySql;

/// Rows per derived table. MySQL parses each `UNION ALL` member as a query block;
/// a few thousand keeps parsing cheap while staying a handful of statements.
const DERIVED_ROWS: usize = 2_500;

/// Services joined with the registry, in the shape of [`ServiceRow`].
const SERVICE_SELECT: &str = "SELECT CAST(s.id AS SIGNED) AS id, \
    CAST(s.company_id AS SIGNED) AS company_id, CAST(s.branch_id AS SIGNED) AS branch_id, \
    s.name AS name, s.description AS description, \
    CAST(s.duration_minutes AS SIGNED) AS duration_minutes, \
    CAST(ROUND(s.price * 100) AS SIGNED) AS cents, CAST(s.currency AS CHAR) AS currency, \
    (COALESCE(s.is_active, 0) <> 0) AS is_active, (COALESCE(s.is_online, 0) <> 0) AS is_online, \
    (COALESCE(s.composite, 0) <> 0) AS composite, \
    CAST(s.calcom_event_type_id AS SIGNED) AS calcom_event_type_id, \
    CAST(s.sync_status AS CHAR) AS sync_status, \
    CAST(s.last_calcom_sync AS DATETIME(6)) AS last_calcom_sync, s.sync_error AS sync_error, \
    CAST(s.updated_at AS DATETIME(6)) AS updated_at, \
    r.event_type_id AS reg_event_type_id, r.account AS reg_account, r.team_id AS reg_team_id, \
    CAST(r.gone_at AS DATETIME(6)) AS reg_gone_at, b.agreed AS baseline, CAST(b.agreed_at AS DATETIME(6)) AS baseline_at \
    FROM services s LEFT JOIN calsync_event_types r ON r.event_type_id = s.calcom_event_type_id \
    LEFT JOIN calsync_baseline b ON b.service_id = s.id AND b.event_type_id = s.calcom_event_type_id";

const DRIFT_SELECT: &str = "SELECT id, service_id, calcom_event_type_id, account, field, origin, \
    platform_value, calcom_value, baseline_value, first_seen_at, last_seen_at, times_seen, \
    resolved_at, resolution FROM calsync_drift";

/// True when the business columns of `s` equal the `v.*` expected values.
const GUARD: &str = "s.name = v.name COLLATE utf8mb4_bin \
    AND COALESCE(s.description, '') = COALESCE(v.description, '') COLLATE utf8mb4_bin \
    AND s.duration_minutes = v.duration \
    AND CAST(ROUND(s.price * 100) AS SIGNED) = v.cents \
    AND UPPER(TRIM(s.currency)) = v.currency COLLATE utf8mb4_bin \
    AND (COALESCE(s.is_active, 0) <> 0) = (v.is_active <> 0) \
    AND (COALESCE(s.is_online, 0) <> 0) = (v.is_online <> 0)";

fn push_cell(qb: &mut QueryBuilder<MySql>, cell: Cell<'_>) {
    match cell {
        Cell::Int(v) => qb.push("CAST(").push_bind(v).push(" AS SIGNED)"),
        Cell::Text(v) => qb.push_bind(v),
        Cell::OptText(v) => qb.push_bind(v),
        Cell::Flag(v) => qb.push_bind(v),
    };
}

/// `(SELECT ? AS a, ? AS b UNION ALL SELECT ?, ? ...) AS v`
fn push_derived<'c>(
    qb: &mut QueryBuilder<MySql>,
    columns: &[&str],
    rows: impl Iterator<Item = Vec<Cell<'c>>>,
) {
    qb.push("(");
    for (i, row) in rows.enumerate() {
        qb.push(if i == 0 {
            "SELECT "
        } else {
            " UNION ALL SELECT "
        });
        for (j, cell) in row.into_iter().enumerate() {
            if j > 0 {
                qb.push(", ");
            }
            push_cell(qb, cell);
            if i == 0 {
                qb.push(" AS ").push(columns[j]);
            }
        }
    }
    qb.push(") AS v");
}

/// Chunks for a derived table: parameter and byte limits, and [`DERIVED_ROWS`].
fn derived_chunks<T>(rows: &[T], params: usize, bytes: impl Fn(&T) -> usize) -> Vec<&[T]> {
    chunks(rows, params, bytes)
        .into_iter()
        .flat_map(|c| c.chunks(DERIVED_ROWS))
        .collect()
}

super::shared::statements!(MySql, MySqlPool, MySqlConnection);

pub(super) async fn table_exists(
    pool: &MySqlPool,
    st: &Statements,
    name: &'static str,
) -> Result<bool, StoreError> {
    st.tick();
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
    )
    .bind(name)
    .fetch_one(pool)
    .await
    .map_err(on(BACKEND, "looking up a table"))?;
    Ok(n > 0)
}

pub(super) async fn services_shape(
    pool: &MySqlPool,
    st: &Statements,
) -> Result<Option<TableShape>, StoreError> {
    st.tick();
    // information_schema columns are cast because MySQL 8 reports some of them
    // as binary strings.
    let rows: Vec<(String, String, String, bool, bool, Option<String>)> = sqlx::query_as(
        "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), CAST(DATA_TYPE AS CHAR), \
         IS_NULLABLE = 'YES', \
         (COLUMN_DEFAULT IS NOT NULL OR EXTRA LIKE '%auto_increment%' OR EXTRA LIKE '%GENERATED%'), \
         CAST(CHARACTER_SET_NAME AS CHAR) \
         FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'services' ORDER BY ORDINAL_POSITION",
    )
    .fetch_all(pool)
    .await
    .map_err(on(BACKEND, "reading the services columns"))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let columns = rows
        .into_iter()
        .map(
            |(name, declared, data_type, nullable, has_default, charset)| Column {
                name,
                declared,
                kind: schema::mysql_kind(&data_type),
                nullable,
                has_default,
                charset,
            },
        )
        .collect();
    st.tick();
    let unique: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM (SELECT INDEX_NAME FROM information_schema.STATISTICS \
         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'services' AND NON_UNIQUE = 0 \
         GROUP BY INDEX_NAME \
         HAVING COUNT(*) = 1 AND MAX(CAST(COLUMN_NAME AS CHAR)) = 'calcom_event_type_id' \
         AND MAX(SUB_PART) IS NULL) AS x",
    )
    .fetch_one(pool)
    .await
    .map_err(on(BACKEND, "reading the services indexes"))?;
    Ok(Some(TableShape {
        columns,
        unique_event_type_index: unique > 0,
    }))
}

pub(super) async fn status_counts(
    pool: &MySqlPool,
    st: &Statements,
    company_ids: &[i64],
) -> Result<Vec<(i64, Option<String>, i64)>, StoreError> {
    let mut out = Vec::new();
    for ids in company_ids.chunks(ID_CHUNK) {
        let mut qb = QueryBuilder::<MySql>::new(
            "SELECT CAST(company_id AS SIGNED), CAST(sync_status AS CHAR), COUNT(*) FROM services \
             WHERE company_id IN ",
        );
        id_list(&mut qb, ids.iter().copied());
        qb.push(" GROUP BY company_id, sync_status");
        st.tick();
        out.extend(
            qb.build_query_as::<(i64, Option<String>, i64)>()
                .persistent(false)
                .fetch_all(pool)
                .await
                .map_err(on(BACKEND, "counting services by status"))?,
        );
    }
    Ok(out)
}

pub(super) async fn apply(
    pool: &MySqlPool,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<ApplyOutcome, StoreError> {
    st.tick();
    let mut tx = pool
        .begin()
        .await
        .map_err(on(BACKEND, "starting the account transaction"))?;
    let out = super::account::write(&mut *tx, st, w).await?;
    st.tick();
    tx.commit()
        .await
        .map_err(on(BACKEND, "committing the account transaction"))?;
    Ok(out)
}

super::account::account_tx!(MySqlConnection);

/// `(event type id, service id)` of services linked to any of `event_types`.
async fn linked(
    conn: &mut MySqlConnection,
    st: &Statements,
    event_types: &[i64],
) -> Result<Vec<(i64, i64)>, StoreError> {
    let mut out = Vec::new();
    for ids in event_types.chunks(ID_CHUNK) {
        let mut qb = QueryBuilder::<MySql>::new(
            "SELECT CAST(calcom_event_type_id AS SIGNED), CAST(id AS SIGNED) FROM services \
             WHERE calcom_event_type_id IN ",
        );
        id_list(&mut qb, ids.iter().copied());
        st.tick();
        out.extend(
            qb.build_query_as::<(i64, i64)>()
                .persistent(false)
                .fetch_all(&mut *conn)
                .await
                .map_err(on(BACKEND, "reading linked event types"))?,
        );
    }
    Ok(out)
}

async fn import(
    conn: &mut MySqlConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
    out: &mut ApplyOutcome,
) -> Result<(), StoreError> {
    if w.imports.is_empty() {
        return Ok(());
    }
    let wanted: Vec<i64> = w.imports.iter().map(|n| n.event_type_id.0).collect();
    let present: HashSet<i64> = linked(conn, st, &wanted)
        .await?
        .into_iter()
        .map(|(et, _)| et)
        .collect();
    let missing: Vec<_> = w
        .imports
        .iter()
        .filter(|n| !present.contains(&n.event_type_id.0))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    for rows in chunks(&missing, 12, |n| batch::business_bytes(&n.values)) {
        let mut qb = QueryBuilder::<MySql>::new(
            "INSERT INTO services (company_id, name, description, duration_minutes, price, currency, \
             is_active, is_online, composite, calcom_event_type_id, sync_status, last_calcom_sync, \
             created_at, updated_at) ",
        );
        qb.push_values(rows, |mut b, n| {
            let v = &n.values;
            b.push_bind(n.company_id)
                .push_bind(&v.name)
                .push_bind(v.description.as_deref())
                .push_bind(v.duration_minutes)
                // Exact: DECIMAL division of integer hundredths.
                .push("CAST(")
                .push_bind_unseparated(v.price.cents)
                .push_unseparated(" AS DECIMAL(20, 0)) / 100")
                .push_bind(v.price.currency.as_str())
                .push_bind(v.is_active)
                .push_bind(v.is_online)
                .push("0")
                .push_bind(n.event_type_id.0)
                .push("'synced'")
                .push_bind(w.now)
                .push_bind(w.now)
                .push_bind(w.now);
        });
        st.tick();
        qb.build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(|cause| {
                let duplicate = cause
                    .as_database_error()
                    .is_some_and(|e| e.is_unique_violation());
                if duplicate {
                    // A concurrent pass linked one of these event types after our
                    // read; the retry will see its row and skip it.
                    StoreError::Contention {
                        operation: "importing services",
                        attempts: 1,
                        cause,
                    }
                } else {
                    classify(BACKEND, "importing services", cause)
                }
            })?;
    }
    let inserted: Vec<i64> = missing.iter().map(|n| n.event_type_id.0).collect();
    out.imported = linked(conn, st, &inserted)
        .await?
        .into_iter()
        .map(|(et, id)| (EventTypeId(et), ServiceId(id)))
        .collect();
    out.imported.sort();
    Ok(())
}

async fn metadata(
    conn: &mut MySqlConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<(), StoreError> {
    for rows in derived_chunks(&w.metadata, 3, |m| {
        16 + m.error.as_ref().map_or(0, String::len)
    }) {
        let mut qb = QueryBuilder::<MySql>::new("UPDATE services AS s JOIN ");
        push_derived(
            &mut qb,
            &["id", "status", "error"],
            rows.iter().map(|m| {
                vec![
                    Cell::Int(m.id.0),
                    Cell::Text(m.status.as_str()),
                    Cell::OptText(m.error.as_deref()),
                ]
            }),
        );
        // The CASE reads the row at write time: a platform edit that set
        // `pending` after this pass read the row keeps its `pending`.
        qb.push(
            " ON s.id = v.id SET s.sync_status = CASE WHEN s.sync_status = 'pending' \
             THEN 'pending' ELSE v.status END, s.sync_error = v.error, s.last_calcom_sync = ",
        )
        .push_bind(w.now);
        st.tick();
        qb.build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(on(BACKEND, "updating sync metadata"))?;
    }
    Ok(())
}

async fn confirm(
    conn: &mut MySqlConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
    out: &mut ApplyOutcome,
) -> Result<(), StoreError> {
    let columns: Vec<&str> = std::iter::once("id").chain(BUSINESS_COLUMNS).collect();
    for rows in derived_chunks(&w.confirmations, 8, |c| batch::business_bytes(&c.expected)) {
        let mut qb = QueryBuilder::<MySql>::new("UPDATE services AS s JOIN ");
        push_derived(
            &mut qb,
            &columns,
            rows.iter().map(|c| {
                let mut cells = vec![Cell::Int(c.id.0)];
                cells.extend(batch::business_cells(&c.expected));
                cells
            }),
        );
        qb.push(" ON s.id = v.id AND ")
            .push(GUARD)
            .push(" SET s.sync_status = 'synced', s.sync_error = NULL, s.last_calcom_sync = ")
            .push_bind(w.now);
        st.tick();
        // The connection reports matched rows (CLIENT_FOUND_ROWS), not changed ones.
        let done = qb
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(on(BACKEND, "confirming pushed services"))?;
        out.confirmed += done.rows_affected();
        out.confirmation_conflicts += rows.len() as u64 - done.rows_affected();
    }
    Ok(())
}

async fn overwrite(
    conn: &mut MySqlConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
    out: &mut ApplyOutcome,
) -> Result<(), StoreError> {
    let columns: Vec<String> = std::iter::once("id".to_owned())
        .chain(BUSINESS_COLUMNS.iter().map(|c| (*c).to_owned()))
        .chain(BUSINESS_COLUMNS.iter().map(|c| format!("new_{c}")))
        .collect();
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let size =
        |o: &&super::Overwrite| batch::business_bytes(&o.expected) + batch::business_bytes(&o.new);
    for rows in derived_chunks(&w.overwrites, 15, size) {
        let mut qb = QueryBuilder::<MySql>::new("UPDATE services AS s JOIN ");
        push_derived(
            &mut qb,
            &columns,
            rows.iter().map(|o| {
                let mut cells = vec![Cell::Int(o.id.0)];
                cells.extend(batch::business_cells(&o.expected));
                cells.extend(batch::business_cells(&o.new));
                cells
            }),
        );
        qb.push(" ON s.id = v.id AND COALESCE(s.sync_status, '') <> 'pending' AND ")
            .push(GUARD)
            .push(
                " SET s.name = v.new_name, s.description = v.new_description, \
                 s.duration_minutes = v.new_duration, \
                 s.price = CAST(v.new_cents AS DECIMAL(20, 0)) / 100, \
                 s.currency = v.new_currency, s.is_active = v.new_is_active, \
                 s.is_online = v.new_is_online, s.sync_status = 'synced', s.sync_error = NULL, \
                 s.last_calcom_sync = ",
            )
            .push_bind(w.now)
            .push(", s.updated_at = ")
            .push_bind(w.now);
        st.tick();
        let done = qb
            .build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(on(BACKEND, "overwriting services with Cal.com values"))?;
        out.overwritten += done.rows_affected();
    }
    Ok(())
}

async fn upsert_drift(
    conn: &mut MySqlConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<(), StoreError> {
    let size = |(_, d): &(Option<String>, &super::DriftObservation)| {
        64 + d.platform_value.len()
            + d.calcom_value.len()
            + d.baseline_value.as_ref().map_or(0, String::len)
    };
    for rows in chunks(&w.drift_upserts, 14, size) {
        let mut qb = QueryBuilder::<MySql>::new(
            "INSERT INTO calsync_drift (service_id, calcom_event_type_id, account, field, \
             platform_value, calcom_value, first_seen_at, last_seen_at, times_seen, open_key, \
             origin, baseline_value, resolution, resolved_at) ",
        );
        qb.push_values(rows, |mut b, (key, d)| {
            b.push_bind(d.service_id.0)
                .push_bind(d.event_type_id.0)
                .push_bind(w.account)
                .push_bind(d.field.as_str())
                .push_bind(&d.platform_value)
                .push_bind(&d.calcom_value)
                .push_bind(w.now)
                .push_bind(w.now)
                // An intent recorded before a push is not a sighting of its own.
                .push(if d.intent.is_some() && d.closed.is_none() {
                    "0"
                } else {
                    "1"
                })
                .push_bind(key.as_deref())
                .push_bind(d.origin.as_str())
                .push_bind(d.baseline_value.as_deref())
                .push_bind(d.closed.or(d.intent).map(|r| r.as_str()))
                .push_bind(d.closed.map(|_| w.now));
        });
        // VALUES() is deprecated on MySQL 8.0.20+ but is the only spelling that
        // MariaDB also accepts.
        qb.push(
            " ON DUPLICATE KEY UPDATE calcom_event_type_id = VALUES(calcom_event_type_id), \
             account = VALUES(account), platform_value = VALUES(platform_value), \
             calcom_value = VALUES(calcom_value), origin = VALUES(origin), \
             baseline_value = VALUES(baseline_value), last_seen_at = VALUES(last_seen_at), \
             times_seen = times_seen + IF(VALUES(resolution) IS NULL, 1, 0), \
             resolution = VALUES(resolution)",
        );
        st.tick();
        qb.build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(on(BACKEND, "recording drift"))?;
    }
    Ok(())
}

async fn upsert_baselines(
    conn: &mut MySqlConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
    imported: &[(EventTypeId, ServiceId)],
) -> Result<(), StoreError> {
    let rows = batch::baseline_rows(w, imported);
    for rows in chunks(&rows, 4, |r| 32 + r.2.len()) {
        let mut qb = QueryBuilder::<MySql>::new(
            "INSERT INTO calsync_baseline (service_id, event_type_id, agreed, agreed_at) ",
        );
        qb.push_values(rows, |mut b, r| {
            b.push_bind(r.0.0)
                .push_bind(r.1.0)
                .push_bind(r.2.as_str())
                .push_bind(w.now);
        });
        qb.push(
            " ON DUPLICATE KEY UPDATE event_type_id = VALUES(event_type_id), \
             agreed = VALUES(agreed), agreed_at = VALUES(agreed_at)",
        );
        st.tick();
        qb.build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(on(BACKEND, "recording the agreed baseline"))?;
    }
    Ok(())
}

async fn register(
    conn: &mut MySqlConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<(), StoreError> {
    for rows in chunks(&w.registry, 4, |r| 32 + r.account.len()) {
        let mut qb = QueryBuilder::<MySql>::new(
            "INSERT INTO calsync_event_types (event_type_id, account, team_id, last_seen_at) ",
        );
        qb.push_values(rows, |mut b, r| {
            b.push_bind(r.event_type_id.0)
                .push_bind(&r.account)
                .push_bind(r.team_id.map(|t| t.0))
                .push_bind(w.now);
        });
        qb.push(
            " ON DUPLICATE KEY UPDATE account = VALUES(account), team_id = VALUES(team_id), \
             last_seen_at = VALUES(last_seen_at), gone_at = NULL",
        );
        st.tick();
        qb.build()
            .persistent(false)
            .execute(&mut *conn)
            .await
            .map_err(on(BACKEND, "updating the event type registry"))?;
    }
    Ok(())
}
