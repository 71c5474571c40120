//! The simulated Cal.com data: users (one per API key), event types indexed by
//! owner, teams and organizations. Each event type is kept as its serialized
//! JSON so reads are a copy, not a serialization; writes parse, change and
//! re-serialize one object. This file must never apply API rules (auth,
//! validation): the routes do that before calling it.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};

use bytes::Bytes;
use serde_json::{Map, Value};

use super::shape::{self, Team, User};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Owner {
    User(i64),
    Team(i64),
}

pub(crate) struct StoredEventType {
    pub owner: Owner,
    /// The `slug` field when it is a string, for the per-owner uniqueness check.
    pub slug: Option<String>,
    /// The full object as GET returns it.
    pub body: Bytes,
    /// The list rendering when it differs (booking fields marked hidden are
    /// left out of list responses).
    pub list_body: Option<Bytes>,
}

impl StoredEventType {
    pub fn list_bytes(&self) -> Bytes {
        self.list_body.clone().unwrap_or_else(|| self.body.clone())
    }

    pub fn object(&self) -> Map<String, Value> {
        // Bodies are only ever produced by serializing a Map, so this parses.
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

pub(crate) struct Org {
    pub team_ids: Vec<i64>,
    pub members: HashSet<i64>,
}

const FIRST_USER_ID: i64 = 4001;
const FIRST_EVENT_TYPE_ID: i64 = 80001;

pub(crate) struct World {
    users: HashMap<i64, User>,
    user_by_key: HashMap<String, i64>,
    event_types: HashMap<i64, StoredEventType>,
    by_user: HashMap<i64, BTreeSet<i64>>,
    by_team: HashMap<i64, BTreeSet<i64>>,
    teams: HashMap<i64, Team>,
    orgs: HashMap<i64, Org>,
    next_user_id: i64,
    next_event_type_id: i64,
}

impl World {
    pub fn new() -> World {
        World {
            users: HashMap::new(),
            user_by_key: HashMap::new(),
            event_types: HashMap::new(),
            by_user: HashMap::new(),
            by_team: HashMap::new(),
            teams: HashMap::new(),
            orgs: HashMap::new(),
            next_user_id: FIRST_USER_ID,
            next_event_type_id: FIRST_EVENT_TYPE_ID,
        }
    }

    /// The user behind `key`, creating one for a key not seen before.
    pub fn register_key(&mut self, key: &str) -> i64 {
        if let Some(id) = self.user_by_key.get(key) {
            return *id;
        }
        let id = self.next_user_id;
        self.next_user_id += 1;
        self.users.insert(id, User::new(id));
        self.user_by_key.insert(key.to_owned(), id);
        id
    }

    pub fn user_for_key(&self, key: &str) -> Option<i64> {
        self.user_by_key.get(key).copied()
    }

    pub fn user(&self, id: i64) -> Option<&User> {
        self.users.get(&id)
    }

    pub fn event_type(&self, id: i64) -> Option<&StoredEventType> {
        self.event_types.get(&id)
    }

    pub fn team(&self, id: i64) -> Option<&Team> {
        self.teams.get(&id)
    }

    pub fn org(&self, id: i64) -> Option<&Org> {
        self.orgs.get(&id)
    }

    pub fn is_team_admin(&self, team_id: i64, user_id: i64) -> bool {
        self.teams
            .get(&team_id)
            .is_some_and(|t| t.admins.contains(&user_id))
    }

    /// List renderings of a user's event types, ordered by id.
    pub fn user_list(&self, user_id: i64) -> Vec<Bytes> {
        self.list_of(self.by_user.get(&user_id))
    }

    /// List renderings of a team's event types, ordered by id.
    pub fn team_list(&self, team_id: i64) -> Vec<Bytes> {
        self.list_of(self.by_team.get(&team_id))
    }

    /// One page of every event type of an organization's teams, ordered by id.
    pub fn org_page(&self, org_id: i64, skip: usize, take: usize) -> Vec<Bytes> {
        let Some(org) = self.orgs.get(&org_id) else {
            return Vec::new();
        };
        let mut ids: Vec<i64> = org
            .team_ids
            .iter()
            .filter_map(|t| self.by_team.get(t))
            .flatten()
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.iter()
            .skip(skip)
            .take(take)
            .filter_map(|id| self.event_types.get(id))
            .map(StoredEventType::list_bytes)
            .collect()
    }

    fn list_of(&self, ids: Option<&BTreeSet<i64>>) -> Vec<Bytes> {
        ids.into_iter()
            .flatten()
            .filter_map(|id| self.event_types.get(id))
            .map(StoredEventType::list_bytes)
            .collect()
    }

    pub fn slug_taken(&self, owner: Owner, slug: &str, except: Option<i64>) -> bool {
        let ids = match owner {
            Owner::User(u) => self.by_user.get(&u),
            Owner::Team(t) => self.by_team.get(&t),
        };
        ids.into_iter().flatten().any(|id| {
            Some(*id) != except
                && self
                    .event_types
                    .get(id)
                    .is_some_and(|e| e.slug.as_deref() == Some(slug))
        })
    }

    /// A new personal event type for `user_id` (registered beforehand): defaults
    /// with `fields` applied verbatim. Returns the stored body.
    pub fn create_personal(&mut self, user_id: i64, fields: &Map<String, Value>) -> Bytes {
        let id = self.next_id();
        let owner = self
            .users
            .get(&user_id)
            .cloned()
            .unwrap_or_else(|| User::new(user_id));
        let own = shape::personal(id, &owner, fields);
        self.by_user.entry(user_id).or_default().insert(id);
        self.store_new(id, Owner::User(user_id), &own)
    }

    /// A seeded personal event type: `fields` hold no id or owner fields and no
    /// hidden booking fields. The cheap path for creating 100k of them.
    pub fn create_seeded(&mut self, user_id: i64, fields: &[(&'static str, Value)]) {
        let id = self.next_id();
        let Some(owner) = self.users.get(&user_id) else {
            return;
        };
        let slug = fields
            .iter()
            .find(|(key, _)| *key == "slug")
            .and_then(|(_, value)| value.as_str())
            .unwrap_or("event")
            .to_owned();
        let mut pairs: Vec<(&str, Cow<'_, [u8]>)> = fields
            .iter()
            .map(|(key, value)| (*key, Cow::Owned(shape::to_json(value))))
            .collect();
        pairs.push(("id", Cow::Owned(id.to_string().into_bytes())));
        pairs.push(("ownerId", Cow::Owned(user_id.to_string().into_bytes())));
        pairs.push(("users", Cow::Borrowed(&owner.users_json)));
        pairs.push((
            "bookingUrl",
            Cow::Owned(shape::to_json(&owner.booking_url(&slug))),
        ));
        let body = Bytes::from(shape::render_pairs(&mut pairs));
        self.by_user.entry(user_id).or_default().insert(id);
        self.insert(id, Owner::User(user_id), Some(slug), body, None);
    }

    /// A new event type of `team_id` (created without admins when unknown).
    pub fn create_for_team(&mut self, team_id: i64, fields: &Map<String, Value>) -> Bytes {
        let id = self.next_id();
        let team = self
            .teams
            .entry(team_id)
            .or_insert_with(|| Team::new(team_id, Vec::new()))
            .clone();
        let hosts: Vec<User> = team
            .admins
            .iter()
            .filter_map(|u| self.users.get(u).cloned())
            .collect();
        let own = shape::team(id, &team, &hosts, fields);
        self.by_team.entry(team_id).or_default().insert(id);
        self.store_new(id, Owner::Team(team_id), &own)
    }

    /// Merges `patch` into an event type (top level, verbatim). A slug change
    /// moves the booking URL unless the patch sets one itself.
    pub fn update(&mut self, id: i64, patch: &Map<String, Value>) -> Option<Bytes> {
        let stored = self.event_types.get(&id)?;
        let owner = stored.owner;
        let old_slug = stored.slug.clone();
        let mut object = stored.object();
        shape::apply(&mut object, patch);
        let new_slug = object
            .get("slug")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if new_slug != old_slug
            && !patch.contains_key("bookingUrl")
            && let Some(slug) = &new_slug
        {
            let url = match owner {
                Owner::User(u) => self.users.get(&u).map(|u| u.booking_url(slug)),
                Owner::Team(t) => self.teams.get(&t).map(|t| t.booking_url(slug)),
            };
            if let Some(url) = url {
                object.insert("bookingUrl".into(), url.into());
            }
        }
        Some(self.store(id, owner, &object))
    }

    pub fn remove(&mut self, id: i64) -> Option<StoredEventType> {
        let stored = self.event_types.remove(&id)?;
        match stored.owner {
            Owner::User(u) => self.by_user.get_mut(&u).map(|s| s.remove(&id)),
            Owner::Team(t) => self.by_team.get_mut(&t).map(|s| s.remove(&id)),
        };
        Some(stored)
    }

    /// Creates the team or replaces its admins.
    pub fn upsert_team(&mut self, team_id: i64, admins: Vec<i64>) {
        self.teams
            .entry(team_id)
            .and_modify(|t| t.admins = admins.clone())
            .or_insert_with(|| Team::new(team_id, admins));
    }

    /// Creates the organization or replaces its teams and members.
    pub fn upsert_org(&mut self, org_id: i64, team_ids: Vec<i64>, members: HashSet<i64>) {
        self.orgs.insert(org_id, Org { team_ids, members });
    }

    pub fn user_count(&self, user_id: i64) -> usize {
        self.by_user.get(&user_id).map_or(0, BTreeSet::len)
    }

    fn next_id(&mut self) -> i64 {
        let id = self.next_event_type_id;
        self.next_event_type_id += 1;
        id
    }

    /// Stores a new event type from what sets it apart from the defaults.
    fn store_new(&mut self, id: i64, owner: Owner, own: &Map<String, Value>) -> Bytes {
        let body = Bytes::from(shape::render(own));
        // Only given booking fields can be hidden ones; the defaults are not.
        let list_body = if own.contains_key("bookingFields") {
            serde_json::from_slice(&body)
                .ok()
                .and_then(|object| list_rendering(&object))
        } else {
            None
        };
        let slug = own.get("slug").and_then(Value::as_str).map(str::to_owned);
        self.insert(id, owner, slug, body.clone(), list_body);
        body
    }

    /// Stores a whole event type object (after a change).
    fn store(&mut self, id: i64, owner: Owner, object: &Map<String, Value>) -> Bytes {
        let body = Bytes::from(serde_json::to_vec(object).unwrap_or_default());
        let list_body = list_rendering(object);
        let slug = object
            .get("slug")
            .and_then(Value::as_str)
            .map(str::to_owned);
        self.insert(id, owner, slug, body.clone(), list_body);
        body
    }

    fn insert(
        &mut self,
        id: i64,
        owner: Owner,
        slug: Option<String>,
        body: Bytes,
        list_body: Option<Bytes>,
    ) {
        let stored = StoredEventType {
            owner,
            slug,
            body,
            list_body,
        };
        self.event_types.insert(id, stored);
    }
}

/// The object without hidden booking fields, when it has any.
fn list_rendering(object: &Map<String, Value>) -> Option<Bytes> {
    let fields = object.get("bookingFields")?.as_array()?;
    let is_hidden = |f: &Value| f.get("hidden") == Some(&Value::Bool(true));
    if !fields.iter().any(is_hidden) {
        return None;
    }
    let mut listed = object.clone();
    let visible: Vec<Value> = fields.iter().filter(|f| !is_hidden(f)).cloned().collect();
    listed.insert("bookingFields".into(), Value::Array(visible));
    Some(Bytes::from(serde_json::to_vec(&listed).unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::seed;

    #[test]
    fn seeded_bodies_are_whole_objects_in_canonical_order() {
        let mut world = World::new();
        let user = world.register_key("k");
        for fields in seed::catalogue(user, 40) {
            world.create_seeded(user, &fields);
        }
        let list = world.user_list(user);
        assert_eq!(list.len(), 40);
        for body in list {
            let object: Map<String, Value> = serde_json::from_slice(&body).unwrap();
            assert_eq!(serde_json::to_vec(&object).unwrap(), body.to_vec());
            assert_eq!(object["ownerId"], user);
            assert_eq!(object["users"][0]["id"], user);
            let slug = object["slug"].as_str().unwrap();
            assert!(world.slug_taken(Owner::User(user), slug, None));
        }
    }

    #[test]
    fn removing_an_event_type_unindexes_it() {
        let mut world = World::new();
        let user = world.register_key("k");
        let mut fields = Map::new();
        fields.insert("slug".into(), "cut".into());
        let body = world.create_personal(user, &fields);
        let id = serde_json::from_slice::<Value>(&body).unwrap()["id"]
            .as_i64()
            .unwrap();
        assert!(world.remove(id).is_some());
        assert!(world.user_list(user).is_empty());
        assert!(!world.slug_taken(Owner::User(user), "cut", None));
        assert!(world.update(id, &Map::new()).is_none());
    }
}
