//! The I/O of a session's lifecycle (`edgeauth_core::lifecycle`,
//! `edgeauth_core::refresh`): storing the grant at sign-in, and around
//! forwarding, re-issuing the cookie and re-validating at the provider.
//! Every decision is the core's; this reads and writes KV, calls the token
//! endpoint and waits.

use edgeauth_core::Response;
use edgeauth_core::access::{self, Forward};
use edgeauth_core::callback::Tokens;
use edgeauth_core::connections::Connection;
use edgeauth_core::lifecycle::{self, Duty};
use edgeauth_core::pages;
use edgeauth_core::refresh::{self, Answer, Grant, Next};
use edgeauth_core::revocation;
use edgeauth_core::session::Session;
use edgeauth_core::settings::Settings;
use http::request::Parts;

use crate::io::{self, ProviderState};
use crate::kv::Kv;

/// Keeps what the provider granted beyond the ID token server-side, and
/// names it in `tokens` for the session to carry. A grant that cannot be
/// stored fails the sign-in: the session would end at its first refresh.
pub fn store_grant(
    settings: &Settings,
    connection: &Connection,
    tokens: &mut Tokens,
    now: u64,
) -> Result<(), Response> {
    let granted = std::mem::take(&mut tokens.granted);
    let Some(grant) = Grant::start(settings, connection, granted, now, &mut io::rng) else {
        return Ok(());
    };
    if !grant.fits(settings, &mut io::rng) {
        eprintln!(
            "edgeauth: connection {}: the provider's tokens are too large to keep; the session is not re-validated",
            connection.id
        );
        return Ok(());
    }
    let expires_at = now + settings.session_lifetime_secs;
    let (key, value) = grant.sealed(settings, expires_at, &mut io::rng);
    Kv::open()?
        .put(&key, &value, expires_at, now)
        .map_err(|_| pages::storage_unavailable())?;
    tokens.session = Some(grant.handle());
    Ok(())
}

/// How long a request that needs the token another request is refreshing
/// waits for it, and how often it looks.
const WAIT_POLLS: u32 = 100;
const WAIT_POLL_MS: u64 = 50;

/// The lifecycle duties of a request about to be forwarded: the plan to
/// forward (with a re-issued cookie and the access token when due), or the
/// answer instead (session ended, provider down past the grace).
pub async fn before_forward(
    settings: &Settings,
    parts: &Parts,
    mut plan: Forward,
    now: u64,
) -> Result<Forward, Response> {
    let Some(session) = plan.session.take() else {
        return Ok(plan);
    };
    let reissue_due = match lifecycle::duty(settings, &session, plan.passes_token, now) {
        Duty::Nothing => return Ok(plan),
        Duty::Reissue => None,
        Duty::Grant { key } => {
            let (due, token) =
                grant_step(settings, parts, &session, &key, plan.passes_token, now).await?;
            if let Some(token) = token {
                edgeauth_core::forward::add_access_token(&mut plan.headers, &token);
            }
            match due {
                Some(due) => Some(due),
                None if settings.lifecycle.wants_reissue(&session, now) => None,
                None => return Ok(plan),
            }
        }
    };
    plan.set_cookie = lifecycle::reissue(settings, &session, reissue_due, now, &mut io::rng);
    Ok(plan)
}

/// Runs [`refresh::next`] to its end: `(new due time, access token)`.
async fn grant_step(
    settings: &Settings,
    parts: &Parts,
    session: &Session,
    key: &str,
    passes_token: bool,
    now: u64,
) -> Result<(Option<u64>, Option<String>), Response> {
    let kv = Kv::open()?;
    let read = |kv: &Kv| -> Result<Option<Grant>, Response> {
        let stored = kv.get_raw(key).map_err(|_| pages::storage_unavailable())?;
        Ok(stored.and_then(|v| refresh::open(settings, session, &v, now)))
    };
    let mut grant = read(&kv)?;
    let mut polls = 0;
    loop {
        let next = refresh::next(settings, session, grant.as_ref(), passes_token, now);
        let next = match (next, &grant) {
            (Next::Refresh { marker }, Some(g)) => {
                if io::mark_once(&marker, now)? {
                    redeem(settings, session, g, passes_token, now).await?
                } else {
                    refresh::lost_race(settings, g, passes_token, now)
                }
            }
            (next, _) => next,
        };
        match next {
            Next::Forward {
                reissue_due,
                access_token,
            } => return Ok((reissue_due, access_token)),
            Next::Wait if polls < WAIT_POLLS => {
                polls += 1;
                std::thread::sleep(std::time::Duration::from_millis(WAIT_POLL_MS));
                grant = read(&kv)?;
            }
            Next::Wait | Next::Unavailable => {
                return Err(refresh::unavailable(pages::wants_json(parts)));
            }
            Next::Revoked => return Err(ended(settings, parts, session, now)),
            Next::Refresh { .. } => {
                // No grant to refresh with: `next` never asks for that.
                return Err(ended(settings, parts, session, now));
            }
        }
    }
}

/// Calls the token endpoint with the grant's refresh token and stores the
/// outcome (next generation) before anything else reads it.
async fn redeem(
    settings: &Settings,
    session: &Session,
    grant: &Grant,
    passes_token: bool,
    now: u64,
) -> Result<Next, Response> {
    let answer = match settings
        .connections
        .iter()
        .find(|c| c.id == grant.connection)
    {
        Some(connection) => call_provider(connection, grant, now).await,
        // The connection was removed from the tenant: nothing can vouch for
        // the person any more.
        None => Answer::Revoked,
    };
    if let Answer::NoAnswer(why) = &answer {
        eprintln!(
            "edgeauth: connection {}: refresh failed: {why}",
            grant.connection
        );
    }
    let (stored, next) = refresh::settle(settings, session, grant, answer, passes_token, now);
    let (key, value) = stored.sealed(settings, session.expires_at, &mut io::rng);
    Kv::open()?
        .put(&key, &value, session.expires_at, now)
        .map_err(|_| pages::storage_unavailable())?;
    Ok(next)
}

async fn call_provider(connection: &Connection, grant: &Grant, now: u64) -> Answer {
    let Ok(state) = ProviderState::load(connection, now).await else {
        return Answer::NoAnswer("its discovery document could not be read".into());
    };
    let Some(request) =
        refresh::request(connection, state.cache.metadata.token_endpoint.uri(), grant)
    else {
        return Answer::Revoked;
    };
    match io::fetch_for(connection, request, io::MAX_IDP_BODY).await {
        Ok((status, body)) => refresh::answer(status, &body),
        Err(e) => Answer::NoAnswer(format!("its token endpoint {e}")),
    }
}

/// The session is over: on the revocation list on every instance, and the
/// browser signs in again.
fn ended(settings: &Settings, parts: &Parts, session: &Session, now: u64) -> Response {
    if session.expires_at > now {
        let (key, value, expires_at) =
            revocation::entry_for(&settings.tenant, &session.sid, session.expires_at);
        let written = Kv::open().and_then(|kv| {
            kv.put(&key, &value, expires_at, now)
                .map_err(|_| pages::storage_unavailable())
        });
        if let Err(r) = written {
            return r;
        }
    }
    let mut response = access::unauthenticated(parts, false);
    pages::add_cookie(
        &mut response,
        &edgeauth_core::cookies::clear(settings, edgeauth_core::cookies::Jar::Session),
    );
    response
}
