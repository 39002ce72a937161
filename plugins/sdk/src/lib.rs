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
//! [`testing`] so rules can be tested with plain `cargo test`;
//! [`testing::run`] checks a rule's output with the gateway's own validation.
//!
//! The event and command types are the contract's (`edgeauth-contract`),
//! the same definitions the gateway uses.

use serde::Serialize;
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

mod wire;

pub use serde_json;
pub use serde_json::json;

/// The contract's types, shared with the gateway (`edgeauth-contract`).
pub use edgeauth_contract::command::{Command, LogLevel as Level};
pub use edgeauth_contract::event::{
    Connection, ConnectionKind, Event as Login, LinkedIdentity, RequestInfo, Transaction, User,
};

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
    event: bindings::edgeauth::plugin::types::Event,
    rule: fn(&Login) -> Result<Commands, String>,
) -> Result<Vec<bindings::edgeauth::plugin::types::Command>, String> {
    let login = wire::login(event);
    rule(&login).map(|c| c.0.into_iter().map(wire::command).collect())
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
