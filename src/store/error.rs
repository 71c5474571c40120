//! Store errors: typed where a caller branches (schema, contention, connection),
//! contextual where it only reports. No message ever contains the database URL,
//! since it may carry a password; connection errors name the backend and
//! `host:port/database` instead.

use super::Backend;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The configured URL cannot be used (unknown scheme, unparsable options).
    #[error("database URL is not usable: {reason}")]
    InvalidUrl { reason: String },

    /// The first connection could not be established.
    #[error("cannot connect to {backend} at {target}: {cause}; check {hint}")]
    Connect {
        backend: Backend,
        /// `host:port/database` (PostgreSQL, MySQL) or the file path (SQLite).
        target: String,
        hint: &'static str,
        cause: sqlx::Error,
    },

    /// The server went away or the pool could not hand out a connection in time.
    #[error("{backend} is unavailable while {operation}: {cause}")]
    Unavailable {
        backend: Backend,
        operation: &'static str,
        cause: sqlx::Error,
    },

    /// Applying calsync's migrations failed.
    #[error("migrating calsync tables failed: {cause}")]
    Migrate { cause: sqlx::migrate::MigrateError },

    /// The platform's `services` table lacks columns calsync needs, or has
    /// incompatible types. Lists every problem at once so one fix round suffices.
    #[error("the services table is not usable by calsync: {}", problems.join("; "))]
    IncompatibleSchema { problems: Vec<String> },

    /// A concurrent writer (another pass, the platform) kept conflicting with this
    /// transaction (deadlock, serialization failure, busy database, or a racing
    /// import of the same event type) and retrying did not help.
    #[error("{operation} conflicted with a concurrent writer ({attempts} attempt(s)): {cause}")]
    Contention {
        operation: &'static str,
        attempts: u32,
        cause: sqlx::Error,
    },

    /// A statement failed.
    #[error("{operation} failed: {cause}")]
    Query {
        operation: &'static str,
        cause: sqlx::Error,
    },

    /// A row holds a value calsync cannot represent (e.g. an invalid currency).
    #[error("{table} row {id}: {reason}")]
    InvalidRow {
        table: &'static str,
        id: i64,
        reason: String,
    },
}

impl StoreError {
    /// Stable label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidUrl { .. } => "invalid_url",
            Self::Connect { .. } => "connect",
            Self::Unavailable { .. } => "unavailable",
            Self::Migrate { .. } => "migrate",
            Self::IncompatibleSchema { .. } => "incompatible_schema",
            Self::Contention { .. } => "contention",
            Self::Query { .. } => "query",
            Self::InvalidRow { .. } => "invalid_row",
        }
    }

    /// Whether retrying the whole transaction may succeed.
    pub fn is_contention(&self) -> bool {
        matches!(self, Self::Contention { .. })
    }
}

/// Classifies a driver error raised while `operation` ran.
///
/// Contention (deadlocks, serialization failures, lock timeouts, a busy SQLite
/// file) becomes [`StoreError::Contention`] so [`super::Store::apply`] can retry
/// the transaction; lost connections become [`StoreError::Unavailable`].
pub(crate) fn classify(
    backend: Backend,
    operation: &'static str,
    cause: sqlx::Error,
) -> StoreError {
    if is_contention(backend, &cause) {
        return StoreError::Contention {
            operation,
            attempts: 1,
            cause,
        };
    }
    match cause {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable {
            backend,
            operation,
            cause,
        },
        cause => StoreError::Query { operation, cause },
    }
}

/// `|e| classify(backend, operation, e)`, for `map_err`.
pub(crate) fn on(
    backend: Backend,
    operation: &'static str,
) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |cause| classify(backend, operation, cause)
}

fn is_contention(backend: Backend, cause: &sqlx::Error) -> bool {
    let Some(db) = cause.as_database_error() else {
        return false;
    };
    match backend {
        // serialization_failure, deadlock_detected, lock_not_available
        Backend::Postgres => matches!(db.code().as_deref(), Some("40001" | "40P01" | "55P03")),
        Backend::MySql => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            // 1213 deadlock, 1205 lock wait timeout
            .is_some_and(|e| matches!(e.number(), 1213 | 1205)),
        Backend::Sqlite => db
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            // SQLITE_BUSY and SQLITE_LOCKED, including their extended codes
            .is_some_and(|c| matches!(c & 0xff, 5 | 6)),
    }
}
