//! edgeauth as a Spin component: reads settings from Spin variables, performs
//! the I/O the core asks for (IdP calls, KV, the origin) and streams the
//! origin's answer back. Decisions are all made in `edgeauth_core`.

mod after;
mod backchannel;
mod events;
mod io;
mod kv;
mod lifecycle;
mod profile_admin;
mod profile_store;
mod profile_writes;
mod proxy;
mod rules;
mod tenant_admin;
mod vars;

use edgeauth_core::Response;
use edgeauth_core::access::{self, Access};
use edgeauth_core::callback;
use edgeauth_core::connections::{Connection, Kind};
use edgeauth_core::endpoints;
use edgeauth_core::id_token::IdTokenError;
use edgeauth_core::identity::Identity;
use edgeauth_core::linking;
use edgeauth_core::login;
use edgeauth_core::logout;
use edgeauth_core::oauth2;
use edgeauth_core::pages;
use edgeauth_core::redirect::return_path_or_root;
use edgeauth_core::routes::{self, Route, query_param};
use edgeauth_core::settings::{Settings, VARIABLES};
use edgeauth_core::tenant_docs;
use edgeauth_core::tenants::{self, DocRules, Served, Unserved};
use http::Method;
use http::request::Parts;
use spin_sdk::http::{IncomingRequest, ResponseOutparam};
use spin_sdk::http_component;

use crate::io::{Clock, ProviderState};

/// The settings of the tenant the request's host selects, and the rules its
/// document brings (with `tenant_store = "kv"`, one KV read for a host the
/// `tenants` variable does not have).
fn load_settings(parts: &Parts) -> Result<Served, Response> {
    // Exactly one Host: with two, which one picks the tenant would depend on
    // the server in front, so the request belongs to no tenant.
    let mut hosts = parts.headers.get_all(http::header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(h), None) => h.to_str().ok(),
        _ => None,
    };
    let get = |name: &str| {
        debug_assert!(
            VARIABLES.iter().any(|(n, _)| *n == name) || tenants::VARIABLES.contains(&name)
        );
        vars::get(name)
    };
    let read = |key: &str| {
        let kv = kv::Kv::open().map_err(|_| ())?;
        kv.get_raw(key).map_err(|_| ())
    };
    tenants::serve(get, host, read).map_err(|unserved| match unserved {
        // Logged with the page's reference by io::respond.
        Unserved::Misconfigured(problem) => pages::misconfigured(&problem.to_string()),
        Unserved::UnknownHost(host) => pages::unknown_host(&host, pages::wants_json(parts)),
        Unserved::StoreUnavailable => pages::storage_unavailable(),
    })
}

#[http_component]
async fn handle(req: IncomingRequest, out: ResponseOutparam) {
    let clock = Clock::now();
    let mut parts = io::request_parts(&req);
    // The gateway's own API, on any host (before a tenant is chosen).
    if edgeauth_core::profile_admin::is_admin_path(parts.uri.path()) {
        return io::respond(out, crate::profile_admin::handle(&parts, req).await).await;
    }
    if tenant_docs::is_admin_path(parts.uri.path()) {
        return io::respond(out, tenant_admin::handle(&parts, req).await).await;
    }
    let Served {
        settings,
        rules: doc_rules,
    } = match load_settings(&parts) {
        Ok(s) => s,
        Err(r) => return io::respond(out, r).await,
    };
    if let Err(r) = rules::prepare(&settings, &doc_rules, &mut parts) {
        return io::respond(out, r).await;
    }
    let route = routes::route(&parts);
    // Login events are written and retried on sign-in and sign-out requests
    // only, never on the authenticated hot path.
    let events_retry = matches!(
        route,
        Route::Login | Route::Callback(_) | Route::Logout | Route::UnknownReserved
    );
    let want_assertion = matches!(route, Route::Protected(_));
    let kv = match io::SessionKv::load(&settings, &mut parts, want_assertion, clock.secs) {
        Ok(kv) => kv,
        Err(r) => return io::respond(out, r).await,
    };
    let response = match route {
        Route::Protected(path) => {
            let cached = kv.cached_assertion.as_deref();
            match access::authorize_with_cache(&settings, &parts, &path, clock.secs, cached) {
                Access::Forward(plan) => {
                    if let Some(jwt) = &plan.fresh_assertion {
                        kv.remember(jwt, clock.secs);
                    }
                    match lifecycle::before_forward(&settings, &parts, *plan, clock.secs).await {
                        Ok(plan) => return proxy::forward(&settings, req, &parts, plan, out).await,
                        Err(r) => r,
                    }
                }
                Access::Respond(r) => r,
            }
        }
        Route::BadPath(e) => access::bad_path(&parts, e),
        Route::Health => endpoints::health(),
        Route::Jwks => endpoints::jwks(&settings),
        Route::Userinfo => endpoints::userinfo(&settings, &parts, clock.secs),
        Route::BackchannelLogout(id) => match settings.connection_for_callback(id.as_deref()) {
            Some(c) if c.is_oidc() && parts.method == Method::POST => {
                backchannel::handle(&settings, c, req, clock.secs).await
            }
            Some(c) if c.is_oidc() => edgeauth_core::backchannel::method_not_allowed(),
            _ => endpoints::not_found(&parts),
        },
        Route::Link => linking::page(
            &settings,
            &parts.headers,
            routes::query_param(&parts, "skip").as_deref() == Some("1"),
            clock.secs,
        ),
        Route::Login => start_login(&settings, &parts, clock.secs).await,
        Route::Callback(id) => match settings.connection_for_callback(id.as_deref()) {
            Some(connection) => {
                finish_login(&settings, connection, &doc_rules, &parts, clock.secs).await
            }
            None => endpoints::not_found(&parts),
        },
        Route::Logout if matches!(parts.method, Method::GET | Method::POST) => {
            // Read before the session is revoked: whose provider session to end.
            events::logging_out(&settings, &parts, clock.secs);
            let connection = logout::session_connection(&settings, &parts, clock.secs);
            if let Err(r) = io::revoke_sessions(&settings, &parts, clock.secs) {
                return io::respond(out, r).await;
            }
            let state = match connection {
                Some(c) => ProviderState::load(c, clock.secs)
                    .await
                    .ok()
                    .map(|s| (c, s)),
                None => None,
            };
            let provider = state.as_ref().map(|(c, s)| (*c, &s.cache.metadata));
            logout::start(&settings, provider, &parts, clock.secs, &mut io::rng)
        }
        Route::Logout => logout::method_not_allowed(),
        Route::LoggedOut => logout::finish(&settings, &parts, clock.secs),
        Route::UnknownReserved => match events::reserved(&settings, &parts, clock.secs).await {
            Some(r) => r,
            None => match rules::reserved(&settings, &doc_rules, &parts, req, clock.secs).await {
                Some(r) => r,
                None => endpoints::not_found(&parts),
            },
        },
    };
    profile_store::remember_session(&settings, &parts, &response, clock.secs);
    events::respond(&settings, out, response, events_retry, clock.secs).await
}

async fn start_login(settings: &Settings, parts: &Parts, now: u64) -> Response {
    let (connection, (login_hint, link_proof)) = match login::choose(settings, parts) {
        login::Choice::Go(c, hint, link_proof) => (c, (hint, link_proof)),
        login::Choice::Page(page) => return page,
    };
    let return_to = return_path_or_root(query_param(parts, "rd").as_deref(), &settings.public_url);
    let state;
    let authorization_endpoint = match &connection.kind {
        Kind::Oidc { .. } => match ProviderState::load(connection, now).await {
            Ok(s) => {
                state = s;
                &state.cache.metadata.authorization_endpoint
            }
            Err(r) => return r,
        },
        Kind::OAuth2(o) => &o.authorization_endpoint,
    };
    login::start(
        settings,
        login::Target {
            connection,
            authorization_endpoint,
        },
        return_to,
        // OpenID providers take it as a hint (OIDC Core 3.1.2.1).
        (
            login_hint.as_deref().filter(|_| connection.is_oidc()),
            link_proof,
        ),
        now,
        &mut io::rng,
    )
}

async fn finish_login(
    settings: &Settings,
    connection: &Connection,
    doc_rules: &DocRules,
    parts: &Parts,
    now: u64,
) -> Response {
    let start = match callback::begin(settings, connection, parts, now) {
        Ok(s) => s,
        Err(r) => return r,
    };
    // Mark the state used before redeeming the code, so a replayed callback
    // fails even while the first one is still in flight.
    match io::mark_once(&callback::replay_key(&start), now) {
        Ok(true) => {}
        Ok(false) => return callback::replayed(settings),
        Err(r) => return r,
    }
    let (identity, mut tokens) = match &connection.kind {
        Kind::Oidc { .. } => match oidc_exchange(settings, connection, &start, now).await {
            Ok(done) => done,
            Err(r) => return r,
        },
        Kind::OAuth2(_) => match oauth2_exchange(settings, connection, &start).await {
            Ok(done) => done,
            Err(r) => return r,
        },
    };
    if let Err(r) = lifecycle::store_grant(settings, connection, &mut tokens, now) {
        return r;
    }
    let (identity, plan) =
        match profile_store::record(settings, parts, identity, &tokens.id_token, now) {
            Ok(found) => found,
            Err(r) => return r,
        };
    // Linking with proof (`edgeauth_core::linking`): this sign-in may prove
    // the offer the browser holds, or need one itself.
    let proven = linking::proven(settings, &start.login, &identity, &parts.headers, now);
    let mut person = plan.profile.clone();
    if let Some(offer) = &proven {
        match profile_store::link_proven(settings, offer, now) {
            Ok(Some(merged)) => {
                events::linked(settings, &identity, parts, offer, now);
                person = merged.profile;
            }
            Ok(None) => {}
            Err(r) => return r,
        }
    }
    let offer = linking::offer(
        settings,
        &identity,
        &plan,
        &start.login.return_to,
        now,
        &mut io::rng,
    );
    let sign_in = events::signing_in(settings, &identity, parts);
    let signed_in = rules::SignedIn {
        identity,
        person,
        tokens,
    };
    let mut response = rules::complete(settings, doc_rules, parts, signed_in, &start, now).await;
    events::signed_in(settings, sign_in, now);
    if let Some(offer) = &offer {
        response = linking::redirect_to_offer(settings, response, offer, &mut io::rng);
    }
    if proven.is_some() {
        linking::forget(settings, &mut response);
    }
    response
}

/// Code for an access token, then the profile (and, for GitHub, the email
/// list): the requests, their order and every decision are the core's
/// (`oauth2::Exchange`); this only carries them.
async fn oauth2_exchange(
    settings: &Settings,
    connection: &Connection,
    start: &callback::CallbackStart,
) -> Result<(Identity, callback::Tokens), Response> {
    let redirect_uri = settings.callback_url(connection);
    let grant = oauth2::Grant {
        code: &start.code,
        verifier: &start.login.verifier,
        redirect_uri: &redirect_uri,
    };
    let failed = |e: oauth2::SigninError| oauth2::failure_page(settings, connection, &e);
    let (mut exchange, mut request) = oauth2::Exchange::start(connection, grant).map_err(failed)?;
    loop {
        let (status, body) = io::fetch_for(connection, request, io::MAX_IDP_BODY)
            .await
            .map_err(|e| {
                pages::idp_unavailable(&format!("its {} {e}", exchange.waiting_for()), false)
            })?;
        match exchange.receive(status, &body).map_err(failed)? {
            oauth2::Step::Fetch(next) => request = next,
            // No ID token: nothing to keep for logout's `id_token_hint`.
            oauth2::Step::Done(identity) => return Ok((identity, callback::Tokens::none())),
        }
    }
}

/// Code for tokens at an OpenID provider, then the ID token verified.
async fn oidc_exchange(
    settings: &Settings,
    connection: &Connection,
    start: &callback::CallbackStart,
    now: u64,
) -> Result<(Identity, callback::Tokens), Response> {
    let mut state = ProviderState::load(connection, now).await?;
    callback::check_iss_sent(settings, &state.cache.metadata, start)?;
    let request = callback::token_request(settings, connection, &state.cache.metadata, start);
    let (status, body) = io::fetch_for(connection, request, io::MAX_IDP_BODY)
        .await
        .map_err(|e| pages::idp_unavailable(&format!("its token endpoint {e}"), false))?;
    let tokens = callback::parse_token_response(settings, status, &body)?;
    let jwks = state.jwks(connection, now, false).await?;
    let identity = match callback::verify(connection, &jwks, start, &tokens, now) {
        Ok(id) => id,
        Err(IdTokenError::UnknownKey) if state.cache.may_refetch_jwks(now) => {
            // The IdP may have rotated its keys since we cached them.
            let fresh = state.jwks(connection, now, true).await?;
            callback::verify(connection, &fresh, start, &tokens, now)
                .map_err(|e| callback::verification_failed(settings, &e))?
        }
        Err(e) => return Err(callback::verification_failed(settings, &e)),
    };
    Ok((identity, tokens))
}
