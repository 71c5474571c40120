//! The HTTP surface of `calsync run` (hyper 1): `/metrics`, `/healthz`, `/readyz`,
//! the operator API under `/api/v1/` and the console under `/console/` (both
//! enabled only with `server.admin_token`; the console is [`crate::console`]).
//!
//! Every request has bounded headers and body and a read timeout; every error is
//! JSON. The admin token is compared in constant time and never echoed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::console::{self, Console};
use crate::daemon::{Daemon, DecideRefused, PushRefused};
use crate::domain::{Field, ServiceId, visibility_label};
use crate::reconcile::ManualPushError;
use crate::store::{DriftRecord, DriftState};
use crate::telemetry::events::HttpAcceptFailed;

/// Body of `POST /api/v1/services/{id}/adopt` and `…/unacknowledge` (the CLI's
/// `--field` and `--note`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideBody {
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    note: Option<String>,
}

/// Body of `POST /api/v1/services/{id}/acknowledge` (`--for` or `--until`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    until: Option<String>,
    #[serde(default)]
    note: Option<String>,
}

/// Body of `POST /api/v1/accounts/{name}/approve`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveBody {
    #[serde(default)]
    note: Option<String>,
}

/// Parses a JSON body (an empty body is `{}`), naming what is wrong.
fn body<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes).map_err(|e| format!("request body: {e}"))
}

fn fields(names: &[String]) -> Result<Vec<Field>, String> {
    names
        .iter()
        .map(|n| crate::cli::parse_field(n).map_err(|e| format!("fields: {n:?} is {e}")))
        .collect()
}

/// Request bodies above this are refused (the API takes no large input).
const MAX_BODY_BYTES: usize = 64 * 1024;
const MAX_HEADER_BYTES: usize = 16 * 1024;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

type Body = Full<Bytes>;

/// Binds `addr` and serves until `shutdown` is cancelled.
pub async fn serve(
    addr: SocketAddr,
    daemon: Arc<Daemon>,
    shutdown: CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("server.listen {addr}: cannot bind: {e}"))?;
    let local = listener.local_addr()?;
    // The console's sessions live as long as the server.
    let console = Arc::new(Console::default());
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        HttpAcceptFailed { error: &e.to_string() }.emit(daemon.metrics());
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let daemon = daemon.clone();
            let console = console.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let daemon = daemon.clone();
                    let console = console.clone();
                    async move { Ok::<_, Infallible>(route(req, &daemon, &console).await) }
                });
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .max_buf_size(MAX_HEADER_BYTES.max(8192))
                    .serve_connection(TokioIo::new(stream), service);
                tokio::pin!(conn);
                tokio::select! {
                    r = conn.as_mut() => if let Err(e) = r { debug!(error = %e, "HTTP connection ended with an error.") },
                    _ = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
                }
            });
        }
    });
    Ok(local)
}

fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        .header("cache-control", "no-store")
        .body(Full::new(body.into()))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn json_response(status: StatusCode, value: &Value) -> Response<Body> {
    respond(
        status,
        "application/json",
        serde_json::to_vec(value).unwrap_or_default(),
    )
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json_response(status, &json!({ "error": message }))
}

async fn route(req: Request<Incoming>, daemon: &Daemon, console: &Console) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match (&method, path.as_str()) {
        (&Method::GET, "/metrics") => {
            // Readiness is exported as `calsync_ready`, fresh at every scrape.
            let _ = daemon.readiness().await;
            respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                daemon.metrics().encode(),
            )
        }
        (&Method::GET, "/healthz") => json_response(StatusCode::OK, &json!({"status": "alive"})),
        (&Method::GET, "/readyz") => match daemon.readiness().await {
            Ok(detail) => json_response(
                StatusCode::OK,
                &json!({"status": "ready", "role": daemon.role().as_str(), "detail": detail}),
            ),
            Err(reason) => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "not ready", "role": daemon.role().as_str(), "reason": reason}),
            ),
        },
        (_, p) if p.starts_with("/api/v1/") => api(req, daemon, &method, &path).await,
        (_, p) if console::is_console_path(p) => console::handle(req, daemon, console).await,
        (_, "/metrics" | "/healthz" | "/readyz") => {
            error(StatusCode::METHOD_NOT_ALLOWED, "use GET")
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "no such endpoint; try /metrics, /healthz, /readyz, /api/v1/ or /console/",
        ),
    }
}

fn authorized(req: &Request<Incoming>, daemon: &Daemon) -> Result<(), Box<Response<Body>>> {
    let Some(token) = daemon.admin_token() else {
        return Err(Box::new(error(
            StatusCode::NOT_FOUND,
            "the operator API is disabled; set server.admin_token or server.admin_token_file",
        )));
    };
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let expected = token.expose_secret().as_bytes();
    if bool::from(presented.as_bytes().ct_eq(expected)) {
        Ok(())
    } else {
        Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <server.admin_token>)",
        )))
    }
}

async fn api(
    req: Request<Incoming>,
    daemon: &Daemon,
    method: &Method,
    path: &str,
) -> Response<Body> {
    if let Err(denied) = authorized(&req, daemon) {
        return *denied;
    }
    let query = req.uri().query().unwrap_or_default().to_owned();
    // Bounded body, even where none is expected.
    let raw = match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
    };
    let segments: Vec<&str> = path.trim_start_matches("/api/v1/").split('/').collect();
    match (method, segments.as_slice()) {
        (&Method::GET, ["drift"]) => {
            let state = url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.into_owned());
            let state = match state.as_deref() {
                None => DriftState::Open,
                Some(v) => match DriftState::parse(v) {
                    Some(s) => s,
                    None => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            &format!("state {v:?} is not one of open, acknowledged, closed, all"),
                        );
                    }
                },
            };
            match daemon.drift(state).await {
                Ok(v) => json_response(StatusCode::OK, &v),
                Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e),
            }
        }
        (&Method::POST, ["reconcile"]) => match daemon.reconcile_now().await {
            Ok(report) => json_response(
                StatusCode::OK,
                &serde_json::to_value(report).unwrap_or_default(),
            ),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e),
        },
        (&Method::GET, ["services", id]) => match id.parse::<i64>() {
            Ok(id) => service_status(daemon, ServiceId(id)).await,
            Err(_) => error(StatusCode::BAD_REQUEST, "service id must be a number"),
        },
        (&Method::POST, ["services", id, "push"]) => match id.parse::<i64>() {
            Ok(id) => match daemon.push(ServiceId(id)).await {
                Ok(done) => json_response(
                    StatusCode::OK,
                    &serde_json::to_value(done).unwrap_or_default(),
                ),
                Err(e) => error(push_status(&e), &e.to_string()),
            },
            Err(_) => error(StatusCode::BAD_REQUEST, "service id must be a number"),
        },
        (&Method::GET, ["decisions"]) => match daemon.decisions().await {
            Ok(v) => json_response(StatusCode::OK, &v),
            Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e),
        },
        (
            &Method::POST,
            [
                "services",
                id,
                action @ ("adopt" | "acknowledge" | "unacknowledge"),
            ],
        ) => {
            let Ok(id) = id.parse::<i64>() else {
                return error(StatusCode::BAD_REQUEST, "service id must be a number");
            };
            let done = match decide(daemon, ServiceId(id), action, &raw).await {
                Ok(done) => done,
                Err(response) => return *response,
            };
            match done {
                Ok(outcome) => json_response(
                    StatusCode::OK,
                    &serde_json::to_value(outcome).unwrap_or_default(),
                ),
                Err(e) => error(decide_status(&e), &e.to_string()),
            }
        }
        (&Method::POST, ["accounts", name, "approve"]) => {
            let b: ApproveBody = match body(&raw) {
                Ok(b) => b,
                Err(e) => return error(StatusCode::BAD_REQUEST, &e),
            };
            match daemon.approve(name, b.note, crate::daemon::BY_API).await {
                Ok(outcome) => json_response(
                    StatusCode::OK,
                    &serde_json::to_value(outcome).unwrap_or_default(),
                ),
                Err(e) => error(decide_status(&e), &e.to_string()),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "no such operator endpoint"),
    }
}

type Decided = Result<crate::reconcile::DecisionOutcome, DecideRefused>;

/// Runs a decision on one service from its JSON body; a malformed body is a 400
/// naming the problem.
async fn decide(
    daemon: &Daemon,
    id: ServiceId,
    action: &str,
    raw: &[u8],
) -> Result<Decided, Box<Response<Body>>> {
    let bad = |e: String| Box::new(error(StatusCode::BAD_REQUEST, &e));
    match action {
        "acknowledge" => {
            let b: AckBody = body(raw).map_err(bad)?;
            let f = fields(&b.fields).map_err(bad)?;
            let until = match (b.for_.as_deref(), b.until.as_deref()) {
                (Some(d), None) => {
                    let d = crate::cli::parse_for(d).map_err(|e| bad(format!("for: {e}")))?;
                    chrono::Utc::now().naive_utc()
                        + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
                }
                (None, Some(t)) => crate::cli::parse_until(t)
                    .map_err(|e| bad(format!("until: {e}")))?
                    .naive_utc(),
                _ => {
                    return Err(bad(
                        "give exactly one of \"for\" (e.g. \"7d\") or \"until\" (RFC 3339)".into(),
                    ));
                }
            };
            Ok(daemon
                .acknowledge(id, &f, until, b.note, crate::daemon::BY_API)
                .await)
        }
        "unacknowledge" => {
            let b: DecideBody = body(raw).map_err(bad)?;
            let f = fields(&b.fields).map_err(bad)?;
            Ok(daemon
                .unacknowledge(id, &f, b.note, crate::daemon::BY_API)
                .await)
        }
        _ => {
            let b: DecideBody = body(raw).map_err(bad)?;
            let f = fields(&b.fields).map_err(bad)?;
            Ok(daemon.adopt(id, &f, b.note, crate::daemon::BY_API).await)
        }
    }
}

/// The HTTP status of a refused decision.
fn decide_status(e: &DecideRefused) -> StatusCode {
    match e {
        DecideRefused::NotConnected => StatusCode::SERVICE_UNAVAILABLE,
        DecideRefused::NoSuchAccount(_) => StatusCode::NOT_FOUND,
        DecideRefused::Decision(d) if d.not_found() => StatusCode::NOT_FOUND,
        DecideRefused::Decision(d) if d.refused() => StatusCode::CONFLICT,
        DecideRefused::Decision(_) => StatusCode::BAD_GATEWAY,
    }
}

/// The HTTP status of a refused push.
fn push_status(e: &PushRefused) -> StatusCode {
    match e {
        PushRefused::NotConnected => StatusCode::SERVICE_UNAVAILABLE,
        PushRefused::Push(ManualPushError::NoSuchService(_)) => StatusCode::NOT_FOUND,
        PushRefused::Push(ManualPushError::NotLinked(_) | ManualPushError::NoAccount { .. }) => {
            StatusCode::CONFLICT
        }
        PushRefused::Push(_) => StatusCode::BAD_GATEWAY,
    }
}

/// What the platform's status tooltip needs.
async fn service_status(daemon: &Daemon, id: ServiceId) -> Response<Body> {
    let Some(store) = daemon.store() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is not connected yet",
        );
    };
    let linked = match store.service(id).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                &format!("service {id} does not exist"),
            );
        }
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let drift = match store.drift_for_service(id).await {
        Ok(d) => d
            .into_iter()
            .map(|entry| DriftRecord {
                entry,
                resolved_at: None,
                resolution: None,
            })
            .collect::<Vec<_>>(),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let last_verified = match store.last_verified(&[id]).await {
        Ok(v) => v.get(&id).copied(),
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let decisions = match store.decisions(Some(id), None, 100).await {
        Ok(d) => d,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
    };
    let settings = daemon.settings();
    let account = linked
        .registry
        .as_ref()
        .and_then(|r| settings.account(&r.account))
        .or_else(|| {
            settings
                .accounts
                .iter()
                .find(|a| a.company_id == linked.service.company_id)
        });
    let ownership = account.map_or(settings.policy.ownership, |a| a.ownership);
    let now = chrono::Utc::now().naive_utc();
    let acknowledged: Vec<DriftRecord> = drift
        .iter()
        .filter(|r| r.entry.acknowledged_at(now))
        .cloned()
        .collect();
    let push = linked.push_state.as_ref().map(|p| {
        json!({
            "attempts": p.attempts,
            "next_attempt_at": p.next_attempt_at.and_utc().to_rfc3339(),
            "needs_human": p.needs_human,
            "last_error": p.last_error,
        })
    });
    let s = linked.service;
    json_response(
        StatusCode::OK,
        &json!({
            "service_id": s.id,
            "name": s.values.name,
            "bookable": s.values.bookable(),
            "visibility": visibility_label(s.values.bookable()),
            "sync_status": s.sync_status,
            "sync_direction": "platform → Cal.com",
            "last_calcom_sync": s.last_calcom_sync.map(|t| t.and_utc().to_rfc3339()),
            "last_verified_at": last_verified.or(s.last_calcom_sync).map(|t| t.and_utc().to_rfc3339()),
            "calcom_event_type_id": s.calcom_event_type_id,
            "account": linked.registry.as_ref().map(|r| r.account.clone()),
            "last_error": s.sync_error,
            "ownership": ownership,
            "open_drift": crate::app::drift_json(&drift, &decisions),
            "acknowledged_drift": crate::app::drift_json(&acknowledged, &decisions),
            "push_backoff": push,
            "needs_human": push.as_ref().is_some_and(|p| p["needs_human"] == true),
            "decisions": decisions.iter().map(crate::app::decision_json).collect::<Vec<_>>(),
        }),
    )
}
