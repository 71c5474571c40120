//! Server behaviours a real Cal.com may show and tests must be able to provoke:
//! normalising pushed values (trimming a title, rounding a length), and a listing
//! that shifts while it is paged (an event type deleted between two pages of the
//! organization listing, so every later item moves up one place and one of them is
//! never served). Set through `PUT /_sim/normalise` and `PUT /_sim/listing-race`.

use std::sync::Mutex;

use serde::Deserialize;
use serde_json::{Map, Value};

/// How PATCHes are normalised before they are stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Normalise {
    /// Trim white space around `title`.
    #[serde(default)]
    pub trim_titles: bool,
    /// Round `lengthInMinutes` to the nearest multiple (at least one multiple).
    #[serde(default)]
    pub round_lengths_to: Option<u32>,
}

impl Normalise {
    /// Applies the normalisation to a PATCH's accepted fields.
    pub fn apply(&self, fields: &mut Map<String, Value>) {
        if self.trim_titles
            && let Some(Value::String(title)) = fields.get_mut("title")
        {
            *title = title.trim().to_owned();
        }
        if let Some(step) = self.round_lengths_to.filter(|s| *s > 0)
            && let Some(length) = fields.get("lengthInMinutes").and_then(Value::as_i64)
        {
            let step = i64::from(step);
            let rounded = (((length + step / 2) / step) * step).max(step);
            fields.insert("lengthInMinutes".into(), Value::from(rounded));
            // Keep the options consistent with the stored length.
            if let Some(Value::Array(options)) = fields.get_mut("lengthInMinutesOptions") {
                for o in options.iter_mut() {
                    if o.as_i64() == Some(length) {
                        *o = Value::from(rounded);
                    }
                }
            }
        }
    }
}

/// Delete `delete_event_type_id` right after the organization listing of
/// `org_id` served its page number `after_page` (0 = the first page), once.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListingRace {
    pub org_id: i64,
    pub after_page: usize,
    pub delete_event_type_id: i64,
}

#[derive(Debug, Default)]
pub(crate) struct Behaviour {
    normalise: Mutex<Normalise>,
    race: Mutex<Option<(ListingRace, usize)>>,
}

impl Behaviour {
    pub fn normalise(&self) -> Normalise {
        self.normalise
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn set_normalise(&self, n: Normalise) {
        *self.normalise.lock().unwrap_or_else(|p| p.into_inner()) = n;
    }

    pub fn set_race(&self, race: Option<ListingRace>) {
        *self.race.lock().unwrap_or_else(|p| p.into_inner()) = race.map(|r| (r, 0));
    }

    /// Called after an organization page was served: the event type to delete
    /// now, if the race is due.
    pub fn org_page_served(&self, org_id: i64) -> Option<i64> {
        let mut race = self.race.lock().unwrap_or_else(|p| p.into_inner());
        let (r, served) = race.as_mut()?;
        if r.org_id != org_id {
            return None;
        }
        let page = *served;
        *served += 1;
        if page == r.after_page {
            let id = r.delete_event_type_id;
            *race = None;
            return Some(id);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn normalising_trims_titles_and_rounds_lengths_with_their_options() {
        let n = Normalise {
            trim_titles: true,
            round_lengths_to: Some(5),
        };
        let mut f =
            json!({"title": "  Cut  ", "lengthInMinutes": 32, "lengthInMinutesOptions": [15, 32]})
                .as_object()
                .unwrap()
                .clone();
        n.apply(&mut f);
        assert_eq!(f["title"], "Cut");
        assert_eq!(f["lengthInMinutes"], 30);
        assert_eq!(f["lengthInMinutesOptions"], json!([15, 30]));
        let mut tiny = json!({"lengthInMinutes": 1}).as_object().unwrap().clone();
        n.apply(&mut tiny);
        assert_eq!(tiny["lengthInMinutes"], 5);
    }

    #[test]
    fn the_race_fires_once_after_its_page() {
        let b = Behaviour::default();
        b.set_race(Some(ListingRace {
            org_id: 7,
            after_page: 1,
            delete_event_type_id: 99,
        }));
        assert_eq!(b.org_page_served(8), None);
        assert_eq!(b.org_page_served(7), None);
        assert_eq!(b.org_page_served(7), Some(99));
        assert_eq!(b.org_page_served(7), None);
    }
}
