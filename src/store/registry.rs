//! The event type registry (`calsync_event_types`): which account and team an
//! event type was last listed under, and when Cal.com confirmed it gone.

use sqlx::QueryBuilder;

use super::batch::{ID_CHUNK, PreparedWrite, Statements, chunks};
use super::dialect::{Cell, Dialect, id_list, values};
use super::error::{StoreError, on};

/// Upserts the entries; being listed again clears `gone_at`.
pub(super) async fn register<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<(), StoreError> {
    let set: Vec<(&str, String)> = ["account", "team_id", "last_seen_at"]
        .into_iter()
        .map(|c| (c, D::excluded(c)))
        .chain([("gone_at", "NULL".to_owned())])
        .collect();
    let tail = D::upsert("event_type_id", &set);
    for rows in chunks(&w.registry, 4, |r| 32 + r.account.len()) {
        let mut qb = QueryBuilder::<D>::new(
            "INSERT INTO calsync_event_types (event_type_id, account, team_id, last_seen_at)",
        );
        values(
            &mut qb,
            rows.iter().map(|r| {
                vec![
                    Cell::Int(r.event_type_id.0),
                    Cell::Text(&r.account),
                    Cell::OptInt(r.team_id.map(|t| t.0)),
                    Cell::Time(w.now),
                ]
            }),
        );
        qb.push(&tail);
        st.tick();
        D::execute(&mut *conn, qb)
            .await
            .map_err(on(D::BACKEND, "updating the event type registry"))?;
    }
    Ok(())
}

/// Records that Cal.com confirmed these event types gone.
pub(super) async fn mark_gone<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<(), StoreError> {
    for ids in w.gone.chunks(ID_CHUNK) {
        let mut qb = QueryBuilder::<D>::new("UPDATE calsync_event_types SET gone_at = ");
        D::cell(&mut qb, Cell::Time(w.now));
        qb.push(" WHERE event_type_id IN ");
        id_list(&mut qb, ids.iter().copied());
        st.tick();
        D::execute(&mut *conn, qb)
            .await
            .map_err(on(D::BACKEND, "marking event types gone"))?;
    }
    Ok(())
}
