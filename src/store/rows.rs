//! Row shapes shared by the three backends and their conversion to domain types.
//!
//! Each backend's SELECT casts its columns so that these structs decode the same
//! way everywhere (integers as BIGINT, price as hundredths, booleans with NULL read
//! as false, timestamps as `NaiveDateTime` in UTC). Conversion rejects values the
//! domain cannot represent with [`StoreError::InvalidRow`] naming the row.

use chrono::NaiveDateTime;

use super::error::StoreError;
use super::{LinkedService, RegistryEntry, StoredRun};
use crate::domain::{
    Acknowledgement, Baseline, BusinessValues, Currency, DriftEntry, EventTypeId, Field, Money,
    Origin, PushState, Resolution, Service, ServiceId, SyncStatus, TeamId,
};

/// A `services` row joined with its registry entry (`reg_*`, NULL when absent).
/// Read by position (a pass reads one per service; see [`by_position`]).
#[derive(Debug)]
pub(crate) struct ServiceRow {
    pub id: i64,
    pub company_id: i64,
    pub branch_id: Option<i64>,
    pub name: String,
    pub description: Option<String>,
    pub duration_minutes: i64,
    pub cents: i64,
    pub currency: String,
    pub is_active: bool,
    pub is_online: bool,
    pub composite: bool,
    pub calcom_event_type_id: Option<i64>,
    pub sync_status: Option<String>,
    pub last_calcom_sync: Option<Stamp>,
    pub sync_error: Option<String>,
    pub updated_at: Option<Stamp>,
    pub reg_event_type_id: Option<i64>,
    pub reg_account: Option<String>,
    pub reg_team_id: Option<i64>,
    pub reg_gone_at: Option<Stamp>,
    /// `calsync_baseline.agreed` of the service's current link, if any.
    pub baseline: Option<String>,
    pub baseline_at: Option<Stamp>,
    /// `calsync_push_state` of the service, if its last push failed.
    pub push_values_key: Option<String>,
    pub push_attempts: Option<i64>,
    pub push_next_attempt_at: Option<Stamp>,
    pub push_needs_human: bool,
    pub push_last_error: Option<String>,
}

/// A timestamp of a [`ServiceRow`], selected with [`Dialect::stamp`]: a
/// `NaiveDateTime` on PostgreSQL and SQLite, microseconds since the Unix epoch
/// on MySQL (same value, read without sqlx's per-value cost there).
///
/// [`Dialect::stamp`]: super::dialect::Dialect::stamp
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp(NaiveDateTime);

impl Stamp {
    pub(crate) fn get(self) -> NaiveDateTime {
        self.0
    }
}

/// [`Stamp`] as the backend's own timestamp type.
macro_rules! stamp_as_datetime {
    ($db:ty) => {
        impl sqlx::Type<$db> for Stamp {
            fn type_info() -> <$db as sqlx::Database>::TypeInfo {
                <NaiveDateTime as sqlx::Type<$db>>::type_info()
            }
            fn compatible(ty: &<$db as sqlx::Database>::TypeInfo) -> bool {
                <NaiveDateTime as sqlx::Type<$db>>::compatible(ty)
            }
        }
        impl<'r> sqlx::Decode<'r, $db> for Stamp {
            fn decode(
                value: <$db as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                <NaiveDateTime as sqlx::Decode<'r, $db>>::decode(value).map(Stamp)
            }
        }
    };
}
stamp_as_datetime!(sqlx::Postgres);
stamp_as_datetime!(sqlx::Sqlite);

impl sqlx::Type<sqlx::MySql> for Stamp {
    fn type_info() -> sqlx::mysql::MySqlTypeInfo {
        <i64 as sqlx::Type<sqlx::MySql>>::type_info()
    }
    fn compatible(ty: &sqlx::mysql::MySqlTypeInfo) -> bool {
        <i64 as sqlx::Type<sqlx::MySql>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::MySql> for Stamp {
    fn decode(value: sqlx::mysql::MySqlValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let micros = <i64 as sqlx::Decode<'r, sqlx::MySql>>::decode(value)?;
        chrono::DateTime::from_timestamp_micros(micros)
            .map(|t| Stamp(t.naive_utc()))
            .ok_or_else(|| format!("{micros} µs after 1970 is out of range").into())
    }
}

/// Decodes the struct's fields from the row's columns in declaration order,
/// without looking each column up by name. Debug builds check every column's
/// name against its field, so a SELECT out of step with the struct fails the
/// tests instead of reading one column as another.
macro_rules! by_position {
    ($row:expr, $ty:ident { $($field:ident),* $(,)? }) => {{
        let row = $row;
        let mut at = 0usize;
        $ty {
            $($field: {
                let value = column(row, at, stringify!($field))?;
                at += 1;
                value
            },)*
        }
    }};
}

fn column<'r, R, T>(row: &'r R, at: usize, name: &str) -> Result<T, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    debug_assert_eq!(
        sqlx::Column::name(&row.columns()[at]),
        name,
        "column {at} of the SELECT is not the field it is read into"
    );
    row.try_get(at)
}

impl<'r, R> sqlx::FromRow<'r, R> for ServiceRow
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Option<Stamp>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    // The macro's counter steps once past the last column.
    #[allow(unused_assignments)]
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        let service = by_position!(
            row,
            ServiceRow {
                id,
                company_id,
                branch_id,
                name,
                description,
                duration_minutes,
                cents,
                currency,
                is_active,
                is_online,
                composite,
                calcom_event_type_id,
                sync_status,
                last_calcom_sync,
                sync_error,
                updated_at,
                reg_event_type_id,
                reg_account,
                reg_team_id,
                reg_gone_at,
                baseline,
                baseline_at,
                push_values_key,
                push_attempts,
                push_next_attempt_at,
                push_needs_human,
                push_last_error,
            }
        );
        Ok(service)
    }
}

impl TryFrom<ServiceRow> for LinkedService {
    type Error = StoreError;

    fn try_from(row: ServiceRow) -> Result<Self, StoreError> {
        let invalid = |reason: String| StoreError::InvalidRow {
            table: "services",
            id: row.id,
            reason,
        };
        let currency = Currency::parse(&row.currency).ok_or_else(|| {
            invalid(format!(
                "currency {:?} is not an ISO 4217 code",
                row.currency
            ))
        })?;
        let duration_minutes = i32::try_from(row.duration_minutes).map_err(|_| {
            invalid(format!(
                "duration_minutes {} is out of range",
                row.duration_minutes
            ))
        })?;
        let registry = match (row.reg_event_type_id, row.reg_account) {
            (Some(id), Some(account)) => Some(RegistryEntry {
                event_type_id: EventTypeId(id),
                account,
                team_id: row.reg_team_id.map(TeamId),
                gone_at: row.reg_gone_at.map(Stamp::get),
            }),
            _ => None,
        };
        let service = Service {
            id: ServiceId(row.id),
            company_id: row.company_id,
            branch_id: row.branch_id,
            values: BusinessValues {
                name: row.name,
                // NULL and "" both mean "not managed by the platform".
                description: row.description.filter(|d| !d.is_empty()),
                duration_minutes,
                is_active: row.is_active,
                is_online: row.is_online,
                price: Money::new(row.cents, currency),
            },
            composite: row.composite,
            calcom_event_type_id: row.calcom_event_type_id.map(EventTypeId),
            // A status word the platform invented later must not fail a pass.
            sync_status: row
                .sync_status
                .as_deref()
                .and_then(SyncStatus::parse)
                .unwrap_or(SyncStatus::Never),
            last_calcom_sync: row.last_calcom_sync.map(Stamp::get),
            sync_error: row.sync_error,
            updated_at: row.updated_at.map(Stamp::get),
        };
        // An unreadable baseline (edited by hand?) must not fail the account: the
        // service is then reconciled two-way until the sides agree again.
        let baseline = row
            .baseline
            .as_deref()
            .and_then(|json| Baseline::from_json(json, row.baseline_at.map(Stamp::get)).ok());
        let push_state = match (
            row.push_values_key,
            row.push_next_attempt_at.map(Stamp::get),
        ) {
            (Some(values_key), Some(next_attempt_at)) => Some(PushState {
                values_key,
                attempts: u32::try_from(row.push_attempts.unwrap_or(1)).unwrap_or(u32::MAX),
                next_attempt_at,
                needs_human: row.push_needs_human,
                last_error: row.push_last_error.unwrap_or_default(),
            }),
            _ => None,
        };
        Ok(LinkedService {
            service,
            registry,
            baseline,
            push_state,
        })
    }
}

/// A `calsync_drift` row.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct DriftRow {
    pub id: i64,
    pub service_id: i64,
    pub calcom_event_type_id: i64,
    pub account: String,
    pub field: String,
    pub origin: String,
    pub platform_value: String,
    pub calcom_value: String,
    pub baseline_value: Option<String>,
    pub first_seen_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub times_seen: i64,
    pub resolved_at: Option<NaiveDateTime>,
    pub resolution: Option<String>,
    pub acknowledged_until: Option<NaiveDateTime>,
    pub acknowledged_note: Option<String>,
    pub acknowledged_by: Option<String>,
}

/// A drift ledger entry with its resolution, if it was closed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DriftRecord {
    pub entry: DriftEntry,
    pub resolved_at: Option<NaiveDateTime>,
    pub resolution: Option<Resolution>,
}

impl TryFrom<DriftRow> for DriftRecord {
    type Error = StoreError;

    fn try_from(row: DriftRow) -> Result<Self, StoreError> {
        let field = Field::parse(&row.field).ok_or_else(|| StoreError::InvalidRow {
            table: "calsync_drift",
            id: row.id,
            reason: format!("unknown field {:?}", row.field),
        })?;
        let resolution = match row.resolution.as_deref() {
            None => None,
            Some(word) => Some(
                Resolution::parse(word).ok_or_else(|| StoreError::InvalidRow {
                    table: "calsync_drift",
                    id: row.id,
                    reason: format!("unknown resolution {word:?}"),
                })?,
            ),
        };
        let origin = Origin::parse(&row.origin).ok_or_else(|| StoreError::InvalidRow {
            table: "calsync_drift",
            id: row.id,
            reason: format!("unknown origin {:?}", row.origin),
        })?;
        Ok(DriftRecord {
            entry: DriftEntry {
                service_id: ServiceId(row.service_id),
                calcom_event_type_id: EventTypeId(row.calcom_event_type_id),
                account: row.account,
                field,
                origin,
                platform_value: row.platform_value,
                calcom_value: row.calcom_value,
                baseline_value: row.baseline_value,
                first_seen_at: row.first_seen_at,
                last_seen_at: row.last_seen_at,
                times_seen: row.times_seen,
                acknowledged: row.acknowledged_until.map(|until| Acknowledgement {
                    until,
                    note: row.acknowledged_note.unwrap_or_default(),
                    by: row.acknowledged_by.unwrap_or_default(),
                }),
            },
            resolved_at: row.resolved_at,
            resolution,
        })
    }
}

/// A `calsync_runs` row; `summary` is JSON text on every backend.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RunRow {
    pub id: i64,
    pub account: String,
    pub started_at: NaiveDateTime,
    pub finished_at: NaiveDateTime,
    pub result: String,
    pub summary: String,
    pub error: Option<String>,
}

impl From<RunRow> for StoredRun {
    fn from(row: RunRow) -> Self {
        StoredRun {
            id: row.id,
            account: row.account,
            started_at: row.started_at,
            finished_at: row.finished_at,
            result: row.result,
            // calsync wrote it; should someone edit it by hand, keep the text.
            summary: serde_json::from_str(&row.summary)
                .unwrap_or(serde_json::Value::String(row.summary)),
            error: row.error,
        }
    }
}

/// Converts drift rows, sorted by service id then field (the domain order, so
/// every backend returns the same sequence whatever its collation).
pub(crate) fn drift_entries(rows: Vec<DriftRow>) -> Result<Vec<DriftEntry>, StoreError> {
    let mut out = rows
        .into_iter()
        .map(|r| DriftRecord::try_from(r).map(|d| d.entry))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by_key(|d| (d.service_id, d.field));
    Ok(out)
}

/// Folds `(company, status word, count)` rows into domain statuses (unknown words
/// count as `never`), sorted by company then status.
pub(crate) fn status_counts(rows: Vec<(i64, Option<String>, i64)>) -> Vec<(i64, SyncStatus, i64)> {
    let mut out: Vec<(i64, SyncStatus, i64)> = Vec::new();
    for (company, word, count) in rows {
        let status = word
            .as_deref()
            .and_then(SyncStatus::parse)
            .unwrap_or(SyncStatus::Never);
        match out
            .iter_mut()
            .find(|(c, s, _)| *c == company && *s == status)
        {
            Some(entry) => entry.2 += count,
            None => out.push((company, status, count)),
        }
    }
    let rank = |s: SyncStatus| SyncStatus::ALL.iter().position(|x| *x == s);
    out.sort_by_key(|(c, s, _)| (*c, rank(*s)));
    out
}
