//! Tenant post-login rules (`wit/plugin.wit`, `edgeauth:plugin@0.1.0`).
//!
//! Sans-IO parts, usable natively and in the gateway component:
//! - [`config`]: the tenants' rule chains and per-rule budgets (Spin variable `rules`);
//! - [`artifact`]: signed, precompiled rule artifacts (Ed25519 under an operator key);
//! - [`event`] and [`command`]: the WIT types (defined once, in
//!   `edgeauth-contract`, with the rule SDK) and the validation of what a rule
//!   returns against its configuration;
//! - [`merge`]: JSON merge patch for metadata;
//! - [`deploy`] and [`run_log`]: versioned deployments (deploy, rollback,
//!   garbage collection, the versions one sign-in runs) and the per-rule
//!   execution logs kept in KV;
//! - [`chain`], [`sign_in`], [`record`], [`resume`] and [`outcome`]: a
//!   tenant's chain at sign-in (running it through a [`chain::RunRule`],
//!   the event it starts from, what is kept in KV, pausing and resuming,
//!   and the pages and state of each ending), all natively tested;
//!   the gateway component only does their I/O.
//!
//! With the `runtime` feature, [`runtime`] runs a rule on an embedded wasmtime
//! (Pulley interpreter inside the wasm32 gateway component) with fuel, memory
//! and output caps.

pub mod admin;
pub mod artifact;
pub mod chain;
pub mod command;
pub mod config;
pub mod deploy;
pub mod event;
pub mod failure;
pub mod login_event;
pub mod merge;
pub mod outcome;
pub mod record;
pub mod resume;
pub mod run_log;
#[cfg(feature = "runtime")]
pub mod runtime;
pub mod sign_in;
#[cfg(test)]
mod testing;
#[cfg(all(feature = "runtime", target_family = "wasm"))]
mod tls;

pub use edgeauth_contract as contract;
/// The WIT package every rule is built against.
pub use edgeauth_contract::WIT_PACKAGE;
/// The WIT text, for tools that validate components against the world.
pub const WIT: &str = include_str!("../../../wit/plugin.wit");
