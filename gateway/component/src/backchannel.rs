//! `POST /.edgeauth/backchannel-logout[/<connection>]`: OIDC Back-Channel
//! Logout. The checks are core's (`edgeauth_core::backchannel`); this reads
//! the body, the provider's keys and the store.

use edgeauth_core::Response;
use edgeauth_core::backchannel::{self, LogoutError};
use edgeauth_core::connections::Connection;
use edgeauth_core::id_token::IdTokenError;
use edgeauth_core::kv_schema;
use edgeauth_core::settings::Settings;
use spin_sdk::http::IncomingRequest;

use crate::io::{self, ProviderState};

pub async fn handle(
    settings: &Settings,
    connection: &Connection,
    req: IncomingRequest,
    now: u64,
) -> Response {
    let token = match io::read_body(req, backchannel::MAX_BODY).await {
        Ok(body) => backchannel::token_of(&body),
        Err(_) => Err(LogoutError::NoToken),
    };
    let token = match token {
        Ok(t) => t,
        Err(e) => return backchannel::refused(&e),
    };
    let mut state = match ProviderState::load(connection, now).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let issuer = state.cache.metadata.issuer.clone();
    let jwks = match state.jwks(connection, now, false).await {
        Ok(j) => j,
        Err(r) => return r,
    };
    let check = |jwks| backchannel::verify(jwks, &token, &issuer, &connection.client_id, now);
    let verified = match check(&jwks) {
        // The provider may have rotated its keys since they were cached.
        Err(LogoutError::Token(IdTokenError::UnknownKey)) if state.cache.may_refetch_jwks(now) => {
            match state.jwks(connection, now, true).await {
                Ok(fresh) => check(&fresh),
                Err(r) => return r,
            }
        }
        other => other,
    };
    let logout = match verified {
        Ok(t) => t,
        Err(e) => {
            eprintln!("edgeauth: back-channel logout refused: {e}");
            return backchannel::refused(&e);
        }
    };
    // Used once: kept until the token could no longer pass the age check.
    let marker = kv_schema::logout_used(
        &issuer,
        &logout.jti,
        logout.iat + backchannel::MAX_AGE_SECS + 120,
    );
    match io::mark_once(&marker, now) {
        Ok(true) => {}
        Ok(false) => return backchannel::refused(&LogoutError::Replayed),
        Err(r) => return r,
    }
    if let Err(r) = crate::profile_store::logout_from_provider(settings, connection, &logout) {
        return r;
    }
    backchannel::done()
}
