//! Push retry state (`calsync_push_state`): one row per service whose last push
//! failed, with the values it carried, its attempts and when to try again. Rows are
//! loaded with the services (one join, no statement of their own); a pass writes
//! only the rows that change.

use sqlx::QueryBuilder;

use super::batch::{ID_CHUNK, PreparedWrite, Statements, chunks};
use super::dialect::{Cell, Dialect, id_list, values};
use super::error::{StoreError, on};

/// Upserts the states of failed pushes, then deletes the states that ended.
pub(super) async fn write<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<(), StoreError> {
    let set: Vec<(&str, String)> = [
        "account",
        "values_key",
        "attempts",
        "next_attempt_at",
        "needs_human",
        "last_error",
        "updated_at",
    ]
    .into_iter()
    .map(|c| (c, D::excluded(c)))
    .collect();
    let tail = D::upsert("service_id", &set);
    let size = |p: &&super::PushStateWrite| {
        64 + p.state.values_key.len() + p.state.last_error.len() + w.account.len()
    };
    for rows in chunks(&w.push_states, 8, size) {
        let mut qb = QueryBuilder::<D>::new(
            "INSERT INTO calsync_push_state (service_id, account, values_key, attempts, \
             next_attempt_at, needs_human, last_error, updated_at)",
        );
        values(
            &mut qb,
            rows.iter().map(|p| {
                vec![
                    Cell::Int(p.service_id.0),
                    Cell::Text(w.account),
                    Cell::Text(&p.state.values_key),
                    Cell::Int(i64::from(p.state.attempts)),
                    Cell::Time(p.state.next_attempt_at),
                    Cell::Flag(p.state.needs_human),
                    Cell::Text(&p.state.last_error),
                    Cell::Time(w.now),
                ]
            }),
        );
        qb.push(&tail);
        st.tick();
        D::execute(&mut *conn, qb)
            .await
            .map_err(on(D::BACKEND, "recording push retry state"))?;
    }
    for ids in w.push_states_cleared.chunks(ID_CHUNK) {
        let mut qb = QueryBuilder::<D>::new("DELETE FROM calsync_push_state WHERE service_id IN ");
        id_list(&mut qb, ids.iter().copied());
        st.tick();
        D::execute(&mut *conn, qb)
            .await
            .map_err(on(D::BACKEND, "clearing push retry state"))?;
    }
    Ok(())
}
