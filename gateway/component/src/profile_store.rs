//! The person's profile at sign-in (`edgeauth_core::profiles`): the reads
//! the decision needs, then the writes it plans, in its order (profile
//! first, indexes after). Decisions are core's; this is KV I/O only.

use edgeauth_core::Response;
use edgeauth_core::identity::Identity;
use edgeauth_core::kv_schema;
use edgeauth_core::pages;
use edgeauth_core::profiles::{self, Found, SignInFacts};
use edgeauth_core::settings::Settings;
use http::request::Parts;

use crate::kv::Kv;

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The profile named by the index under `key`, if any.
fn named_by(kv: &Kv, tenant: &str, key: &str) -> Result<Option<profiles::Profile>, Response> {
    let unavailable = |_| pages::storage_unavailable();
    let Some(id) = kv.get_raw(key).map_err(unavailable)? else {
        return Ok(None);
    };
    let Some(id) = std::str::from_utf8(&id)
        .ok()
        .filter(|id| profiles::valid_id(id))
    else {
        return Ok(None);
    };
    let stored = kv
        .get_raw(&kv_schema::profile(tenant, id))
        .map_err(unavailable)?;
    Ok(profiles::decode(stored.as_deref()))
}

/// Creates or updates the profile of the person signing in and returns the
/// identity carrying its id. Without the store the sign-in fails closed.
pub fn record(
    settings: &Settings,
    parts: &Parts,
    mut identity: Identity,
    now: u64,
) -> Result<Identity, Response> {
    let kv = Kv::open()?;
    let tenant = &settings.tenant;
    let by_identity = named_by(
        &kv,
        tenant,
        &kv_schema::profile_identity(tenant, identity.connection_id(), identity.idp_sub()),
    )?;
    let by_email = match identity
        .email
        .as_deref()
        .filter(|_| identity.email_verified)
        .and_then(profiles::email_key)
    {
        Some(e) => named_by(&kv, tenant, &kv_schema::profile_email(tenant, &e))?,
        None => None,
    };
    let vouches = settings
        .connection(identity.connection_id())
        .is_some_and(|c| c.trust_email);
    let ip = header(parts, "spin-client-addr").map(|a| {
        a.parse::<std::net::SocketAddr>()
            .map(|s| s.ip().to_string())
            .unwrap_or_else(|_| a.to_owned())
    });
    let facts = SignInFacts {
        claims: None,
        ip: ip.as_deref(),
        user_agent: header(parts, "user-agent"),
    };
    let plan = profiles::sign_in(
        tenant,
        (settings.account_linking, vouches),
        &identity,
        Found {
            by_identity,
            by_email,
        },
        &facts,
        now,
        &mut crate::io::rng,
    );
    // Listed (if new) before it is written: an export never misses a profile.
    crate::profile_writes::apply(&kv, tenant, &plan).map_err(|_| pages::storage_unavailable())?;
    identity.profile_id = Some(plan.profile.id);
    Ok(identity)
}
