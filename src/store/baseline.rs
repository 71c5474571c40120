//! The baseline (`calsync_baseline`): per linked service, the values the platform
//! and Cal.com last agreed on, as JSON in `agreed`. Read with the services (a join
//! on the service and its current link); written here, once per changed service.

use sqlx::QueryBuilder;

use super::batch::{PreparedWrite, Statements, baseline_rows, chunks};
use super::dialect::{Cell, Dialect, values};
use super::error::{StoreError, on};
use crate::domain::{EventTypeId, ServiceId};

pub(super) async fn upsert<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    w: &PreparedWrite<'_>,
    imported: &[(EventTypeId, ServiceId)],
) -> Result<(), StoreError> {
    let rows = baseline_rows(w, imported);
    let set: Vec<(&str, String)> = ["event_type_id", "agreed", "agreed_at"]
        .into_iter()
        .map(|c| (c, D::excluded(c)))
        .collect();
    let tail = D::upsert("service_id", &set);
    for rows in chunks(&rows, 4, |r| 32 + r.2.len()) {
        let mut qb = QueryBuilder::<D>::new(
            "INSERT INTO calsync_baseline (service_id, event_type_id, agreed, agreed_at)",
        );
        values(
            &mut qb,
            rows.iter().map(|r| {
                vec![
                    Cell::Int(r.0.0),
                    Cell::Int(r.1.0),
                    Cell::Text(&r.2),
                    Cell::Time(w.now),
                ]
            }),
        );
        qb.push(&tail);
        st.tick();
        D::execute(&mut *conn, qb)
            .await
            .map_err(on(D::BACKEND, "recording the agreed baseline"))?;
    }
    Ok(())
}
