//! The comparable values of a service and of an event type, the baseline both
//! sides last agreed on, and the three-way classification of a field.
//!
//! Both `reconcile::diff` and `reconcile::apply` map a platform row and an event
//! type through [`Comparable`] so that they compare the same things the same way;
//! nothing else decides whether two values agree.
//!
//! A [`Baseline`] keeps, per field, the canonical *key* of the platform value and
//! of the Cal.com value at the moment the two sides last agreed. They are equal
//! except after Cal.com normalised a pushed value (trimmed a title, rounded a
//! length): then the pair records that the platform's `X` and Cal.com's `Y` are
//! taken as agreement, so the normalised value is never pushed again in a loop.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

use super::{BusinessValues, EventType, Field, Money, visibility_label};

/// One field's value, in a form both sides share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    Text(String),
    Minutes(i64),
    Bookable(bool),
    Price(Money),
}

impl FieldValue {
    /// The canonical form two values are compared by (and the baseline keeps):
    /// free prices agree whatever their currency.
    pub fn key(&self) -> String {
        self.key_ref().into_owned()
    }

    /// [`Self::key`], borrowed where the value already holds it.
    fn key_ref(&self) -> Cow<'_, str> {
        match self {
            Self::Text(s) => Cow::Borrowed(s),
            Self::Minutes(m) => Cow::Owned(m.to_string()),
            Self::Bookable(b) => Cow::Borrowed(visibility_label(*b)),
            Self::Price(p) if p.cents == 0 => Cow::Borrowed("free"),
            Self::Price(p) => Cow::Owned(format!("{} {}", p.cents, p.currency)),
        }
    }

    /// The value as people read it in logs, the ledger and the console.
    pub fn label(&self) -> String {
        match self {
            Self::Price(p) if p.cents == 0 => "free".to_owned(),
            Self::Price(p) => p.to_string(),
            other => other.key(),
        }
    }

    pub fn agrees(&self, other: &FieldValue) -> bool {
        self.key_ref() == other.key_ref()
    }
}

/// The five drift fields of one side. `description: None` means the platform does
/// not manage the description (NULL or ""): the field is then never compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparable {
    pub name: String,
    pub description: Option<String>,
    pub duration_minutes: i64,
    pub bookable: bool,
    pub price: Money,
}

impl Comparable {
    pub fn of_service(v: &BusinessValues) -> Self {
        Self {
            name: v.name.clone(),
            description: v.description.clone().filter(|d| !d.is_empty()),
            duration_minutes: i64::from(v.duration_minutes),
            bookable: v.bookable(),
            price: v.price,
        }
    }

    pub fn of_event_type(et: &EventType) -> Self {
        Self {
            name: et.title.clone(),
            description: Some(et.description.clone()),
            duration_minutes: i64::from(et.length.get()),
            bookable: !et.hidden,
            price: et.price,
        }
    }

    /// The field's value; `None` for a description the platform does not manage.
    pub fn get(&self, field: Field) -> Option<FieldValue> {
        Some(match field {
            Field::Name => FieldValue::Text(self.name.clone()),
            Field::Description => FieldValue::Text(self.description.clone()?),
            Field::DurationMinutes => FieldValue::Minutes(self.duration_minutes),
            Field::Visibility => FieldValue::Bookable(self.bookable),
            Field::Price => FieldValue::Price(self.price),
        })
    }
}

/// What both sides held for one field when they last agreed (canonical keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreed {
    pub platform: String,
    pub calcom: String,
}

impl Agreed {
    pub fn same(key: String) -> Self {
        Self {
            platform: key.clone(),
            calcom: key,
        }
    }

    /// The baseline as people read it: one value, or `platform ≙ calcom` after a
    /// normalisation.
    pub fn label(&self) -> String {
        if self.platform == self.calcom {
            self.platform.clone()
        } else {
            format!("{} (Cal.com: {})", self.platform, self.calcom)
        }
    }
}

/// The stored form of an [`Agreed`] pair: a plain string when both sides held the
/// same value, an object otherwise. Keeps `calsync_baseline.agreed` readable.
#[derive(Serialize)]
#[serde(untagged)]
enum StoredAgreed {
    Same(String),
    Pair { platform: String, calcom: String },
}

/// Read by hand rather than through serde's `untagged`, which first copies every
/// value into a buffer of its own: a steady pass reads a baseline per service.
impl<'de> Deserialize<'de> for StoredAgreed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Pair {
            platform: String,
            calcom: String,
        }
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = StoredAgreed;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, or an object with `platform` and `calcom`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<StoredAgreed, E> {
                Ok(StoredAgreed::Same(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<StoredAgreed, E> {
                Ok(StoredAgreed::Same(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<StoredAgreed, A::Error> {
                let p = Pair::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(StoredAgreed::Pair {
                    platform: p.platform,
                    calcom: p.calcom,
                })
            }
        }
        d.deserialize_any(Visit)
    }
}

/// The per-field entries of a stored baseline; names calsync does not know are
/// skipped (a newer calsync may know more fields).
struct StoredFields(BTreeMap<Field, Agreed>);

impl<'de> Deserialize<'de> for StoredFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// A field name, read without keeping it.
        struct Name(Option<Field>);
        impl<'de> Deserialize<'de> for Name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Visit;
                impl serde::de::Visitor<'_> for Visit {
                    type Value = Name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a field name")
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Name, E> {
                        Ok(Name(Field::parse(v)))
                    }
                }
                d.deserialize_str(Visit)
            }
        }
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = StoredFields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of agreed values by field")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<StoredFields, A::Error> {
                let mut fields = BTreeMap::new();
                while let Some(Name(field)) = map.next_key()? {
                    let stored: StoredAgreed = map.next_value()?;
                    if let Some(field) = field {
                        fields.insert(
                            field,
                            match stored {
                                StoredAgreed::Same(k) => Agreed::same(k),
                                StoredAgreed::Pair { platform, calcom } => {
                                    Agreed { platform, calcom }
                                }
                            },
                        );
                    }
                }
                Ok(StoredFields(fields))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// The last-agreed values of one linked service, per field. A field without an
/// entry has no baseline yet (reconciled two-way until its first agreement).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    pub fields: BTreeMap<Field, Agreed>,
    pub agreed_at: Option<NaiveDateTime>,
}

impl Baseline {
    pub fn get(&self, field: Field) -> Option<&Agreed> {
        self.fields.get(&field)
    }

    /// The JSON kept in `calsync_baseline.agreed`.
    pub fn to_json(&self) -> String {
        let map: BTreeMap<&str, StoredAgreed> = self
            .fields
            .iter()
            .map(|(f, a)| {
                let stored = if a.platform == a.calcom {
                    StoredAgreed::Same(a.platform.clone())
                } else {
                    StoredAgreed::Pair {
                        platform: a.platform.clone(),
                        calcom: a.calcom.clone(),
                    }
                };
                (f.as_str(), stored)
            })
            .collect();
        serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
    }

    /// Reads `calsync_baseline.agreed`; unknown field names are skipped (a newer
    /// calsync may know more fields), anything unreadable is an error.
    pub fn from_json(json: &str, agreed_at: Option<NaiveDateTime>) -> Result<Self, String> {
        let StoredFields(fields) =
            serde_json::from_str(json).map_err(|e| format!("baseline is not readable: {e}"))?;
        Ok(Self { fields, agreed_at })
    }
}

/// Who changed a field since the last agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// P = B, C ≠ B (or no baseline and the platform did not mark the service
    /// pending): someone edited the event type in Cal.com.
    CalcomEdit,
    /// C = B, P ≠ B (or no baseline and the service is pending): the platform
    /// edited it.
    PlatformEdit,
    /// P ≠ B, C ≠ B, P ≠ C: both sides changed it.
    Conflict,
}

/// The three-way verdict on one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldVerdict {
    /// The two sides agree (equal, or equal to the last agreed pair). `rebase` is
    /// the baseline to store when it differs from the current one.
    Agree { rebase: Option<Agreed> },
    /// The two sides differ; who changed it.
    Differs(Change),
}

/// Classifies one field. `pending`: the platform marked the service pending
/// (used only for a field without a baseline).
pub fn classify(
    platform: &FieldValue,
    calcom: &FieldValue,
    baseline: Option<&Agreed>,
    pending: bool,
) -> FieldVerdict {
    let (p, c) = (platform.key_ref(), calcom.key_ref());
    if p == c {
        let current = baseline.is_some_and(|b| b.platform == p && b.calcom == p);
        return FieldVerdict::Agree {
            rebase: (!current).then(|| Agreed::same(p.into_owned())),
        };
    }
    let Some(b) = baseline else {
        return FieldVerdict::Differs(if pending {
            Change::PlatformEdit
        } else {
            Change::CalcomEdit
        });
    };
    match (p != b.platform, c != b.calcom) {
        (false, false) => FieldVerdict::Agree { rebase: None },
        (false, true) => FieldVerdict::Differs(Change::CalcomEdit),
        (true, false) => FieldVerdict::Differs(Change::PlatformEdit),
        (true, true) => FieldVerdict::Differs(Change::Conflict),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> FieldValue {
        FieldValue::Text(s.into())
    }

    #[test]
    fn the_three_way_table() {
        let b = Agreed::same("A".into());
        assert_eq!(
            classify(&t("A"), &t("A"), Some(&b), false),
            FieldVerdict::Agree { rebase: None }
        );
        assert_eq!(
            classify(&t("B"), &t("B"), Some(&b), false),
            FieldVerdict::Agree {
                rebase: Some(Agreed::same("B".into()))
            }
        );
        assert_eq!(
            classify(&t("A"), &t("C"), Some(&b), true),
            FieldVerdict::Differs(Change::CalcomEdit)
        );
        assert_eq!(
            classify(&t("P"), &t("A"), Some(&b), false),
            FieldVerdict::Differs(Change::PlatformEdit)
        );
        assert_eq!(
            classify(&t("P"), &t("C"), Some(&b), false),
            FieldVerdict::Differs(Change::Conflict)
        );
    }

    #[test]
    fn a_normalised_pair_is_agreement() {
        let b = Agreed {
            platform: "Cut ".into(),
            calcom: "Cut".into(),
        };
        assert_eq!(
            classify(&t("Cut "), &t("Cut"), Some(&b), false),
            FieldVerdict::Agree { rebase: None }
        );
        assert_eq!(
            classify(&t("Cut "), &t("Trim"), Some(&b), false),
            FieldVerdict::Differs(Change::CalcomEdit)
        );
    }

    #[test]
    fn without_a_baseline_pending_decides() {
        assert_eq!(
            classify(&t("P"), &t("C"), None, true),
            FieldVerdict::Differs(Change::PlatformEdit)
        );
        assert_eq!(
            classify(&t("P"), &t("C"), None, false),
            FieldVerdict::Differs(Change::CalcomEdit)
        );
        assert_eq!(
            classify(&t("P"), &t("P"), None, false),
            FieldVerdict::Agree {
                rebase: Some(Agreed::same("P".into()))
            }
        );
    }

    #[test]
    fn baseline_json_round_trips_and_reads_plainly() {
        let mut b = Baseline::default();
        b.fields.insert(Field::Name, Agreed::same("Cut".into()));
        b.fields.insert(
            Field::DurationMinutes,
            Agreed {
                platform: "31".into(),
                calcom: "30".into(),
            },
        );
        let json = b.to_json();
        assert_eq!(
            json,
            r#"{"duration_minutes":{"platform":"31","calcom":"30"},"name":"Cut"}"#
        );
        assert_eq!(Baseline::from_json(&json, None).unwrap(), b);
        assert!(Baseline::from_json("nope", None).is_err());
    }

    #[test]
    fn free_prices_agree_whatever_the_currency() {
        let usd = super::super::Currency::parse("usd").unwrap();
        let a = FieldValue::Price(Money::new(0, usd));
        let b = FieldValue::Price(Money::free());
        assert!(a.agrees(&b));
        assert_eq!(
            FieldValue::Price(Money::new(1500, usd)).label(),
            "15.00 USD"
        );
    }
}
