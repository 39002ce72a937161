//! The rule contract of `wit/plugin.wit` (`edgeauth:plugin@0.1.0`) as plain
//! Rust, shared by the gateway (`edgeauth-rules`) and the rule SDK
//! (`edgeauth-plugin`) so the two cannot drift:
//!
//! - [`event`]: what a rule receives (JSON-typed WIT fields are
//!   [`event::Json`] here: a [`serde_json::Value`] parsed on first use);
//!   also the format of `edgeauth rule run`'s event files;
//! - [`command`]: what a rule returns, as sent over the WIT ([`command::RawCommand`],
//!   JSON still text) and as the gateway applies it ([`command::Command`]);
//! - [`http`]: the outbound call a rule may make through the host;
//! - [`names`]: tenant/rule/secret names and the claim and header names no
//!   rule may set;
//! - [`validate`] (feature `validate`): the gateway's check of everything a
//!   rule returned. The SDK's test helpers run the same function, so a rule's
//!   unit test fails where the gateway would refuse its output.
//!
//! Each binding layer (wit-bindgen in the SDK, wasmtime's bindgen in the
//! gateway) only converts between its generated types and these.

pub mod command;
pub mod event;
pub mod http;
pub mod names;
#[cfg(feature = "validate")]
pub mod validate;

/// The WIT package every rule is built against.
pub const WIT_PACKAGE: &str = "edgeauth:plugin@0.1.0";

/// How a rule built with the SDK reports a panic: one `error` log line
/// through the host's `log` import, just before the trap, starting with this
/// prefix, then `<file>:<line>:<column>: <message>`. The gateway takes that
/// line as the failure's detail instead of the bare wasm trap.
pub const PANIC_PREFIX: &str = "rule panicked at ";

/// The panic line of [`PANIC_PREFIX`].
pub fn panic_line(location: Option<(&str, u32, u32)>, message: &str) -> String {
    match location {
        Some((file, line, column)) => format!("{PANIC_PREFIX}{file}:{line}:{column}: {message}"),
        None => format!("{PANIC_PREFIX}an unknown location: {message}"),
    }
}

/// Size of a rule's commands the gateway accepts unless the tenant
/// configures another output cap (`output_bytes`).
pub const DEFAULT_OUTPUT_BYTES: usize = 64 << 10;
