//! The PostgreSQL dialect of the store.
//!
//! Batches bind one array per column and join `UNNEST(...)`, so a statement has a
//! fixed number of parameters whatever the number of rows: no chunking needed.
//! Timestamps are read with `::timestamp`, which works for both `timestamp` and
//! `timestamptz` platform columns because sqlx sets the session time zone to UTC.

use sqlx::{PgConnection, PgPool, QueryBuilder};

use super::batch::{PreparedWrite, Statements};
use super::error::{StoreError, on};
use super::rows::{DriftRow, RunRow, ServiceRow};
use super::schema::{self, Column, TableShape};
use super::{
    AccountScope, AccountSnapshot, ApplyOutcome, Backend, DriftQuery, LinkedService, RunRecord,
    StoredRun,
};
use crate::domain::{BusinessValues, EventTypeId, ServiceId};

const BACKEND: Backend = Backend::Postgres;

/// Services joined with the registry, in the shape of [`ServiceRow`].
const SERVICE_SELECT: &str = "SELECT s.id::int8 AS id, s.company_id::int8 AS company_id, \
    s.branch_id::int8 AS branch_id, s.name::text AS name, s.description::text AS description, \
    s.duration_minutes::int8 AS duration_minutes, round(s.price * 100)::int8 AS cents, \
    s.currency::text AS currency, COALESCE(s.is_active, false) AS is_active, \
    COALESCE(s.is_online, false) AS is_online, COALESCE(s.composite, false) AS composite, \
    s.calcom_event_type_id::int8 AS calcom_event_type_id, s.sync_status::text AS sync_status, \
    s.last_calcom_sync::timestamp AS last_calcom_sync, s.sync_error::text AS sync_error, \
    s.updated_at::timestamp AS updated_at, r.event_type_id AS reg_event_type_id, \
    r.account::text AS reg_account, r.team_id AS reg_team_id, r.gone_at::timestamp AS reg_gone_at, \
    b.agreed AS baseline, \
    b.agreed_at AS baseline_at \
    FROM services s LEFT JOIN calsync_event_types r ON r.event_type_id = s.calcom_event_type_id \
    LEFT JOIN calsync_baseline b ON b.service_id = s.id AND b.event_type_id = s.calcom_event_type_id";

const DRIFT_SELECT: &str = "SELECT id, service_id, calcom_event_type_id, account::text AS account, \
    field::text AS field, origin::text AS origin, platform_value, calcom_value, baseline_value, \
    first_seen_at, last_seen_at, times_seen, resolved_at, resolution::text AS resolution \
    FROM calsync_drift";

/// True when the business columns of `s` equal the `v.*` expected values.
const GUARD: &str = "s.name = v.name \
    AND COALESCE(s.description, '') = COALESCE(v.description, '') \
    AND s.duration_minutes = v.duration \
    AND round(s.price * 100) = v.cents \
    AND upper(btrim(s.currency::text)) = v.currency \
    AND COALESCE(s.is_active, false) = v.is_active \
    AND COALESCE(s.is_online, false) = v.is_online";

/// Business values as one array per column, in `BUSINESS_COLUMNS` order.
#[derive(Default)]
struct BusinessArrays<'a> {
    name: Vec<&'a str>,
    description: Vec<Option<&'a str>>,
    duration: Vec<i64>,
    cents: Vec<i64>,
    currency: Vec<&'a str>,
    is_active: Vec<bool>,
    is_online: Vec<bool>,
}

impl<'a> BusinessArrays<'a> {
    fn push(&mut self, v: &'a BusinessValues) {
        self.name.push(&v.name);
        self.description.push(v.description.as_deref());
        self.duration.push(i64::from(v.duration_minutes));
        self.cents.push(v.price.cents);
        self.currency.push(v.price.currency.as_str());
        self.is_active.push(v.is_active);
        self.is_online.push(v.is_online);
    }

    /// Binds the seven arrays as the next parameters.
    fn bind(self, qb: &mut QueryBuilder<sqlx::Postgres>) {
        qb.push_bind(self.name).push("::text[], ");
        qb.push_bind(self.description).push("::text[], ");
        qb.push_bind(self.duration).push("::int8[], ");
        qb.push_bind(self.cents).push("::int8[], ");
        qb.push_bind(self.currency).push("::text[], ");
        qb.push_bind(self.is_active).push("::bool[], ");
        qb.push_bind(self.is_online).push("::bool[]");
    }
}

pub(super) async fn ping(pool: &PgPool, st: &Statements) -> Result<(), StoreError> {
    st.tick();
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map_err(on(BACKEND, "pinging the database"))?;
    Ok(())
}

pub(super) async fn table_exists(
    pool: &PgPool,
    st: &Statements,
    name: &'static str,
) -> Result<bool, StoreError> {
    st.tick();
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(name)
        .fetch_one(pool)
        .await
        .map_err(on(BACKEND, "looking up a table"))
}

pub(super) async fn services_shape(
    pool: &PgPool,
    st: &Statements,
) -> Result<Option<TableShape>, StoreError> {
    st.tick();
    // Domains are judged by their base type.
    let rows: Vec<(String, String, String, bool, bool)> = sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
         COALESCE(bt.typname, t.typname)::text, NOT a.attnotnull, \
         (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '') \
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype \
         WHERE a.attrelid = to_regclass('services') AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum",
    )
    .fetch_all(pool)
    .await
    .map_err(on(BACKEND, "reading the services columns"))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let columns = rows
        .into_iter()
        .map(|(name, declared, typname, nullable, has_default)| Column {
            name,
            declared,
            kind: schema::postgres_kind(&typname),
            nullable,
            has_default,
            charset: None,
        })
        .collect();
    st.tick();
    let unique: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_index i \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
         WHERE i.indrelid = to_regclass('services') AND i.indisunique AND i.indnkeyatts = 1 \
         AND i.indpred IS NULL AND i.indexprs IS NULL AND a.attname = 'calcom_event_type_id')",
    )
    .fetch_one(pool)
    .await
    .map_err(on(BACKEND, "reading the services indexes"))?;
    Ok(Some(TableShape {
        columns,
        unique_event_type_index: unique,
    }))
}

pub(super) async fn load_account(
    pool: &PgPool,
    st: &Statements,
    scope: AccountScope<'_>,
) -> Result<AccountSnapshot, StoreError> {
    let listed: Vec<i64> = scope.listed.iter().map(|id| id.0).collect();
    st.tick();
    let mut rows = sqlx::query_as::<_, ServiceRow>(sqlx::AssertSqlSafe(format!(
        "{SERVICE_SELECT} WHERE s.calcom_event_type_id = ANY($1::int8[])"
    )))
    .bind(listed)
    .fetch_all(pool)
    .await
    .map_err(on(BACKEND, "loading listed services"))?;
    st.tick();
    rows.extend(
        sqlx::query_as::<_, ServiceRow>(sqlx::AssertSqlSafe(format!(
            "{SERVICE_SELECT} WHERE r.account = $1 UNION ALL {SERVICE_SELECT} \
             WHERE r.event_type_id IS NULL AND s.calcom_event_type_id IS NOT NULL AND s.company_id = $2"
        )))
        .bind(scope.account)
        .bind(scope.company_id)
        .fetch_all(pool)
        .await
        .map_err(on(BACKEND, "loading the account's services"))?,
    );
    st.tick();
    let drift = sqlx::query_as::<_, DriftRow>(sqlx::AssertSqlSafe(format!(
        "{DRIFT_SELECT} WHERE open_key IS NOT NULL AND account = $1"
    )))
    .bind(scope.account)
    .fetch_all(pool)
    .await
    .map_err(on(BACKEND, "loading open drift"))?;
    super::snapshot(rows, drift)
}

pub(super) async fn service(
    pool: &PgPool,
    st: &Statements,
    id: ServiceId,
) -> Result<Option<LinkedService>, StoreError> {
    st.tick();
    let row = sqlx::query_as::<_, ServiceRow>(sqlx::AssertSqlSafe(format!(
        "{SERVICE_SELECT} WHERE s.id = $1"
    )))
    .bind(id.0)
    .fetch_optional(pool)
    .await
    .map_err(on(BACKEND, "reading a service"))?;
    row.map(LinkedService::try_from).transpose()
}

pub(super) async fn services_page(
    pool: &PgPool,
    st: &Statements,
    offset: i64,
    limit: i64,
) -> Result<Vec<ServiceRow>, StoreError> {
    st.tick();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SERVICE_SELECT} ORDER BY s.id LIMIT $1 OFFSET $2"
    )))
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
    .map_err(on(BACKEND, "listing services"))
}

pub(super) async fn edit_as_platform(
    pool: &PgPool,
    st: &Statements,
    id: ServiceId,
    name: Option<&str>,
    duration_minutes: Option<i32>,
    now: chrono::NaiveDateTime,
) -> Result<bool, StoreError> {
    st.tick();
    let done = sqlx::query(
        "UPDATE services SET name = COALESCE($1::text, name), \
         duration_minutes = COALESCE($2::int4, duration_minutes), sync_status = 'pending', \
         updated_at = $3 WHERE id = $4",
    )
    .bind(name)
    .bind(duration_minutes)
    .bind(now)
    .bind(id.0)
    .execute(pool)
    .await
    .map_err(on(BACKEND, "editing a service as the platform"))?;
    Ok(done.rows_affected() > 0)
}

pub(super) async fn drift_rows(
    pool: &PgPool,
    st: &Statements,
    query: DriftQuery<'_>,
) -> Result<Vec<DriftRow>, StoreError> {
    let q = match query {
        DriftQuery::State { state, account } => {
            let state = super::drift_state_filter(state);
            match account {
                None => sqlx::query_as::<_, DriftRow>(sqlx::AssertSqlSafe(format!(
                    "{DRIFT_SELECT} WHERE {state} ORDER BY id"
                ))),
                Some(account) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{DRIFT_SELECT} WHERE {state} AND account = $1 ORDER BY id"
                )))
                .bind(account),
            }
        }
        DriftQuery::OpenFor(id) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{DRIFT_SELECT} WHERE open_key IS NOT NULL AND service_id = $1"
        )))
        .bind(id.0),
        DriftQuery::History(id) => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "{DRIFT_SELECT} WHERE service_id = $1 ORDER BY id"
        )))
        .bind(id.0),
    };
    st.tick();
    q.fetch_all(pool)
        .await
        .map_err(on(BACKEND, "reading drift"))
}

pub(super) async fn record_run(
    pool: &PgPool,
    st: &Statements,
    run: &RunRecord,
) -> Result<(), StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(on(BACKEND, "recording a run"))?;
    insert_run(&mut conn, st, run).await
}

async fn insert_run(
    conn: &mut PgConnection,
    st: &Statements,
    run: &RunRecord,
) -> Result<(), StoreError> {
    st.tick();
    sqlx::query(
        "INSERT INTO calsync_runs (account, started_at, finished_at, result, summary, error) \
         VALUES ($1, $2, $3, $4, $5::jsonb, $6)",
    )
    .bind(&run.account)
    .bind(run.started_at)
    .bind(run.finished_at)
    .bind(run.result)
    .bind(run.summary.to_string())
    .bind(run.error.as_deref())
    .execute(conn)
    .await
    .map_err(on(BACKEND, "recording a run"))?;
    Ok(())
}

pub(super) async fn last_runs(
    pool: &PgPool,
    st: &Statements,
    limit: i64,
) -> Result<Vec<StoredRun>, StoreError> {
    st.tick();
    let rows: Vec<RunRow> = sqlx::query_as(
        "SELECT id, account::text AS account, started_at, finished_at, result::text AS result, \
         summary::text AS summary, error FROM calsync_runs ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(on(BACKEND, "reading runs"))?;
    Ok(rows.into_iter().map(StoredRun::from).collect())
}

pub(super) async fn status_counts(
    pool: &PgPool,
    st: &Statements,
    company_ids: &[i64],
) -> Result<Vec<(i64, Option<String>, i64)>, StoreError> {
    st.tick();
    sqlx::query_as(
        "SELECT company_id::int8, sync_status::text, COUNT(*)::int8 FROM services \
         WHERE company_id = ANY($1::int8[]) GROUP BY 1, 2",
    )
    .bind(company_ids)
    .fetch_all(pool)
    .await
    .map_err(on(BACKEND, "counting services by status"))
}

pub(super) async fn apply(
    pool: &PgPool,
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

super::account::account_tx!(PgConnection);

async fn import(
    conn: &mut PgConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
    out: &mut ApplyOutcome,
) -> Result<(), StoreError> {
    if w.imports.is_empty() {
        return Ok(());
    }
    let mut company = Vec::with_capacity(w.imports.len());
    let mut event_type = Vec::with_capacity(w.imports.len());
    let mut values = BusinessArrays::default();
    for n in &w.imports {
        company.push(n.company_id);
        event_type.push(n.event_type_id.0);
        values.push(&n.values);
    }
    // Rows are sorted by event type id, so racing passes wait on each other in
    // the same order; the loser's rows hit the unique index and are skipped.
    let mut qb = QueryBuilder::<sqlx::Postgres>::new(
        "INSERT INTO services (company_id, name, description, duration_minutes, price, currency, \
         is_active, is_online, composite, calcom_event_type_id, sync_status, last_calcom_sync, \
         created_at, updated_at) \
         SELECT v.company_id, v.name, v.description, v.duration, v.cents::numeric / 100, \
         v.currency, v.is_active, v.is_online, false, v.event_type_id, 'synced', n.now, n.now, n.now \
         FROM UNNEST(",
    );
    qb.push_bind(company).push("::int8[], ");
    qb.push_bind(event_type).push("::int8[], ");
    values.bind(&mut qb);
    qb.push(
        ") WITH ORDINALITY AS v(company_id, event_type_id, name, description, duration, cents, \
         currency, is_active, is_online, ord) CROSS JOIN (SELECT ",
    )
    .push_bind(w.now)
    .push(
        "::timestamp AS now) AS n ORDER BY v.ord \
         ON CONFLICT (calcom_event_type_id) DO NOTHING \
         RETURNING id::int8, calcom_event_type_id::int8",
    );
    st.tick();
    let inserted: Vec<(i64, i64)> = qb
        .build_query_as()
        .fetch_all(&mut *conn)
        .await
        .map_err(on(BACKEND, "importing services"))?;
    out.imported = inserted
        .into_iter()
        .map(|(id, et)| (EventTypeId(et), ServiceId(id)))
        .collect();
    out.imported.sort();
    Ok(())
}

async fn metadata(
    conn: &mut PgConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<(), StoreError> {
    if w.metadata.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = w.metadata.iter().map(|m| m.id.0).collect();
    let statuses: Vec<&str> = w.metadata.iter().map(|m| m.status.as_str()).collect();
    let errors: Vec<Option<&str>> = w.metadata.iter().map(|m| m.error.as_deref()).collect();
    st.tick();
    // The CASE reads the row at write time: a platform edit that set `pending`
    // after this pass read the row keeps its `pending`.
    sqlx::query(
        "UPDATE services AS s SET \
         sync_status = CASE WHEN s.sync_status = 'pending' THEN 'pending' ELSE v.status END, \
         sync_error = v.error, last_calcom_sync = $4 \
         FROM UNNEST($1::int8[], $2::text[], $3::text[]) AS v(id, status, error) \
         WHERE s.id = v.id",
    )
    .bind(ids)
    .bind(statuses)
    .bind(errors)
    .bind(w.now)
    .execute(conn)
    .await
    .map_err(on(BACKEND, "updating sync metadata"))?;
    Ok(())
}

async fn confirm(
    conn: &mut PgConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
    out: &mut ApplyOutcome,
) -> Result<(), StoreError> {
    if w.confirmations.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = w.confirmations.iter().map(|c| c.id.0).collect();
    let mut expected = BusinessArrays::default();
    for c in &w.confirmations {
        expected.push(&c.expected);
    }
    let mut qb = QueryBuilder::<sqlx::Postgres>::new(
        "UPDATE services AS s SET sync_status = 'synced', sync_error = NULL, last_calcom_sync = ",
    );
    qb.push_bind(w.now).push(" FROM UNNEST(");
    qb.push_bind(ids).push("::int8[], ");
    expected.bind(&mut qb);
    qb.push(
        ") AS v(id, name, description, duration, cents, currency, is_active, is_online) \
         WHERE s.id = v.id AND ",
    )
    .push(GUARD);
    st.tick();
    let done = qb
        .build()
        .execute(&mut *conn)
        .await
        .map_err(on(BACKEND, "confirming pushed services"))?;
    out.confirmed = done.rows_affected();
    out.confirmation_conflicts = w.confirmations.len() as u64 - done.rows_affected();
    Ok(())
}

async fn overwrite(
    conn: &mut PgConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
    out: &mut ApplyOutcome,
) -> Result<(), StoreError> {
    if w.overwrites.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = w.overwrites.iter().map(|o| o.id.0).collect();
    let mut expected = BusinessArrays::default();
    let mut new = BusinessArrays::default();
    for o in &w.overwrites {
        expected.push(&o.expected);
        new.push(&o.new);
    }
    let mut qb = QueryBuilder::<sqlx::Postgres>::new(
        "UPDATE services AS s SET name = v.new_name, description = v.new_description, \
         duration_minutes = v.new_duration, price = v.new_cents::numeric / 100, \
         currency = v.new_currency, is_active = v.new_is_active, is_online = v.new_is_online, \
         sync_status = 'synced', sync_error = NULL, last_calcom_sync = ",
    );
    qb.push_bind(w.now)
        .push(", updated_at = ")
        .push_bind(w.now)
        .push(" FROM UNNEST(");
    qb.push_bind(ids).push("::int8[], ");
    expected.bind(&mut qb);
    qb.push(", ");
    new.bind(&mut qb);
    qb.push(
        ") AS v(id, name, description, duration, cents, currency, is_active, is_online, \
         new_name, new_description, new_duration, new_cents, new_currency, new_is_active, \
         new_is_online) \
         WHERE s.id = v.id AND COALESCE(s.sync_status, '') <> 'pending' AND ",
    )
    .push(GUARD);
    st.tick();
    let done = qb
        .build()
        .execute(&mut *conn)
        .await
        .map_err(on(BACKEND, "overwriting services with Cal.com values"))?;
    out.overwritten = done.rows_affected();
    Ok(())
}

async fn resolve_drift(
    conn: &mut PgConnection,
    st: &Statements,
    now: chrono::NaiveDateTime,
    groups: &[(crate::domain::Resolution, Vec<String>)],
) -> Result<(), StoreError> {
    for (resolution, keys) in groups {
        st.tick();
        sqlx::query(
            // `agreed` keeps a resolution recorded as intent before a push (a
            // crash between the push and this pass's commit).
            "UPDATE calsync_drift SET resolved_at = $1, \
             resolution = CASE WHEN $2 = 'agreed' THEN COALESCE(resolution, $2) ELSE $2 END, \
             open_key = NULL WHERE open_key = ANY($3::text[])",
        )
        .bind(now)
        .bind(resolution.as_str())
        .bind(keys)
        .execute(&mut *conn)
        .await
        .map_err(on(BACKEND, "resolving drift"))?;
    }
    Ok(())
}

async fn upsert_drift(
    conn: &mut PgConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<(), StoreError> {
    if w.drift_upserts.is_empty() {
        return Ok(());
    }
    let rows = &w.drift_upserts;
    let services: Vec<i64> = rows.iter().map(|(_, d)| d.service_id.0).collect();
    let event_types: Vec<i64> = rows.iter().map(|(_, d)| d.event_type_id.0).collect();
    let fields: Vec<&str> = rows.iter().map(|(_, d)| d.field.as_str()).collect();
    let platform: Vec<&str> = rows
        .iter()
        .map(|(_, d)| d.platform_value.as_str())
        .collect();
    let calcom: Vec<&str> = rows.iter().map(|(_, d)| d.calcom_value.as_str()).collect();
    let keys: Vec<Option<&str>> = rows.iter().map(|(k, _)| k.as_deref()).collect();
    let resolved: Vec<Option<&str>> = rows
        .iter()
        .map(|(_, d)| d.closed.or(d.intent).map(|r| r.as_str()))
        .collect();
    let closed: Vec<bool> = rows.iter().map(|(_, d)| d.closed.is_some()).collect();
    let origins: Vec<&str> = rows.iter().map(|(_, d)| d.origin.as_str()).collect();
    let baselines: Vec<Option<&str>> = rows
        .iter()
        .map(|(_, d)| d.baseline_value.as_deref())
        .collect();
    st.tick();
    sqlx::query(
        "INSERT INTO calsync_drift (service_id, calcom_event_type_id, account, field, \
         platform_value, calcom_value, first_seen_at, last_seen_at, times_seen, open_key, \
         origin, baseline_value, resolution, resolved_at) \
         SELECT v.service_id, v.event_type_id, $7, v.field, v.platform_value, v.calcom_value, \
         $8, $8, CASE WHEN v.resolution IS NULL OR v.closed THEN 1 ELSE 0 END, v.open_key, \
         v.origin, v.baseline_value, v.resolution, \
         CASE WHEN v.closed THEN $8::timestamp ELSE NULL END \
         FROM UNNEST($1::int8[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], \
         $9::text[], $10::text[], $11::text[], $12::bool[]) \
         AS v(service_id, event_type_id, field, platform_value, calcom_value, open_key, origin, \
         baseline_value, resolution, closed) \
         ON CONFLICT (open_key) DO UPDATE SET \
         calcom_event_type_id = EXCLUDED.calcom_event_type_id, account = EXCLUDED.account, \
         platform_value = EXCLUDED.platform_value, calcom_value = EXCLUDED.calcom_value, \
         origin = EXCLUDED.origin, baseline_value = EXCLUDED.baseline_value, \
         resolution = EXCLUDED.resolution, last_seen_at = EXCLUDED.last_seen_at, \
         times_seen = calsync_drift.times_seen \
         + CASE WHEN EXCLUDED.resolution IS NULL THEN 1 ELSE 0 END",
    )
    .bind(services)
    .bind(event_types)
    .bind(fields)
    .bind(platform)
    .bind(calcom)
    .bind(keys)
    .bind(w.account)
    .bind(w.now)
    .bind(origins)
    .bind(baselines)
    .bind(resolved)
    .bind(closed)
    .execute(conn)
    .await
    .map_err(on(BACKEND, "recording drift"))?;
    Ok(())
}

async fn upsert_baselines(
    conn: &mut PgConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
    imported: &[(EventTypeId, ServiceId)],
) -> Result<(), StoreError> {
    let rows = super::batch::baseline_rows(w, imported);
    if rows.is_empty() {
        return Ok(());
    }
    let services: Vec<i64> = rows.iter().map(|r| r.0.0).collect();
    let event_types: Vec<i64> = rows.iter().map(|r| r.1.0).collect();
    let agreed: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    st.tick();
    sqlx::query(
        "INSERT INTO calsync_baseline (service_id, event_type_id, agreed, agreed_at) \
         SELECT v.service_id, v.event_type_id, v.agreed, $4 \
         FROM UNNEST($1::int8[], $2::int8[], $3::text[]) AS v(service_id, event_type_id, agreed) \
         ON CONFLICT (service_id) DO UPDATE SET event_type_id = EXCLUDED.event_type_id, \
         agreed = EXCLUDED.agreed, agreed_at = EXCLUDED.agreed_at",
    )
    .bind(services)
    .bind(event_types)
    .bind(agreed)
    .bind(w.now)
    .execute(conn)
    .await
    .map_err(on(BACKEND, "recording the agreed baseline"))?;
    Ok(())
}

async fn mark_gone(
    conn: &mut PgConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<(), StoreError> {
    if w.gone.is_empty() {
        return Ok(());
    }
    st.tick();
    sqlx::query(
        "UPDATE calsync_event_types SET gone_at = $1 WHERE event_type_id = ANY($2::int8[])",
    )
    .bind(w.now)
    .bind(&w.gone)
    .execute(conn)
    .await
    .map_err(on(BACKEND, "marking event types gone"))?;
    Ok(())
}

async fn register(
    conn: &mut PgConnection,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<(), StoreError> {
    if w.registry.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = w.registry.iter().map(|r| r.event_type_id.0).collect();
    let accounts: Vec<&str> = w.registry.iter().map(|r| r.account.as_str()).collect();
    let teams: Vec<Option<i64>> = w.registry.iter().map(|r| r.team_id.map(|t| t.0)).collect();
    st.tick();
    sqlx::query(
        "INSERT INTO calsync_event_types (event_type_id, account, team_id, last_seen_at) \
         SELECT v.event_type_id, v.account, v.team_id, $4 \
         FROM UNNEST($1::int8[], $2::text[], $3::int8[]) AS v(event_type_id, account, team_id) \
         ON CONFLICT (event_type_id) DO UPDATE SET account = EXCLUDED.account, \
         team_id = EXCLUDED.team_id, last_seen_at = EXCLUDED.last_seen_at, gone_at = NULL",
    )
    .bind(ids)
    .bind(accounts)
    .bind(teams)
    .bind(w.now)
    .execute(conn)
    .await
    .map_err(on(BACKEND, "updating the event type registry"))?;
    Ok(())
}
