//! Leader leases: at most one calsync process at a time holds a named lease on a
//! database, so replicas run their passes one at a time (the others stand by).
//!
//! A lease lives on a connection of its own, never on a pooled one: the pool
//! recycles connections, and a session lock on a recycled connection would be
//! released (or kept) behind the holder's back. The server ties the lock to that
//! session, so a holder that dies (SIGKILL, lost network once the server notices)
//! releases it without any cleanup:
//!
//! - PostgreSQL: `pg_try_advisory_lock(key)`, `key` a stable 64-bit FNV-1a hash of
//!   `calsync:<name>`; advisory locks are scoped to the database.
//! - MySQL/MariaDB: `GET_LOCK('calsync:<name>@<database>', 0)`. `GET_LOCK` names
//!   are global to the server, so the database name is part of the lock name;
//!   otherwise two calsync deployments on different databases of one server
//!   would lock each other out. Names over the 64-character limit are hashed.
//! - SQLite: an exclusive OS lock (`flock`) on `<database file>.<name>.lock`
//!   (e.g. `calsync.db.reconcile.lock`; one file per name, so names stay
//!   independent as on the servers). It holds between processes of one host
//!   only, which is all SQLite supports anyway. An in-memory database cannot be
//!   shared between processes, so its lease is always granted.
//!
//! A holder cut off by the network (no FIN, no RST) finds its lease lost at its
//! next check, which fails or times out; the server keeps the lock until it drops
//! the session (TCP keepalive, `tcp_keepalives_idle` on PostgreSQL), so for that
//! long nobody leads: the lease errs on the side of no pass rather than two.
//!
//! The lease is advisory: it keeps replicas from doing the same work twice and
//! spending one API budget twice; correctness under overlap does not depend on
//! it (every write of a pass is guarded in [`super::Store::apply`]). Its own
//! statements are not counted by [`super::Store::statements`], since they run
//! beside passes and would blur a pass's count. This module must never take a
//! connection from the pool for the lock, and never block: every attempt is a
//! try, bounded by [`LEASE_TIMEOUT`].

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::mysql::MySqlConnectOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, MySqlConnection, PgConnection};

use super::error::{StoreError, on};
use super::{Backend, Pool, Store};

/// Bounds every round trip of a lease connection (connect, lock, check,
/// unlock), so a server that stopped answering cannot stall the caller.
const LEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest lock name MySQL and MariaDB accept.
const MYSQL_LOCK_NAME_MAX: usize = 64;

/// A named lease on the database; see the module docs.
///
/// Created with [`Store::lease`] (not held yet), taken with
/// [`Lease::try_acquire`], checked with [`Lease::is_held`], given back with
/// [`Lease::release`] or by dropping it (which closes its connection, so the
/// server releases the lock).
pub struct Lease {
    name: String,
    held: bool,
    /// Why the lease was last found lost, for the caller's log line.
    lost: Option<String>,
    holder: Holder,
}

enum Holder {
    Postgres {
        options: Arc<PgConnectOptions>,
        key: i64,
        conn: Option<PgConnection>,
    },
    MySql {
        options: Arc<MySqlConnectOptions>,
        lock: String,
        conn: Option<MySqlConnection>,
    },
    SqliteFile {
        path: PathBuf,
        file: Option<File>,
    },
    /// An in-memory SQLite database: only this process can reach it.
    Process,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately no connect options: they hold the password.
        f.debug_struct("Lease")
            .field("name", &self.name)
            .field("backend", &self.backend())
            .field("held", &self.held)
            .finish()
    }
}

impl Store {
    /// A lease named `name` on this store's database, not yet held. Opens its
    /// dedicated connection (PostgreSQL, MySQL) or lock file (SQLite) now, so an
    /// unreachable server or an unwritable directory fails here.
    pub async fn lease(&self, name: &str) -> Result<Lease, StoreError> {
        let holder = match &self.pool {
            Pool::Postgres(p) => Holder::Postgres {
                options: p.connect_options(),
                key: advisory_key(name),
                conn: None,
            },
            Pool::MySql(p) => {
                let options = p.connect_options();
                let lock = mysql_lock_name(name, options.get_database().unwrap_or_default());
                Holder::MySql {
                    options,
                    lock,
                    conn: None,
                }
            }
            Pool::Sqlite(p) => {
                // SQLite itself says which file `main` is ("" when in memory), so
                // relative paths and URL spellings all end up at one lock file.
                let file: String =
                    sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                        .fetch_one(p)
                        .await
                        .map_err(on(
                            Backend::Sqlite,
                            "locating the database file for the lease",
                        ))?;
                if file.is_empty() {
                    Holder::Process
                } else {
                    Holder::SqliteFile {
                        path: PathBuf::from(format!("{file}.{}.lock", file_safe(name))),
                        file: None,
                    }
                }
            }
        };
        let mut lease = Lease {
            name: name.to_owned(),
            held: false,
            lost: None,
            holder,
        };
        lease.open().await?;
        Ok(lease)
    }
}

impl Lease {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn backend(&self) -> Backend {
        match self.holder {
            Holder::Postgres { .. } => Backend::Postgres,
            Holder::MySql { .. } => Backend::MySql,
            Holder::SqliteFile { .. } | Holder::Process => Backend::Sqlite,
        }
    }

    /// Whether the last acquire or check found the lease held (no round trip).
    pub fn held(&self) -> bool {
        self.held
    }

    /// Why the lease was last found lost (`None` if it never was).
    pub fn loss_reason(&self) -> Option<&str> {
        self.lost.as_deref()
    }

    /// Tries once, without waiting, to take the lease: `Ok(true)` when this
    /// lease holds it now, `Ok(false)` when someone else does. Reopens the
    /// connection if an earlier one was lost. When already held, this only
    /// checks ([`Lease::is_held`]): the server counts session locks, and taking
    /// one twice would need two releases.
    pub async fn try_acquire(&mut self) -> Result<bool, StoreError> {
        if self.held {
            return Ok(self.is_held().await);
        }
        self.open().await?;
        let acquired = match &mut self.holder {
            Holder::Postgres { key, conn, .. } => {
                let c = conn.as_mut().expect("opened above");
                let q = sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
                    .bind(*key)
                    .fetch_one(c);
                bounded(Backend::Postgres, "taking the lease", q).await
            }
            Holder::MySql { lock, conn, .. } => {
                let c = conn.as_mut().expect("opened above");
                // 1 = taken, 0 = held by another session, NULL = error.
                let q =
                    sqlx::query_scalar::<_, Option<i64>>("SELECT CAST(GET_LOCK(?, 0) AS SIGNED)")
                        .bind(lock.as_str())
                        .fetch_one(c);
                bounded(Backend::MySql, "taking the lease", q)
                    .await
                    .map(|r| r == Some(1))
            }
            Holder::SqliteFile { path, file } => {
                let f = file.as_ref().expect("opened above");
                match f.try_lock() {
                    // Locked, but the file may have been replaced since it was
                    // opened: a lock on a removed file excludes nobody.
                    Ok(()) if same_file(f, path) => Ok(true),
                    Ok(()) => {
                        file.take();
                        Ok(false)
                    }
                    Err(TryLockError::WouldBlock) => Ok(false),
                    Err(TryLockError::Error(e)) => {
                        Err(unavailable(Backend::Sqlite, "locking the lease file", e))
                    }
                }
            }
            Holder::Process => Ok(true),
        };
        match acquired {
            Ok(got) => {
                self.held = got;
                if got {
                    self.lost = None;
                }
                Ok(got)
            }
            Err(e) => {
                // A connection that failed a statement is not trusted again.
                self.drop_connection();
                Err(e)
            }
        }
    }

    /// Checks with one round trip that the lease is still held: that its
    /// connection is alive and the server still counts the lock as this
    /// session's (SQLite: that the lock file is still the one locked). A dead
    /// connection means the lock is gone; the lease is then marked lost, its
    /// connection dropped, and [`Lease::loss_reason`] says why.
    pub async fn is_held(&mut self) -> bool {
        if !self.held {
            return false;
        }
        let check: Result<bool, String> = match &mut self.holder {
            Holder::Postgres { key, conn, .. } => match conn.as_mut() {
                None => Err("its connection was closed".into()),
                Some(c) => {
                    let (hi, lo) = key_halves(*key);
                    let q = sqlx::query_scalar::<_, bool>(
                        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
                         AND pid = pg_backend_pid() AND granted AND objsubid = 1 \
                         AND classid::int8 = $1 AND objid::int8 = $2)",
                    )
                    .bind(hi)
                    .bind(lo)
                    .fetch_one(c);
                    bounded(Backend::Postgres, "checking the lease", q)
                        .await
                        .map_err(|e| e.to_string())
                }
            },
            Holder::MySql { lock, conn, .. } => match conn.as_mut() {
                None => Err("its connection was closed".into()),
                Some(c) => {
                    let q = sqlx::query_scalar::<_, i64>(
                        "SELECT CAST(COALESCE(IS_USED_LOCK(?) = CONNECTION_ID(), 0) AS SIGNED)",
                    )
                    .bind(lock.as_str())
                    .fetch_one(c);
                    bounded(Backend::MySql, "checking the lease", q)
                        .await
                        .map(|mine| mine == 1)
                        .map_err(|e| e.to_string())
                }
            },
            Holder::SqliteFile { path, file } => match file.as_ref() {
                None => Err("its lock file was closed".into()),
                Some(f) => Ok(same_file(f, path)),
            },
            Holder::Process => Ok(true),
        };
        let reason = match check {
            Ok(true) => return true,
            Ok(false) => match self.holder {
                Holder::SqliteFile { .. } => {
                    "its lock file was removed or replaced, so another process could lock it"
                        .to_owned()
                }
                _ => "the database no longer counts the lock as this session's (was it \
                      released by an administrator?)"
                    .to_owned(),
            },
            Err(e) => format!("its database connection failed: {e}"),
        };
        self.held = false;
        self.lost = Some(reason);
        self.drop_connection();
        false
    }

    /// Gives the lease back now (unlock, then close the connection), so a
    /// standby can take it at its next attempt. Best effort: if the server does
    /// not answer, closing the connection releases the lock anyway.
    pub async fn release(&mut self) {
        let was_held = std::mem::replace(&mut self.held, false);
        match &mut self.holder {
            Holder::Postgres { key, conn, .. } => {
                if let Some(mut c) = conn.take() {
                    if was_held {
                        let q = sqlx::query("SELECT pg_advisory_unlock($1)")
                            .bind(*key)
                            .execute(&mut c);
                        let _ = bounded(Backend::Postgres, "releasing the lease", q).await;
                    }
                    let _ = tokio::time::timeout(LEASE_TIMEOUT, c.close()).await;
                }
            }
            Holder::MySql { lock, conn, .. } => {
                if let Some(mut c) = conn.take() {
                    if was_held {
                        let q = sqlx::query("DO RELEASE_LOCK(?)")
                            .bind(lock.as_str())
                            .execute(&mut c);
                        let _ = bounded(Backend::MySql, "releasing the lease", q).await;
                    }
                    let _ = tokio::time::timeout(LEASE_TIMEOUT, c.close()).await;
                }
            }
            Holder::SqliteFile { file, .. } => {
                // Closing the file drops the lock.
                file.take();
            }
            Holder::Process => {}
        }
    }

    /// Opens the dedicated connection (or lock file) unless it is open.
    async fn open(&mut self) -> Result<(), StoreError> {
        match &mut self.holder {
            Holder::Postgres { options, conn, .. } if conn.is_none() => {
                let c = bounded(
                    Backend::Postgres,
                    "opening the lease connection",
                    PgConnection::connect_with(options),
                )
                .await?;
                *conn = Some(c);
            }
            Holder::MySql { options, conn, .. } if conn.is_none() => {
                let c = bounded(
                    Backend::MySql,
                    "opening the lease connection",
                    MySqlConnection::connect_with(options),
                )
                .await?;
                *conn = Some(c);
            }
            Holder::SqliteFile { path, file }
                if file.as_ref().is_none_or(|f| !same_file(f, path)) =>
            {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&*path)
                    .map_err(|e| unavailable(Backend::Sqlite, "opening the lease file", e))?;
                *file = Some(f);
            }
            _ => {}
        }
        Ok(())
    }

    /// Closing the socket (or file) is what makes the server drop a lock the
    /// lease may still hold; nothing is sent.
    fn drop_connection(&mut self) {
        match &mut self.holder {
            Holder::Postgres { conn, .. } => drop(conn.take()),
            Holder::MySql { conn, .. } => drop(conn.take()),
            Holder::SqliteFile { file, .. } => drop(file.take()),
            Holder::Process => {}
        }
    }
}

/// Runs one lease round trip within [`LEASE_TIMEOUT`].
async fn bounded<T>(
    backend: Backend,
    operation: &'static str,
    work: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(LEASE_TIMEOUT, work).await {
        Ok(done) => done.map_err(on(backend, operation)),
        Err(_) => Err(unavailable(
            backend,
            operation,
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", LEASE_TIMEOUT.as_secs()),
            ),
        )),
    }
}

fn unavailable(backend: Backend, operation: &'static str, e: std::io::Error) -> StoreError {
    StoreError::Unavailable {
        backend,
        operation,
        cause: sqlx::Error::Io(e),
    }
}

/// Whether the open lock file is still the file at `path` (not removed, not
/// replaced by a new file another process could lock).
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(open), Ok(now)) => open.dev() == now.dev() && open.ino() == now.ino(),
        _ => false,
    }
}

/// 64-bit FNV-1a: stable across Rust releases and platforms, unlike the
/// standard library's hasher, so every calsync version derives the same key.
fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The PostgreSQL advisory lock key of a lease.
pub(crate) fn advisory_key(name: &str) -> i64 {
    fnv1a("calsync:".bytes().chain(name.bytes())) as i64
}

/// How `pg_locks` shows a 64-bit advisory key: high half in `classid`, low half
/// in `objid` (both `oid`, unsigned 32-bit).
fn key_halves(key: i64) -> (i64, i64) {
    let k = key as u64;
    ((k >> 32) as i64, (k & 0xffff_ffff) as i64)
}

/// `name` if it is safe in a file name, else its hash.
fn file_safe(name: &str) -> String {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        name.to_owned()
    } else {
        format!("{:016x}", fnv1a(name.bytes()))
    }
}

/// The MySQL lock name of a lease on `database`.
pub(crate) fn mysql_lock_name(name: &str, database: &str) -> String {
    let full = format!("calsync:{name}@{database}");
    if full.chars().count() <= MYSQL_LOCK_NAME_MAX {
        full
    } else {
        format!("calsync:{:016x}", fnv1a(full.bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advisory_key_is_stable() {
        // Pinned: replicas of different calsync versions must agree on the key.
        assert_eq!(fnv1a(*b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(*b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(advisory_key("reconcile"), advisory_key("reconcile"));
        assert_ne!(advisory_key("reconcile"), advisory_key("other"));
    }

    #[test]
    fn key_halves_match_pg_locks() {
        assert_eq!(key_halves(0x0000_0001_0000_0002), (1, 2));
        assert_eq!(key_halves(-1), (0xffff_ffff, 0xffff_ffff));
    }

    #[test]
    fn lock_file_names_are_plain() {
        assert_eq!(file_safe("reconcile"), "reconcile");
        assert_eq!(file_safe("../x").len(), 16);
    }

    #[test]
    fn mysql_lock_names_carry_the_database_and_fit_the_limit() {
        assert_eq!(
            mysql_lock_name("reconcile", "shop"),
            "calsync:reconcile@shop"
        );
        let long = mysql_lock_name("reconcile", &"d".repeat(80));
        assert!(long.starts_with("calsync:") && long.len() <= MYSQL_LOCK_NAME_MAX);
        assert_ne!(long, mysql_lock_name("reconcile", &"e".repeat(80)));
    }
}
