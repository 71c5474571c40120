//! Operators decide about drift and held accounts: adopt Cal.com's values into the
//! platform, acknowledge a drift entry for a while (or end that early), and
//! approve one pass of an account the blast-radius guard holds. Every decision is
//! journaled in `calsync_decisions` in the same transaction as its effect, and
//! logged and counted by one [`DecisionRecorded`] event.
//!
//! An adoption is the one business-column write outside a pass. It is granted by
//! the operator's decision ([`Adoption::grants`]) for the fields named, guarded by
//! the values the ledger recorded: if the platform row or Cal.com changed since,
//! it is refused and nothing changes (the store rolls the transaction back if the
//! row changes between the check and the write).

use chrono::{NaiveDateTime, Utc};
use serde::Serialize;

use super::apply::{ManualPushError, Reconciler};
use super::diff::compare;
use crate::domain::{
    Account, Acknowledgement, Adoption, Agreed, Comparable, DriftEntry, Field, Policy, Resolution,
    ServiceId,
};
use crate::store::{
    AccountWrite, AckWrite, BaselineWrite, DecisionKind, DecisionRecord, DriftResolution,
    Overwrite, StoreError,
};
use crate::telemetry::events::DecisionRecorded;

/// The longest an acknowledgement may last: drift acknowledged for longer is a
/// permanent blind spot, which is what `ignore` ownership is for.
pub const MAX_ACKNOWLEDGE_DAYS: i64 = 366;

/// Who decided, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecidedBy {
    pub by: String,
    pub note: Option<String>,
}

/// Why a decision was refused. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error("service {0} does not exist")]
    NoSuchService(ServiceId),
    #[error(
        "service {service} has no open drift entry for {field} (closed entries are history and cannot be decided on; see `calsync drift --state all`)"
    )]
    NoOpenEntry { service: ServiceId, field: Field },
    #[error("service {0} has no open drift entries to decide on (see `calsync drift`)")]
    NoOpenDrift(ServiceId),
    #[error(
        "service {service}: the platform's {field} changed since the drift entry was recorded (ledger {recorded:?}, platform now {now:?}); nothing was adopted. Let the next pass record the current values, then decide again"
    )]
    PlatformChanged {
        service: ServiceId,
        field: Field,
        recorded: String,
        now: String,
    },
    #[error(
        "service {service}: Cal.com's {field} changed since the drift entry was recorded (ledger {recorded:?}, Cal.com now {now:?}); nothing was adopted. Let the next pass record the new value, then decide again"
    )]
    CalcomChanged {
        service: ServiceId,
        field: Field,
        recorded: String,
        now: String,
    },
    #[error(
        "service {0} changed in the platform (or was marked pending) while its adoption was written; nothing was adopted. Decide again after the next pass"
    )]
    RowChanged(ServiceId),
    #[error("service {service}: {field} is not acknowledged; nothing to end")]
    NotAcknowledged { service: ServiceId, field: Field },
    #[error("--until {0} is not in the future")]
    UntilPast(String),
    #[error(
        "an acknowledgement may last at most {MAX_ACKNOWLEDGE_DAYS} days (until {0}); use `ignore` ownership for a field Cal.com may change for good"
    )]
    UntilTooFar(String),
    #[error("a note is required: say why (--note TEXT)")]
    NoteMissing,
    #[error(
        "account {account} is not held (its last pass ended {last}); there is nothing to approve"
    )]
    NotHeld { account: String, last: String },
    #[error(
        "account {account} is already approved (decision {id}); its next pass goes through the guard once"
    )]
    AlreadyApproved { account: String, id: i64 },
    #[error("{0}")]
    Fetch(#[from] ManualPushError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl DecisionError {
    /// Whether the thing decided on does not exist (HTTP 404).
    pub fn not_found(&self) -> bool {
        matches!(
            self,
            Self::NoSuchService(_) | Self::Fetch(ManualPushError::NoSuchService(_))
        )
    }

    /// Whether the request itself is wrong or stale (HTTP 409/400), as opposed to
    /// Cal.com or the database failing.
    pub fn refused(&self) -> bool {
        !matches!(
            self,
            Self::Store(_) | Self::Fetch(ManualPushError::Calcom(_) | ManualPushError::Store(_))
        )
    }
}

/// What a decision did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionOutcome {
    pub kind: DecisionKind,
    pub service_id: Option<ServiceId>,
    pub account: Option<String>,
    pub fields: Vec<Field>,
    #[serde(serialize_with = "rfc3339_opt")]
    pub until: Option<NaiveDateTime>,
    pub note: Option<String>,
    pub by: String,
}

fn rfc3339_opt<S: serde::Serializer>(t: &Option<NaiveDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&t.and_utc().to_rfc3339()),
        None => s.serialize_none(),
    }
}

/// The open entries a decision is about: the fields named (each must have one),
/// or every open entry of the service.
fn chosen(
    id: ServiceId,
    open: Vec<DriftEntry>,
    fields: &[Field],
) -> Result<Vec<DriftEntry>, DecisionError> {
    if fields.is_empty() {
        return if open.is_empty() {
            Err(DecisionError::NoOpenDrift(id))
        } else {
            Ok(open)
        };
    }
    fields
        .iter()
        .map(|f| {
            open.iter()
                .find(|e| e.field == *f)
                .cloned()
                .ok_or(DecisionError::NoOpenEntry {
                    service: id,
                    field: *f,
                })
        })
        .collect()
}

impl Reconciler {
    /// `calsync drift adopt`: takes Cal.com's values of the chosen open entries
    /// into the platform, closes them `adopted`, moves the baseline, journals it.
    pub async fn adopt(
        &self,
        accounts: &[Account],
        policy: Policy,
        id: ServiceId,
        fields: &[Field],
        who: &DecidedBy,
    ) -> Result<DecisionOutcome, DecisionError> {
        let open = self.store().drift_for_service(id).await?;
        if open.is_empty() && self.store().service(id).await?.is_none() {
            return Err(DecisionError::NoSuchService(id));
        }
        let entries = chosen(id, open, fields)?;
        let (linked, account, _client, et) = self.fetch_linked(accounts, id).await?;
        let service = &linked.service;
        let platform = Comparable::of_service(&service.values);
        let calcom = Comparable::of_event_type(&et);
        for e in &entries {
            let now_p = platform.get(e.field).map(|v| v.label()).unwrap_or_default();
            if now_p != e.platform_value {
                return Err(DecisionError::PlatformChanged {
                    service: id,
                    field: e.field,
                    recorded: e.platform_value.clone(),
                    now: now_p,
                });
            }
            let now_c = calcom.get(e.field).map(|v| v.label()).unwrap_or_default();
            if now_c != e.calcom_value {
                return Err(DecisionError::CalcomChanged {
                    service: id,
                    field: e.field,
                    recorded: e.calcom_value.clone(),
                    now: now_c,
                });
            }
        }
        let adopted: Vec<Field> = entries.iter().map(|e| e.field).collect();
        let decision = Adoption {
            service_id: id,
            fields: adopted.clone(),
        };
        let mut overwrite = Overwrite::new(id, service.values.clone());
        for grant in decision.grants() {
            overwrite.take(&grant, &et);
        }
        let now = Utc::now().naive_utc();
        let mut w = AccountWrite::new(account.name.clone(), now);
        w.overwrites.push(overwrite);
        w.all_overwrites_or_nothing = true;
        w.drift_resolutions = adopted
            .iter()
            .map(|f| DriftResolution {
                service_id: id,
                field: *f,
                resolution: Resolution::Adopted,
            })
            .collect();
        // Both sides now hold Cal.com's value: that is the new agreement.
        let mut baseline = compare(
            &linked,
            &et,
            &policy.with_ownership(account.ownership).ownership,
        )
        .baseline()
        .clone();
        for f in &adopted {
            if let Some(v) = calcom.get(*f) {
                baseline.fields.insert(*f, Agreed::same(v.key()));
            }
        }
        w.baselines.push(BaselineWrite {
            service_id: Some(id),
            event_type_id: et.id,
            baseline,
        });
        if linked.push_state.is_some() {
            w.push_states_cleared.push(id);
        }
        w.decisions.push(DecisionRecord {
            kind: DecisionKind::Adopt,
            account: Some(account.name.clone()),
            service_id: Some(id),
            fields: adopted.clone(),
            note: who.note.clone(),
            by: who.by.clone(),
            at: now,
            until: None,
        });
        let outcome = self.store().apply(w).await?;
        if outcome.rolled_back {
            return Err(DecisionError::RowChanged(id));
        }
        Ok(self.recorded(DecisionOutcome {
            kind: DecisionKind::Adopt,
            service_id: Some(id),
            account: Some(account.name),
            fields: adopted,
            until: None,
            note: who.note.clone(),
            by: who.by.clone(),
        }))
    }

    /// `calsync drift ack`: the chosen open entries stay open but leave the drift
    /// gauges until `until` (or until Cal.com's value changes).
    pub async fn acknowledge(
        &self,
        id: ServiceId,
        fields: &[Field],
        until: NaiveDateTime,
        who: &DecidedBy,
    ) -> Result<DecisionOutcome, DecisionError> {
        let note = who
            .note
            .clone()
            .filter(|n| !n.trim().is_empty())
            .ok_or(DecisionError::NoteMissing)?;
        let now = Utc::now().naive_utc();
        let shown = until.and_utc().to_rfc3339();
        if until <= now {
            return Err(DecisionError::UntilPast(shown));
        }
        if until > now + chrono::Duration::days(MAX_ACKNOWLEDGE_DAYS) {
            return Err(DecisionError::UntilTooFar(shown));
        }
        let entries = self.open_entries(id, fields).await?;
        let account = entries.first().map(|e| e.account.clone());
        let chosen: Vec<Field> = entries.iter().map(|e| e.field).collect();
        let mut w = AccountWrite::new(account.clone().unwrap_or_default(), now);
        w.acknowledgements = chosen
            .iter()
            .map(|f| AckWrite {
                service_id: id,
                field: *f,
                acknowledgement: Some(Acknowledgement {
                    until,
                    note: note.clone(),
                    by: who.by.clone(),
                }),
            })
            .collect();
        w.decisions.push(DecisionRecord {
            kind: DecisionKind::Acknowledge,
            account: account.clone(),
            service_id: Some(id),
            fields: chosen.clone(),
            note: Some(note.clone()),
            by: who.by.clone(),
            at: now,
            until: Some(until),
        });
        self.store().apply(w).await?;
        Ok(self.recorded(DecisionOutcome {
            kind: DecisionKind::Acknowledge,
            service_id: Some(id),
            account,
            fields: chosen,
            until: Some(until),
            note: Some(note),
            by: who.by.clone(),
        }))
    }

    /// `calsync drift unack`: ends acknowledgements early (all of the service's,
    /// or the fields named, each of which must be acknowledged).
    pub async fn unacknowledge(
        &self,
        id: ServiceId,
        fields: &[Field],
        who: &DecidedBy,
    ) -> Result<DecisionOutcome, DecisionError> {
        let now = Utc::now().naive_utc();
        let entries = self.open_entries(id, fields).await?;
        let acked: Vec<&DriftEntry> = entries
            .iter()
            .filter(|e| e.acknowledged.is_some())
            .collect();
        if let Some(e) = entries.iter().find(|e| e.acknowledged.is_none())
            && !fields.is_empty()
        {
            return Err(DecisionError::NotAcknowledged {
                service: id,
                field: e.field,
            });
        }
        let Some(first) = acked.first() else {
            return Err(DecisionError::NotAcknowledged {
                service: id,
                field: entries[0].field,
            });
        };
        let account = Some(first.account.clone());
        let chosen: Vec<Field> = acked.iter().map(|e| e.field).collect();
        let mut w = AccountWrite::new(first.account.clone(), now);
        w.acknowledgements = chosen
            .iter()
            .map(|f| AckWrite {
                service_id: id,
                field: *f,
                acknowledgement: None,
            })
            .collect();
        w.decisions.push(DecisionRecord {
            kind: DecisionKind::Unacknowledge,
            account: account.clone(),
            service_id: Some(id),
            fields: chosen.clone(),
            note: who.note.clone(),
            by: who.by.clone(),
            at: now,
            until: None,
        });
        self.store().apply(w).await?;
        Ok(self.recorded(DecisionOutcome {
            kind: DecisionKind::Unacknowledge,
            service_id: Some(id),
            account,
            fields: chosen,
            until: None,
            note: who.note.clone(),
            by: who.by.clone(),
        }))
    }

    /// `calsync approve`: lets the next pass of a held account through the
    /// blast-radius guard once.
    pub async fn approve(
        &self,
        account: &str,
        who: &DecidedBy,
    ) -> Result<DecisionOutcome, DecisionError> {
        let last = self.store().last_result(account).await?;
        if last.as_deref() != Some("held") {
            return Err(DecisionError::NotHeld {
                account: account.to_owned(),
                last: last.map_or_else(
                    || "never (no pass has run)".to_owned(),
                    |r| format!("{r:?}"),
                ),
            });
        }
        if let Some(id) = self.store().unused_approval(account).await? {
            return Err(DecisionError::AlreadyApproved {
                account: account.to_owned(),
                id,
            });
        }
        self.store()
            .record_decisions(vec![DecisionRecord {
                kind: DecisionKind::Approve,
                account: Some(account.to_owned()),
                service_id: None,
                fields: Vec::new(),
                note: who.note.clone(),
                by: who.by.clone(),
                at: Utc::now().naive_utc(),
                until: None,
            }])
            .await?;
        Ok(self.recorded(DecisionOutcome {
            kind: DecisionKind::Approve,
            service_id: None,
            account: Some(account.to_owned()),
            fields: Vec::new(),
            until: None,
            note: who.note.clone(),
            by: who.by.clone(),
        }))
    }

    async fn open_entries(
        &self,
        id: ServiceId,
        fields: &[Field],
    ) -> Result<Vec<DriftEntry>, DecisionError> {
        let open = self.store().drift_for_service(id).await?;
        if open.is_empty() && self.store().service(id).await?.is_none() {
            return Err(DecisionError::NoSuchService(id));
        }
        chosen(id, open, fields)
    }

    fn recorded(&self, o: DecisionOutcome) -> DecisionOutcome {
        DecisionRecorded {
            kind: o.kind.as_str(),
            by: &o.by,
            account: o.account.as_deref(),
            service_id: o.service_id,
            fields: &o.fields,
            note: o.note.as_deref(),
        }
        .emit(self.metrics());
        o
    }
}
