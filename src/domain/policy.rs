//! The write policy. The store writes a business column of an existing service
//! only with a [`FieldGrant`] for that column's field, and a grant comes from two
//! places only: the field's [`Ownership`] (`calcom` owns it) or an explicit human
//! decision ([`Adoption`]). Both live in this module, and a grant cannot be built
//! anywhere else, so skipping the policy does not compile.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Field, ServiceId};

/// Who is the source of truth for one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Owner {
    /// The platform (the default): Cal.com-side edits are PROTECTION and drift,
    /// platform edits are pushed.
    #[default]
    Platform,
    /// Cal.com: its edits flow into the platform's column (an overwrite, the old
    /// platform value kept in the ledger); platform edits are not pushed and are
    /// recorded as drift the other way.
    Calcom,
    /// Never compared, never written, in either direction.
    Ignore,
}

impl Owner {
    pub const ALL: [Owner; 3] = [Self::Platform, Self::Calcom, Self::Ignore];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Platform => "platform",
            Self::Calcom => "calcom",
            Self::Ignore => "ignore",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == value)
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The owner of each field (`sync.ownership`, with an account's overrides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ownership([Owner; 5]);

impl Ownership {
    /// Every field owned by `owner` (`sync.allow_calcom_overwrites` = every field
    /// `calcom`).
    pub fn all(owner: Owner) -> Self {
        Self([owner; 5])
    }

    fn slot(field: Field) -> usize {
        Field::ALL
            .iter()
            .position(|f| *f == field)
            .unwrap_or_default()
    }

    pub fn of(&self, field: Field) -> Owner {
        self.0[Self::slot(field)]
    }

    pub fn set(&mut self, field: Field, owner: Owner) {
        self.0[Self::slot(field)] = owner;
    }

    /// The fields calsync compares (every field but the ignored ones).
    pub fn compared(&self, field: Field) -> bool {
        self.of(field) != Owner::Ignore
    }

    /// The grant to write `field` of an existing service with Cal.com's value:
    /// only where Cal.com owns the field.
    pub fn grant(&self, field: Field) -> Option<FieldGrant> {
        (self.of(field) == Owner::Calcom).then_some(FieldGrant {
            field,
            _private: (),
        })
    }

    /// `(field name, owner)` in field order (config output, reports).
    pub fn entries(&self) -> Vec<(&'static str, Owner)> {
        Field::ALL
            .into_iter()
            .map(|f| (f.as_str(), self.of(f)))
            .collect()
    }
}

impl Serialize for Ownership {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Field order, not alphabetical: the order people read a service in.
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(Field::ALL.len()))?;
        for f in Field::ALL {
            map.serialize_entry(f.as_str(), &self.of(f))?;
        }
        map.end()
    }
}

/// Permission to write one business field of one existing service with Cal.com's
/// value. Not `Clone`, not constructible outside this module.
#[derive(Debug)]
pub struct FieldGrant {
    field: Field,
    _private: (),
}

impl FieldGrant {
    pub fn field(&self) -> Field {
        self.field
    }
}

/// An operator's decision to take Cal.com's values of some fields into the
/// platform (`calsync drift adopt`): a one-time grant for those fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoption {
    pub service_id: ServiceId,
    pub fields: Vec<Field>,
}

impl Adoption {
    /// The grants the decision hands out, one per field.
    pub fn grants(&self) -> Vec<FieldGrant> {
        self.fields
            .iter()
            .map(|f| FieldGrant {
                field: *f,
                _private: (),
            })
            .collect()
    }
}

/// The blast-radius guard (`sync.guard`): a pass that would orphan or overwrite
/// more than this share of an account's linked services holds the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Guard {
    pub max_orphan_percent: u32,
    pub max_overwrite_percent: u32,
    /// Accounts with fewer linked services are never held.
    pub min_services: usize,
}

impl Default for Guard {
    fn default() -> Self {
        Self {
            max_orphan_percent: 20,
            max_overwrite_percent: 20,
            min_services: 10,
        }
    }
}

/// Why the guard holds an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardReason {
    Orphans,
    Overwrites,
}

impl GuardReason {
    pub const ALL: [GuardReason; 2] = [Self::Orphans, Self::Overwrites];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orphans => "orphans",
            Self::Overwrites => "overwrites",
        }
    }
}

impl Guard {
    /// Whether a pass that would orphan `orphans` and overwrite `overwrites` of
    /// `linked` services trips the guard, and why (orphans first).
    pub fn trips(&self, linked: usize, orphans: usize, overwrites: usize) -> Option<GuardReason> {
        if linked < self.min_services || linked == 0 {
            return None;
        }
        let over = |n: usize, percent: u32| n * 100 > linked * percent as usize;
        if over(orphans, self.max_orphan_percent) {
            Some(GuardReason::Orphans)
        } else if over(overwrites, self.max_overwrite_percent) {
            Some(GuardReason::Overwrites)
        } else {
            None
        }
    }
}

/// Retrying a push Cal.com keeps refusing (`sync.max_push_attempts`,
/// `sync.push_backoff_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Backoff {
    pub max_attempts: u32,
    pub initial_secs: u64,
    pub max_secs: u64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_secs: 60,
            max_secs: 3600,
        }
    }
}

impl Backoff {
    /// The wait after the `attempts`-th failed attempt: initial, doubled per
    /// attempt, capped.
    pub fn delay_secs(&self, attempts: u32) -> u64 {
        let doublings = attempts.saturating_sub(1).min(40);
        self.initial_secs
            .saturating_mul(1u64 << doublings)
            .min(self.max_secs)
    }
}

/// What the operator allows a pass to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Policy {
    pub import_unknown: bool,
    pub push_pending: bool,
    pub repush_drifted: bool,
    /// Push a platform edit found by comparing with the baseline even when the
    /// platform did not mark the service `pending` (`sync.detect_platform_edits`).
    pub detect_platform_edits: bool,
    /// Write `last_calcom_sync = now` on every unchanged service each pass, as
    /// calsync did before the per-account verification time existed
    /// (`sync.touch_last_calcom_sync`). Off: sync metadata is written only when it
    /// changes, and "last verified" is kept once per account and pass.
    pub touch_last_calcom_sync: bool,
    /// Who owns each field (already merged with the account's overrides when a
    /// pass runs).
    pub ownership: Ownership,
    pub guard: Guard,
    pub backoff: Backoff,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            import_unknown: true,
            push_pending: true,
            repush_drifted: false,
            detect_platform_edits: true,
            touch_last_calcom_sync: false,
            ownership: Ownership::default(),
            guard: Guard::default(),
            backoff: Backoff::default(),
        }
    }
}

impl Policy {
    /// The policy with an account's ownership in force.
    pub fn with_ownership(self, ownership: Ownership) -> Self {
        Self { ownership, ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_calcom_owned_fields_get_a_grant() {
        let mut o = Ownership::default();
        o.set(Field::Price, Owner::Calcom);
        o.set(Field::Description, Owner::Ignore);
        assert!(o.grant(Field::Price).is_some());
        assert!(o.grant(Field::Name).is_none());
        assert!(o.grant(Field::Description).is_none());
        assert!(!o.compared(Field::Description));
        assert_eq!(
            Ownership::all(Owner::Calcom)
                .grant(Field::Name)
                .map(|g| g.field()),
            Some(Field::Name)
        );
    }

    #[test]
    fn the_guard_trips_above_its_share_only_for_large_enough_accounts() {
        let g = Guard::default();
        assert_eq!(g.trips(9, 9, 0), None, "below min_services");
        assert_eq!(g.trips(10, 2, 0), None, "20 % is allowed");
        assert_eq!(g.trips(10, 3, 0), Some(GuardReason::Orphans));
        assert_eq!(g.trips(100, 0, 21), Some(GuardReason::Overwrites));
        assert_eq!(g.trips(100, 21, 21), Some(GuardReason::Orphans));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let b = Backoff::default();
        let delays: Vec<u64> = (1..=8).map(|a| b.delay_secs(a)).collect();
        assert_eq!(delays, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(b.delay_secs(u32::MAX), 3600);
    }
}
