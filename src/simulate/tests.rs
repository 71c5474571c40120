//! The simulator's contract, exercised over real HTTP with reqwest: shapes,
//! rules, throttling, faults, the request log and the control surface.

use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::*;

const KEY_A: &str = "cal_live_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const KEY_B: &str = "cal_live_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const VERSION: &str = "2024-06-14";

async fn simulator(seed: usize) -> Simulator {
    let config = SimConfig {
        api_keys: vec![KEY_A.into(), KEY_B.into()],
        seed_event_types: seed,
        ..SimConfig::default()
    };
    Simulator::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("simulator starts")
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client builds")
}

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Value,
    text: String,
}

/// One request with the event-types version header.
async fn call(
    sim: &Simulator,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Reply {
    send(sim, method, path, key, Some(VERSION), body).await
}

async fn send(
    sim: &Simulator,
    method: Method,
    path: &str,
    key: Option<&str>,
    version: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut request = client().request(method, format!("{}{path}", sim.base_url()));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    if let Some(version) = version {
        request = request.header("cal-api-version", version);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request is answered");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body is read");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
        text,
    }
}

fn header(reply: &Reply, name: &str) -> Option<String> {
    reply
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .expect("data is an array")
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect()
}

// ---- personal event types ---------------------------------------------------

#[tokio::test]
async fn list_returns_every_own_event_type_in_the_full_shape() {
    let sim = simulator(12).await;
    let user_a = sim.user_id(KEY_A).unwrap();

    let reply = call(
        &sim,
        Method::GET,
        "/v2/event-types?take=2&skip=5",
        Some(KEY_A),
        None,
    )
    .await;

    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["status"], "success");
    let list = reply.body["data"].as_array().unwrap();
    assert_eq!(
        list.len(),
        12,
        "no pagination: take/skip are ignored, hidden ones included"
    );
    for et in list {
        assert_eq!(et["ownerId"], user_a);
        for field in [
            "id",
            "lengthInMinutes",
            "title",
            "slug",
            "description",
            "locations",
            "bookingFields",
            "disableGuests",
            "recurrence",
            "metadata",
            "price",
            "currency",
            "lockTimeZoneToggleOnBookingPage",
            "forwardParamsSuccessRedirect",
            "successRedirectUrl",
            "isInstantEvent",
            "scheduleId",
            "hidden",
            "bookingRequiresAuthentication",
            "ownerId",
            "users",
            "bookingUrl",
        ] {
            assert!(et.get(field).is_some(), "{field} missing in {et}");
        }
        assert!(et["description"].is_string());
        assert!(et["price"].is_i64());
        let currency = et["currency"].as_str().unwrap();
        assert_eq!(currency, currency.to_lowercase());
        assert!(et["metadata"].is_object());
        assert_eq!(
            et["users"][0]["id"], user_a,
            "users are objects, not strings"
        );
        assert!(et.get("teamId").is_none());
        let url = et["bookingUrl"].as_str().unwrap();
        assert!(url.ends_with(&format!("/{}", et["slug"].as_str().unwrap())));
    }
    let mut sorted = ids(&reply.body["data"]);
    sorted.sort_unstable();
    assert_eq!(ids(&reply.body["data"]), sorted, "ordered by id");
    sim.shutdown().await;
}

#[tokio::test]
async fn seeded_catalogue_is_varied_unique_and_sometimes_paid() {
    let sim = simulator(100).await;
    let reply = call(&sim, Method::GET, "/v2/event-types", Some(KEY_A), None).await;
    let list = reply.body["data"].as_array().unwrap().clone();
    assert_eq!(list.len(), 100);

    let slugs: std::collections::HashSet<&str> =
        list.iter().map(|e| e["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs.len(), 100, "slugs are unique per user");
    assert!(
        list.iter()
            .all(|e| (15..=120).contains(&e["lengthInMinutes"].as_i64().unwrap()))
    );
    assert!(list.iter().any(|e| e["hidden"] == true));
    assert!(list.iter().any(|e| e["hidden"] == false));
    let paid: Vec<&Value> = list
        .iter()
        .filter(|e| e["metadata"]["apps"]["stripe"]["enabled"] == true)
        .collect();
    assert!(!paid.is_empty());
    for e in &paid {
        assert_eq!(e["metadata"]["apps"]["stripe"]["currency"], "eur");
        assert_eq!(e["price"], e["metadata"]["apps"]["stripe"]["price"]);
        assert_eq!(e["currency"], "eur");
    }
    assert!(list.iter().any(|e| e["price"] == 0));

    // Ids are global: the second user's start after the first user's.
    let other = call(&sim, Method::GET, "/v2/event-types", Some(KEY_B), None).await;
    let first_b = ids(&other.body["data"])[0];
    assert!(ids(&reply.body["data"]).iter().all(|id| *id < first_b));
    sim.shutdown().await;
}

#[tokio::test]
async fn create_get_patch_delete_round_trip() {
    let sim = simulator(0).await;
    let created = call(
        &sim,
        Method::POST,
        "/v2/event-types",
        Some(KEY_A),
        Some(json!({"title": "Balayage", "slug": "balayage-120", "lengthInMinutes": 120, "price": 9000})),
    )
    .await;
    assert_eq!(created.status, 201);
    let et = &created.body["data"];
    let id = et["id"].as_i64().unwrap();
    assert_eq!(et["title"], "Balayage");
    assert_eq!(et["description"], "");
    assert_eq!(et["price"], 0, "price is not an input of API v2");

    let got = call(
        &sim,
        Method::GET,
        &format!("/v2/event-types/{id}"),
        Some(KEY_A),
        None,
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body["data"], *et);

    let patched = call(
        &sim,
        Method::PATCH,
        &format!("/v2/event-types/{id}"),
        Some(KEY_A),
        Some(json!({"title": "Balayage & tone", "slug": "balayage-tone", "lengthInMinutes": 90, "hidden": true, "description": "Long"})),
    )
    .await;
    assert_eq!(patched.status, 200);
    let et = &patched.body["data"];
    assert_eq!(et["title"], "Balayage & tone");
    assert_eq!(et["lengthInMinutes"], 90);
    assert_eq!(et["hidden"], true);
    assert_eq!(et["description"], "Long");
    assert!(
        et["bookingUrl"]
            .as_str()
            .unwrap()
            .ends_with("/balayage-tone")
    );
    assert_eq!(sim.event_type(id).unwrap(), *et);

    let deleted = call(
        &sim,
        Method::DELETE,
        &format!("/v2/event-types/{id}"),
        Some(KEY_A),
        None,
    )
    .await;
    assert_eq!(deleted.status, 200);
    assert_eq!(
        deleted.body["data"],
        json!({"id": id, "lengthInMinutes": 90, "title": "Balayage & tone", "slug": "balayage-tone"})
    );
    let gone = call(
        &sim,
        Method::GET,
        &format!("/v2/event-types/{id}"),
        Some(KEY_A),
        None,
    )
    .await;
    assert_eq!(gone.status, 404);
    assert_eq!(gone.body["error"]["code"], "NotFoundException");
    assert_eq!(
        gone.body["error"]["message"],
        format!("Event type with id {id} not found")
    );
    assert_eq!(gone.body["path"], format!("/v2/event-types/{id}"));
    assert!(gone.body["timestamp"].as_str().unwrap().ends_with('Z'));
    sim.shutdown().await;
}

#[tokio::test]
async fn patch_silently_drops_fields_it_does_not_accept() {
    let sim = simulator(0).await;
    let et = sim.create_event_type(
        KEY_A,
        json!({"title": "Massage", "slug": "massage", "lengthInMinutes": 60, "price": 5000, "currency": "eur",
               "metadata": {"apps": {"stripe": {"enabled": true, "price": 5000, "currency": "eur"}}}}),
    );
    let id = et["id"].as_i64().unwrap();

    let reply = call(
        &sim,
        Method::PATCH,
        &format!("/v2/event-types/{id}"),
        Some(KEY_A),
        Some(json!({"price": 7000, "currency": "usd", "metadata": {}, "ownerId": 1, "title": "Massage 60"})),
    )
    .await;

    assert_eq!(reply.status, 200);
    let data = &reply.body["data"];
    assert_eq!(data["title"], "Massage 60");
    assert_eq!(data["price"], 5000);
    assert_eq!(data["currency"], "eur");
    assert_eq!(data["metadata"]["apps"]["stripe"]["price"], 5000);
    assert_eq!(data["ownerId"], sim.user_id(KEY_A).unwrap());
    sim.shutdown().await;
}

#[tokio::test]
async fn patch_validates_types_and_the_length_options_rule() {
    let sim = simulator(0).await;
    let et = sim.create_event_type(
        KEY_A,
        json!({"title": "Cut", "slug": "cut", "lengthInMinutes": 45}),
    );
    let path = format!("/v2/event-types/{}", et["id"]);

    let wrong_type = call(
        &sim,
        Method::PATCH,
        &path,
        Some(KEY_A),
        Some(json!({"lengthInMinutes": "45"})),
    )
    .await;
    assert_eq!(wrong_type.status, 400);
    assert_eq!(wrong_type.body["error"]["code"], "BadRequestException");
    assert_eq!(
        wrong_type.body["error"]["details"]["errors"][0]["property"],
        "lengthInMinutes"
    );

    let zero = call(
        &sim,
        Method::PATCH,
        &path,
        Some(KEY_A),
        Some(json!({"lengthInMinutes": 0})),
    )
    .await;
    assert_eq!(zero.status, 400);
    let hidden = call(
        &sim,
        Method::PATCH,
        &path,
        Some(KEY_A),
        Some(json!({"hidden": "yes"})),
    )
    .await;
    assert_eq!(hidden.status, 400);

    let without_length = call(
        &sim,
        Method::PATCH,
        &path,
        Some(KEY_A),
        Some(json!({"lengthInMinutesOptions": [15, 30]})),
    )
    .await;
    assert_eq!(
        without_length.status, 400,
        "stored length 45 is not among the options"
    );
    assert!(
        without_length.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lengthInMinutes")
    );
    let mismatch = call(
        &sim,
        Method::PATCH,
        &path,
        Some(KEY_A),
        Some(json!({"lengthInMinutes": 60, "lengthInMinutesOptions": [15, 30]})),
    )
    .await;
    assert_eq!(mismatch.status, 400);
    let fine = call(
        &sim,
        Method::PATCH,
        &path,
        Some(KEY_A),
        Some(json!({"lengthInMinutes": 30, "lengthInMinutesOptions": [15, 30]})),
    )
    .await;
    assert_eq!(fine.status, 200);
    assert_eq!(fine.body["data"]["lengthInMinutesOptions"], json!([15, 30]));
    assert_eq!(
        sim.event_type(et["id"].as_i64().unwrap()).unwrap()["lengthInMinutes"],
        30
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn create_requires_fields_and_a_free_slug() {
    let sim = simulator(0).await;
    sim.create_event_type(
        KEY_A,
        json!({"title": "Cut", "slug": "cut", "lengthInMinutes": 45}),
    );

    let missing = call(
        &sim,
        Method::POST,
        "/v2/event-types",
        Some(KEY_A),
        Some(json!({"title": "x"})),
    )
    .await;
    assert_eq!(missing.status, 400);
    let taken = call(
        &sim,
        Method::POST,
        "/v2/event-types",
        Some(KEY_A),
        Some(json!({"title": "Cut 2", "slug": "cut", "lengthInMinutes": 30})),
    )
    .await;
    assert_eq!(taken.status, 400);
    assert_eq!(
        taken.body["error"]["message"],
        "User already has an event type with this slug."
    );
    let other_user = call(
        &sim,
        Method::POST,
        "/v2/event-types",
        Some(KEY_B),
        Some(json!({"title": "Cut", "slug": "cut", "lengthInMinutes": 30})),
    )
    .await;
    assert_eq!(other_user.status, 201, "slugs are unique per user only");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_version_header_is_required_on_event_types_only() {
    let sim = simulator(1).await;
    let missing = send(
        &sim,
        Method::GET,
        "/v2/event-types",
        Some(KEY_A),
        None,
        None,
    )
    .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["status"], "error");
    assert!(
        missing.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cal-api-version: 2024-06-14")
    );

    let wrong = send(
        &sim,
        Method::GET,
        "/v2/event-types",
        Some(KEY_A),
        Some("2024-04-15"),
        None,
    )
    .await;
    assert_eq!(wrong.status, 400);
    assert!(
        wrong.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2024-04-15")
    );

    sim.create_team(5, &[KEY_A]);
    let team = send(
        &sim,
        Method::GET,
        "/v2/teams/5/event-types",
        None,
        None,
        None,
    )
    .await;
    assert_eq!(team.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn missing_and_unknown_keys_get_401_with_cal_coms_messages() {
    let sim = simulator(1).await;
    let missing = call(&sim, Method::GET, "/v2/event-types", None, None).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.body["error"]["code"], "UnauthorizedException");
    assert!(
        missing.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("ApiAuthStrategy - No authentication method provided")
    );

    let unknown = call(
        &sim,
        Method::GET,
        "/v2/event-types",
        Some("cal_live_unknown"),
        None,
    )
    .await;
    assert_eq!(unknown.status, 401);
    assert_eq!(
        unknown.body["error"]["message"],
        "CustomThrottlerGuard - Invalid API Key"
    );

    let token = call(
        &sim,
        Method::GET,
        "/v2/event-types/1",
        Some("not-a-key"),
        None,
    )
    .await;
    assert_eq!(token.status, 401);
    sim.shutdown().await;
}

#[tokio::test]
async fn another_users_event_type_is_not_found_and_cannot_be_deleted() {
    let sim = simulator(1).await;
    let theirs = sim.create_event_type(
        KEY_B,
        json!({"title": "Theirs", "slug": "theirs", "lengthInMinutes": 30}),
    );
    let path = format!("/v2/event-types/{}", theirs["id"]);

    assert_eq!(
        call(&sim, Method::GET, &path, Some(KEY_A), None)
            .await
            .status,
        404
    );
    let patch = call(
        &sim,
        Method::PATCH,
        &path,
        Some(KEY_A),
        Some(json!({"title": "Mine"})),
    )
    .await;
    assert_eq!(patch.status, 404);
    let delete = call(&sim, Method::DELETE, &path, Some(KEY_A), None).await;
    assert_eq!(delete.status, 403);
    assert_eq!(delete.body["error"]["code"], "ForbiddenException");
    assert_eq!(
        sim.event_type(theirs["id"].as_i64().unwrap()).unwrap()["title"],
        "Theirs"
    );
    assert_eq!(
        call(
            &sim,
            Method::GET,
            "/v2/event-types/99999999",
            Some(KEY_A),
            None
        )
        .await
        .status,
        404
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn list_leaves_out_hidden_booking_fields_but_get_shows_them() {
    let sim = simulator(0).await;
    let et = sim.create_event_type(
        KEY_A,
        json!({"title": "T", "slug": "t", "lengthInMinutes": 30, "bookingFields": [
            {"type": "name", "slug": "name", "required": true},
            {"type": "text", "slug": "secret", "hidden": true, "required": false}
        ]}),
    );
    let list = call(&sim, Method::GET, "/v2/event-types", Some(KEY_A), None).await;
    assert_eq!(
        list.body["data"][0]["bookingFields"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let one = call(
        &sim,
        Method::GET,
        &format!("/v2/event-types/{}", et["id"]),
        Some(KEY_A),
        None,
    )
    .await;
    assert_eq!(
        one.body["data"]["bookingFields"].as_array().unwrap().len(),
        2
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn oversized_request_bodies_get_413() {
    let sim = simulator(0).await;
    let huge = json!({"title": "x".repeat(2 * 1024 * 1024), "slug": "x", "lengthInMinutes": 30});
    let reply = call(
        &sim,
        Method::POST,
        "/v2/event-types",
        Some(KEY_A),
        Some(huge),
    )
    .await;
    assert_eq!(reply.status, 413);
    sim.shutdown().await;
}

// ---- teams and organizations ------------------------------------------------

#[tokio::test]
async fn team_event_types_are_public_to_list_and_admin_only_to_change() {
    let sim = simulator(0).await;
    let admin = sim.user_id(KEY_A).unwrap();
    sim.create_team(42, &[KEY_A]);
    let et = sim.create_team_event_type(
        42,
        json!({"title": "Group class", "slug": "group", "lengthInMinutes": 60}),
    );
    let id = et["id"].as_i64().unwrap();

    let list = send(
        &sim,
        Method::GET,
        "/v2/teams/42/event-types",
        None,
        None,
        None,
    )
    .await;
    assert_eq!(list.status, 200);
    let item = &list.body["data"][0];
    assert_eq!(item["id"], id);
    assert_eq!(item["teamId"], 42);
    assert_eq!(item["ownerId"], Value::Null);
    assert_eq!(item["team"]["id"], 42);
    assert!(item["team"]["slug"].is_string() && item["team"]["name"].is_string());
    assert_eq!(item["hosts"][0]["userId"], admin);
    assert_eq!(item["schedulingType"], "collective");
    assert!(item["bookingUrl"].as_str().unwrap().contains("/team/"));

    let unknown = send(
        &sim,
        Method::GET,
        "/v2/teams/43/event-types",
        None,
        None,
        None,
    )
    .await;
    assert_eq!(unknown.status, 404);

    let path = format!("/v2/teams/42/event-types/{id}");
    assert_eq!(
        send(&sim, Method::GET, &path, Some(KEY_A), None, None)
            .await
            .status,
        200
    );
    let outsider = send(&sim, Method::GET, &path, Some(KEY_B), None, None).await;
    assert_eq!(outsider.status, 403);
    assert_eq!(outsider.body["error"]["code"], "ForbiddenException");
    assert_eq!(
        send(&sim, Method::GET, &path, None, None, None)
            .await
            .status,
        401
    );
    assert_eq!(
        send(
            &sim,
            Method::GET,
            &format!("/v2/event-types/{id}"),
            Some(KEY_A),
            Some(VERSION),
            None
        )
        .await
        .status,
        404,
        "team event types are not personal ones"
    );

    let patched = send(
        &sim,
        Method::PATCH,
        &path,
        Some(KEY_A),
        None,
        Some(json!({"lengthInMinutes": 45, "price": 1})),
    )
    .await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.body["data"]["lengthInMinutes"], 45);
    assert_eq!(patched.body["data"]["price"], 0);
    assert_eq!(patched.body["data"]["hosts"][0]["userId"], admin);

    let created = send(
        &sim,
        Method::POST,
        "/v2/teams/42/event-types",
        Some(KEY_A),
        None,
        Some(json!({"title": "Pair", "slug": "pair", "lengthInMinutes": 30})),
    )
    .await;
    assert_eq!(created.status, 400, "schedulingType is required for teams");
    let created = send(
        &sim,
        Method::POST,
        "/v2/teams/42/event-types",
        Some(KEY_A),
        None,
        Some(json!({"title": "Pair", "slug": "pair", "lengthInMinutes": 30, "schedulingType": "roundRobin", "hosts": [{"userId": admin}]})),
    )
    .await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["data"]["schedulingType"], "roundRobin");
    assert!(created.body["data"]["hosts"][0]["username"].is_string());

    let deleted = send(&sim, Method::DELETE, &path, Some(KEY_A), None, None).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(
        deleted.body["data"],
        json!({"id": id, "title": "Group class"})
    );
    let list = send(
        &sim,
        Method::GET,
        "/v2/teams/42/event-types",
        None,
        None,
        None,
    )
    .await;
    assert_eq!(ids(&list.body["data"]).len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn organization_listing_pages_through_every_team_by_id() {
    let sim = simulator(0).await;
    sim.create_team(7, &[]);
    sim.create_team(8, &[]);
    sim.create_team(9, &[]);
    let mut expected = Vec::new();
    for i in 0..5 {
        for team in [7, 8, 9] {
            let et = sim.create_team_event_type(
                team,
                json!({"title": format!("E{i}"), "slug": format!("e{i}"), "lengthInMinutes": 30}),
            );
            if team != 9 {
                expected.push(et["id"].as_i64().unwrap());
            }
        }
    }
    sim.create_org(3, &[7, 8], &[KEY_A]);

    let mut seen: Vec<i64> = Vec::new();
    let mut skip = 0;
    loop {
        let page = send(
            &sim,
            Method::GET,
            &format!("/v2/organizations/3/teams/event-types?take=4&skip={skip}"),
            Some(KEY_A),
            None,
            None,
        )
        .await;
        assert_eq!(page.status, 200);
        let page_ids = ids(&page.body["data"]);
        seen.extend(&page_ids);
        if page_ids.len() < 4 {
            break;
        }
        skip += 4;
    }
    assert_eq!(
        seen, expected,
        "team 9 is not in the org; pages ordered by id"
    );

    let all = send(
        &sim,
        Method::GET,
        "/v2/organizations/3/teams/event-types",
        Some(KEY_A),
        None,
        None,
    )
    .await;
    assert_eq!(ids(&all.body["data"]).len(), 10, "take defaults to 250");

    for bad in ["take=0", "take=251", "skip=-1", "take=abc"] {
        let reply = send(
            &sim,
            Method::GET,
            &format!("/v2/organizations/3/teams/event-types?{bad}"),
            Some(KEY_A),
            None,
            None,
        )
        .await;
        assert_eq!(reply.status, 400, "{bad}");
    }
    let outsider = send(
        &sim,
        Method::GET,
        "/v2/organizations/3/teams/event-types",
        Some(KEY_B),
        None,
        None,
    )
    .await;
    assert_eq!(outsider.status, 403);
    sim.shutdown().await;
}

// ---- throttling -------------------------------------------------------------

#[tokio::test]
async fn going_over_the_limit_blocks_the_key_for_the_block_duration() {
    let sim = simulator(1).await;
    sim.set_rate_limit(3, Duration::from_secs(30), Duration::from_millis(1500));

    let mut remaining = Vec::new();
    for _ in 0..3 {
        let reply = call(&sim, Method::GET, "/v2/event-types", Some(KEY_A), None).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            header(&reply, "x-ratelimit-limit-default").as_deref(),
            Some("3")
        );
        assert_eq!(
            header(&reply, "x-ratelimit-reset-default").as_deref(),
            Some("30")
        );
        remaining.push(header(&reply, "x-ratelimit-remaining-default").unwrap());
    }
    assert_eq!(remaining, ["2", "1", "0"]);

    let over = call(&sim, Method::GET, "/v2/event-types", Some(KEY_A), None).await;
    assert_eq!(over.status, 429);
    assert_eq!(over.body["error"]["code"], "ThrottlerException");
    assert_eq!(
        over.body["error"]["message"],
        "CustomThrottlerGuard - Too many requests. Please try again later."
    );
    assert_eq!(
        header(&over, "x-ratelimit-remaining-default").as_deref(),
        Some("0")
    );
    assert_eq!(
        header(&over, "x-ratelimit-reset-default").as_deref(),
        Some("2"),
        "1.5 s rounds up"
    );
    assert!(over.headers.get("retry-after").is_none());
    assert!(over.headers.get("x-ratelimit-limit").is_none());

    let during = call(&sim, Method::GET, "/v2/event-types/1", Some(KEY_A), None).await;
    assert_eq!(
        during.status, 429,
        "every request during the block is refused"
    );
    let other_key = call(&sim, Method::GET, "/v2/event-types", Some(KEY_B), None).await;
    assert_eq!(other_key.status, 200, "limits are per key");

    let statuses: Vec<u16> = sim
        .requests()
        .iter()
        .filter(|r| r.user_id == sim.user_id(KEY_A))
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses,
        [200, 200, 200, 429, 429],
        "blocked requests are logged too"
    );

    tokio::time::sleep(Duration::from_millis(1600)).await;
    let after = call(&sim, Method::GET, "/v2/event-types", Some(KEY_A), None).await;
    assert_eq!(after.status, 200);
    assert_eq!(
        header(&after, "x-ratelimit-remaining-default").as_deref(),
        Some("2")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_public_team_list_is_throttled_by_address() {
    let sim = simulator(0).await;
    sim.create_team(1, &[]);
    sim.set_rate_limit(1, Duration::from_secs(30), Duration::from_secs(30));
    let first = send(
        &sim,
        Method::GET,
        "/v2/teams/1/event-types",
        None,
        None,
        None,
    )
    .await;
    assert_eq!(first.status, 200);
    assert_eq!(
        header(&first, "x-ratelimit-remaining-default").as_deref(),
        Some("0")
    );
    let second = send(
        &sim,
        Method::GET,
        "/v2/teams/1/event-types",
        None,
        None,
        None,
    )
    .await;
    assert_eq!(second.status, 429);
    let with_key = send(
        &sim,
        Method::GET,
        "/v2/teams/1/event-types",
        Some(KEY_A),
        None,
        None,
    )
    .await;
    assert_eq!(with_key.status, 200, "a key is its own credential");
    sim.shutdown().await;
}

// ---- faults -----------------------------------------------------------------

#[tokio::test]
async fn status_faults_answer_with_an_envelope_or_the_given_body() {
    let sim = simulator(1).await;
    sim.inject_fault(
        Fault::new(FaultKind::Status {
            status: 503,
            body: None,
        })
        .times(2),
    );
    for _ in 0..2 {
        let reply = call(&sim, Method::GET, "/v2/event-types", Some(KEY_A), None).await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.body["status"], "error");
        assert_eq!(reply.body["error"]["code"], "ServiceUnavailableException");
    }
    assert_eq!(
        call(&sim, Method::GET, "/v2/event-types", Some(KEY_A), None)
            .await
            .status,
        200
    );

    sim.inject_fault(Fault::new(FaultKind::Status {
        status: 500,
        body: Some("oops".into()),
    }));
    let custom = call(&sim, Method::GET, "/v2/event-types", Some(KEY_A), None).await;
    assert_eq!((custom.status, custom.text.as_str()), (500, "oops"));
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_match_on_method_path_and_key_and_never_change_state() {
    let sim = simulator(0).await;
    let et = sim.create_event_type(
        KEY_A,
        json!({"title": "Cut", "slug": "cut", "lengthInMinutes": 30}),
    );
    let path = format!("/v2/event-types/{}", et["id"]);
    sim.inject_fault(
        Fault::new(FaultKind::Status {
            status: 500,
            body: None,
        })
        .method("patch")
        .path_prefix("/v2/event-types/")
        .api_key(KEY_A)
        .times(0),
    );
    assert_eq!(
        call(&sim, Method::GET, &path, Some(KEY_A), None)
            .await
            .status,
        200
    );
    assert_eq!(
        call(&sim, Method::GET, "/v2/event-types", Some(KEY_B), None)
            .await
            .status,
        200
    );
    for _ in 0..3 {
        let reply = call(
            &sim,
            Method::PATCH,
            &path,
            Some(KEY_A),
            Some(json!({"title": "Changed"})),
        )
        .await;
        assert_eq!(reply.status, 500, "times 0 lasts until cleared");
        assert_eq!(reply.body["error"]["code"], "INTERNAL_SERVER_ERROR");
    }
    assert_eq!(
        sim.event_type(et["id"].as_i64().unwrap()).unwrap()["title"],
        "Cut"
    );
    sim.clear_faults();
    let reply = call(
        &sim,
        Method::PATCH,
        &path,
        Some(KEY_A),
        Some(json!({"title": "Changed"})),
    )
    .await;
    assert_eq!(reply.status, 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn malformed_json_and_html_faults_are_not_parseable() {
    let sim = simulator(1).await;
    sim.inject_fault(Fault::new(FaultKind::MalformedJson));
    let malformed = call(&sim, Method::GET, "/v2/event-types", Some(KEY_A), None).await;
    assert_eq!(malformed.status, 200);
    assert!(
        header(&malformed, "content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert!(serde_json::from_str::<Value>(&malformed.text).is_err());

    sim.inject_fault(Fault::new(FaultKind::Html { status: 502 }));
    let html = call(&sim, Method::GET, "/v2/event-types", Some(KEY_A), None).await;
    assert_eq!(html.status, 502);
    assert!(
        header(&html, "content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(html.text.contains("502 Bad Gateway"));
    sim.shutdown().await;
}

#[tokio::test]
async fn truncated_and_reset_faults_break_the_exchange() {
    let sim = simulator(1).await;
    let url = format!("{}/v2/event-types", sim.base_url());

    sim.inject_fault(Fault::new(FaultKind::Truncated));
    let response = client()
        .get(&url)
        .bearer_auth(KEY_A)
        .header("cal-api-version", VERSION)
        .send()
        .await
        .expect("headers arrive");
    let declared = response.content_length().unwrap();
    let body = response.bytes().await;
    assert!(
        body.is_err(),
        "the body ends before the declared {declared} bytes"
    );

    sim.inject_fault(Fault::new(FaultKind::Reset));
    let reset = client()
        .get(&url)
        .bearer_auth(KEY_A)
        .header("cal-api-version", VERSION)
        .send()
        .await;
    assert!(reset.is_err(), "no response at all");

    let log = sim.requests();
    assert_eq!(
        log.last().unwrap().status,
        0,
        "a reset is logged without a status"
    );
    assert_eq!(
        call(&sim, Method::GET, "/v2/event-types", Some(KEY_A), None)
            .await
            .status,
        200
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn huge_body_streams_exactly_the_requested_size() {
    let sim = simulator(0).await;
    let size: u64 = 5 * 1024 * 1024 + 7;
    sim.inject_fault(Fault::new(FaultKind::HugeBody { bytes: size }));
    let mut response = client()
        .get(format!("{}/v2/event-types", sim.base_url()))
        .bearer_auth(KEY_A)
        .header("cal-api-version", VERSION)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut total = 0u64;
    let mut start: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        if start.len() < 64 {
            start.extend_from_slice(&chunk[..chunk.len().min(64)]);
        }
        total += chunk.len() as u64;
    }
    assert_eq!(total, size);
    assert!(start.starts_with(br#"{"status":"success","data":[{"id":1,"#));
    sim.shutdown().await;
}

#[tokio::test]
async fn delay_faults_answer_normally_after_waiting() {
    let sim = simulator(1).await;
    sim.inject_fault(Fault::new(FaultKind::Delay { ms: 300 }));
    let started = Instant::now();
    let reply = call(&sim, Method::GET, "/v2/event-types", Some(KEY_A), None).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["data"].as_array().unwrap().len(), 1);
    sim.shutdown().await;
}

#[test]
fn faults_deserialize_from_the_documented_json() {
    let faults: Vec<Fault> = serde_json::from_value(json!([
        {"kind": {"type": "status", "status": 503}},
        {"method": "GET", "path_prefix": "/v2/teams", "kind": {"type": "malformed_json"}, "times": 0},
        {"pathPrefix": "/v2", "apiKey": "k", "kind": {"type": "hugeBody", "bytes": 100000000}},
        {"kind": {"type": "html", "status": 502}},
        {"kind": {"type": "reset"}},
        {"kind": {"type": "truncated"}},
        {"kind": {"type": "delay", "ms": 10}},
    ]))
    .unwrap();
    assert_eq!(faults[0].times, 1, "one request by default");
    assert_eq!(faults[1].times, 0);
    assert_eq!(faults[2].kind, FaultKind::HugeBody { bytes: 100_000_000 });
    assert_eq!(faults[2].api_key.as_deref(), Some("k"));
}

// ---- request log and control surface ---------------------------------------

#[tokio::test]
async fn the_request_log_names_users_never_keys() {
    let sim = simulator(1).await;
    call(
        &sim,
        Method::GET,
        "/v2/event-types?sortCreatedAt=asc",
        Some(KEY_A),
        None,
    )
    .await;
    call(
        &sim,
        Method::GET,
        "/v2/event-types",
        Some("cal_live_nobody"),
        None,
    )
    .await;
    send(&sim, Method::GET, "/_sim/requests", None, None, None).await;

    let log = sim.requests();
    assert_eq!(log.len(), 2, "control requests are not logged");
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].path, "/v2/event-types?sortCreatedAt=asc");
    assert_eq!(log[0].user_id, sim.user_id(KEY_A));
    assert_eq!(log[0].status, 200);
    assert_eq!((log[1].user_id, log[1].status), (None, 401));
    assert!(log[0].seq < log[1].seq && log[0].at_ms <= log[1].at_ms);

    let over_http = send(&sim, Method::GET, "/_sim/requests", None, None, None).await;
    assert_eq!(over_http.body.as_array().unwrap().len(), 2);
    assert!(!over_http.text.contains(KEY_A) && !over_http.text.contains("nobody"));

    sim.clear_requests();
    assert!(sim.requests().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn admin_edits_merge_anything_like_the_cal_com_ui() {
    let sim = simulator(0).await;
    let et = sim.create_event_type(
        KEY_A,
        json!({"title": "Cut", "slug": "cut", "lengthInMinutes": 30}),
    );
    let id = et["id"].as_i64().unwrap();

    let edited = send(
        &sim,
        Method::PATCH,
        &format!("/_sim/event-types/{id}"),
        None,
        None,
        Some(json!({"price": 4200, "currency": "eur", "metadata": {"apps": {"stripe": {"enabled": true, "price": 4200, "currency": "eur"}}},
                    "lengthInMinutes": "sixty", "slug": "cut-new", "id": 1})),
    )
    .await;
    assert_eq!(edited.status, 200);
    let seen = call(
        &sim,
        Method::GET,
        &format!("/v2/event-types/{id}"),
        Some(KEY_A),
        None,
    )
    .await;
    let data = &seen.body["data"];
    assert_eq!(data["id"], id, "the id never changes");
    assert_eq!(data["price"], 4200);
    assert_eq!(data["currency"], "eur");
    assert_eq!(
        data["lengthInMinutes"], "sixty",
        "wrong types are stored verbatim"
    );
    assert!(data["bookingUrl"].as_str().unwrap().ends_with("/cut-new"));
    assert_eq!(data["title"], "Cut", "other fields untouched");

    assert!(sim.edit_event_type(id, json!({"hidden": true})));
    assert_eq!(sim.event_type(id).unwrap()["hidden"], true);
    assert!(!sim.edit_event_type(id + 1000, json!({"hidden": true})));

    let got = send(
        &sim,
        Method::GET,
        &format!("/_sim/event-types/{id}"),
        None,
        None,
        None,
    )
    .await;
    assert_eq!(got.body["hidden"], true);
    assert_eq!(
        send(
            &sim,
            Method::DELETE,
            &format!("/_sim/event-types/{id}"),
            None,
            None,
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        send(
            &sim,
            Method::GET,
            &format!("/_sim/event-types/{id}"),
            None,
            None,
            None
        )
        .await
        .status,
        404
    );
    assert!(!sim.delete_event_type(id));
    sim.shutdown().await;
}

#[tokio::test]
async fn the_control_endpoints_set_up_teams_orgs_faults_and_limits() {
    let sim = simulator(0).await;
    let created = send(
        &sim,
        Method::POST,
        "/_sim/event-types",
        None,
        None,
        Some(json!({"apiKey": "cal_new_user", "title": "Nails", "slug": "nails", "lengthInMinutes": 45})),
    )
    .await;
    assert_eq!(created.status, 201);
    assert_eq!(
        created.body["ownerId"],
        sim.user_id("cal_new_user").unwrap(),
        "new keys become users"
    );

    let team = send(
        &sim,
        Method::POST,
        "/_sim/teams",
        None,
        None,
        Some(json!({"teamId": 11, "apiKeys": [KEY_A]})),
    )
    .await;
    assert_eq!(team.status, 201);
    let team_et = send(
        &sim,
        Method::POST,
        "/_sim/event-types",
        None,
        None,
        Some(json!({"teamId": 11, "title": "Class", "slug": "class", "lengthInMinutes": 60})),
    )
    .await;
    assert_eq!(team_et.body["teamId"], 11);
    let org = send(
        &sim,
        Method::POST,
        "/_sim/orgs",
        None,
        None,
        Some(json!({"orgId": 2, "teamIds": [11], "apiKeys": [KEY_B]})),
    )
    .await;
    assert_eq!(org.status, 201);
    let listed = send(
        &sim,
        Method::GET,
        "/v2/organizations/2/teams/event-types",
        Some(KEY_B),
        None,
        None,
    )
    .await;
    assert_eq!(
        ids(&listed.body["data"]),
        [team_et.body["id"].as_i64().unwrap()]
    );

    let faults = send(
        &sim,
        Method::POST,
        "/_sim/faults",
        None,
        None,
        Some(json!([{"kind": {"type": "status", "status": 502}, "times": 0}, {"kind": {"type": "reset"}}])),
    )
    .await;
    assert_eq!(faults.body["injected"], 2);
    assert_eq!(
        call(&sim, Method::GET, "/v2/event-types", Some(KEY_A), None)
            .await
            .status,
        502
    );
    assert_eq!(
        send(&sim, Method::DELETE, "/_sim/faults", None, None, None)
            .await
            .status,
        204
    );
    assert_eq!(
        call(&sim, Method::GET, "/v2/event-types", Some(KEY_A), None)
            .await
            .status,
        200
    );

    let limit = send(
        &sim,
        Method::PUT,
        "/_sim/rate-limit",
        None,
        None,
        Some(json!({"limit": 1, "windowSecs": 60, "blockSecs": 60})),
    )
    .await;
    assert_eq!(limit.status, 200);
    assert_eq!(
        call(&sim, Method::GET, "/v2/event-types", Some(KEY_A), None)
            .await
            .status,
        200
    );
    assert_eq!(
        call(&sim, Method::GET, "/v2/event-types", Some(KEY_A), None)
            .await
            .status,
        429
    );

    assert_eq!(
        send(&sim, Method::DELETE, "/_sim/requests", None, None, None)
            .await
            .status,
        204
    );
    assert!(sim.requests().is_empty());
    assert_eq!(
        send(&sim, Method::GET, "/_sim/nothing", None, None, None)
            .await
            .status,
        404
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_serving() {
    let sim = simulator(0).await;
    let url = format!("{}/v2/event-types", sim.base_url());
    sim.shutdown().await;
    let result = client().get(url).send().await;
    assert!(result.is_err());
}

#[tokio::test]
async fn args_become_the_config() {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }
    let cli = Cli::try_parse_from([
        "x",
        "--api-key",
        "a",
        "--api-key",
        "b",
        "--seed-event-types",
        "3",
        "--rate-limit",
        "5",
    ])
    .unwrap();
    let config = SimConfig::from(&cli.args);
    assert_eq!(config.api_keys, ["a", "b"]);
    assert_eq!((config.seed_event_types, config.rate_limit), (3, 5));
    assert_eq!(
        (config.rate_window, config.block),
        (Duration::from_secs(60), Duration::from_secs(60))
    );
    assert_eq!(cli.args.listen.port(), 0);
    assert!(
        Cli::try_parse_from(["x"]).is_err(),
        "at least one key is required"
    );
}

#[tokio::test]
async fn run_serves_until_cancelled() {
    // A port that was free a moment ago: run() only reports its URL on stdout.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let args = SimulateArgs {
        listen: format!("127.0.0.1:{port}").parse().unwrap(),
        api_keys: vec![KEY_A.into()],
        seed_event_types: 2,
        rate_limit: 120,
        rate_window_secs: 60,
        block_secs: 60,
    };
    let token = CancellationToken::new();
    let running = tokio::spawn(run(args, token.clone()));
    let url = format!("http://127.0.0.1:{port}/v2/event-types");
    let mut listed = None;
    for _ in 0..100 {
        let attempt = client()
            .get(&url)
            .bearer_auth(KEY_A)
            .header("cal-api-version", VERSION)
            .send()
            .await;
        if let Ok(response) = attempt {
            listed = Some(response.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        listed.expect("serving")["data"].as_array().unwrap().len(),
        2
    );
    token.cancel();
    running.await.unwrap().unwrap();
    assert!(client().get(&url).send().await.is_err(), "stopped");
}

#[tokio::test]
async fn normalise_and_listing_race_are_set_over_the_admin_endpoints() {
    let sim = simulator(0).await;
    let et = sim.create_event_type(
        KEY_A,
        json!({"title": "Cut", "slug": "cut", "lengthInMinutes": 30}),
    );
    let id = et["id"].as_i64().unwrap();
    let set = send(
        &sim,
        Method::PUT,
        "/_sim/normalise",
        None,
        None,
        Some(json!({"trimTitles": true, "roundLengthsTo": 5})),
    )
    .await;
    assert_eq!(set.status, 200, "{}", set.text);

    let reply = call(
        &sim,
        Method::PATCH,
        &format!("/v2/event-types/{id}"),
        Some(KEY_A),
        Some(json!({"title": "  Cut & style ", "lengthInMinutes": 32})),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["data"]["title"], "Cut & style");
    assert_eq!(reply.body["data"]["lengthInMinutes"], 30);

    let unknown = send(
        &sim,
        Method::PUT,
        "/_sim/normalise",
        None,
        None,
        Some(json!({"trimTitle": true})),
    )
    .await;
    assert_eq!(unknown.status, 400, "{}", unknown.text);
    let race = send(
        &sim,
        Method::PUT,
        "/_sim/listing-race",
        None,
        None,
        Some(json!({"orgId": 1, "afterPage": 0, "deleteEventTypeId": id})),
    )
    .await;
    assert_eq!(race.status, 200, "{}", race.text);
    assert_eq!(
        send(&sim, Method::DELETE, "/_sim/listing-race", None, None, None)
            .await
            .status,
        204
    );
    sim.shutdown().await;
}
