//! Turning a database URL into a pool. The URL is parsed by sqlx (so `sslmode=` for
//! PostgreSQL and `ssl-mode=` for MySQL work as sqlx documents them) and never
//! leaves this module: errors describe the target as `host:port/database`.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Connection;
use sqlx::mysql::MySqlConnectOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

use super::error::StoreError;
use super::{Backend, Pool};

/// How long a statement waits for a locked SQLite file before giving up. Writers
/// hold the lock for one account's transaction, which is short.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for a pooled connection (also bounds the first connect).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// A pooled connection idle at least this long is pinged before it is handed
/// out (a server restarted or a firewall dropped it between passes). One handed
/// back moments ago is not: within a pass, a ping per acquire was a round trip
/// per account for nothing (about 4% of a steady pass's CPU).
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(5);

/// Pool options shared by every backend: the size, the acquire timeout and the
/// ping of long-idle connections.
fn pool_options<DB: sqlx::Database>(max_connections: u32) -> sqlx::pool::PoolOptions<DB> {
    sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

/// Recognises the backend from the URL scheme.
pub(crate) fn backend_of(url: &str) -> Result<Backend, StoreError> {
    let scheme = url
        .trim_start()
        .split_once(':')
        .map(|(scheme, _)| scheme.to_ascii_lowercase())
        .unwrap_or_default();
    match scheme.as_str() {
        "sqlite" => Ok(Backend::Sqlite),
        "postgres" | "postgresql" => Ok(Backend::Postgres),
        "mysql" | "mariadb" => Ok(Backend::MySql),
        _ => Err(StoreError::InvalidUrl {
            reason: "the scheme must be sqlite:, postgres:, postgresql:, mysql: or mariadb:".into(),
        }),
    }
}

/// Opens a pool after one successful connection, so a wrong URL, an unreachable
/// server or bad credentials fail here, promptly and with the server's reason.
pub(crate) async fn open(url: &str, max_connections: u32) -> Result<Pool, StoreError> {
    let backend = backend_of(url)?;
    let max_connections = max_connections.max(1);
    let invalid = |cause: sqlx::Error| StoreError::InvalidUrl {
        reason: format!("{backend} options: {cause}"),
    };
    let failed = |cause: sqlx::Error| StoreError::Connect {
        backend,
        target: target(backend, url),
        hint: hint(backend, &cause),
        cause,
    };
    match backend {
        Backend::Sqlite => {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(invalid)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // WAL makes NORMAL durable across application crashes; only an OS
                // crash can lose the last transactions, which the next pass redoes.
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
                .foreign_keys(true);
            let pool = pool_options::<sqlx::Sqlite>(max_connections)
                .connect_with(options)
                .await
                .map_err(failed)?;
            Ok(Pool::Sqlite(pool))
        }
        Backend::Postgres => {
            let options = PgConnectOptions::from_str(url).map_err(invalid)?;
            probe::<sqlx::PgConnection>(&options)
                .await
                .map_err(failed)?;
            let pool = pool_options::<sqlx::Postgres>(max_connections)
                .after_connect(|conn, _| Box::pin(no_parallel_workers(conn)))
                .connect_lazy_with(options);
            Ok(Pool::Postgres(pool))
        }
        Backend::MySql => {
            // sqlx reads the scheme-less parts only, so `mariadb://` parses as is.
            let options = MySqlConnectOptions::from_str(url)
                .map_err(invalid)?
                .charset("utf8mb4");
            probe::<sqlx::MySqlConnection>(&options)
                .await
                .map_err(failed)?;
            let pool = pool_options::<sqlx::MySql>(max_connections).connect_lazy_with(options);
            Ok(Pool::MySql(pool))
        }
    }
}

/// calsync's statements each read a handful of rows by index. Where the planner
/// misjudges a join (tables a bulk import filled, not yet analysed), it may plan
/// one with parallel workers: PostgreSQL then starts two worker processes per
/// execution, once per account and pass (measured at 1M services: 200 worker
/// processes a second, the steady pass 70 s instead of 20 s). A session setting,
/// not a startup option, so it also passes through connection poolers that
/// refuse unknown startup parameters.
async fn no_parallel_workers(conn: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    use sqlx::Executor;
    conn.execute("SET max_parallel_workers_per_gather = 0")
        .await?;
    Ok(())
}

/// Opens and closes one connection, failing fast: a pool's first connect retries
/// until its acquire timeout even when the server refused outright, which hides
/// the real error (wrong password, unknown database) behind a timeout.
async fn probe<C: Connection>(options: &C::Options) -> Result<(), sqlx::Error> {
    match tokio::time::timeout(ACQUIRE_TIMEOUT, C::connect_with(options)).await {
        Ok(Ok(conn)) => {
            // Closing politely is a courtesy; the check already succeeded.
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {} s", ACQUIRE_TIMEOUT.as_secs()),
        ))),
    }
}

/// `host:port/database` for servers, the file for SQLite; never credentials.
pub(crate) fn target(backend: Backend, url: &str) -> String {
    if backend == Backend::Sqlite {
        let rest = url.split_once(':').map_or("", |(_, rest)| rest);
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or_default();
        return if path.is_empty() || path == ":memory:" {
            "an in-memory database".into()
        } else {
            path.to_owned()
        };
    }
    let default_port = if backend == Backend::Postgres {
        5432
    } else {
        3306
    };
    match url::Url::parse(url) {
        Ok(parsed) => {
            let host = parsed.host_str().unwrap_or("localhost");
            let port = parsed.port().unwrap_or(default_port);
            let database = parsed.path().trim_start_matches('/');
            format!("{host}:{port}/{database}")
        }
        Err(_) => "the configured server".into(),
    }
}

/// What the operator should check, from the kind of failure.
fn hint(backend: Backend, cause: &sqlx::Error) -> &'static str {
    enum Problem {
        Network,
        Database,
        Credentials,
        Other,
    }
    let problem = match cause {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => Problem::Network,
        sqlx::Error::Tls(_) => Problem::Other,
        sqlx::Error::Database(db) => match (backend, db.code().as_deref()) {
            // invalid_catalog_name / ER_BAD_DB_ERROR
            (Backend::Postgres, Some("3D000")) | (Backend::MySql, Some("42000")) => {
                Problem::Database
            }
            // invalid_password, invalid_authorization_specification / access denied
            (Backend::Postgres, Some("28P01" | "28000")) | (Backend::MySql, Some("28000")) => {
                Problem::Credentials
            }
            _ => Problem::Other,
        },
        _ => Problem::Other,
    };
    match (backend, problem) {
        (Backend::Sqlite, _) => "that the directory exists and calsync may write to it",
        (_, Problem::Network) => {
            "that the server is running and accepts TCP connections at that address (firewall, \
             listen address)"
        }
        (_, Problem::Database) => "that the database exists (calsync does not create databases)",
        (_, Problem::Credentials) => {
            "the user name and password, and that the user may connect from this host"
        }
        (Backend::Postgres, Problem::Other) => {
            "the server log; for TLS problems the sslmode and certificates in the URL"
        }
        (Backend::MySql, Problem::Other) => {
            "the server log; for TLS problems the ssl-mode and certificates in the URL"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_select_the_backend() {
        assert_eq!(backend_of("sqlite://x.db").unwrap(), Backend::Sqlite);
        assert_eq!(backend_of("sqlite::memory:").unwrap(), Backend::Sqlite);
        assert_eq!(backend_of("postgresql://h/db").unwrap(), Backend::Postgres);
        assert_eq!(backend_of("MariaDB://h/db").unwrap(), Backend::MySql);
        let err = backend_of("redis://user:hunter2@h").unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn targets_never_show_credentials() {
        let t = target(
            Backend::Postgres,
            "postgres://app:hunter2@db.internal/calsync?sslmode=require",
        );
        assert_eq!(t, "db.internal:5432/calsync");
        let t = target(Backend::MySql, "mysql://root:pw@127.0.0.1:3307/shop");
        assert_eq!(t, "127.0.0.1:3307/shop");
        assert_eq!(
            target(
                Backend::Sqlite,
                "sqlite:///var/lib/calsync/db.sqlite?mode=rwc"
            ),
            "/var/lib/calsync/db.sqlite"
        );
        assert_eq!(
            target(Backend::Sqlite, "sqlite::memory:"),
            "an in-memory database"
        );
    }
}
