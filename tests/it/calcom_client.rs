//! Cal.com client tests against a mock server: what goes on the wire (key, version
//! header, paths, PATCH bodies), how listings are decoded record by record, and how
//! the client behaves when Cal.com or the network misbehaves (404, 5xx, 429 blocks,
//! timeouts, HTML from a proxy, oversized bodies, bad keys).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use calsync::calcom::{AccountClient, CalcomClient, CalcomError, EventTypePatch};
use calsync::config::CalcomSettings;
use calsync::domain::{EventTypeId, TeamId};
use calsync::telemetry::metrics::Metrics;
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::instrument::WithSubscriber;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::support::logs::LogCapture;
use crate::support::net::free_port;

const API_KEY: &str = "cal_live_testkey";
const ACCOUNT: &str = "berlin";

// ---------------------------------------------------------------- harness

/// Settings that keep every test fast: a generous budget, short backoff.
fn settings(base_url: &str) -> CalcomSettings {
    CalcomSettings {
        base_url: base_url.parse().expect("mock server URL"),
        timeout: Duration::from_secs(2),
        requests_per_minute: 6_000,
        max_attempts: 3,
        retry_initial_delay: Duration::from_millis(10),
        max_body_bytes: 1024 * 1024,
    }
}

/// The `berlin` account's client and the metrics it reports into.
struct Berlin {
    client: AccountClient,
    metrics: Arc<Metrics>,
}

impl Berlin {
    fn new(settings: CalcomSettings) -> Self {
        let metrics = Arc::new(Metrics::new());
        let client = CalcomClient::new(settings, metrics.clone())
            .expect("client builds")
            .account(ACCOUNT, SecretString::from(API_KEY));
        Self { client, metrics }
    }

    fn at(mock: &MockServer) -> Self {
        Self::new(settings(&mock.uri()))
    }

    fn with(mock: &MockServer, tweak: impl FnOnce(&mut CalcomSettings)) -> Self {
        let mut s = settings(&mock.uri());
        tweak(&mut s);
        Self::new(s)
    }

    fn requests(&self, endpoint: &str, code: &str) -> u64 {
        self.metrics
            .calcom_requests_total
            .with_label_values(&[ACCOUNT, endpoint, code])
            .get()
    }

    fn rate_limit_remaining(&self) -> i64 {
        self.metrics
            .calcom_rate_limit_remaining
            .with_label_values(&[ACCOUNT])
            .get()
    }
}

/// An event type as Cal.com v2 really sends it: `users` and `hosts` are objects, and
/// there are fields calsync has never heard of.
fn event_type(id: i64) -> Value {
    json!({
        "id": id,
        "ownerId": 4021,
        "title": format!("Massage {id}"),
        "slug": format!("massage-{id}"),
        "description": "Sixty minute session",
        "lengthInMinutes": 60,
        "hidden": false,
        "price": 9000,
        "currency": "eur",
        "metadata": { "apps": { "stripe": {
            "enabled": true, "price": 9000, "currency": "eur", "paymentOption": "ON_BOOKING"
        } } },
        "locations": [{ "type": "address", "address": "12 Example Street", "public": true }],
        "bookingFields": [{ "type": "name", "slug": "name", "isDefault": true, "required": true }],
        "users": [{ "id": 4021, "name": "Ana Silva", "username": "ana", "avatarUrl": null,
                    "brandColor": null, "darkBrandColor": null, "weekStart": "Monday", "metadata": {} }],
        "hosts": [{ "userId": 4021, "mandatory": false, "priority": "medium" }],
        "bookerActiveBookingsLimit": { "disabled": true },
        "somethingAddedNextYear": { "nested": [1, 2, 3] },
        "bookingUrl": format!("https://cal.com/ana/massage-{id}")
    })
}

/// `event_type(id)` with some fields replaced.
fn event_type_with(id: i64, fields: Value) -> Value {
    let mut v = event_type(id);
    for (k, val) in fields.as_object().expect("an object of fields") {
        v[k] = val.clone();
    }
    v
}

fn success(data: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({ "status": "success", "data": data }))
}

fn error_envelope(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "status": "error",
        "timestamp": "2026-03-01T10:00:00.000Z",
        "path": "/v2/event-types",
        "error": { "code": code, "message": message }
    }))
}

/// Answers with the given responses in order (repeating the last one) and records
/// when each request arrived.
#[derive(Clone)]
struct Script {
    responses: Arc<Vec<ResponseTemplate>>,
    arrivals: Arc<Mutex<Vec<Instant>>>,
}

impl Script {
    fn new(responses: Vec<ResponseTemplate>) -> Self {
        assert!(!responses.is_empty());
        Self {
            responses: Arc::new(responses),
            arrivals: Arc::default(),
        }
    }

    fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().unwrap().clone()
    }
}

impl Respond for Script {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut arrivals = self.arrivals.lock().unwrap();
        arrivals.push(Instant::now());
        let i = (arrivals.len() - 1).min(self.responses.len() - 1);
        self.responses[i].clone()
    }
}

async fn received(mock: &MockServer) -> Vec<Request> {
    mock.received_requests()
        .await
        .expect("request recording is on")
}

/// Every error message may end up in logs, the run journal and the database.
fn assert_keeps_the_key_secret(error: &CalcomError) {
    let shown = error.to_string();
    assert!(!shown.contains(API_KEY), "the API key leaked: {shown}");
    assert!(
        !shown.contains("testkey"),
        "part of the API key leaked: {shown}"
    );
    let debugged = format!("{error:?}");
    assert!(
        !debugged.contains(API_KEY),
        "the API key leaked: {debugged}"
    );
}

// ---------------------------------------------------------------- listing

#[tokio::test]
async fn a_listing_sends_the_bearer_key_and_version_header_and_decodes_the_records() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .and(header("authorization", "Bearer cal_live_testkey"))
        .and(header("cal-api-version", "2024-06-14"))
        .respond_with(success(json!([event_type(81234), event_type(81235)])))
        .expect(1)
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);

    let listing = berlin.client.list_all(&[], None).await.expect("listing");

    assert_eq!(listing.requests, 1);
    assert_eq!(listing.ids(), vec![EventTypeId(81234), EventTypeId(81235)]);
    let first = listing.records[0].as_ref().expect("a valid record");
    assert_eq!(first.title, "Massage 81234");
    assert_eq!(first.slug, "massage-81234");
    assert_eq!(first.description, "Sixty minute session");
    assert_eq!(first.length.get(), 60);
    assert!(!first.hidden);
    assert_eq!(first.price.to_string(), "90.00 EUR");
    assert_eq!(first.team_id, None, "a personal event type has no team");
    mock.verify().await;
}

#[tokio::test]
async fn one_bad_record_is_reported_by_id_while_the_others_decode() {
    let mock = MockServer::start().await;
    let items = json!([
        event_type(1),
        event_type_with(2, json!({ "lengthInMinutes": 0 })),
        event_type_with(3, json!({ "title": null })),
        event_type_with(4, json!({ "title": "x".repeat(10_000) })),
        event_type_with(5, json!({ "price": -5, "metadata": {} })),
        event_type_with(6, json!({ "hidden": "yes" })),
        "not an event type",
        event_type(7),
    ]);
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(success(items))
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);

    let listing = berlin.client.list_all(&[], None).await.expect("listing");

    assert_eq!(listing.records.len(), 8);
    let good: Vec<EventTypeId> = listing
        .records
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|et| et.id))
        .collect();
    assert_eq!(good, vec![EventTypeId(1), EventTypeId(7)]);

    let expected = [
        (1, 2, "lengthInMinutes 0 is out of range"),
        (2, 3, "title is missing"),
        (3, 4, "title is 10000 characters long"),
        (4, 5, "price -5 is negative"),
        (5, 6, "hidden is a string"),
    ];
    for (pos, id, why) in expected {
        let err = listing.records[pos].as_ref().expect_err("a bad record");
        assert_eq!(err.event_type_id, Some(EventTypeId(id)));
        let shown = err.to_string();
        assert!(shown.starts_with(&format!("event type {id}: ")), "{shown}");
        assert!(shown.contains(why), "{shown} does not say {why}");
    }
    let string_item = listing.records[6]
        .as_ref()
        .expect_err("a string is no record");
    assert_eq!(string_item.event_type_id, None);
    assert!(
        string_item.message.contains("#6"),
        "{}",
        string_item.message
    );
    assert!(
        string_item.message.contains("a string"),
        "{}",
        string_item.message
    );
}

#[tokio::test]
async fn each_configured_team_is_listed_and_its_records_carry_the_team_id() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(success(json!([event_type(1)])))
        .expect(1)
        .mount(&mock)
        .await;
    for (team, ids) in [(11, [110, 111]), (12, [120, 121])] {
        Mock::given(method("GET"))
            .and(path(format!("/v2/teams/{team}/event-types")))
            .and(header("authorization", "Bearer cal_live_testkey"))
            .respond_with(success(json!([event_type(ids[0]), event_type(ids[1])])))
            .expect(1)
            .mount(&mock)
            .await;
    }
    let berlin = Berlin::at(&mock);

    let listing = berlin
        .client
        .list_all(&[11, 12], None)
        .await
        .expect("listing");

    assert_eq!(listing.requests, 3);
    let teams: Vec<(i64, Option<TeamId>)> = listing
        .records
        .iter()
        .map(|r| r.as_ref().expect("valid record"))
        .map(|et| (et.id.0, et.team_id))
        .collect();
    assert_eq!(
        teams,
        vec![
            (1, None),
            (110, Some(TeamId(11))),
            (111, Some(TeamId(11))),
            (120, Some(TeamId(12))),
            (121, Some(TeamId(12))),
        ]
    );
    assert_eq!(berlin.requests("list_team_event_types", "200"), 2);
    mock.verify().await;
}

#[tokio::test]
async fn an_organisation_is_paged_by_250_until_a_short_page() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(success(json!([])))
        .mount(&mock)
        .await;
    let org = "/v2/organizations/77/teams/event-types";
    let full_page: Vec<Value> = (0..250)
        .map(|i| event_type_with(1_000 + i, json!({ "teamId": 5 })))
        .collect();
    let short_page: Vec<Value> = (0..3)
        .map(|i| event_type_with(2_000 + i, json!({ "teamId": 6 })))
        .collect();
    for (skip, page, expected) in [
        ("0", json!(full_page), 1),
        ("250", json!(short_page), 1),
        ("500", json!([]), 0),
    ] {
        Mock::given(method("GET"))
            .and(path(org))
            .and(query_param("take", "250"))
            .and(query_param("skip", skip))
            .respond_with(success(page))
            .expect(expected)
            .mount(&mock)
            .await;
    }
    let berlin = Berlin::at(&mock);

    let listing = berlin
        .client
        .list_all(&[], Some(77))
        .await
        .expect("listing");

    assert_eq!(listing.requests, 3, "personal list + two org pages");
    assert_eq!(listing.records.len(), 253);
    let ids = listing.ids();
    assert_eq!(ids.first(), Some(&EventTypeId(1_000)));
    assert_eq!(ids.last(), Some(&EventTypeId(2_002)));
    let last = listing.records[252].as_ref().expect("valid record");
    assert_eq!(last.team_id, Some(TeamId(6)));
    mock.verify().await;
}

#[tokio::test]
async fn an_event_type_listed_by_its_team_and_by_the_organisation_appears_once() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(success(json!([])))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/teams/5/event-types"))
        .respond_with(success(json!([event_type(500), event_type(501)])))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/organizations/77/teams/event-types"))
        .respond_with(success(json!([
            event_type_with(501, json!({ "teamId": 5 })),
            event_type_with(600, json!({ "teamId": 6 })),
        ])))
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);

    let listing = berlin
        .client
        .list_all(&[5], Some(77))
        .await
        .expect("listing");

    assert_eq!(
        listing.ids(),
        vec![EventTypeId(500), EventTypeId(501), EventTypeId(600)]
    );
    assert_eq!(listing.requests, 3);
}

#[tokio::test]
async fn a_404_on_the_personal_list_means_no_event_types() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(error_envelope(
            404,
            "NotFoundException",
            "Event types not found",
        ))
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);

    let listing = berlin
        .client
        .list_all(&[], None)
        .await
        .expect("an empty listing");

    assert!(listing.records.is_empty());
    assert_eq!(received(&mock).await.len(), 1, "a 404 is not retried");
}

#[tokio::test]
async fn a_404_on_a_team_list_fails_the_whole_listing_rather_than_returning_part_of_it() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(success(json!([event_type(1)])))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/teams/11/event-types"))
        .respond_with(error_envelope(404, "NotFoundException", "Team not found"))
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);

    let err = berlin
        .client
        .list_all(&[11], None)
        .await
        .expect_err("a partial listing");

    assert!(
        matches!(
            err,
            CalcomError::Api { status: 404, endpoint: "list_team_event_types", ref code, .. }
                if code == "NotFoundException"
        ),
        "{err:?}"
    );
}

// ---------------------------------------------------------------- retries

#[tokio::test]
async fn a_server_error_is_retried_and_the_next_success_is_used() {
    let mock = MockServer::start().await;
    let script = Script::new(vec![
        error_envelope(500, "INTERNAL_SERVER_ERROR", "Internal server error."),
        ResponseTemplate::new(503),
        success(json!([event_type(1)])),
    ]);
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(script.clone())
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);

    let listing = berlin
        .client
        .list_all(&[], None)
        .await
        .expect("listing after retries");

    assert_eq!(listing.ids(), vec![EventTypeId(1)]);
    assert_eq!(script.arrivals().len(), 3);
    assert_eq!(berlin.requests("list_event_types", "500"), 1);
    assert_eq!(berlin.requests("list_event_types", "503"), 1);
    assert_eq!(berlin.requests("list_event_types", "200"), 1);
}

#[tokio::test]
async fn server_errors_are_retried_exactly_max_attempts_times_then_reported() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(error_envelope(
            500,
            "INTERNAL_SERVER_ERROR",
            "Internal server error.",
        ))
        .mount(&mock)
        .await;
    let berlin = Berlin::with(&mock, |s| s.max_attempts = 4);

    let err = berlin
        .client
        .list_all(&[], None)
        .await
        .expect_err("all 5xx");

    assert!(
        matches!(
            err,
            CalcomError::Server { status: 500, endpoint: "list_event_types", ref message }
                if message == "Internal server error."
        ),
        "{err:?}"
    );
    assert_eq!(received(&mock).await.len(), 4);
    assert_eq!(berlin.requests("list_event_types", "500"), 4);
    assert_keeps_the_key_secret(&err);
}

#[tokio::test]
async fn a_timeout_is_retried_then_reported_as_a_transport_timeout() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(success(json!([])).set_delay(Duration::from_secs(1)))
        .mount(&mock)
        .await;
    let berlin = Berlin::with(&mock, |s| {
        s.timeout = Duration::from_millis(200);
        s.max_attempts = 2;
    });

    let started = Instant::now();
    let err = berlin
        .client
        .list_all(&[], None)
        .await
        .expect_err("timeouts");

    assert!(
        matches!(
            err,
            CalcomError::Transport {
                kind: "timeout",
                endpoint: "list_event_types",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(received(&mock).await.len(), 2);
    assert_eq!(berlin.requests("list_event_types", "timeout"), 2);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "each attempt is bounded by the timeout"
    );
    assert_keeps_the_key_secret(&err);
}

#[tokio::test]
async fn an_unreachable_server_is_retried_then_reported_as_a_connect_failure() {
    let base = format!("http://127.0.0.1:{}", free_port());
    let mut s = settings(&base);
    s.max_attempts = 2;
    let berlin = Berlin::new(s);

    let err = berlin
        .client
        .list_all(&[], None)
        .await
        .expect_err("nothing listens");

    assert!(
        matches!(
            err,
            CalcomError::Transport {
                kind: "connect",
                endpoint: "list_event_types",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(berlin.requests("list_event_types", "connect"), 2);
    assert_keeps_the_key_secret(&err);
}

/// A bare HTTP/1.1 server on 127.0.0.1 that sends the status line, the headers and
/// the first bytes of a listing, then stalls. Returns its base URL and the number of
/// requests it has read.
async fn stalling_server() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                if read_request_head(&mut socket).await.is_none() {
                    return;
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let start = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                              Content-Length: 1000\r\n\r\n{\"status\":\"success\",";
                if socket.write_all(start).await.is_ok() {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            });
        }
    });
    (base, requests)
}

#[tokio::test]
async fn a_body_that_stalls_midway_is_retried_then_reported_as_a_timeout() {
    let (base, requests) = stalling_server().await;
    let mut s = settings(&base);
    s.timeout = Duration::from_millis(300);
    s.max_attempts = 2;
    let berlin = Berlin::new(s);

    let err = berlin
        .client
        .list_all(&[], None)
        .await
        .expect_err("stalled");

    assert!(
        matches!(
            err,
            CalcomError::Transport {
                kind: "timeout",
                endpoint: "list_event_types",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    assert_eq!(berlin.requests("list_event_types", "timeout"), 2);
}

// ---------------------------------------------------------------- rate limits

#[tokio::test]
async fn after_a_429_nothing_is_sent_until_the_announced_reset_then_the_request_succeeds() {
    let mock = MockServer::start().await;
    let script = Script::new(vec![
        error_envelope(
            429,
            "ThrottlerException",
            "CustomThrottlerGuard - Too many requests. Please try again later.",
        )
        .insert_header("X-RateLimit-Limit-Default", "120")
        .insert_header("X-RateLimit-Remaining-Default", "0")
        .insert_header("X-RateLimit-Reset-Default", "1"),
        success(json!([event_type(1)])).insert_header("X-RateLimit-Remaining-Default", "119"),
    ]);
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(script.clone())
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);

    let listing = berlin
        .client
        .list_all(&[], None)
        .await
        .expect("listing after the block");

    assert_eq!(listing.ids(), vec![EventTypeId(1)]);
    let arrivals = script.arrivals();
    assert_eq!(
        arrivals.len(),
        2,
        "one 429, then one request after the block"
    );
    let gap = arrivals[1] - arrivals[0];
    assert!(
        gap >= Duration::from_millis(900),
        "the retry came {gap:?} after the 429"
    );
    assert!(
        gap < Duration::from_millis(2_500),
        "the block is 1 s, not {gap:?}"
    );
    assert_eq!(berlin.requests("list_event_types", "429"), 1);
    assert_eq!(berlin.rate_limit_remaining(), 119);
}

/// Each retry and each 429 is one operator-visible event: its WARN line and its
/// counter come from the same `emit`, so the two always agree.
#[tokio::test]
async fn each_retry_and_each_429_writes_its_warn_line_and_counts_it() {
    let mock = MockServer::start().await;
    let script = Script::new(vec![
        ResponseTemplate::new(503),
        ResponseTemplate::new(429).insert_header("X-RateLimit-Reset-Default", "1"),
        success(json!([event_type(1)])),
    ]);
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(script.clone())
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);
    let logs = LogCapture::new();

    let listing = berlin
        .client
        .list_all(&[], None)
        .with_subscriber(logs.dispatch())
        .await
        .expect("listing after the retries");

    assert_eq!(listing.ids(), vec![EventTypeId(1)]);
    let text = logs.text();
    let retries: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Cal.com request failed; retrying with backoff."))
        .collect();
    assert_eq!(retries.len(), 2, "{text}");
    assert!(retries.iter().all(|l| l.contains(" WARN ")), "{text}");
    assert!(
        retries[0].contains("error=\"Cal.com answered HTTP 503"),
        "{text}"
    );
    assert!(
        retries[1].contains("error=\"HTTP 429 Too Many Requests\""),
        "a retry is not a give-up: {text}"
    );
    let limited: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Cal.com rate limit hit (HTTP 429)"))
        .collect();
    assert_eq!(limited.len(), 1, "{text}");
    assert!(
        limited[0].contains(" WARN ")
            && limited[0].contains("account=\"berlin\"")
            && limited[0].contains("endpoint=\"list_event_types\"")
            && limited[0].contains("wait_secs=1"),
        "{text}"
    );
    assert_eq!(
        berlin
            .metrics
            .calcom_retries_total
            .with_label_values(&[ACCOUNT])
            .get(),
        2
    );
    assert_eq!(
        berlin
            .metrics
            .calcom_rate_limited_total
            .with_label_values(&[ACCOUNT])
            .get(),
        1
    );
}

#[tokio::test]
async fn a_429_without_a_reset_header_blocks_the_key_for_60_seconds() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(ResponseTemplate::new(429))
        .mount(&mock)
        .await;
    let berlin = Berlin::with(&mock, |s| s.max_attempts = 1);

    let err = berlin
        .client
        .list_all(&[], None)
        .await
        .expect_err("rate limited");

    assert!(
        matches!(err, CalcomError::RateLimited { ref account, attempts: 1 } if account == ACCOUNT),
        "{err:?}"
    );
    let until = berlin
        .client
        .limiter()
        .blocked_until()
        .expect("the key is blocked");
    let ahead = until - tokio::time::Instant::now();
    assert!(
        ahead > Duration::from_secs(58) && ahead <= Duration::from_secs(60),
        "blocked for {ahead:?}"
    );
    assert_eq!(received(&mock).await.len(), 1);
    assert_keeps_the_key_secret(&err);
}

#[tokio::test]
async fn an_absurd_reset_header_blocks_the_key_for_at_most_an_hour() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(
            ResponseTemplate::new(429).insert_header("X-RateLimit-Reset-Default", "999999999"),
        )
        .mount(&mock)
        .await;
    let berlin = Berlin::with(&mock, |s| s.max_attempts = 1);

    berlin
        .client
        .list_all(&[], None)
        .await
        .expect_err("rate limited");

    let until = berlin
        .client
        .limiter()
        .blocked_until()
        .expect("the key is blocked");
    let ahead = until - tokio::time::Instant::now();
    assert!(
        ahead > Duration::from_secs(3590) && ahead <= Duration::from_secs(3600),
        "blocked for {ahead:?}"
    );
}

#[tokio::test]
async fn a_key_that_keeps_getting_429_gives_up_after_max_attempts() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("X-RateLimit-Remaining-Default", "0")
                .insert_header("X-RateLimit-Reset-Default", "1"),
        )
        .mount(&mock)
        .await;
    let berlin = Berlin::with(&mock, |s| s.max_attempts = 2);

    let err = berlin
        .client
        .list_all(&[], None)
        .await
        .expect_err("rate limited");

    assert!(
        matches!(err, CalcomError::RateLimited { ref account, attempts: 2 } if account == ACCOUNT),
        "{err:?}"
    );
    assert_eq!(received(&mock).await.len(), 2);
    assert!(err.to_string().contains(ACCOUNT), "{err}");
}

#[tokio::test]
async fn an_exhausted_quota_pauses_the_key_until_the_reset_even_without_a_429() {
    let mock = MockServer::start().await;
    // One script behind both paths: the listing gets the first answer, the get the
    // second, and the arrivals measure the pause between them.
    let script = Script::new(vec![
        success(json!([event_type(1)]))
            .insert_header("X-RateLimit-Remaining-Default", "0")
            .insert_header("X-RateLimit-Reset-Default", "1"),
        success(json!(event_type(1))).insert_header("X-RateLimit-Remaining-Default", "119"),
    ]);
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(script.clone())
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/event-types/1"))
        .respond_with(script.clone())
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);

    berlin.client.list_all(&[], None).await.expect("listing");
    assert_eq!(berlin.rate_limit_remaining(), 0);
    let until = berlin
        .client
        .limiter()
        .blocked_until()
        .expect("the key is paused");
    let ahead = until - tokio::time::Instant::now();
    assert!(
        ahead > Duration::from_millis(800) && ahead <= Duration::from_secs(1),
        "{ahead:?}"
    );

    let fetched = berlin
        .client
        .get(EventTypeId(1), None)
        .await
        .expect("get after the pause");

    assert_eq!(fetched.expect("valid record").id, EventTypeId(1));
    let arrivals = script.arrivals();
    assert_eq!(arrivals.len(), 2);
    let gap = arrivals[1] - arrivals[0];
    assert!(
        gap >= Duration::from_millis(900),
        "the next request came {gap:?} later"
    );
    assert_eq!(berlin.rate_limit_remaining(), 119);
}

#[tokio::test]
async fn the_remaining_quota_gauge_follows_the_latest_header() {
    let mock = MockServer::start().await;
    let script = Script::new(vec![
        success(json!([])).insert_header("X-RateLimit-Remaining-Default", "117"),
        success(json!([])).insert_header("X-RateLimit-Remaining-Default", "116"),
        // No header: the last reading stands.
        success(json!([])),
    ]);
    Mock::given(method("GET"))
        .and(path("/v2/teams/11/event-types"))
        .respond_with(script)
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(success(json!([])).insert_header("X-RateLimit-Remaining-Default", "118"))
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);

    berlin.client.list_all(&[], None).await.expect("listing");
    assert_eq!(berlin.rate_limit_remaining(), 118);
    berlin
        .client
        .list_all(&[11, 11], None)
        .await
        .expect("listing");
    assert_eq!(berlin.rate_limit_remaining(), 116);
    berlin.client.list_all(&[11], None).await.expect("listing");
    assert_eq!(
        berlin.rate_limit_remaining(),
        118,
        "the team list sent no header, so the personal list's reading stands"
    );
    let exported = berlin.metrics.encode();
    assert!(
        exported.contains(r#"calsync_calcom_rate_limit_remaining{account="berlin"} 118"#),
        "{exported}"
    );
}

// ---------------------------------------------------------------- bad answers

#[tokio::test]
async fn malformed_json_with_a_200_is_reported_as_malformed_and_not_retried() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"status":"success","data":[{"id":1,"title":"#,
            "application/json",
        ))
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);

    let err = berlin
        .client
        .list_all(&[], None)
        .await
        .expect_err("malformed");

    assert!(
        matches!(
            err,
            CalcomError::Malformed { status: 200, endpoint: "list_event_types", ref detail }
                if detail.starts_with("invalid JSON")
        ),
        "{err:?}"
    );
    assert_eq!(received(&mock).await.len(), 1);
    assert_keeps_the_key_secret(&err);
}

#[tokio::test]
async fn a_list_whose_data_is_not_an_array_is_malformed() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(success(json!({ "eventTypes": [] })))
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);

    let err = berlin
        .client
        .list_all(&[], None)
        .await
        .expect_err("malformed");

    assert!(
        matches!(err, CalcomError::Malformed { ref detail, .. } if detail.contains("an object instead of a list")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_listing_with_an_error_envelope_under_a_200_is_an_error_not_an_empty_list() {
    let mock = MockServer::start().await;
    let body = json!({
        "status": "error",
        "data": [],
        "error": { "code": "InternalServerErrorException", "message": "lost the database" }
    });
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);

    let err = berlin
        .client
        .list_all(&[], None)
        .await
        .expect_err("an error envelope must not read as an empty listing");

    assert!(
        matches!(err, CalcomError::Api { ref code, .. } if code == "InternalServerErrorException"),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_listing_envelope_with_unknown_fields_and_escapes_decodes_every_record() {
    let mock = MockServer::start().await;
    // What the one-pass reading cannot borrow (an escaped `status`) or does not
    // expect (fields beside `data`) must still decode, through the slower reading.
    let data = serde_json::to_string(&json!([event_type(81234), event_type(81235)])).unwrap();
    let body = format!(
        r#"{{"pagination":{{"total":2}},"status":"succ\u0065ss","data":{data},"meta":null}}"#
    );
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);

    let listing = berlin.client.list_all(&[], None).await.expect("listing");

    assert_eq!(listing.ids(), vec![EventTypeId(81234), EventTypeId(81235)]);
    assert!(
        listing.records.iter().all(Result::is_ok),
        "{:?}",
        listing.records
    );
}

#[tokio::test]
async fn an_html_page_from_a_proxy_is_a_server_error_that_says_html() {
    let mock = MockServer::start().await;
    let page = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>\
                <body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>";
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(ResponseTemplate::new(502).set_body_raw(page, "text/html"))
        .mount(&mock)
        .await;
    let berlin = Berlin::with(&mock, |s| s.max_attempts = 2);

    let err = berlin
        .client
        .list_all(&[], None)
        .await
        .expect_err("bad gateway");

    assert!(
        matches!(
            err,
            CalcomError::Server { status: 502, ref message, .. } if message.contains("HTML")
        ),
        "{err:?}"
    );
    let shown = err.to_string();
    assert!(
        !shown.contains("<html"),
        "the page itself is not repeated: {shown}"
    );
    assert!(
        !shown.contains("nginx"),
        "the page itself is not repeated: {shown}"
    );
    assert_eq!(received(&mock).await.len(), 2, "a 502 is retried");
    assert_keeps_the_key_secret(&err);
}

#[tokio::test]
async fn a_body_larger_than_the_limit_with_a_content_length_is_refused() {
    let mock = MockServer::start().await;
    let big: Vec<Value> = (1..=100).map(event_type).collect();
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(success(json!(big)))
        .mount(&mock)
        .await;
    let berlin = Berlin::with(&mock, |s| s.max_body_bytes = 4096);

    let err = berlin
        .client
        .list_all(&[], None)
        .await
        .expect_err("too large");

    assert!(
        matches!(
            err,
            CalcomError::BodyTooLarge {
                limit: 4096,
                endpoint: "list_event_types"
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("calcom.max_body_bytes"), "{err}");
    assert_eq!(
        received(&mock).await.len(),
        1,
        "an oversized body is not retried"
    );
    assert_eq!(berlin.requests("list_event_types", "body"), 1);
}

#[tokio::test]
async fn a_body_exactly_at_the_limit_is_read() {
    let mock = MockServer::start().await;
    let body = json!({ "status": "success", "data": [event_type(1)] }).to_string();
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body.clone(), "application/json"))
        .mount(&mock)
        .await;
    let berlin = Berlin::with(&mock, |s| s.max_body_bytes = body.len() as u64);

    let listing = berlin
        .client
        .list_all(&[], None)
        .await
        .expect("a body at the limit");

    assert_eq!(listing.ids(), vec![EventTypeId(1)]);
}

/// Reads one request's head (this client sends GETs without a body here).
async fn read_request_head(socket: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match socket.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
    }
    Some(head)
}

/// A bare HTTP/1.1 server on 127.0.0.1 that answers every request with a chunked
/// (no Content-Length) listing of `count` event types, in 512-byte chunks. Returns
/// its base URL and the number of requests it has read.
async fn chunked_listing_server(count: i64) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a local port");
    let base = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let body = json!({
        "status": "success",
        "data": (1..=count).map(event_type).collect::<Vec<_>>()
    })
    .to_string()
    .into_bytes();
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            let body = body.clone();
            tokio::spawn(async move {
                while read_request_head(&mut socket).await.is_some() {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let mut out = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                                    Transfer-Encoding: chunked\r\n\r\n"
                        .to_vec();
                    for chunk in body.chunks(512) {
                        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                        out.extend_from_slice(chunk);
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"0\r\n\r\n");
                    if socket.write_all(&out).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (base, requests)
}

#[tokio::test]
async fn a_chunked_body_without_content_length_is_cut_off_at_the_limit() {
    let (base, requests) = chunked_listing_server(40).await;
    let mut s = settings(&base);
    s.max_body_bytes = 4096;
    let berlin = Berlin::new(s);

    let err = berlin
        .client
        .list_all(&[], None)
        .await
        .expect_err("too large");

    assert!(
        matches!(
            err,
            CalcomError::BodyTooLarge {
                limit: 4096,
                endpoint: "list_event_types"
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        requests.load(Ordering::SeqCst),
        1,
        "an oversized body is not retried"
    );
}

#[tokio::test]
async fn a_chunked_body_within_the_limit_is_read_whole() {
    let (base, requests) = chunked_listing_server(40).await;
    let berlin = Berlin::new(settings(&base));

    let listing = berlin.client.list_all(&[], None).await.expect("listing");

    assert_eq!(listing.records.len(), 40);
    assert!(listing.records.iter().all(Result::is_ok));
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_rejected_key_names_the_account_and_is_not_retried() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(error_envelope(
            401,
            "UnauthorizedException",
            "ApiAuthStrategy - api key - Your api key is not valid",
        ))
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);

    let err = berlin
        .client
        .list_all(&[], None)
        .await
        .expect_err("unauthorized");

    assert!(
        matches!(
            err,
            CalcomError::Unauthorized { ref account, status: 401, ref message }
                if account == ACCOUNT && message.contains("Your api key is not valid")
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("account berlin"), "{err}");
    assert_eq!(received(&mock).await.len(), 1, "a bad key is not retried");
    assert_eq!(berlin.requests("list_event_types", "401"), 1);
    assert_keeps_the_key_secret(&err);
}

#[tokio::test]
async fn a_server_that_echoes_the_key_in_its_error_does_not_leak_it_into_the_error() {
    // Some gateways and WAFs repeat the credential they refused.
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(error_envelope(
            401,
            "UnauthorizedException",
            "Invalid API key: cal_live_testkey",
        ))
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);

    let err = berlin
        .client
        .list_all(&[], None)
        .await
        .expect_err("unauthorized");

    assert!(matches!(err, CalcomError::Unauthorized { .. }), "{err:?}");
    // A gateway may echo the credential it refused: the message is scrubbed before
    // it reaches the error (and so logs, the run journal and `sync_error`).
    assert_keeps_the_key_secret(&err);
}

#[tokio::test]
async fn an_error_envelope_on_400_surfaces_its_code_and_message() {
    let mock = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/v2/event-types/81234"))
        .respond_with(error_envelope(
            400,
            "BadRequestException",
            "lengthInMinutesOptions must include lengthInMinutes",
        ))
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);
    let patch = EventTypePatch {
        length_in_minutes: Some(45),
        ..EventTypePatch::default()
    };

    let err = berlin
        .client
        .update(EventTypeId(81234), None, &patch)
        .await
        .expect_err("bad request");

    assert!(
        matches!(
            err,
            CalcomError::Api { status: 400, endpoint: "update_event_type", ref code, ref message }
                if code == "BadRequestException"
                    && message == "lengthInMinutesOptions must include lengthInMinutes"
        ),
        "{err:?}"
    );
    let shown = err.to_string();
    assert!(shown.contains("BadRequestException"), "{shown}");
    assert!(
        shown.contains("lengthInMinutesOptions must include lengthInMinutes"),
        "{shown}"
    );
    assert_eq!(received(&mock).await.len(), 1, "a 400 is not retried");
    assert_keeps_the_key_secret(&err);
}

// ---------------------------------------------------------------- get and update

#[tokio::test]
async fn get_reads_one_event_type_and_a_404_means_it_is_gone() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/event-types/81234"))
        .and(header("cal-api-version", "2024-06-14"))
        .respond_with(success(event_type(81234)))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/teams/5/event-types/999"))
        .respond_with(error_envelope(
            404,
            "NotFoundException",
            "Event type with id 999 not found",
        ))
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);

    let found = berlin
        .client
        .get(EventTypeId(81234), None)
        .await
        .expect("get");
    let gone = berlin
        .client
        .get(EventTypeId(999), Some(TeamId(5)))
        .await
        .expect_err("gone");

    assert_eq!(found.expect("valid record").title, "Massage 81234");
    assert!(
        matches!(gone, CalcomError::EventTypeGone(EventTypeId(999))),
        "{gone:?}"
    );
    assert_eq!(berlin.requests("get_event_type", "200"), 1);
    assert_eq!(berlin.requests("get_event_type", "404"), 1);
}

#[tokio::test]
async fn an_update_sends_only_the_fields_that_are_set() {
    let mock = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/v2/event-types/81234"))
        .and(header("authorization", "Bearer cal_live_testkey"))
        .and(header("cal-api-version", "2024-06-14"))
        .and(header("content-type", "application/json"))
        .respond_with(success(event_type_with(
            81234,
            json!({ "title": "Deep-tissue massage", "lengthInMinutes": 45 }),
        )))
        .expect(1)
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);
    let patch = EventTypePatch {
        title: Some("Deep-tissue massage".into()),
        length_in_minutes: Some(45),
        ..EventTypePatch::default()
    };

    let stored = berlin
        .client
        .update(EventTypeId(81234), None, &patch)
        .await
        .expect("update")
        .expect("valid record");

    assert_eq!(stored.title, "Deep-tissue massage");
    assert_eq!(stored.length.get(), 45);
    let sent = received(&mock).await;
    let body: Value = sent[0].body_json().expect("a JSON body");
    assert_eq!(
        body,
        json!({ "title": "Deep-tissue massage", "lengthInMinutes": 45 })
    );
    assert_eq!(berlin.requests("update_event_type", "200"), 1);
    mock.verify().await;
}

#[tokio::test]
async fn an_update_of_every_owned_field_uses_the_camel_case_names() {
    let mock = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path("/v2/event-types/81234"))
        .respond_with(success(event_type(81234)))
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);
    let patch = EventTypePatch {
        title: Some("Massage".into()),
        description: Some(String::new()),
        length_in_minutes: Some(60),
        length_in_minutes_options: Some(vec![30, 60]),
        hidden: Some(true),
    };

    berlin
        .client
        .update(EventTypeId(81234), None, &patch)
        .await
        .expect("update")
        .expect("valid record");

    let body: Value = received(&mock).await[0].body_json().expect("a JSON body");
    assert_eq!(
        body,
        json!({
            "title": "Massage",
            "description": "",
            "lengthInMinutes": 60,
            "lengthInMinutesOptions": [30, 60],
            "hidden": true
        })
    );
}

#[tokio::test]
async fn a_team_event_type_is_updated_through_the_team_endpoint() {
    let mock = MockServer::start().await;
    // The team PATCH may answer with one item per child event type.
    Mock::given(method("PATCH"))
        .and(path("/v2/teams/5/event-types/81234"))
        .respond_with(success(json!([
            event_type_with(81234, json!({ "teamId": 5, "hidden": true })),
            event_type_with(81299, json!({ "teamId": 5 })),
        ])))
        .expect(1)
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);
    let patch = EventTypePatch {
        hidden: Some(true),
        ..EventTypePatch::default()
    };

    let stored = berlin
        .client
        .update(EventTypeId(81234), Some(TeamId(5)), &patch)
        .await
        .expect("update")
        .expect("valid record");

    assert_eq!(stored.id, EventTypeId(81234));
    assert_eq!(stored.team_id, Some(TeamId(5)));
    assert!(stored.hidden);
    let body: Value = received(&mock).await[0].body_json().expect("a JSON body");
    assert_eq!(body, json!({ "hidden": true }));
    assert_eq!(berlin.requests("update_team_event_type", "200"), 1);
    mock.verify().await;
}

#[tokio::test]
async fn updating_an_event_type_that_no_longer_exists_reports_it_gone() {
    let mock = MockServer::start().await;
    for p in ["/v2/event-types/404", "/v2/teams/5/event-types/405"] {
        Mock::given(method("PATCH"))
            .and(path(p))
            .respond_with(error_envelope(
                404,
                "NotFoundException",
                "Event type not found",
            ))
            .mount(&mock)
            .await;
    }
    let berlin = Berlin::at(&mock);
    let patch = EventTypePatch {
        title: Some("Massage".into()),
        ..EventTypePatch::default()
    };

    let personal = berlin
        .client
        .update(EventTypeId(404), None, &patch)
        .await
        .expect_err("gone");
    let team = berlin
        .client
        .update(EventTypeId(405), Some(TeamId(5)), &patch)
        .await
        .expect_err("gone");

    assert!(
        matches!(personal, CalcomError::EventTypeGone(EventTypeId(404))),
        "{personal:?}"
    );
    assert!(
        matches!(team, CalcomError::EventTypeGone(EventTypeId(405))),
        "{team:?}"
    );
    assert_eq!(received(&mock).await.len(), 2, "a 404 is not retried");
}

// ---------------------------------------------------------------- metrics

#[tokio::test]
async fn each_request_is_counted_by_endpoint_and_status() {
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/event-types"))
        .respond_with(success(json!([event_type(1)])))
        .mount(&mock)
        .await;
    let berlin = Berlin::at(&mock);
    assert_eq!(berlin.requests("list_event_types", "200"), 0);

    berlin.client.list_all(&[], None).await.expect("listing");
    berlin.client.list_all(&[], None).await.expect("listing");

    assert_eq!(berlin.requests("list_event_types", "200"), 2);
    let exported = berlin.metrics.encode();
    let line = exported
        .lines()
        .find(|l| {
            l.starts_with("calsync_calcom_requests_total{")
                && l.contains(&format!(r#"account="{ACCOUNT}""#))
                && l.contains(r#"endpoint="list_event_types""#)
                && l.contains(r#"code="200""#)
        })
        .unwrap_or_else(|| panic!("no request counter in {exported}"));
    assert!(line.ends_with(" 2"), "{line}");
}
