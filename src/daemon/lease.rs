//! Leader election among replicas sharing one database: the `reconcile` lease,
//! tried by standbys and checked by the leader at `min(schedule interval, 5 s)`
//! and before every pass; losing it stops the running pass.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::ticks::Tick;
use super::{Daemon, LEASE_CHECK_MAX, LEASE_NAME, Role, notify};

#[derive(Default)]
pub(super) struct Leadership {
    /// Set while leader; cancelled when the lease is lost, which stops the
    /// running pass.
    pub(super) term: Option<CancellationToken>,
    /// Whether the lease was tried at least once (until then `/readyz` waits).
    pub(super) decided: bool,
    /// The standby line was logged for the current standby period.
    pub(super) standby_logged: bool,
    /// Why the last attempt to take the lease failed (logged once per streak).
    pub(super) lease_error: Option<String>,
}

impl Daemon {
    /// Checks (one round trip) that the lease is still held; steps down if not.
    pub(super) async fn confirm_lease(&self) -> bool {
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
    pub(super) async fn tend_lease(&self) -> bool {
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
                    crate::telemetry::events::LeaseUnavailable {
                        lease: LEASE_NAME,
                        error: &e.to_string(),
                        retry_every_secs: self.lease_interval().as_secs_f64(),
                    }
                    .emit(&self.metrics);
                }
                false
            }
        }
    }

    pub(super) fn become_leader(&self) {
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

    pub(super) fn step_down(&self, reason: &str) {
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
    pub(super) fn lease_interval(&self) -> Duration {
        crate::schedule::parse(&self.settings().schedule)
            .ok()
            .and_then(|c| crate::schedule::interval(&c, Utc::now()))
            .unwrap_or(LEASE_CHECK_MAX)
            .min(LEASE_CHECK_MAX)
            .max(Duration::from_millis(100))
    }

    /// Gives the lease back (at shutdown), so a standby takes over at once.
    pub(super) async fn release_lease(&self) {
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
}

/// Keeps the lease until `stop`: tries it (standby) or checks it (leader) every
/// [`Daemon::lease_interval`], first at once. Becoming leader queues a pass.
/// Runs beside the main loop so a slow database never delays signal handling.
pub(super) async fn keep_lease(
    daemon: Arc<Daemon>,
    ticks: mpsc::Sender<Tick>,
    stop: CancellationToken,
) {
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
