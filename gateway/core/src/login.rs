//! Starting a login: authorization code flow with PKCE (S256), `state` and
//! `nonce`, all bound to a short-lived encrypted login cookie.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use crate::cookies::{self, Jar};
use crate::encoding::{b64url, random_token};
use crate::pages;
use http::request::Parts;

use crate::connections::Connection;
use crate::provider::Endpoint;
use crate::redirect::return_path_or_root;
use crate::routes::query_param;
use crate::seal::Purpose;
use crate::settings::Settings;
use crate::{Response, Rng};
use crate::{chooser, chooser_page};

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
    /// Set when a tenant rule asked for a fresh authentication: the callback
    /// reports `reauthenticated` only if the ID token proves one.
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub step_up: Option<StepUp>,
    /// The connection this sign-in was started with: only its callback may
    /// complete it (IdP mix-up, RFC 9700 §4.4).
    #[serde(rename = "c", default = "legacy_connection")]
    pub connection: String,
    /// Started from the offer to link accounts (`crate::linking`): only
    /// such a sign-in may prove the profile the offer names.
    #[serde(rename = "k", default, skip_serializing_if = "std::ops::Not::not")]
    pub link_proof: bool,
}

/// Login cookies sealed before connections existed were all the legacy one's.
fn legacy_connection() -> String {
    crate::connections::LEGACY_ID.to_owned()
}

/// Where a sign-in goes: the connection and the authorization endpoint its
/// provider published (OIDC discovery) or was configured with (OAuth2).
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub connection: &'a Connection,
    pub authorization_endpoint: &'a Endpoint,
}

/// A fresh authentication asked of the provider (a rule's `require-reauth`).
///
/// Bound into the sealed login state rather than kept anywhere the browser
/// can influence: the authorization URL's `prompt`/`max_age` can be stripped
/// by the person before it reaches the IdP, so the only proof that the IdP
/// re-authenticated them is the ID token's `auth_time`, checked against what
/// was asked here (OIDC Core 3.1.2.1, 3.1.3.7 item 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepUp {
    /// `prompt=login`: the authentication must have happened after `asked_at`.
    #[serde(rename = "p")]
    pub prompt_login: bool,
    /// `max_age`: the authentication must be at most this old at the callback.
    #[serde(rename = "m", default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u32>,
    /// When the step-up was asked (the gateway's clock).
    #[serde(rename = "a")]
    pub asked_at: u64,
}

impl StepUp {
    /// The `max_age` sent to the provider. Always one: with `max_age` the ID
    /// token MUST carry `auth_time` (OIDC Core 3.1.2.1), which is what the
    /// callback checks. `prompt=login` alone asks for "now", i.e. 0.
    pub fn max_age_param(&self) -> u32 {
        self.max_age.unwrap_or(0)
    }

    /// Whether an ID token's `auth_time` (seconds) satisfies this step-up at
    /// `now`, allowing `skew` seconds between the clocks.
    pub fn satisfied_by(&self, auth_time: u64, now: u64, skew: u64) -> Result<(), StepUpError> {
        if auth_time > now.saturating_add(skew) {
            return Err(StepUpError::InFuture);
        }
        if self.prompt_login && auth_time.saturating_add(skew) < self.asked_at {
            return Err(StepUpError::NotFresh);
        }
        let max_age = u64::from(self.max_age_param());
        if now.saturating_sub(auth_time) > max_age.saturating_add(skew) {
            return Err(StepUpError::TooOld);
        }
        Ok(())
    }
}

/// Why an ID token does not prove the fresh authentication a step-up asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepUpError {
    /// No usable `auth_time` (missing, not a non-negative integer).
    NoAuthTime,
    /// The authentication happened before the step-up was asked.
    NotFresh,
    /// The authentication is older than the `max_age` asked for.
    TooOld,
    /// `auth_time` lies in the future.
    InFuture,
}

impl std::fmt::Display for StepUpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StepUpError::NoAuthTime => {
                "the ID token does not say when the person signed in (auth_time)"
            }
            StepUpError::NotFresh => "the person did not sign in again after the gateway asked",
            StepUpError::TooOld => "the sign-in is older than the maximum age asked for",
            StepUpError::InFuture => "the sign-in time (auth_time) lies in the future",
        })
    }
}

impl LoginState {
    pub fn new(connection: &str, return_to: String, now: u64, rng: Rng<'_>) -> LoginState {
        LoginState {
            connection: connection.to_owned(),
            state: random_token(rng, 24),
            nonce: random_token(rng, 24),
            verifier: random_token(rng, 32),
            return_to,
            started_at: now,
            step_up: None,
            link_proof: false,
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
    target: Target<'_>,
    login: &LoginState,
    login_hint: Option<&str>,
) -> Result<String, url::ParseError> {
    let connection = target.connection;
    let mut url = Url::parse(target.authorization_endpoint)?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &connection.client_id)
            .append_pair("redirect_uri", &settings.callback_url(connection));
        if !connection.scopes.is_empty() {
            q.append_pair("scope", &connection.scopes);
        }
        q.append_pair("state", &login.state);
        if connection.is_oidc() {
            q.append_pair("nonce", &login.nonce);
        }
        if connection.uses_pkce() {
            q.append_pair("code_challenge", &login.code_challenge())
                .append_pair("code_challenge_method", "S256");
        }
        if let Some(hint) = login_hint {
            q.append_pair("login_hint", hint);
        }
    }
    if let Some(step_up) = &login.step_up {
        let mut q = url.query_pairs_mut();
        if step_up.prompt_login {
            q.append_pair("prompt", "login");
        }
        q.append_pair("max_age", &step_up.max_age_param().to_string());
    }
    Ok(url.into())
}

/// Redirects the browser to the provider and sets the login cookie.
/// `return_to` must already be validated (see [`crate::redirect`]);
/// `login_hint` is the email the person gave on the chooser, if any;
/// `link_proof` whether the sign-in was started from the offer to link
/// accounts ([`Choice::Go`]).
pub fn start(
    settings: &Settings,
    target: Target<'_>,
    return_to: String,
    (login_hint, link_proof): (Option<&str>, bool),
    now: u64,
    rng: Rng<'_>,
) -> Response {
    let mut login = LoginState::new(&target.connection.id, return_to, now, rng);
    login.link_proof = link_proof;
    redirect_to_provider(settings, target, login, login_hint, rng)
}

/// [`start`] for a step-up a tenant rule asked for: the provider is asked for
/// a fresh authentication, and the request is bound into the login cookie so
/// the callback can check that the provider honoured it. Only OpenID
/// providers can prove one (`auth_time`); for others the step-up is refused.
pub fn start_step_up(
    settings: &Settings,
    target: Target<'_>,
    return_to: String,
    prompt_login: bool,
    max_age: Option<u32>,
    now: u64,
    rng: Rng<'_>,
) -> Response {
    if !target.connection.is_oidc() {
        return pages::error(
            http::StatusCode::FORBIDDEN,
            "Fresh sign-in not possible",
            "This site asked you to sign in again, but your sign-in option cannot prove a fresh \
             sign-in. Sign in with another option or contact the site's administrator.",
            false,
        );
    }
    let mut login = LoginState::new(&target.connection.id, return_to, now, rng);
    login.step_up = Some(StepUp {
        prompt_login,
        max_age,
        asked_at: now,
    });
    redirect_to_provider(settings, target, login, None, rng)
}

fn redirect_to_provider(
    settings: &Settings,
    target: Target<'_>,
    login: LoginState,
    login_hint: Option<&str>,
    rng: Rng<'_>,
) -> Response {
    let Ok(location) = authorization_url(settings, target, &login, login_hint) else {
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

/// What `/.edgeauth/login` does with a request.
#[derive(Debug)]
pub enum Choice<'s> {
    /// Straight to this connection, with the email the person typed (sent
    /// as `login_hint` to OpenID providers), and whether the person came
    /// from the offer to link accounts (`?link=1` with `?connection=`).
    Go(&'s Connection, Option<String>, bool),
    /// The chooser page.
    Page(Response),
}

/// Picks the connection a sign-in goes to ([`crate::chooser`]:
/// `?connection=<id>`, else the one whose email domains hold `?email=` or
/// `?login_hint=` (home-realm discovery), else the only one); otherwise the
/// chooser page ([`crate::chooser_page`]) with the validated return path.
pub fn choose<'s>(settings: &'s Settings, parts: &Parts) -> Choice<'s> {
    match chooser::choose(&settings.connections, &chooser::Asked::from_query(parts)) {
        chooser::Choice::Connection {
            connection,
            login_hint,
        } => {
            let link_proof = query_param(parts, "link").as_deref() == Some("1")
                && query_param(parts, "connection").as_deref() == Some(connection.id.as_str());
            Choice::Go(connection, login_hint, link_proof)
        }
        chooser::Choice::Chooser(ask) => {
            let return_to =
                return_path_or_root(query_param(parts, "rd").as_deref(), &settings.public_url);
            let offered = chooser::offered(&settings.connections);
            Choice::Page(chooser_page::page(&chooser_page::View {
                tenant_name: settings.display_name(),
                connections: &offered,
                return_to: &return_to,
                ask: &ask,
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{counter_rng, provider_meta as meta, settings_with};

    fn target<'a>(s: &'a Settings, m: &'a crate::provider::ProviderMetadata) -> Target<'a> {
        Target {
            connection: &s.connections[0],
            authorization_endpoint: &m.authorization_endpoint,
        }
    }

    #[test]
    fn redirects_with_pkce_state_and_nonce() {
        let s = settings_with(&[]);
        let m = meta();
        let mut rng = counter_rng();
        let resp = start(
            &s,
            target(&s, &m),
            "/after?x=1".into(),
            (None, false),
            1000,
            &mut rng,
        );
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

    fn two_connections() -> Settings {
        settings_with(&[
            (
                "connections",
                r#"[{"id": "social", "name": "Social", "kind": "oidc", "issuer": "http://127.0.0.2:9400", "client_id": "a", "client_secret": "s"},
                    {"id": "corp", "name": "Corp <SSO>", "kind": "oidc", "issuer": "http://127.0.0.2:9500", "client_id": "b", "client_secret": "s",
                     "email_domains": ["corp.example", "b\u00fccher.example"]}]"#,
            ),
            ("name", "Acme"),
        ])
    }

    fn choice(s: &Settings, uri: &str) -> Result<(String, Option<String>), Response> {
        let (parts, ()) = http::Request::get(uri).body(()).unwrap().into_parts();
        match choose(s, &parts) {
            Choice::Go(c, hint, _) => Ok((c.id.clone(), hint)),
            Choice::Page(p) => Err(p),
        }
    }

    #[test]
    fn one_connection_goes_straight_to_it() {
        let s = settings_with(&[]);
        assert_eq!(
            choice(&s, "/.edgeauth/login?rd=/x").unwrap(),
            ("default".into(), None)
        );
    }

    #[test]
    fn several_connections_show_the_chooser() {
        let s = two_connections();
        let page = choice(&s, "/.edgeauth/login?rd=/after%3Fq%3D1").unwrap_err();
        assert_eq!(page.status(), 200);
        let html = String::from_utf8(page.body().clone()).unwrap();
        assert!(html.contains("Acme"));
        assert!(html.contains("Corp &lt;SSO&gt;"), "names are escaped");
        assert!(html.contains("value=\"/after?q=1\""), "{html}");
        assert!(
            html.find("social") < html.find("corp"),
            "the tenant's order"
        );
        // An open redirect is not carried through.
        let page = choice(&s, "/.edgeauth/login?rd=//evil.example").unwrap_err();
        let html = String::from_utf8(page.body().clone()).unwrap();
        assert!(!html.contains("evil.example"));
    }

    #[test]
    fn connection_parameter_and_home_realm_discovery() {
        let s = two_connections();
        assert_eq!(
            choice(&s, "/.edgeauth/login?connection=corp").unwrap().0,
            "corp"
        );
        assert_eq!(
            choice(&s, "/.edgeauth/login?connection=nope")
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            choice(&s, "/.edgeauth/login?email=Staff%40CORP.example").unwrap(),
            ("corp".into(), Some("Staff@corp.example".into()))
        );
        assert_eq!(
            choice(&s, "/.edgeauth/login?email=x%40B%C3%9CCHER.example")
                .unwrap()
                .0,
            "corp"
        );
        let page = choice(&s, "/.edgeauth/login?email=x%40gmail.com").unwrap_err();
        assert_eq!(page.status(), 200);
        assert!(String::from_utf8_lossy(page.body()).contains("gmail.com"));
        // Look-alikes of the domain are not it.
        for email in [
            "x%40corp.example.evil",
            "x%40evilcorp.example",
            "x%40corp.example%40evil.example",
        ] {
            assert!(
                choice(&s, &format!("/.edgeauth/login?email={email}")).is_err(),
                "{email}"
            );
        }
        assert_eq!(
            choice(&s, "/.edgeauth/login?email=nonsense")
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn choose_goes_to_a_connection_or_renders_the_tenants_chooser() {
        let s = settings_with(&[
            (
                "connections",
                r#"[{"id": "social", "name": "Social", "kind": "oidc", "issuer": "http://127.0.0.2:9400", "client_id": "a", "client_secret": "s"},
                    {"id": "corp", "name": "Corp SSO", "kind": "oidc", "issuer": "http://127.0.0.3:9400", "client_id": "b", "client_secret": "s", "email_domains": ["corp.example"]}]"#,
            ),
            ("name", "Acme <Corp>"),
        ]);
        let req = |uri: &str| http::Request::get(uri).body(()).unwrap().into_parts().0;
        let went = |uri: &str| match choose(&s, &req(uri)) {
            Choice::Go(c, hint, _) => Some((c.id.clone(), hint)),
            Choice::Page(_) => None,
        };
        assert_eq!(
            went("/.edgeauth/login?connection=social"),
            Some(("social".into(), None))
        );
        assert_eq!(
            went("/.edgeauth/login?email=Kim%40CORP.example"),
            Some(("corp".into(), Some("Kim@corp.example".into())))
        );
        let Choice::Page(page) =
            choose(&s, &req("/.edgeauth/login?rd=//evil.example&connection=x"))
        else {
            panic!("an unknown connection shows the chooser")
        };
        assert_eq!(page.status(), 400);
        let html = String::from_utf8(page.body().clone()).unwrap();
        assert!(html.contains("Sign in to Acme &lt;Corp&gt;</h1>"), "{html}");
        assert!(
            html.contains("name=\"rd\" value=\"/\""),
            "the return path is validated"
        );
        assert!(!html.contains("evil.example"));
        // Without a `name` the tenant id stands in.
        let plain = settings_with(&[("connections", s_connections())]);
        let Choice::Page(page) = choose(&plain, &req("/.edgeauth/login")) else {
            panic!("two connections: the chooser")
        };
        assert!(String::from_utf8_lossy(page.body()).contains("Sign in to default</h1>"));
    }

    fn s_connections() -> &'static str {
        r#"[{"id": "a", "kind": "oidc", "issuer": "http://127.0.0.2:9400", "client_id": "a", "client_secret": "s"},
            {"id": "b", "kind": "oidc", "issuer": "http://127.0.0.3:9400", "client_id": "b", "client_secret": "s"}]"#
    }

    #[test]
    fn each_login_is_unique_and_expires() {
        let mut rng = counter_rng();
        let a = LoginState::new("default", "/".into(), 1000, &mut rng);
        let b = LoginState::new("default", "/".into(), 1000, &mut rng);
        assert_ne!(a.state, b.state);
        assert_ne!(a.verifier, b.verifier);
        assert!(!a.expired(1000 + LOGIN_TTL_SECS));
        assert!(a.expired(1000 + LOGIN_TTL_SECS + 1));
        assert!(a.expired(999));
    }

    #[test]
    fn step_up_is_asked_of_the_provider_and_sealed_into_the_cookie() {
        let s = settings_with(&[]);
        let m = meta();
        let mut rng = counter_rng();
        let resp = start_step_up(&s, target(&s, &m), "/h".into(), true, None, 5000, &mut rng);
        let loc = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
        let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
        assert_eq!(q["prompt"], "login");
        assert_eq!(q["max_age"], "0", "max_age makes auth_time mandatory");
        let cookie = resp.headers()["set-cookie"].to_str().unwrap();
        let value = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
        let login: LoginState =
            serde_json::from_slice(&s.session_keys.open(Purpose::Login, value).unwrap()).unwrap();
        assert_eq!(
            login.step_up,
            Some(StepUp {
                prompt_login: true,
                max_age: None,
                asked_at: 5000
            })
        );

        // Only max_age: no prompt parameter.
        let resp = start_step_up(
            &s,
            target(&s, &m),
            "/h".into(),
            false,
            Some(300),
            5000,
            &mut rng,
        );
        let loc = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
        let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
        assert!(!q.contains_key("prompt"));
        assert_eq!(q["max_age"], "300");

        // A plain login asks for neither, and its cookie has no step-up.
        let resp = start(
            &s,
            target(&s, &m),
            "/".into(),
            (None, false),
            5000,
            &mut rng,
        );
        let loc = resp.headers()["location"].to_str().unwrap();
        assert!(!loc.contains("prompt=") && !loc.contains("max_age="));
    }

    #[test]
    fn step_up_needs_an_authentication_after_it_was_asked() {
        let asked = 10_000;
        let fresh = StepUp {
            prompt_login: true,
            max_age: None,
            asked_at: asked,
        };
        // Signed in after the request, callback shortly after.
        assert_eq!(fresh.satisfied_by(asked + 5, asked + 10, 60), Ok(()));
        // The IdP's earlier session (silent SSO): refused.
        assert_eq!(
            fresh.satisfied_by(asked - 3600, asked + 10, 60),
            Err(StepUpError::NotFresh)
        );
        // Within clock skew of the request is accepted.
        assert_eq!(fresh.satisfied_by(asked - 30, asked + 10, 60), Ok(()));
        assert_eq!(
            fresh.satisfied_by(asked + 1000, asked + 10, 60),
            Err(StepUpError::InFuture)
        );

        let recent = StepUp {
            prompt_login: false,
            max_age: Some(300),
            asked_at: asked,
        };
        // An SSO session younger than max_age is fine without a new prompt.
        assert_eq!(recent.satisfied_by(asked - 200, asked + 10, 60), Ok(()));
        assert_eq!(
            recent.satisfied_by(asked - 1000, asked + 10, 60),
            Err(StepUpError::TooOld)
        );
    }

    #[test]
    fn login_cookies_without_step_up_still_open() {
        // A cookie sealed before the field existed deserializes without it.
        let old = r#"{"s":"a","n":"b","v":"c","r":"/","t":1}"#;
        let login: LoginState = serde_json::from_str(old).unwrap();
        assert_eq!(login.step_up, None);
    }
}
