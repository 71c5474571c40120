//! The SQLite dialect of the store.
//!
//! Writers start with `BEGIN IMMEDIATE`, so two passes serialize on the file lock
//! (waiting up to the busy timeout) instead of failing when a read transaction
//! tries to upgrade. Prices are stored by SQLite as REAL (NUMERIC affinity); every
//! `decimal(10,2)` value is within 2^53 hundredths, so `ROUND(price * 100)` reads
//! back the exact hundredths that were written.

use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use super::batch::{self, BUSINESS_COLUMNS, Cell, ID_CHUNK, PreparedWrite, Statements, chunks};
use super::error::{StoreError, on};
use super::rows::{DriftRow, RunRow, ServiceRow};
use super::schema::{self, Column, TableShape};
use super::{
    AccountScope, AccountSnapshot, ApplyOutcome, Backend, DriftQuery, LinkedService, RunRecord,
    StoredRun,
};
use crate::domain::{EventTypeId, ServiceId};

const BACKEND: Backend = Backend::Sqlite;

/// Services joined with the registry, in the shape of [`ServiceRow`].
const SERVICE_SELECT: &str = "SELECT s.id AS id, s.company_id AS company_id, \
    s.branch_id AS branch_id, s.name AS name, s.description AS description, \
    s.duration_minutes AS duration_minutes, CAST(ROUND(s.price * 100) AS INTEGER) AS cents, \
    s.currency AS currency, (COALESCE(s.is_active, 0) <> 0) AS is_active, \
    (COALESCE(s.is_online, 0) <> 0) AS is_online, (COALESCE(s.composite, 0) <> 0) AS composite, \
    s.calcom_event_type_id AS calcom_event_type_id, s.sync_status AS sync_status, \
    s.last_calcom_sync AS last_calcom_sync, s.sync_error AS sync_error, s.updated_at AS updated_at, \
    r.event_type_id AS reg_event_type_id, r.account AS reg_account, r.team_id AS reg_team_id, \
    r.gone_at AS reg_gone_at, b.agreed AS baseline, b.agreed_at AS baseline_at \
    FROM services s LEFT JOIN calsync_event_types r ON r.event_type_id = s.calcom_event_type_id \
    LEFT JOIN calsync_baseline b ON b.service_id = s.id AND b.event_type_id = s.calcom_event_type_id";

const DRIFT_SELECT: &str = "SELECT id, service_id, calcom_event_type_id, account, field, origin, \
    platform_value, calcom_value, baseline_value, first_seen_at, last_seen_at, times_seen, \
    resolved_at, resolution FROM calsync_drift";

/// True when the business columns of `services` equal the `v.*` expected values.
const GUARD: &str = "services.name = v.name \
    AND COALESCE(services.description, '') = COALESCE(v.description, '') \
    AND services.duration_minutes = v.duration \
    AND CAST(ROUND(services.price * 100) AS INTEGER) = v.cents \
    AND UPPER(TRIM(services.currency)) = v.currency \
    AND (COALESCE(services.is_active, 0) <> 0) = (v.is_active <> 0) \
    AND (COALESCE(services.is_online, 0) <> 0) = (v.is_online <> 0)";

fn push_cell(qb: &mut QueryBuilder<Sqlite>, cell: Cell<'_>) {
    match cell {
        Cell::Int(v) => qb.push_bind(v),
        Cell::Text(v) => qb.push_bind(v),
        Cell::OptText(v) => qb.push_bind(v),
        Cell::Flag(v) => qb.push_bind(v),
    };
}

/// `WITH v(columns) AS (VALUES (...), ...) ` for a CTE-joined UPDATE.
fn push_values_cte<'c>(
    qb: &mut QueryBuilder<Sqlite>,
    columns: &[&str],
    rows: impl Iterator<Item = Vec<Cell<'c>>>,
) {
    qb.push("WITH v(")
        .push(columns.join(", "))
        .push(") AS (VALUES ");
    for (i, row) in rows.enumerate() {
        qb.push(if i == 0 { "(" } else { ", (" });
        for (j, cell) in row.into_iter().enumerate() {
            if j > 0 {
                qb.push(", ");
            }
            push_cell(qb, cell);
        }
        qb.push(")");
    }
    qb.push(") ");
}

super::shared::statements!(Sqlite, SqlitePool, SqliteConnection);

pub(super) async fn table_exists(
    pool: &SqlitePool,
    st: &Statements,
    name: &'static str,
) -> Result<bool, StoreError> {
    st.tick();
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?")
            .bind(name)
            .fetch_one(pool)
            .await
            .map_err(on(BACKEND, "looking up a table"))?;
    Ok(n > 0)
}

pub(super) async fn services_shape(
    pool: &SqlitePool,
    st: &Statements,
) -> Result<Option<TableShape>, StoreError> {
    st.tick();
    let rows: Vec<(String, String, bool, Option<String>, i64)> = sqlx::query_as(
        "SELECT name, type, \"notnull\" <> 0, dflt_value, pk FROM pragma_table_info('services')",
    )
    .fetch_all(pool)
    .await
    .map_err(on(BACKEND, "reading the services columns"))?;
    if rows.is_empty() {
        return Ok(None);
    }
    // A single-column INTEGER PRIMARY KEY is the rowid: generated on insert.
    let rowid_pk = rows.iter().filter(|r| r.4 > 0).count() == 1;
    let columns = rows
        .into_iter()
        .map(|(name, declared, not_null, default, pk)| {
            let rowid = rowid_pk && pk > 0 && declared.eq_ignore_ascii_case("INTEGER");
            Column {
                kind: schema::sqlite_kind(&declared),
                declared: if declared.is_empty() {
                    "untyped".into()
                } else {
                    declared.to_lowercase()
                },
                nullable: !not_null && !rowid,
                has_default: default.is_some() || rowid,
                charset: None,
                name,
            }
        })
        .collect();
    st.tick();
    let unique: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pragma_index_list('services') AS il \
         WHERE il.\"unique\" = 1 AND il.partial = 0 \
         AND (SELECT COUNT(*) FROM pragma_index_info(il.name)) = 1 \
         AND (SELECT ii.name FROM pragma_index_info(il.name) AS ii) = 'calcom_event_type_id'",
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
    pool: &SqlitePool,
    st: &Statements,
    company_ids: &[i64],
) -> Result<Vec<(i64, Option<String>, i64)>, StoreError> {
    let mut out = Vec::new();
    for ids in company_ids.chunks(ID_CHUNK) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "SELECT company_id, sync_status, COUNT(*) FROM services WHERE company_id IN ",
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
    pool: &SqlitePool,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<ApplyOutcome, StoreError> {
    st.tick();
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(on(BACKEND, "starting the account transaction"))?;
    let out = super::account::write(&mut *tx, st, w).await?;
    st.tick();
    tx.commit()
        .await
        .map_err(on(BACKEND, "committing the account transaction"))?;
    Ok(out)
}

super::account::account_tx!(SqliteConnection);

async fn import(
    conn: &mut SqliteConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
    out: &mut ApplyOutcome,
) -> Result<(), StoreError> {
    for rows in chunks(&w.imports, 12, |n| batch::business_bytes(&n.values)) {
        let mut qb = QueryBuilder::<Sqlite>::new(
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
                // Exact integer hundredths; the division happens in SQL.
                .push_bind(v.price.cents)
                .push_unseparated(" / 100.0")
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
        qb.push(
            " ON CONFLICT (calcom_event_type_id) DO NOTHING RETURNING id, calcom_event_type_id",
        );
        st.tick();
        let inserted: Vec<(i64, i64)> = qb
            .build_query_as()
            .persistent(false)
            .fetch_all(&mut *conn)
            .await
            .map_err(on(BACKEND, "importing services"))?;
        out.imported.extend(
            inserted
                .into_iter()
                .map(|(id, et)| (EventTypeId(et), ServiceId(id))),
        );
    }
    out.imported.sort();
    Ok(())
}

async fn metadata(
    conn: &mut SqliteConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<(), StoreError> {
    for rows in chunks(&w.metadata, 3, |m| {
        16 + m.error.as_ref().map_or(0, String::len)
    }) {
        let mut qb = QueryBuilder::<Sqlite>::new("");
        push_values_cte(
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
            "UPDATE services SET sync_status = CASE WHEN services.sync_status = 'pending' \
             THEN 'pending' ELSE v.status END, sync_error = v.error, last_calcom_sync = ",
        )
        .push_bind(w.now)
        .push(" FROM v WHERE services.id = v.id");
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
    conn: &mut SqliteConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
    out: &mut ApplyOutcome,
) -> Result<(), StoreError> {
    let columns: Vec<&str> = std::iter::once("id").chain(BUSINESS_COLUMNS).collect();
    for rows in chunks(&w.confirmations, 8, |c| batch::business_bytes(&c.expected)) {
        let mut qb = QueryBuilder::<Sqlite>::new("");
        push_values_cte(
            &mut qb,
            &columns,
            rows.iter().map(|c| {
                let mut cells = vec![Cell::Int(c.id.0)];
                cells.extend(batch::business_cells(&c.expected));
                cells
            }),
        );
        qb.push(
            "UPDATE services SET sync_status = 'synced', sync_error = NULL, last_calcom_sync = ",
        )
        .push_bind(w.now)
        .push(" FROM v WHERE services.id = v.id AND ")
        .push(GUARD);
        st.tick();
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
    conn: &mut SqliteConnection,
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
    for rows in chunks(&w.overwrites, 15, size) {
        let mut qb = QueryBuilder::<Sqlite>::new("");
        push_values_cte(
            &mut qb,
            &columns,
            rows.iter().map(|o| {
                let mut cells = vec![Cell::Int(o.id.0)];
                cells.extend(batch::business_cells(&o.expected));
                cells.extend(batch::business_cells(&o.new));
                cells
            }),
        );
        qb.push(
            "UPDATE services SET name = v.new_name, description = v.new_description, \
             duration_minutes = v.new_duration, price = v.new_cents / 100.0, \
             currency = v.new_currency, is_active = v.new_is_active, is_online = v.new_is_online, \
             sync_status = 'synced', sync_error = NULL, last_calcom_sync = ",
        )
        .push_bind(w.now)
        .push(", updated_at = ")
        .push_bind(w.now)
        .push(
            " FROM v WHERE services.id = v.id \
             AND COALESCE(services.sync_status, '') <> 'pending' AND ",
        )
        .push(GUARD);
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
    conn: &mut SqliteConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<(), StoreError> {
    let size = |(_, d): &(Option<String>, &super::DriftObservation)| {
        64 + d.platform_value.len()
            + d.calcom_value.len()
            + d.baseline_value.as_ref().map_or(0, String::len)
    };
    for rows in chunks(&w.drift_upserts, 14, size) {
        let mut qb = QueryBuilder::<Sqlite>::new(
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
        qb.push(
            " ON CONFLICT (open_key) DO UPDATE SET \
             calcom_event_type_id = excluded.calcom_event_type_id, account = excluded.account, \
             platform_value = excluded.platform_value, calcom_value = excluded.calcom_value, \
             origin = excluded.origin, baseline_value = excluded.baseline_value, \
             resolution = excluded.resolution, last_seen_at = excluded.last_seen_at, \
             times_seen = calsync_drift.times_seen \
             + CASE WHEN excluded.resolution IS NULL THEN 1 ELSE 0 END",
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
    conn: &mut SqliteConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
    imported: &[(EventTypeId, ServiceId)],
) -> Result<(), StoreError> {
    let rows = batch::baseline_rows(w, imported);
    for rows in chunks(&rows, 4, |r| 32 + r.2.len()) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO calsync_baseline (service_id, event_type_id, agreed, agreed_at) ",
        );
        qb.push_values(rows, |mut b, r| {
            b.push_bind(r.0.0)
                .push_bind(r.1.0)
                .push_bind(r.2.as_str())
                .push_bind(w.now);
        });
        qb.push(
            " ON CONFLICT (service_id) DO UPDATE SET event_type_id = excluded.event_type_id, \
             agreed = excluded.agreed, agreed_at = excluded.agreed_at",
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
    conn: &mut SqliteConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<(), StoreError> {
    for rows in chunks(&w.registry, 4, |r| 32 + r.account.len()) {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO calsync_event_types (event_type_id, account, team_id, last_seen_at) ",
        );
        qb.push_values(rows, |mut b, r| {
            b.push_bind(r.event_type_id.0)
                .push_bind(&r.account)
                .push_bind(r.team_id.map(|t| t.0))
                .push_bind(w.now);
        });
        qb.push(
            " ON CONFLICT (event_type_id) DO UPDATE SET account = excluded.account, \
             team_id = excluded.team_id, last_seen_at = excluded.last_seen_at, gone_at = NULL",
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
