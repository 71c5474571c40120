//! Model-based property tests of the three-way reconcile.
//!
//! A run is a random sequence of platform edits (marked pending or not), Cal.com
//! UI edits and passes; a pass may see pushes fail, Cal.com normalise what it is
//! sent, or the process die before or after its pushes. The model keeps Cal.com,
//! the platform rows and calsync's tables in memory and applies each write with
//! the store's semantics (guards, statement order, first/last-wins), so the real
//! `diff`, `plan`, `push_intents` and `build_write` run exactly as in a pass.
//!
//! Next to the model an *oracle* follows the truth the code cannot see directly:
//! which side changed each field since the two last agreed. After every pass the
//! test checks the contract, with a random owner per field (`platform`,
//! `calcom`, `ignore`):
//! - no platform business value changes without a grant: only fields Cal.com
//!   owns change, only to Cal.com's value, and the old platform value is kept in
//!   the ledger (closed `overwritten`); every overwrite row carries only granted
//!   fields;
//! - fields Cal.com owns or that are ignored are never pushed;
//! - every Cal.com value calsync replaced is in the ledger (open, or closed as
//!   `superseded` / `repushed`), and every Cal.com-side value it kept out of the
//!   platform is open in the ledger;
//! - `calsync_protection_triggered_total` equals the number of distinct
//!   Cal.com-side values seen (runs that start with a baseline);
//! - a field changed only in Cal.com is never pushed without `repush_drifted`;
//! - a field changed only on the platform is pushed.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDateTime;
use proptest::prelude::*;

use super::diff::{OrphanScope, compare, diff, imported_baseline};
use super::plan::{PlanInput, PushFailure, PushOutcome, build_write, plan, push_intents};
use crate::calcom::RecordError;
use crate::domain::{
    Backoff, Baseline, BusinessValues, Comparable, Currency, DriftEntry, EventType, EventTypeId,
    Field, Guard, Minutes, Money, Origin, Owner, Ownership, Policy, PushState, Resolution, Service,
    ServiceId, SyncStatus,
};
use crate::store::{AccountWrite, DriftObservation, LinkedService, RegistryEntry};

const ACCOUNT: &str = "berlin";
const COMPANY: i64 = 1;

fn at(secs: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0)
        .unwrap()
        .naive_utc()
}

// ------------------------------------------------------------------ values

const NAMES: [&str; 4] = ["Cut", "Cut ", "Colour", "Trim"];
const DURATIONS: [i32; 4] = [30, 32, 45, 60];
const PRICES: [i64; 3] = [0, 4500, 9000];
const DESCRIPTIONS: [&str; 3] = ["", "Long", "Short"];

/// One field's new value, as an edit on either side.
#[derive(Debug, Clone, Copy)]
enum Edit {
    Name(&'static str),
    Description(&'static str),
    Duration(i32),
    Visible(bool),
    Price(i64),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => prop::sample::select(NAMES.to_vec()).prop_map(Edit::Name),
        1 => prop::sample::select(DESCRIPTIONS.to_vec()).prop_map(Edit::Description),
        3 => prop::sample::select(DURATIONS.to_vec()).prop_map(Edit::Duration),
        2 => any::<bool>().prop_map(Edit::Visible),
        1 => prop::sample::select(PRICES.to_vec()).prop_map(Edit::Price),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crash {
    None,
    /// The process dies after planning, before any push.
    BeforePush,
    /// The process dies after the pushes, before the pass's commit.
    AfterPush,
}

#[derive(Debug, Clone)]
enum Step {
    Platform {
        service: usize,
        edit: Edit,
        pending: bool,
    },
    Calcom {
        service: usize,
        edit: Edit,
    },
    Pass {
        /// Per service: whether its push fails.
        fail: Vec<bool>,
        normalise: bool,
        crash: Crash,
    },
}

fn step(services: usize) -> impl Strategy<Value = Step> {
    let crash = prop_oneof![
        6 => Just(Crash::None),
        1 => Just(Crash::BeforePush),
        1 => Just(Crash::AfterPush),
    ];
    prop_oneof![
        3 => (0..services, edit(), any::<bool>())
            .prop_map(|(service, edit, pending)| Step::Platform { service, edit, pending }),
        3 => (0..services, edit()).prop_map(|(service, edit)| Step::Calcom { service, edit }),
        4 => (prop::collection::vec(prop::bool::weighted(0.2), services), any::<bool>(), crash)
            .prop_map(|(fail, normalise, crash)| Step::Pass { fail, normalise, crash }),
    ]
}

#[derive(Debug, Clone)]
struct Run {
    policy: Policy,
    /// Whether services start with a baseline (else: an upgraded deployment).
    baselined: bool,
    services: usize,
    steps: Vec<Step>,
}

fn owner() -> impl Strategy<Value = Owner> {
    prop_oneof![
        4 => Just(Owner::Platform),
        1 => Just(Owner::Calcom),
        1 => Just(Owner::Ignore),
    ]
}

fn ownership() -> impl Strategy<Value = Ownership> {
    prop::array::uniform5(owner()).prop_map(|owners| {
        let mut o = Ownership::default();
        for (f, w) in Field::ALL.into_iter().zip(owners) {
            o.set(f, w);
        }
        o
    })
}

/// Backoff that never holds a retry in the three-way model (one pass is a
/// minute later); backoff has its own property below.
const NO_WAIT: Backoff = Backoff {
    max_attempts: 10_000,
    initial_secs: 1,
    max_secs: 1,
};

fn run_strategy() -> impl Strategy<Value = Run> {
    (
        1usize..=3,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.8),
        ownership(),
    )
        .prop_flat_map(
            |(services, repush, push_pending, detect, baselined, ownership)| {
                (
                    Just(services),
                    Just(Policy {
                        import_unknown: true,
                        push_pending,
                        repush_drifted: repush,
                        detect_platform_edits: detect,
                        touch_last_calcom_sync: false,
                        ownership,
                        guard: Guard::default(),
                        backoff: NO_WAIT,
                    }),
                    Just(baselined),
                    prop::collection::vec(step(services), 1..14),
                )
            },
        )
        .prop_map(|(services, policy, baselined, steps)| Run {
            policy,
            baselined,
            services,
            // Every run ends with a clean pass, so crashed work is finished.
            steps: steps
                .into_iter()
                .chain([Step::Pass {
                    fail: vec![false; services],
                    normalise: false,
                    crash: Crash::None,
                }])
                .collect(),
        })
}

// ------------------------------------------------------------------ model

fn event_type(id: i64, v: &BusinessValues) -> EventType {
    EventType {
        id: EventTypeId(id),
        team_id: None,
        title: v.name.clone(),
        slug: format!("s{id}"),
        description: v.description.clone().unwrap_or_default(),
        length: Minutes::new(i64::from(v.duration_minutes)).unwrap(),
        length_options: None,
        hidden: !v.bookable(),
        price: v.price,
    }
}

/// An open or closed ledger entry of the model.
#[derive(Debug, Clone)]
struct Entry {
    entry: DriftEntry,
    intent: Option<Resolution>,
}

#[derive(Debug, Default)]
struct Model {
    services: Vec<Service>,
    calcom: BTreeMap<i64, EventType>,
    baselines: HashMap<ServiceId, Baseline>,
    registry: HashMap<EventTypeId, RegistryEntry>,
    push_states: HashMap<ServiceId, PushState>,
    open: BTreeMap<(ServiceId, Field), Entry>,
    closed: Vec<(DriftEntry, Resolution)>,
    /// `calsync_protection_triggered_total`, summed over fields.
    protections: u64,
    clock: i64,
}

impl Model {
    fn new(n: usize, baselined: bool) -> Model {
        let mut m = Model::default();
        for i in 0..n {
            let v = BusinessValues {
                name: NAMES[i % NAMES.len()].to_owned(),
                description: Some("Long".into()),
                duration_minutes: 30,
                is_active: true,
                is_online: true,
                price: Money::new(4500, Currency::EUR),
            };
            let et = event_type(1000 + i as i64, &v);
            let id = ServiceId(100 + i as i64);
            if baselined {
                m.baselines.insert(id, imported_baseline(&et));
            }
            m.registry.insert(
                et.id,
                RegistryEntry {
                    event_type_id: et.id,
                    account: ACCOUNT.into(),
                    team_id: None,
                    gone_at: None,
                },
            );
            m.calcom.insert(et.id.0, et);
            m.services.push(Service {
                id,
                company_id: COMPANY,
                branch_id: None,
                values: v,
                composite: false,
                calcom_event_type_id: Some(EventTypeId(1000 + i as i64)),
                sync_status: SyncStatus::Synced,
                last_calcom_sync: None,
                sync_error: None,
                updated_at: None,
            });
        }
        m
    }

    fn linked(&self) -> Vec<LinkedService> {
        self.services
            .iter()
            .map(|s| LinkedService {
                service: s.clone(),
                registry: s
                    .calcom_event_type_id
                    .and_then(|id| self.registry.get(&id).cloned()),
                baseline: self.baselines.get(&s.id).cloned(),
                push_state: self.push_states.get(&s.id).cloned(),
            })
            .collect()
    }

    fn edit_platform(&mut self, i: usize, edit: Edit, pending: bool) {
        let s = &mut self.services[i];
        let v = &mut s.values;
        match edit {
            Edit::Name(n) => v.name = n.into(),
            Edit::Description(d) => v.description = (!d.is_empty()).then(|| d.to_owned()),
            Edit::Duration(d) => v.duration_minutes = d,
            Edit::Visible(b) => {
                v.is_active = true;
                v.is_online = b;
            }
            Edit::Price(c) => v.price = Money::new(c, Currency::EUR),
        }
        if pending {
            s.sync_status = SyncStatus::Pending;
        }
    }

    fn edit_calcom(&mut self, i: usize, edit: Edit) {
        let id = self.services[i].calcom_event_type_id.unwrap().0;
        let et = self.calcom.get_mut(&id).unwrap();
        match edit {
            Edit::Name(n) => et.title = n.into(),
            Edit::Description(d) => et.description = d.into(),
            Edit::Duration(d) => et.length = Minutes::new(i64::from(d)).unwrap(),
            Edit::Visible(b) => et.hidden = !b,
            Edit::Price(c) => et.price = Money::new(c, Currency::EUR),
        }
    }

    /// Cal.com applying a PATCH, trimming titles and rounding lengths to 5
    /// minutes when it normalises.
    fn patch(
        &mut self,
        id: EventTypeId,
        p: &crate::calcom::EventTypePatch,
        normalise: bool,
    ) -> EventType {
        let et = self.calcom.get_mut(&id.0).unwrap();
        if let Some(t) = &p.title {
            et.title = if normalise {
                t.trim().to_owned()
            } else {
                t.clone()
            };
        }
        if let Some(d) = &p.description {
            et.description = d.clone();
        }
        if let Some(l) = p.length_in_minutes {
            let l = if normalise { (l + 2) / 5 * 5 } else { l };
            et.length = Minutes::new(i64::from(l)).unwrap();
        }
        if let Some(h) = p.hidden {
            et.hidden = h;
        }
        et.clone()
    }

    fn upsert(&mut self, now: NaiveDateTime, o: &DriftObservation) {
        let entry = DriftEntry {
            service_id: o.service_id,
            calcom_event_type_id: o.event_type_id,
            account: ACCOUNT.into(),
            field: o.field,
            origin: o.origin,
            platform_value: o.platform_value.clone(),
            calcom_value: o.calcom_value.clone(),
            baseline_value: o.baseline_value.clone(),
            first_seen_at: now,
            last_seen_at: now,
            times_seen: i64::from(o.intent.is_none()),
            acknowledged: None,
        };
        if let Some(r) = o.closed {
            self.closed.push((entry, r));
            return;
        }
        match self.open.get_mut(&(o.service_id, o.field)) {
            Some(e) => {
                e.entry.platform_value = entry.platform_value;
                e.entry.calcom_value = entry.calcom_value;
                e.entry.origin = entry.origin;
                e.entry.baseline_value = entry.baseline_value;
                e.entry.last_seen_at = now;
                e.entry.times_seen += i64::from(o.intent.is_none());
                e.intent = o.intent;
            }
            None => {
                self.open.insert(
                    (o.service_id, o.field),
                    Entry {
                        entry,
                        intent: o.intent,
                    },
                );
            }
        }
    }

    fn resolve(&mut self, id: ServiceId, field: Field, resolution: Resolution) {
        if let Some(e) = self.open.remove(&(id, field)) {
            let r = match (resolution, e.intent) {
                (Resolution::Agreed, Some(intent)) => intent,
                (r, _) => r,
            };
            self.closed.push((e.entry, r));
        }
    }

    /// The store's `apply`, statement by statement.
    fn apply(&mut self, w: &AccountWrite) {
        let find = |services: &mut Vec<Service>, id: ServiceId| {
            services.iter_mut().position(|s| s.id == id).unwrap()
        };
        assert!(
            w.imports.is_empty(),
            "the model lists only linked event types"
        );
        for r in &w.overwrites {
            let i = find(&mut self.services, r.id());
            let s = &mut self.services[i];
            if s.values == *r.expected() {
                s.values = r.values().clone();
                if s.sync_status != SyncStatus::Pending {
                    s.sync_status = SyncStatus::Synced;
                }
            }
        }
        for c in &w.confirmations {
            let i = find(&mut self.services, c.id);
            let s = &mut self.services[i];
            if s.values == c.expected {
                s.sync_status = SyncStatus::Synced;
                s.sync_error = None;
            }
        }
        for m in &w.metadata {
            let i = find(&mut self.services, m.id);
            let s = &mut self.services[i];
            if s.sync_status != SyncStatus::Pending {
                s.sync_status = m.status;
            }
            s.sync_error = m.error.clone();
        }
        for g in &w.gave_up {
            let i = find(&mut self.services, g.id);
            let s = &mut self.services[i];
            if s.values == g.expected {
                s.sync_status = SyncStatus::Error;
                s.sync_error = Some(g.error.clone());
            }
        }
        let mut seen = HashSet::new();
        for r in &w.drift_replaced {
            if seen.insert((r.service_id, r.field)) {
                self.resolve(r.service_id, r.field, r.resolution);
            }
        }
        for o in &w.drift_upserts {
            self.upsert(w.now, o);
        }
        let mut seen = HashSet::new();
        for r in &w.drift_resolutions {
            if seen.insert((r.service_id, r.field)) {
                self.resolve(r.service_id, r.field, r.resolution);
            }
        }
        for b in &w.baselines {
            self.baselines
                .insert(b.service_id.unwrap(), b.baseline.clone());
        }
        for p in &w.push_states {
            self.push_states.insert(p.service_id, p.state.clone());
        }
        for id in &w.push_states_cleared {
            if !w.push_states.iter().any(|p| p.service_id == *id) {
                self.push_states.remove(id);
            }
        }
    }

    fn in_ledger(&self, id: ServiceId, field: Field, calcom: &str) -> Option<Option<Resolution>> {
        if let Some(e) = self.open.get(&(id, field))
            && e.entry.calcom_value == calcom
        {
            return Some(None);
        }
        self.closed
            .iter()
            .rev()
            .find(|(e, _)| e.service_id == id && e.field == field && e.calcom_value == calcom)
            .map(|(_, r)| Some(*r))
    }
}

// ------------------------------------------------------------------ oracle

/// Per (service, field): what the two sides last agreed on, and the Cal.com-side
/// value last counted as a PROTECTION.
#[derive(Debug, Default)]
struct Oracle {
    agreed: HashMap<(ServiceId, Field), (String, String)>,
    announced: HashMap<(ServiceId, Field), String>,
    protections: u64,
}

impl Oracle {
    fn new(m: &Model) -> Oracle {
        let mut o = Oracle::default();
        for s in &m.services {
            let et = &m.calcom[&s.calcom_event_type_id.unwrap().0];
            let (p, c) = (
                Comparable::of_service(&s.values),
                Comparable::of_event_type(et),
            );
            for f in Field::ALL {
                if let (Some(p), Some(c)) = (p.get(f), c.get(f)) {
                    o.agreed.insert((s.id, f), (p.key(), c.key()));
                }
            }
        }
        o
    }

    /// Whether Cal.com changed the field since the sides agreed.
    fn calcom_changed(&self, id: ServiceId, f: Field, c: &str) -> bool {
        self.agreed.get(&(id, f)).is_none_or(|(_, ac)| ac != c)
    }

    fn platform_changed(&self, id: ServiceId, f: Field, p: &str) -> bool {
        self.agreed.get(&(id, f)).is_none_or(|(ap, _)| ap != p)
    }

    /// Counts a Cal.com-side value that reached the ledger.
    fn announce(&mut self, id: ServiceId, f: Field, c: &str) {
        if self.announced.get(&(id, f)).map(String::as_str) != Some(c) {
            self.announced.insert((id, f), c.to_owned());
            self.protections += 1;
        }
    }
}

/// Both sides of every managed field of a service, as canonical keys and labels.
fn sides(s: &Service, et: &EventType) -> Vec<(Field, String, String, String)> {
    let (p, c) = (
        Comparable::of_service(&s.values),
        Comparable::of_event_type(et),
    );
    Field::ALL
        .into_iter()
        .filter_map(|f| {
            let (p, c) = (p.get(f)?, c.get(f)?);
            Some((f, p.key(), c.key(), c.label()))
        })
        .collect()
}

// ------------------------------------------------------------------ the run

fn pass(
    m: &mut Model,
    o: &mut Oracle,
    run: &Run,
    fail: &[bool],
    normalise: bool,
    crash: Crash,
) -> Result<(), TestCaseError> {
    m.clock += 60;
    let now = at(m.clock);
    let listing: Vec<Result<EventType, RecordError>> = m.calcom.values().cloned().map(Ok).collect();
    let linked = m.linked();
    let open: Vec<DriftEntry> = m.open.values().map(|e| e.entry.clone()).collect();
    let d = diff(
        listing.clone(),
        &linked,
        OrphanScope {
            account: ACCOUNT,
            company_id: COMPANY,
            sole_account_for_company: true,
            ownership: run.policy.ownership,
        },
    );
    prop_assert!(d.missing.is_empty());
    let p = plan(
        d,
        PlanInput {
            account: ACCOUNT,
            company_id: COMPANY,
            policy: run.policy,
            services: &linked,
            open_drift: &open,
            listed_records: listing.len(),
            now,
        },
    );
    let owner = |f: Field| run.policy.ownership.of(f);
    let before: Vec<BusinessValues> = m.services.iter().map(|s| s.values.clone()).collect();
    // What each side held when the pass listed, per service.
    let listed: HashMap<ServiceId, Vec<(Field, String, String, String)>> = m
        .services
        .iter()
        .map(|s| {
            (
                s.id,
                sides(s, &m.calcom[&s.calcom_event_type_id.unwrap().0]),
            )
        })
        .collect();

    // Pushes: only fields the platform owns, and only what the three-way table
    // allows.
    for push in p.pushes() {
        let sid = push.service.id;
        for f in &push.fields {
            prop_assert_eq!(
                owner(*f),
                Owner::Platform,
                "service {} field {}: pushed although the platform does not own it",
                sid,
                f
            );
        }
        for (f, pk, ck, _) in &listed[&sid] {
            let pushed = push.fields.contains(f);
            let calcom_only = !o.platform_changed(sid, *f, pk) && o.calcom_changed(sid, *f, ck);
            if run.baselined && calcom_only && pk != ck {
                prop_assert!(
                    !pushed || run.policy.repush_drifted,
                    "service {sid} field {f}: a Cal.com-only change was pushed without repush_drifted"
                );
            }
        }
    }
    if run.baselined && run.policy.push_pending {
        for s in &m.services {
            let pending = s.sync_status == SyncStatus::Pending;
            if !(pending || run.policy.detect_platform_edits) {
                continue;
            }
            let pushed: Vec<Field> = p
                .pushes()
                .filter(|x| x.service.id == s.id)
                .flat_map(|x| x.fields.clone())
                .collect();
            for (f, pk, ck, _) in &listed[&s.id] {
                let platform_only =
                    o.platform_changed(s.id, *f, pk) && !o.calcom_changed(s.id, *f, ck);
                if platform_only && pk != ck && f.pushable() && owner(*f) == Owner::Platform {
                    prop_assert!(
                        pushed.contains(f),
                        "service {} field {f}: a platform-only change was not pushed",
                        s.id
                    );
                }
            }
        }
    }
    if crash == Crash::BeforePush {
        return Ok(());
    }

    // The intents' transaction, then the pushes.
    let intents = push_intents(&p);
    if !intents.is_empty() {
        let mut w = AccountWrite::new(ACCOUNT, now);
        w.drift_upserts = intents.clone();
        m.apply(&w);
        for i in &intents {
            let (_, _, ck, cl) = listed[&i.service_id]
                .iter()
                .find(|x| x.0 == i.field)
                .unwrap();
            if o.calcom_changed(i.service_id, i.field, ck) {
                o.announce(i.service_id, i.field, cl);
            }
        }
        m.protections += p
            .services()
            .flat_map(|sp| sp.fields.iter().map(move |f| (sp.service().id, f)))
            .filter(|(id, f)| {
                f.protection()
                    && intents
                        .iter()
                        .any(|i| i.service_id == *id && i.field == f.change.field)
            })
            .count() as u64;
    }
    let mut outcomes = HashMap::new();
    let mut replaced: Vec<(ServiceId, Field, String)> = Vec::new();
    for push in p.pushes().cloned().collect::<Vec<_>>() {
        let i = m
            .services
            .iter()
            .position(|s| s.id == push.service.id)
            .unwrap();
        if fail[i] {
            outcomes.insert(
                push.service.id,
                PushOutcome::Failed(PushFailure {
                    error: "HTTP 500".into(),
                    refused: false,
                }),
            );
            continue;
        }
        for (f, _, ck, cl) in &listed[&push.service.id] {
            if push.fields.contains(f) && o.calcom_changed(push.service.id, *f, ck) {
                replaced.push((push.service.id, *f, cl.clone()));
            }
        }
        let stored = m.patch(push.event_type.id, &push.patch, normalise);
        outcomes.insert(push.service.id, PushOutcome::Succeeded(stored));
    }
    // Every Cal.com-side value pushed over is in the ledger before the push.
    for (id, f, cl) in &replaced {
        prop_assert!(
            m.in_ledger(*id, *f, cl).is_some(),
            "service {id} field {f}: Cal.com value {cl:?} was pushed over before it was recorded"
        );
    }
    if crash == Crash::AfterPush {
        return Ok(());
    }

    let w = build_write(&p, &outcomes, now);
    // Every overwrite row changes only fields Cal.com owns (the grant's fields).
    for r in &w.overwrites {
        let (old, new) = (
            Comparable::of_service(r.expected()),
            Comparable::of_service(r.values()),
        );
        for f in Field::ALL {
            if old.get(f) != new.get(f) {
                prop_assert!(
                    r.fields().contains(&f) && owner(f) == Owner::Calcom,
                    "service {} field {}: written without a grant",
                    r.id(),
                    f
                );
            }
        }
    }
    m.apply(&w);
    m.protections += p
        .services()
        .flat_map(|sp| sp.fields.iter().map(move |f| (sp.service().id, f)))
        .filter(|(id, f)| {
            f.protection()
                && !intents
                    .iter()
                    .any(|i| i.service_id == *id && i.field == f.change.field)
        })
        .count() as u64;

    // A clean pass leaves nothing pending that it could push.
    if run.policy.push_pending && fail.iter().all(|f| !f) {
        for s in &m.services {
            prop_assert!(
                s.sync_status != SyncStatus::Pending,
                "service {} is still pending after a clean pass: {:?}",
                s.id,
                s.sync_error
            );
        }
    }

    // A platform business value changes only where Cal.com owns the field, only
    // to Cal.com's value, and the old value is in the ledger.
    for (s, old) in m.services.iter().zip(&before) {
        let (was, now_p) = (
            Comparable::of_service(old),
            Comparable::of_service(&s.values),
        );
        let calcom = Comparable::of_event_type(&m.calcom[&s.calcom_event_type_id.unwrap().0]);
        for f in Field::ALL {
            let (a, b) = (was.get(f), now_p.get(f));
            if a.as_ref().map(|v| v.key()) == b.as_ref().map(|v| v.key()) {
                continue;
            }
            prop_assert_eq!(
                owner(f),
                Owner::Calcom,
                "service {} field {}: a pass changed a business column without a grant",
                s.id,
                f
            );
            // (A description Cal.com cleared leaves the platform's NULL.)
            prop_assert_eq!(
                b.map(|v| v.key()).unwrap_or_default(),
                calcom.get(f).map(|v| v.key()).unwrap_or_default(),
                "service {} field {}: overwritten with something else than Cal.com's value",
                s.id,
                f
            );
            let old_label = a.map(|v| v.label()).unwrap_or_default();
            prop_assert!(
                m.closed.iter().any(|(e, r)| e.service_id == s.id
                    && e.field == f
                    && e.platform_value == old_label
                    && *r == Resolution::Overwritten),
                "service {} field {}: the overwritten platform value {:?} is not in the ledger",
                s.id,
                f,
                old_label
            );
        }
    }

    // Pushed-over values are closed as superseded or repushed.
    for (id, f, cl) in &replaced {
        match m.in_ledger(*id, *f, cl) {
            Some(None) => {}
            Some(Some(Resolution::Superseded | Resolution::Repushed)) => {}
            other => prop_assert!(false, "service {id} field {f}: {cl:?} ended as {other:?}"),
        }
    }

    // The oracle: count the Cal.com-side values seen, then move the agreements.
    for s in m.services.clone() {
        let pushed_now = match outcomes.get(&s.id) {
            Some(PushOutcome::Succeeded(et)) => Some(et.clone()),
            _ => None,
        };
        let fields: Vec<Field> = p
            .pushes()
            .filter(|x| x.service.id == s.id)
            .flat_map(|x| x.fields.clone())
            .collect();
        for (f, pk, ck, cl) in &listed[&s.id] {
            if owner(*f) != Owner::Platform {
                // Cal.com's value was taken, or the field is ignored: nothing to
                // announce; the agreement moves when both sides agree.
                if pk == ck {
                    o.agreed.insert((s.id, *f), (pk.clone(), ck.clone()));
                }
                o.announced.remove(&(s.id, *f));
                continue;
            }
            if pk != ck && o.calcom_changed(s.id, *f, ck) && !o.platform_changed(s.id, *f, pk) {
                // A Cal.com-side value not applied is open in the ledger, unless
                // it was pushed over (checked above).
                if !(pushed_now.is_some() && fields.contains(f)) {
                    prop_assert_eq!(
                        m.in_ledger(s.id, *f, cl),
                        Some(None),
                        "service {} field {}: Cal.com value {:?} kept out of the platform is not open in the ledger",
                        s.id,
                        f,
                        cl
                    );
                }
            }
            if pk != ck && o.calcom_changed(s.id, *f, ck) {
                o.announce(s.id, *f, cl);
            }
            if !o.calcom_changed(s.id, *f, ck) {
                o.announced.remove(&(s.id, *f));
            }
            match &pushed_now {
                Some(et) if fields.contains(f) => {
                    let c = Comparable::of_event_type(et).get(*f).unwrap();
                    o.agreed.insert((s.id, *f), (pk.clone(), c.key()));
                    o.announced.remove(&(s.id, *f));
                }
                _ if pk == ck => {
                    o.agreed.insert((s.id, *f), (pk.clone(), ck.clone()));
                    o.announced.remove(&(s.id, *f));
                }
                _ => {}
            }
        }
    }
    if run.baselined {
        prop_assert_eq!(
            m.protections,
            o.protections,
            "PROTECTION events vs distinct Cal.com-side values seen"
        );
    }
    Ok(())
}

fn execute(run: &Run) -> Result<Model, TestCaseError> {
    let mut m = Model::new(run.services, run.baselined);
    let mut o = Oracle::new(&m);
    for s in &run.steps {
        match s {
            Step::Platform {
                service,
                edit,
                pending,
            } => m.edit_platform(*service, *edit, *pending),
            Step::Calcom { service, edit } => m.edit_calcom(*service, *edit),
            Step::Pass {
                fail,
                normalise,
                crash,
            } => pass(&mut m, &mut o, run, fail, *normalise, *crash)?,
        }
    }
    Ok(m)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("CALSYNC_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000),
        ..ProptestConfig::default()
    })]

    /// The contract over random runs (see the module docs for what is checked
    /// after every pass).
    #[test]
    fn the_three_way_contract_holds_over_random_runs(run in run_strategy()) {
        let m = execute(&run)?;
        let linked = m.linked();
        let listing: Vec<Result<EventType, RecordError>> = m.calcom.values().cloned().map(Ok).collect();
        let open: Vec<DriftEntry> = m.open.values().map(|e| e.entry.clone()).collect();
        let d = diff(listing.clone(), &linked, OrphanScope { account: ACCOUNT, company_id: COMPANY, sole_account_for_company: true, ownership: run.policy.ownership });
        let p = plan(d, PlanInput { account: ACCOUNT, company_id: COMPANY, policy: run.policy, services: &linked, open_drift: &open, listed_records: listing.len(), now: at(1_000_000) });
        // Nothing new to announce right after a clean pass: every Cal.com-side
        // value is in the ledger already.
        for sp in p.services() {
            for f in &sp.fields {
                prop_assert!(!f.protection(), "service {} field {}: announced twice", sp.service().id, f.change.field);
            }
        }
    }
}

/// Random services and listings for the plan-level properties below.
fn values() -> impl Strategy<Value = BusinessValues> {
    (
        prop::sample::select(NAMES.to_vec()),
        prop::sample::select(DURATIONS.to_vec()),
        any::<bool>(),
        prop::sample::select(PRICES.to_vec()),
    )
        .prop_map(|(name, dur, online, cents)| BusinessValues {
            name: name.into(),
            description: None,
            duration_minutes: dur,
            is_active: true,
            is_online: online,
            price: Money::new(cents, Currency::EUR),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    /// Only the policy's grant lets a plan carry business writes, and they touch
    /// only fields Cal.com changed.
    #[test]
    fn business_writes_need_the_grant_of_each_field(
        platform in prop::collection::vec(values(), 1..6),
        calcom in prop::collection::vec(values(), 1..6),
        ownership in ownership(),
    ) {
        let m = Model::new(platform.len(), true);
        let mut services = m.linked();
        let mut listing = Vec::new();
        for (i, l) in services.iter_mut().enumerate() {
            l.service.values = platform[i].clone();
            let c = calcom.get(i).unwrap_or(&platform[i]);
            listing.push(Ok(event_type(1000 + i as i64, c)));
        }
        let policy = Policy { ownership, ..Policy::default() };
        let d = diff(listing.clone(), &services, OrphanScope { account: ACCOUNT, company_id: COMPANY, sole_account_for_company: true, ownership });
        let p = plan(d, PlanInput { account: ACCOUNT, company_id: COMPANY, policy, services: &services, open_drift: &[], listed_records: listing.len(), now: at(0) });
        let w = build_write(&p, &HashMap::new(), at(0));
        for r in &w.overwrites {
            let l = services.iter().find(|l| l.service.id == r.id()).unwrap();
            let et = listing.iter().find_map(|x| x.as_ref().ok().filter(|e| Some(e.id) == l.service.calcom_event_type_id)).unwrap();
            let cmp = compare(l, et, &ownership);
            // Every changed business field is one Cal.com owns and changed.
            let (before, after) = (Comparable::of_service(r.expected()), Comparable::of_service(r.values()));
            for f in Field::ALL {
                if before.get(f) != after.get(f) {
                    prop_assert_eq!(ownership.of(f), Owner::Calcom, "field {} written without a grant", f);
                    prop_assert!(r.fields().contains(&f));
                    prop_assert!(cmp.fields.iter().any(|c| c.field == f && c.change != crate::domain::Change::PlatformEdit));
                }
            }
        }
        if !Field::ALL.iter().any(|f| ownership.of(*f) == Owner::Calcom) {
            prop_assert!(w.overwrites.is_empty());
        }
        // Nothing Cal.com owns or that is ignored is ever pushed.
        for push in p.pushes() {
            for f in &push.fields {
                prop_assert_eq!(ownership.of(*f), Owner::Platform);
            }
        }
    }

    /// A push that keeps failing is not sent every pass: the same values are sent
    /// at most `max_attempts` times (once when Cal.com refused them), never before
    /// their backoff passed, and a platform change starts over.
    #[test]
    fn a_failing_push_backs_off_and_stops_for_a_human(
        steps in prop::collection::vec((any::<bool>(), prop::bool::weighted(0.2), 0i64..5_000), 1..40),
        max_attempts in 1u32..6,
    ) {
        let backoff = Backoff { max_attempts, initial_secs: 60, max_secs: 3600 };
        let policy = Policy { backoff, ..Policy::default() };
        let mut m = Model::new(1, true);
        let mut clock = 0i64;
        let mut duration = 40;
        // values key -> (sends, refused, last send time, attempts after it)
        let mut sent: HashMap<String, (u32, bool, i64)> = HashMap::new();
        for (refused, edit, wait) in steps {
            clock += wait;
            if edit {
                duration += 1;
                m.edit_platform(0, Edit::Duration(duration), true);
            }
            let now = at(clock);
            let listing: Vec<Result<EventType, RecordError>> = m.calcom.values().cloned().map(Ok).collect();
            let linked = m.linked();
            let d = diff(listing.clone(), &linked, OrphanScope { account: ACCOUNT, company_id: COMPANY, sole_account_for_company: true, ownership: policy.ownership });
            let p = plan(d, PlanInput { account: ACCOUNT, company_id: COMPANY, policy, services: &linked, open_drift: &[], listed_records: listing.len(), now });
            let mut outcomes = HashMap::new();
            for push in p.pushes() {
                let key = super::plan::values_key(&push.service, &push.fields);
                let (sends, was_refused, last) = sent.get(&key).copied().unwrap_or((0, false, i64::MIN));
                prop_assert!(!was_refused, "a refused PATCH was sent again with the same values");
                prop_assert!(sends < max_attempts, "the same PATCH was sent {} times (max {})", sends + 1, max_attempts);
                if sends > 0 {
                    let waited = clock - last;
                    prop_assert!(waited >= backoff.delay_secs(sends) as i64, "retried after {waited} s, before its backoff of {} s", backoff.delay_secs(sends));
                }
                sent.insert(key, (sends + 1, refused, clock));
                outcomes.insert(push.service.id, PushOutcome::Failed(PushFailure { error: "HTTP 400".into(), refused }));
            }
            let w = build_write(&p, &outcomes, now);
            m.apply(&w);
            // The service says what is going on once it needs a human.
            if let Some(state) = m.push_states.get(&ServiceId(100))
                && state.needs_human
                && let Some(e) = &m.services[0].sync_error
            {
                prop_assert!(e.starts_with("needs a human:"), "{e}");
            }
        }
    }

    /// An empty listing orphans nothing; missing event types are only candidates.
    #[test]
    fn an_empty_listing_orphans_nothing(n in 1usize..5) {
        let m = Model::new(n, true);
        let services = m.linked();
        let d = diff(Vec::new(), &services, OrphanScope { account: ACCOUNT, company_id: COMPANY, sole_account_for_company: true, ownership: Ownership::default() });
        prop_assert!(d.empty_listing_guarded);
        prop_assert!(d.missing.is_empty());
        prop_assert!(!d.differences.iter().any(|x| matches!(x, super::diff::Difference::Orphaned(_))));
    }
}

#[test]
fn a_normalised_push_is_recorded_once_and_not_repeated() {
    let run = Run {
        policy: Policy::default(),
        baselined: true,
        services: 1,
        steps: vec![
            Step::Platform {
                service: 0,
                edit: Edit::Duration(32),
                pending: true,
            },
            Step::Pass {
                fail: vec![false],
                normalise: true,
                crash: Crash::None,
            },
        ],
    };
    let mut m = execute(&run).unwrap();
    let normalised: Vec<_> = m
        .closed
        .iter()
        .filter(|(e, _)| e.origin == Origin::Normalised)
        .collect();
    assert_eq!(normalised.len(), 1, "{:?}", m.closed);
    assert_eq!(normalised[0].0.platform_value, "32");
    assert_eq!(normalised[0].0.calcom_value, "30");
    // The next pass pushes nothing.
    let mut o = Oracle::new(&m);
    let linked = m.linked();
    let listing: Vec<Result<EventType, RecordError>> = m.calcom.values().cloned().map(Ok).collect();
    let d = diff(
        listing.clone(),
        &linked,
        OrphanScope {
            account: ACCOUNT,
            company_id: COMPANY,
            sole_account_for_company: true,
            ownership: Ownership::default(),
        },
    );
    let p = plan(
        d,
        PlanInput {
            account: ACCOUNT,
            company_id: COMPANY,
            policy: Policy::default(),
            services: &linked,
            open_drift: &[],
            listed_records: 1,
            now: at(0),
        },
    );
    assert_eq!(p.pushes().count(), 0);
    pass(&mut m, &mut o, &run, &[false], true, Crash::None).unwrap();
    assert_eq!(
        m.closed
            .iter()
            .filter(|(e, _)| e.origin == Origin::Normalised)
            .count(),
        1
    );
}
