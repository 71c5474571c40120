//! Pure planning: from the differences and the operator's [`Policy`] to one
//! [`Decision`] per service, and (after the pushes ran) to the one
//! [`AccountWrite`] a pass commits.
//!
//! The protection contract lives here and in the store's signature: the only
//! business-column writes of existing services a plan can contain are
//! [`Overwrite`]s, and changing a field in one needs the [`FieldGrant`] that only
//! the field's ownership (or an operator's adoption) hands out. The ledger rule lives here too: every Cal.com value that a
//! pass does not apply, or pushes over, is written to the drift ledger in the same
//! transaction. The model-based tests in `tests.rs` check both over random runs.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDateTime;
use serde::Serialize;

use super::diff::{Comparison, Diff, Difference, FieldChange, imported_baseline, imported_values};
use crate::calcom::{EventTypePatch, RecordError};
use crate::domain::{
    Agreed, Change, Comparable, DriftEntry, EventType, EventTypeId, Field, Origin, Owner, Policy,
    PushState, Resolution, Service, ServiceId, SyncStatus,
};
use crate::store::{
    AccountWrite, BaselineWrite, Confirmation, DriftObservation, DriftResolution, GaveUp,
    LinkedService, MetadataUpdate, NewService, Overwrite, PushStateWrite, RegistryEntry,
};

/// Why a service is pushed to Cal.com.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PushReason {
    /// The platform marked it `pending`.
    Pending,
    /// The platform changed it without marking it (found against the baseline).
    PlatformEdit,
    /// `repush_drifted`: Cal.com was edited; the platform value goes back.
    Drift,
    /// `calsync push --service` / the operator API.
    Manual,
}

impl PushReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::PlatformEdit => "platform_edit",
            Self::Drift => "drift",
            Self::Manual => "manual",
        }
    }
}

/// One PATCH to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    pub service: Service,
    pub event_type: EventType,
    pub reason: PushReason,
    /// The fields the PATCH sets.
    pub fields: Vec<Field>,
    pub patch: EventTypePatch,
}

/// Why a platform edit is not pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hold {
    /// `sync.push_pending` is off.
    PushingOff,
    /// Not marked `pending`, and `sync.detect_platform_edits` is off.
    NotMarkedPending,
    /// API v2 cannot set it (price).
    Unpushable,
    /// Cal.com owns the field (`sync.ownership`): the platform's edit is recorded
    /// as drift the other way, not pushed.
    CalcomOwned,
    /// The same push failed before; the next attempt waits (`sync.push_backoff_*`).
    Backoff,
    /// Cal.com refused the same push, or it failed `sync.max_push_attempts` times:
    /// not retried until the platform changes or an operator pushes.
    NeedsHuman,
}

/// What the pass does with one differing field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldAction {
    /// A Cal.com-side value kept out of the platform: recorded (open), PROTECTION
    /// when it is a new value.
    KeepPlatform,
    /// A Cal.com-side edit pushed back (`repush_drifted` or a manual push); the
    /// entry closes `repushed` once Cal.com took it.
    Repush,
    /// A platform edit over Cal.com's agreed value: pushed; nothing of Cal.com's
    /// is lost.
    PushEdit,
    /// A platform edit over a Cal.com value that also changed (a conflict, or no
    /// baseline yet): pushed; Cal.com's value is recorded and closes `superseded`.
    PushOver,
    /// A platform edit not pushed.
    Hold(Hold),
    /// Cal.com owns the field: its value into the platform (`overwritten`).
    TakeCalcom,
}

/// Where a field's Cal.com value stands against the open ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sighting {
    /// No open entry for the field: a new value.
    New,
    /// The open entry holds this value already.
    Seen,
    /// The open entry holds an older Cal.com value; this one is new.
    Replaced,
}

/// One differing field and the pass's decision about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldPlan {
    pub change: FieldChange,
    pub action: FieldAction,
    /// The ledger origin when Cal.com's value is recorded.
    pub origin: Option<Origin>,
    pub sighting: Sighting,
}

impl FieldPlan {
    /// Whether this field makes a PROTECTION event: a Cal.com-side value kept out
    /// of the platform or pushed over, seen for the first time.
    pub fn protection(&self) -> bool {
        matches!(self.origin, Some(Origin::CalcomEdit | Origin::Conflict))
            && self.action != FieldAction::TakeCalcom
            && self.sighting != Sighting::Seen
    }

    fn pushed(&self) -> bool {
        matches!(
            self.action,
            FieldAction::Repush | FieldAction::PushEdit | FieldAction::PushOver
        )
    }
}

/// A known service whose event type differs, with a decision per field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePlan {
    pub cmp: Comparison,
    pub fields: Vec<FieldPlan>,
    pub push: Option<Push>,
}

impl ServicePlan {
    pub fn service(&self) -> &Service {
        &self.cmp.service
    }

    /// Fields whose Cal.com value is recorded in the ledger (Cal.com-side changes).
    pub fn calcom_side(&self) -> impl Iterator<Item = &FieldPlan> {
        self.fields
            .iter()
            .filter(|f| f.origin.is_some() && f.action != FieldAction::TakeCalcom)
    }

    pub fn overwrites(&self) -> impl Iterator<Item = &FieldPlan> {
        self.fields
            .iter()
            .filter(|f| f.action == FieldAction::TakeCalcom)
    }
}

/// What a pass does with one listed record or linked service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Unknown event type, imported as a new service.
    Import(EventType),
    /// Unknown event type left alone (`import_unknown` is off).
    NotImported(EventTypeId),
    /// Both sides agree: metadata, a baseline that moved, pending confirmed.
    InSync(Box<Comparison>),
    /// Some fields differ: see each [`FieldPlan`]. (Boxed: it is the large one.)
    Reconcile(Box<ServicePlan>),
    /// A record calsync cannot read: nothing written from it.
    Unreadable {
        error: RecordError,
        service: Option<Service>,
    },
    /// Cal.com confirmed the event type is gone.
    Orphan(Service),
}

/// What happened to a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// Cal.com took the PATCH; the event type as Cal.com stored it.
    Succeeded(EventType),
    Failed(PushFailure),
}

/// Why a push failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushFailure {
    pub error: String,
    /// Cal.com refused it (a 4xx other than 429), or calsync knew before sending
    /// that Cal.com cannot take the value: retrying the same PATCH cannot help.
    pub refused: bool,
}

/// Everything a pass over one account will do.
#[derive(Debug, Default)]
pub struct Plan {
    pub account: String,
    pub company_id: i64,
    pub decisions: Vec<Decision>,
    pub registry: Vec<RegistryEntry>,
    pub empty_listing_guarded: bool,
    /// Linked services the guard kept from being orphaned.
    pub guarded_services: usize,
    /// Linked services missing from the listing that Cal.com still has (or that
    /// could not be checked in this pass): left as they were.
    pub kept_missing: Vec<(Service, String)>,
    /// Records in the listing (readable or not).
    pub event_types: usize,
    pub policy: Policy,
    pub now: NaiveDateTime,
    open_drift: HashMap<ServiceId, Vec<DriftEntry>>,
}

impl Plan {
    /// Whether the pass would change anything or found anything to report.
    pub fn has_changes(&self) -> bool {
        self.decisions
            .iter()
            .any(|d| !matches!(d, Decision::InSync(_)))
    }

    /// Open ledger entries (before this pass) of a service.
    pub fn open_drift_of(&self, id: ServiceId) -> &[DriftEntry] {
        self.open_drift
            .get(&id)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    pub fn pushes(&self) -> impl Iterator<Item = &Push> {
        self.decisions.iter().filter_map(|d| match d {
            Decision::Reconcile(sp) => sp.push.as_ref(),
            _ => None,
        })
    }

    pub fn services(&self) -> impl Iterator<Item = &ServicePlan> {
        self.decisions.iter().filter_map(|d| match d {
            Decision::Reconcile(sp) => Some(sp.as_ref()),
            _ => None,
        })
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
    /// When the pass plans (backoff: is the next attempt due?).
    pub now: NaiveDateTime,
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
        now: input.now,
        open_drift,
        ..Plan::default()
    };
    let note_registry = |plan: &mut Plan, et: &EventType| {
        let fresh = RegistryEntry {
            event_type_id: et.id,
            account: input.account.to_owned(),
            team_id: et.team_id,
            gone_at: None,
        };
        if registry_of.get(&et.id).is_none_or(|r| **r != fresh) {
            plan.registry.push(fresh);
        }
    };

    for difference in diff.differences {
        let decision = match difference {
            Difference::Unknown(et) => {
                if policy.import_unknown {
                    note_registry(&mut plan, &et);
                    Decision::Import(et)
                } else {
                    Decision::NotImported(et.id)
                }
            }
            Difference::InSync(cmp) => {
                note_registry(&mut plan, &cmp.event_type);
                Decision::InSync(Box::new(cmp))
            }
            Difference::Differs(cmp) => {
                note_registry(&mut plan, &cmp.event_type);
                let open = plan.open_drift_of(cmp.service.id).to_vec();
                Decision::Reconcile(Box::new(plan_service(cmp, policy, &open, None, input.now)))
            }
            Difference::Unreadable { error, service } => Decision::Unreadable { error, service },
            Difference::Orphaned(service) => Decision::Orphan(service),
        };
        plan.decisions.push(decision);
    }
    plan
}

/// The decision for each differing field of one service, and the PATCH.
/// `reason` overrides the push reason (a manual push, which backoff never holds).
pub fn plan_service(
    cmp: Comparison,
    policy: Policy,
    open: &[DriftEntry],
    reason: Option<PushReason>,
    now: NaiveDateTime,
) -> ServicePlan {
    let pending = cmp.service.sync_status == SyncStatus::Pending;
    let mut fields: Vec<FieldPlan> = cmp
        .fields
        .iter()
        .map(|fc| {
            let pushable = fc.field.pushable();
            let action = match (policy.ownership.of(fc.field), fc.change) {
                // `compare` never yields an ignored field; should one arrive, it
                // is neither written nor pushed.
                (Owner::Ignore, _) => FieldAction::Hold(Hold::CalcomOwned),
                (Owner::Calcom, Change::CalcomEdit | Change::Conflict) => FieldAction::TakeCalcom,
                (Owner::Calcom, Change::PlatformEdit) => FieldAction::Hold(Hold::CalcomOwned),
                (Owner::Platform, Change::CalcomEdit) if policy.repush_drifted && pushable => {
                    FieldAction::Repush
                }
                (Owner::Platform, Change::CalcomEdit) => FieldAction::KeepPlatform,
                (Owner::Platform, Change::Conflict) if policy.push_pending && pushable => {
                    FieldAction::PushOver
                }
                (Owner::Platform, Change::Conflict) => FieldAction::KeepPlatform,
                (Owner::Platform, Change::PlatformEdit) if !pushable => {
                    FieldAction::Hold(Hold::Unpushable)
                }
                (Owner::Platform, Change::PlatformEdit) if !policy.push_pending => {
                    FieldAction::Hold(Hold::PushingOff)
                }
                (Owner::Platform, Change::PlatformEdit) if fc.baseline.is_none() => {
                    FieldAction::PushOver
                }
                (Owner::Platform, Change::PlatformEdit)
                    if !(pending || policy.detect_platform_edits) =>
                {
                    FieldAction::Hold(Hold::NotMarkedPending)
                }
                (Owner::Platform, Change::PlatformEdit) => FieldAction::PushEdit,
            };
            let origin = match (fc.change, action) {
                (Change::CalcomEdit, _) => Some(Origin::CalcomEdit),
                (Change::Conflict, _) => Some(Origin::Conflict),
                (Change::PlatformEdit, FieldAction::Hold(Hold::CalcomOwned)) => {
                    Some(Origin::PlatformEdit)
                }
                // No baseline: calsync cannot tell whether Cal.com changed too, so
                // Cal.com's value is recorded whether it is pushed over or not.
                (Change::PlatformEdit, _) if fc.baseline.is_none() => Some(Origin::Conflict),
                (Change::PlatformEdit, _) => None,
            };
            let calcom = fc.calcom.label();
            let sighting = match open.iter().find(|e| e.field == fc.field) {
                None => Sighting::New,
                Some(e) if e.calcom_value == calcom => Sighting::Seen,
                Some(_) => Sighting::Replaced,
            };
            FieldPlan {
                change: fc.clone(),
                action,
                origin,
                sighting,
            }
        })
        .collect();
    let mut push_fields: Vec<Field> = fields
        .iter()
        .filter(|f| f.pushed())
        .map(|f| f.change.field)
        .collect();
    // Backoff: the same values failed before. Wait for the next attempt, or for a
    // human when Cal.com refused them; a platform change makes a new key.
    if reason.is_none()
        && !push_fields.is_empty()
        && let Some(state) = &cmp.push_state
        && state.values_key == values_key(&cmp.service, &push_fields)
    {
        let hold = if state.needs_human {
            Some(Hold::NeedsHuman)
        } else if now < state.next_attempt_at {
            Some(Hold::Backoff)
        } else {
            None
        };
        if let Some(hold) = hold {
            for f in fields.iter_mut().filter(|f| f.pushed()) {
                f.action = FieldAction::Hold(hold);
            }
            push_fields.clear();
        }
    }
    let reason = reason.unwrap_or_else(|| {
        if pending {
            PushReason::Pending
        } else if fields
            .iter()
            .any(|f| matches!(f.action, FieldAction::PushEdit | FieldAction::PushOver))
        {
            PushReason::PlatformEdit
        } else {
            PushReason::Drift
        }
    });
    let push = patch_for(&cmp.service, &cmp.event_type, &push_fields).map(|patch| Push {
        service: cmp.service.clone(),
        event_type: cmp.event_type.clone(),
        reason,
        fields: push_fields,
        patch,
    });
    ServicePlan { cmp, fields, push }
}

/// The platform values a push of `fields` carries, canonical: the key a push's
/// retry state is kept under.
pub fn values_key(service: &Service, fields: &[Field]) -> String {
    let values = Comparable::of_service(&service.values);
    let map: BTreeMap<&str, String> = fields
        .iter()
        .filter_map(|f| Some((f.as_str(), values.get(*f)?.key())))
        .collect();
    serde_json::to_string(&map).unwrap_or_default()
}

/// The PATCH that sets `fields` to the platform's values, or `None` for none.
fn patch_for(service: &Service, et: &EventType, fields: &[Field]) -> Option<EventTypePatch> {
    if fields.is_empty() {
        return None;
    }
    let values = &service.values;
    let mut patch = EventTypePatch::default();
    for field in fields {
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
    Some(patch)
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
pub fn drift_message(fields: &[Field]) -> String {
    let names: Vec<&str> = fields.iter().map(|f| f.as_str()).collect();
    let mut msg = format!(
        "Cal.com differs on {}; the platform values were kept (see `calsync drift`)",
        names.join(", ")
    );
    if fields.contains(&Field::Price) {
        msg.push_str("; Cal.com API v2 cannot set prices: change the price in Cal.com");
    }
    msg
}

fn price_message(d: &FieldChange) -> String {
    format!(
        "price differs (platform {}, Cal.com {}) and Cal.com API v2 cannot set prices: change the price of the event type in Cal.com",
        d.platform.label(),
        d.calcom.label()
    )
}

/// Why the fields left differing after this pass differ, for `sync_error`. A push
/// that needs a human comes first: the message then begins `needs a human:`.
fn status_message(
    id: ServiceId,
    left: &[&FieldPlan],
    failure: Option<&PushFailure>,
    state: Option<&PushState>,
    policy: Policy,
) -> String {
    let mut parts = Vec::new();
    let retry = |fields: &str, state: &PushState| {
        if state.needs_human {
            format!(
                "needs a human: Cal.com did not take the push of {fields} after {} attempt(s) (last answer: {}); calsync stops retrying until the service changes in the platform. Fix the cause, then push it with `calsync push --service {id}`",
                state.attempts, state.last_error
            )
        } else {
            format!(
                "push of {fields} to Cal.com failed (attempt {} of {}): {}; next attempt after {} UTC",
                state.attempts,
                policy.backoff.max_attempts,
                state.last_error,
                state.next_attempt_at.format("%Y-%m-%d %H:%M:%S")
            )
        }
    };
    let waiting: Vec<&str> = left
        .iter()
        .filter(|f| {
            matches!(
                f.action,
                FieldAction::Hold(Hold::Backoff | Hold::NeedsHuman)
            )
        })
        .map(|f| f.change.field.as_str())
        .collect();
    match (state, failure) {
        (Some(state), _) if !waiting.is_empty() => parts.push(retry(&waiting.join(", "), state)),
        (Some(state), Some(_)) => parts.push(retry("the platform's values", state)),
        (None, Some(f)) => parts.push(format!("push to Cal.com failed, will retry: {}", f.error)),
        (_, None) => {}
    }
    let kept: Vec<Field> = left
        .iter()
        .filter(|f| f.action == FieldAction::KeepPlatform && f.change.field != Field::Price)
        .map(|f| f.change.field)
        .collect();
    if !kept.is_empty() {
        parts.push(drift_message(&kept));
    }
    for f in left {
        let name = f.change.field.as_str();
        match f.action {
            FieldAction::KeepPlatform if f.change.field == Field::Price => {
                parts.push(price_message(&f.change))
            }
            FieldAction::Hold(Hold::Unpushable) => parts.push(price_message(&f.change)),
            FieldAction::Hold(Hold::PushingOff) => parts.push(format!(
                "the platform's edit of {name} is not pushed: sync.push_pending is off"
            )),
            FieldAction::Hold(Hold::NotMarkedPending) => parts.push(format!(
                "the platform changed {name} without marking the service pending and sync.detect_platform_edits is off: set sync_status='pending' to push it"
            )),
            FieldAction::Hold(Hold::CalcomOwned) => parts.push(format!(
                "the platform changed {name}, which Cal.com owns (sync.ownership), so it is not pushed: make the change in Cal.com, or make the platform the owner of {name}"
            )),
            FieldAction::Hold(Hold::Backoff | Hold::NeedsHuman) => {}
            FieldAction::KeepPlatform
            | FieldAction::Repush
            | FieldAction::PushEdit
            | FieldAction::PushOver
            | FieldAction::TakeCalcom => {}
        }
    }
    parts.join("; ")
}

fn observation(
    service: &Service,
    et: &EventType,
    f: &FieldChange,
    origin: Origin,
) -> DriftObservation {
    DriftObservation {
        service_id: service.id,
        event_type_id: et.id,
        field: f.field,
        origin,
        platform_value: f.platform.label(),
        calcom_value: f.calcom.label(),
        baseline_value: f.baseline.as_ref().map(Agreed::label),
        closed: None,
        intent: None,
    }
}

/// The Cal.com values the pushes of this plan will replace, as open ledger
/// entries carrying the resolution they get once pushed over. Written in their
/// own transaction before any PATCH is sent, so a crash between a push and the
/// pass's commit cannot lose a Cal.com value.
pub fn push_intents(plan: &Plan) -> Vec<DriftObservation> {
    let mut out = Vec::new();
    for sp in plan.services() {
        let Some(push) = &sp.push else { continue };
        for fp in &sp.fields {
            let intent = match fp.action {
                FieldAction::Repush => Resolution::Repushed,
                FieldAction::PushOver => Resolution::Superseded,
                FieldAction::KeepPlatform
                | FieldAction::PushEdit
                | FieldAction::Hold(_)
                | FieldAction::TakeCalcom => continue,
            };
            let Some(origin) = fp.origin else { continue };
            if !push.fields.contains(&fp.change.field) {
                continue;
            }
            let mut o = observation(&push.service, &push.event_type, &fp.change, origin);
            o.intent = Some(intent);
            out.push(o);
        }
    }
    out
}

/// What a pass learned from Cal.com's answer to one push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised {
    pub field: Field,
    pub sent: String,
    pub stored: String,
}

/// The fields Cal.com stored differently from what was pushed.
pub fn normalised(push: &Push, now_in_calcom: &EventType) -> Vec<Normalised> {
    let platform = Comparable::of_service(&push.service.values);
    let calcom = Comparable::of_event_type(now_in_calcom);
    push.fields
        .iter()
        .filter_map(|f| {
            let (p, c) = (platform.get(*f)?, calcom.get(*f)?);
            (!p.agrees(&c)).then(|| Normalised {
                field: *f,
                sent: p.label(),
                stored: c.label(),
            })
        })
        .collect()
}

/// Builds the pass's one write from the plan and what the pushes did.
pub fn build_write(
    plan: &Plan,
    outcomes: &HashMap<ServiceId, PushOutcome>,
    now: NaiveDateTime,
) -> AccountWrite {
    let mut w = AccountWrite::new(plan.account.clone(), now);
    w.registry = plan.registry.clone();

    for decision in &plan.decisions {
        match decision {
            Decision::Import(et) => {
                w.imports.push(NewService {
                    company_id: plan.company_id,
                    event_type_id: et.id,
                    values: imported_values(et),
                });
                w.baselines.push(BaselineWrite {
                    service_id: None,
                    event_type_id: et.id,
                    baseline: imported_baseline(et),
                });
            }
            Decision::NotImported(_) => {}
            Decision::InSync(cmp) => {
                let id = cmp.service.id;
                let unmanaged = unmanaged_fields(&cmp.service);
                close_open(&mut w, plan, id, &BTreeMap::new(), &[], &[], &unmanaged);
                if cmp.push_state.is_some() {
                    w.push_states_cleared.push(id);
                }
                if cmp.baseline_changed() {
                    w.baselines.push(BaselineWrite {
                        service_id: Some(id),
                        event_type_id: cmp.event_type.id,
                        baseline: cmp.baseline().clone(),
                    });
                }
                if cmp.service.sync_status == SyncStatus::Pending {
                    w.confirmations.push(Confirmation {
                        id,
                        expected: cmp.service.values.clone(),
                    });
                } else {
                    note_metadata(&mut w, plan, &cmp.service, SyncStatus::Synced, None, false);
                }
            }
            Decision::Reconcile(sp) => {
                write_service(&mut w, plan, sp, outcomes.get(&sp.cmp.service.id))
            }
            Decision::Unreadable { error, service } => {
                if let Some(s) = service {
                    let error = format!("Cal.com's {error}; the service was left unchanged");
                    note_metadata(&mut w, plan, s, SyncStatus::Error, Some(error), false);
                }
            }
            Decision::Orphan(s) => {
                let how: BTreeMap<Field, Resolution> = plan
                    .open_drift_of(s.id)
                    .iter()
                    .map(|e| (e.field, Resolution::Orphaned))
                    .collect();
                close_open(&mut w, plan, s.id, &how, &[], &[], &[]);
                let error = orphan_message(s, &plan.account);
                note_metadata(&mut w, plan, s, SyncStatus::Error, Some(error), false);
            }
        }
    }
    w
}

/// Closes open entries of a service: the fields in `how` as given (also ones first
/// seen in this pass: the store upserts before it resolves, so the ledger keeps
/// their Cal.com value). Every other open entry closes unless its field was
/// observed again in this pass (`observed`, refreshed by an upsert): as `agreed`
/// when the sides agree now, as `superseded` when they still differ but Cal.com no
/// longer holds a value that needs recording (it went back to the agreed one).
/// An entry of a field the platform does not manage right now (an empty
/// description, `unmanaged`) stays open: Cal.com's value is still not applied.
fn close_open(
    w: &mut AccountWrite,
    plan: &Plan,
    id: ServiceId,
    how: &BTreeMap<Field, Resolution>,
    observed: &[Field],
    differing: &[Field],
    unmanaged: &[Field],
) {
    for (field, resolution) in how {
        w.drift_resolutions.push(DriftResolution {
            service_id: id,
            field: *field,
            resolution: *resolution,
        });
    }
    for e in plan.open_drift_of(id) {
        if how.contains_key(&e.field)
            || observed.contains(&e.field)
            || (unmanaged.contains(&e.field) && plan.policy.ownership.compared(e.field))
        {
            continue;
        }
        w.drift_resolutions.push(DriftResolution {
            service_id: id,
            field: e.field,
            resolution: if !plan.policy.ownership.compared(e.field) {
                Resolution::Ignored
            } else if differing.contains(&e.field) {
                Resolution::Superseded
            } else {
                Resolution::Agreed
            },
        });
    }
}

/// The fields the platform does not manage right now (compared only once it does).
fn unmanaged_fields(service: &Service) -> Vec<Field> {
    let values = Comparable::of_service(&service.values);
    Field::ALL
        .into_iter()
        .filter(|f| values.get(*f).is_none())
        .collect()
}

fn write_service(
    w: &mut AccountWrite,
    plan: &Plan,
    sp: &ServicePlan,
    outcome: Option<&PushOutcome>,
) {
    let service = &sp.cmp.service;
    let et = &sp.cmp.event_type;
    let id = service.id;
    let stored_now = match (outcome, &sp.push) {
        (Some(PushOutcome::Succeeded(now)), Some(_)) => Some(now),
        _ => None,
    };
    let failure = match outcome {
        Some(PushOutcome::Failed(f)) => Some(f),
        _ => None,
    };
    let mut baseline = sp.cmp.baseline().clone();
    let mut how: BTreeMap<Field, Resolution> = BTreeMap::new();
    let mut left: Vec<&FieldPlan> = Vec::new();
    let mut overwrite = Overwrite::new(id, service.values.clone());
    let calcom_now = stored_now.map(Comparable::of_event_type);

    for fp in &sp.fields {
        let f = fp.change.field;
        if let Some(origin) = fp.origin {
            if fp.sighting == Sighting::Replaced {
                // Cal.com replaced the value the open entry holds: that entry
                // closes, and this value opens one of its own.
                w.drift_replaced.push(DriftResolution {
                    service_id: id,
                    field: f,
                    resolution: Resolution::Superseded,
                });
            }
            w.drift_upserts
                .push(observation(service, et, &fp.change, origin));
        }
        match fp.action {
            FieldAction::KeepPlatform | FieldAction::Hold(_) => left.push(fp),
            FieldAction::TakeCalcom => match plan.policy.ownership.grant(f) {
                Some(grant) => {
                    how.insert(f, Resolution::Overwritten);
                    overwrite.take(&grant, et);
                }
                // No grant, no write: the value stays recorded, open.
                None => left.push(fp),
            },
            FieldAction::Repush | FieldAction::PushEdit | FieldAction::PushOver => {
                match calcom_now.as_ref().and_then(|c| c.get(f)) {
                    Some(stored) => {
                        if fp.origin.is_some() {
                            how.insert(
                                f,
                                if fp.action == FieldAction::Repush {
                                    Resolution::Repushed
                                } else {
                                    Resolution::Superseded
                                },
                            );
                        }
                        let sent = fp.change.platform.key();
                        if stored.key() != sent {
                            // Cal.com stored something else than was sent: recorded
                            // once, and the pair becomes the baseline, so the next
                            // pass sees agreement instead of pushing again.
                            w.drift_upserts.push(DriftObservation {
                                service_id: id,
                                event_type_id: et.id,
                                field: f,
                                origin: Origin::Normalised,
                                platform_value: fp.change.platform.label(),
                                calcom_value: stored.label(),
                                baseline_value: fp.change.baseline.as_ref().map(Agreed::label),
                                closed: Some(Resolution::Agreed),
                                intent: None,
                            });
                        }
                        baseline.fields.insert(
                            f,
                            Agreed {
                                platform: sent,
                                calcom: stored.key(),
                            },
                        );
                    }
                    None => left.push(fp),
                }
            }
        }
    }
    let observed: Vec<Field> = sp
        .fields
        .iter()
        .filter(|f| f.origin.is_some())
        .map(|f| f.change.field)
        .collect();
    let differing: Vec<Field> = sp.fields.iter().map(|f| f.change.field).collect();
    close_open(
        w,
        plan,
        id,
        &how,
        &observed,
        &differing,
        &unmanaged_fields(service),
    );
    if sp.cmp.stored.as_ref() != Some(&baseline) && !baseline.fields.is_empty() {
        w.baselines.push(BaselineWrite {
            service_id: Some(id),
            event_type_id: et.id,
            baseline,
        });
    }
    let overwritten = !overwrite.fields().is_empty();
    let expected = overwrite.values().clone();
    if overwritten {
        w.overwrites.push(overwrite);
    }
    // The push's retry state: a failure counts an attempt (a new one when the
    // values changed); a success, or nothing left to push or hold, ends it.
    let held = sp.fields.iter().any(|f| {
        matches!(
            f.action,
            FieldAction::Hold(Hold::Backoff | Hold::NeedsHuman)
        )
    });
    match (&sp.push, failure) {
        (Some(push), Some(f)) => {
            let key = values_key(service, &push.fields);
            let manual = push.reason == PushReason::Manual;
            let before = sp
                .cmp
                .push_state
                .as_ref()
                .filter(|s| s.values_key == key && !manual)
                .map_or(0, |s| s.attempts);
            let attempts = before.saturating_add(1);
            let backoff = plan.policy.backoff;
            w.push_states.push(PushStateWrite {
                service_id: id,
                state: PushState {
                    values_key: key,
                    attempts,
                    next_attempt_at: w.now
                        + chrono::Duration::seconds(
                            i64::try_from(backoff.delay_secs(attempts)).unwrap_or(i64::MAX / 2),
                        ),
                    needs_human: f.refused || attempts >= backoff.max_attempts,
                    last_error: f.error.clone(),
                },
            });
        }
        _ if held => {}
        _ => {
            if sp.cmp.push_state.is_some() {
                w.push_states_cleared.push(id);
            }
        }
    }
    // Confirm the platform values (guarded: a platform edit made meanwhile keeps
    // the row pending) once Cal.com took the push, or when nothing is left to push
    // (what still differs is Cal.com's side, or cannot be pushed); a failed push,
    // or pushing switched off, keeps a pending row pending. Then say what is left.
    let nothing_to_push = sp.push.is_none()
        && !sp.fields.iter().any(|f| {
            matches!(
                f.action,
                FieldAction::Hold(Hold::PushingOff | Hold::Backoff | Hold::NeedsHuman)
            )
        });
    // After an overwrite, `expected` holds the values written: a pending row (its
    // platform edit had nothing to push) is confirmed once they are in place.
    // A row that is not pending needs no confirmation when the sync metadata below
    // says the last word, or when it would not change the row (a steady pass
    // writes nothing per unchanged service).
    let last_word = left.is_empty() && failure.is_none();
    let confirm = (stored_now.is_some() || nothing_to_push)
        && (service.sync_status == SyncStatus::Pending
            || plan.policy.touch_last_calcom_sync
            || (last_word
                && (service.sync_status != SyncStatus::Synced
                    || service.sync_error.is_some()
                    || service.last_calcom_sync.is_none())));
    if confirm {
        w.confirmations.push(Confirmation { id, expected });
    }
    if !left.is_empty() || failure.is_some() {
        let state = w
            .push_states
            .iter()
            .find(|p| p.service_id == id)
            .map(|p| &p.state)
            .or(sp.cmp.push_state.as_ref());
        let error = status_message(id, &left, failure, state, plan.policy);
        // A push that needs a human is an error even on a row the platform
        // marked pending (as long as the row still holds the values tried).
        let stuck = state.is_some_and(|s| s.needs_human)
            && (failure.is_some()
                || sp
                    .fields
                    .iter()
                    .any(|f| f.action == FieldAction::Hold(Hold::NeedsHuman)));
        if stuck {
            w.gave_up.push(GaveUp {
                id,
                expected: service.values.clone(),
                error: error.clone(),
            });
        }
        // An overwrite, a confirmation or a give-up of this write sets the row's
        // status itself: the error must follow it even if the row held it before.
        let rewritten = overwritten || stuck || confirm;
        note_metadata(w, plan, service, SyncStatus::Error, Some(error), rewritten);
    }
}

/// Sync metadata for a service, written only when it changes what the pass read:
/// the status the row ends with (a `pending` row stays `pending`) or its error,
/// or a row never stamped. `rewritten`: an earlier statement of this write sets
/// the row's status or error itself, so the metadata must follow. With
/// `touch_last_calcom_sync` every unchanged row is stamped as before (one row
/// write per service and pass).
fn note_metadata(
    w: &mut AccountWrite,
    plan: &Plan,
    service: &Service,
    status: SyncStatus,
    error: Option<String>,
    rewritten: bool,
) {
    let ends_with = if service.sync_status == SyncStatus::Pending {
        SyncStatus::Pending
    } else {
        status
    };
    let changes = ends_with != service.sync_status
        || error != service.sync_error
        || service.last_calcom_sync.is_none();
    if changes || rewritten || plan.policy.touch_last_calcom_sync {
        w.metadata.push(MetadataUpdate {
            id: service.id,
            status,
            error,
        });
    }
}

pub fn orphan_message(s: &Service, account: &str) -> String {
    format!(
        "Cal.com event type {} is gone (Cal.com answered 404; account {account}); the service was kept. Recreate the event type in Cal.com, or clear calcom_event_type_id to unlink it",
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
    /// Services with a Cal.com-side value kept out of the platform or pushed over.
    pub drifted: usize,
    /// Fields edited in Cal.com only.
    pub calcom_edits: usize,
    /// Fields changed on both sides.
    pub conflicts: usize,
    /// New Cal.com-side values (PROTECTION events).
    pub protections: usize,
    pub overwrites: usize,
    pub platform_edits: usize,
    pub pushes: usize,
    pub orphans: usize,
    /// Linked services missing from the listing but not (yet) proven gone.
    pub missing_kept: usize,
    pub unreadable: usize,
    /// Open drift entries under an unexpired acknowledgement.
    pub acknowledged: usize,
    /// Pushes held by backoff (waiting for their next attempt).
    pub backoff: usize,
    /// Pushes that need a human.
    pub needs_human: usize,
}

impl Plan {
    pub fn counts(&self) -> PlanCounts {
        let mut c = PlanCounts {
            event_types: self.event_types,
            missing_kept: self.kept_missing.len(),
            acknowledged: self
                .open_drift
                .values()
                .flatten()
                .filter(|e| e.acknowledged_at(self.now))
                .count(),
            ..PlanCounts::default()
        };
        for d in &self.decisions {
            match d {
                Decision::Import(_) => c.imports += 1,
                Decision::NotImported(_) => c.not_imported += 1,
                Decision::InSync(_) => c.in_sync += 1,
                Decision::Reconcile(sp) => {
                    if sp.calcom_side().next().is_some() {
                        c.drifted += 1;
                    }
                    if sp.overwrites().next().is_some() {
                        c.overwrites += 1;
                    }
                    if sp
                        .fields
                        .iter()
                        .any(|f| f.change.change == Change::PlatformEdit)
                    {
                        c.platform_edits += 1;
                    }
                    for f in &sp.fields {
                        match f.change.change {
                            Change::CalcomEdit => c.calcom_edits += 1,
                            Change::Conflict => c.conflicts += 1,
                            Change::PlatformEdit => {}
                        }
                        if f.protection() {
                            c.protections += 1;
                        }
                    }
                    if sp.push.is_some() {
                        c.pushes += 1;
                    }
                    if sp
                        .fields
                        .iter()
                        .any(|f| f.action == FieldAction::Hold(Hold::NeedsHuman))
                    {
                        c.needs_human += 1;
                    } else if sp
                        .fields
                        .iter()
                        .any(|f| f.action == FieldAction::Hold(Hold::Backoff))
                    {
                        c.backoff += 1;
                    }
                }
                Decision::Unreadable { .. } => c.unreadable += 1,
                Decision::Orphan(_) => c.orphans += 1,
            }
        }
        c
    }

    /// A plan for one service (the manual push): every differing pushable field
    /// the platform owns is pushed, backoff or not, with the same ledger rules as
    /// a pass; fields Cal.com owns follow their ownership as in a pass.
    pub fn single(
        account: &str,
        company_id: i64,
        policy: Policy,
        cmp: Comparison,
        open: Vec<DriftEntry>,
        now: NaiveDateTime,
    ) -> Plan {
        let policy = Policy {
            push_pending: true,
            repush_drifted: true,
            detect_platform_edits: true,
            import_unknown: false,
            ..policy
        };
        let mut plan = Plan {
            account: account.to_owned(),
            company_id,
            policy,
            now,
            ..Plan::default()
        };
        let id = cmp.service.id;
        let decision = if cmp.fields.is_empty() {
            Decision::InSync(Box::new(cmp))
        } else {
            Decision::Reconcile(Box::new(plan_service(
                cmp,
                policy,
                &open,
                Some(PushReason::Manual),
                now,
            )))
        };
        if !open.is_empty() {
            plan.open_drift.insert(id, open);
        }
        plan.decisions.push(decision);
        plan
    }
}

/// What the blast-radius guard sees in a plan: the account's linked services, and
/// how many this pass would orphan or write Cal.com values into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardCheck {
    pub linked: usize,
    pub orphans: usize,
    pub overwrites: usize,
    pub tripped: Option<crate::domain::GuardReason>,
    pub policy: crate::domain::Guard,
}

impl GuardCheck {
    /// `newly_orphaned`: services Cal.com confirmed gone in this pass (known
    /// orphans were counted when they went).
    pub fn of(plan: &Plan, policy: Policy, newly_orphaned: usize) -> Self {
        let linked = plan
            .decisions
            .iter()
            .filter(|d| match d {
                Decision::InSync(_) | Decision::Reconcile(_) | Decision::Orphan(_) => true,
                Decision::Unreadable { service, .. } => service.is_some(),
                Decision::Import(_) | Decision::NotImported(_) => false,
            })
            .count()
            + plan.kept_missing.len();
        let overwrites = plan
            .services()
            .filter(|sp| sp.overwrites().next().is_some())
            .count();
        Self {
            linked,
            orphans: newly_orphaned,
            overwrites,
            tripped: policy.guard.trips(linked, newly_orphaned, overwrites),
            policy: policy.guard,
        }
    }

    /// The counts as operators read them, for the tripped reason.
    pub fn describe(&self, reason: crate::domain::GuardReason) -> String {
        let (n, limit) = match reason {
            crate::domain::GuardReason::Orphans => (self.orphans, self.policy.max_orphan_percent),
            crate::domain::GuardReason::Overwrites => {
                (self.overwrites, self.policy.max_overwrite_percent)
            }
        };
        format!(
            "it would {} {n} of {} linked services, more than sync.guard.max_{}_percent = {limit}",
            match reason {
                crate::domain::GuardReason::Orphans => "orphan",
                crate::domain::GuardReason::Overwrites => "write Cal.com values into",
            },
            self.linked,
            match reason {
                crate::domain::GuardReason::Orphans => "orphan",
                crate::domain::GuardReason::Overwrites => "overwrite",
            },
        )
    }

    /// The report's view, when there is anything to say.
    pub fn report(&self) -> Option<super::report::GuardReport> {
        self.tripped.map(|reason| super::report::GuardReport {
            reason,
            linked: self.linked,
            orphans: self.orphans,
            overwrites: self.overwrites,
            approved: false,
            message: self.describe(reason),
        })
    }
}
