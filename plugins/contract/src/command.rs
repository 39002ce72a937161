//! What a rule returns: the WIT `command` variant, in two forms.
//! [`RawCommand`] is what crosses the WIT (JSON still text, names as the rule
//! spelled them); [`Command`] is what a rule builds (SDK) and what the gateway
//! applies after [`crate::validate`] accepted the whole list.

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// One command with JSON values parsed. Serialized (kebab-case, tagged by
/// `command`) it is what `edgeauth rule run` and the admin dry run print.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Command {
    Deny {
        reason: String,
    },
    SetClaim {
        name: String,
        value: Value,
    },
    SetHeader {
        name: String,
        value: String,
    },
    PatchAppMetadata {
        patch: Value,
    },
    PatchUserMetadata {
        patch: Value,
    },
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

/// A command as it crosses the WIT, before the gateway checked it.
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

/// What a rule's command becomes on the WIT: JSON values as text.
impl From<Command> for RawCommand {
    fn from(c: Command) -> RawCommand {
        match c {
            Command::Deny { reason } => RawCommand::Deny(reason),
            Command::SetClaim { name, value } => RawCommand::SetClaim {
                name,
                value: value.to_string(),
            },
            Command::SetHeader { name, value } => RawCommand::SetHeader { name, value },
            Command::PatchAppMetadata { patch } => RawCommand::PatchAppMetadata(patch.to_string()),
            Command::PatchUserMetadata { patch } => {
                RawCommand::PatchUserMetadata(patch.to_string())
            }
            Command::Redirect { url } => RawCommand::Redirect { url },
            Command::RequireReauth {
                prompt_login,
                max_age,
            } => RawCommand::RequireReauth {
                prompt_login,
                max_age,
            },
            Command::Log { level, message } => RawCommand::Log { level, message },
        }
    }
}
