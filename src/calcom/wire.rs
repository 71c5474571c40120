//! Wire format of Cal.com API v2 (`cal-api-version: 2024-06-14`), and the boundary
//! where it becomes domain types. Nothing past this module sees raw JSON.
//!
//! Decoding is lenient where Cal.com is known to differ from its own spec (`users`
//! and `hosts` are objects, `lengthInMinutesOptions` may hold strings, unknown fields
//! appear) and strict where calsync compares or stores a value: one bad record is a
//! [`RecordError`] naming the event type, never a failed page.
//!
//! Two decoders, one set of checks. A listing's records are decoded straight into
//! [`RawEventType`] (strings borrowed from the body where they hold no escapes,
//! unknown fields skipped without building trees); a record that typed decoding
//! refuses for any reason is decoded again through a `serde_json::Value`, whose
//! lenient reading either accepts it or names the event type and the field. Both
//! run the same checks in the same order, so the fast path can only agree with
//! the slow one.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::domain::{
    Currency, EventType, EventTypeId, MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, Minutes, Money, TeamId,
};

/// The version header value every `/v2/event-types*` call must carry.
pub const API_VERSION: &str = "2024-06-14";

/// `{"status":"success","data":…}` or `{"status":"error","error":{…}}`. `data`
/// stays undecoded: a listing decodes it record by record.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub data: Option<Box<RawValue>>,
    #[serde(default)]
    pub error: Option<ErrorBody>,
}

/// A listing's success body read in one pass over it: the envelope, with `data`
/// split into its records (each left undecoded, borrowed from the body). Any
/// other shape (an error envelope, no `data`, `data` not a list, escapes in
/// `status`) fails it, and the body goes through [`Envelope`], whose reading
/// names what is wrong.
#[derive(Debug, Deserialize)]
pub struct ListEnvelope<'a> {
    #[serde(default, borrow)]
    pub status: Option<&'a str>,
    #[serde(borrow)]
    pub data: Vec<&'a RawValue>,
}

/// A listing's success body decoded in one pass straight into event types:
/// `data`'s records are read as they stream by, never split out first. Any
/// record typed decoding cannot take (or any other shape of body) fails the
/// whole reading, and the body goes through [`ListEnvelope`] record by record,
/// which gives the same results for the records this reading takes and names
/// what is wrong with the others.
#[derive(Deserialize)]
pub struct TypedListing<'a> {
    #[serde(default, borrow)]
    status: Option<&'a str>,
    #[serde(deserialize_with = "typed_records")]
    data: Vec<Result<EventType, RecordError>>,
}

impl TypedListing<'_> {
    /// The records, unless the body is an error envelope.
    pub fn records(self) -> Option<Vec<Result<EventType, RecordError>>> {
        (self.status != Some("error")).then_some(self.data)
    }
}

/// `data` as [`TypedListing`] reads it: each record decoded and checked as it
/// is read ([`RawEventType::check`]; a failed check is that record's error), or
/// an error for the whole list where [`event_type_from_raw`] would have to fall
/// back to its lenient decoding.
fn typed_records<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<Result<EventType, RecordError>>, D::Error> {
    struct Visit;
    impl<'de> serde::de::Visitor<'de> for Visit {
        type Value = Vec<Result<EventType, RecordError>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of event types")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(Obj(raw)) = seq.next_element::<Obj<RawEventType<'de>>>()? {
                let options = raw
                    .options()
                    .filter(|_| raw.id > 0)
                    .ok_or_else(|| serde::de::Error::custom("needs the lenient decoding"))?;
                let id = EventTypeId(raw.id);
                out.push(raw.check(id, options).map_err(|message| RecordError {
                    event_type_id: Some(id),
                    message,
                }));
            }
            Ok(out)
        }
    }
    d.deserialize_seq(Visit)
}

#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// A record of a listing that could not be turned into an [`EventType`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordError {
    /// `None` when even the id was unreadable.
    pub event_type_id: Option<EventTypeId>,
    pub message: String,
}

impl std::fmt::Display for RecordError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.event_type_id {
            Some(id) => write!(f, "event type {id}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Body of a PATCH: only the fields calsync owns. `None` fields are not sent, so
/// Cal.com keeps its value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventTypePatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length_in_minutes: Option<u32>,
    /// Sent only when the event type has options: Cal.com rejects a length that is
    /// not among them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length_in_minutes_options: Option<Vec<u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
}

impl EventTypePatch {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn whole(obj: &Map<String, Value>, key: &str) -> Result<Option<i64>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{key} {n} is not a whole number")),
        Some(other) => Err(format!(
            "{key} is {}, expected a whole number",
            kind_of(other)
        )),
    }
}

fn text<'a>(obj: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!("{key} is {}, expected a string", kind_of(other))),
    }
}

/// Rejects text no backend can store, or none should: U+0000 (PostgreSQL refuses
/// it in `text`), and other control characters (in a name they are never
/// intended; a description may keep tabs and line breaks).
fn storable(key: &str, value: &str, multiline: bool) -> Result<(), String> {
    let bad = value
        .chars()
        .find(|c| c.is_control() && !(multiline && matches!(c, '\t' | '\n' | '\r')));
    match bad {
        None => Ok(()),
        Some(c) => Err(format!(
            "{key} contains the control character U+{:04X}, which the platform's database cannot store; remove it in Cal.com",
            c as u32
        )),
    }
}

/// One record of a listing, typed: what calsync reads, borrowed where it can be.
/// Anything unusual (a wrong type, a duplicate key, a non-object, an id that is
/// not positive) fails it, and the record goes through [`event_type_from_value`].
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEventType<'a> {
    id: i64,
    #[serde(borrow)]
    title: Option<Text<'a>>,
    #[serde(borrow)]
    description: Option<Text<'a>>,
    length_in_minutes: Option<i64>,
    hidden: Option<bool>,
    team_id: Option<i64>,
    #[serde(borrow)]
    slug: Option<Text<'a>>,
    /// Lenient (strings or numbers, anything else dropped): read as a `Value`.
    #[serde(borrow)]
    length_in_minutes_options: Option<&'a RawValue>,
    #[serde(borrow)]
    metadata: Option<Obj<RawMetadata<'a>>>,
    price: Option<i64>,
    #[serde(borrow)]
    currency: Option<Text<'a>>,
}

/// A struct read only from a JSON object: serde's derived structs also accept an
/// array of their fields in order, which the lenient decoder rightly refuses.
struct Obj<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Visit<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData)).map(Obj)
    }
}

/// A string borrowed from the body when it holds no escapes, owned otherwise
/// (serde's own `Cow<str>` is always owned inside an `Option`).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visit)
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Deserialize)]
struct RawMetadata<'a> {
    /// By name, as the lenient decoder sorts them.
    #[serde(borrow)]
    apps: Option<BTreeMap<Text<'a>, Obj<RawApp<'a>>>>,
}

#[derive(Deserialize)]
struct RawApp<'a> {
    enabled: Option<bool>,
    price: Option<i64>,
    #[serde(borrow)]
    currency: Option<Text<'a>>,
}

/// Turns one record of a listing into a domain event type: typed, or, if typed
/// decoding refuses it, through [`event_type_from_value`] (which names the field).
pub fn event_type_from_raw(item: &RawValue, position: usize) -> Result<EventType, RecordError> {
    if let Ok(Obj(raw)) = serde_json::from_str::<Obj<RawEventType<'_>>>(item.get())
        && raw.id > 0
        && let Some(options) = raw.options()
    {
        let id = EventTypeId(raw.id);
        return raw.check(id, options).map_err(|message| RecordError {
            event_type_id: Some(id),
            message,
        });
    }
    match serde_json::from_str::<Value>(item.get()) {
        Ok(value) => event_type_from_value(&value, position),
        Err(e) => Err(RecordError {
            event_type_id: None,
            message: format!("item #{position} of the listing is not valid JSON: {e}"),
        }),
    }
}

impl RawEventType<'_> {
    /// The length options, or `None` (outer) when they are not even JSON.
    #[allow(clippy::option_option, reason = "outer: unreadable; inner: no options")]
    fn options(&self) -> Option<Option<Vec<u32>>> {
        match self.length_in_minutes_options {
            None => Some(None),
            Some(raw) => {
                let value = serde_json::from_str::<Value>(raw.get()).ok()?;
                Some(length_options(Some(&value)))
            }
        }
    }

    /// The checks of [`decode`], in its order.
    fn check(
        &self,
        id: EventTypeId,
        length_options: Option<Vec<u32>>,
    ) -> Result<EventType, String> {
        let title = checked_title(self.title.as_deref())?;
        let description = checked_description(self.description.as_deref())?;
        let length = checked_length(self.length_in_minutes)?;
        let slug = checked_slug(self.slug.as_deref())?;
        let app = self
            .metadata
            .as_ref()
            .and_then(|m| m.0.apps.as_ref())
            .and_then(|apps| {
                apps.iter()
                    .find(|(_, app)| app.0.enabled == Some(true) && app.0.price.is_some())
            });
        let price = match app {
            Some((name, Obj(app))) => money(
                app.price,
                app.currency.as_deref(),
                &format!("metadata.apps.{name}"),
            )?,
            None => money(self.price, self.currency.as_deref(), "price")?,
        };
        Ok(EventType {
            id,
            team_id: self.team_id.filter(|t| *t > 0).map(TeamId),
            title: title.to_owned(),
            slug: slug.to_owned(),
            description: description.to_owned(),
            length,
            length_options,
            hidden: self.hidden.unwrap_or(false),
            price,
        })
    }
}

/// Turns one listed item, already a `Value`, into a domain event type.
pub fn event_type_from_value(item: &Value, position: usize) -> Result<EventType, RecordError> {
    let Some(obj) = item.as_object() else {
        return Err(RecordError {
            event_type_id: None,
            message: format!(
                "item #{position} of the listing is {}, not an object",
                kind_of(item)
            ),
        });
    };
    let id = match whole(obj, "id") {
        Ok(Some(id)) if id > 0 => EventTypeId(id),
        Ok(_) | Err(_) => {
            return Err(RecordError {
                event_type_id: None,
                message: format!("item #{position} of the listing has no valid id"),
            });
        }
    };
    decode(id, obj).map_err(|message| RecordError {
        event_type_id: Some(id),
        message,
    })
}

fn decode(id: EventTypeId, obj: &Map<String, Value>) -> Result<EventType, String> {
    let title = checked_title(text(obj, "title")?)?;
    let description = checked_description(text(obj, "description")?)?;
    let length = checked_length(whole(obj, "lengthInMinutes")?)?;
    let hidden = match obj.get("hidden") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(format!("hidden is {}, expected a boolean", kind_of(other))),
    };
    let team_id = whole(obj, "teamId")?.filter(|t| *t > 0).map(TeamId);
    let slug = checked_slug(text(obj, "slug")?)?;
    Ok(EventType {
        id,
        team_id,
        title: title.to_owned(),
        slug: slug.to_owned(),
        description: description.to_owned(),
        length,
        length_options: length_options(obj.get("lengthInMinutesOptions")),
        hidden,
        price: effective_price(obj)?,
    })
}

fn checked_title(title: Option<&str>) -> Result<&str, String> {
    let title = title.ok_or("title is missing")?;
    if title.trim().is_empty() {
        return Err("title is empty".into());
    }
    storable("title", title, false)?;
    let title_chars = title.chars().count();
    if title_chars > MAX_NAME_CHARS {
        return Err(format!(
            "title is {title_chars} characters long; the platform's name holds at most {MAX_NAME_CHARS}"
        ));
    }
    Ok(title)
}

fn checked_description(description: Option<&str>) -> Result<&str, String> {
    let description = description.unwrap_or_default();
    storable("description", description, true)?;
    let description_chars = description.chars().count();
    if description_chars > MAX_DESCRIPTION_CHARS {
        return Err(format!(
            "description is {description_chars} characters long (at most {MAX_DESCRIPTION_CHARS} are accepted)"
        ));
    }
    Ok(description)
}

fn checked_length(length: Option<i64>) -> Result<Minutes, String> {
    let length = length.ok_or("lengthInMinutes is missing")?;
    Minutes::new(length).ok_or_else(|| {
        format!(
            "lengthInMinutes {length} is out of range (1..={})",
            crate::domain::MAX_MINUTES
        )
    })
}

fn checked_slug(slug: Option<&str>) -> Result<&str, String> {
    let slug = slug.unwrap_or_default();
    storable("slug", slug, false)?;
    Ok(slug)
}

/// The spec types the options as strings; the server sends numbers. Accept both and
/// drop anything else (the options matter only when pushing a length).
fn length_options(v: Option<&Value>) -> Option<Vec<u32>> {
    let items = v?.as_array()?;
    let out: Vec<u32> = items
        .iter()
        .filter_map(|i| match i {
            Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
        .collect();
    (!out.is_empty()).then_some(out)
}

/// Effective price: the enabled payment app under `metadata.apps` (first by app
/// name, for determinism), else the deprecated top-level `price`/`currency`.
fn effective_price(obj: &Map<String, Value>) -> Result<Money, String> {
    let apps = obj
        .get("metadata")
        .and_then(|m| m.get("apps"))
        .and_then(Value::as_object);
    if let Some(apps) = apps {
        let mut names: Vec<&String> = apps.keys().collect();
        names.sort();
        for name in names {
            let Some(app) = apps[name].as_object() else {
                continue;
            };
            if app.get("enabled") != Some(&Value::Bool(true)) {
                continue;
            }
            if app.get("price").is_some_and(|p| !p.is_null()) {
                let key = format!("metadata.apps.{name}");
                return money(
                    whole(app, "price").map_err(|e| format!("{key}.{e}"))?,
                    text(app, "currency").map_err(|e| format!("{key}.{e}"))?,
                    &key,
                );
            }
        }
    }
    money(whole(obj, "price")?, text(obj, "currency")?, "price")
}

fn money(amount: Option<i64>, currency: Option<&str>, key: &str) -> Result<Money, String> {
    let amount = amount.unwrap_or(0);
    if amount < 0 {
        return Err(format!("{key} {amount} is negative"));
    }
    if amount == 0 {
        // Free: the currency does not matter (Cal.com defaults it to "usd").
        return Ok(Money::free());
    }
    let code = currency.unwrap_or_default();
    let currency = Currency::parse(code)
        .ok_or_else(|| format!("{key} has currency {code:?}, which is not an ISO 4217 code"))?;
    Money::from_calcom_minor(amount, currency)
        .ok_or_else(|| format!("{key} {amount} {currency} is larger than the platform can store"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "id": 81234, "ownerId": 4021, "title": "Deep-tissue massage", "slug": "deep-tissue-60",
            "description": "Sixty minute session", "lengthInMinutes": 60, "hidden": false,
            "price": 9000, "currency": "eur",
            "metadata": {"apps": {"stripe": {"enabled": true, "price": 9000, "currency": "eur"}}},
            "users": [{"id": 4021, "name": "Ana"}], "hosts": [{"userId": 1}],
            "somethingNew": {"x": 1}
        })
    }

    #[test]
    fn a_realistic_record_decodes_ignoring_unknown_and_mistyped_fields() {
        let et = event_type_from_value(&sample(), 0).unwrap();
        assert_eq!(et.id, EventTypeId(81234));
        assert_eq!(et.length.get(), 60);
        assert_eq!(et.price.to_string(), "90.00 EUR");
        assert!(!et.hidden);
        assert_eq!(et.team_id, None);
    }

    #[test]
    fn the_enabled_payment_app_wins_over_the_stale_top_level_price() {
        let mut v = sample();
        v["price"] = json!(5000);
        v["metadata"]["apps"]["stripe"]["price"] = json!(12000);
        assert_eq!(event_type_from_value(&v, 0).unwrap().price.cents, 12000);
        v["metadata"]["apps"]["stripe"]["enabled"] = json!(false);
        assert_eq!(event_type_from_value(&v, 0).unwrap().price.cents, 5000);
    }

    #[test]
    fn bad_records_name_the_event_type_and_the_field() {
        let cases = [
            (
                json!({"lengthInMinutes": 0}),
                "lengthInMinutes 0 is out of range",
            ),
            (
                json!({"lengthInMinutes": 100000}),
                "lengthInMinutes 100000 is out of range",
            ),
            (
                json!({"lengthInMinutes": "60"}),
                "lengthInMinutes is a string",
            ),
            (json!({"title": null}), "title is missing"),
            (
                json!({"title": "x".repeat(10_000)}),
                "title is 10000 characters",
            ),
            (json!({"price": -5, "metadata": {}}), "price -5 is negative"),
            (json!({"hidden": "no"}), "hidden is a string"),
        ];
        for (patch, expected) in cases {
            let mut v = sample();
            for (k, val) in patch.as_object().unwrap() {
                v[k] = val.clone();
            }
            let err = event_type_from_value(&v, 0).unwrap_err();
            assert_eq!(err.event_type_id, Some(EventTypeId(81234)));
            assert!(err.to_string().contains(expected), "{err} lacks {expected}");
            assert!(err.to_string().starts_with("event type 81234"), "{err}");
        }
    }

    #[test]
    fn emoji_and_rtl_titles_are_valid() {
        let mut v = sample();
        v["title"] = json!("💆 تدليك عميق");
        assert_eq!(event_type_from_value(&v, 0).unwrap().title, "💆 تدليك عميق");
    }

    #[test]
    fn a_record_without_id_is_reported_by_position() {
        let err = event_type_from_value(&json!({"title": "x"}), 7).unwrap_err();
        assert_eq!(err.event_type_id, None);
        assert!(err.message.contains("#7"));
    }

    fn raw(v: &Value) -> Box<RawValue> {
        RawValue::from_string(v.to_string()).unwrap()
    }

    #[test]
    fn the_typed_decoder_reads_a_realistic_record_as_the_lenient_one_does() {
        let mut v = sample();
        v["description"] = json!("Line one\nline \"two\"\tend");
        v["lengthInMinutesOptions"] = json!(["30", 60]);
        v["teamId"] = json!(12);
        assert_eq!(
            event_type_from_raw(&raw(&v), 0),
            event_type_from_value(&v, 0)
        );
        assert!(event_type_from_raw(&raw(&v), 0).is_ok());
    }

    #[test]
    fn records_the_typed_decoder_refuses_are_read_leniently_or_named() {
        let mut lenient = sample();
        // Not booleans or objects where the typed decoder wants them: the lenient
        // reading skips the app and takes the top-level price.
        lenient["metadata"]["apps"]["stripe"]["enabled"] = json!("yes");
        lenient["metadata"]["apps"]["paypal"] = json!("not an app");
        let et = event_type_from_raw(&raw(&lenient), 0).unwrap();
        assert_eq!(et.price.cents, 9000);
        assert_eq!(Ok(et), event_type_from_value(&lenient, 0));

        let mut bad = sample();
        bad["lengthInMinutes"] = json!(60.5);
        let err = event_type_from_raw(&raw(&bad), 4).unwrap_err();
        assert_eq!(err.event_type_id, Some(EventTypeId(81234)));
        assert!(err.message.contains("lengthInMinutes"), "{err}");

        // serde's structs would take an array of their fields in order; a record
        // (or a payment app) must be an object.
        let mut positional = sample();
        positional["metadata"]["apps"]["stripe"] = json!([true, 0, ""]);
        assert_eq!(
            event_type_from_raw(&raw(&positional), 0),
            event_type_from_value(&positional, 0)
        );
        assert_eq!(
            event_type_from_raw(&raw(&positional), 0)
                .unwrap()
                .price
                .cents,
            9000
        );

        let err = event_type_from_raw(&raw(&json!([1, 2])), 4).unwrap_err();
        assert_eq!(err.event_type_id, None);
        assert!(err.message.contains("#4"), "{err}");
    }

    #[test]
    fn options_accept_strings_and_numbers() {
        let mut v = sample();
        v["lengthInMinutesOptions"] = json!(["30", 60, "x"]);
        assert_eq!(
            event_type_from_value(&v, 0).unwrap().length_options,
            Some(vec![30, 60])
        );
    }
}
