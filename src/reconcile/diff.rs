//! Pure comparison of one account's Cal.com listing with its services. No I/O.
//!
//! Every listed record and every service in the account's scope ends up in exactly
//! one [`Difference`]; `plan` decides what to do with each.

use std::collections::{HashMap, HashSet};

use crate::calcom::RecordError;
use crate::domain::{
    BusinessValues, EventType, EventTypeId, Field, FieldDiff, Money, Service, SyncStatus,
    visibility_label,
};
use crate::store::LinkedService;

/// What one comparison found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// No service has this event type id: a candidate for import.
    Unknown(EventType),
    /// A known service and its event type agree.
    InSync {
        service: Service,
        event_type: EventType,
    },
    /// A known service (not pending) differs from Cal.com: someone edited the event
    /// type in Cal.com. The platform values are protected.
    Drift {
        service: Service,
        event_type: EventType,
        fields: Vec<FieldDiff>,
    },
    /// The platform edited the service (`sync_status = 'pending'`); differences are
    /// the platform's edit on its way to Cal.com, not drift.
    PlatformEdit {
        service: Service,
        event_type: EventType,
        fields: Vec<FieldDiff>,
    },
    /// A listed record calsync could not read; `service` is set when it is known.
    Unreadable {
        error: RecordError,
        service: Option<Service>,
    },
    /// A linked service whose event type is absent from a complete listing.
    Orphaned(Service),
}

/// The outcome of comparing one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub differences: Vec<Difference>,
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
}

/// Compares a listing with the services loaded for the account.
pub fn diff(
    listing: &[Result<EventType, RecordError>],
    services: &[LinkedService],
    scope: OrphanScope<'_>,
) -> Diff {
    let by_event_type: HashMap<EventTypeId, &Service> = services
        .iter()
        .filter_map(|l| l.service.calcom_event_type_id.map(|id| (id, &l.service)))
        .collect();
    let mut listed: HashSet<EventTypeId> = HashSet::with_capacity(listing.len());
    let mut differences = Vec::with_capacity(listing.len() + 8);

    for record in listing {
        match record {
            Ok(et) => {
                listed.insert(et.id);
                differences.push(match by_event_type.get(&et.id) {
                    None => Difference::Unknown(et.clone()),
                    Some(service) => compare_known(service, et),
                });
            }
            Err(error) => {
                if let Some(id) = error.event_type_id {
                    listed.insert(id);
                }
                differences.push(Difference::Unreadable {
                    error: error.clone(),
                    service: error
                        .event_type_id
                        .and_then(|id| by_event_type.get(&id))
                        .map(|s| (*s).clone()),
                });
            }
        }
    }

    let candidates: Vec<&Service> = services
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
        .map(|l| &l.service)
        .collect();

    // An item without a readable id may be any linked event type: the listing is
    // then partial with respect to ids, and nothing may be orphaned from it.
    let ids_complete = listing
        .iter()
        .all(|r| r.is_ok() || r.as_ref().err().is_some_and(|e| e.event_type_id.is_some()));
    let candidates = if ids_complete { candidates } else { Vec::new() };
    let empty_listing_guarded = listing.is_empty() && !candidates.is_empty();
    let guarded_services = if empty_listing_guarded {
        candidates.len()
    } else {
        0
    };
    if !empty_listing_guarded {
        differences.extend(
            candidates
                .into_iter()
                .map(|s| Difference::Orphaned(s.clone())),
        );
    }
    Diff {
        differences,
        empty_listing_guarded,
        guarded_services,
    }
}

fn compare_known(service: &Service, et: &EventType) -> Difference {
    let fields = compare(&service.values, et);
    if service.sync_status == SyncStatus::Pending {
        return Difference::PlatformEdit {
            service: service.clone(),
            event_type: et.clone(),
            fields,
        };
    }
    if fields.is_empty() {
        Difference::InSync {
            service: service.clone(),
            event_type: et.clone(),
        }
    } else {
        Difference::Drift {
            service: service.clone(),
            event_type: et.clone(),
            fields,
        }
    }
}

/// The fields where the platform's values and Cal.com's differ, in [`Field`] order.
pub fn compare(values: &BusinessValues, et: &EventType) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    if values.name != et.title {
        out.push(FieldDiff {
            field: Field::Name,
            platform: values.name.clone(),
            calcom: et.title.clone(),
        });
    }
    // NULL (or "") means the platform does not manage the description.
    if let Some(desc) = &values.description
        && *desc != et.description
    {
        out.push(FieldDiff {
            field: Field::Description,
            platform: desc.clone(),
            calcom: et.description.clone(),
        });
    }
    if i64::from(values.duration_minutes) != i64::from(et.length.get()) {
        out.push(FieldDiff {
            field: Field::DurationMinutes,
            platform: values.duration_minutes.to_string(),
            calcom: et.length.get().to_string(),
        });
    }
    if values.bookable() == et.hidden {
        out.push(FieldDiff {
            field: Field::Visibility,
            platform: visibility_label(values.bookable()).into(),
            calcom: visibility_label(!et.hidden).into(),
        });
    }
    if !values.price.same_price(&et.price) {
        out.push(FieldDiff {
            field: Field::Price,
            platform: price_label(&values.price),
            calcom: price_label(&et.price),
        });
    }
    out
}

fn price_label(m: &Money) -> String {
    if m.cents == 0 {
        "free".into()
    } else {
        m.to_string()
    }
}

/// The platform values with the given Cal.com fields copied in (the
/// `allow_calcom_overwrites` escape hatch, and imports).
pub fn calcom_values(base: &BusinessValues, et: &EventType, fields: &[Field]) -> BusinessValues {
    let mut v = base.clone();
    for field in fields {
        match field {
            Field::Name => v.name = et.title.clone(),
            Field::Description => {
                v.description = (!et.description.is_empty()).then(|| et.description.clone())
            }
            Field::DurationMinutes => v.duration_minutes = et.length.get() as i32,
            Field::Visibility => {
                v.is_online = !et.hidden;
                if !et.hidden {
                    v.is_active = true;
                }
            }
            Field::Price => v.price = et.price,
        }
    }
    v
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
