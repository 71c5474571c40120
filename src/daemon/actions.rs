//! What the operator API asks of the daemon, as typed results: the ledger, the
//! one-service push and the decisions about drift and held accounts. Mapping them
//! to HTTP status codes is `http`'s job.

use chrono::NaiveDateTime;

use crate::app;
use crate::domain::{Field, ServiceId};
use crate::reconcile::{DecidedBy, DecisionError, DecisionOutcome, ManualPush, ManualPushError};

use super::Daemon;

/// Who the JSON operator API records as the decider (the console records
/// `console`).
pub const BY_API: &str = "api";

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
        let decisions = store
            .decisions(None, None, 1000)
            .await
            .map_err(|e| e.to_string())?;
        Ok(app::drift_json(&records, &decisions))
    }

    /// The decisions journal, newest first.
    pub async fn decisions(&self) -> Result<serde_json::Value, String> {
        let store = self.store().ok_or("the database is not connected yet")?;
        let decisions = store
            .decisions(None, None, 1000)
            .await
            .map_err(|e| e.to_string())?;
        Ok(decisions.iter().map(app::decision_json).collect())
    }

    /// The operator API's push of one service.
    pub async fn push(&self, id: ServiceId) -> Result<ManualPush, PushRefused> {
        let reconciler = self.reconciler.get().ok_or(PushRefused::NotConnected)?;
        let settings = self.settings();
        reconciler
            .push_service(&settings.accounts, settings.policy, id)
            .await
            .map_err(PushRefused::Push)
    }

    /// `POST /api/v1/services/{id}/adopt` (and the console's adopt).
    pub async fn adopt(
        &self,
        id: ServiceId,
        fields: &[Field],
        note: Option<String>,
        by: &str,
    ) -> Result<DecisionOutcome, DecideRefused> {
        let reconciler = self.reconciler.get().ok_or(DecideRefused::NotConnected)?;
        let settings = self.settings();
        Ok(reconciler
            .adopt(
                &settings.accounts,
                settings.policy,
                id,
                fields,
                &who(by, note),
            )
            .await?)
    }

    /// `POST /api/v1/services/{id}/acknowledge`.
    pub async fn acknowledge(
        &self,
        id: ServiceId,
        fields: &[Field],
        until: NaiveDateTime,
        note: Option<String>,
        by: &str,
    ) -> Result<DecisionOutcome, DecideRefused> {
        let reconciler = self.reconciler.get().ok_or(DecideRefused::NotConnected)?;
        Ok(reconciler
            .acknowledge(id, fields, until, &who(by, note))
            .await?)
    }

    /// `POST /api/v1/services/{id}/unacknowledge`.
    pub async fn unacknowledge(
        &self,
        id: ServiceId,
        fields: &[Field],
        note: Option<String>,
        by: &str,
    ) -> Result<DecisionOutcome, DecideRefused> {
        let reconciler = self.reconciler.get().ok_or(DecideRefused::NotConnected)?;
        Ok(reconciler.unacknowledge(id, fields, &who(by, note)).await?)
    }

    /// `POST /api/v1/accounts/{name}/approve`.
    pub async fn approve(
        &self,
        account: &str,
        note: Option<String>,
        by: &str,
    ) -> Result<DecisionOutcome, DecideRefused> {
        let reconciler = self.reconciler.get().ok_or(DecideRefused::NotConnected)?;
        if self.settings().account(account).is_none() {
            return Err(DecideRefused::NoSuchAccount(account.to_owned()));
        }
        Ok(reconciler.approve(account, &who(by, note)).await?)
    }
}

fn who(by: &str, note: Option<String>) -> DecidedBy {
    DecidedBy {
        by: by.to_owned(),
        note,
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

/// Why an operator API decision did not happen (nothing was changed).
#[derive(Debug, thiserror::Error)]
pub enum DecideRefused {
    #[error("the database is not connected yet")]
    NotConnected,
    #[error("no account named {0:?} in the configuration")]
    NoSuchAccount(String),
    #[error("{0}")]
    Decision(#[from] DecisionError),
}
