//! The objects Cal.com returns for event types (`EventTypeOutput_2024_06_14` and
//! its team variant), with every required field present and plausible defaults.
//! This file only builds JSON; it must never touch the simulator's indexes.

use std::borrow::Cow;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// A Cal.com user behind one API key.
#[derive(Debug, Clone)]
pub(crate) struct User {
    pub id: i64,
    pub name: String,
    pub username: String,
    /// `[<object>]`, serialized once: the `users` value of every personal event
    /// type of this user.
    pub users_json: Box<[u8]>,
}

impl User {
    pub fn new(id: i64) -> User {
        const NAMES: [&str; 16] = [
            "Ana Silva",
            "Bruno Costa",
            "Carla Mendes",
            "Diogo Pereira",
            "Eva Martins",
            "Filipe Sousa",
            "Greta Lindqvist",
            "Hugo Laurent",
            "Inês Ferreira",
            "Jonas Weber",
            "Katarzyna Nowak",
            "Luca Romano",
            "Marta Oliveira",
            "Nils Berg",
            "Olivia Brown",
            "Pedro Alves",
        ];
        let name = NAMES[(id as usize) % NAMES.len()].to_owned();
        let username = format!("{}-{id}", slugify(&name));
        let mut user = User {
            id,
            name,
            username,
            users_json: Box::default(),
        };
        user.users_json = to_json(&[user.object()]).into_boxed_slice();
        user
    }

    /// The element of `users` in an event type: the code returns objects, not
    /// the strings the published spec claims.
    pub fn object(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "username": self.username,
            "avatarUrl": null,
            "brandColor": null,
            "darkBrandColor": null,
            "weekStart": "Monday",
            "metadata": {},
        })
    }

    /// The element of `hosts` in a team event type.
    pub fn host_object(&self) -> Value {
        json!({
            "userId": self.id,
            "name": self.name,
            "username": self.username,
            "avatarUrl": null,
        })
    }

    pub fn booking_url(&self, slug: &str) -> String {
        format!("https://cal.com/{}/{slug}", self.username)
    }
}

/// A team whose event types are listed per team and per organization.
#[derive(Debug, Clone)]
pub(crate) struct Team {
    pub id: i64,
    pub slug: String,
    pub name: String,
    /// Users allowed through the TEAM_ADMIN guard; they also host its events.
    pub admins: Vec<i64>,
}

impl Team {
    pub fn new(id: i64, admins: Vec<i64>) -> Team {
        Team {
            id,
            slug: format!("team-{id}"),
            name: format!("Team {id}"),
            admins,
        }
    }

    pub fn object(&self) -> Value {
        json!({
            "id": self.id,
            "slug": self.slug,
            "bannerUrl": null,
            "name": self.name,
            "logoUrl": null,
            "weekStart": "Monday",
            "brandColor": "#292929",
            "darkBrandColor": "#fafafa",
            "theme": null,
        })
    }

    pub fn booking_url(&self, slug: &str) -> String {
        format!("https://cal.com/team/{}/{slug}", self.slug)
    }
}

/// The fields every event type carries unless its own fields say otherwise,
/// each value serialized once for the whole process: creating 100k event types
/// then costs a copy of these bytes each, not a tree of JSON values.
fn defaults() -> &'static [(String, Box<[u8]>)] {
    static DEFAULTS: OnceLock<Vec<(String, Box<[u8]>)>> = OnceLock::new();
    DEFAULTS.get_or_init(|| {
        let value = json!({
            "description": "",
            "locations": [{ "type": "integration", "integration": "cal-video" }],
            "bookingFields": [
                { "type": "name", "slug": "name", "label": "", "placeholder": "", "isDefault": true, "required": true, "disableOnPrefill": false },
                { "type": "email", "slug": "email", "label": "", "placeholder": "", "isDefault": true, "required": true, "hidden": false, "disableOnPrefill": false },
                { "type": "textarea", "slug": "notes", "isDefault": true, "required": false, "hidden": false },
                { "type": "multiemail", "slug": "guests", "isDefault": true, "required": false, "hidden": false },
                { "type": "textarea", "slug": "rescheduleReason", "isDefault": true, "required": false, "hidden": false },
            ],
            "disableGuests": false,
            "slotInterval": null,
            "minimumBookingNotice": 120,
            "beforeEventBuffer": 0,
            "afterEventBuffer": 0,
            "offsetStart": 0,
            "recurrence": null,
            "metadata": {},
            "price": 0,
            "currency": "usd",
            "lockTimeZoneToggleOnBookingPage": false,
            "seatsPerTimeSlot": null,
            "seatsShowAvailabilityCount": null,
            "forwardParamsSuccessRedirect": true,
            "successRedirectUrl": null,
            "isInstantEvent": false,
            "scheduleId": null,
            "bookerActiveBookingsLimit": { "disabled": true },
            "onlyShowFirstAvailableSlot": false,
            "requiresBookerEmailVerification": false,
            "hideCalendarNotes": false,
            "hideCalendarEventDetails": false,
            "hideOrganizerEmail": false,
            "useDestinationCalendarEmail": false,
            "customName": "",
            "hidden": false,
            "bookingRequiresAuthentication": false,
            "interfaceLanguage": null,
            "allowReschedulingPastBookings": false,
            "allowReschedulingCancelledBookings": false,
            "showOptimizedSlots": false,
        });
        let Value::Object(map) = value else {
            unreachable!("json! object literal")
        };
        // Map iterates in key order, which `render` relies on.
        // Each entry is kept as its finished `"key":value` text.
        map.into_iter()
            .map(|(key, value)| {
                let entry = format!("{}:{value}", Value::String(key.clone()));
                (key, entry.into_bytes().into_boxed_slice())
            })
            .collect()
    })
}

/// The serialized event type: the defaults with `fields` in their place or
/// added, keys in order (as serializing the whole object would give).
pub(crate) fn render(fields: &Map<String, Value>) -> Vec<u8> {
    let mut pairs: Vec<(&str, Cow<'_, [u8]>)> = fields
        .iter()
        .map(|(key, value)| (key.as_str(), Cow::Owned(to_json(value))))
        .collect();
    render_pairs(&mut pairs)
}

/// As [`render`], from fields already serialized one by one (in any order,
/// each key once); the seed uses this to avoid building JSON trees.
pub(crate) fn render_pairs(fields: &mut [(&str, Cow<'_, [u8]>)]) -> Vec<u8> {
    fields.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(2048);
    out.push(b'{');
    let mut defaults = defaults().iter().peekable();
    for (key, value) in fields.iter() {
        while let Some((_, entry)) = defaults.next_if(|(k, _)| k.as_str() < *key) {
            out.extend_from_slice(entry);
            out.push(b',');
        }
        defaults.next_if(|(k, _)| k.as_str() == *key);
        // Serializing a str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, key);
        out.push(b':');
        out.extend_from_slice(value);
        out.push(b',');
    }
    for (_, entry) in defaults {
        out.extend_from_slice(entry);
        out.push(b',');
    }
    // The last comma closes the object instead (there is always a field).
    match out.last_mut() {
        Some(last @ b',') => *last = b'}',
        _ => out.push(b'}'),
    }
    out
}

pub(crate) fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Values, strings and numbers always serialize.
    serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec())
}

/// The title, slug and length a new event type starts from: the given fields
/// when they are usable, otherwise defaults (admin creation may omit them).
fn basics(fields: &Map<String, Value>) -> (String, String, i64) {
    let title = fields
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or("Untitled event")
        .to_owned();
    let slug = fields
        .get("slug")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .unwrap_or_else(|| slugify(&title));
    let length = fields
        .get("lengthInMinutes")
        .and_then(Value::as_i64)
        .unwrap_or(30);
    (title, slug, length)
}

fn own_fields(id: i64, fields: &Map<String, Value>) -> (Map<String, Value>, String) {
    let (title, slug, length) = basics(fields);
    let mut own = Map::new();
    own.insert("id".into(), id.into());
    own.insert("title".into(), title.into());
    own.insert("slug".into(), slug.clone().into());
    own.insert("lengthInMinutes".into(), length.into());
    (own, slug)
}

/// What distinguishes a new personal event type from the defaults: its id,
/// owner fields, then `fields` applied verbatim. Serialize with [`render`].
pub(crate) fn personal(id: i64, owner: &User, fields: &Map<String, Value>) -> Map<String, Value> {
    let (mut object, slug) = own_fields(id, fields);
    object.insert("ownerId".into(), owner.id.into());
    object.insert("users".into(), Value::Array(vec![owner.object()]));
    object.insert("bookingUrl".into(), owner.booking_url(&slug).into());
    apply(&mut object, fields);
    object
}

/// The same for a team event type: the team shape (`teamId`, `team`, `hosts`,
/// `schedulingType`, `ownerId: null`), then `fields` applied verbatim.
pub(crate) fn team(
    id: i64,
    team: &Team,
    hosts: &[User],
    fields: &Map<String, Value>,
) -> Map<String, Value> {
    let (mut object, slug) = own_fields(id, fields);
    object.insert("teamId".into(), team.id.into());
    object.insert("ownerId".into(), Value::Null);
    object.insert("parentEventTypeId".into(), Value::Null);
    object.insert(
        "hosts".into(),
        Value::Array(hosts.iter().map(User::host_object).collect()),
    );
    object.insert(
        "users".into(),
        Value::Array(hosts.iter().map(User::object).collect()),
    );
    object.insert("assignAllTeamMembers".into(), false.into());
    object.insert("schedulingType".into(), "collective".into());
    object.insert("team".into(), team.object());
    object.insert("rescheduleWithSameRoundRobinHost".into(), false.into());
    object.insert("bookingUrl".into(), team.booking_url(&slug).into());
    apply(&mut object, fields);
    object
}

/// Top-level merge; the id is the simulator's and never changes.
pub(crate) fn apply(object: &mut Map<String, Value>, fields: &Map<String, Value>) {
    for (key, value) in fields {
        if key != "id" {
            object.insert(key.clone(), value.clone());
        }
    }
}

pub(crate) fn slugify(text: &str) -> String {
    let mut slug = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = match c {
            'á' | 'à' | 'â' | 'ã' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ó' | 'ò' | 'ô' | 'õ' | 'ö' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            'ñ' => 'n',
            c => c,
        };
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    if slug.is_empty() {
        slug.push_str("event");
    }
    slug
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_is_the_defaults_with_the_own_fields_in_key_order() {
        let owner = User::new(4001);
        let mut fields = Map::new();
        fields.insert("title".into(), "Cut".into());
        fields.insert("price".into(), 4500.into());
        fields.insert("zzCustom".into(), json!({"a": [1, 2]}));
        let rendered = render(&personal(80001, &owner, &fields));

        let object: Map<String, Value> = serde_json::from_slice(&rendered).unwrap();
        assert_eq!(
            serde_json::to_vec(&object).unwrap(),
            rendered,
            "same bytes as serializing the whole object"
        );
        assert_eq!(object["id"], 80001);
        assert_eq!(object["title"], "Cut");
        assert_eq!(object["slug"], "cut");
        assert_eq!(object["price"], 4500);
        assert_eq!(object["currency"], "usd");
        assert_eq!(object["zzCustom"], json!({"a": [1, 2]}));
        assert_eq!(object["users"][0]["id"], 4001);
        for (key, _) in defaults() {
            assert!(object.contains_key(key), "{key}");
        }
    }

    #[test]
    fn slugs_are_lower_case_ascii_words() {
        assert_eq!(
            slugify("Women's haircut – extended"),
            "women-s-haircut-extended"
        );
        assert_eq!(slugify("Épilation à la cire"), "epilation-a-la-cire");
        assert_eq!(slugify("--"), "event");
    }
}
