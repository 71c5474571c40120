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
use crate::store::Store;
use crate::telemetry::logging::LogGuard;
use crate::telemetry::metrics::Metrics;

/// Shared state of the running daemon.
pub struct Daemon {
    settings: RwLock<Arc<Settings>>,
    metrics: Arc<Metrics>,
    reconciler: OnceLock<Arc<Reconciler>>,
    /// Held for the whole of a pass: one pass at a time.
    pass_lock: tokio::sync::Mutex<()>,
    health: Mutex<Health>,
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
        }
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

    /// Ready: database reachable, migrations current, last pass recent enough.
    pub async fn readiness(&self) -> Result<String, String> {
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
    async fn pass(&self, queue: bool, jitter: Duration) -> Option<PassReport> {
        let reconciler = self.reconciler.get()?.clone();
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
                    return None;
                }
            }
        };
        if !jitter.is_zero() {
            let ms = rand::rng().random_range(0..=jitter.as_millis() as u64);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let settings = self.settings();
        let report = reconciler
            .pass(
                &settings.accounts,
                &settings.accounts,
                settings.policy,
                PassOptions {
                    dry_run: false,
                    max_concurrent_accounts: settings.max_concurrent_accounts,
                },
            )
            .await;
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
        Some(report)
    }

    pub async fn reconcile_now(&self) -> Result<PassReport, String> {
        self.pass(true, Duration::ZERO)
            .await
            .ok_or_else(|| "the database is not connected yet".into())
    }

    pub async fn drift(&self) -> Result<serde_json::Value, String> {
        let store = self.store().ok_or("the database is not connected yet")?;
        let entries = store.open_drift(None).await.map_err(|e| e.to_string())?;
        Ok(app::drift_json(&entries))
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

    async fn set(&mut self, expr: &str, ticks: mpsc::Sender<()>) -> anyhow::Result<()> {
        let job = Job::new_async(expr, move |_, _| {
            let ticks = ticks.clone();
            Box::pin(async move {
                // A full channel means a tick is already waiting: nothing to add.
                let _ = ticks.try_send(());
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
    daemon.metrics.leader.set(1);
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status("connected; reconciling"),
    ]);
    info!("Database connected; the first pass starts now.");

    let (ticks_tx, mut ticks) = mpsc::channel::<()>(1);
    let mut schedule = Schedule::new().await?;
    schedule
        .set(&daemon.settings().schedule, ticks_tx.clone())
        .await?;
    let _ = ticks_tx.try_send(());

    let mut running: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        tokio::select! {
            Some(()) = ticks.recv() => {
                let first = running.is_none();
                if running.as_ref().is_some_and(|h| !h.is_finished()) {
                    daemon.metrics.reconcile_skipped_total.inc();
                    warn!("A scheduled pass was skipped because the previous one is still running; consider a longer sync.schedule.");
                    continue;
                }
                let d = daemon.clone();
                let jitter = if first { Duration::ZERO } else { d.settings().jitter };
                running = Some(tokio::spawn(async move { d.pass(false, jitter).await; }));
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => notify(&[sd_notify::NotifyState::Watchdog]),
            _ = hup.recv() => reload(&daemon, &config_path, explicit, Some((&mut schedule, ticks_tx.clone()))).await,
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }

    info!("Stopping: no new passes; letting the running one commit.");
    notify(&[sd_notify::NotifyState::Stopping]);
    schedule.stop().await;
    let limit = daemon.settings().shutdown_timeout;
    if let Some(handle) = running
        && tokio::time::timeout(limit, handle).await.is_err()
    {
        warn!(
            timeout_secs = limit.as_secs(),
            "The running pass did not finish within sync.shutdown_timeout_secs; stopping anyway (its account transactions roll back and the next start redoes the work)."
        );
    }
    shutdown.cancel();
    if let Some(store) = daemon.store() {
        store.close().await;
    }
    info!("calsync stopped.");
    Ok(app::exit::OK)
}

/// SIGHUP: re-read and validate the config; keep the old one if the new one is bad.
async fn reload(
    daemon: &Daemon,
    path: &std::path::Path,
    explicit: bool,
    schedule: Option<(&mut Schedule, mpsc::Sender<()>)>,
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
            *daemon.settings.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
        }
        Err(e) => {
            error!(error = %e, "Config reload rejected; the old configuration stays in force. Fix the file and send SIGHUP again (systemctl reload calsync).")
        }
    }
    notify(&[sd_notify::NotifyState::Ready]);
}
