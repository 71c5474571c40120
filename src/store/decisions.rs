//! The decision journal (`calsync_decisions`): every operator decision about drift
//! (adopt, acknowledge, unacknowledge) and every approval of a held account, with
//! who decided, when and why. An approval is used by the next pass of its account
//! that the guard would hold (`consumed_at`).

use chrono::NaiveDateTime;
use serde::Serialize;
use sqlx::{Pool, QueryBuilder};

use super::batch::{PreparedWrite, Statements};
use super::dialect::{Cell, Dialect, values};
use super::error::{StoreError, on};
use crate::domain::{Field, ServiceId};

/// What an operator decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionKind {
    /// Cal.com's values taken into the platform.
    Adopt,
    /// Drift entries acknowledged until a time.
    Acknowledge,
    /// Acknowledgements ended early.
    Unacknowledge,
    /// A held account let through once.
    Approve,
}

impl DecisionKind {
    pub const ALL: [DecisionKind; 4] = [
        Self::Adopt,
        Self::Acknowledge,
        Self::Unacknowledge,
        Self::Approve,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Adopt => "adopt",
            Self::Acknowledge => "acknowledge",
            Self::Unacknowledge => "unacknowledge",
            Self::Approve => "approve",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == value)
    }
}

/// A decision to journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionRecord {
    pub kind: DecisionKind,
    pub account: Option<String>,
    pub service_id: Option<ServiceId>,
    pub fields: Vec<Field>,
    pub note: Option<String>,
    pub by: String,
    pub at: NaiveDateTime,
    /// Until when an acknowledgement holds.
    pub until: Option<NaiveDateTime>,
}

/// A journaled decision as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredDecision {
    pub id: i64,
    pub kind: DecisionKind,
    pub account: Option<String>,
    pub service_id: Option<ServiceId>,
    pub fields: Vec<Field>,
    pub note: Option<String>,
    pub decided_by: String,
    pub decided_at: NaiveDateTime,
    pub until: Option<NaiveDateTime>,
    /// For an approval: when a pass used it (`None`: not used yet).
    pub consumed_at: Option<NaiveDateTime>,
}

/// A `calsync_decisions` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DecisionRow {
    pub id: i64,
    pub kind: String,
    pub account: Option<String>,
    pub service_id: Option<i64>,
    pub fields: Option<String>,
    pub note: Option<String>,
    pub decided_by: String,
    pub decided_at: NaiveDateTime,
    pub until_at: Option<NaiveDateTime>,
    pub consumed_at: Option<NaiveDateTime>,
}

impl TryFrom<DecisionRow> for StoredDecision {
    type Error = StoreError;

    fn try_from(row: DecisionRow) -> Result<Self, StoreError> {
        let kind = DecisionKind::parse(&row.kind).ok_or_else(|| StoreError::InvalidRow {
            table: "calsync_decisions",
            id: row.id,
            reason: format!("unknown kind {:?}", row.kind),
        })?;
        Ok(StoredDecision {
            id: row.id,
            kind,
            account: row.account,
            service_id: row.service_id.map(ServiceId),
            // A field a newer calsync knows is skipped rather than failing.
            fields: row
                .fields
                .as_deref()
                .unwrap_or_default()
                .split(',')
                .filter_map(Field::parse)
                .collect(),
            note: row.note,
            decided_by: row.decided_by,
            decided_at: row.decided_at,
            until: row.until_at,
            consumed_at: row.consumed_at,
        })
    }
}

fn fields_text(fields: &[Field]) -> Option<String> {
    (!fields.is_empty()).then(|| {
        fields
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// Journals the write's decisions and marks the approval it used.
pub(super) async fn write<D: Dialect>(
    conn: &mut D::Connection,
    st: &Statements,
    w: &PreparedWrite<'_>,
) -> Result<(), StoreError> {
    if !w.decisions.is_empty() {
        let fields: Vec<Option<String>> =
            w.decisions.iter().map(|d| fields_text(&d.fields)).collect();
        let mut qb = QueryBuilder::<D>::new(
            "INSERT INTO calsync_decisions (kind, account, service_id, fields, note, \
             decided_by, decided_at, until_at, consumed_at)",
        );
        values(
            &mut qb,
            w.decisions.iter().zip(&fields).map(|(d, f)| {
                vec![
                    Cell::Text(d.kind.as_str()),
                    Cell::OptText(d.account.as_deref()),
                    Cell::OptInt(d.service_id.map(|s| s.0)),
                    Cell::OptText(f.as_deref()),
                    Cell::OptText(d.note.as_deref()),
                    Cell::Text(&d.by),
                    Cell::Time(d.at),
                    Cell::OptTime(d.until),
                    Cell::OptTime(None),
                ]
            }),
        );
        st.tick();
        D::execute(&mut *conn, qb)
            .await
            .map_err(on(D::BACKEND, "journaling decisions"))?;
    }
    if let Some(id) = w.approval_used {
        let mut qb = QueryBuilder::<D>::new("UPDATE calsync_decisions SET consumed_at = ");
        D::cell(&mut qb, Cell::Time(w.now));
        qb.push(" WHERE id = ");
        D::cell(&mut qb, Cell::Int(id));
        st.tick();
        D::execute(&mut *conn, qb)
            .await
            .map_err(on(D::BACKEND, "using an approval"))?;
    }
    Ok(())
}

fn select<D: Dialect>() -> String {
    format!(
        "SELECT {} AS id, {} AS kind, {} AS account, {} AS service_id, {} AS fields, \
         {} AS note, {} AS decided_by, {} AS decided_at, {} AS until_at, \
         {} AS consumed_at FROM calsync_decisions",
        D::int("id"),
        D::text("kind"),
        D::text("account"),
        D::int("service_id"),
        D::text("fields"),
        D::text("note"),
        D::text("decided_by"),
        D::time("decided_at"),
        D::time("until_at"),
        D::time("consumed_at"),
    )
}

pub(super) async fn list<D: Dialect>(
    pool: &Pool<D>,
    st: &Statements,
    service: Option<ServiceId>,
    account: Option<&str>,
    limit: i64,
) -> Result<Vec<StoredDecision>, StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(on(D::BACKEND, "reading decisions"))?;
    let mut qb = QueryBuilder::<D>::new(select::<D>());
    qb.push(" WHERE 1 = 1");
    if let Some(id) = service {
        qb.push(" AND service_id = ");
        D::cell(&mut qb, Cell::Int(id.0));
    }
    if let Some(account) = account {
        qb.push(" AND account = ");
        D::cell(&mut qb, Cell::Text(account));
    }
    qb.push(format!(" ORDER BY id DESC LIMIT {limit}"));
    st.tick();
    D::decisions(&mut conn, qb)
        .await
        .map_err(on(D::BACKEND, "reading decisions"))?
        .into_iter()
        .map(StoredDecision::try_from)
        .collect()
}

pub(super) async fn unused_approval<D: Dialect>(
    pool: &Pool<D>,
    st: &Statements,
    account: &str,
) -> Result<Option<i64>, StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(on(D::BACKEND, "reading approvals"))?;
    let mut qb = QueryBuilder::<D>::new(select::<D>());
    qb.push(" WHERE kind = 'approve' AND consumed_at IS NULL AND account = ");
    D::cell(&mut qb, Cell::Text(account));
    qb.push(" ORDER BY id LIMIT 1");
    st.tick();
    let rows = D::decisions(&mut conn, qb)
        .await
        .map_err(on(D::BACKEND, "reading approvals"))?;
    Ok(rows.first().map(|r| r.id))
}
