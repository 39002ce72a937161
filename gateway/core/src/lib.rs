//! edgeauth's authentication core.
//!
//! Sans-IO: every function takes plain values (request parts, the current time,
//! random bytes, fetched documents) and returns a decision or the next request to
//! make. The Spin component performs the I/O; tests feed values directly.

// The `Err` of the request steps is the HTTP response to send: built once per
// request on its way out, so its size does not matter and boxing it would not help.
#![allow(clippy::result_large_err)]

pub mod access;
pub mod admin;
pub mod assertion;
pub mod assertion_cache;
pub mod backchannel;
pub mod callback;
pub mod chooser;
pub mod chooser_page;
pub mod connections;
pub mod cookies;
pub mod encoding;
pub mod endpoints;
pub mod events;
pub mod forward;
pub mod id_token;
pub mod identity;
pub mod kv_schema;
pub mod lifecycle;
pub mod linking;
pub mod login;
pub mod logout;
pub mod oauth2;
pub mod pages;
pub mod paths;
pub mod policy;
pub mod profile_admin;
pub mod profiles;
pub mod provider;
pub mod redirect;
pub mod refresh;
pub mod revocation;
pub mod route_rules;
pub mod routes;
pub mod seal;
pub mod session;
pub mod session_index;
pub mod settings;
pub mod tenant_docs;
pub mod tenants;
pub mod webhooks;

#[cfg(test)]
pub(crate) mod testutil;

/// Source of randomness supplied by the caller (WASI random in the component,
/// a seeded counter in tests), so the core never reaches for the OS itself.
pub type Rng<'a> = &'a mut dyn FnMut(&mut [u8]);

/// Response bodies are small and fully built by the core.
pub type Response = http::Response<Vec<u8>>;
