//! The main loop of `calsync run`: connect with backoff, serve HTTP, run ticks,
//! reload on SIGHUP, stop when told to.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::lease::keep_lease;
use super::ticks::{Schedule, Tick};
use super::{Daemon, Role, notify};
use crate::app::{self, App};
use crate::config::{Config, Settings};
use crate::reconcile::Reconciler;
use crate::telemetry::events::{
    ConfigReloadRejected, ConfigReloaded, DatabaseNotReady, PassSkipped, ShutdownTimedOut,
};
use crate::telemetry::logging::LogGuard;
use crate::telemetry::metrics::Metrics;

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
                DatabaseNotReady {
                    error: &message,
                    retry_in_secs: delay.as_secs(),
                }
                .emit(&daemon.metrics);
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

/// Runs the daemon until `stop` is cancelled (the caller ties it to SIGTERM and
/// SIGINT). `serve` starts the HTTP surface on the configured address for the
/// daemon's state; passing it in keeps this module free of HTTP. Returns the exit
/// code.
pub async fn run<S, F>(
    settings: Settings,
    config_path: PathBuf,
    explicit: bool,
    _logs: LogGuard,
    serve: S,
    stop: CancellationToken,
) -> anyhow::Result<u8>
where
    S: FnOnce(SocketAddr, Arc<Daemon>, CancellationToken) -> F,
    F: std::future::Future<Output = anyhow::Result<SocketAddr>>,
{
    let metrics = Arc::new(Metrics::new());
    for a in &settings.accounts {
        metrics.init_account(&a.name);
    }
    let listen = settings.listen;
    let daemon = Arc::new(Daemon::new(settings, metrics));
    let shutdown = CancellationToken::new();
    let mut hup = signal(SignalKind::hangup())?;

    let addr = serve(listen, daemon.clone(), shutdown.clone()).await?;
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
            _ = stop.cancelled(), if !shutdown.is_cancelled() => shutdown.cancel(),
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
                    PassSkipped.emit(&daemon.metrics);
                    continue;
                }
                let d = daemon.clone();
                let jitter = if first { Duration::ZERO } else { d.settings().jitter };
                running = Some((tokio::spawn(async move { let _ = d.pass(false, jitter, |_, _| {}).await; }), tick));
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => notify(&[sd_notify::NotifyState::Watchdog]),
            _ = hup.recv() => reload(&daemon, &config_path, explicit, Some((&mut schedule, ticks_tx.clone()))).await,
            _ = stop.cancelled() => break,
        }
    }

    daemon.stopping.cancel();
    if let Some(r) = daemon.reconciler.get() {
        // Account passes that have not begun writing stop now.
        r.stop_before_writing();
    }
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
        ShutdownTimedOut {
            timeout_secs: limit.as_secs(),
        }
        .emit();
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
            let needs_restart = new.database_url_differs(&old) || new.listen != old.listen;
            if let Some((schedule, ticks)) = schedule
                && new.schedule != old.schedule
                && let Err(e) = schedule.set(&new.schedule, ticks).await
            {
                ConfigReloadRejected {
                    error: &format!("the new sync.schedule cannot be used: {e}"),
                }
                .emit(&daemon.metrics);
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
            ConfigReloaded {
                accounts: new.accounts.len(),
                schedule: &new.schedule,
                needs_restart,
            }
            .emit(&daemon.metrics);
            *daemon.settings.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
        }
        Err(e) => ConfigReloadRejected {
            error: &e.to_string(),
        }
        .emit(&daemon.metrics),
    }
    notify(&[sd_notify::NotifyState::Ready]);
}
