//! Tenant post-login rules, run inside this component on the embedded
//! wasmtime/Pulley runtime (`edgeauth-rules`). The gateway's own flow calls
//! three functions:
//!
//! - [`prepare`] on every request: refuses to serve with an invalid rules
//!   configuration, and strips the headers rules may set from the client's
//!   request, so only a rule can supply them to the origin;
//! - [`complete`] at the end of the callback, instead of
//!   `callback::complete`: runs the tenant's chain and applies its outcome;
//! - [`reserved`] for `/.edgeauth/continue` (resume after a rule's redirect)
//!   and the admin endpoints under `/.edgeauth/admin/rules/`.
//!
//! With no rules configured (`rules` variable empty) all three are no-ops and
//! the gateway behaves exactly as without this module. Built without the
//! `rules` cargo feature, the runtime is not linked at all.

#[cfg(feature = "rules")]
mod admin;
#[cfg(feature = "rules")]
mod chain;
#[cfg(feature = "rules")]
mod deploy_admin;
#[cfg(feature = "rules")]
mod net;
#[cfg(feature = "rules")]
mod versions;

#[cfg(feature = "rules")]
pub use chain::{complete, prepare, reserved};

/// Who the callback signed in: the identity (with its profile id), their
/// profile as this sign-in left it, and the provider's tokens.
pub struct SignedIn {
    pub identity: edgeauth_core::identity::Identity,
    // What the rules see of the person; unused by a build without them.
    #[cfg_attr(not(feature = "rules"), allow(dead_code))]
    pub person: edgeauth_core::profiles::Profile,
    pub tokens: edgeauth_core::callback::Tokens,
}

#[cfg(not(feature = "rules"))]
mod disabled {
    use edgeauth_core::Response;
    use edgeauth_core::callback::{self, CallbackStart};
    use edgeauth_core::settings::Settings;
    use edgeauth_core::tenants::DocRules;
    use http::request::Parts;
    use spin_sdk::http::IncomingRequest;

    /// Rule settings would be ignored by this build: refused like any other
    /// invalid setting, naming the missing feature.
    pub fn prepare(_: &Settings, doc: &DocRules, _: &mut Parts) -> Result<(), Response> {
        let get = crate::vars::get;
        edgeauth_core::settings::refuse_rule_settings(get, doc.chain.is_some()).map_err(|e| {
            eprintln!("edgeauth: refusing to serve: {e}");
            edgeauth_core::pages::misconfigured(&e.to_string())
        })
    }

    pub async fn complete(
        settings: &Settings,
        _: &DocRules,
        _: &Parts,
        who: super::SignedIn,
        start: &CallbackStart,
        now: u64,
    ) -> Response {
        callback::complete(
            settings,
            who.identity,
            who.tokens,
            start,
            now,
            &mut crate::io::rng,
        )
    }

    pub async fn reserved(
        _: &Settings,
        _: &DocRules,
        _: &Parts,
        _: IncomingRequest,
        _: u64,
    ) -> Option<Response> {
        None
    }
}

#[cfg(not(feature = "rules"))]
pub use disabled::{complete, prepare, reserved};
