//! The only module with SQL. It owns the connection pool, the migrations, the
//! schema check of the platform's `services` table, and calsync's own `calsync_*`
//! tables (drift ledger, event type registry, run journal).
//!
//! Contract with the rest of the crate:
//! - a pass reads an account with one [`Store::load_account`] and writes it with one
//!   [`Store::apply`], which runs in a single transaction with batched statements
//!   (a bounded number per account, never one per row);
//! - business columns of existing services are written only through an
//!   [`Overwrite`], whose values change only with a [`FieldGrant`] for each field
//!   (apart from [`Store::edit_as_platform`], which plays the platform in the demo
//!   and tests);
//! - every status write keeps a row that the platform set to `pending` pending, and
//!   a row is marked synced after a push only if its business columns still hold
//!   the values that were pushed (no lost platform edit).
//!
//! Errors never carry the database URL (it may hold a password).
//!
//! Layout, by concern: [`Store`] (this file) is the API and picks the backend;
//! `services` (the platform's table: loads and the guarded writes), `drift` (the
//! ledger), `baseline`, `registry`, `runs`, `decisions` and `push_state` hold
//! every statement of their concern, each written once; `account` holds the account transaction's
//! statement order, written once; `dialect` is the one mechanism that supplies
//! what really differs between SQLite, PostgreSQL and MySQL (binding, the batched
//! row form, the UPDATE-join and upsert clauses, casts, `BEGIN`); `catalog` holds
//! the catalog queries (which differ entirely); `schema` the embedded migrations
//! and the check of `services`; `batch` deduplicates, sorts and chunks a write;
//! `rows` decodes rows into domain types; `connect` turns the URL into a pool;
//! `lease` the leader lease; `verification` when each account was last verified
//! (what the `calsync_service_status` view shows per service).

mod account;
mod baseline;
mod batch;
mod catalog;
mod connect;
mod decisions;
mod dialect;
mod drift;
mod error;
mod lease;
mod push_state;
mod registry;
mod rows;
mod runs;
mod schema;
mod services;
mod verification;

pub use decisions::{DecisionKind, DecisionRecord, StoredDecision};
pub use error::StoreError;
pub use lease::Lease;
pub use rows::DriftRecord;

use std::fmt;
use std::time::Duration;

use chrono::NaiveDateTime;
use serde::Serialize;
use sqlx::migrate::Migrate;
use sqlx::{MySqlPool, PgPool, SqlitePool};

use crate::domain::{
    Acknowledgement, Baseline, BusinessValues, DriftEntry, EventType, EventTypeId, Field,
    FieldGrant, Origin, PushState, Resolution, Service, ServiceId, SyncStatus, TeamId,
};

use batch::{PreparedWrite, Statements};

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
    /// When Cal.com confirmed the event type is gone (cleared when listed again).
    pub gone_at: Option<NaiveDateTime>,
}

/// A service together with its registry entry (if its event type was ever seen)
/// and the baseline of its current link (if the two sides ever agreed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkedService {
    pub service: Service,
    pub registry: Option<RegistryEntry>,
    #[serde(skip)]
    pub baseline: Option<Baseline>,
    /// The retry state of a failed push, if the last push failed.
    pub push_state: Option<PushState>,
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
/// The plan asks for one only when it changes the row (or when the operator keeps
/// `sync.touch_last_calcom_sync`); "last verified" is kept per account.
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
/// `expected` (a `pending` row stays `pending`). The values to write start as
/// `expected` and change only through [`Overwrite::take`], which needs the
/// [`FieldGrant`] of the field: a business write without the policy's or an
/// operator's grant does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overwrite {
    id: ServiceId,
    expected: BusinessValues,
    new: BusinessValues,
    fields: Vec<Field>,
}

impl Overwrite {
    pub fn new(id: ServiceId, expected: BusinessValues) -> Self {
        Self {
            id,
            new: expected.clone(),
            expected,
            fields: Vec::new(),
        }
    }

    /// Takes the granted field's value from Cal.com's event type.
    pub fn take(&mut self, grant: &FieldGrant, et: &EventType) {
        self.new.take_from(grant.field(), et);
        if !self.fields.contains(&grant.field()) {
            self.fields.push(grant.field());
        }
    }

    pub fn id(&self) -> ServiceId {
        self.id
    }
    pub fn expected(&self) -> &BusinessValues {
        &self.expected
    }
    /// The values written.
    pub fn values(&self) -> &BusinessValues {
        &self.new
    }
    /// The fields granted (and taken from Cal.com).
    pub fn fields(&self) -> &[Field] {
        &self.fields
    }
}

/// A push calsync stopped retrying: `sync_status='error'` (over `pending` too) and
/// `sync_error`, only if the business columns still equal `expected` (a platform
/// edit made meanwhile keeps its `pending`, and its new values are tried).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaveUp {
    pub id: ServiceId,
    pub expected: BusinessValues,
    pub error: String,
}

/// The retry state to keep for a service after a failed push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushStateWrite {
    pub service_id: ServiceId,
    pub state: PushState,
}

/// An acknowledgement set on (or, `None`, removed from) an open ledger entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckWrite {
    pub service_id: ServiceId,
    pub field: Field,
    pub acknowledgement: Option<Acknowledgement>,
}

/// A difference seen in this pass, to be upserted into the open drift ledger: a new
/// entry, or the refresh of the open one (`last_seen_at`, `times_seen + 1`, and the
/// current platform value, origin and baseline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriftObservation {
    pub service_id: ServiceId,
    pub event_type_id: EventTypeId,
    pub field: Field,
    pub origin: Origin,
    pub platform_value: String,
    pub calcom_value: String,
    pub baseline_value: Option<String>,
    /// Recorded as already closed with this resolution (a normalisation, which
    /// needs no decision); `None` for an open entry.
    pub closed: Option<Resolution>,
    /// Recorded before a push, open, with the resolution the push will give it:
    /// if the process dies between the push and the pass's commit, the next pass
    /// closes the entry with this resolution instead of `agreed`. A later
    /// observation without intent clears it.
    pub intent: Option<Resolution>,
}

/// The baseline to store for a service: what both sides agree on now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineWrite {
    /// `None` for a service imported by this write: the store fills in the id it
    /// inserted (and skips the row if another pass won the import).
    pub service_id: Option<ServiceId>,
    pub event_type_id: EventTypeId,
    pub baseline: Baseline,
}

/// Which ledger entries a listing shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftState {
    #[default]
    Open,
    /// Open entries under an unexpired acknowledgement.
    Acknowledged,
    Closed,
    All,
}

impl DriftState {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "open" => Some(Self::Open),
            "acknowledged" => Some(Self::Acknowledged),
            "closed" => Some(Self::Closed),
            "all" => Some(Self::All),
            _ => None,
        }
    }
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
    /// `success`, `partial`, `held` (the guard stopped it) or `failure`.
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
    pub overwrites: Vec<Overwrite>,
    /// With `overwrites`: commit only if every overwrite's guard held (an
    /// operator's adoption changes everything it asked for, or nothing).
    pub all_overwrites_or_nothing: bool,
    /// Open entries whose Cal.com value Cal.com itself replaced: closed before the
    /// upserts, so the newer value opens an entry of its own.
    pub drift_replaced: Vec<DriftResolution>,
    pub drift_upserts: Vec<DriftObservation>,
    pub drift_resolutions: Vec<DriftResolution>,
    pub baselines: Vec<BaselineWrite>,
    pub registry: Vec<RegistryEntry>,
    /// Registered event types Cal.com confirmed are gone (`gone_at = now`).
    pub gone: Vec<EventTypeId>,
    /// Retry states of failed pushes (upserted) and of services whose state ends
    /// (a push succeeded, the platform changed, or an operator pushed).
    pub push_states: Vec<PushStateWrite>,
    pub push_states_cleared: Vec<ServiceId>,
    /// Services whose push needs a human (after the sync metadata).
    pub gave_up: Vec<GaveUp>,
    /// Acknowledgements set or removed on open ledger entries.
    pub acknowledgements: Vec<AckWrite>,
    /// Human decisions to journal in `calsync_decisions`.
    pub decisions: Vec<DecisionRecord>,
    /// The approval (`calsync_decisions.id`) this pass used to pass the guard.
    pub approval_used: Option<i64>,
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
            overwrites: Vec::new(),
            all_overwrites_or_nothing: false,
            drift_replaced: Vec::new(),
            drift_upserts: Vec::new(),
            drift_resolutions: Vec::new(),
            baselines: Vec::new(),
            registry: Vec::new(),
            gone: Vec::new(),
            push_states: Vec::new(),
            push_states_cleared: Vec::new(),
            gave_up: Vec::new(),
            acknowledgements: Vec::new(),
            decisions: Vec::new(),
            approval_used: None,
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
    /// With `all_overwrites_or_nothing`: a guard did not hold, and nothing was
    /// committed.
    pub rolled_back: bool,
    /// Confirmations whose row changed meanwhile (left as they were).
    pub confirmation_conflicts: u64,
    /// Overwrites whose guard held.
    pub overwritten: u64,
    /// Rows of `services` this write inserted or updated (MySQL counts matched
    /// rows); 0 for a steady pass unless `touch_last_calcom_sync` is on.
    pub services_written: u64,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
            Self::MySql => "MySQL/MariaDB",
        })
    }
}

/// Whether [`Store::migrate`] created the platform table or found one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServicesTable {
    /// It did not exist; calsync created it (embedded or test setups).
    Created,
    /// It existed; calsync left it as it was and checked it is compatible.
    Verified,
}

/// What [`Store::migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrateReport {
    pub backend: Backend,
    /// Versions of calsync migrations applied by this call (empty when current).
    pub applied: Vec<i64>,
    pub services: ServicesTable,
}

impl fmt::Display for MigrateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.applied.is_empty() {
            write!(
                f,
                "{}: calsync migrations were already current",
                self.backend
            )?;
        } else {
            let versions: Vec<String> = self.applied.iter().map(i64::to_string).collect();
            write!(
                f,
                "{}: applied calsync migrations {}",
                self.backend,
                versions.join(", ")
            )?;
        }
        match self.services {
            ServicesTable::Created => f.write_str("; created the services table"),
            ServicesTable::Verified => {
                f.write_str("; the existing services table is compatible and was left unchanged")
            }
        }
    }
}

/// A line of the run journal as read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredRun {
    pub id: i64,
    pub account: String,
    pub started_at: NaiveDateTime,
    pub finished_at: NaiveDateTime,
    pub result: String,
    pub summary: serde_json::Value,
    pub error: Option<String>,
}

/// Which services a listing shows (the console's filters). The filters on the
/// state of issue 9's decisions (acknowledged, needs a human) join as variants
/// here, with their condition in `services::listing_filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceShow {
    /// By `sync_status` (unknown status words count as `never`).
    Status(SyncStatus),
    /// With at least one open drift ledger entry.
    Drifted,
    /// Whose event type Cal.com confirmed gone.
    Orphaned,
    /// With an open drift entry under an unexpired acknowledgement.
    Acknowledged,
    /// Whose push calsync stopped retrying (it needs a human).
    NeedsHuman,
}

/// An account whose services a listing shows.
#[derive(Debug, Clone, Copy)]
pub struct AccountRef<'a> {
    pub name: &'a str,
    pub company_id: i64,
}

/// A search by name (case-insensitive substring) or, for a number, by service or
/// event type id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSearch {
    /// `%text%`, lower case, with `!`, `%` and `_` escaped by `!`.
    pattern: String,
    id: Option<i64>,
}

impl ServiceSearch {
    /// `None` for an empty (or blank) search.
    pub fn new(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        let mut pattern = String::with_capacity(text.len() + 2);
        pattern.push('%');
        for c in text.to_lowercase().chars() {
            if matches!(c, '!' | '%' | '_') {
                pattern.push('!');
            }
            pattern.push(c);
        }
        pattern.push('%');
        Some(Self {
            pattern,
            id: text.parse().ok(),
        })
    }
}

/// Where a page of a listing starts (keyset pagination on the service id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PageAt {
    #[default]
    First,
    /// The services after this id.
    After(ServiceId),
    /// The services before this id (the previous page).
    Before(ServiceId),
}

/// A listing request: filters, search, and the page.
#[derive(Debug, Clone)]
pub struct ServiceQuery<'a> {
    pub account: Option<AccountRef<'a>>,
    pub show: Option<ServiceShow>,
    pub search: Option<ServiceSearch>,
    pub at: PageAt,
    /// Services per page (1 to 500).
    pub limit: i64,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct ServicePage {
    /// Ordered by id, each with its number of open drift entries.
    pub services: Vec<(LinkedService, i64)>,
    /// Services matching the filters, on every page.
    pub total: i64,
    pub has_previous: bool,
    pub has_next: bool,
}

/// The connection pool of whichever backend the URL named.
#[derive(Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// Handle to the database; cheap to clone (clones share the pool and the
/// statement counter).
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    statements: Statements,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Deliberately no connect options: they hold the password.
        f.debug_struct("Store")
            .field("backend", &self.backend())
            .field("statements", &self.statements())
            .finish()
    }
}

/// Runs `$f(pool, &statements, args..)` in the backend module matching the pool.
macro_rules! per_backend {
    ($store:expr, $m:ident :: $f:ident ( $($arg:expr),* )) => {
        match &$store.pool {
            Pool::Sqlite(p) => $m::$f::<sqlx::Sqlite>(p, &$store.statements $(, $arg)*).await,
            Pool::Postgres(p) => $m::$f::<sqlx::Postgres>(p, &$store.statements $(, $arg)*).await,
            Pool::MySql(p) => $m::$f::<sqlx::MySql>(p, &$store.statements $(, $arg)*).await,
        }
    };
}

/// Runs `$f(pool, &statements, args..)` in the catalog module of the backend.
macro_rules! per_catalog {
    ($store:expr, $f:ident ( $($arg:expr),* )) => {
        match &$store.pool {
            Pool::Sqlite(p) => catalog::sqlite::$f(p, &$store.statements $(, $arg)*).await,
            Pool::Postgres(p) => catalog::postgres::$f(p, &$store.statements $(, $arg)*).await,
            Pool::MySql(p) => catalog::mysql::$f(p, &$store.statements $(, $arg)*).await,
        }
    };
}

/// Attempts of one [`Store::apply`] transaction before contention is reported.
const APPLY_ATTEMPTS: u32 = 5;

impl Store {
    /// Connects to `url` (`sqlite:`, `postgres:`/`postgresql:`, `mysql:`/`mariadb:`)
    /// and establishes the first connection, so a wrong URL or an unreachable
    /// server fails here with a message naming the backend and `host:port/db`.
    ///
    /// SQLite runs in WAL mode with a busy timeout and foreign keys on, and creates
    /// the file if missing. TLS options in the URL (`sslmode`, `ssl-mode`) apply as
    /// sqlx parses them.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Store, StoreError> {
        let pool = connect::open(url, max_connections).await?;
        Ok(Store {
            pool,
            statements: Statements::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
            Pool::MySql(_) => Backend::MySql,
        }
    }

    /// Statements this store (and its clones) sent, including `BEGIN` and
    /// `COMMIT`; the migrator's own bookkeeping statements are not counted.
    /// A handle on the same pool with its own statement counter, so one account's
    /// pass can count its statements while others run concurrently.
    pub fn counted(&self) -> Store {
        Store {
            pool: self.pool.clone(),
            statements: Statements::default(),
        }
    }

    pub fn statements(&self) -> u64 {
        self.statements.get()
    }

    /// One round trip (`SELECT 1`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        per_backend!(self, services::ping())
    }

    /// Closes the pool; later calls fail with [`StoreError::Unavailable`].
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(p) => p.close().await,
            Pool::Postgres(p) => p.close().await,
            Pool::MySql(p) => p.close().await,
        }
    }

    /// Applies calsync's migrations (recorded in `calsync_migrations`), which
    /// create `services` only where it does not exist, then runs
    /// [`Store::verify_services`] (first, when the table already existed). Idempotent; never alters an existing platform
    /// table.
    pub async fn migrate(&self) -> Result<MigrateReport, StoreError> {
        let existed = self.table_exists("services").await?;
        if existed {
            // Before any migration: the status view (migration 5) reads platform
            // columns, and an incompatible table must be reported as such, every
            // problem at once, not as the view's failure to compile.
            self.verify_services().await?;
        }
        let before = self.applied_versions().await?;
        let migrator = schema::migrator(self.backend());
        let ran = match &self.pool {
            Pool::Sqlite(p) => migrator.run(p).await,
            Pool::Postgres(p) => migrator.run(p).await,
            Pool::MySql(p) => migrator.run(p).await,
        };
        ran.map_err(|cause| StoreError::Migrate { cause })?;
        if let (false, Pool::Sqlite(p)) = (existed, &self.pool) {
            // PostgreSQL and MySQL create this index with the table; SQLite DDL
            // cannot be conditional on the table being new, and a platform's own
            // table never gets an index from calsync. Without it each account's
            // load scans the table (quadratic at a thousand accounts).
            self.statements.tick();
            sqlx::query(
                "CREATE INDEX IF NOT EXISTS services_company_id_index ON services (company_id)",
            )
            .execute(p)
            .await
            .map_err(error::on(Backend::Sqlite, "indexing services by company"))?;
        }
        let after = self.applied_versions().await?;
        self.verify_services().await?;
        Ok(MigrateReport {
            backend: self.backend(),
            applied: after
                .into_iter()
                .map(|(version, _)| version)
                .filter(|v| !before.iter().any(|(b, _)| b == v))
                .collect(),
            services: if existed {
                ServicesTable::Verified
            } else {
                ServicesTable::Created
            },
        })
    }

    /// Checks that `services` has every column calsync reads or writes with a
    /// compatible type, and a unique index on `calcom_event_type_id`. Fails with
    /// one [`StoreError::IncompatibleSchema`] listing every problem.
    pub async fn verify_services(&self) -> Result<(), StoreError> {
        let shape = per_catalog!(self, services_shape())?;
        let problems = schema::check(self.backend(), shape.as_ref());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(StoreError::IncompatibleSchema { problems })
        }
    }

    /// Whether every embedded migration is applied, unchanged.
    pub async fn migrations_current(&self) -> Result<bool, StoreError> {
        let applied = self.applied_versions().await?;
        let migrator = schema::migrator(self.backend());
        Ok(migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .all(|m| {
                applied
                    .iter()
                    .any(|(version, checksum)| *version == m.version && **checksum == *m.checksum)
            }))
    }

    /// Reads one account's view: see [`AccountSnapshot`]. A bounded number of
    /// statements whatever the number of listed ids (PostgreSQL: one array
    /// parameter; MySQL and SQLite: `IN` lists of 1,000 ids).
    pub async fn load_account(
        &self,
        scope: AccountScope<'_>,
    ) -> Result<AccountSnapshot, StoreError> {
        per_backend!(self, services::load_account(scope))
    }

    /// Writes one account's pass in ONE transaction with batched statements (a
    /// handful per kind of write, chunked to stay under placeholder limits):
    ///
    /// - `imports`: inserted unless a service already links the event type
    ///   (`sync_status='synced'`, `composite=false`, timestamps `now`, price
    ///   converted from hundredths in SQL with exact arithmetic); `imported`
    ///   lists only rows this call inserted, so racing passes import once;
    /// - `metadata`: `last_calcom_sync`, `sync_error`, and `sync_status` unless
    ///   the row is `pending` at write time (only rows whose metadata changes, or
    ///   every row with `sync.touch_last_calcom_sync`);
    /// - `confirmations`: synced only where every business column still equals
    ///   `expected` (description NULL = "", currency case-insensitive);
    /// - `overwrites`: the new business values, `sync_status='synced'` (a
    ///   `pending` row stays `pending`), `sync_error=NULL`, `last_calcom_sync` and
    ///   `updated_at` = `now`, only where the row still equals `expected`;
    /// - `drift_upserts` open or refresh entries (`times_seen + 1`), then
    ///   `drift_resolutions` close them (so an edit seen and repaired in one pass
    ///   is kept in the ledger's history with its Cal.com value); `drift_replaced`
    ///   closes entries before the upserts (Cal.com replaced the value they hold);
    /// - `baselines` upserts the agreed values per service (imports get the id
    ///   this call inserted);
    /// - `registry` upserts, `run` appends to the journal and stamps the
    ///   account's `last_verified_at` (`calsync_accounts`).
    ///
    /// Duplicated instructions for one row collapse (last wins; first for imports).
    /// A transaction that loses a deadlock or an import race is retried whole.
    pub async fn apply(&self, write: AccountWrite) -> Result<ApplyOutcome, StoreError> {
        let prepared = PreparedWrite::new(&write);
        let mut attempt = 1;
        loop {
            match per_backend!(self, account::apply(&prepared)) {
                Err(StoreError::Contention {
                    operation, cause, ..
                }) => {
                    if attempt >= APPLY_ATTEMPTS {
                        return Err(StoreError::Contention {
                            operation,
                            attempts: attempt,
                            cause,
                        });
                    }
                    // Back off a little, with jitter so two racers do not collide
                    // again in lockstep.
                    let jitter = rand::random_range(0..20);
                    tokio::time::sleep(Duration::from_millis(u64::from(attempt) * 20 + jitter))
                        .await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// One service with its registry entry.
    pub async fn service(&self, id: ServiceId) -> Result<Option<LinkedService>, StoreError> {
        per_backend!(self, services::service(id))
    }

    /// Open drift entries (of one account, or all), ordered by service id, field.
    pub async fn open_drift(&self, account: Option<&str>) -> Result<Vec<DriftEntry>, StoreError> {
        let query = DriftQuery::State {
            state: DriftState::Open,
            account,
        };
        let rows = per_backend!(self, drift::rows(query))?;
        rows::drift_entries(rows)
    }

    /// Ledger entries in `state` (of one account, or all), with their resolution:
    /// open ones ordered by service id and field, closed ones in the order they
    /// were recorded.
    pub async fn drift_records(
        &self,
        state: DriftState,
        account: Option<&str>,
    ) -> Result<Vec<DriftRecord>, StoreError> {
        let rows = per_backend!(self, drift::rows(DriftQuery::State { state, account }))?;
        // Rows come ordered by id (the order they were recorded).
        let (mut open, closed): (Vec<DriftRecord>, Vec<DriftRecord>) = rows
            .into_iter()
            .map(DriftRecord::try_from)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .partition(|r| r.resolved_at.is_none());
        open.sort_by_key(|r| (r.entry.service_id, r.entry.field));
        if state == DriftState::Acknowledged {
            let now = chrono::Utc::now().naive_utc();
            open.retain(|r| r.entry.acknowledged_at(now));
        }
        open.extend(closed);
        Ok(open)
    }

    /// Journals decisions outside a pass (an approval).
    pub async fn record_decisions(&self, decisions: Vec<DecisionRecord>) -> Result<(), StoreError> {
        let mut w = AccountWrite::new("", chrono::Utc::now().naive_utc());
        w.decisions = decisions;
        self.apply(w).await.map(|_| ())
    }

    /// Decisions, newest first: of one service, of one account, or all.
    pub async fn decisions(
        &self,
        service: Option<ServiceId>,
        account: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StoredDecision>, StoreError> {
        per_backend!(self, decisions::list(service, account, limit.max(0)))
    }

    /// The oldest approval of `account` no pass has used yet.
    pub async fn unused_approval(&self, account: &str) -> Result<Option<i64>, StoreError> {
        per_backend!(self, decisions::unused_approval(account))
    }

    /// When each service was last verified (`calsync_service_status`): the later
    /// of its account's last pass and its own last metadata write.
    pub async fn last_verified(
        &self,
        ids: &[ServiceId],
    ) -> Result<std::collections::HashMap<ServiceId, NaiveDateTime>, StoreError> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let ids: Vec<i64> = ids.iter().map(|i| i.0).collect();
        let rows = per_backend!(self, verification::of_services(&ids))?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, at)| Some((ServiceId(id), at?)))
            .collect())
    }

    /// The result of an account's latest pass in the run journal.
    pub async fn last_result(&self, account: &str) -> Result<Option<String>, StoreError> {
        per_backend!(self, runs::last_result(account))
    }

    /// Open drift entries of one service, ordered by field.
    pub async fn drift_for_service(&self, id: ServiceId) -> Result<Vec<DriftEntry>, StoreError> {
        // 'static: a query with no borrowed parts keeps the future free of
        // unconstrained lifetimes (which trip auto-trait checks of spawned tasks).
        let query: DriftQuery<'static> = DriftQuery::OpenFor(id);
        let rows = per_backend!(self, drift::rows(query))?;
        rows::drift_entries(rows)
    }

    /// Every ledger entry of one service, open and resolved, oldest first.
    pub async fn drift_history(&self, id: ServiceId) -> Result<Vec<DriftRecord>, StoreError> {
        let query: DriftQuery<'static> = DriftQuery::History(id);
        let rows = per_backend!(self, drift::rows(query))?;
        rows.into_iter().map(DriftRecord::try_from).collect()
    }

    /// Services ordered by id, `limit` from `offset` (operator listings).
    pub async fn services_page(
        &self,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<LinkedService>, StoreError> {
        let rows = per_backend!(self, services::page(offset.max(0), limit.max(0)))?;
        rows.into_iter().map(LinkedService::try_from).collect()
    }

    /// One page of services matching `query`, by id (the console's listing).
    /// Walks the primary key from the page's cursor, so a page costs about the
    /// rows it shows at any depth; the total is one `COUNT(*)` with the filters.
    pub async fn services_listing(
        &self,
        query: &ServiceQuery<'_>,
    ) -> Result<ServicePage, StoreError> {
        per_backend!(self, services::listing(query))
    }

    /// Plays the platform's part: changes a service's name and/or duration,
    /// bumps `updated_at` and marks it `pending`, as the platform's own UI does.
    /// Reconciliation never calls this (its business writes need an
    /// [`FieldGrant`]); it exists for the demo and for tests.
    pub async fn edit_as_platform(
        &self,
        id: ServiceId,
        name: Option<&str>,
        duration_minutes: Option<i32>,
    ) -> Result<bool, StoreError> {
        let now = chrono::Utc::now().naive_utc();
        per_backend!(
            self,
            services::edit_as_platform(id, name, duration_minutes, now)
        )
    }

    /// Appends to the run journal outside a pass (an account that failed before
    /// it could apply anything).
    pub async fn record_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        per_backend!(self, runs::record(run))
    }

    /// The latest `limit` journal lines, newest first.
    pub async fn last_runs(&self, limit: i64) -> Result<Vec<StoredRun>, StoreError> {
        per_backend!(self, runs::last(limit.max(0)))
    }

    /// Each account's latest journal line (`failures_only`: its latest failure),
    /// by account name.
    pub async fn latest_runs(&self, failures_only: bool) -> Result<Vec<StoredRun>, StoreError> {
        per_backend!(self, runs::latest_per_account(failures_only))
    }

    /// Services per (company, status) for the given companies, unknown status
    /// words counted as `never`; sorted by company, then status.
    pub async fn status_counts(
        &self,
        company_ids: &[i64],
    ) -> Result<Vec<(i64, SyncStatus, i64)>, StoreError> {
        if company_ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = per_backend!(self, services::status_counts(company_ids))?;
        Ok(rows::status_counts(rows))
    }

    async fn table_exists(&self, name: &'static str) -> Result<bool, StoreError> {
        per_catalog!(self, table_exists(name))
    }

    /// `(version, checksum)` of applied migrations; empty before the first run.
    async fn applied_versions(&self) -> Result<Vec<(i64, Vec<u8>)>, StoreError> {
        if !self.table_exists(schema::MIGRATIONS_TABLE).await? {
            return Ok(Vec::new());
        }
        self.statements.tick();
        let listed = match &self.pool {
            Pool::Sqlite(p) => list_applied(p).await,
            Pool::Postgres(p) => list_applied(p).await,
            Pool::MySql(p) => list_applied(p).await,
        };
        listed.map_err(|cause| StoreError::Migrate { cause })
    }
}

async fn list_applied<DB>(
    pool: &sqlx::Pool<DB>,
) -> Result<Vec<(i64, Vec<u8>)>, sqlx::migrate::MigrateError>
where
    DB: sqlx::Database,
    DB::Connection: Migrate,
{
    let mut conn = pool.acquire().await?;
    let applied = conn
        .list_applied_migrations(schema::MIGRATIONS_TABLE)
        .await?;
    Ok(applied
        .into_iter()
        .map(|m| (m.version, m.checksum.into_owned()))
        .collect())
}

/// Which drift rows a backend reads.
#[derive(Debug, Clone, Copy)]
pub(crate) enum DriftQuery<'a> {
    State {
        state: DriftState,
        account: Option<&'a str>,
    },
    OpenFor(ServiceId),
    History(ServiceId),
}

/// Deduplicates services read by several statements of one load (a listed service
/// may also be in the account's scope) and converts everything.
fn snapshot(
    rows: Vec<rows::ServiceRow>,
    drift: Vec<rows::DriftRow>,
) -> Result<AccountSnapshot, StoreError> {
    let mut seen = std::collections::HashSet::new();
    let mut services = Vec::with_capacity(rows.len());
    for row in rows {
        if seen.insert(row.id) {
            services.push(LinkedService::try_from(row)?);
        }
    }
    services.sort_by_key(|s| s.service.id);
    Ok(AccountSnapshot {
        services,
        open_drift: rows::drift_entries(drift)?,
    })
}
