//! The platform's `services` table: reading an account's services with their
//! registry entry and baseline, and the pass's guarded writes (imports, sync
//! metadata, confirmations, overwrites). Every statement is written once against
//! [`Dialect`].

use std::collections::HashSet;

use sqlx::{Pool, QueryBuilder};

use super::batch::{self, BUSINESS_COLUMNS, ID_CHUNK, PreparedWrite, Statements, chunks};
use super::dialect::{Cell, Dialect, Set, id_list, list};
use super::error::{StoreError, classify, on};
use super::rows::ServiceRow;
use super::{
    AccountScope, AccountSnapshot, ApplyOutcome, LinkedService, Overwrite, PageAt, ServicePage,
    ServiceQuery, ServiceShow,
};
use crate::domain::{BusinessValues, EventTypeId, ServiceId, SyncStatus};

/// Rows per derived table: MySQL parses each `UNION ALL` member as a query block;
/// a few thousand keeps parsing cheap while staying a handful of statements.
const DERIVED_ROWS: usize = 2_500;

/// Services joined with the registry and the baseline, in the shape of
/// [`ServiceRow`].
pub(super) fn select<D: Dialect>() -> String {
    format!(
        "SELECT {id} AS id, {company} AS company_id, {branch} AS branch_id, \
         {name} AS name, {description} AS description, {duration} AS duration_minutes, \
         {cents} AS cents, {currency} AS currency, {active} AS is_active, \
         {online} AS is_online, {composite} AS composite, {event_type} AS calcom_event_type_id, \
         {status} AS sync_status, {synced_at} AS last_calcom_sync, {error} AS sync_error, \
         {updated} AS updated_at, r.event_type_id AS reg_event_type_id, \
         {account} AS reg_account, r.team_id AS reg_team_id, {gone} AS reg_gone_at, \
         b.agreed AS baseline, {agreed_at} AS baseline_at, \
         {ps_key} AS push_values_key, {ps_attempts} AS push_attempts, \
         {ps_next} AS push_next_attempt_at, {ps_human} AS push_needs_human, \
         {ps_error} AS push_last_error \
         FROM services s \
         LEFT JOIN calsync_event_types r ON r.event_type_id = s.calcom_event_type_id \
         LEFT JOIN calsync_baseline b ON b.service_id = s.id \
         AND b.event_type_id = s.calcom_event_type_id \
         LEFT JOIN calsync_push_state ps ON ps.service_id = s.id",
        id = D::int("s.id"),
        company = D::int("s.company_id"),
        branch = D::int("s.branch_id"),
        name = D::text("s.name"),
        description = D::text("s.description"),
        duration = D::int("s.duration_minutes"),
        cents = D::cents("s.price"),
        currency = D::text("s.currency"),
        active = D::flag("s.is_active"),
        online = D::flag("s.is_online"),
        composite = D::flag("s.composite"),
        event_type = D::int("s.calcom_event_type_id"),
        status = D::text("s.sync_status"),
        synced_at = D::stamp("s.last_calcom_sync"),
        error = D::text("s.sync_error"),
        updated = D::stamp("s.updated_at"),
        account = D::text("r.account"),
        gone = D::stamp("r.gone_at"),
        agreed_at = D::stamp("b.agreed_at"),
        ps_key = D::text("ps.values_key"),
        ps_attempts = D::int("ps.attempts"),
        ps_next = D::stamp("ps.next_attempt_at"),
        ps_human = D::flag("ps.needs_human"),
        ps_error = D::text("ps.last_error"),
    )
}

/// True when the business columns of `s` equal the `v.*` expected values
/// (description NULL = "", currency case-insensitive).
fn guard<D: Dialect>() -> String {
    format!(
        "{} AND {} AND s.duration_minutes = v.duration AND {} = v.cents AND {} \
         AND {} = {} AND {} = {}",
        D::text_eq("s.name", "v.name"),
        D::text_eq("COALESCE(s.description, '')", "COALESCE(v.description, '')"),
        D::cents("s.price"),
        D::text_eq(&D::trim_upper("s.currency"), "v.currency"),
        D::flag("s.is_active"),
        D::flag_value("v.is_active"),
        D::flag("s.is_online"),
        D::flag_value("v.is_online"),
    )
}

/// The business columns in guard order: name, description, duration, price in
/// hundredths, currency (upper case), is_active, is_online.
fn business(v: &BusinessValues) -> [Cell<'_>; 7] {
    [
        Cell::Text(&v.name),
        Cell::OptText(v.description.as_deref()),
        Cell::Int(i64::from(v.duration_minutes)),
        Cell::Int(v.price.cents),
        Cell::Text(v.price.currency.as_str()),
        Cell::Flag(v.is_active),
        Cell::Flag(v.is_online),
    ]
}

/// Chunks for a derived table: parameter and byte limits, and [`DERIVED_ROWS`].
fn derived<T>(rows: &[T], params: usize, bytes: impl Fn(&T) -> usize) -> Vec<&[T]> {
    chunks(rows, params, bytes)
        .into_iter()
        .flat_map(|c| c.chunks(DERIVED_ROWS))
        .collect()
}

/// An account's services in one statement: those linked to the listed event
/// types, those registered under the account but no longer listed, and linked
/// services of the account's company that no account has registered yet. The
/// text depends only on the listing's size class ([`Dialect::id_in`]), so each
/// connection prepares it once; with the open drift that is two statements per
/// account and pass, whatever the number of services. A listing longer than
/// [`ID_CHUNK`] is read in chunks.
pub(super) async fn load_account<D: Dialect>(
    pool: &Pool<D>,
    st: &Statements,
    scope: AccountScope<'_>,
) -> Result<AccountSnapshot, StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(on(D::BACKEND, "loading listed services"))?;
    let listed: Vec<i64> = scope.listed.iter().map(|id| id.0).collect();
    let single = listed.len() <= ID_CHUNK;
    let mut rows: Vec<ServiceRow> = Vec::new();
    if !single {
        for ids in listed.chunks(ID_CHUNK) {
            let mut qb = QueryBuilder::<D>::new(select::<D>());
            qb.push(" WHERE s.calcom_event_type_id");
            D::id_in(&mut qb, ids);
            st.tick();
            rows.extend(
                D::services_prepared(&mut conn, qb)
                    .await
                    .map_err(on(D::BACKEND, "loading listed services"))?,
            );
        }
    }
    let mut qb = QueryBuilder::<D>::new(select::<D>());
    if single && !listed.is_empty() {
        qb.push(" WHERE s.calcom_event_type_id");
        D::id_in(&mut qb, &listed);
        qb.push(" UNION ALL ").push(select::<D>());
    }
    qb.push(" WHERE r.account = ");
    D::cell(&mut qb, Cell::Text(scope.account));
    if single && !listed.is_empty() {
        qb.push(" AND NOT (r.event_type_id");
        D::id_in(&mut qb, &listed);
        qb.push(")");
    }
    qb.push(" UNION ALL ")
        .push(select::<D>())
        .push(" WHERE r.event_type_id IS NULL AND s.calcom_event_type_id IS NOT NULL");
    if single && !listed.is_empty() {
        // Services linked to a listed event type are the first branch's rows
        // already: left out here before the registry is probed for each, a
        // steady account's third branch reads its company's rows and nothing
        // else.
        qb.push(" AND NOT (s.calcom_event_type_id");
        D::id_in(&mut qb, &listed);
        qb.push(")");
    }
    qb.push(" AND s.company_id = ");
    D::cell(&mut qb, Cell::Int(scope.company_id));
    st.tick();
    rows.extend(
        D::services_prepared(&mut conn, qb)
            .await
            .map_err(on(D::BACKEND, "loading the account's services"))?,
    );
    let drift = super::drift::open_of_account::<D>(&mut conn, st, scope.account).await?;
    super::snapshot(rows, drift)
}

pub(super) async fn service<D: Dialect>(
    pool: &Pool<D>,
    st: &Statements,
    id: ServiceId,
) -> Result<Option<LinkedService>, StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(on(D::BACKEND, "reading a service"))?;
    let mut qb = QueryBuilder::<D>::new(select::<D>());
    qb.push(" WHERE s.id = ");
    D::cell(&mut qb, Cell::Int(id.0));
    st.tick();
    let rows = D::services(&mut conn, qb)
        .await
        .map_err(on(D::BACKEND, "reading a service"))?;
    rows.into_iter()
        .next()
        .map(LinkedService::try_from)
        .transpose()
}

pub(super) async fn page<D: Dialect>(
    pool: &Pool<D>,
    st: &Statements,
    offset: i64,
    limit: i64,
) -> Result<Vec<ServiceRow>, StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(on(D::BACKEND, "listing services"))?;
    let mut qb = QueryBuilder::<D>::new(select::<D>());
    // Integers calsync computed, written as literals: MySQL takes no expression
    // (such as a cast parameter) in LIMIT.
    qb.push(format!(" ORDER BY s.id LIMIT {limit} OFFSET {offset}"));
    st.tick();
    D::services(&mut conn, qb)
        .await
        .map_err(on(D::BACKEND, "listing services"))
}

pub(super) async fn edit_as_platform<D: Dialect>(
    pool: &Pool<D>,
    st: &Statements,
    id: ServiceId,
    name: Option<&str>,
    duration_minutes: Option<i32>,
    now: chrono::NaiveDateTime,
) -> Result<bool, StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(on(D::BACKEND, "editing a service as the platform"))?;
    let mut qb = QueryBuilder::<D>::new("UPDATE services SET name = COALESCE(");
    D::cell(&mut qb, Cell::OptText(name));
    qb.push(", name), duration_minutes = COALESCE(");
    D::cell(&mut qb, Cell::OptInt(duration_minutes.map(i64::from)));
    qb.push(", duration_minutes), sync_status = 'pending', updated_at = ");
    D::cell(&mut qb, Cell::Time(now));
    qb.push(" WHERE id = ");
    D::cell(&mut qb, Cell::Int(id.0));
    st.tick();
    let done = D::execute(&mut conn, qb)
        .await
        .map_err(on(D::BACKEND, "editing a service as the platform"))?;
    Ok(done > 0)
}

pub(super) async fn status_counts<D: Dialect>(
    pool: &Pool<D>,
    st: &Statements,
    company_ids: &[i64],
) -> Result<Vec<(i64, Option<String>, i64)>, StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(on(D::BACKEND, "counting services by status"))?;
    let mut out = Vec::new();
    for ids in company_ids.chunks(ID_CHUNK) {
        let mut qb = QueryBuilder::<D>::new(format!(
            "SELECT {}, {}, {} FROM services WHERE company_id IN ",
            D::int("company_id"),
            D::text("sync_status"),
            D::int("COUNT(*)")
        ));
        id_list(&mut qb, ids.iter().copied());
        qb.push(" GROUP BY company_id, sync_status");
        st.tick();
        out.extend(
            D::counts(&mut conn, qb)
                .await
                .map_err(on(D::BACKEND, "counting services by status"))?,
        );
    }
    Ok(out)
}

/// `(event type id, service id)` of services already linked to these event types.
async fn linked<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    event_types: &[i64],
) -> Result<Vec<(i64, i64)>, StoreError> {
    let mut out = Vec::new();
    for ids in event_types.chunks(ID_CHUNK) {
        let mut qb = QueryBuilder::<D>::new(format!(
            "SELECT {}, {} FROM services WHERE calcom_event_type_id IN ",
            D::int("calcom_event_type_id"),
            D::int("id")
        ));
        id_list(&mut qb, ids.iter().copied());
        st.tick();
        out.extend(
            D::pairs(&mut *conn, qb)
                .await
                .map_err(on(D::BACKEND, "reading linked event types"))?,
        );
    }
    Ok(out)
}

/// Inserts the imports no service links yet, in event type order (racing passes
/// then wait on each other in the same order). Every backend reads which event
/// types are linked first and reads the new ids back (MySQL has no `RETURNING`,
/// and `INSERT IGNORE` would swallow unrelated errors); a pass that races another
/// on the same event type gets a duplicate key, which is reported as contention,
/// so the whole transaction is retried and the retry sees the winner's rows.
pub(super) async fn import<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    w: &PreparedWrite<'_>,
    out: &mut ApplyOutcome,
) -> Result<(), StoreError> {
    if w.imports.is_empty() {
        return Ok(());
    }
    let wanted: Vec<i64> = w.imports.iter().map(|n| n.event_type_id.0).collect();
    let present: HashSet<i64> = linked::<D>(conn, st, &wanted)
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
    let (pre, post) = D::CENTS_TO_DECIMAL;
    for rows in chunks(&missing, 12, |n| batch::business_bytes(&n.values)) {
        let mut qb = QueryBuilder::<D>::new(
            "INSERT INTO services (company_id, name, description, duration_minutes, price, \
             currency, is_active, is_online, composite, calcom_event_type_id, sync_status, \
             last_calcom_sync, created_at, updated_at) VALUES ",
        );
        for (i, n) in rows.iter().enumerate() {
            let v = &n.values;
            qb.push(if i == 0 { "(" } else { ", (" });
            list(
                &mut qb,
                vec![
                    Cell::Int(n.company_id),
                    Cell::Text(&v.name),
                    Cell::OptText(v.description.as_deref()),
                    Cell::Int(i64::from(v.duration_minutes)),
                ],
            );
            // Exact: the division of integer hundredths happens in SQL.
            qb.push(", ").push(pre);
            D::cell(&mut qb, Cell::Int(v.price.cents));
            qb.push(post).push(", ");
            list(
                &mut qb,
                vec![
                    Cell::Text(v.price.currency.as_str()),
                    Cell::Flag(v.is_active),
                    Cell::Flag(v.is_online),
                    Cell::Flag(false),
                    Cell::Int(n.event_type_id.0),
                    Cell::Text("synced"),
                    Cell::Time(w.now),
                    Cell::Time(w.now),
                    Cell::Time(w.now),
                ],
            );
            qb.push(")");
        }
        st.tick();
        D::execute(&mut *conn, qb).await.map_err(|cause| {
            let duplicate = cause
                .as_database_error()
                .is_some_and(|e| e.is_unique_violation());
            if duplicate {
                StoreError::Contention {
                    operation: "importing services",
                    attempts: 1,
                    cause,
                }
            } else {
                classify(D::BACKEND, "importing services", cause)
            }
        })?;
    }
    let inserted: Vec<i64> = missing.iter().map(|n| n.event_type_id.0).collect();
    out.imported = linked::<D>(conn, st, &inserted)
        .await?
        .into_iter()
        .map(|(et, id)| (EventTypeId(et), ServiceId(id)))
        .collect();
    out.imported.sort();
    out.services_written += out.imported.len() as u64;
    Ok(())
}

pub(super) async fn metadata<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    w: &PreparedWrite<'_>,
    out: &mut ApplyOutcome,
) -> Result<(), StoreError> {
    for rows in derived(&w.metadata, 3, |m| {
        16 + m.error.as_ref().map_or(0, String::len)
    }) {
        let mut qb = QueryBuilder::<D>::new("");
        // The CASE reads the row at write time: a platform edit that set
        // `pending` after this pass read the row keeps its `pending`.
        D::update_join(
            &mut qb,
            "services",
            &["id", "status", "error"],
            rows.iter()
                .map(|m| {
                    vec![
                        Cell::Int(m.id.0),
                        Cell::Text(m.status.as_str()),
                        Cell::OptText(m.error.as_deref()),
                    ]
                })
                .collect(),
            "s.id = v.id",
            vec![
                (
                    "sync_status",
                    Set::Expr(
                        "CASE WHEN s.sync_status = 'pending' THEN 'pending' ELSE v.status END"
                            .into(),
                    ),
                ),
                ("sync_error", Set::Expr("v.error".into())),
                ("last_calcom_sync", Set::Bind(Cell::Time(w.now))),
            ],
        );
        st.tick();
        out.services_written += D::execute(&mut *conn, qb)
            .await
            .map_err(on(D::BACKEND, "updating sync metadata"))?;
    }
    Ok(())
}

/// One row of a guarded status write: the service, the business values it must
/// still hold, and the `sync_error` to set (`None`: NULL).
type Guarded<'a> = (ServiceId, &'a BusinessValues, Option<&'a str>);

/// Sets `sync_status = status`, `sync_error` and `last_calcom_sync = now` on the
/// rows whose business columns still equal the expected values (a row the
/// platform changed meanwhile is left alone); returns the rows written. MySQL
/// connections report matched rows (CLIENT_FOUND_ROWS), as the others.
async fn guarded_status<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    now: chrono::NaiveDateTime,
    rows: &[Guarded<'_>],
    status: &'static str,
    what: &'static str,
) -> Result<u64, StoreError> {
    let columns: Vec<&str> = std::iter::once("id")
        .chain(BUSINESS_COLUMNS)
        .chain(["error"])
        .collect();
    let on_guard = format!("s.id = v.id AND {}", guard::<D>());
    let mut written = 0;
    for chunk in derived(rows, 9, |(_, v, e)| {
        batch::business_bytes(v) + e.map_or(0, str::len)
    }) {
        let mut qb = QueryBuilder::<D>::new("");
        D::update_join(
            &mut qb,
            "services",
            &columns,
            chunk
                .iter()
                .map(|(id, v, e)| {
                    let mut cells = vec![Cell::Int(id.0)];
                    cells.extend(business(v));
                    cells.push(Cell::OptText(*e));
                    cells
                })
                .collect(),
            &on_guard,
            vec![
                ("sync_status", Set::Expr(format!("'{status}'"))),
                ("sync_error", Set::Expr("v.error".into())),
                ("last_calcom_sync", Set::Bind(Cell::Time(now))),
            ],
        );
        st.tick();
        written += D::execute(&mut *conn, qb)
            .await
            .map_err(on(D::BACKEND, what))?;
    }
    Ok(written)
}

/// Marks pushed (or agreeing) services synced, guarded by the values pushed: a
/// platform edit made meanwhile keeps the row pending.
pub(super) async fn confirm<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    w: &PreparedWrite<'_>,
    out: &mut ApplyOutcome,
) -> Result<(), StoreError> {
    let rows: Vec<Guarded<'_>> = w
        .confirmations
        .iter()
        .map(|c| (c.id, &c.expected, None))
        .collect();
    let done = guarded_status::<D>(
        conn,
        st,
        w.now,
        &rows,
        "synced",
        "confirming pushed services",
    )
    .await?;
    out.confirmed += done;
    out.services_written += done;
    out.confirmation_conflicts += rows.len() as u64 - done;
    Ok(())
}

/// Pushes that need a human: `error` even over `pending`, guarded like a
/// confirmation (a row the platform changed meanwhile keeps its status).
pub(super) async fn give_up<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    w: &PreparedWrite<'_>,
    out: &mut ApplyOutcome,
) -> Result<(), StoreError> {
    let rows: Vec<Guarded<'_>> = w
        .gave_up
        .iter()
        .map(|g| (g.id, &g.expected, Some(g.error.as_str())))
        .collect();
    out.services_written += guarded_status::<D>(
        conn,
        st,
        w.now,
        &rows,
        "error",
        "marking pushes that need a human",
    )
    .await?;
    Ok(())
}

/// The only business-column writes: Cal.com values of the granted fields, guarded
/// by the values read (a row the platform changed meanwhile is left alone). A row
/// the platform set `pending` stays `pending`: its own edits of other fields still
/// wait for their push, and the confirmation step decides.
pub(super) async fn overwrite<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    w: &PreparedWrite<'_>,
    out: &mut ApplyOutcome,
) -> Result<(), StoreError> {
    let columns: Vec<String> = std::iter::once("id".to_owned())
        .chain(BUSINESS_COLUMNS.iter().map(|c| (*c).to_owned()))
        .chain(BUSINESS_COLUMNS.iter().map(|c| format!("new_{c}")))
        .collect();
    let columns: Vec<&str> = columns.iter().map(String::as_str).collect();
    let on_guard = format!("s.id = v.id AND {}", guard::<D>());
    let size =
        |o: &&Overwrite| batch::business_bytes(o.expected()) + batch::business_bytes(o.values());
    for rows in derived(&w.overwrites, 15, size) {
        let mut qb = QueryBuilder::<D>::new("");
        D::update_join(
            &mut qb,
            "services",
            &columns,
            rows.iter()
                .map(|o| {
                    let mut cells = vec![Cell::Int(o.id().0)];
                    cells.extend(business(o.expected()));
                    cells.extend(business(o.values()));
                    cells
                })
                .collect(),
            &on_guard,
            vec![
                ("name", Set::Expr("v.new_name".into())),
                ("description", Set::Expr("v.new_description".into())),
                ("duration_minutes", Set::Expr("v.new_duration".into())),
                ("price", Set::Expr(D::from_cents("v.new_cents"))),
                ("currency", Set::Expr("v.new_currency".into())),
                ("is_active", Set::Expr("v.new_is_active".into())),
                ("is_online", Set::Expr("v.new_is_online".into())),
                (
                    "sync_status",
                    Set::Expr(
                        "CASE WHEN s.sync_status = 'pending' THEN 'pending' ELSE 'synced' END"
                            .into(),
                    ),
                ),
                ("sync_error", Set::Expr("NULL".into())),
                ("last_calcom_sync", Set::Bind(Cell::Time(w.now))),
                ("updated_at", Set::Bind(Cell::Time(w.now))),
            ],
        );
        st.tick();
        let done = D::execute(&mut *conn, qb)
            .await
            .map_err(on(D::BACKEND, "overwriting services with Cal.com values"))?;
        out.overwritten += done;
        out.services_written += done;
    }
    Ok(())
}

/// One round trip (`SELECT 1`).
pub(super) async fn ping<D: Dialect>(pool: &Pool<D>, st: &Statements) -> Result<(), StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(on(D::BACKEND, "pinging the database"))?;
    st.tick();
    D::execute(&mut conn, QueryBuilder::new("SELECT 1"))
        .await
        .map_err(on(D::BACKEND, "pinging the database"))?;
    Ok(())
}

/// The `WHERE` conditions of a console listing (after `WHERE 1 = 1`), bound.
/// They name only `s` (subqueries, no join), so the count reads `services`
/// alone and each condition can start from an index: the registry by account,
/// the ledger's open entries, the unique event type id.
fn listing_filter<D: Dialect>(qb: &mut QueryBuilder<D>, q: &ServiceQuery<'_>) {
    if let Some(account) = q.account {
        // An account's services: its registered event types, and the services of
        // its company that no account listed (unlinked or never seen).
        qb.push(
            " AND (s.calcom_event_type_id IN \
             (SELECT event_type_id FROM calsync_event_types WHERE account = ",
        );
        D::cell(qb, Cell::Text(account.name));
        qb.push(") OR (s.company_id = ");
        D::cell(qb, Cell::Int(account.company_id));
        // NOT IN rather than a correlated NOT EXISTS: PostgreSQL hashes the
        // registry once instead of probing it per row (event_type_id is never
        // NULL, so NOT IN means what it says).
        qb.push(
            " AND (s.calcom_event_type_id IS NULL OR s.calcom_event_type_id NOT IN \
             (SELECT event_type_id FROM calsync_event_types))))",
        );
    }
    match q.show {
        None => {}
        Some(ServiceShow::Status(SyncStatus::Never)) => {
            // Unknown status words are read as `never`, so they are listed here.
            qb.push(
                " AND (s.sync_status IS NULL OR s.sync_status NOT IN ('synced', 'pending', 'error'))",
            );
        }
        Some(ServiceShow::Status(status)) => {
            qb.push(" AND s.sync_status = ");
            D::cell(qb, Cell::Text(status.as_str()));
        }
        Some(ServiceShow::Drifted) => {
            qb.push(
                " AND s.id IN (SELECT service_id FROM calsync_drift WHERE open_key IS NOT NULL)",
            );
        }
        Some(ServiceShow::Orphaned) => {
            qb.push(
                " AND s.calcom_event_type_id IN \
                 (SELECT event_type_id FROM calsync_event_types WHERE gone_at IS NOT NULL)",
            );
        }
        Some(ServiceShow::Acknowledged) => {
            qb.push(
                " AND s.id IN (SELECT service_id FROM calsync_drift WHERE open_key IS NOT NULL \
                 AND acknowledged_until > ",
            );
            D::cell(qb, Cell::Time(chrono::Utc::now().naive_utc()));
            qb.push(")");
        }
        Some(ServiceShow::NeedsHuman) => {
            qb.push(format!(
                " AND s.id IN (SELECT service_id FROM calsync_push_state ps WHERE {})",
                D::flag("ps.needs_human")
            ));
        }
    }
    if let Some(search) = &q.search {
        qb.push(" AND (LOWER(s.name) LIKE ");
        D::cell(qb, Cell::Text(&search.pattern));
        qb.push(" ESCAPE '!'");
        if let Some(id) = search.id {
            qb.push(" OR s.id = ");
            D::cell(qb, Cell::Int(id));
            qb.push(" OR s.calcom_event_type_id = ");
            D::cell(qb, Cell::Int(id));
        }
        qb.push(")");
    }
}

/// One page of a console listing, walking the primary key from the cursor (so a
/// page costs the rows it shows, however deep it is), with the number of open
/// drift entries of each service shown, and how many services match in all.
pub(super) async fn listing<D: Dialect>(
    pool: &Pool<D>,
    st: &Statements,
    q: &ServiceQuery<'_>,
) -> Result<ServicePage, StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(on(D::BACKEND, "listing services"))?;
    let limit = q.limit.clamp(1, 500);
    let mut qb = QueryBuilder::<D>::new(select::<D>());
    qb.push(" WHERE 1 = 1");
    listing_filter(&mut qb, q);
    let backwards = matches!(q.at, PageAt::Before(_));
    match q.at {
        PageAt::First => {}
        PageAt::After(id) => {
            qb.push(" AND s.id > ");
            D::cell(&mut qb, Cell::Int(id.0));
        }
        PageAt::Before(id) => {
            qb.push(" AND s.id < ");
            D::cell(&mut qb, Cell::Int(id.0));
        }
    }
    // One row more than shown tells whether there is a further page. Integers
    // calsync computed, written as literals (MySQL takes no expression in LIMIT).
    qb.push(format!(
        " ORDER BY s.id {} LIMIT {}",
        if backwards { "DESC" } else { "ASC" },
        limit + 1
    ));
    st.tick();
    let mut rows = D::services(&mut conn, qb)
        .await
        .map_err(on(D::BACKEND, "listing services"))?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    if backwards {
        rows.reverse();
    }
    let (has_previous, has_next) = match q.at {
        PageAt::First => (false, more),
        PageAt::After(_) => (true, more),
        PageAt::Before(_) => (more, true),
    };

    let mut count = QueryBuilder::<D>::new(format!(
        "SELECT {c}, {c} FROM services s WHERE 1 = 1",
        c = D::int("COUNT(*)")
    ));
    listing_filter(&mut count, q);
    st.tick();
    let total = D::pairs(&mut conn, count)
        .await
        .map_err(on(D::BACKEND, "counting services"))?
        .first()
        .map_or(0, |(n, _)| *n);

    let mut drift = Vec::new();
    if !rows.is_empty() {
        let mut qb = QueryBuilder::<D>::new(format!(
            "SELECT {}, {} FROM calsync_drift WHERE open_key IS NOT NULL AND service_id IN ",
            D::int("service_id"),
            D::int("COUNT(*)")
        ));
        id_list(&mut qb, rows.iter().map(|r| r.id));
        qb.push(" GROUP BY service_id");
        st.tick();
        drift = D::pairs(&mut conn, qb)
            .await
            .map_err(on(D::BACKEND, "counting open drift"))?;
    }
    let services = rows
        .into_iter()
        .map(|row| {
            let open = drift
                .iter()
                .find(|(id, _)| *id == row.id)
                .map_or(0, |(_, n)| *n);
            LinkedService::try_from(row).map(|s| (s, open))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ServicePage {
        services,
        total,
        has_previous,
        has_next,
    })
}
