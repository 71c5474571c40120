//! The control surface for tests and the demo, outside `/v2` and without auth:
//! set up users, teams and organizations, edit event types as someone would in
//! Cal.com's web UI (any field, even with the wrong type), inject faults, read
//! the request log and change the rate limit. The in-process methods on
//! [`Simulator`](super::Simulator) and the `/_sim` HTTP endpoints share these
//! operations. Nothing here is reachable through `/v2`.
//!
//! Endpoints (JSON; errors are `{"error": "…"}`):
//! - `POST /_sim/event-types` `{"apiKey": "…", …fields}` or `{"teamId": N, …}` → 201, the object
//! - `GET | PATCH | DELETE /_sim/event-types/{id}` (PATCH merges any fields) → 200 / 204, 404
//! - `POST /_sim/teams` `{"teamId", "apiKeys": […]}` (the keys become team admins) → 201
//! - `POST /_sim/orgs` `{"orgId", "teamIds": […], "apiKeys": […]}` → 201
//! - `POST /_sim/faults` one fault or an array (see [`Fault`](super::Fault)) → 201; `DELETE /_sim/faults` → 204
//! - `GET /_sim/requests` → the request log; `DELETE /_sim/requests` → 204
//! - `PUT /_sim/rate-limit` `{"limit", "windowSecs", "blockSecs"}` → 200
//! - `PUT /_sim/normalise` `{"trimTitles": bool, "roundLengthsTo": N|null}` → 200
//!   (PATCHes are normalised before they are stored; `{}` turns it off)
//! - `PUT /_sim/listing-race` `{"orgId", "afterPage", "deleteEventTypeId"}` → 200
//!   (deletes the event type right after that organization page is served, once);
//!   `DELETE /_sim/listing-race` → 204

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::Shared;
use super::envelope::{SimBody, json_response};
use super::faults::Fault;
use super::ratelimit::Limits;

impl Shared {
    pub(crate) fn user_id(&self, api_key: &str) -> Option<i64> {
        self.read().user_for_key(api_key)
    }

    /// Creates a personal event type as the UI would (fields stored verbatim,
    /// no validation); an unknown key gets a new user.
    pub(crate) fn admin_create_personal(&self, api_key: &str, fields: Value) -> Value {
        let fields = into_object(fields);
        let mut world = self.write();
        let user = world.register_key(api_key);
        parse(&world.create_personal(user, &fields))
    }

    pub(crate) fn admin_create_for_team(&self, team_id: i64, fields: Value) -> Value {
        let fields = into_object(fields);
        parse(&self.write().create_for_team(team_id, &fields))
    }

    pub(crate) fn admin_create_team(&self, team_id: i64, admin_api_keys: &[&str]) {
        let mut world = self.write();
        let admins = admin_api_keys
            .iter()
            .map(|k| world.register_key(k))
            .collect();
        world.upsert_team(team_id, admins);
    }

    pub(crate) fn admin_create_org(&self, org_id: i64, team_ids: &[i64], api_keys: &[&str]) {
        let mut world = self.write();
        let members: HashSet<i64> = api_keys.iter().map(|k| world.register_key(k)).collect();
        world.upsert_org(org_id, team_ids.to_vec(), members);
    }

    /// Top-level merge of any fields; `false` when there is no such event type
    /// or the patch is not an object.
    pub(crate) fn admin_edit(&self, id: i64, patch: Value) -> bool {
        let Value::Object(patch) = patch else {
            return false;
        };
        self.write().update(id, &patch).is_some()
    }

    pub(crate) fn admin_event_type(&self, id: i64) -> Option<Value> {
        self.read().event_type(id).map(|e| parse(&e.body))
    }

    pub(crate) fn admin_delete(&self, id: i64) -> bool {
        self.write().remove(id).is_some()
    }

    pub(crate) fn set_limits(&self, limit: u32, window: Duration, block: Duration) {
        self.limiter.set_limits(Limits {
            limit,
            window,
            block,
        });
    }
}

fn into_object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn parse(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TeamSetup {
    team_id: i64,
    #[serde(default)]
    api_keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrgSetup {
    org_id: i64,
    #[serde(default)]
    team_ids: Vec<i64>,
    #[serde(default)]
    api_keys: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RateLimitSetup {
    limit: u32,
    window_secs: u64,
    block_secs: u64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<Fault>),
    One(Fault),
}

/// Serves one `/_sim/…` request.
pub(crate) fn handle(
    shared: &Shared,
    method: &Method,
    path: &str,
    body: &Bytes,
) -> Response<SimBody> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(2).collect();
    let result = match (method, segments.as_slice()) {
        (&Method::POST, ["event-types"]) => create_event_type(shared, body),
        (_, ["event-types", id]) => event_type_by_id(shared, method, id, body),
        (&Method::POST, ["teams"]) => read::<TeamSetup>(body).map(|setup| {
            let keys: Vec<&str> = setup.api_keys.iter().map(String::as_str).collect();
            shared.admin_create_team(setup.team_id, &keys);
            let admins: Vec<Option<i64>> = keys.iter().map(|k| shared.user_id(k)).collect();
            ok(
                StatusCode::CREATED,
                &json!({ "teamId": setup.team_id, "adminUserIds": admins }),
            )
        }),
        (&Method::POST, ["orgs"]) => read::<OrgSetup>(body).map(|setup| {
            let keys: Vec<&str> = setup.api_keys.iter().map(String::as_str).collect();
            shared.admin_create_org(setup.org_id, &setup.team_ids, &keys);
            let members: Vec<Option<i64>> = keys.iter().map(|k| shared.user_id(k)).collect();
            ok(
                StatusCode::CREATED,
                &json!({ "orgId": setup.org_id, "teamIds": setup.team_ids, "memberUserIds": members }),
            )
        }),
        (&Method::POST, ["faults"]) => read::<OneOrMany>(body).map(|faults| {
            let faults = match faults {
                OneOrMany::Many(faults) => faults,
                OneOrMany::One(fault) => vec![fault],
            };
            let count = faults.len();
            for fault in faults {
                shared.faults.inject(fault);
            }
            ok(StatusCode::CREATED, &json!({ "injected": count }))
        }),
        (&Method::DELETE, ["faults"]) => {
            shared.faults.clear();
            Ok(empty())
        }
        (&Method::GET, ["requests"]) => Ok(ok(StatusCode::OK, &json!(shared.log.entries()))),
        (&Method::DELETE, ["requests"]) => {
            shared.log.clear();
            Ok(empty())
        }
        (&Method::PUT, ["rate-limit"]) => read::<RateLimitSetup>(body).map(|setup| {
            shared.set_limits(
                setup.limit,
                Duration::from_secs(setup.window_secs),
                Duration::from_secs(setup.block_secs),
            );
            ok(
                StatusCode::OK,
                &json!({ "limit": setup.limit, "windowSecs": setup.window_secs, "blockSecs": setup.block_secs }),
            )
        }),
        (&Method::PUT, ["normalise"]) => read::<super::Normalise>(body).map(|n| {
            let echo = json!({"trimTitles": n.trim_titles, "roundLengthsTo": n.round_lengths_to});
            shared.behaviour.set_normalise(n);
            ok(StatusCode::OK, &echo)
        }),
        (&Method::PUT, ["listing-race"]) => read::<super::ListingRace>(body).map(|r| {
            let echo = json!({"orgId": r.org_id, "afterPage": r.after_page, "deleteEventTypeId": r.delete_event_type_id});
            shared.behaviour.set_race(Some(r));
            ok(StatusCode::OK, &echo)
        }),
        (&Method::DELETE, ["listing-race"]) => {
            shared.behaviour.set_race(None);
            Ok(empty())
        }
        (_, ["event-types" | "teams" | "orgs" | "faults" | "requests" | "rate-limit" | "normalise" | "listing-race"]) => Err(not_allowed()),
        _ => Err(problem(StatusCode::NOT_FOUND, &format!("no simulator endpoint {method} {path}"))),
    };
    result.unwrap_or_else(Problem::into_response)
}

fn event_type_by_id(
    shared: &Shared,
    method: &Method,
    id: &str,
    body: &Bytes,
) -> Result<Response<SimBody>, Problem> {
    let Ok(id) = id.parse::<i64>() else {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            "event type id must be an integer",
        ));
    };
    match *method {
        Method::GET => {}
        Method::PATCH => {
            let patch = read::<Value>(body)?;
            if !patch.is_object() {
                return Err(problem(
                    StatusCode::BAD_REQUEST,
                    "the edit must be a JSON object",
                ));
            }
            if !shared.admin_edit(id, patch) {
                return Err(missing(id));
            }
        }
        Method::DELETE => {
            return if shared.admin_delete(id) {
                Ok(empty())
            } else {
                Err(missing(id))
            };
        }
        _ => return Err(not_allowed()),
    }
    shared
        .admin_event_type(id)
        .map(|v| ok(StatusCode::OK, &v))
        .ok_or_else(|| missing(id))
}

fn create_event_type(shared: &Shared, body: &Bytes) -> Result<Response<SimBody>, Problem> {
    let Value::Object(mut fields) = read::<Value>(body)? else {
        return Err(problem(
            StatusCode::BAD_REQUEST,
            "the body must be a JSON object",
        ));
    };
    let api_key = fields.remove("apiKey");
    let team_id = fields.remove("teamId");
    let created = match (api_key, team_id) {
        (Some(Value::String(key)), None) => {
            shared.admin_create_personal(&key, Value::Object(fields))
        }
        (None, Some(team)) => match team.as_i64() {
            Some(team) => shared.admin_create_for_team(team, Value::Object(fields)),
            None => {
                return Err(problem(
                    StatusCode::BAD_REQUEST,
                    "teamId must be an integer",
                ));
            }
        },
        _ => {
            return Err(problem(
                StatusCode::BAD_REQUEST,
                "give exactly one owner: \"apiKey\" (a string) or \"teamId\"",
            ));
        }
    };
    Ok(ok(StatusCode::CREATED, &created))
}

fn read<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Result<T, Problem> {
    serde_json::from_slice(body)
        .map_err(|e| problem(StatusCode::BAD_REQUEST, &format!("invalid body: {e}")))
}

fn ok(status: StatusCode, value: &Value) -> Response<SimBody> {
    json_response(status, value.to_string())
}

fn empty() -> Response<SimBody> {
    let mut response = Response::new(super::envelope::full(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// A control request that cannot be served: `{"error": message}` with a status.
struct Problem {
    status: StatusCode,
    message: String,
}

impl Problem {
    fn into_response(self) -> Response<SimBody> {
        json_response(self.status, json!({ "error": self.message }).to_string())
    }
}

fn missing(id: i64) -> Problem {
    problem(StatusCode::NOT_FOUND, &format!("no event type {id}"))
}

fn not_allowed() -> Problem {
    problem(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here")
}

fn problem(status: StatusCode, message: &str) -> Problem {
    Problem {
        status,
        message: message.to_owned(),
    }
}
