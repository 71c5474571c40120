//! The drift ledger (`calsync_drift`): one open entry per (service, field) at most
//! (`open_key` = `<service>:<field>` while open, NULL once closed, under a plain
//! unique index), closed entries kept as history. Every statement is written
//! once against [`Dialect`].

use sqlx::{Pool, QueryBuilder};

use super::batch::{ID_CHUNK, PreparedWrite, Statements, chunks};
use super::dialect::{Cell, Dialect, tuple, values};
use super::error::{StoreError, on};
use super::rows::DriftRow;
use super::{DriftObservation, DriftQuery, DriftState};
use crate::domain::Resolution;

fn select<D: Dialect>() -> String {
    format!(
        "SELECT id, service_id, calcom_event_type_id, {} AS account, {} AS field, \
         {} AS origin, platform_value, calcom_value, baseline_value, first_seen_at, \
         last_seen_at, times_seen, resolved_at, {} AS resolution, \
         {} AS acknowledged_until, {} AS acknowledged_note, {} AS acknowledged_by \
         FROM calsync_drift",
        D::text("account"),
        D::text("field"),
        D::text("origin"),
        D::text("resolution"),
        D::time("acknowledged_until"),
        D::text("acknowledged_note"),
        D::text("acknowledged_by"),
    )
}

/// The `WHERE` condition of a listing by state.
fn state_filter(state: DriftState) -> &'static str {
    match state {
        // Acknowledged entries are open ones; the caller keeps the unexpired.
        DriftState::Open | DriftState::Acknowledged => "open_key IS NOT NULL",
        DriftState::Closed => "open_key IS NULL",
        DriftState::All => "1 = 1",
    }
}

/// Open entries recorded under an account (the pass's load).
pub(super) async fn open_of_account<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    account: &str,
) -> Result<Vec<DriftRow>, StoreError> {
    let mut qb = QueryBuilder::<D>::new(select::<D>());
    qb.push(" WHERE open_key IS NOT NULL AND account = ");
    D::cell(&mut qb, Cell::Text(account));
    st.tick();
    D::drift_prepared(conn, qb)
        .await
        .map_err(on(D::BACKEND, "loading open drift"))
}

pub(super) async fn rows<D: Dialect>(
    pool: &Pool<D>,
    st: &Statements,
    query: DriftQuery<'_>,
) -> Result<Vec<DriftRow>, StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(on(D::BACKEND, "reading drift"))?;
    let mut qb = QueryBuilder::<D>::new(select::<D>());
    match query {
        DriftQuery::State { state, account } => {
            qb.push(" WHERE ").push(state_filter(state));
            if let Some(account) = account {
                qb.push(" AND account = ");
                D::cell(&mut qb, Cell::Text(account));
            }
        }
        DriftQuery::OpenFor(id) => {
            qb.push(" WHERE open_key IS NOT NULL AND service_id = ");
            D::cell(&mut qb, Cell::Int(id.0));
        }
        DriftQuery::History(id) => {
            qb.push(" WHERE service_id = ");
            D::cell(&mut qb, Cell::Int(id.0));
        }
    }
    qb.push(" ORDER BY id");
    st.tick();
    D::drift(&mut conn, qb)
        .await
        .map_err(on(D::BACKEND, "reading drift"))
}

/// Opens or refreshes entries (`last_seen_at`, `times_seen + 1`, the current
/// platform value, origin and baseline); closed records (normalisations) are
/// inserted closed; an intent (recorded before a push) sets the resolution the
/// entry will close with, and a later observation clears it.
pub(super) async fn upsert<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<(), StoreError> {
    let size = |(_, d): &(Option<String>, &DriftObservation)| {
        64 + d.platform_value.len()
            + d.calcom_value.len()
            + d.baseline_value.as_ref().map_or(0, String::len)
    };
    let set: Vec<(&str, String)> = [
        "calcom_event_type_id",
        "account",
        "platform_value",
        "calcom_value",
        "origin",
        "baseline_value",
        "last_seen_at",
    ]
    .into_iter()
    .map(|c| (c, D::excluded(c)))
    .chain([
        // An intent is not a sighting of its own.
        (
            "times_seen",
            format!(
                "{} + CASE WHEN {} IS NULL THEN 1 ELSE 0 END",
                D::current("calsync_drift", "times_seen"),
                D::excluded("resolution")
            ),
        ),
        ("resolution", D::excluded("resolution")),
    ])
    .collect();
    let tail = D::upsert("open_key", &set);
    for rows in chunks(&w.drift_upserts, 14, size) {
        let mut qb = QueryBuilder::<D>::new(
            "INSERT INTO calsync_drift (service_id, calcom_event_type_id, account, field, \
             platform_value, calcom_value, first_seen_at, last_seen_at, times_seen, open_key, \
             origin, baseline_value, resolution, resolved_at)",
        );
        values(
            &mut qb,
            rows.iter().map(|(key, d)| {
                let sighting = d.intent.is_none() || d.closed.is_some();
                vec![
                    Cell::Int(d.service_id.0),
                    Cell::Int(d.event_type_id.0),
                    Cell::Text(w.account),
                    Cell::Text(d.field.as_str()),
                    Cell::Text(&d.platform_value),
                    Cell::Text(&d.calcom_value),
                    Cell::Time(w.now),
                    Cell::Time(w.now),
                    Cell::Int(i64::from(sighting)),
                    Cell::OptText(key.as_deref()),
                    Cell::Text(d.origin.as_str()),
                    Cell::OptText(d.baseline_value.as_deref()),
                    Cell::OptText(d.closed.or(d.intent).map(|r| r.as_str())),
                    Cell::OptTime(d.closed.map(|_| w.now)),
                ]
            }),
        );
        qb.push(&tail);
        st.tick();
        D::execute(&mut *conn, qb)
            .await
            .map_err(on(D::BACKEND, "recording drift"))?;
    }
    Ok(())
}

/// Closes open entries by key, one statement per resolution (and chunk). `agreed`
/// keeps a resolution recorded as intent before a push (a crash between the push
/// and the pass's commit).
pub(super) async fn resolve<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    now: chrono::NaiveDateTime,
    groups: &[(Resolution, Vec<String>)],
) -> Result<(), StoreError> {
    for (resolution, keys) in groups {
        for keys in keys.chunks(ID_CHUNK) {
            let mut qb = QueryBuilder::<D>::new("UPDATE calsync_drift SET resolved_at = ");
            D::cell(&mut qb, Cell::Time(now));
            qb.push(if *resolution == Resolution::Agreed {
                ", resolution = COALESCE(resolution, "
            } else {
                ", resolution = COALESCE(NULL, "
            });
            D::cell(&mut qb, Cell::Text(resolution.as_str()));
            qb.push("), open_key = NULL WHERE open_key IN ");
            tuple(&mut qb, keys.iter().map(|k| Cell::Text(k)).collect());
            st.tick();
            D::execute(&mut *conn, qb)
                .await
                .map_err(on(D::BACKEND, "resolving drift"))?;
        }
    }
    Ok(())
}

/// Sets or removes acknowledgements of open entries, one statement per entry (an
/// operator's decision touches a handful of fields, never a pass's worth).
pub(super) async fn acknowledge<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<(), StoreError> {
    for (key, a) in &w.acknowledgements {
        let ack = a.acknowledgement.as_ref();
        let mut qb = QueryBuilder::<D>::new("UPDATE calsync_drift SET acknowledged_until = ");
        D::cell(&mut qb, Cell::OptTime(ack.map(|a| a.until)));
        qb.push(", acknowledged_note = ");
        D::cell(&mut qb, Cell::OptText(ack.map(|a| a.note.as_str())));
        qb.push(", acknowledged_by = ");
        D::cell(&mut qb, Cell::OptText(ack.map(|a| a.by.as_str())));
        qb.push(" WHERE open_key = ");
        D::cell(&mut qb, Cell::Text(key));
        st.tick();
        D::execute(&mut *conn, qb)
            .await
            .map_err(on(D::BACKEND, "acknowledging drift"))?;
    }
    Ok(())
}
