//! Pure three-way comparison of one account's Cal.com listing with its services
//! and their baselines. No I/O.
//!
//! Every listed record and every service in the account's scope ends up in exactly
//! one [`Difference`] (or, for a linked service missing from the listing, in
//! [`Diff::missing`], which `apply` must prove with Cal.com before anything is
//! orphaned). Each service is compared once; `plan` decides what to do.

use std::collections::{HashMap, HashSet};

use crate::calcom::RecordError;
use crate::domain::{
    Agreed, Baseline, BusinessValues, Change, Comparable, EventType, EventTypeId, Field, FieldDiff,
    FieldValue, FieldVerdict, Ownership, PushState, Service, SyncStatus, classify,
};
use crate::store::LinkedService;

/// What one comparison found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// No service has this event type id: a candidate for import.
    Unknown(EventType),
    /// A known service and its event type agree on every field (equal, or equal to
    /// the pair they last agreed on).
    InSync(Comparison),
    /// A known service and its event type differ on at least one field; each
    /// differing field says who changed it since the last agreement.
    Differs(Comparison),
    /// A listed record calsync could not read; `service` is set when it is known.
    Unreadable {
        error: RecordError,
        service: Option<Service>,
    },
    /// A linked service whose event type Cal.com confirmed is gone.
    Orphaned(Service),
}

/// One service compared with its event type and baseline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    pub service: Service,
    pub event_type: EventType,
    /// The baseline as stored (`None`: the sides never agreed yet).
    pub stored: Option<Baseline>,
    /// The baseline with this pass's agreements folded in, when there were any
    /// (a steady pass has none, and copies no baseline).
    pub rebased: Option<Baseline>,
    /// The fields that differ, in [`Field`] order (ignored fields never do).
    pub fields: Vec<FieldChange>,
    /// The retry state of the service's last failed push, if any.
    pub push_state: Option<PushState>,
}

impl Comparison {
    /// The baseline with this pass's agreements folded in.
    pub fn baseline(&self) -> &Baseline {
        static NONE: Baseline = Baseline {
            fields: std::collections::BTreeMap::new(),
            agreed_at: None,
        };
        self.rebased
            .as_ref()
            .or(self.stored.as_ref())
            .unwrap_or(&NONE)
    }

    /// Whether the baseline must be written (it changed, or there was none).
    pub fn baseline_changed(&self) -> bool {
        self.rebased
            .as_ref()
            .is_some_and(|b| self.stored.as_ref() != Some(b) && !b.fields.is_empty())
    }
}

/// One differing field: the values of both sides, the baseline, and who changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub field: Field,
    pub change: Change,
    pub platform: FieldValue,
    pub calcom: FieldValue,
    pub baseline: Option<Agreed>,
}

impl FieldChange {
    /// Both sides (and the baseline) as people read them.
    pub fn diff(&self) -> FieldDiff {
        FieldDiff {
            field: self.field,
            platform: self.platform.label(),
            calcom: self.calcom.label(),
            baseline: self.baseline.as_ref().map(Agreed::label),
            change: Some(self.change),
        }
    }
}

/// The outcome of comparing one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub differences: Vec<Difference>,
    /// Linked services in the account's scope whose event type the listing did not
    /// return: orphans only once Cal.com confirms the event type is gone.
    pub missing: Vec<LinkedService>,
    /// The listing came back empty although services are linked to this account:
    /// nothing was orphaned (an empty answer is more likely a Cal.com problem than
    /// every event type deleted at once).
    pub empty_listing_guarded: bool,
    /// How many linked services the guard kept from being orphaned.
    pub guarded_services: usize,
}

/// Who may be orphaned by this account.
#[derive(Debug, Clone, Copy)]
pub struct OrphanScope<'a> {
    pub account: &'a str,
    pub company_id: i64,
    /// Only the sole account of a company may orphan services whose event type no
    /// account has ever listed (another account of the company may list it).
    pub sole_account_for_company: bool,
    /// Who owns each field: ignored fields are never compared.
    pub ownership: Ownership,
}

/// Compares a listing with the services loaded for the account. The listing's
/// records move into the differences (a steady pass compares every record once
/// and copies none).
pub fn diff(
    listing: Vec<Result<EventType, RecordError>>,
    services: &[LinkedService],
    scope: OrphanScope<'_>,
) -> Diff {
    let by_event_type: HashMap<EventTypeId, &LinkedService> = services
        .iter()
        .filter_map(|l| l.service.calcom_event_type_id.map(|id| (id, l)))
        .collect();
    let mut listed: HashSet<EventTypeId> = HashSet::with_capacity(listing.len());
    let mut differences = Vec::with_capacity(listing.len() + 8);
    // An item without a readable id may be any linked event type: the listing is
    // then partial with respect to ids, and nothing may be orphaned from it.
    let ids_complete = listing
        .iter()
        .all(|r| r.is_ok() || r.as_ref().err().is_some_and(|e| e.event_type_id.is_some()));
    let listed_nothing = listing.is_empty();

    for record in listing {
        match record {
            Ok(et) => {
                listed.insert(et.id);
                differences.push(match by_event_type.get(&et.id) {
                    None => Difference::Unknown(et),
                    Some(linked) => {
                        let c = compare_owned(linked, et, &scope.ownership);
                        if c.fields.is_empty() {
                            Difference::InSync(c)
                        } else {
                            Difference::Differs(c)
                        }
                    }
                });
            }
            Err(error) => {
                if let Some(id) = error.event_type_id {
                    listed.insert(id);
                }
                let service = error
                    .event_type_id
                    .and_then(|id| by_event_type.get(&id))
                    .map(|l| l.service.clone());
                differences.push(Difference::Unreadable { error, service });
            }
        }
    }

    let candidates: Vec<&LinkedService> = services
        .iter()
        .filter(|l| {
            let Some(id) = l.service.calcom_event_type_id else {
                return false;
            };
            if listed.contains(&id) {
                return false;
            }
            match &l.registry {
                Some(r) => r.account == scope.account,
                None => l.service.company_id == scope.company_id && scope.sole_account_for_company,
            }
        })
        .collect();

    let candidates = if ids_complete { candidates } else { Vec::new() };
    let empty_listing_guarded = listed_nothing && !candidates.is_empty();
    let guarded_services = if empty_listing_guarded {
        candidates.len()
    } else {
        0
    };
    let missing = if empty_listing_guarded {
        Vec::new()
    } else {
        candidates.into_iter().cloned().collect()
    };
    Diff {
        differences,
        missing,
        empty_listing_guarded,
        guarded_services,
    }
}

/// The three-way comparison of one linked service with its event type. Fields
/// the ownership ignores are not compared (and their baseline is left as it was).
pub fn compare(linked: &LinkedService, et: &EventType, ownership: &Ownership) -> Comparison {
    compare_owned(linked, et.clone(), ownership)
}

/// [`compare`], keeping the event type it is given.
fn compare_owned(linked: &LinkedService, et: EventType, ownership: &Ownership) -> Comparison {
    let service = &linked.service;
    let platform = Comparable::of_service(&service.values);
    let calcom = Comparable::of_event_type(&et);
    let stored = linked.baseline.clone();
    let mut rebased: Option<Baseline> = None;
    let pending = service.sync_status == SyncStatus::Pending;
    let mut fields = Vec::new();
    for field in Field::ALL.into_iter().filter(|f| ownership.compared(*f)) {
        // A description the platform does not manage is never compared.
        let (Some(p), Some(c)) = (platform.get(field), calcom.get(field)) else {
            continue;
        };
        let agreed = rebased
            .as_ref()
            .or(stored.as_ref())
            .and_then(|b| b.get(field));
        match classify(&p, &c, agreed, pending) {
            FieldVerdict::Agree { rebase } => {
                if let Some(fresh) = rebase {
                    rebased
                        .get_or_insert_with(|| stored.clone().unwrap_or_default())
                        .fields
                        .insert(field, fresh);
                }
            }
            FieldVerdict::Differs(change) => fields.push(FieldChange {
                field,
                change,
                platform: p,
                calcom: c,
                baseline: agreed.cloned(),
            }),
        }
    }
    Comparison {
        service: service.clone(),
        event_type: et,
        stored,
        rebased,
        fields,
        push_state: linked.push_state.clone(),
    }
}

/// The fields where the platform's values and Cal.com's differ two-way (no
/// baseline), in [`Field`] order: what a push must check took effect.
pub fn differing(values: &BusinessValues, et: &EventType) -> Vec<(Field, FieldValue, FieldValue)> {
    let platform = Comparable::of_service(values);
    let calcom = Comparable::of_event_type(et);
    Field::ALL
        .into_iter()
        .filter_map(|f| {
            let (p, c) = (platform.get(f)?, calcom.get(f)?);
            (!p.agrees(&c)).then_some((f, p, c))
        })
        .collect()
}

/// A new service's values, all from Cal.com.
pub fn imported_values(et: &EventType) -> BusinessValues {
    BusinessValues {
        name: et.title.clone(),
        description: (!et.description.is_empty()).then(|| et.description.clone()),
        duration_minutes: et.length.get() as i32,
        is_active: true,
        is_online: !et.hidden,
        price: et.price,
    }
}

/// The baseline of a service imported from `et`: both sides hold Cal.com's values.
pub fn imported_baseline(et: &EventType) -> Baseline {
    let values = Comparable::of_service(&imported_values(et));
    let calcom = Comparable::of_event_type(et);
    let mut b = Baseline::default();
    for field in Field::ALL {
        if let (Some(p), Some(c)) = (values.get(field), calcom.get(field))
            && p.agrees(&c)
        {
            b.fields.insert(field, Agreed::same(p.key()));
        }
    }
    b
}
