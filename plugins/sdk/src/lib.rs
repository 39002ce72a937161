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
    Connection, ConnectionKind, Event as Login, Json, LinkedIdentity, RequestInfo, Transaction,
    User,
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
    install_panic_hook();
    let login = wire::login(event);
    rule(&login).map(|c| c.0.into_iter().map(wire::command).collect())
}

/// Makes a panic of the rule report its message and location through the
/// host's `log` import (an `error` line, see
/// [`edgeauth_contract::PANIC_PREFIX`]) before the trap, so the gateway's
/// audit line says why the rule crashed instead of `wasm trap: unreachable`.
/// Called by [`rule!`] on every call.
///
/// In a rule (wasm) it replaces the hook outright: every call runs in a
/// fresh instance, where the hook before it is std's default, which has
/// nowhere to write there. Keeping that one (a `Once`, taking it and boxing
/// it into the new hook) cost each call ~300 fuel on the gateway's
/// interpreter. Natively (a rule's unit tests) it is installed once and the
/// hook before it still runs after (the test harness prints the panic).
pub fn install_panic_hook() {
    #[cfg(target_family = "wasm")]
    std::panic::set_hook(Box::new(|info| {
        host::log(Level::Error, &panic_report(info));
    }));
    #[cfg(not(target_family = "wasm"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let before = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                host::log(Level::Error, &panic_report(info));
                before(info);
            }));
        });
    }
}

/// The log line of a panic: location and message (a `&str` or `String`
/// payload; other payloads are named as such).
fn panic_report(info: &std::panic::PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(a panic payload that is not text)".to_owned());
    let location = info.location().map(|l| (l.file(), l.line(), l.column()));
    edgeauth_contract::panic_line(location, &message)
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

#[cfg(test)]
mod panic_tests {
    use super::*;

    #[test]
    fn a_panic_is_logged_with_its_message_and_location() {
        install_panic_hook();
        let line = line!() + 1;
        let caught = std::panic::catch_unwind(|| panic!("no {} today", "lunch"));
        assert!(caught.is_err());
        let logs = testing::logs();
        let (level, message) = logs.last().expect("the hook logged the panic");
        assert!(matches!(level, Level::Error));
        let start = format!("{}{}:{line}:", edgeauth_contract::PANIC_PREFIX, file!());
        assert!(message.starts_with(&start), "{message}");
        assert!(message.ends_with(": no lunch today"), "{message}");
        // A literal message, the other payload type.
        let _ = std::panic::catch_unwind(|| panic!("plain"));
        assert!(testing::logs().last().unwrap().1.ends_with(": plain"));
    }
}

#[cfg(test)]
mod json_field_tests {
    use super::*;

    /// The forms plugins/README.md shows a rule author.
    #[test]
    fn the_events_json_fields_read_as_values() {
        let mut login = Login::from_json(json!({
            "config": {"domains": ["example.com"]},
            "user": {"sub": "u", "app_metadata": {"plan": "pro"}}
        }));
        assert_eq!(login.user.app_metadata["plan"], "pro");
        assert_eq!(login.user.app_metadata, json!({"plan": "pro"}));
        assert!(login.user.user_metadata.is_null());
        assert_eq!(
            login
                .config
                .get("domains")
                .and_then(Value::as_array)
                .map(Vec::len),
            Some(1)
        );
        #[derive(serde::Deserialize)]
        struct Config {
            domains: Vec<String>,
        }
        let config: Config = login.config().unwrap();
        assert_eq!(config.domains, ["example.com"]);
        login.config = json!({"domains": []}).into();
        assert!(login.config::<Config>().unwrap().domains.is_empty());
        let _: &Json = &login.user.user_metadata;
    }
}
