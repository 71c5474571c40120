//! Injected failures: what can go wrong between calsync and Cal.com (error
//! statuses, broken or endless bodies, proxies answering HTML, dropped
//! connections, slowness). This file owns the fault book and the bodies faults
//! send; a faulted request never reaches the routes, so it never changes state.

use std::sync::Mutex;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde::{Deserialize, Serialize};

use super::envelope::{ApiError, JSON_UTF8, SimBody, full, json_response};

/// One injected failure: which `/v2` requests it hits and what they get.
///
/// JSON form (for `POST /_sim/faults`): `{"method":"PATCH","path_prefix":
/// "/v2/event-types","api_key":"…","kind":{"type":"status","status":503},
/// "times":2}`; camelCase keys (`pathPrefix`, `apiKey`) are accepted too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// HTTP method to match (any when absent), compared case-insensitively.
    #[serde(default)]
    pub method: Option<String>,
    /// Prefix of the request path (including any query) to match.
    #[serde(default, alias = "pathPrefix")]
    pub path_prefix: Option<String>,
    /// Bearer token to match; the fault hits only that key's requests.
    #[serde(default, alias = "apiKey")]
    pub api_key: Option<String>,
    pub kind: FaultKind,
    /// How many matching requests the fault affects; 0 means until cleared.
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

/// What a faulted request receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FaultKind {
    /// This status with `body` verbatim, or Cal.com's error envelope for it.
    Status {
        status: u16,
        #[serde(default)]
        body: Option<String>,
    },
    /// 200 with a JSON content type and a body that does not parse.
    #[serde(alias = "malformedJson")]
    MalformedJson,
    /// Declares a Content-Length larger than what it sends, then closes.
    Truncated,
    /// 200 streaming a plausible JSON prefix exactly `bytes` long, generated as it
    /// is sent (never held in memory), with no Content-Length.
    #[serde(alias = "hugeBody")]
    HugeBody { bytes: u64 },
    /// A reverse proxy's HTML error page with this status.
    Html { status: u16 },
    /// Closes the connection without any response.
    Reset,
    /// Waits this long, then answers normally.
    Delay { ms: u64 },
}

impl Fault {
    /// A fault of this kind hitting the next matching request (any method, path
    /// and key until narrowed with the builder methods).
    pub fn new(kind: FaultKind) -> Fault {
        Fault {
            method: None,
            path_prefix: None,
            api_key: None,
            kind,
            times: 1,
        }
    }

    pub fn method(mut self, method: &str) -> Fault {
        self.method = Some(method.to_owned());
        self
    }

    pub fn path_prefix(mut self, prefix: &str) -> Fault {
        self.path_prefix = Some(prefix.to_owned());
        self
    }

    pub fn api_key(mut self, key: &str) -> Fault {
        self.api_key = Some(key.to_owned());
        self
    }

    /// Number of matching requests to affect; 0 keeps the fault until cleared.
    pub fn times(mut self, times: u32) -> Fault {
        self.times = times;
        self
    }

    fn matches(&self, method: &str, path_and_query: &str, bearer: Option<&str>) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path_and_query.starts_with(p))
            && self.api_key.as_deref().is_none_or(|k| Some(k) == bearer)
    }
}

/// Injected faults in injection order; the first match wins.
#[derive(Default)]
pub(crate) struct FaultBook {
    active: Mutex<Vec<ActiveFault>>,
}

struct ActiveFault {
    fault: Fault,
    /// `None` = until cleared.
    left: Option<u32>,
}

impl FaultBook {
    pub fn inject(&self, fault: Fault) {
        let left = (fault.times > 0).then_some(fault.times);
        self.lock().push(ActiveFault { fault, left });
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Consumes one use of the first fault matching this request.
    pub fn take(
        &self,
        method: &str,
        path_and_query: &str,
        bearer: Option<&str>,
    ) -> Option<FaultKind> {
        let mut active = self.lock();
        if active.is_empty() {
            return None;
        }
        let index = active
            .iter()
            .position(|a| a.fault.matches(method, path_and_query, bearer))?;
        let kind = active[index].fault.kind.clone();
        if let Some(left) = active[index].left.as_mut() {
            *left -= 1;
            if *left == 0 {
                active.remove(index);
            }
        }
        Some(kind)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ActiveFault>> {
        // A panic while holding this lock cannot leave the Vec half-updated.
        self.active
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The start of a believable list response, shared by the broken-body faults.
const LIST_PREFIX: &str = r#"{"status":"success","data":[{"id":81234,"ownerId":4021,"title":"Deep-tissue massage","slug":"deep-tissue-60","description":"Sixty minute session","lengthInMinutes":60,"hidden":false,"price":9000,"currency":"eur""#;

/// The response for a fault that answers (everything but `Reset` and `Delay`).
pub(crate) fn response_for(kind: &FaultKind, path: &str) -> Response<SimBody> {
    match kind {
        FaultKind::Status { status, body } => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            match body {
                Some(body) => {
                    let is_json = serde_json::from_str::<serde_json::Value>(body).is_ok();
                    let mut response = Response::new(full(body.clone()));
                    *response.status_mut() = status;
                    let content_type = if is_json {
                        JSON_UTF8
                    } else {
                        "text/plain; charset=utf-8"
                    };
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
                    response
                }
                None => ApiError::for_status(status).into_response(path),
            }
        }
        FaultKind::MalformedJson => json_response(
            StatusCode::OK,
            format!("{LIST_PREFIX},\"metadata\":{{\"apps\":{{\"stripe\":}}}}]}}"),
        ),
        FaultKind::Truncated => truncated(),
        FaultKind::HugeBody { bytes } => huge(*bytes),
        FaultKind::Html { status } => {
            html(StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY))
        }
        // Neither answers: the server handles both before asking for a response.
        FaultKind::Reset | FaultKind::Delay { .. } => {
            ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response(path)
        }
    }
}

fn truncated() -> Response<SimBody> {
    let sent = Bytes::from_static(LIST_PREFIX.as_bytes());
    let declared = sent.len() + 4096;
    let frames = futures::stream::unfold(0u8, move |step| {
        let sent = sent.clone();
        async move {
            match step {
                0 => Some((Ok(Frame::data(sent)), 1)),
                1 => {
                    // Pausing lets hyper flush the headers and the prefix; the
                    // error then makes it abort the connection mid-body, which
                    // is what the client should observe.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    let error = std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "simulated truncation",
                    );
                    Some((Err(error), 2))
                }
                _ => None,
            }
        }
    });
    let mut response = Response::new(StreamBody::new(frames).boxed());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(declared));
    response
}

const HUGE_CHUNK: usize = 64 * 1024;

fn huge(total: u64) -> Response<SimBody> {
    let head = Bytes::from_static(br#"{"status":"success","data":["#);
    // One chunk of repeated items, cloned (not copied) for every frame.
    let mut block = BytesMut::with_capacity(HUGE_CHUNK + 256);
    let mut n = 0u64;
    while block.len() < HUGE_CHUNK {
        n += 1;
        block.extend_from_slice(
            format!(
                r#"{{"id":{n},"ownerId":4021,"title":"Padding item {n}","slug":"padding-{n}","description":"","lengthInMinutes":30,"hidden":false,"price":0,"currency":"usd"}},"#
            )
            .as_bytes(),
        );
    }
    let block = block.freeze();
    let stream =
        futures::stream::unfold((0u64, head, block), move |(sent, head, block)| async move {
            if sent >= total {
                return None;
            }
            let left = total - sent;
            let source = if sent == 0 {
                head.clone()
            } else {
                block.clone()
            };
            let take = (source.len() as u64).min(left) as usize;
            let frame = source.slice(..take);
            Some((
                Ok::<_, std::io::Error>(Frame::data(frame)),
                (sent + take as u64, head, block),
            ))
        });
    let mut response = Response::new(StreamBody::new(stream).boxed());
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    response
}

fn html(status: StatusCode) -> Response<SimBody> {
    let line = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let page = format!(
        "<html>\r\n<head><title>{line}</title></head>\r\n<body>\r\n<center><h1>{line}</h1></center>\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
    );
    let mut response = Response::new(full(page));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}
