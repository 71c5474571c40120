//! Pure planning: from the differences and the operator's [`Policy`] to what a pass
//! will do, and (after the pushes ran) to the one [`AccountWrite`] it commits.
//!
//! The protection contract lives here and in the store's signature: the only
//! business-column writes of existing services a plan can contain are
//! [`Overwrites`], and building those needs the [`OverwriteGrant`] that only the
//! policy hands out. Property tests in `tests.rs` check it over random inputs.

use std::collections::{BTreeSet, HashMap};

use chrono::NaiveDateTime;
use serde::Serialize;

use super::diff::{Diff, Difference, calcom_values, compare, imported_values};
use crate::calcom::{EventTypePatch, RecordError};
use crate::domain::{
    DriftEntry, EventType, EventTypeId, Field, FieldDiff, OverwriteGrant, Policy, Resolution,
    Service, ServiceId, SyncStatus,
};
use crate::store::{
    AccountWrite, Confirmation, DriftObservation, DriftResolution, LinkedService, MetadataUpdate,
    NewService, Overwrite, Overwrites, RegistryEntry,
};

/// Why a service is pushed to Cal.com.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushReason {
    /// The platform marked it `pending`.
    Pending,
    /// `repush_drifted`: Cal.com was edited; the platform value goes back.
    Drift,
    /// `calsync push --service` / the operator API.
    Manual,
}

/// One PATCH to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub service: Service,
    pub event_type: EventType,
    pub reason: PushReason,
    /// The pushable fields that differ (what the PATCH sets).
    pub fields: Vec<Field>,
    pub patch: EventTypePatch,
}

/// A known service whose Cal.com event type differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protection {
    pub service: Service,
    pub event_type: EventType,
    pub fields: Vec<FieldDiff>,
}

/// What happened to a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Succeeded,
    Failed(String),
}

/// Everything a pass over one account will do.
#[derive(Debug, Default)]
pub struct Plan {
    pub account: String,
    pub company_id: i64,
    pub imports: Vec<EventType>,
    /// Unknown event types left alone because `import_unknown` is off.
    pub not_imported: Vec<EventTypeId>,
    pub in_sync: Vec<Service>,
    /// Drift kept (PROTECTION), possibly re-pushed.
    pub protections: Vec<Protection>,
    /// Drift applied to the platform (`allow_calcom_overwrites`).
    pub overwrites: Vec<Protection>,
    /// Pending platform edits.
    pub platform_edits: Vec<Protection>,
    pub unreadable: Vec<(RecordError, Option<Service>)>,
    pub orphans: Vec<Service>,
    pub pushes: Vec<Push>,
    pub registry: Vec<RegistryEntry>,
    pub empty_listing_guarded: bool,
    /// Linked services the guard kept from being orphaned.
    pub guarded_services: usize,
    /// Records in the listing (readable or not).
    pub event_types: usize,
    pub policy: Policy,
    open_drift: HashMap<ServiceId, Vec<DriftEntry>>,
}

impl Plan {
    /// Whether the pass would change anything or found anything to report.
    pub fn has_changes(&self) -> bool {
        !(self.imports.is_empty()
            && self.protections.is_empty()
            && self.overwrites.is_empty()
            && self.platform_edits.is_empty()
            && self.unreadable.is_empty()
            && self.orphans.is_empty()
            && self.pushes.is_empty())
    }

    /// Open ledger entries (before this pass) of a service.
    pub fn open_drift_of(&self, id: ServiceId) -> &[DriftEntry] {
        self.open_drift
            .get(&id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }
}

/// Inputs besides the diff.
pub struct PlanInput<'a> {
    pub account: &'a str,
    pub company_id: i64,
    pub policy: Policy,
    pub services: &'a [LinkedService],
    pub open_drift: &'a [DriftEntry],
    pub listed_records: usize,
}

/// Decides, per difference, what the pass does.
pub fn plan(diff: Diff, input: PlanInput<'_>) -> Plan {
    let policy = input.policy;
    let registry_of: HashMap<EventTypeId, &RegistryEntry> = input
        .services
        .iter()
        .filter_map(|l| l.registry.as_ref().map(|r| (r.event_type_id, r)))
        .collect();
    let mut open_drift: HashMap<ServiceId, Vec<DriftEntry>> = HashMap::new();
    for e in input.open_drift {
        open_drift.entry(e.service_id).or_default().push(e.clone());
    }
    let mut plan = Plan {
        account: input.account.to_owned(),
        company_id: input.company_id,
        empty_listing_guarded: diff.empty_listing_guarded,
        guarded_services: diff.guarded_services,
        event_types: input.listed_records,
        policy,
        open_drift,
        ..Plan::default()
    };
    let note_registry = |plan: &mut Plan, et: &EventType| {
        let fresh = RegistryEntry {
            event_type_id: et.id,
            account: input.account.to_owned(),
            team_id: et.team_id,
        };
        if registry_of.get(&et.id).is_none_or(|r| **r != fresh) {
            plan.registry.push(fresh);
        }
    };

    for difference in diff.differences {
        match difference {
            Difference::Unknown(et) => {
                if policy.import_unknown {
                    note_registry(&mut plan, &et);
                    plan.imports.push(et);
                } else {
                    plan.not_imported.push(et.id);
                }
            }
            Difference::InSync {
                service,
                event_type,
            } => {
                note_registry(&mut plan, &event_type);
                plan.in_sync.push(service);
            }
            Difference::Drift {
                service,
                event_type,
                fields,
            } => {
                note_registry(&mut plan, &event_type);
                let p = Protection {
                    service,
                    event_type,
                    fields,
                };
                if policy.allow_calcom_overwrites {
                    plan.overwrites.push(p);
                } else {
                    if policy.repush_drifted
                        && let Some(push) = push_for(&p.service, &p.event_type, PushReason::Drift)
                    {
                        plan.pushes.push(push);
                    }
                    plan.protections.push(p);
                }
            }
            Difference::PlatformEdit {
                service,
                event_type,
                fields,
            } => {
                note_registry(&mut plan, &event_type);
                if policy.push_pending
                    && let Some(push) = push_for(&service, &event_type, PushReason::Pending)
                {
                    plan.pushes.push(push);
                }
                plan.platform_edits.push(Protection {
                    service,
                    event_type,
                    fields,
                });
            }
            Difference::Unreadable { error, service } => plan.unreadable.push((error, service)),
            Difference::Orphaned(service) => plan.orphans.push(service),
        }
    }
    plan
}

/// The PATCH that brings Cal.com to the platform's values, or `None` when no
/// pushable field differs.
pub fn push_for(service: &Service, et: &EventType, reason: PushReason) -> Option<Push> {
    let values = &service.values;
    let fields: Vec<Field> = compare(values, et)
        .into_iter()
        .map(|d| d.field)
        .filter(|f| f.pushable())
        .collect();
    if fields.is_empty() {
        return None;
    }
    let mut patch = EventTypePatch::default();
    for field in &fields {
        match field {
            Field::Name => patch.title = Some(values.name.clone()),
            Field::Description => patch.description = values.description.clone(),
            Field::DurationMinutes => {
                let length = u32::try_from(values.duration_minutes).unwrap_or(0);
                patch.length_in_minutes = Some(length);
                // Cal.com rejects a length missing from the event type's options.
                if let Some(options) = &et.length_options
                    && !options.contains(&length)
                {
                    let mut options = options.clone();
                    options.push(length);
                    options.sort_unstable();
                    patch.length_in_minutes_options = Some(options);
                }
            }
            Field::Visibility => patch.hidden = Some(!values.bookable()),
            Field::Price => {}
        }
    }
    Some(Push {
        service: service.clone(),
        event_type: et.clone(),
        reason,
        fields,
        patch,
    })
}

/// A platform value Cal.com cannot take, found before sending anything.
pub fn push_precheck(push: &Push) -> Result<(), String> {
    if let Some(length) = push.patch.length_in_minutes
        && crate::domain::Minutes::new(i64::from(length)).is_none()
    {
        return Err(format!(
            "service {} has duration_minutes {}, which Cal.com cannot accept (1..={}); fix the service in the platform",
            push.service.id,
            push.service.values.duration_minutes,
            crate::domain::MAX_MINUTES
        ));
    }
    if push
        .patch
        .title
        .as_deref()
        .is_some_and(|t| t.trim().is_empty())
    {
        return Err(format!(
            "service {} has an empty name, which Cal.com cannot accept; fix the service in the platform",
            push.service.id
        ));
    }
    Ok(())
}

/// The sync_error text of a service that drifted.
pub fn drift_message(fields: &[FieldDiff]) -> String {
    let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
    let mut msg = format!(
        "Cal.com differs on {}; the platform values were kept (see `calsync drift`)",
        names.join(", ")
    );
    if fields.iter().any(|f| f.field == Field::Price) {
        msg.push_str("; Cal.com API v2 cannot set prices: change the price in Cal.com");
    }
    msg
}

fn price_message(d: &FieldDiff) -> String {
    format!(
        "price differs (platform {}, Cal.com {}) and Cal.com API v2 cannot set prices: change the price of the event type in Cal.com",
        d.platform, d.calcom
    )
}

fn observation(service: &Service, et: &EventType, d: &FieldDiff) -> DriftObservation {
    DriftObservation {
        service_id: service.id,
        event_type_id: et.id,
        field: d.field,
        platform_value: d.platform.clone(),
        calcom_value: d.calcom.clone(),
    }
}

/// Builds the pass's one write from the plan and what the pushes did.
pub fn build_write(
    plan: &Plan,
    outcomes: &HashMap<ServiceId, PushOutcome>,
    grant: Option<OverwriteGrant>,
    now: NaiveDateTime,
) -> AccountWrite {
    let mut w = AccountWrite::new(plan.account.clone(), now);
    w.registry = plan.registry.clone();
    let pushes: HashMap<ServiceId, &Push> = plan.pushes.iter().map(|p| (p.service.id, p)).collect();

    // Open entries whose field no longer differs resolve as agreed, except those a
    // successful push fixed (resolved as repushed below).
    // `how` closes fields explicitly, also ones first seen in this pass (the store
    // upserts before it resolves, so the ledger keeps their Cal.com value); other
    // open entries whose field no longer differs close as agreed.
    let resolve_rest = |w: &mut AccountWrite,
                        id: ServiceId,
                        still: &BTreeSet<Field>,
                        how: &HashMap<Field, Resolution>| {
        let mut explicit: Vec<(&Field, &Resolution)> = how.iter().collect();
        explicit.sort_by_key(|(f, _)| **f);
        for (field, resolution) in explicit {
            w.drift_resolutions.push(DriftResolution {
                service_id: id,
                field: *field,
                resolution: *resolution,
            });
        }
        for e in plan.open_drift_of(id) {
            if !how.contains_key(&e.field) && !still.contains(&e.field) {
                w.drift_resolutions.push(DriftResolution {
                    service_id: id,
                    field: e.field,
                    resolution: Resolution::Agreed,
                });
            }
        }
    };

    for et in &plan.imports {
        w.imports.push(NewService {
            company_id: plan.company_id,
            event_type_id: et.id,
            values: imported_values(et),
        });
    }

    for s in &plan.in_sync {
        resolve_rest(&mut w, s.id, &BTreeSet::new(), &HashMap::new());
        w.metadata.push(MetadataUpdate {
            id: s.id,
            status: SyncStatus::Synced,
            error: None,
        });
    }

    for p in &plan.protections {
        for d in &p.fields {
            w.drift_upserts
                .push(observation(&p.service, &p.event_type, d));
        }
        let mut still: BTreeSet<Field> = p.fields.iter().map(|d| d.field).collect();
        let mut how = HashMap::new();
        match (pushes.get(&p.service.id), outcomes.get(&p.service.id)) {
            (Some(push), Some(PushOutcome::Succeeded)) => {
                for f in &push.fields {
                    still.remove(f);
                    how.insert(*f, Resolution::Repushed);
                    // Record the Cal.com edit, then close it as repushed (the ledger
                    // keeps what Cal.com had).
                }
                let left: Vec<&FieldDiff> = p
                    .fields
                    .iter()
                    .filter(|d| still.contains(&d.field))
                    .collect();
                if left.is_empty() {
                    w.confirmations.push(Confirmation {
                        id: p.service.id,
                        expected: p.service.values.clone(),
                    });
                } else {
                    let msg = left
                        .iter()
                        .map(|d| {
                            if d.field == Field::Price {
                                price_message(d)
                            } else {
                                drift_message(&[(*d).clone()])
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("; ");
                    w.metadata.push(MetadataUpdate {
                        id: p.service.id,
                        status: SyncStatus::Error,
                        error: Some(msg),
                    });
                }
            }
            (Some(_), Some(PushOutcome::Failed(e))) => w.metadata.push(MetadataUpdate {
                id: p.service.id,
                status: SyncStatus::Error,
                error: Some(format!("{}; re-push failed: {e}", drift_message(&p.fields))),
            }),
            _ => w.metadata.push(MetadataUpdate {
                id: p.service.id,
                status: SyncStatus::Error,
                error: Some(drift_message(&p.fields)),
            }),
        }
        resolve_rest(&mut w, p.service.id, &still, &how);
    }

    let mut overwrite_rows = Vec::new();
    for p in &plan.overwrites {
        let fields: Vec<Field> = p.fields.iter().map(|d| d.field).collect();
        let how: HashMap<Field, Resolution> = fields
            .iter()
            .map(|f| (*f, Resolution::Overwritten))
            .collect();
        for d in &p.fields {
            w.drift_upserts
                .push(observation(&p.service, &p.event_type, d));
        }
        resolve_rest(&mut w, p.service.id, &BTreeSet::new(), &how);
        overwrite_rows.push(Overwrite {
            id: p.service.id,
            expected: p.service.values.clone(),
            new: calcom_values(&p.service.values, &p.event_type, &fields),
        });
    }
    if !overwrite_rows.is_empty()
        && let Some(grant) = grant
    {
        w.overwrites = Some(Overwrites::new(grant, overwrite_rows));
    }

    for p in &plan.platform_edits {
        let unpushable: Vec<&FieldDiff> = p.fields.iter().filter(|d| !d.field.pushable()).collect();
        let mut how = HashMap::new();
        let mut still: BTreeSet<Field> = p.fields.iter().map(|d| d.field).collect();
        match (pushes.get(&p.service.id), outcomes.get(&p.service.id)) {
            (Some(push), Some(PushOutcome::Succeeded)) => {
                for f in &push.fields {
                    still.remove(f);
                    how.insert(*f, Resolution::Repushed);
                }
                confirm_platform_edit(&mut w, p, &unpushable);
            }
            (Some(_), Some(PushOutcome::Failed(e))) => w.metadata.push(MetadataUpdate {
                id: p.service.id,
                // The row stays pending (the store keeps it), so the next pass retries.
                status: SyncStatus::Error,
                error: Some(format!("push to Cal.com failed, will retry: {e}")),
            }),
            (Some(_), None) => {}
            (None, _) if plan.policy.push_pending => confirm_platform_edit(&mut w, p, &unpushable),
            (None, _) => w.metadata.push(MetadataUpdate {
                id: p.service.id,
                status: SyncStatus::Synced,
                error: None,
            }),
        }
        resolve_rest(&mut w, p.service.id, &still, &how);
    }

    for (error, service) in &plan.unreadable {
        if let Some(s) = service {
            w.metadata.push(MetadataUpdate {
                id: s.id,
                status: SyncStatus::Error,
                error: Some(format!("Cal.com's {error}; the service was left unchanged")),
            });
        }
    }

    for s in &plan.orphans {
        let how: HashMap<Field, Resolution> = plan
            .open_drift_of(s.id)
            .iter()
            .map(|e| (e.field, Resolution::Orphaned))
            .collect();
        resolve_rest(&mut w, s.id, &BTreeSet::new(), &how);
        w.metadata.push(MetadataUpdate {
            id: s.id,
            status: SyncStatus::Error,
            error: Some(orphan_message(s, &plan.account)),
        });
    }
    w
}

/// Marks a pending edit synced once everything pushable agrees; a price Cal.com
/// cannot take is recorded in the ledger so it is not lost.
fn confirm_platform_edit(w: &mut AccountWrite, p: &Protection, unpushable: &[&FieldDiff]) {
    for d in unpushable {
        w.drift_upserts
            .push(observation(&p.service, &p.event_type, d));
    }
    w.confirmations.push(Confirmation {
        id: p.service.id,
        expected: p.service.values.clone(),
    });
}

pub fn orphan_message(s: &Service, account: &str) -> String {
    format!(
        "Cal.com event type {} is no longer listed by account {account}; the service was kept. Recreate the event type in Cal.com, or clear calcom_event_type_id to unlink it",
        s.calcom_event_type_id.map(|i| i.0).unwrap_or_default()
    )
}

/// A compact per-account summary of a plan, for the run journal and reports.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlanCounts {
    pub event_types: usize,
    pub imports: usize,
    pub not_imported: usize,
    pub in_sync: usize,
    pub drifted: usize,
    pub overwrites: usize,
    pub platform_edits: usize,
    pub pushes: usize,
    pub orphans: usize,
    pub unreadable: usize,
}

impl Plan {
    pub fn counts(&self) -> PlanCounts {
        PlanCounts {
            event_types: self.event_types,
            imports: self.imports.len(),
            not_imported: self.not_imported.len(),
            in_sync: self.in_sync.len(),
            drifted: self.protections.len(),
            overwrites: self.overwrites.len(),
            platform_edits: self.platform_edits.len(),
            pushes: self.pushes.len(),
            orphans: self.orphans.len(),
            unreadable: self.unreadable.len(),
        }
    }
}

/// Values a pushed service should have in Cal.com afterwards: used to check that
/// Cal.com really took the PATCH (it silently drops what it does not accept).
pub fn push_took_effect(push: &Push, now_in_calcom: &EventType) -> Result<(), String> {
    let still: Vec<FieldDiff> = compare(&push.service.values, now_in_calcom)
        .into_iter()
        .filter(|d| push.fields.contains(&d.field))
        .collect();
    if still.is_empty() {
        return Ok(());
    }
    Err(format!(
        "Cal.com accepted the update but still shows {}",
        still
            .iter()
            .map(|d| format!("{} {:?} (platform {:?})", d.field, d.calcom, d.platform))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

impl Plan {
    /// A plan for one service (the manual push): the same write rules as a pass.
    pub fn single(
        account: &str,
        company_id: i64,
        policy: Policy,
        comparison: Protection,
        push: Option<Push>,
        open: Vec<DriftEntry>,
    ) -> Plan {
        let mut plan = Plan {
            account: account.to_owned(),
            company_id,
            policy,
            ..Plan::default()
        };
        if !open.is_empty() {
            plan.open_drift.insert(comparison.service.id, open);
        }
        plan.pushes.extend(push);
        if comparison.service.sync_status == SyncStatus::Pending {
            plan.platform_edits.push(comparison);
        } else if comparison.fields.is_empty() {
            plan.in_sync.push(comparison.service);
        } else {
            plan.protections.push(comparison);
        }
        plan
    }
}
