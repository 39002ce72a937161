//! OpenID Connect Back-Channel Logout 1.0: a provider ends the person's
//! gateway sessions by POSTing a logout token to
//! `/.edgeauth/backchannel-logout[/<connection>]` when their session at the
//! provider ends.
//!
//! The token is a JWT the provider signs with its ID-token keys (§2.4);
//! it is checked as §2.6 asks: signature by the connection's JWKS, `iss`,
//! `aud` (this connection's client id), `iat` (recent), a `jti` used once
//! (single-use marker, `kv_schema::logout_used`), the back-channel logout
//! event in `events`, no `nonce` (so an ID token can never pass as one),
//! and `sub` and/or `sid`.
//!
//! What it ends: every session of the person it names, on every instance
//! (`crate::revocation::person_entry`: the person's profile, found through
//! the identity index for `sub`, or the sid index written at sign-in for
//! `sid`). That is broader than the provider's session when the person is
//! signed in through several connections: the safe side.

use std::collections::HashSet;

use jwt_simple::prelude::{Duration, UnixTimeStamp, VerificationOptions};
use serde_json::{Value, json};

use crate::Response;
use crate::id_token::{IdTokenError, Jwks};
use crate::pages;

/// The member of `events` that makes a JWT a logout token (§2.4).
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";
/// A logout token issued longer ago than this is refused (§2.6 step 8
/// lets the RP bound it; the provider sends it when the session ends).
pub const MAX_AGE_SECS: u64 = 300;
const CLOCK_SKEW_SECS: u64 = 60;
/// The form body is small: one token.
pub const MAX_BODY: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutToken {
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub jti: String,
    pub iat: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogoutError {
    /// Not `application/x-www-form-urlencoded` with one `logout_token`.
    NoToken,
    Token(IdTokenError),
    MissingClaim(&'static str),
    /// `iat` too old or in the future.
    Stale,
    /// No back-channel logout event in `events`.
    NotALogoutToken,
    /// A `nonce`: an ID token, not a logout token.
    HasNonce,
    /// This `jti` was used before.
    Replayed,
}

impl std::fmt::Display for LogoutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogoutError::NoToken => f.write_str("the body must be a form with one logout_token"),
            LogoutError::Token(e) => write!(f, "{e}"),
            LogoutError::MissingClaim(c) => write!(f, "the logout token has no `{c}`"),
            LogoutError::Stale => f.write_str("the logout token is too old or from the future"),
            LogoutError::NotALogoutToken => {
                f.write_str("the logout token has no back-channel logout event")
            }
            LogoutError::HasNonce => f.write_str("a logout token must not carry a nonce"),
            LogoutError::Replayed => f.write_str("the logout token was used before"),
        }
    }
}

/// The `logout_token` of the POSTed form; exactly one.
pub fn token_of(body: &[u8]) -> Result<String, LogoutError> {
    let mut tokens = url::form_urlencoded::parse(body)
        .filter(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned());
    match (tokens.next(), tokens.next()) {
        (Some(t), None) if !t.is_empty() => Ok(t),
        _ => Err(LogoutError::NoToken),
    }
}

/// Checks a logout token (§2.6) for the provider `issuer` and the client
/// `client_id`. The `jti`'s single use is the caller's (it needs the store).
pub fn verify(
    jwks: &Jwks,
    token: &str,
    issuer: &str,
    client_id: &str,
    now: u64,
) -> Result<LogoutToken, LogoutError> {
    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from([issuer.to_owned()])),
        allowed_audiences: Some(HashSet::from([client_id.to_owned()])),
        time_tolerance: Some(Duration::from_secs(CLOCK_SKEW_SECS)),
        artificial_time: Some(UnixTimeStamp::from_secs(now)),
        ..Default::default()
    };
    let claims = jwks
        .verify_any(token, options)
        .map_err(LogoutError::Token)?;
    let iat = claims
        .issued_at
        .ok_or(LogoutError::MissingClaim("iat"))?
        .as_secs();
    if iat > now + CLOCK_SKEW_SECS || iat + MAX_AGE_SECS < now {
        return Err(LogoutError::Stale);
    }
    let jti = claims.jwt_id.ok_or(LogoutError::MissingClaim("jti"))?;
    // Any `nonce` member, even `null` (which the typed claims read as none).
    if claims.nonce.is_some() || crate::encoding::jwt_payload(token).contains_key("nonce") {
        return Err(LogoutError::HasNonce);
    }
    let custom = claims.custom.as_object().cloned().unwrap_or_default();
    let is_logout = custom
        .get("events")
        .and_then(Value::as_object)
        .and_then(|e| e.get(EVENT))
        .is_some_and(Value::is_object);
    if !is_logout {
        return Err(LogoutError::NotALogoutToken);
    }
    let sid = custom
        .get("sid")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let sub = claims.subject.filter(|s| !s.is_empty());
    if sub.is_none() && sid.is_none() {
        return Err(LogoutError::MissingClaim("sub or sid"));
    }
    Ok(LogoutToken { sub, sid, jti, iat })
}

/// 200, nothing cached (§2.8).
pub fn done() -> Response {
    let mut r = pages::json(http::StatusCode::OK, "{}".into());
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

/// Logout tokens come by `POST` only (§2.5).
pub fn method_not_allowed() -> Response {
    let mut r = pages::error(
        http::StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "Use POST.",
        true,
    );
    r.headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
    r
}

/// 400 with the reason (§2.8: `invalid_request`).
pub fn refused(e: &LogoutError) -> Response {
    let mut r = pages::json(
        http::StatusCode::BAD_REQUEST,
        json!({"error": "invalid_request", "error_description": e.to_string()}).to_string(),
    );
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::b64url;
    use jwt_simple::prelude::*;

    const NOW: u64 = 1_800_000_000;
    const ISS: &str = "https://idp.example";

    fn key() -> (Ed25519KeyPair, Jwks) {
        let kp = Ed25519KeyPair::generate().with_key_id("k1");
        let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1",
                                    "x": b64url(&kp.public_key().to_bytes())}]});
        let jwks = Jwks::parse(jwks.to_string().as_bytes()).unwrap();
        (kp, jwks)
    }

    fn token(
        kp: &Ed25519KeyPair,
        custom: Value,
        edit: impl Fn(JWTClaims<Value>) -> JWTClaims<Value>,
    ) -> String {
        let claims = JWTClaims {
            issued_at: Some(UnixTimeStamp::from_secs(NOW - 5)),
            expires_at: Some(UnixTimeStamp::from_secs(NOW + 120)),
            invalid_before: None,
            issuer: Some(ISS.into()),
            subject: Some("alice".into()),
            audiences: Some(Audiences::AsString("gw".into())),
            jwt_id: Some("j-1".into()),
            nonce: None,
            custom,
        };
        kp.sign(edit(claims)).unwrap()
    }

    fn events() -> Value {
        json!({"events": {EVENT: {}}, "sid": "s-1"})
    }

    #[test]
    fn a_logout_token_names_the_subject_and_session() {
        let (kp, jwks) = key();
        let t = verify(&jwks, &token(&kp, events(), |c| c), ISS, "gw", NOW).unwrap();
        assert_eq!(t.sub.as_deref(), Some("alice"));
        assert_eq!(t.sid.as_deref(), Some("s-1"));
        assert_eq!(t.jti, "j-1");
        let sid_only = token(&kp, events(), |mut c| {
            c.subject = None;
            c
        });
        assert!(
            verify(&jwks, &sid_only, ISS, "gw", NOW)
                .unwrap()
                .sub
                .is_none()
        );
    }

    #[test]
    fn forged_and_misused_tokens_are_refused() {
        let (kp, jwks) = key();
        let (other, _) = key();
        let bad = |t: String| verify(&jwks, &t, ISS, "gw", NOW).unwrap_err();
        assert!(
            matches!(bad(token(&other, events(), |c| c)), LogoutError::Token(_)),
            "another key"
        );
        assert!(matches!(
            bad(token(&kp, events(), |mut c| {
                c.audiences = Some(Audiences::AsString("other-client".into()));
                c
            })),
            LogoutError::Token(_)
        ));
        assert!(matches!(
            bad(token(&kp, events(), |mut c| {
                c.issuer = Some("https://evil.example".into());
                c
            })),
            LogoutError::Token(_)
        ));
        assert_eq!(
            bad(token(&kp, json!({"sid": "s-1"}), |c| c)),
            LogoutError::NotALogoutToken
        );
        assert_eq!(
            bad(token(
                &kp,
                json!({"events": {"other": {}}, "sid": "s"}),
                |c| c
            )),
            LogoutError::NotALogoutToken
        );
        assert_eq!(
            bad(token(&kp, events(), |mut c| {
                c.nonce = Some("n".into());
                c
            })),
            LogoutError::HasNonce
        );
        assert_eq!(
            bad(token(&kp, events(), |mut c| {
                c.jwt_id = None;
                c
            })),
            LogoutError::MissingClaim("jti")
        );
        assert_eq!(
            bad(token(&kp, json!({"events": {EVENT: {}}}), |mut c| {
                c.subject = None;
                c
            })),
            LogoutError::MissingClaim("sub or sid")
        );
        assert_eq!(
            bad(token(&kp, events(), |mut c| {
                c.issued_at = Some(UnixTimeStamp::from_secs(NOW - MAX_AGE_SECS - 1));
                c.expires_at = None;
                c
            })),
            LogoutError::Stale
        );
    }

    #[test]
    fn the_form_carries_exactly_one_token() {
        assert_eq!(token_of(b"logout_token=abc").unwrap(), "abc");
        assert_eq!(
            token_of(b"logout_token=a&logout_token=b"),
            Err(LogoutError::NoToken)
        );
        assert_eq!(token_of(b"other=1"), Err(LogoutError::NoToken));
        assert_eq!(token_of(b"logout_token="), Err(LogoutError::NoToken));
    }
}
