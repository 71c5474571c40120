//! The HTTP/1 server: accepts connections until shutdown and passes each
//! request through the same gates as Cal.com, in order: injected faults, the
//! throttler (which also rejects unknown `cal_` keys), body limits, then the
//! routes. It records every `/v2` request in the log. It must never hold a
//! state lock across an await.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{HeaderMap, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Shared;
use super::admin;
use super::envelope::{ApiError, SimBody};
use super::faults::{self, FaultKind};
use super::routes::{self, ApiRequest, Caller};

/// Request bodies larger than this get 413.
const MAX_REQUEST_BODY: usize = 1024 * 1024;

/// How long open connections get to finish their response after shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                tasks.spawn(connection(stream, peer, shared.clone(), stop.clone()));
            }
            Err(error) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(%error, "simulator: accept failed; retrying shortly.");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let service = service_fn(move |req| {
        let shared = shared.clone();
        async move { dispatch(&shared, req, peer).await }
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                // Expected for Reset and Truncated faults and for clients that hang up.
                tracing::debug!(%error, %peer, "simulator connection ended with an error");
            }
        }
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, conn.as_mut()).await;
        }
    }
}

/// Returned instead of a response to make hyper drop the connection unanswered.
#[derive(Debug, thiserror::Error)]
#[error("connection reset by an injected fault")]
pub(crate) struct ResetByFault;

async fn dispatch(
    shared: &Shared,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<SimBody>, ResetByFault> {
    let path = req.uri().path().to_owned();
    if path == "/_sim" || path.starts_with("/_sim/") {
        let (parts, body) = req.into_parts();
        let response = match read_body(body, &parts.headers).await {
            Ok(body) => admin::handle(shared, &parts.method, &path, &body),
            Err(error) => error.into_response(&path),
        };
        return Ok(response);
    }
    if path != "/v2" && !path.starts_with("/v2/") {
        return Ok(
            ApiError::not_found(format!("Cannot {} {path}", req.method())).into_response(&path),
        );
    }

    let method = req.method().clone();
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |p| p.as_str().to_owned());
    let bearer = bearer_token(req.headers());
    let user_id = bearer.as_deref().and_then(|key| shared.user_id(key));

    if let Some(kind) = shared
        .faults
        .take(method.as_str(), &path_and_query, bearer.as_deref())
    {
        match kind {
            FaultKind::Delay { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
            FaultKind::Reset => {
                shared
                    .log
                    .record(method.as_str(), &path_and_query, user_id, 0);
                return Err(ResetByFault);
            }
            kind => {
                let response = faults::response_for(&kind, &path_and_query);
                shared.log.record(
                    method.as_str(),
                    &path_and_query,
                    user_id,
                    response.status().as_u16(),
                );
                return Ok(response);
            }
        }
    }

    // Cal.com throttles per credential, falling back to the client address.
    let tracker = bearer
        .clone()
        .unwrap_or_else(|| format!("ip:{}", peer.ip()));
    let verdict = shared.limiter.hit(&tracker);
    let mut response = if !verdict.allowed {
        ApiError::too_many_requests().into_response(&path_and_query)
    } else if user_id.is_none() && bearer.as_deref().is_some_and(|b| b.starts_with("cal_")) {
        // The throttler looks the key up to find its limits and fails first.
        ApiError::unauthorized("CustomThrottlerGuard - Invalid API Key")
            .into_response(&path_and_query)
    } else {
        let caller = match (&bearer, user_id) {
            (_, Some(id)) => Caller::User(id),
            (Some(_), None) => Caller::UnknownToken,
            (None, None) => Caller::Anonymous,
        };
        let (parts, body) = req.into_parts();
        match read_body(body, &parts.headers).await {
            Err(error) => error.into_response(&path_and_query),
            Ok(body) => {
                let request = ApiRequest {
                    method: &parts.method,
                    path: &path,
                    query: parts.uri.query(),
                    version: parts
                        .headers
                        .get("cal-api-version")
                        .and_then(|v| v.to_str().ok()),
                    caller,
                    body,
                };
                routes::v2(shared, &request)
                    .unwrap_or_else(|error| error.into_response(&path_and_query))
            }
        }
    };
    verdict.write_headers(response.headers_mut());
    let request_id = format!("{:016x}", rand::random::<u64>());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    shared.log.record(
        method.as_str(),
        &path_and_query,
        user_id,
        response.status().as_u16(),
    );
    Ok(response)
}

/// The token after `Bearer `, or the whole header as Cal.com does when the
/// scheme is missing.
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let token = raw.strip_prefix("Bearer ").unwrap_or(raw).trim();
    (!token.is_empty()).then(|| token.to_owned())
}

async fn read_body(body: Incoming, headers: &HeaderMap) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REQUEST_BODY as u64) {
        return Err(ApiError::payload_too_large());
    }
    match Limited::new(body, MAX_REQUEST_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::payload_too_large())
        }
        Err(_) => Err(ApiError::bad_request("could not read the request body")),
    }
}
