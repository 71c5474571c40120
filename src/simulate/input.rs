//! What the create and update endpoints accept (`CreateEventTypeInput_2024_06_14`,
//! `UpdateEventTypeInput_2024_06_14` and the team variants): unknown properties
//! are dropped silently, as Cal.com's whitelisting validation pipe does (so a
//! `price` in a PATCH changes nothing), and known ones are type-checked with
//! class-validator's messages. This file must never read or change state.

use serde_json::{Map, Number, Value, json};

use super::envelope::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    Personal,
    Team,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    Create,
    Update,
}

#[derive(Debug, Clone, Copy)]
enum Rule {
    Int { min: Option<i64> },
    Str,
    Url,
    Bool,
    IntOptions,
    ObjectArray,
    Object,
    Language,
    SchedulingType,
    Hosts,
}

/// Accepted by every variant, create and update alike.
const FIELDS: &[(&str, Rule)] = &[
    ("lengthInMinutes", Rule::Int { min: Some(1) }),
    ("lengthInMinutesOptions", Rule::IntOptions),
    ("title", Rule::Str),
    ("slug", Rule::Str),
    ("description", Rule::Str),
    ("bookingFields", Rule::ObjectArray),
    ("locations", Rule::ObjectArray),
    ("disableGuests", Rule::Bool),
    ("slotInterval", Rule::Int { min: None }),
    ("minimumBookingNotice", Rule::Int { min: Some(0) }),
    ("beforeEventBuffer", Rule::Int { min: None }),
    ("afterEventBuffer", Rule::Int { min: None }),
    ("scheduleId", Rule::Int { min: None }),
    ("bookingLimitsCount", Rule::Object),
    ("bookerActiveBookingsLimit", Rule::Object),
    ("onlyShowFirstAvailableSlot", Rule::Bool),
    ("bookingLimitsDuration", Rule::Object),
    ("bookingWindow", Rule::Object),
    ("offsetStart", Rule::Int { min: Some(0) }),
    ("bookerLayouts", Rule::Object),
    ("confirmationPolicy", Rule::Object),
    ("recurrence", Rule::Object),
    ("requiresBookerEmailVerification", Rule::Bool),
    ("hideCalendarNotes", Rule::Bool),
    ("lockTimeZoneToggleOnBookingPage", Rule::Bool),
    ("color", Rule::Object),
    ("seats", Rule::Object),
    ("customName", Rule::Str),
    ("destinationCalendar", Rule::Object),
    ("useDestinationCalendarEmail", Rule::Bool),
    ("hideCalendarEventDetails", Rule::Bool),
    ("successRedirectUrl", Rule::Url),
    ("hideOrganizerEmail", Rule::Bool),
    ("calVideoSettings", Rule::Object),
    ("hidden", Rule::Bool),
    ("bookingRequiresAuthentication", Rule::Bool),
    ("disableCancelling", Rule::Object),
    ("disableRescheduling", Rule::Object),
    ("interfaceLanguage", Rule::Language),
    ("allowReschedulingPastBookings", Rule::Bool),
    ("allowReschedulingCancelledBookings", Rule::Bool),
    ("showOptimizedSlots", Rule::Bool),
];

/// Accepted only by the team endpoints.
const TEAM_FIELDS: &[(&str, Rule)] = &[
    ("schedulingType", Rule::SchedulingType),
    ("hosts", Rule::Hosts),
    ("assignAllTeamMembers", Rule::Bool),
    ("emailSettings", Rule::Object),
    ("rescheduleWithSameRoundRobinHost", Rule::Bool),
];

const LANGUAGES: &[&str] = &[
    "", "en", "ar", "az", "bg", "bn", "ca", "cs", "da", "de", "el", "es", "es-419", "eu", "et",
    "fi", "fr", "he", "hu", "it", "ja", "km", "ko", "nl", "no", "pl", "pt-BR", "pt", "ro", "ru",
    "sk-SK", "sr", "sv", "tr", "uk", "vi", "zh-CN", "zh-TW",
];

const CLIENT_SCHEDULING_TYPES: &[&str] = &["collective", "roundRobin", "managed"];

/// The body reduced to the fields this endpoint accepts, type-checked.
/// `null` counts as absent, as with `@IsOptional()`.
pub(crate) fn accepted(
    body: Map<String, Value>,
    audience: Audience,
    purpose: Purpose,
) -> Result<Map<String, Value>, ApiError> {
    let mut kept = Map::new();
    let mut errors = Vec::new();
    for (key, value) in body {
        let Some(rule) = rule_for(&key, audience) else {
            continue;
        };
        if value.is_null() {
            continue;
        }
        match check(&key, rule, value) {
            Ok(value) => {
                kept.insert(key, value);
            }
            Err(error) => errors.push(error),
        }
    }
    if purpose == Purpose::Create {
        let mut required = vec![
            ("lengthInMinutes", Rule::Int { min: Some(1) }),
            ("title", Rule::Str),
            ("slug", Rule::Str),
        ];
        if audience == Audience::Team {
            required.push(("schedulingType", Rule::SchedulingType));
        }
        for (key, rule) in required {
            let already_reported = errors.iter().any(|e| e["property"] == key);
            if !kept.contains_key(key) && !already_reported {
                errors.push(failure(key, &Value::Null, constraint_of(key, rule)));
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    if purpose == Purpose::Create
        && let Some(length) = kept.get("lengthInMinutes").and_then(Value::as_i64)
    {
        options_include(&kept, length)?;
    }
    Ok(kept)
}

/// The business rule on `lengthInMinutesOptions`: when sent, it must contain
/// the event type's length (the one sent, or else the stored one).
pub(crate) fn options_include(fields: &Map<String, Value>, length: i64) -> Result<(), ApiError> {
    let Some(options) = fields
        .get("lengthInMinutesOptions")
        .and_then(Value::as_array)
    else {
        return Ok(());
    };
    if options.iter().any(|o| o.as_i64() == Some(length)) {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "lengthInMinutesOptions must include lengthInMinutes ({length})"
    )))
}

fn rule_for(key: &str, audience: Audience) -> Option<Rule> {
    let find = |table: &[(&str, Rule)]| table.iter().find(|(k, _)| *k == key).map(|(_, r)| *r);
    find(FIELDS).or_else(|| match audience {
        Audience::Team => find(TEAM_FIELDS),
        Audience::Personal => None,
    })
}

fn check(key: &str, rule: Rule, value: Value) -> Result<Value, Value> {
    let fail = |constraint: (&str, String)| Err(failure(key, &value, constraint));
    match rule {
        Rule::Int { min } => match integer(&value) {
            None => fail(constraint_of(key, rule)),
            Some(n) if min.is_some_and(|m| n < m) => fail((
                "min",
                format!("{key} must not be less than {}", min.unwrap_or_default()),
            )),
            Some(n) => Ok(Value::Number(Number::from(n))),
        },
        Rule::Str | Rule::Bool => {
            let ok = match rule {
                Rule::Str => value.is_string(),
                _ => value.is_boolean(),
            };
            if ok {
                Ok(value)
            } else {
                fail(constraint_of(key, rule))
            }
        }
        Rule::Url => match value.as_str() {
            Some(s) if s.starts_with("https://") || s.starts_with("http://") => Ok(value),
            _ => fail(constraint_of(key, rule)),
        },
        Rule::Object => {
            if value.is_object() {
                Ok(value)
            } else {
                fail(constraint_of(key, rule))
            }
        }
        Rule::ObjectArray => match value.as_array() {
            Some(items) if items.iter().all(Value::is_object) => Ok(value),
            Some(_) => fail(("isObject", format!("each value in {key} must be an object"))),
            None => fail(constraint_of(key, rule)),
        },
        Rule::IntOptions => {
            let Some(items) = value.as_array() else {
                return fail(constraint_of(key, rule));
            };
            if items.is_empty() {
                return fail(("arrayNotEmpty", format!("{key} should not be empty")));
            }
            let numbers: Option<Vec<i64>> = items.iter().map(integer).collect();
            let Some(numbers) = numbers else {
                return fail((
                    "isInt",
                    format!("each value in {key} must be an integer number"),
                ));
            };
            if numbers.iter().any(|n| *n < 1) {
                return fail((
                    "min",
                    format!("each value in {key} must not be less than 1"),
                ));
            }
            let mut unique = numbers.clone();
            unique.sort_unstable();
            unique.dedup();
            if unique.len() != numbers.len() {
                return fail((
                    "arrayUnique",
                    format!("All {key}'s elements must be unique"),
                ));
            }
            Ok(Value::Array(numbers.into_iter().map(Value::from).collect()))
        }
        Rule::Language | Rule::SchedulingType => {
            let allowed = match rule {
                Rule::Language => LANGUAGES,
                _ => CLIENT_SCHEDULING_TYPES,
            };
            match value.as_str() {
                Some(s) if allowed.contains(&s) => Ok(value),
                _ => fail(constraint_of(key, rule)),
            }
        }
        Rule::Hosts => {
            let ok = value.as_array().is_some_and(|hosts| {
                hosts
                    .iter()
                    .all(|h| h.get("userId").and_then(integer).is_some())
            });
            if ok {
                Ok(value)
            } else {
                fail(constraint_of(key, rule))
            }
        }
    }
}

/// A JSON number with an integral value (`60` or `60.0`), as `IsInt` accepts.
fn integer(value: &Value) -> Option<i64> {
    if let Some(n) = value.as_i64() {
        return Some(n);
    }
    let f = value.as_f64()?;
    (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
}

fn constraint_of(key: &str, rule: Rule) -> (&'static str, String) {
    match rule {
        Rule::Int { .. } => ("isInt", format!("{key} must be an integer number")),
        Rule::Str => ("isString", format!("{key} must be a string")),
        Rule::Url => ("isUrl", format!("{key} must be a URL address")),
        Rule::Bool => ("isBoolean", format!("{key} must be a boolean value")),
        Rule::IntOptions | Rule::ObjectArray | Rule::Hosts => {
            ("isArray", format!("{key} must be an array"))
        }
        Rule::Object => (
            "nestedValidation",
            format!("nested property {key} must be either object or array"),
        ),
        Rule::Language => (
            "isIn",
            format!(
                "{key} must be one of the following values: {}",
                LANGUAGES.join(", ")
            ),
        ),
        Rule::SchedulingType => (
            "isIn",
            format!(
                "{key} must be one of the following values: {}",
                CLIENT_SCHEDULING_TYPES.join(", ")
            ),
        ),
    }
}

/// One class-validator error entry.
fn failure(key: &str, value: &Value, (name, message): (&str, String)) -> Value {
    json!({
        "property": key,
        "value": value,
        "constraints": { name: message },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn unknown_fields_are_dropped_and_known_ones_kept() {
        let body = object(
            json!({"title": "Cut", "price": 5000, "currency": "eur", "metadata": {}, "hidden": true}),
        );
        let kept = accepted(body, Audience::Personal, Purpose::Update).unwrap();
        assert_eq!(Value::Object(kept), json!({"title": "Cut", "hidden": true}));
    }

    #[test]
    fn wrong_types_are_rejected_with_the_property_named() {
        let body = object(json!({"lengthInMinutes": "sixty"}));
        let err = accepted(body, Audience::Personal, Purpose::Update).unwrap_err();
        let body = err.to_body("/v2/event-types/1");
        assert_eq!(body["error"]["code"], "BadRequestException");
        assert_eq!(
            body["error"]["details"]["errors"][0]["property"],
            "lengthInMinutes"
        );
    }

    #[test]
    fn length_must_be_positive_and_integral_floats_are_integers() {
        let zero = object(json!({"lengthInMinutes": 0}));
        assert!(accepted(zero, Audience::Personal, Purpose::Update).is_err());
        let float = object(json!({"lengthInMinutes": 45.0}));
        let kept = accepted(float, Audience::Personal, Purpose::Update).unwrap();
        assert_eq!(kept["lengthInMinutes"], json!(45));
    }

    #[test]
    fn create_requires_title_slug_and_length() {
        let err = accepted(
            object(json!({"title": "x"})),
            Audience::Personal,
            Purpose::Create,
        )
        .unwrap_err();
        let body = err.to_body("/v2/event-types");
        let props: Vec<&str> = body["error"]["details"]["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["property"].as_str().unwrap())
            .collect();
        assert_eq!(props, ["lengthInMinutes", "slug"]);
    }

    #[test]
    fn team_only_fields_are_dropped_for_personal_event_types() {
        let body = object(json!({"schedulingType": "collective", "hosts": [{"userId": 1}]}));
        let kept = accepted(body.clone(), Audience::Personal, Purpose::Update).unwrap();
        assert!(kept.is_empty());
        let kept = accepted(body, Audience::Team, Purpose::Update).unwrap();
        assert_eq!(kept.len(), 2);
    }
}
