//! The HTTP client for Cal.com API v2: one [`CalcomClient`] (connection pool,
//! options, metrics) and one [`AccountClient`] per API key (its budget and block).
//!
//! Every request: waits for the key's budget, carries the bearer key and the
//! version header, is bounded by a timeout and a body size cap, and is retried with
//! exponential backoff and jitter on 5xx, timeouts, connection failures and 429
//! (after the block Cal.com announced has passed). Nothing else is retried.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use serde_json::value::RawValue;
use tracing::debug;

use super::error::CalcomError;
use super::limit::{DEFAULT_BLOCK, KeyLimiter};
use super::wire::{self, API_VERSION, Envelope, EventTypePatch, RecordError};
use crate::config::CalcomSettings;
use crate::domain::{EventType, EventTypeId, TeamId};
use crate::telemetry::events::{CalcomRateLimited, CalcomRequestRetried};
use crate::telemetry::metrics::Metrics;

/// Which call a request is: the `endpoint` label of request metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    ListEventTypes,
    ListTeamEventTypes,
    ListOrgEventTypes,
    GetEventType,
    UpdateEventType,
    UpdateTeamEventType,
    Me,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ListEventTypes => "list_event_types",
            Self::ListTeamEventTypes => "list_team_event_types",
            Self::ListOrgEventTypes => "list_org_event_types",
            Self::GetEventType => "get_event_type",
            Self::UpdateEventType => "update_event_type",
            Self::UpdateTeamEventType => "update_team_event_type",
            Self::Me => "get_me",
        }
    }
}

/// Org listings are paginated by `take` (at most 250).
const ORG_PAGE: usize = 250;
/// A safety stop for a server that never returns a short page.
const MAX_ORG_PAGES: usize = 4_000;

/// Shared by every account: the connection pool and the options.
#[derive(Clone)]
pub struct CalcomClient {
    http: reqwest::Client,
    settings: Arc<CalcomSettings>,
    metrics: Arc<Metrics>,
}

impl CalcomClient {
    pub fn new(settings: CalcomSettings, metrics: Arc<Metrics>) -> Result<Self, CalcomError> {
        // One TLS provider (ring) for the whole process; installing twice is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("calsync/", env!("CARGO_PKG_VERSION")))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| CalcomError::Transport {
                endpoint: "client",
                kind: "setup",
                at: String::new(),
                detail: e.without_url().to_string(),
            })?;
        Ok(Self {
            http,
            settings: Arc::new(settings),
            metrics,
        })
    }

    /// A client for one account's API key.
    pub fn account(&self, name: &str, api_key: SecretString) -> AccountClient {
        AccountClient {
            client: self.clone(),
            account: name.into(),
            api_key,
            limiter: Arc::new(KeyLimiter::new(self.settings.requests_per_minute)),
        }
    }
}

/// Everything an account's listing returned.
#[derive(Debug, Default)]
pub struct Listing {
    /// One entry per distinct event type id (or per unreadable item).
    pub records: Vec<Result<EventType, RecordError>>,
    /// Requests it took (for reports and benchmarks).
    pub requests: u32,
}

impl Listing {
    /// Every id the listing mentions, readable records or not.
    pub fn ids(&self) -> Vec<EventTypeId> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Ok(et) => Some(et.id),
                Err(e) => e.event_type_id,
            })
            .collect()
    }
}

/// One request of a call (each attempt sends it again).
struct Call<'a> {
    endpoint: Endpoint,
    method: Method,
    path: &'a str,
    query: &'a [(&'a str, String)],
    body: Option<&'a Value>,
}

/// The records of one listing answer, each decoded or refused on its own.
type Records = Vec<Result<EventType, RecordError>>;

/// Reads one answer (status and body) of a call.
type Decoder<'a, T> = dyn Fn(StatusCode, &[u8]) -> Result<T, CalcomError> + Sync + 'a;

/// The client of one Cal.com account (API key).
#[derive(Clone)]
pub struct AccountClient {
    client: CalcomClient,
    account: Arc<str>,
    api_key: SecretString,
    limiter: Arc<KeyLimiter>,
}

impl AccountClient {
    pub fn name(&self) -> &str {
        &self.account
    }

    pub fn limiter(&self) -> &KeyLimiter {
        &self.limiter
    }

    /// Personal event types, then each team's, then the organisation's (paged).
    /// Any source failing fails the whole listing: a partial listing must never be
    /// mistaken for a complete one (it would orphan services).
    pub async fn list_all(
        &self,
        team_ids: &[i64],
        org_id: Option<i64>,
    ) -> Result<Listing, CalcomError> {
        let mut listing = Listing::default();
        let mut seen = std::collections::HashSet::new();
        let mut push = |listing: &mut Listing, records: Records, team: Option<TeamId>| {
            for mut rec in records {
                if let (Ok(et), Some(team)) = (&mut rec, team)
                    && et.team_id.is_none()
                {
                    et.team_id = Some(team);
                }
                let id = match &rec {
                    Ok(et) => Some(et.id),
                    Err(e) => e.event_type_id,
                };
                if id.is_none_or(|id| seen.insert(id)) {
                    listing.records.push(rec);
                }
            }
        };

        let own = self
            .list(Endpoint::ListEventTypes, "/v2/event-types".into(), &[])
            .await?;
        listing.requests += 1;
        push(&mut listing, own, None);
        for team in team_ids {
            let page = self
                .list(
                    Endpoint::ListTeamEventTypes,
                    format!("/v2/teams/{team}/event-types"),
                    &[],
                )
                .await?;
            listing.requests += 1;
            push(&mut listing, page, Some(TeamId(*team)));
        }
        if let Some(org) = org_id {
            for page in 0..MAX_ORG_PAGES {
                let query = [
                    ("take", ORG_PAGE.to_string()),
                    ("skip", (page * ORG_PAGE).to_string()),
                ];
                let page = self
                    .list(
                        Endpoint::ListOrgEventTypes,
                        format!("/v2/organizations/{org}/teams/event-types"),
                        &query,
                    )
                    .await?;
                listing.requests += 1;
                let short = page.len() < ORG_PAGE;
                push(&mut listing, page, None);
                if short {
                    break;
                }
            }
        }
        Ok(listing)
    }

    async fn list(
        &self,
        endpoint: Endpoint,
        path: String,
        query: &[(&str, String)],
    ) -> Result<Records, CalcomError> {
        let decode = |status, bytes: &[u8]| self.listing(endpoint, status, bytes);
        match self
            .call_with(
                Call {
                    endpoint,
                    method: Method::GET,
                    path: &path,
                    query,
                    body: None,
                },
                &decode,
            )
            .await
        {
            Ok(records) => Ok(records),
            // An older server answered an empty personal list with its own 404
            // ("Event types not found"). Any other 404 (a proxy's page, a wrong
            // path prefix) is a failure: read as empty, it would orphan services.
            Err(CalcomError::Api {
                status: 404,
                code,
                message,
                ..
            }) if endpoint == Endpoint::ListEventTypes
                && code == "NotFoundException"
                && message
                    .to_ascii_lowercase()
                    .contains("event types not found") =>
            {
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    /// Who the key belongs to (`GET /v2/me`): `(user id, username)`. One request,
    /// to check a key works.
    pub async fn me(&self) -> Result<(i64, String), CalcomError> {
        let data = self
            .call(Endpoint::Me, Method::GET, "/v2/me", &[], None)
            .await?;
        let data: Value = serde_json::from_str(data.get()).unwrap_or(Value::Null);
        let id = data
            .get("id")
            .and_then(Value::as_i64)
            .ok_or_else(|| CalcomError::Malformed {
                endpoint: Endpoint::Me.as_str(),
                status: 200,
                detail: "`data.id` is missing".into(),
            })?;
        let username = data
            .get("username")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok((id, username))
    }

    /// One event type, as Cal.com has it now.
    pub async fn get(
        &self,
        id: EventTypeId,
        team: Option<TeamId>,
    ) -> Result<Result<EventType, RecordError>, CalcomError> {
        let path = match team {
            Some(t) => format!("/v2/teams/{t}/event-types/{id}"),
            None => format!("/v2/event-types/{id}"),
        };
        match self
            .call(Endpoint::GetEventType, Method::GET, &path, &[], None)
            .await
        {
            Ok(data) => Ok(decode_single(&data)),
            // Only Cal.com's own error envelope proves the event type is gone: a
            // proxy's 404 page (code "unknown") is a failure, not a deletion.
            Err(CalcomError::Api {
                status: 404, code, ..
            }) if code != "unknown" => Err(CalcomError::EventTypeGone(id)),
            Err(e) => Err(e),
        }
    }

    /// PATCHes the given fields and returns the event type as Cal.com stored it.
    pub async fn update(
        &self,
        id: EventTypeId,
        team: Option<TeamId>,
        patch: &EventTypePatch,
    ) -> Result<Result<EventType, RecordError>, CalcomError> {
        let (endpoint, path) = match team {
            Some(t) => (
                Endpoint::UpdateTeamEventType,
                format!("/v2/teams/{t}/event-types/{id}"),
            ),
            None => (Endpoint::UpdateEventType, format!("/v2/event-types/{id}")),
        };
        let body = serde_json::to_value(patch).unwrap_or(Value::Null);
        match self
            .call(endpoint, Method::PATCH, &path, &[], Some(&body))
            .await
        {
            Ok(data) => Ok(decode_single(&data)),
            Err(CalcomError::Api { status: 404, .. }) => Err(CalcomError::EventTypeGone(id)),
            Err(e) => Err(e),
        }
    }

    /// One logical call: budget, attempts with backoff, envelope decoding.
    async fn call(
        &self,
        endpoint: Endpoint,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Box<RawValue>, CalcomError> {
        let decode = |status, bytes: &[u8]| self.interpret(endpoint, status, bytes);
        let call = Call {
            endpoint,
            method,
            path,
            query,
            body,
        };
        self.call_with(call, &decode).await
    }

    /// [`Self::call`], each answer read by `decode` (which sees the status and
    /// the body, and turns error answers into [`CalcomError`]s).
    async fn call_with<T>(
        &self,
        call: Call<'_>,
        decode: &Decoder<'_, T>,
    ) -> Result<T, CalcomError> {
        let endpoint = call.endpoint;
        let settings = &self.client.settings;
        let attempts = settings.max_attempts.max(1);
        let backoff = ExponentialBuilder::default()
            .with_min_delay(settings.retry_initial_delay)
            .with_max_delay(Duration::from_secs(30))
            .with_max_times(attempts.saturating_sub(1) as usize)
            .with_jitter();
        let attempt = || self.attempt(&call, decode);
        let result = attempt
            .retry(backoff)
            .when(CalcomError::retryable)
            .notify(|e, wait| {
                // The error of this attempt: RateLimited's own message speaks of
                // giving up, which is only true once the attempts are spent.
                let error = match e {
                    CalcomError::RateLimited { .. } => "HTTP 429 Too Many Requests".to_owned(),
                    other => other.to_string(),
                };
                CalcomRequestRetried {
                    account: &self.account,
                    endpoint: endpoint.as_str(),
                    error: &error,
                    retry_in_ms: u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                }
                .emit(&self.client.metrics)
            })
            .await;
        match result {
            Err(CalcomError::RateLimited { account, .. }) => {
                Err(CalcomError::RateLimited { account, attempts })
            }
            other => other,
        }
    }

    async fn attempt<T>(&self, call: &Call<'_>, decode: &Decoder<'_, T>) -> Result<T, CalcomError> {
        let Call {
            endpoint,
            ref method,
            path,
            query,
            body,
        } = *call;
        self.limiter.acquire().await;
        let settings = &self.client.settings;
        // Appended, not joined: a base URL with a path prefix (a proxy) keeps it.
        let base = settings.base_url.as_str().trim_end_matches('/');
        let url =
            url::Url::parse(&format!("{base}{path}")).map_err(|e| CalcomError::Transport {
                endpoint: endpoint.as_str(),
                kind: "url",
                at: format!(" at {base} (calcom.base_url)"),
                detail: e.to_string(),
            })?;
        let mut request = self
            .client
            .http
            .request(method.clone(), url)
            .bearer_auth(self.api_key.expose_secret())
            .header("cal-api-version", API_VERSION)
            .header(reqwest::header::ACCEPT, "application/json");
        if !query.is_empty() {
            request = request.query(query);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let started = Instant::now();
        let outcome = self.exchange(endpoint, request).await;
        let code = match &outcome {
            Ok((status, _)) => status.as_u16().to_string(),
            Err(e) => transport_code(e).to_string(),
        };
        let m = &self.client.metrics;
        m.count_request(&self.account, endpoint.as_str(), &code);
        m.calcom_request_duration_seconds
            .with_label_values(&[endpoint.as_str()])
            .observe(started.elapsed().as_secs_f64());
        let (status, bytes) = outcome?;
        decode(status, &bytes)
    }

    /// Sends, reads rate-limit headers, and reads the body within the size cap.
    async fn exchange(
        &self,
        endpoint: Endpoint,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), CalcomError> {
        let transport = |e: reqwest::Error| {
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "body"
            };
            CalcomError::Transport {
                endpoint: endpoint.as_str(),
                kind,
                // The base URL carries no secret (the key travels in a header).
                at: format!(
                    " at {} (calcom.base_url)",
                    self.client.settings.base_url.as_str().trim_end_matches('/')
                ),
                detail: error_chain(&e.without_url()),
            }
        };
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        self.observe_rate_headers(endpoint, status, response.headers());
        let limit = self.client.settings.max_body_bytes;
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(CalcomError::BodyTooLarge {
                endpoint: endpoint.as_str(),
                limit,
            });
        }
        // Sized from the announced length (within the cap), so a large listing is
        // not copied again each time the buffer grows.
        let announced = response.content_length().unwrap_or(0).min(limit);
        let mut bytes = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if bytes.len() as u64 + chunk.len() as u64 > limit {
                return Err(CalcomError::BodyTooLarge {
                    endpoint: endpoint.as_str(),
                    limit,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok((status, bytes))
    }

    fn observe_rate_headers(
        &self,
        endpoint: Endpoint,
        status: StatusCode,
        headers: &reqwest::header::HeaderMap,
    ) {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        let remaining = number("x-ratelimit-remaining-default");
        // Seconds until the window resets or the block ends (bounded: a broken
        // header must not silence a key for hours).
        let reset =
            number("x-ratelimit-reset-default").map(|s| Duration::from_secs_f64(s.min(3600.0)));
        if let Some(r) = remaining {
            self.client
                .metrics
                .calcom_rate_limit_remaining
                .with_label_values(&[&*self.account])
                .set(r as i64);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            let wait = reset.filter(|d| !d.is_zero()).unwrap_or(DEFAULT_BLOCK);
            CalcomRateLimited {
                account: &self.account,
                endpoint: endpoint.as_str(),
                wait_secs: wait.as_secs(),
            }
            .emit(&self.client.metrics);
            self.limiter.block_for(wait);
        } else if remaining == Some(0.0) {
            let wait = reset.unwrap_or(DEFAULT_BLOCK);
            debug!(account = %self.account, wait_secs = wait.as_secs(), "Cal.com quota used up; pausing this key until it resets.");
            self.limiter.block_for(wait);
        }
    }

    /// A listing's answer: its records, each decoded (a record typed decoding
    /// refuses is a [`RecordError`] naming it). A success body is decoded in
    /// one pass ([`wire::TypedListing`]); one with a record that needs the
    /// lenient decoding is split into its records first
    /// ([`wire::ListEnvelope`]); anything else goes through
    /// [`Self::interpret`], which names what is wrong.
    fn listing(
        &self,
        endpoint: Endpoint,
        status: StatusCode,
        bytes: &[u8],
    ) -> Result<Records, CalcomError> {
        let decode_all = |items: Vec<&RawValue>| {
            items
                .into_iter()
                .enumerate()
                .map(|(pos, item)| wire::event_type_from_raw(item, pos))
                .collect()
        };
        if status.is_success() {
            // Checked as UTF-8 once, as a whole: read as text, serde_json does
            // not check again each string (every key) it meets.
            if let Ok(text) = std::str::from_utf8(bytes)
                && let Ok(listing) = serde_json::from_str::<wire::TypedListing<'_>>(text)
                && let Some(records) = listing.records()
            {
                return Ok(records);
            }
            if let Ok(envelope) = serde_json::from_slice::<wire::ListEnvelope<'_>>(bytes)
                && envelope.status != Some("error")
            {
                return Ok(decode_all(envelope.data));
            }
        }
        let data = self.interpret(endpoint, status, bytes)?;
        Ok(decode_all(items(endpoint, &data)?))
    }

    fn interpret(
        &self,
        endpoint: Endpoint,
        status: StatusCode,
        bytes: &[u8],
    ) -> Result<Box<RawValue>, CalcomError> {
        let envelope: Option<Envelope> = serde_json::from_slice(bytes).ok();
        let message = || {
            let raw = envelope
                .as_ref()
                .and_then(|e| e.error.as_ref())
                .and_then(|e| e.message.clone())
                .unwrap_or_else(|| describe_non_json(bytes));
            self.scrub(&raw)
        };
        let ep = endpoint.as_str();
        match status.as_u16() {
            200..=299 => {
                let envelope = envelope.ok_or_else(|| CalcomError::Malformed {
                    endpoint: ep,
                    status: status.as_u16(),
                    detail: describe_non_json(bytes),
                })?;
                if envelope.status.as_deref() == Some("error") {
                    return Err(CalcomError::Api {
                        endpoint: ep,
                        status: status.as_u16(),
                        code: envelope.error.and_then(|e| e.code).unwrap_or_default(),
                        message: "error envelope with a success status".into(),
                    });
                }
                envelope.data.ok_or_else(|| CalcomError::Malformed {
                    endpoint: ep,
                    status: status.as_u16(),
                    detail: "no `data` in the response".into(),
                })
            }
            401 => Err(CalcomError::Unauthorized {
                account: self.account.to_string(),
                status: 401,
                message: message(),
            }),
            429 => Err(CalcomError::RateLimited {
                account: self.account.to_string(),
                attempts: 0,
            }),
            408 | 500..=599 => Err(CalcomError::Server {
                endpoint: ep,
                status: status.as_u16(),
                message: message(),
            }),
            s => Err(CalcomError::Api {
                endpoint: ep,
                status: s,
                code: envelope
                    .as_ref()
                    .and_then(|e| e.error.as_ref())
                    .and_then(|e| e.code.clone())
                    .unwrap_or_else(|| "unknown".into()),
                message: message(),
            }),
        }
    }
}

impl AccountClient {
    /// A server message made safe to log: a gateway may echo the credential it
    /// refused, and a message may be long.
    fn scrub(&self, message: &str) -> String {
        let key = self.api_key.expose_secret();
        let cleaned = if key.is_empty() {
            message.to_owned()
        } else {
            message.replace(key, "[redacted]")
        };
        let mut short: String = cleaned.chars().take(300).collect();
        if short.len() < cleaned.len() {
            short.push('…');
        }
        short
    }
}

fn decode_single(data: &RawValue) -> Result<EventType, RecordError> {
    // The team PATCH may answer with an array (one item per child).
    match serde_json::from_str::<Vec<&RawValue>>(data.get()) {
        Ok(items) => match items.first() {
            Some(item) => wire::event_type_from_raw(item, 0),
            None => wire::event_type_from_value(&Value::Null, 0),
        },
        Err(_) => wire::event_type_from_raw(data, 0),
    }
}

/// The records of a listing's `data`, each left undecoded.
fn items(endpoint: Endpoint, data: &RawValue) -> Result<Vec<&RawValue>, CalcomError> {
    serde_json::from_str::<Vec<&RawValue>>(data.get()).map_err(|_| {
        let kind = serde_json::from_str::<Value>(data.get()).map_or("a scalar", |v| json_kind(&v));
        CalcomError::Malformed {
            endpoint: endpoint.as_str(),
            status: 200,
            detail: format!("`data` is {kind} instead of a list"),
        }
    })
}

fn transport_code(e: &CalcomError) -> &'static str {
    match e {
        CalcomError::Transport { kind, .. } => kind,
        CalcomError::BodyTooLarge { .. } => "body",
        _ => "other",
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "an object",
        Value::String(_) => "a string",
        Value::Null => "null",
        _ => "a scalar",
    }
}

/// A short, safe description of a body that is not JSON (e.g. a proxy's HTML page).
fn describe_non_json(bytes: &[u8]) -> String {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).to_ascii_lowercase();
    if head.contains("<html") || head.contains("<!doctype") {
        "an HTML page (probably from a proxy or load balancer), not Cal.com's JSON".into()
    } else if bytes.is_empty() {
        "an empty body".into()
    } else {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(_) => "JSON without the expected envelope".into(),
            Err(e) => format!("invalid JSON ({} bytes): {e}", bytes.len()),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
