//! The bench's own access to the scenario's database: creating and dropping it
//! (PostgreSQL and MariaDB: a fresh database per scenario; SQLite: a file), the
//! probes around each pass (what was written to `services`, WAL bytes), and the
//! floors' plain statements. It never goes through calsync's store, and it
//! writes to `services` only in the baseline (see `workloads`). Each statement
//! is written once; [`Backend`] supplies only what differs per dialect (casts,
//! placeholders, the scratch table's DDL, the bind-parameter limit) and
//! [`on_pool!`] runs the same code on each backend's pool type.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDateTime;
use futures::TryStreamExt;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, QueryBuilder};

use crate::{Knobs, Size};

/// The admin connection for creating the PostgreSQL bench databases. TLS off:
/// the server here negotiates TLS when asked (`sslmode=prefer`, sqlx's default),
/// which adds connection set-up time to every `calsync once` that is not
/// calsync's work.
pub const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable";
/// The admin connection for creating the MariaDB bench databases.
pub const DEFAULT_MARIADB: &str = "mysql://root@127.0.0.1:3306/test";
/// The first-pass floor's scratch table, shaped like `services`.
const SCRATCH: &str = "services_floor";
/// The columns the first-pass floor inserts (what an import writes, and the id).
const SCRATCH_COLUMNS: [&str; 13] = [
    "id",
    "company_id",
    "name",
    "description",
    "duration_minutes",
    "price",
    "currency",
    "is_active",
    "is_online",
    "calcom_event_type_id",
    "sync_status",
    "last_calcom_sync",
    "sync_error",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MariaDb,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
            Self::MariaDb => "mariadb",
        }
    }

    /// The `n`th (1-based) bind parameter.
    pub fn param(self, n: usize) -> String {
        match self {
            Self::Postgres => format!("${n}"),
            Self::Sqlite | Self::MariaDb => "?".into(),
        }
    }

    /// Bind parameters one statement may carry (SQLite ≥ 3.32; the 16-bit
    /// counters of the PostgreSQL and MySQL protocols).
    fn max_binds(self) -> usize {
        match self {
            Self::Sqlite => 32_766,
            Self::Postgres | Self::MariaDb => 65_535,
        }
    }

    /// The columns of [`ServiceRow`], cast as calsync's store reads them
    /// (integers as BIGINT, price as hundredths, booleans with NULL as false).
    pub fn columns(self) -> String {
        let int = |c: &str| match self {
            Self::Sqlite => c.to_owned(),
            Self::Postgres => format!("{c}::int8 AS {c}"),
            Self::MariaDb => format!("CAST({c} AS SIGNED) AS {c}"),
        };
        let text = |c: &str| match self {
            Self::Sqlite => c.to_owned(),
            Self::Postgres => format!("{c}::text AS {c}"),
            Self::MariaDb => format!("CAST({c} AS CHAR) AS {c}"),
        };
        let flag = |c: &str| match self {
            Self::Postgres => format!("COALESCE({c}, false) AS {c}"),
            Self::Sqlite | Self::MariaDb => format!("(COALESCE({c}, 0) <> 0) AS {c}"),
        };
        let cents = match self {
            Self::Sqlite => "CAST(ROUND(price * 100) AS INTEGER) AS cents",
            Self::Postgres => "round(price * 100)::int8 AS cents",
            Self::MariaDb => "CAST(ROUND(price * 100) AS SIGNED) AS cents",
        };
        let time = match self {
            Self::Sqlite => "last_calcom_sync",
            Self::Postgres => "last_calcom_sync::timestamp AS last_calcom_sync",
            Self::MariaDb => "CAST(last_calcom_sync AS DATETIME(6)) AS last_calcom_sync",
        };
        [
            int("id"),
            int("company_id"),
            text("name"),
            text("description"),
            int("duration_minutes"),
            cents.into(),
            text("currency"),
            flag("is_active"),
            flag("is_online"),
            int("calcom_event_type_id"),
            text("sync_status"),
            time.into(),
            text("sync_error"),
        ]
        .join(", ")
    }
}

/// A pool of the scenario's backend.
pub enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
    MySql(MySqlPool),
}

/// Runs the same code (`$body`, with `$p` bound to the concrete pool) on
/// whichever pool `$pool` holds: the statements are written once, and each
/// backend's sqlx types are checked at compile time.
macro_rules! on_pool {
    ($pool:expr, $p:ident => $body:expr) => {
        match $pool {
            $crate::databases::Pool::Sqlite($p) => $body,
            $crate::databases::Pool::Postgres($p) => $body,
            $crate::databases::Pool::MySql($p) => $body,
        }
    };
}
pub(crate) use on_pool;

impl Pool {
    /// A pool like calsync's (src/store/connect.rs) with `size` connections.
    pub async fn connect(backend: Backend, url: &str, size: u32) -> anyhow::Result<Pool> {
        Ok(match backend {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true);
                Pool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(size)
                        .connect_with(options)
                        .await?,
                )
            }
            Backend::Postgres => Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(size)
                    .connect(url)
                    .await?,
            ),
            Backend::MariaDb => Pool::MySql(
                MySqlPoolOptions::new()
                    .max_connections(size)
                    .connect(url)
                    .await?,
            ),
        })
    }

    async fn execute(&self, sql: &str) -> anyhow::Result<()> {
        on_pool!(self, p => sqlx::query(AssertSqlSafe(sql)).execute(p).await.map(drop))
            .with_context(|| format!("running {sql}"))
    }

    pub async fn close(&self) {
        on_pool!(self, p => p.close().await)
    }
}

/// The columns a reconcile reads, in one shape for every dialect.
#[derive(Debug, Hash, sqlx::FromRow)]
pub struct ServiceRow {
    pub id: i64,
    company_id: i64,
    name: String,
    description: Option<String>,
    duration_minutes: i64,
    cents: i64,
    currency: String,
    is_active: bool,
    is_online: bool,
    calcom_event_type_id: Option<i64>,
    sync_status: String,
    last_calcom_sync: Option<NaiveDateTime>,
    sync_error: Option<String>,
}

/// What the database says one pass wrote.
#[derive(Debug, Clone, Copy, Default)]
pub struct Writes {
    /// PostgreSQL: `n_tup_ins + n_tup_upd + n_tup_del` of `services` (every row
    /// version written, unchanged content included). SQLite and MariaDB: rows of
    /// `services` whose content (the [`ServiceRow`] columns) changed, appeared or
    /// disappeared.
    pub rows: u64,
    /// PostgreSQL: WAL bytes written, cluster-wide.
    pub wal: Option<u64>,
}

/// The state [`BenchDb::writes_since`] compares with.
pub struct Mark {
    wal: Option<i64>,
    tuples: Option<i64>,
    /// Per service id, a hash of its row.
    rows: Option<HashMap<i64, u64>>,
}

/// The benchmark's database: its URL (for calsync) and a pool for the floors,
/// baseline and probes, sized like calsync's.
pub struct BenchDb {
    pub backend: Backend,
    pub url: String,
    pub pool: Pool,
    /// PostgreSQL and MariaDB: the admin URL and the database to drop at the end.
    server: Option<(String, String)>,
    /// SQLite: the file (its -wal and -shm beside it).
    sqlite_path: Option<PathBuf>,
}

impl BenchDb {
    pub async fn create(
        knobs: &Knobs,
        backend: Backend,
        dir: &Path,
        size: Size,
    ) -> anyhow::Result<BenchDb> {
        let (url, server, sqlite_path) = match backend {
            Backend::Sqlite => {
                let path = dir.join("calsync.db");
                (
                    format!("sqlite://{}?mode=rwc", path.display()),
                    None,
                    Some(path),
                )
            }
            Backend::Postgres | Backend::MariaDb => {
                let (admin, knob, default) = if backend == Backend::Postgres {
                    (
                        &knobs.postgres_admin,
                        "CALSYNC_BENCH_POSTGRES_URL",
                        DEFAULT_POSTGRES,
                    )
                } else {
                    (
                        &knobs.mariadb_admin,
                        "CALSYNC_BENCH_MARIADB_URL",
                        DEFAULT_MARIADB,
                    )
                };
                let name = format!(
                    "calsync_bench_{}_{}x{}",
                    std::process::id(),
                    size.total,
                    size.per_account
                );
                let server = Pool::connect(backend, admin, 1).await.with_context(|| {
                    format!(
                        "connecting to {} ({knob}, default {default})",
                        backend.name()
                    )
                })?;
                server.execute(&drop_database(backend, &name)).await?;
                server.execute(&format!("CREATE DATABASE {name}")).await?;
                server.close().await;
                // The bench database keeps the admin URL's user, host and options.
                let mut url = url::Url::parse(admin)?;
                url.set_path(&format!("/{name}"));
                (url.to_string(), Some((admin.clone(), name)), None)
            }
        };
        Ok(BenchDb {
            pool: Pool::connect(backend, &url, knobs.pool_size()).await?,
            backend,
            url,
            server,
            sqlite_path,
        })
    }

    /// Closes the pool; unless `keep`, drops the database (or removes the file).
    pub async fn drop_database(self, keep: bool) {
        self.pool.close().await;
        if keep {
            return;
        }
        if let Some(path) = self.sqlite_path {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        if let Some((admin, name)) = self.server
            && let Ok(server) = Pool::connect(self.backend, &admin, 1).await
        {
            let _ = server.execute(&drop_database(self.backend, &name)).await;
            server.close().await;
        }
    }

    /// PostgreSQL's WAL insert position (bytes); cluster-wide.
    pub async fn wal_position(&self) -> anyhow::Result<Option<i64>> {
        match &self.pool {
            Pool::Postgres(p) => Ok(Some(
                sqlx::query_scalar("SELECT (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::int8")
                    .fetch_one(p)
                    .await?,
            )),
            Pool::Sqlite(_) | Pool::MySql(_) => Ok(None),
        }
    }

    /// Before a pass: the WAL position and row counters (PostgreSQL) or every
    /// row's hash (SQLite, MariaDB).
    pub async fn mark(&self) -> anyhow::Result<Mark> {
        Ok(match &self.pool {
            Pool::Postgres(p) => Mark {
                wal: self.wal_position().await?,
                tuples: Some(settled_tuples(p).await?),
                rows: None,
            },
            Pool::Sqlite(_) | Pool::MySql(_) => Mark {
                wal: None,
                tuples: None,
                rows: Some(self.row_hashes().await?),
            },
        })
    }

    /// After a pass: what it wrote since `mark`.
    pub async fn writes_since(&self, mark: Mark) -> anyhow::Result<Writes> {
        let wal = self.wal_position().await?;
        let rows = match (&self.pool, mark.tuples, mark.rows) {
            (Pool::Postgres(p), Some(before), _) => (settled_tuples(p).await? - before) as u64,
            (_, _, Some(before)) => {
                let after = self.row_hashes().await?;
                let changed = after
                    .iter()
                    .filter(|(id, hash)| before.get(id) != Some(hash))
                    .count();
                let gone = before.keys().filter(|id| !after.contains_key(id)).count();
                (changed + gone) as u64
            }
            _ => 0,
        };
        Ok(Writes {
            rows,
            wal: wal.zip(mark.wal).map(|(a, b)| (a - b) as u64),
        })
    }

    async fn row_hashes(&self) -> anyhow::Result<HashMap<i64, u64>> {
        let sql = format!("SELECT {} FROM services", self.backend.columns());
        let mut hashes = HashMap::new();
        on_pool!(&self.pool, p => {
            let mut rows = sqlx::query_as::<_, ServiceRow>(AssertSqlSafe(sql)).fetch(p);
            while let Some(row) = rows.try_next().await? {
                let mut hasher = std::hash::DefaultHasher::new();
                row.hash(&mut hasher);
                hashes.insert(row.id, hasher.finish());
            }
        });
        Ok(hashes)
    }

    /// The steady floor's read: one SELECT of every service.
    pub async fn select_all(&self) -> anyhow::Result<Vec<ServiceRow>> {
        let sql = format!("SELECT {} FROM services", self.backend.columns());
        Ok(on_pool!(&self.pool, p => sqlx::query_as(AssertSqlSafe(sql)).fetch_all(p).await?))
    }

    /// Creates the first-pass floor's scratch table: `services`' columns, types,
    /// defaults and indexes, no rows.
    pub async fn create_scratch(&self) -> anyhow::Result<()> {
        self.pool
            .execute(&format!("DROP TABLE IF EXISTS {SCRATCH}"))
            .await?;
        match &self.pool {
            Pool::Postgres(_) => {
                self.pool
                    .execute(&format!(
                        "CREATE TABLE {SCRATCH} (LIKE services INCLUDING ALL)"
                    ))
                    .await
            }
            Pool::MySql(_) => {
                self.pool
                    .execute(&format!("CREATE TABLE {SCRATCH} LIKE services"))
                    .await
            }
            // SQLite has no `LIKE`: its own DDL of the table and its indexes,
            // renamed (index names start with the table's).
            Pool::Sqlite(p) => {
                let ddl: Vec<String> = sqlx::query_scalar(
                    "SELECT sql FROM sqlite_master WHERE tbl_name = 'services' \
                     AND type IN ('table', 'index') AND sql IS NOT NULL \
                     ORDER BY type = 'index'",
                )
                .fetch_all(p)
                .await?;
                for statement in ddl {
                    self.pool
                        .execute(&statement.replace("services", SCRATCH))
                        .await?;
                }
                Ok(())
            }
        }
    }

    pub async fn drop_scratch(&self) -> anyhow::Result<()> {
        self.pool.execute(&format!("DROP TABLE {SCRATCH}")).await
    }

    /// The first-pass floor's write: every row into the scratch table, in
    /// multi-row `INSERT`s as large as the bind-parameter limit allows, in one
    /// transaction; returns the statements sent (with `BEGIN` and `COMMIT`).
    pub async fn insert_scratch(&self, rows: &[ServiceRow]) -> anyhow::Result<u64> {
        let per_statement = self.backend.max_binds() / SCRATCH_COLUMNS.len();
        let insert = format!("INSERT INTO {SCRATCH} ({}) ", SCRATCH_COLUMNS.join(", "));
        on_pool!(&self.pool, p => {
            let mut tx = p.begin().await?;
            for chunk in rows.chunks(per_statement) {
                let mut qb = QueryBuilder::new(insert.as_str());
                qb.push_values(chunk, |mut b, r| {
                    b.push_bind(r.id)
                        .push_bind(r.company_id)
                        .push_bind(r.name.as_str())
                        .push_bind(r.description.as_deref())
                        .push_bind(r.duration_minutes)
                        // Hundredths within 2^53: exact as a double, and the
                        // column's scale of 2 rounds it back to the cents.
                        .push_bind(r.cents as f64 / 100.0)
                        .push_bind(r.currency.as_str())
                        .push_bind(r.is_active)
                        .push_bind(r.is_online)
                        .push_bind(r.calcom_event_type_id)
                        .push_bind(r.sync_status.as_str())
                        .push_bind(r.last_calcom_sync)
                        .push_bind(r.sync_error.as_deref());
                });
                qb.build().persistent(false).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(2 + rows.len().div_ceil(per_statement) as u64)
    }
}

fn drop_database(backend: Backend, name: &str) -> String {
    match backend {
        Backend::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        Backend::Sqlite | Backend::MariaDb => format!("DROP DATABASE IF EXISTS {name}"),
    }
}

/// `n_tup_ins + n_tup_upd + n_tup_del` of `services`, read until two readings
/// 600 ms apart agree: a backend reports its counters when its transaction ends
/// (at most once a second) or when it exits, so calsync's last counts arrive
/// shortly after the process ended. Each reading is its own transaction, so it
/// never sees a cached statistics snapshot.
async fn settled_tuples(pool: &PgPool) -> anyhow::Result<i64> {
    let mut last = None;
    for _ in 0..20 {
        let now: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(n_tup_ins + n_tup_upd + n_tup_del), 0)::int8 \
             FROM pg_stat_user_tables WHERE relname = 'services'",
        )
        .fetch_one(pool)
        .await?;
        if last == Some(now) {
            return Ok(now);
        }
        last = Some(now);
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    last.context("reading pg_stat_user_tables")
}
