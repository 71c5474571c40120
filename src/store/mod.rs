//! The only module with SQL. It owns the connection pool, the migrations, the
//! schema check of the platform's `services` table, and calsync's own `calsync_*`
//! tables (drift ledger, event type registry, run journal).
//!
//! Contract with the rest of the crate:
//! - a pass reads an account with one [`Store::load_account`] and writes it with one
//!   [`Store::apply`], which runs in a single transaction with batched statements
//!   (a bounded number per account, never one per row);
//! - business columns of existing services are written only through
//!   [`Overwrites`], which cannot be built without an [`OverwriteGrant`];
//! - every status write keeps a row that the platform set to `pending` pending, and
//!   a row is marked synced after a push only if its business columns still hold
//!   the values that were pushed (no lost platform edit).
//!
//! Errors never carry the database URL (it may hold a password).

use chrono::NaiveDateTime;
use serde::Serialize;

use crate::domain::{
    BusinessValues, DriftEntry, EventTypeId, Field, OverwriteGrant, Resolution, Service,
    ServiceId, SyncStatus, TeamId,
};

/// Which SQL dialect a store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

/// Where calsync last saw an event type: which account lists it, and its team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistryEntry {
    pub event_type_id: EventTypeId,
    pub account: String,
    pub team_id: Option<TeamId>,
}

/// A service together with its registry entry (if its event type was ever seen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkedService {
    pub service: Service,
    pub registry: Option<RegistryEntry>,
}

/// What [`Store::load_account`] reads for one account.
#[derive(Debug, Clone, Copy)]
pub struct AccountScope<'a> {
    pub account: &'a str,
    pub company_id: i64,
    /// Every event type id the account's listing returned.
    pub listed: &'a [EventTypeId],
}

/// The account's view of the database at the start of a pass.
#[derive(Debug, Clone, Default)]
pub struct AccountSnapshot {
    /// Services linked to a listed event type (whatever their company), plus linked
    /// services in the account's scope: registered to this account, or never
    /// registered and owned by the account's company. No duplicates.
    pub services: Vec<LinkedService>,
    /// Open drift ledger entries recorded under this account.
    pub open_drift: Vec<DriftEntry>,
}

/// A service to import from Cal.com data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewService {
    pub company_id: i64,
    pub event_type_id: EventTypeId,
    pub values: BusinessValues,
}

/// A sync-metadata-only write: `last_calcom_sync = now`, `sync_error = error`, and
/// `sync_status = status` unless the row is `pending` (then it stays `pending`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataUpdate {
    pub id: ServiceId,
    pub status: SyncStatus,
    pub error: Option<String>,
}

/// Mark a service synced (`sync_status='synced'`, `sync_error=NULL`,
/// `last_calcom_sync=now`) only if its business columns still equal `expected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    pub id: ServiceId,
    pub expected: BusinessValues,
}

/// Copy Cal.com values into a service's business columns, only if they still equal
/// `expected` (and the row is not `pending`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overwrite {
    pub id: ServiceId,
    pub expected: BusinessValues,
    pub new: BusinessValues,
}

/// Business-column writes, carried with the grant that allows them.
#[derive(Debug)]
pub struct Overwrites {
    grant: OverwriteGrant,
    rows: Vec<Overwrite>,
}

impl Overwrites {
    pub fn new(grant: OverwriteGrant, rows: Vec<Overwrite>) -> Self {
        Self { grant, rows }
    }
    pub fn rows(&self) -> &[Overwrite] {
        &self.rows
    }
    pub fn grant(&self) -> &OverwriteGrant {
        &self.grant
    }
}

/// A difference seen in this pass, to be upserted into the open drift ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftObservation {
    pub service_id: ServiceId,
    pub event_type_id: EventTypeId,
    pub field: Field,
    pub platform_value: String,
    pub calcom_value: String,
}

/// An open ledger entry to close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftResolution {
    pub service_id: ServiceId,
    pub field: Field,
    pub resolution: Resolution,
}

/// One line of the run journal (`calsync_runs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunRecord {
    pub account: String,
    pub started_at: NaiveDateTime,
    pub finished_at: NaiveDateTime,
    /// `success` or `failure`.
    pub result: &'static str,
    /// The pass summary as JSON (counts per outcome).
    pub summary: serde_json::Value,
    /// Why the account failed, if it did (never a secret).
    pub error: Option<String>,
}

/// Everything one account's pass writes, applied in one transaction.
#[derive(Debug)]
pub struct AccountWrite {
    pub account: String,
    pub now: NaiveDateTime,
    pub imports: Vec<NewService>,
    pub metadata: Vec<MetadataUpdate>,
    pub confirmations: Vec<Confirmation>,
    pub overwrites: Option<Overwrites>,
    pub drift_upserts: Vec<DriftObservation>,
    pub drift_resolutions: Vec<DriftResolution>,
    pub registry: Vec<RegistryEntry>,
    pub run: Option<RunRecord>,
}

impl AccountWrite {
    pub fn new(account: impl Into<String>, now: NaiveDateTime) -> Self {
        Self {
            account: account.into(),
            now,
            imports: Vec::new(),
            metadata: Vec::new(),
            confirmations: Vec::new(),
            overwrites: None,
            drift_upserts: Vec::new(),
            drift_resolutions: Vec::new(),
            registry: Vec::new(),
            run: None,
        }
    }
}

/// What [`Store::apply`] actually changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyOutcome {
    /// Event types imported by this call (a concurrent pass may have won the others).
    pub imported: Vec<(EventTypeId, ServiceId)>,
    /// Confirmations whose guard held.
    pub confirmed: u64,
    /// Confirmations whose row changed meanwhile (left as they were).
    pub confirmation_conflicts: u64,
    /// Overwrites whose guard held.
    pub overwritten: u64,
}
