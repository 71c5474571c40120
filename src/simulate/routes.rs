//! The `/v2` endpoints calsync uses, with Cal.com's rules: the version header on
//! `/v2/event-types*`, who may see and change what, what create and update
//! accept, and the response shapes. Throttling, faults and the request log
//! happen before these run (see `server.rs`); this file must never sleep or
//! do I/O, so every handler is a plain function over the locked state.

use bytes::Bytes;
use hyper::{Method, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::Shared;
use super::envelope::{ApiError, SimBody, success_list, success_one, success_value};
use super::input::{self, Audience, Purpose};
use super::state::{Owner, World};

/// The only version the personal event-type controllers are served for.
pub(crate) const EVENT_TYPES_VERSION: &str = "2024-06-14";

/// Who the bearer token says the caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Caller {
    Anonymous,
    User(i64),
    /// A bearer token that is neither a known key nor `cal_`-prefixed; Cal.com
    /// tries it as an OAuth access token, which fails.
    UnknownToken,
}

impl Caller {
    fn require(self) -> Result<i64, ApiError> {
        match self {
            Caller::User(id) => Ok(id),
            Caller::Anonymous => Err(ApiError::unauthorized(
                "ApiAuthStrategy - No authentication method provided. Either pass an API key as 'Bearer' header or OAuth client credentials as 'x-cal-secret-key' and 'x-cal-client-id' headers",
            )),
            Caller::UnknownToken => Err(ApiError::unauthorized(
                "ApiAuthStrategy - Invalid Access Token.",
            )),
        }
    }
}

pub(crate) struct ApiRequest<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    /// The `cal-api-version` header, when sent.
    pub version: Option<&'a str>,
    pub caller: Caller,
    pub body: Bytes,
}

pub(crate) fn v2(shared: &Shared, req: &ApiRequest) -> Result<Response<SimBody>, ApiError> {
    let segments: Vec<&str> = req
        .path
        .trim_end_matches('/')
        .split('/')
        .skip(2) // "" and "v2"
        .collect();
    let method = req.method;
    match segments.as_slice() {
        ["event-types"] => {
            require_version(req)?;
            match *method {
                Method::GET => list_own(shared, req),
                Method::POST => create_own(shared, req),
                _ => Err(no_route(req)),
            }
        }
        ["event-types", id] => {
            require_version(req)?;
            let id = parse_id(id)?;
            match *method {
                Method::GET => get_own(shared, req, id),
                Method::PATCH => update_own(shared, req, id),
                Method::DELETE => delete_own(shared, req, id),
                _ => Err(no_route(req)),
            }
        }
        ["teams", team, "event-types"] => {
            let team = parse_id(team)?;
            match *method {
                Method::GET => list_team(shared, team),
                Method::POST => create_team(shared, req, team),
                _ => Err(no_route(req)),
            }
        }
        ["teams", team, "event-types", id] => {
            let (team, id) = (parse_id(team)?, parse_id(id)?);
            match *method {
                Method::GET => get_team(shared, req, team, id),
                Method::PATCH => update_team(shared, req, team, id),
                Method::DELETE => delete_team(shared, req, team, id),
                _ => Err(no_route(req)),
            }
        }
        ["organizations", org, "teams", "event-types"] if *method == Method::GET => {
            list_org(shared, req, parse_id(org)?)
        }
        ["me"] if *method == Method::GET => me(shared, req),
        _ => Err(no_route(req)),
    }
}

fn no_route(req: &ApiRequest) -> ApiError {
    ApiError::not_found(format!("Cannot {} {}", req.method, req.path))
}

fn require_version(req: &ApiRequest) -> Result<(), ApiError> {
    if req.version == Some(EVENT_TYPES_VERSION) {
        return Ok(());
    }
    // The live API would silently answer with the 2024-04-15 controllers and
    // their different shapes; refusing makes a missing header impossible to miss.
    let got = req
        .version
        .map_or("none".to_owned(), |v| format!("\"{v}\""));
    Err(ApiError::bad_request(format!(
        "/v2/event-types endpoints require the header cal-api-version: {EVENT_TYPES_VERSION} (got {got})"
    )))
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .map_err(|_| ApiError::bad_request("Validation failed (numeric string is expected)"))
}

fn body_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request("Request body must be a JSON object")),
        Err(e) => Err(ApiError::bad_request(format!(
            "Invalid JSON in request body: {e}"
        ))),
    }
}

// ---- personal event types -------------------------------------------------

/// `GET /v2/me`: the key's user.
fn me(shared: &Shared, req: &ApiRequest) -> Result<Response<SimBody>, ApiError> {
    let user = req.caller.require()?;
    let world = shared.read();
    let u = world
        .user(user)
        .ok_or_else(|| ApiError::not_found(format!("User with ID={user} not found")))?;
    Ok(success_value(
        StatusCode::OK,
        json!({"id": u.id, "username": u.username, "name": u.name, "organizationId": null}),
    ))
}

fn list_own(shared: &Shared, req: &ApiRequest) -> Result<Response<SimBody>, ApiError> {
    let user = req.caller.require()?;
    // take/skip and other filters are ignored: the endpoint has no pagination.
    let bodies = shared.read().user_list(user);
    Ok(success_list(bodies))
}

fn create_own(shared: &Shared, req: &ApiRequest) -> Result<Response<SimBody>, ApiError> {
    let user = req.caller.require()?;
    let fields = input::accepted(body_object(&req.body)?, Audience::Personal, Purpose::Create)?;
    let mut world = shared.write();
    if let Some(slug) = fields.get("slug").and_then(Value::as_str)
        && world.slug_taken(Owner::User(user), slug, None)
    {
        return Err(ApiError::bad_request(
            "User already has an event type with this slug.",
        ));
    }
    let body = world.create_personal(user, &fields);
    Ok(success_one(StatusCode::CREATED, &body))
}

fn get_own(shared: &Shared, req: &ApiRequest, id: i64) -> Result<Response<SimBody>, ApiError> {
    let user = req.caller.require()?;
    let world = shared.read();
    match world.event_type(id) {
        Some(stored) if stored.owner == Owner::User(user) => {
            Ok(success_one(StatusCode::OK, &stored.body))
        }
        _ => Err(ApiError::event_type_not_found(id)),
    }
}

fn update_own(shared: &Shared, req: &ApiRequest, id: i64) -> Result<Response<SimBody>, ApiError> {
    let user = req.caller.require()?;
    let fields = input::accepted(body_object(&req.body)?, Audience::Personal, Purpose::Update)?;
    let mut world = shared.write();
    // The lookup filters on the owner, so someone else's event type is a 404.
    if world.event_type(id).map(|e| e.owner) != Some(Owner::User(user)) {
        return Err(ApiError::event_type_not_found(id));
    }
    check_update(&world, Owner::User(user), id, &fields)?;
    let mut fields = fields;
    shared.behaviour.normalise().apply(&mut fields);
    let body = world
        .update(id, &fields)
        .ok_or_else(|| ApiError::event_type_not_found(id))?;
    Ok(success_one(StatusCode::OK, &body))
}

fn delete_own(shared: &Shared, req: &ApiRequest, id: i64) -> Result<Response<SimBody>, ApiError> {
    let user = req.caller.require()?;
    let mut world = shared.write();
    match world.event_type(id).map(|e| e.owner) {
        None => return Err(ApiError::event_type_not_found(id)),
        Some(owner) if owner != Owner::User(user) => {
            return Err(ApiError::forbidden(format!(
                "User with ID={user} does not own event type with ID={id}"
            )));
        }
        Some(_) => {}
    }
    let object = world.remove(id).map(|e| e.object()).unwrap_or_default();
    Ok(success_value(
        StatusCode::OK,
        json!({
            "id": id,
            "lengthInMinutes": object.get("lengthInMinutes"),
            "title": object.get("title"),
            "slug": object.get("slug"),
        }),
    ))
}

/// Rules an update must pass against the stored event type: a slug unique for
/// the owner, and `lengthInMinutesOptions` containing the resulting length.
fn check_update(
    world: &World,
    owner: Owner,
    id: i64,
    fields: &Map<String, Value>,
) -> Result<(), ApiError> {
    if let Some(slug) = fields.get("slug").and_then(Value::as_str)
        && world.slug_taken(owner, slug, Some(id))
    {
        return Err(ApiError::bad_request(match owner {
            Owner::User(_) => "User already has an event type with this slug.",
            Owner::Team(_) => "Team already has an event type with this slug.",
        }));
    }
    if fields.contains_key("lengthInMinutesOptions") {
        let length = match fields.get("lengthInMinutes").and_then(Value::as_i64) {
            Some(length) => Some(length),
            None => world
                .event_type(id)
                .and_then(|e| e.object().get("lengthInMinutes").and_then(Value::as_i64)),
        };
        if let Some(length) = length {
            input::options_include(fields, length)?;
        }
    }
    Ok(())
}

// ---- team event types -----------------------------------------------------

fn list_team(shared: &Shared, team: i64) -> Result<Response<SimBody>, ApiError> {
    let world = shared.read();
    if world.team(team).is_none() {
        return Err(ApiError::not_found(format!(
            "Team with ID={team} not found"
        )));
    }
    Ok(success_list(world.team_list(team)))
}

/// Bearer key of a TEAM_ADMIN of `team`.
fn team_admin(world: &World, req: &ApiRequest, team: i64) -> Result<i64, ApiError> {
    let user = req.caller.require()?;
    if world.is_team_admin(team, user) {
        Ok(user)
    } else {
        Err(ApiError::forbidden(format!(
            "RolesGuard - user with id={user} does not have the minimum required role=TEAM_ADMIN within team with id={team}."
        )))
    }
}

fn team_event_type_exists(world: &World, team: i64, id: i64) -> Result<(), ApiError> {
    match world.event_type(id) {
        Some(stored) if stored.owner == Owner::Team(team) => Ok(()),
        _ => Err(ApiError::event_type_not_found(id)),
    }
}

fn create_team(
    shared: &Shared,
    req: &ApiRequest,
    team: i64,
) -> Result<Response<SimBody>, ApiError> {
    let mut fields = input::accepted(body_object(&req.body)?, Audience::Team, Purpose::Create)?;
    let mut world = shared.write();
    team_admin(&world, req, team)?;
    if let Some(slug) = fields.get("slug").and_then(Value::as_str)
        && world.slug_taken(Owner::Team(team), slug, None)
    {
        return Err(ApiError::bad_request(
            "Team already has an event type with this slug.",
        ));
    }
    expand_hosts(&world, &mut fields);
    shared.behaviour.normalise().apply(&mut fields);
    let body = world.create_for_team(team, &fields);
    Ok(success_one(StatusCode::CREATED, &body))
}

fn get_team(
    shared: &Shared,
    req: &ApiRequest,
    team: i64,
    id: i64,
) -> Result<Response<SimBody>, ApiError> {
    let world = shared.read();
    team_admin(&world, req, team)?;
    team_event_type_exists(&world, team, id)?;
    let stored = world
        .event_type(id)
        .ok_or_else(|| ApiError::event_type_not_found(id))?;
    Ok(success_one(StatusCode::OK, &stored.body))
}

fn update_team(
    shared: &Shared,
    req: &ApiRequest,
    team: i64,
    id: i64,
) -> Result<Response<SimBody>, ApiError> {
    let mut fields = input::accepted(body_object(&req.body)?, Audience::Team, Purpose::Update)?;
    let mut world = shared.write();
    team_admin(&world, req, team)?;
    team_event_type_exists(&world, team, id)?;
    check_update(&world, Owner::Team(team), id, &fields)?;
    // Changing the scheduling type without saying who hosts leaves no hosts
    // (a documented trap of the real endpoint).
    if let Some(new_type) = fields.get("schedulingType")
        && !fields.contains_key("hosts")
        && !fields.contains_key("assignAllTeamMembers")
    {
        let current = world
            .event_type(id)
            .and_then(|e| e.object().get("schedulingType").cloned());
        if current.as_ref() != Some(new_type) {
            fields.insert("hosts".into(), Value::Array(Vec::new()));
        }
    }
    expand_hosts(&world, &mut fields);
    shared.behaviour.normalise().apply(&mut fields);
    let body = world
        .update(id, &fields)
        .ok_or_else(|| ApiError::event_type_not_found(id))?;
    Ok(success_one(StatusCode::OK, &body))
}

fn delete_team(
    shared: &Shared,
    req: &ApiRequest,
    team: i64,
    id: i64,
) -> Result<Response<SimBody>, ApiError> {
    let mut world = shared.write();
    team_admin(&world, req, team)?;
    team_event_type_exists(&world, team, id)?;
    let object = world.remove(id).map(|e| e.object()).unwrap_or_default();
    Ok(success_value(
        StatusCode::OK,
        json!({ "id": id, "title": object.get("title") }),
    ))
}

/// Host inputs `{userId, mandatory?, priority?}` become the output objects.
fn expand_hosts(world: &World, fields: &mut Map<String, Value>) {
    let Some(Value::Array(hosts)) = fields.get_mut("hosts") else {
        return;
    };
    for host in hosts.iter_mut() {
        let Some(user_id) = host.get("userId").and_then(Value::as_i64) else {
            continue;
        };
        let mut expanded = match world.user(user_id) {
            Some(user) => user.host_object(),
            None => json!({ "userId": user_id, "name": null, "username": null, "avatarUrl": null }),
        };
        for key in ["mandatory", "priority"] {
            if let Some(v) = host.get(key) {
                expanded[key] = v.clone();
            }
        }
        *host = expanded;
    }
}

// ---- organizations ----------------------------------------------------------

const MAX_TAKE: i64 = 250;

fn list_org(shared: &Shared, req: &ApiRequest, org: i64) -> Result<Response<SimBody>, ApiError> {
    let user = req.caller.require()?;
    let (take, skip) = pagination(req.query)?;
    let world = shared.read();
    if !world.org(org).is_some_and(|o| o.members.contains(&user)) {
        return Err(ApiError::forbidden(format!(
            "User with ID={user} is not a member of organization with ID={org}"
        )));
    }
    let page = world.org_page(org, skip, take);
    drop(world);
    if let Some(id) = shared.behaviour.org_page_served(org) {
        shared.write().remove(id);
    }
    Ok(success_list(page))
}

/// `take` 1–250 (default 250) and `skip` ≥ 0 (default 0).
fn pagination(query: Option<&str>) -> Result<(usize, usize), ApiError> {
    let mut take = MAX_TAKE;
    let mut skip = 0;
    let mut errors = Vec::new();
    for (key, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let parsed = value.parse::<i64>().ok();
        match key.as_ref() {
            "take" => match parsed {
                Some(n) if (1..=MAX_TAKE).contains(&n) => take = n,
                _ => errors.push(json!({
                    "property": "take",
                    "value": value,
                    "constraints": { "max": "take must not be greater than 250", "min": "take must not be less than 1" },
                })),
            },
            "skip" => match parsed {
                Some(n) if n >= 0 => skip = n,
                _ => errors.push(json!({
                    "property": "skip",
                    "value": value,
                    "constraints": { "min": "skip must not be less than 0" },
                })),
            },
            _ => {}
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok((take as usize, skip as usize))
}
