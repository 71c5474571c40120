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

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hyper::StatusCode;
use rand::Rng;
use secrecy::SecretString;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};
use uuid::Uuid;

use crate::app::{self, App};
use crate::config::{Config, Settings};
use crate::domain::ServiceId;
use crate::reconcile::{ManualPush, ManualPushError, PassOptions, PassReport, Reconciler};
use crate::store::{Lease, Store};
use crate::telemetry::logging::LogGuard;
use crate::telemetry::metrics::Metrics;

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

#[derive(Default)]
struct Leadership {
    /// Set while leader; cancelled when the lease is lost, which stops the
    /// running pass.
    term: Option<CancellationToken>,
    /// Whether the lease was tried at least once (until then `/readyz` waits).
    decided: bool,
    /// The standby line was logged for the current standby period.
    standby_logged: bool,
    /// Why the last attempt to take the lease failed (logged once per streak).
    lease_error: Option<String>,
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

/// What a scheduled pass was woken by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tick {
    Scheduled,
    /// This process just became the leader: pass now, without jitter.
    Elected,
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
    async fn pass(&self, queue: bool, jitter: Duration) -> Result<PassReport, Refused> {
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
                    self.metrics.reconcile_skipped_total.inc();
                    warn!(
                        "A scheduled pass was skipped because the previous one is still running; consider a longer sync.schedule."
                    );
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
        let run = reconciler.pass(
            &settings.accounts,
            &settings.accounts,
            settings.policy,
            PassOptions {
                dry_run: false,
                max_concurrent_accounts: settings.max_concurrent_accounts,
                orphan_checks_per_pass: settings.orphan_checks_per_pass,
            },
        );
        let report = tokio::select! {
            report = run => report,
            _ = term.cancelled() => {
                info!("The running pass was stopped because this calsync lost the lease; its uncommitted account transactions rolled back and the new leader redoes the work.");
                return Err(Refused::LeaseLost);
            }
        };
        let failed = report
            .accounts
            .iter()
            .filter(|a| a.result == "failure")
            .count();
        info!(
            accounts = report.accounts.len(),
            failed_accounts = failed,
            "Reconcile pass finished."
        );
        if failed < report.accounts.len() || report.accounts.is_empty() {
            self.health().last_pass = Some(Utc::now());
        }
        Ok(report)
    }

    /// `POST /api/v1/reconcile`: a pass now (queued behind a running one); a
    /// standby refuses with a message starting with `standby:`.
    pub async fn reconcile_now(&self) -> Result<PassReport, String> {
        self.pass(true, Duration::ZERO)
            .await
            .map_err(|r| r.message().to_owned())
    }

    /// Checks (one round trip) that the lease is still held; steps down if not.
    async fn confirm_lease(&self) -> bool {
        let mut lease = self.lease.lock().await;
        let held = match lease.as_mut() {
            Some(l) => l.is_held().await,
            None => false,
        };
        if !held {
            let reason = lease
                .as_ref()
                .and_then(|l| l.loss_reason())
                .unwrap_or("the lease connection is not open")
                .to_owned();
            self.step_down(&reason);
        }
        held
    }

    /// One round of lease keeping: a leader checks it still holds the lease, a
    /// standby tries to take it. Returns true when this round made it leader.
    async fn tend_lease(&self) -> bool {
        let Some(store) = self.store() else {
            return false;
        };
        if self.role() == Role::Leader {
            self.confirm_lease().await;
            return false;
        }
        let mut lease = self.lease.lock().await;
        let attempt = match lease.as_mut() {
            Some(l) => l.try_acquire().await,
            None => match store.lease(LEASE_NAME).await {
                Ok(l) => lease.insert(l).try_acquire().await,
                Err(e) => Err(e),
            },
        };
        drop(lease);
        let mut state = self.leadership();
        state.decided = true;
        match attempt {
            Ok(true) => {
                state.lease_error = None;
                drop(state);
                self.become_leader();
                true
            }
            Ok(false) => {
                state.lease_error = None;
                if !state.standby_logged {
                    state.standby_logged = true;
                    info!(
                        lease = LEASE_NAME,
                        retry_every_secs = self.lease_interval().as_secs_f64(),
                        "Standing by: another calsync holds the reconcile lease on this database and runs the passes. This one keeps serving /metrics and /readyz and takes over if the leader goes away."
                    );
                }
                false
            }
            Err(e) => {
                // Once per streak: a database that is down would otherwise repeat
                // the same line every few seconds.
                if state.lease_error.replace(e.to_string()).is_none() {
                    warn!(lease = LEASE_NAME, error = %e, retry_every_secs = self.lease_interval().as_secs_f64(), "Could not try the reconcile lease; standing by (no passes) and retrying. Check that the database is reachable.");
                }
                false
            }
        }
    }

    fn become_leader(&self) {
        {
            let mut state = self.leadership();
            state.term = Some(CancellationToken::new());
            state.standby_logged = false;
        }
        {
            // Readiness judges the passes of this term only.
            let mut health = self.health();
            health.started = Some(Utc::now());
            health.last_pass = None;
        }
        self.metrics.leader.set(1);
        notify(&[sd_notify::NotifyState::Status("leader; reconciling")]);
        info!(
            lease = LEASE_NAME,
            "Acquired the reconcile lease: this calsync is now the leader and runs the passes (scheduled and requested); a first pass starts now."
        );
    }

    fn step_down(&self, reason: &str) {
        let term = {
            let mut state = self.leadership();
            state.standby_logged = true;
            state.term.take()
        };
        let Some(term) = term else {
            return;
        };
        term.cancel();
        self.metrics.leader.set(0);
        self.health().last_pass = None;
        notify(&[sd_notify::NotifyState::Status(
            "standby; another calsync may lead",
        )]);
        info!(
            lease = LEASE_NAME,
            reason,
            "Lost the reconcile lease: stopped reconciling and went back to standby. Another calsync may take over; this one retries the lease and leads again when it can."
        );
    }

    /// How often the lease is tried or checked: one schedule interval, at most
    /// [`LEASE_CHECK_MAX`].
    fn lease_interval(&self) -> Duration {
        crate::schedule::parse(&self.settings().schedule)
            .ok()
            .and_then(|c| crate::schedule::interval(&c, Utc::now()))
            .unwrap_or(LEASE_CHECK_MAX)
            .min(LEASE_CHECK_MAX)
            .max(Duration::from_millis(100))
    }

    /// Gives the lease back (at shutdown), so a standby takes over at once.
    async fn release_lease(&self) {
        let mut lease = self.lease.lock().await;
        if let Some(l) = lease.as_mut() {
            l.release().await;
        }
        *lease = None;
        if let Some(term) = self.leadership().term.take() {
            term.cancel();
        }
        self.metrics.leader.set(0);
    }

    pub async fn drift(
        &self,
        state: crate::store::DriftState,
    ) -> Result<serde_json::Value, String> {
        let store = self.store().ok_or("the database is not connected yet")?;
        let records = store
            .drift_records(state, None)
            .await
            .map_err(|e| e.to_string())?;
        Ok(app::drift_json(&records))
    }

    pub async fn push(&self, id: ServiceId) -> Result<ManualPush, (StatusCode, String)> {
        let reconciler = self.reconciler.get().ok_or((
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is not connected yet".to_owned(),
        ))?;
        let settings = self.settings();
        reconciler
            .push_service(&settings.accounts, id)
            .await
            .map_err(|e| {
                let status = match &e {
                    ManualPushError::NoSuchService(_) => StatusCode::NOT_FOUND,
                    ManualPushError::NotLinked(_) | ManualPushError::NoAccount { .. } => {
                        StatusCode::CONFLICT
                    }
                    _ => StatusCode::BAD_GATEWAY,
                };
                (status, e.to_string())
            })
    }
}

fn notify(state: &[sd_notify::NotifyState<'_>]) {
    // Without systemd (no NOTIFY_SOCKET) this is a no-op.
    let _ = sd_notify::notify(state);
}

/// Connects with backoff until the database answers and its schema is ready.
async fn connect_until_ready(
    daemon: &Daemon,
    shutdown: &CancellationToken,
) -> Option<Arc<Reconciler>> {
    let mut delay = Duration::from_secs(1);
    loop {
        let settings = daemon.settings();
        let attempt = async {
            let store = app::connect(&settings).await?;
            App::with_store((*settings).clone(), store, daemon.metrics_arc()).await
        };
        match attempt.await {
            Ok(app) => {
                daemon.health().db_error = None;
                return Some(app.reconciler);
            }
            Err(e) => {
                let message = format!("{e:#}");
                error!(error = %message, retry_in_secs = delay.as_secs(), "Database not ready; retrying. Check database.url and that the server is up (and `calsync migrate` ran).");
                daemon.health().db_error = Some(message);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(60));
    }
}

impl Daemon {
    fn metrics_arc(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }
}

struct Schedule {
    scheduler: JobScheduler,
    job: Option<Uuid>,
}

impl Schedule {
    async fn new() -> anyhow::Result<Self> {
        let scheduler = JobScheduler::new().await?;
        scheduler.start().await?;
        Ok(Self {
            scheduler,
            job: None,
        })
    }

    async fn set(&mut self, expr: &str, ticks: mpsc::Sender<Tick>) -> anyhow::Result<()> {
        let job = Job::new_async(expr, move |_, _| {
            let ticks = ticks.clone();
            Box::pin(async move {
                // A full channel means a tick is already waiting: nothing to add.
                let _ = ticks.try_send(Tick::Scheduled);
            })
        })
        .map_err(|e| anyhow::anyhow!("sync.schedule {expr:?}: {e}"))?;
        let id = self.scheduler.add(job).await?;
        if let Some(old) = self.job.replace(id) {
            self.scheduler.remove(&old).await?;
        }
        Ok(())
    }

    async fn stop(mut self) {
        let _ = self.scheduler.shutdown().await;
    }
}

/// Runs the daemon until SIGTERM/SIGINT. Returns the exit code.
pub async fn run(
    settings: Settings,
    config_path: PathBuf,
    explicit: bool,
    _logs: LogGuard,
) -> anyhow::Result<u8> {
    let metrics = Arc::new(Metrics::new());
    for a in &settings.accounts {
        metrics.init_account(&a.name);
    }
    let listen = settings.listen;
    let daemon = Arc::new(Daemon::new(settings, metrics));
    let shutdown = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;

    let addr = crate::http::serve(listen, daemon.clone(), shutdown.clone()).await?;
    info!(%addr, version = env!("CARGO_PKG_VERSION"), "calsync started; metrics on /metrics, health on /healthz and /readyz.");

    let connect = {
        let daemon = daemon.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move { connect_until_ready(&daemon, &shutdown).await })
    };
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    tokio::pin!(connect);

    // Wait for the database, answering signals and the watchdog meanwhile.
    let reconciler = loop {
        tokio::select! {
            r = &mut connect => match r {
                Ok(Some(r)) => break r,
                _ => return Ok(app::exit::OK),
            },
            _ = watchdog_tick.tick(), if watchdog.is_some() => notify(&[sd_notify::NotifyState::Watchdog]),
            _ = term.recv() => { shutdown.cancel(); }
            _ = int.recv() => { shutdown.cancel(); }
            _ = hup.recv() => reload(&daemon, &config_path, explicit, None).await,
        }
    };
    let _ = daemon.reconciler.set(reconciler);
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("connected; checking the reconcile lease"),
    ]);
    info!("Database connected; checking the reconcile lease before the first pass.");

    let (ticks_tx, mut ticks) = mpsc::channel::<Tick>(1);
    let mut schedule = Schedule::new().await?;
    schedule
        .set(&daemon.settings().schedule, ticks_tx.clone())
        .await?;
    let keeper = {
        let daemon = daemon.clone();
        let ticks = ticks_tx.clone();
        let stop = shutdown.child_token();
        (tokio::spawn(keep_lease(daemon, ticks, stop.clone())), stop)
    };

    // The running pass and what started it.
    let mut running: Option<(tokio::task::JoinHandle<()>, Tick)> = None;
    loop {
        tokio::select! {
            Some(tick) = ticks.recv() => {
                if daemon.role() != Role::Leader {
                    // A standby's schedule keeps ticking; the leader does the work.
                    continue;
                }
                let first = running.is_none() || tick == Tick::Elected;
                if let Some((handle, started_by)) = &running && !handle.is_finished() {
                    if *started_by == Tick::Elected && tick == Tick::Scheduled {
                        // The pass that starts a leadership stands in for this
                        // tick; nothing was missed.
                        continue;
                    }
                    daemon.metrics.reconcile_skipped_total.inc();
                    warn!("A scheduled pass was skipped because the previous one is still running; consider a longer sync.schedule.");
                    continue;
                }
                let d = daemon.clone();
                let jitter = if first { Duration::ZERO } else { d.settings().jitter };
                running = Some((tokio::spawn(async move { let _ = d.pass(false, jitter).await; }), tick));
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => notify(&[sd_notify::NotifyState::Watchdog]),
            _ = hup.recv() => reload(&daemon, &config_path, explicit, Some((&mut schedule, ticks_tx.clone()))).await,
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }

    daemon.stopping.cancel();
    info!("Stopping: no new passes; letting the running one commit.");
    notify(&[sd_notify::NotifyState::Stopping]);
    schedule.stop().await;
    let (keeper, stop_keeper) = keeper;
    stop_keeper.cancel();
    let _ = keeper.await;
    let limit = daemon.settings().shutdown_timeout;
    if let Some((handle, _)) = running
        && tokio::time::timeout(limit, handle).await.is_err()
    {
        warn!(
            timeout_secs = limit.as_secs(),
            "The running pass did not finish within sync.shutdown_timeout_secs; stopping anyway (its account transactions roll back and the next start redoes the work)."
        );
    }
    // Given back explicitly so a standby takes over at its next attempt rather
    // than when the server notices the closed connection.
    daemon.release_lease().await;
    shutdown.cancel();
    if let Some(store) = daemon.store() {
        store.close().await;
    }
    info!("calsync stopped.");
    Ok(app::exit::OK)
}

/// Keeps the lease until `stop`: tries it (standby) or checks it (leader) every
/// [`Daemon::lease_interval`], first at once. Becoming leader queues a pass.
/// Runs beside the main loop so a slow database never delays signal handling.
async fn keep_lease(daemon: Arc<Daemon>, ticks: mpsc::Sender<Tick>, stop: CancellationToken) {
    loop {
        let round = daemon.tend_lease();
        let elected = tokio::select! {
            _ = stop.cancelled() => return,
            elected = round => elected,
        };
        if elected {
            // A waiting scheduled tick does the same job; replacing it is not needed.
            let _ = ticks.try_send(Tick::Elected);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(daemon.lease_interval()) => {}
        }
    }
}

/// SIGHUP: re-read and validate the config; keep the old one if the new one is bad.
async fn reload(
    daemon: &Daemon,
    path: &std::path::Path,
    explicit: bool,
    schedule: Option<(&mut Schedule, mpsc::Sender<Tick>)>,
) {
    notify(&[sd_notify::NotifyState::Reloading]);
    let loaded = Config::load(path, explicit).and_then(|c| {
        let s = c.validate()?;
        s.require_accounts()?;
        Ok(s)
    });
    match loaded {
        Ok(new) => {
            let old = daemon.settings();
            if new.database_url_differs(&old) || new.listen != old.listen {
                warn!(
                    "database.url and server.listen changes take effect only after a restart; the other changes are applied now."
                );
            }
            if let Some((schedule, ticks)) = schedule
                && new.schedule != old.schedule
                && let Err(e) = schedule.set(&new.schedule, ticks).await
            {
                error!(error = %e, "Config reload rejected: the new schedule cannot be used; the old configuration stays in force.");
                daemon.metrics.config_last_reload_successful.set(0);
                notify(&[sd_notify::NotifyState::Ready]);
                return;
            }
            for gone in old
                .accounts
                .iter()
                .filter(|a| new.account(&a.name).is_none())
            {
                daemon.metrics.forget_account(&gone.name);
            }
            for a in &new.accounts {
                daemon.metrics.init_account(&a.name);
            }
            info!(accounts = new.accounts.len(), schedule = %new.schedule, "Configuration reloaded.");
            daemon.metrics.config_last_reload_successful.set(1);
            daemon
                .metrics
                .config_last_reload_success_timestamp_seconds
                .set(Utc::now().timestamp() as f64);
            *daemon.settings.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
        }
        Err(e) => {
            error!(error = %e, "Config reload rejected; the old configuration stays in force. Fix the file and send SIGHUP again (systemctl reload calsync).");
            daemon.metrics.config_last_reload_successful.set(0);
        }
    }
    notify(&[sd_notify::NotifyState::Ready]);
}
