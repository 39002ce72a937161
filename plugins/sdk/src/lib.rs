//! SDK for edgeauth tenant rules (`wit/plugin.wit`, `edgeauth:plugin@0.1.0`).
//!
//! A rule is one function from a typed [`Login`] to [`Commands`]:
//!
//! ```ignore
//! use edgeauth_plugin::{Commands, Login};
//!
//! fn on_login(login: &Login) -> Result<Commands, String> {
//!     let mut out = Commands::new();
//!     if !login.user.email_verified {
//!         out.deny("a verified email address is required");
//!     }
//!     Ok(out)
//! }
//!
//! edgeauth_plugin::rule!(on_login);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-unknown-unknown`
//! (no WASI imports at all), then `edgeauth rule build` turns the module into
//! a component, validates it against the world, precompiles and signs it.
//!
//! Natively (unit tests), the host functions in [`host`] are served by
//! [`testing`] so rules can be tested with plain `cargo test`.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/plugin.wit",
        world: "edgeauth:plugin/post-login",
        pub_export_macro: true,
        export_macro_name: "__export_post_login",
        default_bindings_module: "edgeauth_plugin::bindings",
    });
}

use bindings::edgeauth::plugin::types as wit;

pub use serde_json;
pub use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionKind {
    #[default]
    Oidc,
    Oauth2,
    Saml,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Connection {
    pub id: String,
    pub kind: ConnectionKind,
    pub display_name: String,
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

impl User {
    /// The email's domain (lower-case), only if the provider verified the email.
    pub fn verified_email_domain(&self) -> Option<String> {
        if !self.email_verified {
            return None;
        }
        let (_, domain) = self.email.as_deref()?.rsplit_once('@')?;
        Some(domain.to_ascii_lowercase())
    }
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

/// One sign-in, as the rule sees it. JSON fields are parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct Login {
    pub tenant_id: String,
    pub rule_name: String,
    pub config: Value,
    pub user: User,
    pub connection: Connection,
    pub request: RequestInfo,
    pub transaction: Transaction,
    pub secrets: BTreeMap<String, String>,
}

impl Login {
    /// A login from JSON (same shape as `edgeauth rule run` event files).
    pub fn from_json(v: Value) -> Login {
        serde_json::from_value(v).expect("a valid login event")
    }

    /// The rule's configuration as `T`.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, String> {
        let v = if self.config.is_null() {
            Value::Object(Default::default())
        } else {
            self.config.clone()
        };
        serde_json::from_value(v).map_err(|e| format!("invalid rule configuration: {e}"))
    }

    pub fn secret(&self, name: &str) -> Option<&str> {
        self.secrets.get(name).map(String::as_str)
    }

    /// A field the browser brought back to the continue endpoint.
    pub fn resumed(&self, field: &str) -> Option<&str> {
        self.transaction
            .resumed
            .as_ref()?
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

impl From<wit::Event> for Login {
    fn from(e: wit::Event) -> Login {
        Login {
            tenant_id: e.tenant_id,
            rule_name: e.rule_name,
            config: parse_json(&e.config),
            user: User {
                sub: e.user.sub,
                email: e.user.email,
                email_verified: e.user.email_verified,
                name: e.user.name,
                picture: e.user.picture,
                groups: e.user.groups,
                identities: e
                    .user
                    .identities
                    .into_iter()
                    .map(|i| LinkedIdentity {
                        connection: i.connection,
                        user_id: i.user_id,
                        profile: parse_json(&i.profile),
                    })
                    .collect(),
                app_metadata: parse_json(&e.user.app_metadata),
                user_metadata: parse_json(&e.user.user_metadata),
            },
            connection: Connection {
                id: e.connection.id,
                kind: match e.connection.kind {
                    wit::ConnectionKind::Oidc => ConnectionKind::Oidc,
                    wit::ConnectionKind::Oauth2 => ConnectionKind::Oauth2,
                    wit::ConnectionKind::Saml => ConnectionKind::Saml,
                },
                display_name: e.connection.display_name,
            },
            request: RequestInfo {
                ip: e.request.ip,
                user_agent: e.request.user_agent,
                host: e.request.host,
                path: e.request.path,
                method: e.request.method,
                accepted_languages: e.request.accepted_languages,
            },
            transaction: Transaction {
                first_login: e.transaction.first_login,
                login_count: e.transaction.login_count,
                return_url: e.transaction.return_url,
                correlation_id: e.transaction.correlation_id,
                reauthenticated: e.transaction.reauthenticated,
                resumed: e.transaction.resumed,
            },
            secrets: e.secrets.into_iter().map(|s| (s.name, s.value)).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl From<Level> for wit::LogLevel {
    fn from(l: Level) -> wit::LogLevel {
        match l {
            Level::Debug => wit::LogLevel::Debug,
            Level::Info => wit::LogLevel::Info,
            Level::Warn => wit::LogLevel::Warn,
            Level::Error => wit::LogLevel::Error,
        }
    }
}

/// One command for the gateway (see the WIT for what each does).
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
        level: Level,
        message: String,
    },
}

impl From<Command> for wit::Command {
    fn from(c: Command) -> wit::Command {
        match c {
            Command::Deny { reason } => wit::Command::Deny(reason),
            Command::SetClaim { name, value } => wit::Command::SetClaim(wit::Claim {
                name,
                value: value.to_string(),
            }),
            Command::SetHeader { name, value } => {
                wit::Command::SetHeader(wit::Header { name, value })
            }
            Command::PatchAppMetadata { patch } => {
                wit::Command::PatchAppMetadata(patch.to_string())
            }
            Command::PatchUserMetadata { patch } => {
                wit::Command::PatchUserMetadata(patch.to_string())
            }
            Command::Redirect { url } => wit::Command::Redirect(wit::Redirect { url }),
            Command::RequireReauth {
                prompt_login,
                max_age,
            } => wit::Command::RequireReauth(wit::Reauth {
                prompt_login,
                max_age,
            }),
            Command::Log { level, message } => wit::Command::Log(wit::LogEntry {
                level: level.into(),
                message,
            }),
        }
    }
}

/// The ordered commands a rule returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Commands(pub Vec<Command>);

impl Commands {
    pub fn new() -> Commands {
        Commands::default()
    }

    pub fn deny(&mut self, reason: impl Into<String>) -> &mut Self {
        self.push(Command::Deny {
            reason: reason.into(),
        })
    }

    /// A namespaced claim for the origin's assertion, e.g. `https://example.com/roles`.
    pub fn claim(&mut self, name: impl Into<String>, value: impl Serialize) -> &mut Self {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.push(Command::SetClaim {
            name: name.into(),
            value,
        })
    }

    pub fn header(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.push(Command::SetHeader {
            name: name.into(),
            value: value.into(),
        })
    }

    pub fn patch_app_metadata(&mut self, patch: Value) -> &mut Self {
        self.push(Command::PatchAppMetadata { patch })
    }

    pub fn patch_user_metadata(&mut self, patch: Value) -> &mut Self {
        self.push(Command::PatchUserMetadata { patch })
    }

    pub fn redirect(&mut self, url: impl Into<String>) -> &mut Self {
        self.push(Command::Redirect { url: url.into() })
    }

    pub fn require_reauth(&mut self, prompt_login: bool, max_age: Option<u32>) -> &mut Self {
        self.push(Command::RequireReauth {
            prompt_login,
            max_age,
        })
    }

    pub fn log(&mut self, level: Level, message: impl Into<String>) -> &mut Self {
        self.push(Command::Log {
            level,
            message: message.into(),
        })
    }

    pub fn push(&mut self, c: Command) -> &mut Self {
        self.0.push(c);
        self
    }

    pub fn is_denied(&self) -> bool {
        self.0.iter().any(|c| matches!(c, Command::Deny { .. }))
    }
}

#[doc(hidden)]
pub fn __dispatch(
    event: wit::Event,
    rule: fn(&Login) -> Result<Commands, String>,
) -> Result<Vec<wit::Command>, String> {
    let login = Login::from(event);
    rule(&login).map(|c| c.0.into_iter().map(Into::into).collect())
}

/// Exports `f: fn(&Login) -> Result<Commands, String>` as the rule.
#[macro_export]
macro_rules! rule {
    ($f:path) => {
        struct __EdgeauthRule;

        impl $crate::bindings::exports::edgeauth::plugin::rule::Guest for __EdgeauthRule {
            fn on_login(
                event: $crate::bindings::edgeauth::plugin::types::Event,
            ) -> ::core::result::Result<
                $crate::__Vec<$crate::bindings::edgeauth::plugin::types::Command>,
                $crate::__String,
            > {
                $crate::__dispatch(event, $f)
            }
        }

        $crate::bindings::__export_post_login!(__EdgeauthRule with_types_in $crate::bindings);
    };
}

#[doc(hidden)]
pub type __Vec<T> = Vec<T>;
#[doc(hidden)]
pub type __String = String;

pub mod host;
#[cfg(not(target_family = "wasm"))]
pub mod testing;
