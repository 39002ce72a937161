//! The outbound call a rule may make (`host.http-fetch`).

use serde::{Deserialize, Serialize};

/// Largest request or response body a rule may send or receive.
pub const MAX_HTTP_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// GET, POST, PUT, PATCH or DELETE.
    pub method: String,
    /// Absolute http(s) URL; its origin must be in the rule's allow list.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// Total time allowed; the gateway caps it by the tenant's configuration.
    pub timeout_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpError {
    /// The URL's origin is not in the rule's allow list.
    ForbiddenHost(String),
    InvalidRequest(String),
    Timeout,
    Unreachable(String),
    TooLarge,
    /// The rule already made as many calls as its budget allows.
    BudgetExhausted,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::ForbiddenHost(h) => write!(f, "host {h} is not in the rule's allow list"),
            HttpError::InvalidRequest(e) => write!(f, "invalid request: {e}"),
            HttpError::Timeout => write!(f, "timed out"),
            HttpError::Unreachable(e) => write!(f, "unreachable: {e}"),
            HttpError::TooLarge => write!(f, "response too large"),
            HttpError::BudgetExhausted => write!(f, "too many outbound calls"),
        }
    }
}

impl std::error::Error for HttpError {}
