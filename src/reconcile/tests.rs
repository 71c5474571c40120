//! Property tests of the pure planner: the protection contract over random
//! services, listings, ledgers, policies and push outcomes.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDateTime;
use proptest::prelude::*;

use super::diff::{OrphanScope, compare, diff};
use super::plan::{PlanInput, PushOutcome, build_write, plan};
use crate::calcom::RecordError;
use crate::domain::{
    BusinessValues, Currency, DriftEntry, EventType, EventTypeId, Field, Minutes, Money, Policy,
    Service, ServiceId, SyncStatus,
};
use crate::store::{LinkedService, RegistryEntry};

const ACCOUNT: &str = "berlin";
const COMPANY: i64 = 1;

fn at(secs: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0)
        .unwrap()
        .naive_utc()
}

fn values() -> impl Strategy<Value = BusinessValues> {
    (
        prop::sample::select(vec!["Cut", "Colour", "Massage", "💆 تدليك"]),
        prop::option::of(prop::sample::select(vec!["", "Long", "Short"])),
        prop::sample::select(vec![0, 30, 45, 60]),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![0i64, 4500, 9000]),
        prop::sample::select(vec!["EUR", "USD", "JPY"]),
    )
        .prop_map(
            |(name, desc, dur, active, online, cents, cur)| BusinessValues {
                name: name.into(),
                description: desc.filter(|d| !d.is_empty()).map(str::to_owned),
                duration_minutes: dur,
                is_active: active,
                is_online: online,
                price: Money::new(cents, Currency::parse(cur).unwrap()),
            },
        )
}

fn event_type_like(id: i64, v: &BusinessValues) -> EventType {
    EventType {
        id: EventTypeId(id),
        team_id: None,
        title: v.name.clone(),
        slug: format!("s{id}"),
        description: v.description.clone().unwrap_or_default(),
        length: Minutes::new(i64::from(v.duration_minutes)).unwrap_or(Minutes::new(30).unwrap()),
        length_options: None,
        hidden: !v.bookable(),
        price: v.price,
    }
}

fn status() -> impl Strategy<Value = SyncStatus> {
    prop::sample::select(SyncStatus::ALL.to_vec())
}

/// What Cal.com has for a linked service: the same, an edit, absent, or unreadable.
#[derive(Debug, Clone)]
enum Remote {
    Same,
    Edited(BusinessValues),
    Absent,
    Unreadable,
}

fn remote() -> impl Strategy<Value = Remote> {
    prop_oneof![
        3 => Just(Remote::Same),
        3 => values().prop_map(Remote::Edited),
        1 => Just(Remote::Absent),
        1 => Just(Remote::Unreadable),
    ]
}

#[derive(Debug, Clone)]
struct World {
    services: Vec<LinkedService>,
    listing: Vec<Result<EventType, RecordError>>,
    open_drift: Vec<DriftEntry>,
    policy: Policy,
    push_ok: Vec<bool>,
}

fn world() -> impl Strategy<Value = World> {
    (
        prop::collection::vec(
            (values(), status(), remote(), any::<bool>(), any::<bool>()),
            0..12,
        ),
        prop::collection::vec(values(), 0..4),
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()),
        prop::collection::vec(any::<bool>(), 16),
    )
        .prop_map(|(rows, unknown, (a, b, c, d), push_ok)| {
            let mut services = Vec::new();
            let mut listing = Vec::new();
            let mut open_drift = Vec::new();
            for (i, (v, st, remote, registered, drift_open)) in rows.into_iter().enumerate() {
                let id = 100 + i as i64;
                let et_id = EventTypeId(1000 + i as i64);
                let service = Service {
                    id: ServiceId(id),
                    company_id: COMPANY,
                    branch_id: None,
                    values: v.clone(),
                    composite: false,
                    calcom_event_type_id: Some(et_id),
                    sync_status: st,
                    last_calcom_sync: None,
                    sync_error: None,
                    updated_at: None,
                };
                services.push(LinkedService {
                    service,
                    registry: registered.then(|| RegistryEntry {
                        event_type_id: et_id,
                        account: ACCOUNT.into(),
                        team_id: None,
                    }),
                });
                match remote {
                    Remote::Same => listing.push(Ok(event_type_like(et_id.0, &v))),
                    Remote::Edited(e) => listing.push(Ok(event_type_like(et_id.0, &e))),
                    Remote::Absent => {}
                    Remote::Unreadable => listing.push(Err(RecordError {
                        event_type_id: Some(et_id),
                        message: "lengthInMinutes 0 is out of range".into(),
                    })),
                }
                if drift_open {
                    open_drift.push(DriftEntry {
                        service_id: ServiceId(id),
                        calcom_event_type_id: et_id,
                        account: ACCOUNT.into(),
                        field: Field::Name,
                        platform_value: "old".into(),
                        calcom_value: "older".into(),
                        first_seen_at: at(0),
                        last_seen_at: at(10),
                        times_seen: 2,
                    });
                }
            }
            for (j, v) in unknown.iter().enumerate() {
                listing.push(Ok(event_type_like(5000 + j as i64, v)));
            }
            World {
                services,
                listing,
                open_drift,
                policy: Policy {
                    import_unknown: a,
                    push_pending: b,
                    repush_drifted: c,
                    allow_calcom_overwrites: d,
                },
                push_ok,
            }
        })
}

fn run(w: &World) -> (super::plan::Plan, crate::store::AccountWrite) {
    let d = diff(
        &w.listing,
        &w.services,
        OrphanScope {
            account: ACCOUNT,
            company_id: COMPANY,
            sole_account_for_company: true,
        },
    );
    let p = plan(
        d,
        PlanInput {
            account: ACCOUNT,
            company_id: COMPANY,
            policy: w.policy,
            services: &w.services,
            open_drift: &w.open_drift,
            listed_records: w.listing.len(),
        },
    );
    let outcomes: HashMap<ServiceId, PushOutcome> = p
        .pushes
        .iter()
        .enumerate()
        .map(|(i, push)| {
            let ok = w.push_ok[i % w.push_ok.len()];
            (
                push.service.id,
                if ok {
                    PushOutcome::Succeeded
                } else {
                    PushOutcome::Failed("HTTP 503".into())
                },
            )
        })
        .collect();
    let write = build_write(&p, &outcomes, w.policy.overwrite_grant(), at(100));
    (p, write)
}

/// Applies a write to the in-memory world the way the store does, and Cal.com's
/// side of successful pushes.
fn apply_in_memory(w: &World, write: &crate::store::AccountWrite, p: &super::plan::Plan) -> World {
    let mut next = w.clone();
    let mut by_id: HashMap<ServiceId, usize> = HashMap::new();
    for (i, l) in next.services.iter().enumerate() {
        by_id.insert(l.service.id, i);
    }
    if let Some(o) = &write.overwrites {
        for row in o.rows() {
            let s = &mut next.services[by_id[&row.id]].service;
            if s.values == row.expected && s.sync_status != SyncStatus::Pending {
                s.values = row.new.clone();
                s.sync_status = SyncStatus::Synced;
            }
        }
    }
    for m in &write.metadata {
        let s = &mut next.services[by_id[&m.id]].service;
        if s.sync_status != SyncStatus::Pending {
            s.sync_status = m.status;
        }
    }
    for c in &write.confirmations {
        let s = &mut next.services[by_id[&c.id]].service;
        if s.values == c.expected {
            s.sync_status = SyncStatus::Synced;
        }
    }
    for (k, imp) in write.imports.iter().enumerate() {
        next.services.push(LinkedService {
            service: Service {
                id: ServiceId(10_000 + k as i64),
                company_id: imp.company_id,
                branch_id: None,
                values: imp.values.clone(),
                composite: false,
                calcom_event_type_id: Some(imp.event_type_id),
                sync_status: SyncStatus::Synced,
                last_calcom_sync: None,
                sync_error: None,
                updated_at: None,
            },
            registry: None,
        });
    }
    // Cal.com took the successful pushes.
    let pushed: HashSet<ServiceId> = write.confirmations.iter().map(|c| c.id).collect();
    for push in &p.pushes {
        if !pushed.contains(&push.service.id)
            && !write
                .drift_resolutions
                .iter()
                .any(|r| r.service_id == push.service.id)
        {
            continue;
        }
        for rec in next.listing.iter_mut() {
            if let Ok(et) = rec
                && et.id == push.event_type.id
            {
                let price = et.price;
                *et = event_type_like(et.id.0, &push.service.values);
                et.price = price;
            }
        }
    }
    next
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn no_plan_writes_a_business_column_unless_the_policy_allows(w in world()) {
        let (p, write) = run(&w);
        let loaded: HashMap<ServiceId, &Service> = w.services.iter().map(|l| (l.service.id, &l.service)).collect();
        match &write.overwrites {
            None => {}
            Some(o) => {
                prop_assert!(w.policy.allow_calcom_overwrites);
                for row in o.rows() {
                    let s = loaded[&row.id];
                    prop_assert_ne!(s.sync_status, SyncStatus::Pending);
                    prop_assert_eq!(&row.expected, &s.values);
                }
            }
        }
        if !w.policy.allow_calcom_overwrites {
            prop_assert!(p.overwrites.is_empty());
        }
        // Guards always carry the values calsync read, so a concurrent edit is
        // never confirmed.
        for c in &write.confirmations {
            prop_assert_eq!(&c.expected, &loaded[&c.id].values);
        }
        // Metadata only for loaded services.
        for m in &write.metadata {
            prop_assert!(loaded.contains_key(&m.id));
        }
    }

    #[test]
    fn imports_are_only_unknown_event_types_and_each_once(w in world()) {
        let (_, write) = run(&w);
        let linked: HashSet<EventTypeId> = w.services.iter().filter_map(|l| l.service.calcom_event_type_id).collect();
        let mut seen = HashSet::new();
        for imp in &write.imports {
            prop_assert!(w.policy.import_unknown);
            prop_assert!(!linked.contains(&imp.event_type_id));
            prop_assert!(seen.insert(imp.event_type_id));
            prop_assert_eq!(imp.company_id, COMPANY);
        }
    }

    #[test]
    fn every_recorded_drift_is_a_real_difference(w in world()) {
        let (_, write) = run(&w);
        let listed: HashMap<EventTypeId, &EventType> = w.listing.iter().filter_map(|r| r.as_ref().ok()).map(|e| (e.id, e)).collect();
        let loaded: HashMap<ServiceId, &Service> = w.services.iter().map(|l| (l.service.id, &l.service)).collect();
        for u in &write.drift_upserts {
            let s = loaded[&u.service_id];
            let et = listed[&u.event_type_id];
            let diffs = compare(&s.values, et);
            let d = diffs.iter().find(|d| d.field == u.field);
            prop_assert!(d.is_some(), "{:?} recorded but not different", u.field);
            let d = d.unwrap();
            prop_assert_eq!(&d.platform, &u.platform_value);
            prop_assert_eq!(&d.calcom, &u.calcom_value);
        }
    }

    #[test]
    fn a_second_pass_imports_nothing_and_protected_values_stay(w in world()) {
        let (p, write) = run(&w);
        let next = apply_in_memory(&w, &write, &p);
        let (p2, write2) = run(&next);
        prop_assert!(write2.imports.is_empty(), "second pass imports {:?}", write2.imports);
        prop_assert!(p2.imports.is_empty());
        if !w.policy.allow_calcom_overwrites {
            for (before, after) in w.services.iter().zip(next.services.iter()) {
                prop_assert_eq!(&before.service.values, &after.service.values);
            }
            prop_assert!(write2.overwrites.is_none());
        }
    }

    #[test]
    fn orphans_are_never_planned_from_an_empty_listing(mut w in world()) {
        w.listing.clear();
        let (p, write) = run(&w);
        prop_assert!(p.orphans.is_empty());
        prop_assert_eq!(p.empty_listing_guarded, !w.services.is_empty());
        prop_assert!(write.metadata.is_empty());
    }
}
