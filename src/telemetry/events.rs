//! Operator-visible events as types. Each `emit` writes its one log line and bumps
//! its counter together, so logs and metrics cannot disagree. Log lines put the
//! fields first, then a sentence saying what happened and what to do.
//!
//! Every PROTECTION line starts its message with the word `PROTECTION`, in text and
//! JSON logs alike, so `journalctl -u calsync | grep PROTECTION` finds them all.

use tracing::{debug, error, info, warn};

use super::metrics::Metrics;
use crate::domain::{EventTypeId, Field, FieldDiff, Guard, GuardReason, ServiceId};

/// `name: platform="…" calcom="…"; …` — both sides, quoted, for the log line.
pub fn side_by_side(fields: &[FieldDiff]) -> String {
    fields
        .iter()
        .map(|d| match &d.baseline {
            Some(b) => format!(
                "{}: platform={:?} calcom={:?} baseline={:?}",
                d.field, d.platform, d.calcom, b
            ),
            None => format!(
                "{}: platform={:?} calcom={:?}",
                d.field, d.platform, d.calcom
            ),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn field_names(fields: &[FieldDiff]) -> String {
    fields
        .iter()
        .map(|d| d.field.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// New Cal.com-side values of a known service: someone edited the event type in
/// Cal.com (or both sides changed a field). Emitted once per distinct Cal.com value
/// of a field; later passes that still see it use [`ProtectionStillOpen`].
pub struct ProtectionTriggered<'a> {
    pub account: &'a str,
    pub service_id: ServiceId,
    pub service_name: &'a str,
    pub event_type_id: EventTypeId,
    /// Only the fields whose Cal.com value is new.
    pub fields: &'a [FieldDiff],
    /// Whether the platform values are being pushed over them in this pass.
    pub repush: bool,
    /// Whether any field was changed on both sides.
    pub conflict: bool,
}

impl ProtectionTriggered<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        for d in self.fields {
            metrics
                .protection_triggered_total
                .with_label_values(&[self.account, d.field.as_str()])
                .inc();
        }
        let what = if self.conflict {
            "Cal.com and the platform both changed the event type since they last agreed"
        } else {
            "someone edited the event type in Cal.com"
        };
        let action = if self.repush {
            "the platform values are being pushed to Cal.com; the Cal.com values stay in the drift ledger"
        } else {
            "kept the platform values and recorded the Cal.com values in the drift ledger; see `calsync drift`, then change the platform or push it back with `calsync push --service ID`"
        };
        // One line per field, each value a field of its own (structured in JSON
        // logs): `field`, `platform`, `calcom` and, when there is one, `baseline`.
        for d in self.fields {
            match &d.baseline {
                Some(baseline) => warn!(
                    account = self.account,
                    service_id = self.service_id.0,
                    service_name = self.service_name,
                    event_type_id = self.event_type_id.0,
                    field = d.field.as_str(),
                    platform = d.platform.as_str(),
                    calcom = d.calcom.as_str(),
                    baseline = baseline.as_str(),
                    "PROTECTION: {what}; {action}."
                ),
                None => warn!(
                    account = self.account,
                    service_id = self.service_id.0,
                    service_name = self.service_name,
                    event_type_id = self.event_type_id.0,
                    field = d.field.as_str(),
                    platform = d.platform.as_str(),
                    calcom = d.calcom.as_str(),
                    "PROTECTION: {what} (no baseline yet, so calsync cannot tell which side changed it); {action}."
                ),
            }
        }
    }
}

/// A Cal.com-side value already in the open ledger, seen again.
pub struct ProtectionStillOpen<'a> {
    pub account: &'a str,
    pub service_id: ServiceId,
    pub fields: &'a [FieldDiff],
}

impl ProtectionStillOpen<'_> {
    pub fn emit(&self) {
        debug!(
            account = self.account,
            service_id = self.service_id.0,
            fields = %field_names(self.fields),
            diff = %side_by_side(self.fields),
            "Cal.com still differs as already recorded in the drift ledger; nothing new."
        );
    }
}

/// Cal.com stored a pushed value differently (trimmed, rounded, clamped).
pub struct PushNormalised<'a> {
    pub account: &'a str,
    pub service_id: ServiceId,
    pub event_type_id: EventTypeId,
    pub field: &'a str,
    pub sent: &'a str,
    pub stored: &'a str,
}

impl PushNormalised<'_> {
    pub fn emit(&self) {
        info!(
            account = self.account,
            service_id = self.service_id.0,
            event_type_id = self.event_type_id.0,
            field = self.field,
            sent = self.sent,
            stored = self.stored,
            "Cal.com stored the pushed value differently; recorded as normalised in the drift ledger and taken as agreement, so it is not pushed again."
        );
    }
}

/// A linked event type was missing from the listing, but Cal.com still has it.
pub struct ListingInconsistent<'a> {
    pub account: &'a str,
    pub service_id: ServiceId,
    pub event_type_id: EventTypeId,
}

impl ListingInconsistent<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .listing_inconsistencies_total
            .with_label_values(&[self.account])
            .inc();
        warn!(
            account = self.account,
            service_id = self.service_id.0,
            event_type_id = self.event_type_id.0,
            "Cal.com listing inconsistent: the event type was missing from the listing but Cal.com still has it; the service was kept as it was. Nothing to do unless this repeats every pass."
        );
    }
}

/// Linked event types missing from the listing that this pass could not check.
pub struct OrphanChecksDeferred<'a> {
    pub account: &'a str,
    pub services: usize,
    pub reason: &'a str,
}

impl OrphanChecksDeferred<'_> {
    pub fn emit(&self) {
        info!(
            account = self.account,
            services = self.services,
            reason = self.reason,
            "Some linked event types were missing from the listing and could not be checked with Cal.com in this pass; their services were kept as they were and the next pass checks again."
        );
    }
}

/// Cal.com owns the fields (`sync.ownership`, or `sync.allow_calcom_overwrites`):
/// its values were written into the platform.
pub struct CalcomOverwriteApplied<'a> {
    pub account: &'a str,
    pub service_id: ServiceId,
    pub service_name: &'a str,
    pub event_type_id: EventTypeId,
    pub fields: &'a [FieldDiff],
}

impl CalcomOverwriteApplied<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        for d in self.fields {
            metrics
                .calcom_overwrites_total
                .with_label_values(&[self.account, d.field.as_str()])
                .inc();
        }
        for d in self.fields {
            warn!(
                account = self.account,
                service_id = self.service_id.0,
                service_name = self.service_name,
                event_type_id = self.event_type_id.0,
                field = d.field.as_str(),
                platform = d.platform.as_str(),
                calcom = d.calcom.as_str(),
                "OVERWRITE: Cal.com owns this field (sync.ownership or sync.allow_calcom_overwrites), so Cal.com's value replaced the platform's (the old value is in the drift ledger); make the platform the field's owner to protect it again."
            );
        }
    }
}

/// A new service was created from an unknown event type.
pub struct EventTypeImported<'a> {
    pub account: &'a str,
    pub service_id: ServiceId,
    pub event_type_id: EventTypeId,
    pub title: &'a str,
}

impl EventTypeImported<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .imported_total
            .with_label_values(&[self.account])
            .inc();
        // One line per event type at DEBUG; the pass's summary says how many.
        debug!(
            account = self.account,
            service_id = self.service_id.0,
            event_type_id = self.event_type_id.0,
            title = self.title,
            "Imported a new Cal.com event type as a platform service."
        );
    }
}

/// A PATCH brought Cal.com to the platform's values.
pub struct PushSucceeded<'a> {
    pub account: &'a str,
    pub service_id: ServiceId,
    pub event_type_id: EventTypeId,
    pub reason: &'a str,
    pub replaced: &'a [FieldDiff],
}

impl PushSucceeded<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .pushed_total
            .with_label_values(&[self.account, "success"])
            .inc();
        info!(
            account = self.account,
            service_id = self.service_id.0,
            event_type_id = self.event_type_id.0,
            reason = self.reason,
            replaced = %side_by_side(self.replaced),
            "Pushed the platform values to Cal.com."
        );
    }
}

/// A PATCH failed; the service keeps its status and the error is recorded.
pub struct PushFailed<'a> {
    pub account: &'a str,
    pub service_id: ServiceId,
    pub event_type_id: EventTypeId,
    pub reason: &'a str,
    pub error: &'a str,
}

impl PushFailed<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .pushed_total
            .with_label_values(&[self.account, "failure"])
            .inc();
        warn!(
            account = self.account,
            service_id = self.service_id.0,
            event_type_id = self.event_type_id.0,
            reason = self.reason,
            error = self.error,
            "Push to Cal.com failed; the error is in the service's sync_error. calsync retries with backoff (sync.push_backoff_*) and stops after sync.max_push_attempts or when Cal.com refuses the values."
        );
    }
}

/// A linked service's event type is gone from Cal.com.
pub struct ServiceOrphaned<'a> {
    pub account: &'a str,
    pub service_id: ServiceId,
    pub event_type_id: Option<EventTypeId>,
}

impl ServiceOrphaned<'_> {
    pub fn emit(&self) {
        warn!(
            account = self.account,
            service_id = self.service_id.0,
            event_type_id = self.event_type_id.map(|i| i.0),
            "ORPHANED: Cal.com confirmed the service's event type is gone (404); marked sync_status=error and kept the service. Recreate the event type in Cal.com or unlink the service."
        );
    }
}

/// A listed record could not be read.
pub struct RecordRejected<'a> {
    pub account: &'a str,
    pub service_id: Option<ServiceId>,
    pub error: &'a str,
}

impl RecordRejected<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .unreadable_records_total
            .with_label_values(&[self.account])
            .inc();
        warn!(
            account = self.account,
            service_id = self.service_id.map(|i| i.0),
            error = self.error,
            "Skipped a Cal.com event type calsync cannot read; nothing was written from it. Fix the event type in Cal.com."
        );
    }
}

/// An empty listing while services are linked: nothing was orphaned.
pub struct EmptyListingGuarded<'a> {
    pub account: &'a str,
    pub linked: usize,
}

impl EmptyListingGuarded<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .empty_listings_guarded_total
            .with_label_values(&[self.account])
            .inc();
        warn!(
            account = self.account,
            linked_services = self.linked,
            "Cal.com listed no event types although services are linked to this account; orphaned nothing. Check the account's API key owner and Cal.com."
        );
    }
}

/// An account's pass committed: one INFO line with what it did.
pub struct AccountPassFinished<'a> {
    pub account: &'a str,
    pub result: &'a str,
    pub event_types: usize,
    pub imported: usize,
    pub in_sync: usize,
    pub drifted: usize,
    pub new_calcom_edits: usize,
    pub pushed: usize,
    pub push_failures: usize,
    pub orphans: usize,
    pub unreadable: usize,
    pub duration_ms: u128,
}

impl AccountPassFinished<'_> {
    pub fn emit(&self) {
        info!(
            account = self.account,
            result = self.result,
            event_types = self.event_types,
            imported = self.imported,
            in_sync = self.in_sync,
            drifted = self.drifted,
            new_calcom_edits = self.new_calcom_edits,
            pushed = self.pushed,
            push_failures = self.push_failures,
            orphans = self.orphans,
            unreadable = self.unreadable,
            duration_ms = self.duration_ms as u64,
            "Account pass finished."
        );
    }
}

/// An account's pass failed as a whole.
pub struct AccountFailed<'a> {
    pub account: &'a str,
    pub stage: &'a str,
    pub error: &'a str,
}

impl AccountFailed<'_> {
    /// `metrics` is `None` for a dry run (`plan`), which counts nothing.
    pub fn emit(&self, metrics: Option<&Metrics>) {
        if let Some(m) = metrics {
            m.reconcile_runs_total
                .with_label_values(&[self.account, super::metrics::result::FAILURE])
                .inc();
        }
        error!(
            account = self.account,
            stage = self.stage,
            error = self.error,
            "Reconcile pass failed for this account; nothing was changed for it. The next pass retries."
        );
    }
}

/// A scheduled pass found the previous one still running and did not start.
pub struct PassSkipped;

impl PassSkipped {
    pub fn emit(&self, metrics: &Metrics) {
        metrics.reconcile_skipped_total.inc();
        warn!(
            "A scheduled pass was skipped because the previous one is still running; consider a longer sync.schedule."
        );
    }
}

/// A SIGHUP reload was refused; the configuration in force stays.
pub struct ConfigReloadRejected<'a> {
    pub error: &'a str,
}

impl ConfigReloadRejected<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics.config_last_reload_successful.set(0);
        error!(
            error = self.error,
            "Config reload rejected; the old configuration stays in force. Fix the file (`calsync check-config`) and send SIGHUP again (systemctl reload calsync)."
        );
    }
}

/// A SIGHUP reload was applied.
pub struct ConfigReloaded<'a> {
    pub accounts: usize,
    pub schedule: &'a str,
    /// Changes that need a restart (`database.url`, `server.listen`).
    pub needs_restart: bool,
}

impl ConfigReloaded<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics.config_last_reload_successful.set(1);
        metrics
            .config_last_reload_success_timestamp_seconds
            .set(chrono::Utc::now().timestamp() as f64);
        if self.needs_restart {
            warn!(
                "database.url and server.listen changes take effect only after a restart (systemctl restart calsync); the other changes are applied now."
            );
        }
        info!(
            accounts = self.accounts,
            schedule = self.schedule,
            "Configuration reloaded."
        );
    }
}

/// The database is not (yet) usable; the daemon retries and is not ready.
pub struct DatabaseNotReady<'a> {
    pub error: &'a str,
    pub retry_in_secs: u64,
}

impl DatabaseNotReady<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics.ready.set(0);
        error!(
            error = self.error,
            retry_in_secs = self.retry_in_secs,
            "Database not ready; retrying. Check database.url and that the server is up (and `calsync migrate` ran)."
        );
    }
}

/// The running pass outlived `sync.shutdown_timeout_secs` at shutdown.
pub struct ShutdownTimedOut {
    pub timeout_secs: u64,
}

impl ShutdownTimedOut {
    pub fn emit(&self) {
        warn!(
            timeout_secs = self.timeout_secs,
            "The running pass did not finish within sync.shutdown_timeout_secs; stopping anyway (its account transactions roll back and the next start redoes the work)."
        );
    }
}

/// The reconcile lease could not be tried: this replica runs no passes.
pub struct LeaseUnavailable<'a> {
    pub lease: &'a str,
    pub error: &'a str,
    pub retry_every_secs: f64,
}

impl LeaseUnavailable<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics.leader.set(0);
        warn!(
            lease = self.lease,
            error = self.error,
            retry_every_secs = self.retry_every_secs,
            "Could not try the reconcile lease; standing by (no passes) and retrying. Check that the database is reachable."
        );
    }
}

/// The blast-radius guard held an account: nothing but its run journal line was
/// written.
pub struct GuardTripped<'a> {
    pub account: &'a str,
    pub reason: GuardReason,
    pub orphans: usize,
    pub overwrites: usize,
    pub linked: usize,
    pub policy: Guard,
}

impl GuardTripped<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .guard_tripped_total
            .with_label_values(&[self.account, self.reason.as_str()])
            .inc();
        warn!(
            account = self.account,
            reason = self.reason.as_str(),
            orphans = self.orphans,
            overwrites = self.overwrites,
            linked = self.linked,
            max_orphan_percent = self.policy.max_orphan_percent,
            max_overwrite_percent = self.policy.max_overwrite_percent,
            "GUARD: this pass would orphan or overwrite more of the account's services than sync.guard allows, so the account is held and nothing was written. Check Cal.com (a deleted team, a wrong key, a bulk edit?); if the change is intended, run `calsync approve --account NAME` to let the next pass through once."
        );
    }
}

/// An operator's approval let a pass through the blast-radius guard.
pub struct GuardApprovalUsed<'a> {
    pub account: &'a str,
    pub reason: &'a str,
    pub orphans: usize,
    pub overwrites: usize,
    pub linked: usize,
}

impl GuardApprovalUsed<'_> {
    pub fn emit(&self) {
        info!(
            account = self.account,
            reason = self.reason,
            orphans = self.orphans,
            overwrites = self.overwrites,
            linked = self.linked,
            "The blast-radius guard tripped and an operator's approval let this pass through once."
        );
    }
}

/// A push stopped being retried: Cal.com refused it, or it failed
/// `sync.max_push_attempts` times. Its gauge is `calsync_push_needs_human`.
pub struct PushGaveUp<'a> {
    pub account: &'a str,
    pub service_id: ServiceId,
    pub attempts: u32,
    pub error: &'a str,
}

impl PushGaveUp<'_> {
    pub fn emit(&self) {
        error!(
            account = self.account,
            service_id = self.service_id.0,
            attempts = self.attempts,
            error = self.error,
            "PUSH NEEDS A HUMAN: calsync stopped retrying this push (Cal.com refused it, or it kept failing); fix the cause named in the error, then run `calsync push --service ID`."
        );
    }
}

/// An operator decided about drift or a held account.
pub struct DecisionRecorded<'a> {
    pub kind: &'a str,
    pub by: &'a str,
    pub account: Option<&'a str>,
    pub service_id: Option<ServiceId>,
    pub fields: &'a [Field],
    pub note: Option<&'a str>,
}

impl DecisionRecorded<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .decisions_total
            .with_label_values(&[self.kind])
            .inc();
        let fields: Vec<&str> = self.fields.iter().map(|f| f.as_str()).collect();
        info!(
            decision = self.kind,
            by = self.by,
            account = self.account.unwrap_or_default(),
            service_id = self.service_id.map(|s| s.0),
            fields = fields.join(","),
            note = self.note.unwrap_or_default(),
            "DECISION: an operator decided about drift or a held account; it is journaled in calsync_decisions (`calsync drift --state all`)."
        );
    }
}

/// A failed account pass could not be written to the run journal either.
pub struct RunRecordFailed<'a> {
    pub account: &'a str,
    pub error: &'a str,
}

impl RunRecordFailed<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .run_record_failures_total
            .with_label_values(&[self.account])
            .inc();
        warn!(
            account = self.account,
            error = self.error,
            "Could not record the failed run in calsync_runs; the failure is in this log and in calsync_reconcile_runs_total only. Check that the database is reachable and writable."
        );
    }
}

/// The HTTP server failed to accept a connection (e.g. out of file descriptors).
pub struct HttpAcceptFailed<'a> {
    pub error: &'a str,
}

impl HttpAcceptFailed<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics.http_accept_failures_total.inc();
        warn!(
            error = self.error,
            "HTTP accept failed; continuing. If it repeats, /metrics and /readyz cannot be reached: check the open-file limit (LimitNOFILE) and what holds connections open."
        );
    }
}

/// A Cal.com request failed in a way worth retrying (5xx, timeout, connection
/// error, 429); it is sent again after a backoff, up to `calcom.max_attempts`.
pub struct CalcomRequestRetried<'a> {
    pub account: &'a str,
    pub endpoint: &'a str,
    pub error: &'a str,
    pub retry_in_ms: u64,
}

impl CalcomRequestRetried<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .calcom_retries_total
            .with_label_values(&[self.account])
            .inc();
        warn!(
            account = self.account,
            endpoint = self.endpoint,
            error = self.error,
            retry_in_ms = self.retry_in_ms,
            "Cal.com request failed; retrying with backoff. Nothing to do for one retry; if they go on, check Cal.com's status and calcom.base_url."
        );
    }
}

/// Cal.com answered 429: nothing is sent with the account's key until the block
/// it announced has passed.
pub struct CalcomRateLimited<'a> {
    pub account: &'a str,
    pub endpoint: &'a str,
    pub wait_secs: u64,
}

impl CalcomRateLimited<'_> {
    pub fn emit(&self, metrics: &Metrics) {
        metrics
            .calcom_rate_limited_total
            .with_label_values(&[self.account])
            .inc();
        warn!(
            account = self.account,
            endpoint = self.endpoint,
            wait_secs = self.wait_secs,
            "Cal.com rate limit hit (HTTP 429); sending nothing for this key until the block passes. If it repeats, lower calcom.requests_per_minute or give calsync an API key of its own."
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `emit` wrote, as the text log format writes it.
    fn logged(emit: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = buffer.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn an_unrecorded_failed_run_writes_one_warn_line_and_counts_it() {
        let m = Metrics::new();
        let log = logged(|| {
            RunRecordFailed {
                account: "berlin",
                error: "database is locked",
            }
            .emit(&m)
        });
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.contains(" WARN "), "{log}");
        assert!(
            log.contains("account=\"berlin\" error=\"database is locked\""),
            "{log}"
        );
        assert!(
            log.contains("Could not record the failed run in calsync_runs;"),
            "{log}"
        );
        assert!(
            m.encode()
                .contains("calsync_run_record_failures_total{account=\"berlin\"} 1"),
            "{}",
            m.encode()
        );
    }

    #[test]
    fn a_failed_accept_writes_one_warn_line_and_counts_it() {
        let m = Metrics::new();
        let log = logged(|| {
            HttpAcceptFailed {
                error: "Too many open files (os error 24)",
            }
            .emit(&m)
        });
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.contains(" WARN "), "{log}");
        assert!(
            log.contains("error=\"Too many open files (os error 24)\""),
            "{log}"
        );
        assert!(log.contains("HTTP accept failed; continuing."), "{log}");
        assert!(
            m.encode().contains("calsync_http_accept_failures_total 1"),
            "{}",
            m.encode()
        );
    }

    #[test]
    fn a_retry_writes_one_warn_line_and_counts_it() {
        let m = Metrics::new();
        let log = logged(|| {
            CalcomRequestRetried {
                account: "berlin",
                endpoint: "list_event_types",
                error: "Cal.com answered HTTP 503",
                retry_in_ms: 480,
            }
            .emit(&m)
        });
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.contains(" WARN "), "{log}");
        assert!(
            log.contains(
                "account=\"berlin\" endpoint=\"list_event_types\" error=\"Cal.com answered HTTP 503\" retry_in_ms=480"
            ),
            "{log}"
        );
        assert!(
            log.contains("Cal.com request failed; retrying with backoff."),
            "{log}"
        );
        assert!(
            m.encode()
                .contains("calsync_calcom_retries_total{account=\"berlin\"} 1"),
            "{}",
            m.encode()
        );
    }

    #[test]
    fn a_429_writes_one_warn_line_and_counts_it() {
        let m = Metrics::new();
        let log = logged(|| {
            CalcomRateLimited {
                account: "berlin",
                endpoint: "update_event_type",
                wait_secs: 60,
            }
            .emit(&m)
        });
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.contains(" WARN "), "{log}");
        assert!(
            log.contains("account=\"berlin\" endpoint=\"update_event_type\" wait_secs=60"),
            "{log}"
        );
        assert!(log.contains("Cal.com rate limit hit (HTTP 429)"), "{log}");
        assert!(
            m.encode()
                .contains("calsync_calcom_rate_limited_total{account=\"berlin\"} 1"),
            "{}",
            m.encode()
        );
    }

    #[test]
    fn the_empty_listing_warning_and_its_counter_go_together() {
        let m = Metrics::new();
        EmptyListingGuarded {
            account: "berlin",
            linked: 2,
        }
        .emit(&m);
        assert!(
            m.encode()
                .contains("calsync_empty_listings_guarded_total{account=\"berlin\"} 1"),
            "{}",
            m.encode()
        );
    }
}
