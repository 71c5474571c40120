//! Response bodies and Cal.com's JSON envelopes: `{"status":"success","data":…}` and
//! the error shape `{"status":"error","timestamp","path","error":{code,message,details}}`.
//! This file only formats bytes; it must never look at simulator state.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

/// Every response body the simulator sends: small buffered ones and the streamed
/// fault bodies (truncated, huge) share one type.
pub type SimBody = BoxBody<Bytes, std::io::Error>;

pub(crate) const JSON_UTF8: &str = "application/json; charset=utf-8";

pub(crate) fn full(bytes: impl Into<Bytes>) -> SimBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

pub(crate) fn json_response(status: StatusCode, body: impl Into<Bytes>) -> Response<SimBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    response
}

/// `{"status":"success","data":<one stored object>}` without re-parsing the object.
pub(crate) fn success_one(status: StatusCode, object: &[u8]) -> Response<SimBody> {
    let mut out = Vec::with_capacity(object.len() + 32);
    out.extend_from_slice(br#"{"status":"success","data":"#);
    out.extend_from_slice(object);
    out.push(b'}');
    json_response(status, out)
}

/// `{"status":"success","data":[…]}` by concatenating already-serialized objects,
/// so listing a hundred event types costs a memcpy each, not a serialization.
pub(crate) fn success_list<I, B>(objects: I) -> Response<SimBody>
where
    I: IntoIterator<Item = B>,
    B: AsRef<[u8]>,
{
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(br#"{"status":"success","data":["#);
    for (i, object) in objects.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(object.as_ref());
    }
    out.extend_from_slice(b"]}");
    json_response(StatusCode::OK, out)
}

pub(crate) fn success_value(status: StatusCode, data: Value) -> Response<SimBody> {
    let body = json!({ "status": "success", "data": data });
    json_response(status, body.to_string())
}

/// A failure the API reports with its error envelope.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    /// Nest exception class name (`NotFoundException`) or filter constant.
    pub code: &'static str,
    pub message: String,
    pub details: Details,
}

/// What goes into `error.details`, which differs by the filter that built it.
#[derive(Debug, Clone)]
pub(crate) enum Details {
    /// Nest's `getResponse()` of an HTTP exception: `{message, error, statusCode}`.
    Standard,
    /// ThrottlerException's response is the bare message string.
    MessageOnly,
    /// class-validator failures: `{"errors":[…]}`.
    Validation(Vec<Value>),
    /// The unhandled-error filter sends no details.
    None,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Details::Standard,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequestException", message)
    }

    /// A class-validator rejection: the real message is generic, the detail lists
    /// each failed property.
    pub fn validation(errors: Vec<Value>) -> Self {
        ApiError {
            details: Details::Validation(errors),
            ..Self::bad_request("Bad Request Exception")
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UnauthorizedException", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "ForbiddenException", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFoundException", message)
    }

    pub fn event_type_not_found(id: i64) -> Self {
        Self::not_found(format!("Event type with id {id} not found"))
    }

    pub fn too_many_requests() -> Self {
        ApiError {
            details: Details::MessageOnly,
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "ThrottlerException",
                "CustomThrottlerGuard - Too many requests. Please try again later.",
            )
        }
    }

    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PayloadTooLargeException",
            "request entity too large",
        )
    }

    /// The body Cal.com would send for a status with no more specific cause; used
    /// by status faults that do not carry their own body.
    pub fn for_status(status: StatusCode) -> Self {
        let (code, message): (&'static str, String) = match status.as_u16() {
            400 => ("BadRequestException", "Bad Request".into()),
            401 => ("UnauthorizedException", "Unauthorized".into()),
            403 => ("ForbiddenException", "Forbidden resource".into()),
            404 => ("NotFoundException", "Not Found".into()),
            409 => ("CONFLICT", "Unique constraint failed".into()),
            429 => return Self::too_many_requests(),
            500 => {
                return ApiError {
                    details: Details::None,
                    ..Self::new(status, "INTERNAL_SERVER_ERROR", "Internal server error.")
                };
            }
            502 => ("BadGatewayException", "Bad Gateway".into()),
            503 => ("ServiceUnavailableException", "Service Unavailable".into()),
            504 => ("GatewayTimeoutException", "Gateway Timeout".into()),
            _ => (
                "HttpException",
                status.canonical_reason().unwrap_or("Http Exception").into(),
            ),
        };
        Self::new(status, code, message)
    }

    pub fn to_body(&self, path: &str) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        let details = match &self.details {
            Details::Standard => Some(json!({
                "message": self.message,
                "error": self.status.canonical_reason().unwrap_or(""),
                "statusCode": self.status.as_u16(),
            })),
            Details::MessageOnly => Some(Value::String(self.message.clone())),
            Details::Validation(errors) => Some(json!({ "errors": errors })),
            Details::None => None,
        };
        if let Some(details) = details {
            error["details"] = details;
        }
        json!({
            "status": "error",
            "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "path": path,
            "error": error,
        })
    }

    pub fn into_response(self, path: &str) -> Response<SimBody> {
        json_response(self.status, self.to_body(path).to_string())
    }
}
