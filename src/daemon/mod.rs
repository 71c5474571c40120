//! `calsync run`: the long-running service. It owns the schedule, the one-pass-
//! at-a-time rule, signals (TERM/INT stop, HUP reloads), systemd notifications,
//! and the state behind `/readyz` and the operator API.
//!
//! - The database is connected with backoff until it answers; READY=1 is sent
//!   after the first successful connection; `/readyz` says why it is not ready.
//! - A pass runs at start and then on `sync.schedule` (+ jitter). A tick that finds
//!   a pass running is skipped and counted; `POST /api/v1/reconcile` queues.
//! - SIGTERM/SIGINT: no new passes; the running one may commit, bounded by
//!   `sync.shutdown_timeout_secs`; exit 0.
//! - SIGHUP: re-read the config file; a bad one is rejected with a clear error and
//!   the old settings stay in force.
//! - Replicas: several `calsync run` may share one database; only the holder of
//!   the `reconcile` lease ([`crate::store::Lease`]) runs passes. The others are
//!   standbys: healthy and ready, answering `/metrics` and the read-only API, and
//!   trying to take the lease every `min(schedule interval, 5 s)`. The leader checks
//!   it holds the lease at the same pace and before every pass; when it finds the
//!   lease lost (its database connection died), it stops the running pass (its
//!   uncommitted account transactions roll back) and stands by. The lease saves
//!   work and API budget; correctness under overlap rests on the store's guarded
//!   writes, not on the lease. `POST /api/v1/reconcile` on a standby answers 503
//!   `standby: ...`; the one-service push of the operator API works on any
//!   replica (its writes are guarded like a pass's).

//!
//! Files, by job: this one (the shared state and readiness, and the pass with
//! its one-at-a-time rule), `lease` (leader election among replicas), `actions`
//! (what the operator API asks of the daemon, as typed results; HTTP status
//! codes are `http`'s business), `ticks` (the cron schedule), `run` (the main
//! loop: connecting, signals, reloads, shutdown), `memory` (handing back what a
//! pass held).

mod actions;
mod lease;
mod memory;
mod run;
mod ticks;

pub use actions::{BY_API, DecideRefused, PushRefused};
pub use run::run;

use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Settings;
use crate::reconcile::{
    AccountReport, PassOptions, PassReport, PassTimes, Reconciler, ReportOrder,
};
use crate::store::{Lease, Store};
use crate::telemetry::metrics::Metrics;

use lease::Leadership;

/// The lease replicas on one database compete for.
pub const LEASE_NAME: &str = "reconcile";
/// The longest wait between two lease checks (a standby's attempts, a leader's
/// checks); shorter when the schedule is.
const LEASE_CHECK_MAX: Duration = Duration::from_secs(5);

/// Shared state of the running daemon.
pub struct Daemon {
    settings: RwLock<Arc<Settings>>,
    metrics: Arc<Metrics>,
    reconciler: OnceLock<Arc<Reconciler>>,
    /// Held for the whole of a pass: one pass at a time.
    pass_lock: tokio::sync::Mutex<()>,
    health: Mutex<Health>,
    /// The reconcile lease, once its connection could be opened.
    lease: tokio::sync::Mutex<Option<Lease>>,
    leadership: Mutex<Leadership>,
    /// Cancelled on SIGTERM/SIGINT: no pass may start after it.
    stopping: CancellationToken,
}

/// Whether this process runs passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Holds the lease: runs scheduled and requested passes.
    Leader,
    /// Another process holds the lease (or it could not be checked): no passes.
    Standby,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Standby => "standby",
        }
    }
}

/// Why a pass did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    NotConnected,
    Standby,
    /// A scheduled tick found a pass running (counted and logged).
    Busy,
    /// The lease was lost while the pass ran; it stopped.
    LeaseLost,
    /// The daemon is shutting down: no new passes.
    Stopping,
}

impl Refused {
    fn message(self) -> &'static str {
        match self {
            Refused::NotConnected => "the database is not connected yet",
            Refused::Standby => {
                "standby: another calsync holds the lease and runs the passes; send this to the leader (calsync_leader 1)"
            }
            Refused::Busy => "a pass is already running",
            Refused::LeaseLost => {
                "standby: the lease was lost during the pass, which was stopped; its uncommitted work rolled back"
            }
            Refused::Stopping => "calsync is shutting down: no new passes",
        }
    }
}

#[derive(Default)]
struct Health {
    db_error: Option<String>,
    last_pass: Option<DateTime<Utc>>,
    started: Option<DateTime<Utc>>,
}

impl Daemon {
    fn new(settings: Settings, metrics: Arc<Metrics>) -> Self {
        Self {
            settings: RwLock::new(Arc::new(settings)),
            metrics,
            reconciler: OnceLock::new(),
            pass_lock: tokio::sync::Mutex::new(()),
            health: Mutex::new(Health {
                db_error: Some("connecting to the database".into()),
                started: Some(Utc::now()),
                ..Health::default()
            }),
            lease: tokio::sync::Mutex::new(None),
            leadership: Mutex::new(Leadership::default()),
            stopping: CancellationToken::new(),
        }
    }

    /// Leader while this process holds the lease; standby otherwise (also before
    /// the database is connected).
    pub fn role(&self) -> Role {
        if self.leadership().term.is_some() {
            Role::Leader
        } else {
            Role::Standby
        }
    }

    fn leadership(&self) -> std::sync::MutexGuard<'_, Leadership> {
        self.leadership.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current leadership term's token, if leader.
    fn term(&self) -> Option<CancellationToken> {
        self.leadership().term.clone()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn admin_token(&self) -> Option<SecretString> {
        self.settings().admin_token.clone()
    }

    pub fn store(&self) -> Option<&Store> {
        self.reconciler.get().map(|r| r.store())
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ready: database reachable, migrations current, and either a standby or a
    /// leader whose last pass is recent enough (a standby is healthy: it takes
    /// over when the leader goes away).
    /// [`Daemon::readiness_detail`], also exported as `calsync_ready`.
    pub async fn readiness(&self) -> Result<String, String> {
        let r = self.readiness_detail().await;
        self.metrics.ready.set(i64::from(r.is_ok()));
        r
    }

    async fn readiness_detail(&self) -> Result<String, String> {
        if let Some(e) = self.health().db_error.clone() {
            return Err(format!("database: {e}"));
        }
        let store = self.store().ok_or("database not connected yet")?;
        store
            .ping()
            .await
            .map_err(|e| format!("database unreachable: {e}"))?;
        if !store
            .migrations_current()
            .await
            .map_err(|e| e.to_string())?
        {
            return Err("database migrations are not current; run `calsync migrate`".into());
        }
        {
            let state = self.leadership();
            if !state.decided {
                return Err("checking the reconcile lease".into());
            }
            if let Some(e) = &state.lease_error {
                return Err(format!(
                    "cannot try the reconcile lease, so this calsync cannot lead: {e}"
                ));
            }
        }
        if self.role() == Role::Standby {
            return Ok(
                "standby: another calsync holds the lease; this one takes over if it goes away"
                    .into(),
            );
        }
        let settings = self.settings();
        let interval = crate::schedule::parse(&settings.schedule)
            .ok()
            .and_then(|c| crate::schedule::interval(&c, Utc::now()))
            .unwrap_or(Duration::from_secs(300));
        let limit =
            chrono::Duration::from_std(interval * 3).unwrap_or(chrono::Duration::minutes(15));
        let (last, started) = {
            let h = self.health();
            (h.last_pass, h.started)
        };
        match last {
            Some(t) if Utc::now() - t <= limit => {
                Ok(format!("last pass finished {}", t.to_rfc3339()))
            }
            Some(t) => Err(format!(
                "the last pass finished at {} (more than 3 schedule intervals ago); check the logs for failing passes",
                t.to_rfc3339()
            )),
            None if started.is_some_and(|s| Utc::now() - s > limit) => {
                Err("no pass has finished since start; check the logs".into())
            }
            None => Err("the first pass has not finished yet".into()),
        }
    }

    /// Runs a pass now unless one is running (`queue = false`: skipped, counted).
    /// Only the leader runs passes; the pass stops if the lease is lost meanwhile.
    /// Each account's report goes to `keep` as it finishes: a scheduled pass keeps
    /// none, so its memory does not grow with the event types it imports.
    async fn pass(
        &self,
        queue: bool,
        jitter: Duration,
        mut keep: impl FnMut(usize, AccountReport) + Send,
    ) -> Result<PassTimes, Refused> {
        let reconciler = self.reconciler.get().ok_or(Refused::NotConnected)?.clone();
        if self.role() != Role::Leader {
            return Err(Refused::Standby);
        }
        let _held = if queue {
            self.pass_lock.lock().await
        } else {
            match self.pass_lock.try_lock() {
                Ok(g) => g,
                Err(_) => {
                    crate::telemetry::events::PassSkipped.emit(&self.metrics);
                    return Err(Refused::Busy);
                }
            }
        };
        // The lease may have been lost while this waited, or since the last
        // periodic check: one round trip now keeps two replicas from starting a
        // pass in the same interval.
        if !self.confirm_lease().await {
            return Err(Refused::Standby);
        }
        let term = self.term().ok_or(Refused::Standby)?;
        if !jitter.is_zero() {
            let ms = rand::rng().random_range(0..=jitter.as_millis() as u64);
            tokio::select! {
                _ = term.cancelled() => return Err(Refused::LeaseLost),
                // A tick still in its jitter when SIGTERM arrives never starts.
                _ = self.stopping.cancelled() => return Err(Refused::Stopping),
                _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
            }
        }
        if self.stopping.is_cancelled() {
            return Err(Refused::Stopping);
        }
        let settings = self.settings();
        let (mut accounts, mut failed) = (0usize, 0usize);
        let run = reconciler.pass_each(
            &settings.accounts,
            &settings.accounts,
            settings.policy,
            PassOptions {
                dry_run: false,
                max_concurrent_accounts: settings.max_concurrent_accounts,
                orphan_checks_per_pass: settings.orphan_checks_per_pass,
            },
            // Nothing here needs the accounts' order: a report waiting for a
            // slow account would only hold memory.
            ReportOrder::Finished,
            |position, report| {
                accounts += 1;
                failed += usize::from(report.result == "failure");
                keep(position, report);
            },
        );
        let times = tokio::select! {
            times = run => times,
            _ = term.cancelled() => {
                info!("The running pass was stopped because this calsync lost the lease; its uncommitted account transactions rolled back and the new leader redoes the work.");
                return Err(Refused::LeaseLost);
            }
        };
        info!(
            accounts,
            failed_accounts = failed,
            "Reconcile pass finished."
        );
        if failed < accounts || accounts == 0 {
            self.health().last_pass = Some(Utc::now());
        }
        // Listings, snapshots and plans are gone; only what `keep` kept is left.
        memory::release_freed();
        Ok(times)
    }

    /// `POST /api/v1/reconcile`: a pass now (queued behind a running one); a
    /// standby refuses with a message starting with `standby:`.
    pub async fn reconcile_now(&self) -> Result<PassReport, String> {
        let mut accounts = Vec::new();
        let times = self
            .pass(true, Duration::ZERO, |position, report| {
                accounts.push((position, report));
            })
            .await
            .map_err(|r| r.message().to_owned())?;
        // Handed out as they finished: back in the accounts' order.
        accounts.sort_unstable_by_key(|(position, _)| *position);
        let accounts = accounts.into_iter().map(|(_, report)| report).collect();
        Ok(PassReport::new(false, times, accounts))
    }
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    // Without systemd (no NOTIFY_SOCKET) this is a no-op.
    let _ = sd_notify::notify(state);
}
