//! Fresh databases per test, on every backend, plus raw SQL helpers.
//!
//! - [`fresh`] creates a uniquely named database (PostgreSQL, MariaDB) or a temp
//!   file (SQLite), connects a [`Store`] to it and migrates it; [`empty`] does the
//!   same without migrating (for tests that bring their own `services` table).
//!   The database is dropped when the [`TestDb`] is dropped (best effort).
//! - Servers: PostgreSQL at `postgres://postgres@127.0.0.1:5432/test` and MariaDB
//!   at `mysql://root@127.0.0.1:3306/test` (admin connections), overridable with
//!   `CALSYNC_TEST_POSTGRES_URL` / `CALSYNC_TEST_MARIADB_URL`. An unreachable
//!   server fails the test with a message saying so; nothing is ever skipped.
//! - [`backend_tests!`] turns one scenario into one test per backend:
//!
//! ```ignore
//! use crate::support::db::{backend_tests, PlatformService, TestBackend};
//!
//! // `db` is a migrated `TestDb`; generates
//! // `imports_are_inserted_once::{sqlite, postgres, mariadb}`.
//! backend_tests!(imports_are_inserted_once, |db| async move {
//!     let id = db.insert_service(&PlatformService::new(1, "Cut").event_type(7)).await;
//!     assert_eq!(db.raw_service(id).await.name, "Cut");
//! });
//!
//! // Or receive the backend and build the database yourself.
//! backend_tests!(migrate_creates_services, |backend: TestBackend| async move {
//!     let db = empty(backend).await;
//!     db.store.migrate().await.unwrap();
//! });
//! ```
//!
//! Test names carry the backend as the last path segment, so
//! `cargo test postgres` runs every PostgreSQL scenario and
//! `cargo test imports_are_inserted_once` runs one scenario on all backends.

use std::fmt;

use calsync::domain::ServiceId;
use calsync::store::Store;
use chrono::NaiveDateTime;
use sqlx::{Connection, MySqlPool, PgPool, SqlitePool};

const POSTGRES_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
const MARIADB_ADMIN: &str = "mysql://root@127.0.0.1:3306/test";

/// The database servers every scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestBackend {
    Sqlite,
    Postgres,
    MariaDb,
}

impl TestBackend {
    pub const ALL: [TestBackend; 3] = [Self::Sqlite, Self::Postgres, Self::MariaDb];
}

impl fmt::Display for TestBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::MariaDb => "mariadb",
        })
    }
}

/// One test's private database.
pub struct TestDb {
    pub backend: TestBackend,
    /// URL of the test database (no password; pass it to `Store::connect` or to an
    /// app config).
    pub url: String,
    /// A store connected to it (migrated when made by [`fresh`]).
    pub store: Store,
    raw: RawPool,
    // Last field: dropped after the pools above.
    _cleanup: Cleanup,
}

/// A migrated database of its own for one test.
pub async fn fresh(backend: TestBackend) -> TestDb {
    let db = empty(backend).await;
    db.store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("migrating the {backend} test database failed: {e}"));
    db
}

/// A database of its own for one test, without calsync's migrations.
pub async fn empty(backend: TestBackend) -> TestDb {
    let (url, cleanup) = match backend {
        TestBackend::Sqlite => {
            let dir = tempfile::tempdir().expect("creating a temp dir for SQLite");
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("calsync.db").display()
            );
            (url, Cleanup::File { _dir: dir })
        }
        TestBackend::Postgres | TestBackend::MariaDb => create_database(backend).await,
    };
    let store = Store::connect(&url, 4)
        .await
        .unwrap_or_else(|e| panic!("connecting the store to the {backend} test database: {e}"));
    let raw = match backend {
        TestBackend::Sqlite => {
            RawPool::Sqlite(SqlitePool::connect(&url).await.expect("raw SQLite pool"))
        }
        TestBackend::Postgres => {
            RawPool::Postgres(PgPool::connect(&url).await.expect("raw PostgreSQL pool"))
        }
        TestBackend::MariaDb => {
            RawPool::MySql(MySqlPool::connect(&url).await.expect("raw MariaDB pool"))
        }
    };
    TestDb {
        backend,
        url,
        store,
        raw,
        _cleanup: cleanup,
    }
}

/// The admin connection URL of a database server (see the module docs).
pub fn admin_url(backend: TestBackend) -> String {
    let (var, default) = match backend {
        TestBackend::Postgres => ("CALSYNC_TEST_POSTGRES_URL", POSTGRES_ADMIN),
        TestBackend::MariaDb => ("CALSYNC_TEST_MARIADB_URL", MARIADB_ADMIN),
        TestBackend::Sqlite => unreachable!("SQLite needs no server"),
    };
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// Creates `calsync_t_<random>` on the backend's server; returns its URL.
async fn create_database(backend: TestBackend) -> (String, Cleanup) {
    let admin = admin_url(backend);
    let name = format!("calsync_t_{:016x}", rand::random::<u64>());
    match backend {
        TestBackend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| unreachable(backend, &admin, e));
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                .execute(&mut conn)
                .await
                .expect("CREATE DATABASE on PostgreSQL");
            let _ = conn.close().await;
        }
        TestBackend::MariaDb => {
            let mut conn = sqlx::MySqlConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| unreachable(backend, &admin, e));
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE on MariaDB");
            let _ = conn.close().await;
        }
        TestBackend::Sqlite => unreachable!("SQLite databases are files"),
    }
    let mut url = url::Url::parse(&admin).expect("test server URL");
    url.set_path(&format!("/{name}"));
    (
        url.to_string(),
        Cleanup::Server {
            backend,
            admin,
            name,
        },
    )
}

fn unreachable(backend: TestBackend, admin: &str, e: sqlx::Error) -> ! {
    let server = url::Url::parse(admin)
        .map(|u| format!("{}:{}", u.host_str().unwrap_or("?"), u.port().unwrap_or(0)))
        .unwrap_or_default();
    panic!(
        "the {backend} test server at {server} is unreachable ({e}). Start it, or point \
         CALSYNC_TEST_{}_URL at one; backend tests never skip.",
        backend.to_string().to_uppercase()
    )
}

/// Drops the test database when the [`TestDb`] goes away.
enum Cleanup {
    /// The directory holding the SQLite file; removed when dropped.
    File { _dir: tempfile::TempDir },
    Server {
        backend: TestBackend,
        admin: String,
        name: String,
    },
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Cleanup::Server {
            backend,
            admin,
            name,
        } = self
        else {
            // The TempDir removes the SQLite files itself.
            return;
        };
        let (backend, admin, name) = (*backend, admin.clone(), name.clone());
        // Drop runs inside the test's runtime, which cannot be blocked on; a
        // short-lived runtime on its own thread does the asynchronous cleanup.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                match backend {
                    TestBackend::Postgres => {
                        if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                            let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                            let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                                .execute(&mut conn)
                                .await;
                        }
                    }
                    TestBackend::MariaDb => {
                        if let Ok(mut conn) = sqlx::MySqlConnection::connect(&admin).await {
                            let sql = format!("DROP DATABASE IF EXISTS `{name}`");
                            let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                                .execute(&mut conn)
                                .await;
                        }
                    }
                    TestBackend::Sqlite => {}
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// A raw pool next to the store, so tests can act as the platform and inspect
/// columns without going through the code under test.
enum RawPool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

async fn hold_open<DB>(
    pool: &sqlx::Pool<DB>,
    sql: sqlx::AssertSqlSafe<String>,
    hold: std::time::Duration,
) -> Result<(), sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    <DB as sqlx::Database>::Arguments: sqlx::IntoArguments<DB>,
{
    let mut tx = pool.begin().await?;
    sqlx::query(sql).execute(&mut *tx).await?;
    tokio::time::sleep(hold).await;
    tx.commit().await
}

/// A `services` row as the platform would insert it.
#[derive(Debug, Clone)]
pub struct PlatformService {
    pub company_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub duration_minutes: i32,
    /// Hundredths of the major unit (`4500` = 45.00).
    pub price_cents: i64,
    pub currency: String,
    pub is_active: bool,
    pub is_online: bool,
    pub event_type: Option<i64>,
    pub sync_status: String,
}

impl PlatformService {
    /// Active, online, 30 minutes, free (EUR), unlinked, `never` synced.
    pub fn new(company_id: i64, name: &str) -> Self {
        Self {
            company_id,
            name: name.to_owned(),
            description: None,
            duration_minutes: 30,
            price_cents: 0,
            currency: "EUR".into(),
            is_active: true,
            is_online: true,
            event_type: None,
            sync_status: "never".into(),
        }
    }
    pub fn description(mut self, text: &str) -> Self {
        self.description = Some(text.to_owned());
        self
    }
    pub fn duration(mut self, minutes: i32) -> Self {
        self.duration_minutes = minutes;
        self
    }
    pub fn price(mut self, cents: i64, currency: &str) -> Self {
        self.price_cents = cents;
        self.currency = currency.to_owned();
        self
    }
    pub fn active(mut self, active: bool) -> Self {
        self.is_active = active;
        self
    }
    pub fn online(mut self, online: bool) -> Self {
        self.is_online = online;
        self
    }
    pub fn event_type(mut self, id: i64) -> Self {
        self.event_type = Some(id);
        self
    }
    pub fn status(mut self, status: &str) -> Self {
        self.sync_status = status.to_owned();
        self
    }
}

/// A `services` row read with plain SQL. `price` is the exact decimal text
/// (`"45.00"`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RawService {
    pub id: i64,
    pub company_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub duration_minutes: i64,
    pub price: String,
    pub currency: String,
    pub is_active: bool,
    pub is_online: bool,
    pub composite: bool,
    pub calcom_event_type_id: Option<i64>,
    pub sync_status: String,
    pub sync_error: Option<String>,
    pub last_calcom_sync: Option<NaiveDateTime>,
    pub created_at: Option<NaiveDateTime>,
    pub updated_at: Option<NaiveDateTime>,
}

/// A row of the `calsync_service_status` view read with plain SQL.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RawServiceStatus {
    pub service_id: i64,
    pub calcom_event_type_id: Option<i64>,
    pub account: Option<String>,
    pub sync_status: String,
    pub last_verified_at: Option<NaiveDateTime>,
    pub open_drift_fields: Option<String>,
}

/// The platform-owned business columns of a [`RawService`].
pub type Business = (String, Option<String>, i64, String, String, bool, bool);

impl RawService {
    pub fn business(&self) -> Business {
        (
            self.name.clone(),
            self.description.clone(),
            self.duration_minutes,
            self.price.clone(),
            self.currency.clone(),
            self.is_active,
            self.is_online,
        )
    }
}

const RAW_SELECT_SQLITE: &str = "SELECT id, company_id, name, description, \
    CAST(duration_minutes AS INTEGER) AS duration_minutes, printf('%.2f', price) AS price, \
    currency, is_active, is_online, composite, calcom_event_type_id, sync_status, sync_error, \
    last_calcom_sync, created_at, updated_at FROM services";
const RAW_SELECT_POSTGRES: &str = "SELECT id::int8 AS id, company_id::int8 AS company_id, \
    name::text AS name, description, duration_minutes::int8 AS duration_minutes, \
    price::text AS price, currency::text AS currency, is_active, is_online, composite, \
    calcom_event_type_id::int8 AS calcom_event_type_id, sync_status::text AS sync_status, \
    sync_error, last_calcom_sync::timestamp AS last_calcom_sync, \
    created_at::timestamp AS created_at, updated_at::timestamp AS updated_at FROM services";
const RAW_SELECT_MYSQL: &str = "SELECT CAST(id AS SIGNED) AS id, \
    CAST(company_id AS SIGNED) AS company_id, name, description, \
    CAST(duration_minutes AS SIGNED) AS duration_minutes, CAST(price AS CHAR) AS price, \
    CAST(currency AS CHAR) AS currency, is_active, is_online, composite, \
    CAST(calcom_event_type_id AS SIGNED) AS calcom_event_type_id, \
    CAST(sync_status AS CHAR) AS sync_status, sync_error, \
    CAST(last_calcom_sync AS DATETIME(6)) AS last_calcom_sync, \
    CAST(created_at AS DATETIME(6)) AS created_at, CAST(updated_at AS DATETIME(6)) AS updated_at \
    FROM services";

impl TestDb {
    /// Inserts a service the way the platform does; returns its id.
    pub async fn insert_service(&self, s: &PlatformService) -> ServiceId {
        const COLUMNS: &str = "INSERT INTO services (company_id, name, description, \
            duration_minutes, price, currency, is_active, is_online, calcom_event_type_id, \
            sync_status) VALUES ";
        let id = match &self.raw {
            RawPool::Sqlite(p) => sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
                "{COLUMNS}(?, ?, ?, ?, ? / 100.0, ?, ?, ?, ?, ?) RETURNING id"
            )))
            .bind(s.company_id)
            .bind(&s.name)
            .bind(&s.description)
            .bind(s.duration_minutes)
            .bind(s.price_cents)
            .bind(&s.currency)
            .bind(s.is_active)
            .bind(s.is_online)
            .bind(s.event_type)
            .bind(&s.sync_status)
            .fetch_one(p)
            .await
            .expect("inserting a platform service"),
            RawPool::Postgres(p) => sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
                "{COLUMNS}($1, $2, $3, $4, $5::numeric / 100, $6, $7, $8, $9, $10) RETURNING id::int8"
            )))
            .bind(s.company_id)
            .bind(&s.name)
            .bind(&s.description)
            .bind(s.duration_minutes)
            .bind(s.price_cents)
            .bind(&s.currency)
            .bind(s.is_active)
            .bind(s.is_online)
            .bind(s.event_type)
            .bind(&s.sync_status)
            .fetch_one(p)
            .await
            .expect("inserting a platform service"),
            RawPool::MySql(p) => {
                let done = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{COLUMNS}(?, ?, ?, ?, CAST(? AS DECIMAL(20, 0)) / 100, ?, ?, ?, ?, ?)"
                )))
                .bind(s.company_id)
                .bind(&s.name)
                .bind(&s.description)
                .bind(s.duration_minutes)
                .bind(s.price_cents)
                .bind(&s.currency)
                .bind(s.is_active)
                .bind(s.is_online)
                .bind(s.event_type)
                .bind(&s.sync_status)
                .execute(p)
                .await
                .expect("inserting a platform service");
                done.last_insert_id() as i64
            }
        };
        ServiceId(id)
    }

    /// Reads a service with plain SQL; panics if it does not exist.
    pub async fn raw_service(&self, id: ServiceId) -> RawService {
        self.raw_services()
            .await
            .into_iter()
            .find(|s| s.id == id.0)
            .unwrap_or_else(|| panic!("service {} does not exist", id.0))
    }

    /// Every service, by id, read with plain SQL.
    pub async fn raw_services(&self) -> Vec<RawService> {
        match &self.raw {
            RawPool::Sqlite(p) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{RAW_SELECT_SQLITE} ORDER BY id"
                )))
                .fetch_all(p)
                .await
            }
            RawPool::Postgres(p) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{RAW_SELECT_POSTGRES} ORDER BY id"
                )))
                .fetch_all(p)
                .await
            }
            RawPool::MySql(p) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{RAW_SELECT_MYSQL} ORDER BY id"
                )))
                .fetch_all(p)
                .await
            }
        }
        .expect("reading services")
    }

    /// Runs one statement as the platform (or an operator) would; returns the
    /// number of affected rows. Keep the SQL portable or branch on `self.backend`.
    pub async fn exec(&self, sql: &str) -> u64 {
        let text = sqlx::AssertSqlSafe(sql.to_owned());
        match &self.raw {
            RawPool::Sqlite(p) => sqlx::query(text)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
            RawPool::Postgres(p) => sqlx::query(text)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
            RawPool::MySql(p) => sqlx::query(text)
                .execute(p)
                .await
                .map(|r| r.rows_affected()),
        }
        .unwrap_or_else(|e| panic!("{sql:?} failed on {}: {e}", self.backend))
    }

    /// Runs one statement in a transaction that stays open for `hold` before it
    /// commits, to make a concurrent writer wait on (and then lose to) it.
    pub async fn exec_held(&self, sql: &str, hold: std::time::Duration) {
        let text = sqlx::AssertSqlSafe(sql.to_owned());
        let done = match &self.raw {
            RawPool::Sqlite(p) => hold_open(p, text, hold).await,
            RawPool::Postgres(p) => hold_open(p, text, hold).await,
            RawPool::MySql(p) => hold_open(p, text, hold).await,
        };
        done.unwrap_or_else(|e| panic!("{sql:?} failed on {}: {e}", self.backend));
    }

    /// Runs several `;`-separated statements (DDL scripts); no bind parameters.
    pub async fn exec_script(&self, sql: &str) {
        use sqlx::Executor;
        let script = sqlx::AssertSqlSafe(sql.to_owned());
        match &self.raw {
            RawPool::Sqlite(p) => p.execute(script).await.map(drop),
            RawPool::Postgres(p) => p.execute(script).await.map(drop),
            RawPool::MySql(p) => p.execute(script).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("script failed on {}: {e}", self.backend))
    }

    /// Every row of the `calsync_service_status` view, by service id, read with
    /// plain SQL as the platform's UI would.
    pub async fn service_status(&self) -> Vec<RawServiceStatus> {
        let text = |sql: &str| sqlx::AssertSqlSafe(sql.to_owned());
        match &self.raw {
            RawPool::Sqlite(p) => {
                sqlx::query_as(text(
                    "SELECT service_id, calcom_event_type_id, account, sync_status, \
                     last_verified_at, open_drift_fields FROM calsync_service_status \
                     ORDER BY service_id",
                ))
                .fetch_all(p)
                .await
            }
            RawPool::Postgres(p) => {
                sqlx::query_as(text(
                    "SELECT service_id::int8 AS service_id, \
                     calcom_event_type_id::int8 AS calcom_event_type_id, account::text AS account, \
                     sync_status::text AS sync_status, \
                     last_verified_at::timestamp AS last_verified_at, \
                     open_drift_fields::text AS open_drift_fields \
                     FROM calsync_service_status ORDER BY service_id",
                ))
                .fetch_all(p)
                .await
            }
            RawPool::MySql(p) => {
                sqlx::query_as(text(
                    "SELECT CAST(service_id AS SIGNED) AS service_id, \
                     CAST(calcom_event_type_id AS SIGNED) AS calcom_event_type_id, \
                     CAST(account AS CHAR) AS account, CAST(sync_status AS CHAR) AS sync_status, \
                     CAST(last_verified_at AS DATETIME(6)) AS last_verified_at, \
                     CAST(open_drift_fields AS CHAR) AS open_drift_fields \
                     FROM calsync_service_status ORDER BY service_id",
                ))
                .fetch_all(p)
                .await
            }
        }
        .unwrap_or_else(|e| panic!("reading calsync_service_status on {}: {e}", self.backend))
    }

    /// A single integer, e.g. `SELECT COUNT(*) FROM services`.
    pub async fn count(&self, sql: &str) -> i64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match &self.raw {
            RawPool::Sqlite(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
            RawPool::Postgres(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
            RawPool::MySql(p) => sqlx::query_scalar::<_, i64>(sql).fetch_one(p).await,
        }
        .unwrap_or_else(|e| panic!("count failed on {}: {e}", self.backend))
    }

    /// The database's name on its server (PostgreSQL, MariaDB).
    pub fn name(&self) -> String {
        url::Url::parse(&self.url)
            .expect("test database URL")
            .path()
            .trim_start_matches('/')
            .to_owned()
    }

    /// The address of the database server (PostgreSQL, MariaDB), e.g. to put a
    /// [`super::tcp_proxy::TcpProxy`] in front of it.
    pub fn server_addr(&self) -> std::net::SocketAddr {
        let url = url::Url::parse(&self.url).expect("test database URL");
        let host = url.host_str().expect("a host");
        let port = url.port_or_known_default().unwrap_or(match self.backend {
            TestBackend::Postgres => 5432,
            TestBackend::MariaDb => 3306,
            TestBackend::Sqlite => unreachable!("SQLite has no server"),
        });
        format!("{host}:{port}")
            .parse()
            .expect("a loopback address")
    }

    /// The DDL of `services` (columns, types, defaults, indexes) as the catalog
    /// reports it, to prove a table was left unchanged.
    pub async fn services_ddl(&self) -> Vec<String> {
        match &self.raw {
            RawPool::Sqlite(p) => sqlx::query_scalar::<_, String>(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'services' AND sql IS NOT NULL ORDER BY name",
            )
            .fetch_all(p)
            .await
            .expect("reading the SQLite schema"),
            RawPool::Postgres(p) => {
                let mut ddl: Vec<String> = sqlx::query_scalar(
                    "SELECT column_name::text || ' ' || data_type::text || ' ' || is_nullable::text \
                     || ' ' || COALESCE(column_default::text, '-') FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND table_name = 'services' \
                     ORDER BY ordinal_position",
                )
                .fetch_all(p)
                .await
                .expect("reading the PostgreSQL columns");
                let indexes: Vec<String> = sqlx::query_scalar(
                    "SELECT indexdef::text FROM pg_indexes WHERE schemaname = current_schema() \
                     AND tablename = 'services' ORDER BY indexname",
                )
                .fetch_all(p)
                .await
                .expect("reading the PostgreSQL indexes");
                ddl.extend(indexes);
                ddl
            }
            RawPool::MySql(p) => {
                let (_, ddl): (String, String) = sqlx::query_as("SHOW CREATE TABLE services")
                    .fetch_one(p)
                    .await
                    .expect("reading the MariaDB table definition");
                vec![ddl]
            }
        }
    }
}

/// Generates one `#[tokio::test]` per backend for a scenario, in a module named
/// after it: `name::sqlite`, `name::postgres`, `name::mariadb`. See the module
/// docs for both forms (`|db|` gets a migrated [`TestDb`], `|b: TestBackend|`
/// gets the backend).
macro_rules! backend_tests {
    ($name:ident, |$backend:ident : TestBackend| $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $backend = $crate::support::db::TestBackend::Sqlite;
                $body.await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let $backend = $crate::support::db::TestBackend::Postgres;
                $body.await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mariadb() {
                let $backend = $crate::support::db::TestBackend::MariaDb;
                $body.await
            }
        }
    };
    ($name:ident, |$db:ident| $body:expr) => {
        $crate::support::db::backend_tests!($name, |backend: TestBackend| async move {
            let $db = $crate::support::db::fresh(backend).await;
            $body.await
        });
    };
}
pub(crate) use backend_tests;

/// Like `backend_tests!`, for the database servers only (a TCP proxy cannot stand
/// between calsync and a SQLite file).
macro_rules! server_tests {
    ($name:ident, |$backend:ident : TestBackend| $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let $backend = $crate::support::db::TestBackend::Postgres;
                $body.await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mariadb() {
                let $backend = $crate::support::db::TestBackend::MariaDb;
                $body.await
            }
        }
    };
}
pub(crate) use server_tests;
