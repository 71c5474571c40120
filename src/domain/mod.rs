//! Plain domain types, no I/O: services, event types, money, sync status, drift
//! fields and the write policy.
//!
//! Everything past `calcom::wire` and `store` speaks these types. Values are parsed
//! at the boundary (`TryFrom`), so a `Minutes` is always in range and `Money` is never
//! a float.

mod money;
mod policy;
mod values;

pub use money::{Currency, Money};
pub use policy::{Adoption, Backoff, FieldGrant, Guard, GuardReason, Owner, Ownership, Policy};
pub use values::{Agreed, Baseline, Change, Comparable, FieldValue, FieldVerdict, classify};

use std::fmt;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

/// One configured Cal.com account (one API key) and the platform company its
/// imports belong to. The key is a secret: it cannot be printed by accident.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub company_id: i64,
    pub api_key: secrecy::SecretString,
    pub team_ids: Vec<i64>,
    pub org_id: Option<i64>,
    /// Who owns each field for this account: `sync.ownership` with the account's
    /// overrides (and `sync.allow_calcom_overwrites`) folded in.
    pub ownership: Ownership,
}

/// Cal.com event type id (stable key of an event type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventTypeId(pub i64);

/// Platform service id (`services.id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServiceId(pub i64);

/// Cal.com team id, present on team event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TeamId(pub i64);

macro_rules! display_inner {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}
display_inner!(EventTypeId, ServiceId, TeamId);

/// Longest event a salon or clinic service may plausibly last (one day).
pub const MAX_MINUTES: u32 = 24 * 60;
/// `services.name` is a `varchar(255)`.
pub const MAX_NAME_CHARS: usize = 255;
/// Descriptions longer than this are treated as absurd input, not stored.
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;

/// A duration in whole minutes, `1..=MAX_MINUTES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Minutes(u32);

impl Minutes {
    pub fn new(value: i64) -> Option<Self> {
        (1..=i64::from(MAX_MINUTES))
            .contains(&value)
            .then_some(Self(value as u32))
    }
    pub fn get(self) -> u32 {
        self.0
    }
}

/// `services.sync_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncStatus {
    Synced,
    Pending,
    Error,
    Never,
}

impl SyncStatus {
    pub const ALL: [SyncStatus; 4] = [Self::Synced, Self::Pending, Self::Error, Self::Never];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Synced => "synced",
            Self::Pending => "pending",
            Self::Error => "error",
            Self::Never => "never",
        }
    }

    /// Parses the column value; anything unknown is read as `Never` by the caller's
    /// choice, so the platform can never make a pass fail with a new status word.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

impl fmt::Display for SyncStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The business fields calsync compares. Names are used verbatim in logs, metrics,
/// the drift ledger and JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    Name,
    Description,
    DurationMinutes,
    Visibility,
    Price,
}

impl Field {
    pub const ALL: [Field; 5] = [
        Self::Name,
        Self::Description,
        Self::DurationMinutes,
        Self::Visibility,
        Self::Price,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Description => "description",
            Self::DurationMinutes => "duration_minutes",
            Self::Visibility => "visibility",
            Self::Price => "price",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == value)
    }

    /// Whether API v2 `PATCH /v2/event-types/{id}` can set this field. Price cannot:
    /// v2 has no price input and silently drops one.
    pub fn pushable(self) -> bool {
        !matches!(self, Self::Price)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The business columns of a service: what the platform owns and calsync protects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessValues {
    pub name: String,
    /// `None` = not managed by the platform (NULL or "").
    pub description: Option<String>,
    pub duration_minutes: i32,
    pub is_active: bool,
    pub is_online: bool,
    pub price: Money,
}

impl BusinessValues {
    /// Bookable online = active AND online; maps to Cal.com `NOT hidden`.
    pub fn bookable(&self) -> bool {
        self.is_active && self.is_online
    }

    /// Copies one field's value from an event type (visibility: online = not
    /// hidden, and a bookable event type makes the service active).
    pub fn take_from(&mut self, field: Field, et: &EventType) {
        match field {
            Field::Name => self.name = et.title.clone(),
            Field::Description => {
                self.description = (!et.description.is_empty()).then(|| et.description.clone())
            }
            Field::DurationMinutes => self.duration_minutes = et.length.get() as i32,
            Field::Visibility => {
                self.is_online = !et.hidden;
                if !et.hidden {
                    self.is_active = true;
                }
            }
            Field::Price => self.price = et.price,
        }
    }
}

/// A row of the platform's `services` table, as calsync reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    pub id: ServiceId,
    pub company_id: i64,
    pub branch_id: Option<i64>,
    pub values: BusinessValues,
    pub composite: bool,
    pub calcom_event_type_id: Option<EventTypeId>,
    pub sync_status: SyncStatus,
    pub last_calcom_sync: Option<NaiveDateTime>,
    pub sync_error: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
}

/// A validated Cal.com event type: only what calsync compares or needs to push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventType {
    pub id: EventTypeId,
    /// Set for team event types; pushes then go through the team endpoint.
    pub team_id: Option<TeamId>,
    pub title: String,
    pub slug: String,
    /// Cal.com returns "" when there is none.
    pub description: String,
    pub length: Minutes,
    /// `lengthInMinutesOptions`, when set: a PATCH of the length must keep the new
    /// length among the options.
    pub length_options: Option<Vec<u32>>,
    pub hidden: bool,
    /// Effective price: the enabled payment app's, else the top-level one.
    pub price: Money,
}

/// How a drift ledger entry was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The two sides agree again (someone fixed one of them).
    Agreed,
    /// calsync pushed the platform value back over a Cal.com-side edit
    /// (`repush_drifted`, or a manual push).
    Repushed,
    /// Replaced without anyone deciding for it: a conflict the platform won when
    /// its edit was pushed, a value pushed over before the service had a baseline,
    /// or a Cal.com value that Cal.com itself replaced with a newer one.
    Superseded,
    /// Cal.com owns the field (`sync.ownership`, or `allow_calcom_overwrites`):
    /// its value was copied into the platform.
    Overwritten,
    /// The service or its event type is gone from the comparison.
    Orphaned,
    /// An operator took Cal.com's value into the platform (`calsync drift adopt`).
    Adopted,
    /// The field is no longer compared (`ignore` in `sync.ownership`).
    Ignored,
}

impl Resolution {
    pub const ALL: [Resolution; 7] = [
        Self::Agreed,
        Self::Repushed,
        Self::Superseded,
        Self::Overwritten,
        Self::Orphaned,
        Self::Adopted,
        Self::Ignored,
    ];

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == value)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agreed => "agreed",
            Self::Repushed => "repushed",
            Self::Superseded => "superseded",
            Self::Overwritten => "overwritten",
            Self::Orphaned => "orphaned",
            Self::Adopted => "adopted",
            Self::Ignored => "ignored",
        }
    }
}

/// Why a drift ledger entry exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Someone edited the event type in Cal.com; the platform did not change it.
    CalcomEdit,
    /// Both sides changed the field since they last agreed (or, before a service
    /// has a baseline, a pending platform edit was pushed over a differing Cal.com
    /// value: calsync cannot tell who changed it).
    Conflict,
    /// Cal.com stored a pushed value differently (trimmed, rounded, clamped).
    Normalised,
    /// The platform changed a field Cal.com owns (`sync.ownership`): not pushed,
    /// recorded as drift the other way.
    PlatformEdit,
}

impl Origin {
    pub const ALL: [Origin; 4] = [
        Self::CalcomEdit,
        Self::Conflict,
        Self::Normalised,
        Self::PlatformEdit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CalcomEdit => "calcom_edit",
            Self::Conflict => "conflict",
            Self::Normalised => "normalised",
            Self::PlatformEdit => "platform_edit",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == value)
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One differing field, with both sides rendered for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldDiff {
    pub field: Field,
    pub platform: String,
    pub calcom: String,
    /// What both sides last agreed on, when they ever did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// Who changed the field since then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
}

/// An open drift ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftEntry {
    pub service_id: ServiceId,
    pub calcom_event_type_id: EventTypeId,
    pub account: String,
    pub field: Field,
    pub origin: Origin,
    pub platform_value: String,
    pub calcom_value: String,
    /// The value both sides last agreed on, when there was one.
    pub baseline_value: Option<String>,
    pub first_seen_at: NaiveDateTime,
    pub last_seen_at: NaiveDateTime,
    pub times_seen: i64,
    /// An operator's acknowledgement (`calsync drift ack`), if any: the entry stays
    /// open but is left out of the drift gauges alerts use until it expires.
    pub acknowledged: Option<Acknowledgement>,
}

impl DriftEntry {
    /// Whether an unexpired acknowledgement covers the entry at `now`.
    pub fn acknowledged_at(&self, now: NaiveDateTime) -> bool {
        self.acknowledged.as_ref().is_some_and(|a| a.until > now)
    }
}

/// Who acknowledged a drift entry, until when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub until: NaiveDateTime,
    pub note: String,
    pub by: String,
}

/// The retry state of a service whose push failed (`calsync_push_state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushState {
    /// The platform values the failing push carried (canonical): a platform
    /// change makes a different key and starts over.
    pub values_key: String,
    pub attempts: u32,
    pub next_attempt_at: NaiveDateTime,
    /// Cal.com refused the push (a 4xx other than 429), or the attempts are used
    /// up: calsync does not retry until something changes.
    pub needs_human: bool,
    pub last_error: String,
}

/// Renders a bookable flag the way ledger entries and logs show it.
pub fn visibility_label(bookable: bool) -> &'static str {
    if bookable { "bookable" } else { "hidden" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minutes_reject_zero_and_absurd_lengths() {
        assert!(Minutes::new(0).is_none());
        assert!(Minutes::new(-5).is_none());
        assert!(Minutes::new(100_000).is_none());
        assert_eq!(Minutes::new(45).map(Minutes::get), Some(45));
        assert_eq!(Minutes::new(1440).map(Minutes::get), Some(1440));
    }

    #[test]
    fn field_and_status_names_round_trip() {
        for f in Field::ALL {
            assert_eq!(Field::parse(f.as_str()), Some(f));
        }
        for s in SyncStatus::ALL {
            assert_eq!(SyncStatus::parse(s.as_str()), Some(s));
        }
        assert!(!Field::Price.pushable());
        assert!(Field::Name.pushable());
    }
}
