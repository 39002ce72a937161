//! Plain-Rust mirror of the WIT `event` and `command` types. JSON-typed WIT
//! fields are [`serde_json::Value`] here; these types are also the format of
//! the event files `edgeauth rule run` reads and of the commands it prints.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionKind {
    #[default]
    Oidc,
    Oauth2,
    Saml,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Connection {
    pub id: String,
    pub kind: ConnectionKind,
    pub display_name: String,
}

impl Default for Connection {
    fn default() -> Self {
        Connection {
            id: "default".into(),
            kind: ConnectionKind::Oidc,
            display_name: "Identity provider".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct LinkedIdentity {
    pub connection: String,
    pub user_id: String,
    pub profile: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct User {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub picture: Option<String>,
    pub groups: Vec<String>,
    pub identities: Vec<LinkedIdentity>,
    pub app_metadata: Value,
    pub user_metadata: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RequestInfo {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub host: String,
    pub path: String,
    pub method: String,
    pub accepted_languages: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Transaction {
    pub first_login: bool,
    pub login_count: u64,
    pub return_url: String,
    pub correlation_id: String,
    pub reauthenticated: bool,
    pub resumed: Option<Vec<(String, String)>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Event {
    pub tenant_id: String,
    pub rule_name: String,
    pub config: Value,
    pub user: User,
    pub connection: Connection,
    pub request: RequestInfo,
    pub transaction: Transaction,
    /// Granted secrets by name.
    pub secrets: BTreeMap<String, String>,
}

/// JSON text for a WIT `json` field: `null` (absent) becomes `{}`.
pub fn json_text(v: &Value) -> String {
    if v.is_null() {
        "{}".into()
    } else {
        v.to_string()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// A command as the rule returned it (JSON fields still text), before
/// [`crate::command::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawCommand {
    Deny(String),
    SetClaim {
        name: String,
        value: String,
    },
    SetHeader {
        name: String,
        value: String,
    },
    PatchAppMetadata(String),
    PatchUserMetadata(String),
    Redirect {
        url: String,
    },
    RequireReauth {
        prompt_login: bool,
        max_age: Option<u32>,
    },
    Log {
        level: LogLevel,
        message: String,
    },
}

impl RawCommand {
    /// Bytes of rule-controlled text, for the output cap.
    pub fn size(&self) -> usize {
        16 + match self {
            RawCommand::Deny(s)
            | RawCommand::PatchAppMetadata(s)
            | RawCommand::PatchUserMetadata(s)
            | RawCommand::Redirect { url: s } => s.len(),
            RawCommand::SetClaim { name, value } | RawCommand::SetHeader { name, value } => {
                name.len() + value.len()
            }
            RawCommand::RequireReauth { .. } => 0,
            RawCommand::Log { message, .. } => message.len(),
        }
    }
}

/// HTTP as a rule asks for it (`host.http-fetch`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
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
    ForbiddenHost(String),
    InvalidRequest(String),
    Timeout,
    Unreachable(String),
    TooLarge,
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

/// Largest response body a rule may receive.
pub const MAX_HTTP_BODY: usize = 64 * 1024;
