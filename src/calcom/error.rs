//! Errors of the Cal.com client. Messages say what failed and what to do; they
//! never contain the API key or a whole response body.

use crate::domain::EventTypeId;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CalcomError {
    #[error(
        "Cal.com rejected the API key of account {account} (HTTP {status}: {message}); create a new key in Cal.com (Settings → Developer → API keys) and update this account's api_key"
    )]
    Unauthorized {
        account: String,
        status: u16,
        message: String,
    },
    #[error("Cal.com answered HTTP {status} ({code}) to {endpoint}: {message}")]
    Api {
        endpoint: &'static str,
        status: u16,
        code: String,
        message: String,
    },
    #[error(
        "Cal.com kept answering HTTP 429 for account {account}; calsync waited for each block to pass and gave up after {attempts} attempts"
    )]
    RateLimited { account: String, attempts: u32 },
    #[error("Cal.com answered HTTP {status} to {endpoint}: {message}")]
    Server {
        endpoint: &'static str,
        status: u16,
        message: String,
    },
    #[error("{endpoint}: {kind} talking to Cal.com{at}: {detail}")]
    Transport {
        endpoint: &'static str,
        kind: &'static str,
        /// ` at <base URL> (calcom.base_url)`, or empty before there is one.
        at: String,
        detail: String,
    },
    #[error(
        "{endpoint}: Cal.com's response is larger than calcom.max_body_bytes ({limit} bytes) and was cut off"
    )]
    BodyTooLarge { endpoint: &'static str, limit: u64 },
    #[error("{endpoint}: Cal.com's response (HTTP {status}) is not the expected JSON: {detail}")]
    Malformed {
        endpoint: &'static str,
        status: u16,
        detail: String,
    },
    #[error("event type {0} is not in Cal.com any more (HTTP 404)")]
    EventTypeGone(EventTypeId),
}

impl CalcomError {
    /// Worth another attempt after a backoff.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            Self::Server { .. } | Self::Transport { .. } | Self::RateLimited { .. }
        )
    }

    /// Cal.com refused the request itself (a 4xx other than 429, or the event
    /// type is gone): sending the same request again cannot succeed.
    pub fn refused(&self) -> bool {
        match self {
            Self::Api { status, .. } => (400..500).contains(status) && *status != 429,
            Self::EventTypeGone(_) => true,
            _ => false,
        }
    }

    /// A fixed word for logs and the run journal.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unauthorized { .. } => "unauthorized",
            Self::Api { .. } => "api",
            Self::RateLimited { .. } => "rate_limited",
            Self::Server { .. } => "server",
            Self::Transport { .. } => "transport",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::Malformed { .. } => "malformed",
            Self::EventTypeGone(_) => "gone",
        }
    }
}
