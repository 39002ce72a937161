//! The person's profile at sign-in (`edgeauth_core::profiles`): the reads
//! the decision needs, then the writes it plans, in its order (profile
//! first, indexes after). Decisions are core's; this is KV I/O only.

use edgeauth_core::Response;
use edgeauth_core::identity::Identity;
use edgeauth_core::kv_schema;
use edgeauth_core::linking;
use edgeauth_core::pages;
use edgeauth_core::profiles::{self, Found, SignInFacts};
use edgeauth_core::revocation;
use edgeauth_core::session_index;
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
/// identity carrying its id, with the plan carried out (the profile as
/// stored, and how the identity was resolved). `id_token` is the
/// verified ID token (empty for OAuth2 connections): its claims are the
/// identity's in the profile. Without the store the sign-in fails closed.
pub fn record(
    settings: &Settings,
    parts: &Parts,
    mut identity: Identity,
    id_token: &str,
    now: u64,
) -> Result<(Identity, profiles::Plan), Response> {
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
    let claims = profiles::sign_in_claims(&identity, id_token);
    let facts = SignInFacts {
        claims: Some(&claims),
        ip: ip.as_deref(),
        user_agent: header(parts, "user-agent"),
    };
    let mut plan = profiles::sign_in(
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
    // Rules kept metadata per subject before profiles existed: a new
    // profile starts from it, and the old record goes once that is stored.
    let legacy_key = kv_schema::rule_user(tenant, &identity.sub);
    let legacy = match plan.creates() {
        true => kv.get_raw(&legacy_key).ok().flatten(),
        false => None,
    };
    if let Some(stored) = &legacy {
        plan.adopt_rule_record(stored, now);
    }
    // Listed (if new) before it is written: an export never misses a profile.
    crate::profile_writes::apply(&kv, tenant, &plan).map_err(|_| pages::storage_unavailable())?;
    if legacy.is_some() {
        let _ = kv.delete(&legacy_key);
    }
    // The provider's session id, for its back-channel logout by `sid`.
    if let Some(sid) = claims
        .get("sid")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
    {
        let expires_at = now + edgeauth_core::settings::MAX_SESSION_LIFETIME_SECS;
        let key = kv_schema::provider_sid(tenant, identity.connection_id(), sid);
        let value = kv_schema::encode(expires_at, plan.profile.id.as_bytes());
        kv.put(&key, &value, expires_at, now)
            .map_err(|_| pages::storage_unavailable())?;
    }
    // The session to be issued carries the person's revocation epoch (a new
    // profile has none yet).
    identity.profile_epoch = if plan.creates() {
        0
    } else {
        let stored = kv
            .get_raw(&kv_schema::revoked_profile(tenant, &plan.profile.id))
            .map_err(|_| pages::storage_unavailable())?;
        // Unreadable: 0, so the session is refused until an admin revocation
        // rewrites the entry (fail closed, and still revocable).
        revocation::person_epoch(stored.as_deref()).unwrap_or(0)
    };
    identity.profile_id = Some(plan.profile.id.clone());
    Ok((identity, plan))
}

/// Writes what the tenant's rules left in the person's metadata into their
/// profile, read afresh (a paused chain may resume minutes later).
#[cfg_attr(not(feature = "rules"), allow(dead_code))]
pub fn set_rule_metadata(
    settings: &Settings,
    profile_id: &str,
    app: &serde_json::Value,
    user: &serde_json::Value,
) -> Result<(), Response> {
    let kv = Kv::open()?;
    let key = kv_schema::profile(&settings.tenant, profile_id);
    let stored = kv.get_raw(&key).map_err(|_| pages::storage_unavailable())?;
    // Erased while the chain was paused: nothing to write into.
    let mut profile = profiles::decode(stored.as_deref()).ok_or_else(pages::storage_unavailable)?;
    profile.set_rule_metadata(app, user);
    let value = serde_json::to_vec(&profile).unwrap_or_default();
    kv.put_permanent(&key, &value)
        .map_err(|_| pages::storage_unavailable())
}

/// Links the identity a proven offer names into the profile this sign-in
/// proved (`edgeauth_core::linking`), at most once per offer: the profile
/// the identity had until now is merged in and goes, and its sessions end.
/// `Ok(None)` when there is nothing (left) to link.
pub fn link_proven(
    settings: &Settings,
    offer: &linking::Offer,
    now: u64,
) -> Result<Option<profiles::Merged>, Response> {
    let unavailable = |_| pages::storage_unavailable();
    let kv = Kv::open()?;
    let t = &settings.tenant;
    if !kv
        .first_use(&kv_schema::link_used(&offer.nonce, offer.expires_at), now)
        .map_err(unavailable)?
    {
        return Ok(None);
    }
    let read = |id: &str| -> Result<Option<profiles::Profile>, Response> {
        let stored = kv
            .get_raw(&kv_schema::profile(t, id))
            .map_err(unavailable)?;
        Ok(profiles::decode(stored.as_deref()))
    };
    let (Some(target), Some(from)) = (read(&offer.target)?, read(&offer.from)?) else {
        return Ok(None);
    };
    if !linking::still_linkable(offer, &target, &from) {
        return Ok(None);
    }
    let merged = match profiles::merge(t, target, from) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("edgeauth: accounts not linked: {e}");
            return Ok(None);
        }
    };
    crate::profile_admin::apply_merge(&kv, t, &merged).map_err(|_| pages::storage_unavailable())?;
    revoke_person(&kv, t, &merged.source)?;
    Ok(Some(merged))
}

/// Ends every session of the person with `profile_id`, on every instance
/// (`revocation::person_entry`).
pub fn revoke_person(kv: &Kv, tenant: &str, profile_id: &str) -> Result<(), Response> {
    let unavailable = |_| pages::storage_unavailable();
    let key = kv_schema::revoked_profile(tenant, profile_id);
    let stored = kv.get_raw(&key).map_err(unavailable)?;
    let (key, value) = revocation::person_entry(tenant, profile_id, stored.as_deref());
    kv.put_permanent(&key, &value).map_err(unavailable)
}

/// The person's active sessions (`edgeauth_core::session_index`): listed,
/// not expired, not revoked one by one nor by a "log out everywhere".
pub fn sessions(
    kv: &Kv,
    tenant: &str,
    profile_id: &str,
) -> Result<Vec<session_index::Entry>, Response> {
    let unavailable = |_| pages::storage_unavailable();
    let now = crate::io::Clock::now().secs;
    let stored = kv
        .get_raw(&kv_schema::session_index(tenant, profile_id))
        .map_err(unavailable)?;
    let epoch = kv
        .get_raw(&kv_schema::revoked_profile(tenant, profile_id))
        .map_err(unavailable)?;
    let epoch = revocation::person_epoch(epoch.as_deref());
    let mut out = Vec::new();
    for e in session_index::live(stored.as_deref(), now) {
        let revoked = kv
            .exists(&kv_schema::revoked_session(tenant, &e.id))
            .map_err(unavailable)?;
        if session_index::active(&e, revoked, epoch) {
            out.push(e);
        }
    }
    Ok(out)
}

/// Lists the session `response` starts in the person's sessions. Best
/// effort: a session missing from the list still ends with "log out
/// everywhere" and with its lifetime.
pub fn remember_session(settings: &Settings, parts: &Parts, response: &Response, now: u64) {
    let Some((profile, entry)) = session_index::issued(settings, response, parts) else {
        return;
    };
    let Ok(kv) = Kv::open() else {
        return;
    };
    let key = kv_schema::session_index(&settings.tenant, &profile);
    let stored = kv.get_raw(&key).ok().flatten();
    let (value, expires_at) = session_index::add(stored.as_deref(), entry, now);
    if kv.put(&key, &value, expires_at, now).is_err() {
        eprintln!("edgeauth: the new session could not be listed for the admin API");
    }
}

/// Ends every session of the person a back-channel logout token names
/// (`edgeauth_core::backchannel`): by `sub` through the identity index, by
/// `sid` through the index written at sign-in.
pub fn logout_from_provider(
    settings: &Settings,
    connection: &edgeauth_core::connections::Connection,
    logout: &edgeauth_core::backchannel::LogoutToken,
) -> Result<(), Response> {
    let kv = Kv::open()?;
    let t = &settings.tenant;
    let mut people = Vec::new();
    if let Some(sub) = &logout.sub
        && let Some(p) = named_by(&kv, t, &kv_schema::profile_identity(t, &connection.id, sub))?
        && p.has_identity(&connection.id, sub)
    {
        people.push(p.id);
    }
    if let Some(sid) = &logout.sid {
        let now = crate::io::Clock::now().secs;
        let stored = kv
            .get_live(&kv_schema::provider_sid(t, &connection.id, sid), now)
            .map_err(|_| pages::storage_unavailable())?;
        if let Some(id) = stored
            .and_then(|v| String::from_utf8(v).ok())
            .filter(|id| profiles::valid_id(id))
        {
            people.push(id);
        }
    }
    people.dedup();
    for id in people {
        revoke_person(&kv, t, &id)?;
    }
    Ok(())
}
