//! Starting a login: authorization code flow with PKCE (S256), `state` and
//! `nonce`, all bound to a short-lived encrypted login cookie.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use crate::cookies::{self, Jar};
use crate::encoding::{b64url, random_token};
use crate::pages;
use crate::provider::ProviderMetadata;
use crate::seal::Purpose;
use crate::settings::Settings;
use crate::{Response, Rng};

/// A login must finish within this time.
pub const LOGIN_TTL_SECS: u64 = 600;

/// The login transaction, kept only in the sealed login cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginState {
    #[serde(rename = "s")]
    pub state: String,
    #[serde(rename = "n")]
    pub nonce: String,
    #[serde(rename = "v")]
    pub verifier: String,
    #[serde(rename = "r")]
    pub return_to: String,
    #[serde(rename = "t")]
    pub started_at: u64,
}

impl LoginState {
    pub fn new(return_to: String, now: u64, rng: Rng<'_>) -> LoginState {
        LoginState {
            state: random_token(rng, 24),
            nonce: random_token(rng, 24),
            verifier: random_token(rng, 32),
            return_to,
            started_at: now,
        }
    }

    pub fn code_challenge(&self) -> String {
        b64url(&Sha256::digest(self.verifier.as_bytes()))
    }

    pub fn expired(&self, now: u64) -> bool {
        self.started_at > now || now - self.started_at > LOGIN_TTL_SECS
    }
}

pub fn authorization_url(
    settings: &Settings,
    meta: &ProviderMetadata,
    login: &LoginState,
) -> Result<String, url::ParseError> {
    let mut url = Url::parse(&meta.authorization_endpoint)?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &settings.client_id)
        .append_pair("redirect_uri", &settings.callback_url())
        .append_pair("scope", &settings.scopes)
        .append_pair("state", &login.state)
        .append_pair("nonce", &login.nonce)
        .append_pair("code_challenge", &login.code_challenge())
        .append_pair("code_challenge_method", "S256");
    Ok(url.into())
}

/// Redirects the browser to the IdP and sets the login cookie.
/// `return_to` must already be validated (see [`crate::redirect`]).
pub fn start(
    settings: &Settings,
    meta: &ProviderMetadata,
    return_to: String,
    now: u64,
    rng: Rng<'_>,
) -> Response {
    let login = LoginState::new(return_to, now, rng);
    let Ok(location) = authorization_url(settings, meta, &login) else {
        return pages::error(
            http::StatusCode::BAD_GATEWAY,
            "Sign-in is unavailable",
            "The identity provider's authorization endpoint is not a valid URL.",
            false,
        );
    };
    let sealed = settings.session_keys.seal(
        Purpose::Login,
        &serde_json::to_vec(&login).expect("login state serializes"),
        rng,
    );
    let mut resp = pages::redirect(&location);
    pages::add_cookie(
        &mut resp,
        &cookies::set(settings, Jar::Login, sealed, LOGIN_TTL_SECS),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{counter_rng, provider_meta as meta, settings_with};

    #[test]
    fn redirects_with_pkce_state_and_nonce() {
        let s = settings_with(&[]);
        let mut rng = counter_rng();
        let resp = start(&s, &meta(), "/after?x=1".into(), 1000, &mut rng);
        assert_eq!(resp.status(), 302);
        let loc = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
        let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
        assert_eq!(q["tenant"], "x", "existing query parameters are kept");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(
            q["redirect_uri"],
            "http://127.0.0.1:3000/.edgeauth/callback"
        );
        assert!(q["state"].len() >= 32 && q["nonce"].len() >= 32);

        // The cookie opens to the same state, and the challenge matches its verifier.
        let cookie = resp.headers()["set-cookie"].to_str().unwrap();
        let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
        let login: LoginState =
            serde_json::from_slice(&s.session_keys.open(Purpose::Login, value).unwrap()).unwrap();
        assert_eq!(login.state, q["state"]);
        assert_eq!(login.nonce, q["nonce"]);
        assert_eq!(login.code_challenge(), q["code_challenge"]);
        assert_eq!(login.return_to, "/after?x=1");
        assert!(
            !cookie.contains(&login.verifier),
            "verifier must not be readable"
        );
    }

    #[test]
    fn each_login_is_unique_and_expires() {
        let mut rng = counter_rng();
        let a = LoginState::new("/".into(), 1000, &mut rng);
        let b = LoginState::new("/".into(), 1000, &mut rng);
        assert_ne!(a.state, b.state);
        assert_ne!(a.verifier, b.verifier);
        assert!(!a.expired(1000 + LOGIN_TTL_SECS));
        assert!(a.expired(1000 + LOGIN_TTL_SECS + 1));
        assert!(a.expired(999));
    }
}
