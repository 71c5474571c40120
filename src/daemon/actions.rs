//! What the operator API asks of the daemon, as typed results: the ledger and the
//! one-service push. Mapping them to HTTP status codes is `http`'s job.

use crate::app;
use crate::domain::ServiceId;
use crate::reconcile::{ManualPush, ManualPushError};

use super::Daemon;

impl Daemon {
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

    /// The operator API's push of one service.
    pub async fn push(&self, id: ServiceId) -> Result<ManualPush, PushRefused> {
        let reconciler = self.reconciler.get().ok_or(PushRefused::NotConnected)?;
        let settings = self.settings();
        reconciler
            .push_service(&settings.accounts, id)
            .await
            .map_err(PushRefused::Push)
    }
}

/// Why the operator API's push did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PushRefused {
    #[error("the database is not connected yet")]
    NotConnected,
    #[error("{0}")]
    Push(#[from] ManualPushError),
}
