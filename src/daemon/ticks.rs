//! The cron schedule of `calsync run`, delivering ticks to the main loop.

use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};
use uuid::Uuid;

/// What a scheduled pass was woken by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tick {
    Scheduled,
    /// This process just became the leader: pass now, without jitter.
    Elected,
}

pub(super) struct Schedule {
    scheduler: JobScheduler,
    job: Option<Uuid>,
}

impl Schedule {
    pub(super) async fn new() -> anyhow::Result<Self> {
        let scheduler = JobScheduler::new().await?;
        scheduler.start().await?;
        Ok(Self {
            scheduler,
            job: None,
        })
    }

    pub(super) async fn set(
        &mut self,
        expr: &str,
        ticks: mpsc::Sender<Tick>,
    ) -> anyhow::Result<()> {
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

    pub(super) async fn stop(mut self) {
        let _ = self.scheduler.shutdown().await;
    }
}
