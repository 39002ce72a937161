//! OAuth 2.0 connections without OpenID Connect: the presets for known
//! providers and the sign-in exchange after the callback (token endpoint, userinfo, GitHub's email list), as a state
//! machine the component drives: [`Exchange::start`] gives the first request,
//! [`Exchange::receive`] takes each answer and gives the next request or the
//! identity. No I/O here; every branch is tested with plain values. (The
//! authorization request is `login::authorization_url`'s: no `nonce`, PKCE
//! S256 when `pkce`, and GitHub documents `client_id`, `redirect_uri`,
//! `scope`, `state` and, since 2025-07-14, `code_challenge` with
//! `code_challenge_method=S256`.)
//!
//! GitHub's rules, as GitHub documents them (cited where they are applied):
//! - "Authorizing OAuth apps", section "Web application flow"
//!   <https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps#web-application-flow>
//! - "PKCE support for OAuth and GitHub App authentication" (changelog,
//!   2025-07-14) <https://github.blog/changelog/2025-07-14-pkce-support-for-oauth-and-github-app-authentication>
//! - "Troubleshooting OAuth app access token request errors"
//!   <https://docs.github.com/en/apps/oauth-apps/maintaining-oauth-apps/troubleshooting-oauth-app-access-token-request-errors>
//! - REST "Get the authenticated user" <https://docs.github.com/en/rest/users/users#get-the-authenticated-user>
//! - REST "List email addresses for the authenticated user"
//!   <https://docs.github.com/en/rest/users/emails#list-email-addresses-for-the-authenticated-user>
//! - REST "Getting started with the REST API", sections "User agent" and
//!   "API version" <https://docs.github.com/en/rest/using-the-rest-api/getting-started-with-the-rest-api>

use http::StatusCode;
use serde_json::{Map, Value};

use crate::connections::{ClaimMap, Connection, Kind, OAuth2, Preset, TokenAuth};
use crate::cookies::Jar;
use crate::identity::Identity;
use crate::provider::{Endpoint, MAX_DOCUMENT_BYTES};
use crate::settings::Settings;

/// What a preset fills in when the connection does not say otherwise.
pub struct PresetDefaults {
    pub authorization_endpoint: &'static str,
    pub token_endpoint: &'static str,
    pub userinfo_endpoint: &'static str,
    pub emails_endpoint: Option<&'static str>,
    pub scopes: &'static str,
    pub pkce: bool,
    pub token_auth: TokenAuth,
    pub claims: ClaimMap,
}

pub fn preset(p: Preset) -> PresetDefaults {
    match p {
        // GitHub OAuth apps: "Authorizing OAuth apps", "Web application flow"
        // (docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps).
        Preset::Github => PresetDefaults {
            authorization_endpoint: "https://github.com/login/oauth/authorize",
            token_endpoint: "https://github.com/login/oauth/access_token",
            userinfo_endpoint: "https://api.github.com/user",
            // "List email addresses for the authenticated user": paginated,
            // 30 per page unless `per_page` (at most 100) says otherwise.
            emails_endpoint: Some("https://api.github.com/user/emails?per_page=100"),
            // `read:user` for the profile, `user:email` for /user/emails
            // ("OAuth app tokens ... need the user:email scope").
            scopes: "read:user user:email",
            // GitHub accepts PKCE with S256 only and recommends it for OAuth
            // apps (changelog 2025-07-14, "PKCE support for OAuth and GitHub
            // App authentication"); older copies of the docs said it was not
            // supported, which is no longer so.
            pkce: true,
            // "Web application flow", step 2: client_id and client_secret are
            // parameters of the POST to the token endpoint.
            token_auth: TokenAuth::ClientSecretPost,
            // "Get the authenticated user": the numeric `id` is stable; the
            // `login` can be changed by the person.
            claims: ClaimMap {
                subject: "id".into(),
                email: None,
                email_verified: None,
                name: Some("name".into()),
                picture: Some("avatar_url".into()),
                groups: None,
            },
        },
    }
}

/// Sent on every request to an OAuth2 provider. GitHub refuses requests
/// without one ("Getting started with the REST API", "User agent": "Requests
/// with no User-Agent header will be rejected"); naming the software lets
/// providers tell whom to contact.
pub const USER_AGENT: &str = concat!("edgeauth/", env!("CARGO_PKG_VERSION"));
/// GitHub's media type for REST responses ("Getting started with the REST
/// API", "Media types": `application/vnd.github+json` is recommended).
const GITHUB_ACCEPT: &str = "application/vnd.github+json";
/// The REST API version the gateway is written against ("API version":
/// requests name it in `X-GitHub-Api-Version`).
const GITHUB_API_VERSION: &str = "2022-11-28";
/// Token responses are a few hundred bytes.
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;
const MAX_ACCESS_TOKEN_LEN: usize = 4096;

/// The OAuth2 part of `connection`, if it is of that kind.
pub fn settings_of(connection: &Connection) -> Option<&OAuth2> {
    match &connection.kind {
        Kind::OAuth2(o) => Some(o),
        Kind::Oidc { .. } => None,
    }
}

/// What the callback hands to the exchange.
#[derive(Clone, Copy)]
pub struct Grant<'a> {
    pub code: &'a str,
    /// The PKCE verifier of the login (sent only if the connection uses PKCE).
    pub verifier: &'a str,
    /// The redirect URI the authorization request named, sent again so the
    /// provider can match it ("Web application flow", step 2: `redirect_uri`).
    pub redirect_uri: &'a str,
}

/// What the component does next.
#[derive(Debug)]
pub enum Step {
    /// Send this request and pass its answer to [`Exchange::receive`].
    Fetch(http::Request<Vec<u8>>),
    /// The identity, as the connection vouches for it (`sub` namespaced,
    /// `idp_subject` as the provider sent it).
    Done(Identity),
}

/// An access token: never printed, never logged.
struct AccessToken(String);

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(…)")
    }
}

#[derive(Debug)]
enum Stage {
    Token,
    Userinfo(AccessToken),
    Emails(Map<String, Value>),
    Finished,
}

/// One sign-in's requests after the callback, in order: token, userinfo,
/// then (when the connection has an `emails_endpoint`, as GitHub does) the
/// email list.
#[derive(Debug)]
pub struct Exchange<'c> {
    connection: &'c Connection,
    o: &'c OAuth2,
    stage: Stage,
}

/// Why a sign-in through an OAuth2 connection failed. `Display` is the
/// operator's detail (logged): it never contains a token, a client secret or
/// the provider's `error_description` (which may echo what it was sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigninError {
    /// The connection is not of the `oauth2` kind.
    NotOAuth2,
    /// A configured endpoint's host is not one the connection may call.
    HostNotAllowed(&'static str),
    /// The token endpoint answered with an OAuth error (GitHub does so with
    /// HTTP 200). `code` keeps only `[A-Za-z0-9_]`.
    TokenRefused { status: u16, code: String },
    /// The token endpoint's answer has no usable bearer token.
    TokenUnusable { status: u16, why: &'static str },
    /// The userinfo or email endpoint did not answer 200.
    Status { endpoint: &'static str, status: u16 },
    /// Its answer is too large or not the JSON expected.
    Document {
        endpoint: &'static str,
        why: &'static str,
    },
    /// The userinfo has no usable subject in the configured field.
    NoSubject { field: String, why: &'static str },
    /// [`Exchange::receive`] was called after the exchange had ended.
    Finished,
}

impl std::fmt::Display for SigninError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SigninError::NotOAuth2 => f.write_str("the connection is not an `oauth2` connection"),
            SigninError::HostNotAllowed(which) => write!(
                f,
                "the connection's {which} is on a host it may not call (not a configured \
                 endpoint's host nor in `allowed_hosts`)"
            ),
            SigninError::TokenRefused { status, code } => write!(
                f,
                "the token endpoint answered HTTP {status} error={code}: check the client id, \
                 the client secret and the callback URL registered at the provider"
            ),
            SigninError::TokenUnusable { status, why } => {
                write!(f, "the token endpoint answered HTTP {status}: {why}")
            }
            SigninError::Status { endpoint, status } => {
                write!(f, "the {endpoint} answered HTTP {status}")
            }
            SigninError::Document { endpoint, why } => write!(f, "the {endpoint}'s answer {why}"),
            SigninError::NoSubject { field, why } => write!(
                f,
                "the userinfo field `{field}` (claims.subject) {why}: it must be a non-empty \
                 string or an integer"
            ),
            SigninError::Finished => f.write_str("the sign-in exchange had already ended"),
        }
    }
}

const TOKEN_ENDPOINT: &str = "token endpoint";
const USERINFO_ENDPOINT: &str = "userinfo endpoint";
const EMAILS_ENDPOINT: &str = "emails endpoint";

impl<'c> Exchange<'c> {
    /// The exchange and its first request: the code for an access token
    /// (RFC 6749 §4.1.3; GitHub: "Web application flow", step 2).
    pub fn start(
        connection: &'c Connection,
        grant: Grant<'_>,
    ) -> Result<(Exchange<'c>, http::Request<Vec<u8>>), SigninError> {
        let o = settings_of(connection).ok_or(SigninError::NotOAuth2)?;
        let exchange = Exchange {
            connection,
            o,
            stage: Stage::Token,
        };
        let request = exchange.token_request(grant)?;
        Ok((exchange, request))
    }

    /// Which endpoint the pending request goes to (for "could not be
    /// reached" pages).
    pub fn waiting_for(&self) -> &'static str {
        match self.stage {
            Stage::Token => TOKEN_ENDPOINT,
            Stage::Userinfo(_) => USERINFO_ENDPOINT,
            Stage::Emails(_) | Stage::Finished => EMAILS_ENDPOINT,
        }
    }

    /// Takes the answer to the last request: the next request, or the
    /// identity once everything needed is known.
    pub fn receive(&mut self, status: u16, body: &[u8]) -> Result<Step, SigninError> {
        match std::mem::replace(&mut self.stage, Stage::Finished) {
            Stage::Token => {
                let token = parse_token_response(status, body)?;
                let request =
                    self.api_request(&self.o.userinfo_endpoint, USERINFO_ENDPOINT, &token)?;
                self.stage = Stage::Userinfo(token);
                Ok(Step::Fetch(request))
            }
            Stage::Userinfo(token) => {
                let user = json_document(USERINFO_ENDPOINT, status, body)?
                    .as_object()
                    .cloned()
                    .ok_or(SigninError::Document {
                        endpoint: USERINFO_ENDPOINT,
                        why: "is not a JSON object",
                    })?;
                // Fail on a bad subject before asking for anything else.
                subject_of(&self.o.claims, &user)?;
                match &self.o.emails_endpoint {
                    Some(emails) => {
                        let request = self.api_request(emails, EMAILS_ENDPOINT, &token)?;
                        self.stage = Stage::Emails(user);
                        Ok(Step::Fetch(request))
                    }
                    None => Ok(Step::Done(self.finish(&user, None)?)),
                }
            }
            Stage::Emails(user) => {
                let list = json_document(EMAILS_ENDPOINT, status, body)?;
                let list = list.as_array().ok_or(SigninError::Document {
                    endpoint: EMAILS_ENDPOINT,
                    why: "is not a JSON array",
                })?;
                Ok(Step::Done(
                    self.finish(&user, Some(verified_primary(list)))?,
                ))
            }
            Stage::Finished => Err(SigninError::Finished),
        }
    }

    fn is_github(&self) -> bool {
        self.o.preset == Some(Preset::Github)
    }

    fn checked_uri(&self, e: &Endpoint, which: &'static str) -> Result<http::Uri, SigninError> {
        if !self.connection.may_call(e.uri()) {
            return Err(SigninError::HostNotAllowed(which));
        }
        Ok(e.uri().clone())
    }

    fn token_request(&self, grant: Grant<'_>) -> Result<http::Request<Vec<u8>>, SigninError> {
        let uri = self.checked_uri(&self.o.token_endpoint, TOKEN_ENDPOINT)?;
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "authorization_code")
            .append_pair("code", grant.code)
            .append_pair("redirect_uri", grant.redirect_uri);
        if self.o.pkce {
            form.append_pair("code_verifier", grant.verifier);
        }
        let mut request = http::Request::new(Vec::new());
        let headers = request.headers_mut();
        match self.o.token_auth {
            TokenAuth::ClientSecretPost => {
                form.append_pair("client_id", &self.connection.client_id)
                    .append_pair("client_secret", &self.connection.client_secret);
            }
            TokenAuth::ClientSecretBasic => {
                if let Some(v) = self.connection.client_secret_basic() {
                    headers.insert(http::header::AUTHORIZATION, v);
                }
            }
        }
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        // GitHub answers form-encoded unless JSON is asked for ("Web
        // application flow", step 2: "You can also receive the response in
        // different formats depending on the Accept header"); both are read.
        headers.insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        );
        headers.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static(USER_AGENT),
        );
        *request.body_mut() = form.finish().into_bytes();
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = uri;
        Ok(request)
    }

    /// A GET with the bearer token (RFC 6750 §2.1; GitHub: "Web application
    /// flow", step 3, `Authorization: Bearer OAUTH-TOKEN`).
    fn api_request(
        &self,
        endpoint: &Endpoint,
        which: &'static str,
        token: &AccessToken,
    ) -> Result<http::Request<Vec<u8>>, SigninError> {
        let uri = self.checked_uri(endpoint, which)?;
        let mut request = http::Request::new(Vec::new());
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        let mut bearer =
            http::HeaderValue::from_str(&format!("Bearer {}", token.0)).map_err(|_| {
                SigninError::TokenUnusable {
                    status: 200,
                    why: "the access token is not a valid bearer token",
                }
            })?;
        bearer.set_sensitive(true);
        headers.insert(http::header::AUTHORIZATION, bearer);
        headers.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static(USER_AGENT),
        );
        if self.is_github() {
            headers.insert(
                http::header::ACCEPT,
                http::HeaderValue::from_static(GITHUB_ACCEPT),
            );
            headers.insert(
                "x-github-api-version",
                http::HeaderValue::from_static(GITHUB_API_VERSION),
            );
        } else {
            headers.insert(
                http::header::ACCEPT,
                http::HeaderValue::from_static("application/json"),
            );
        }
        Ok(request)
    }

    /// The normalized identity: the configured fields of the userinfo, the
    /// subject namespaced by connection. With an email list (`verified` is
    /// `Some`), the email comes only from it.
    fn finish(
        &self,
        user: &Map<String, Value>,
        verified: Option<Option<String>>,
    ) -> Result<Identity, SigninError> {
        let claims = &self.o.claims;
        let idp_subject = subject_of(claims, user)?;
        let mut normalized = Map::new();
        normalized.insert("sub".into(), Value::String(idp_subject.clone()));
        match verified {
            // GitHub: `/user`'s `email` is the public profile address, which
            // may be null and is not said to be verified ("Get the
            // authenticated user"); only the list's flags say so.
            Some(Some(email)) => {
                normalized.insert("email".into(), Value::String(email));
                normalized.insert("email_verified".into(), Value::Bool(true));
            }
            Some(None) => {}
            None => {
                for (to, from) in [
                    ("email", &claims.email),
                    ("email_verified", &claims.email_verified),
                ] {
                    if let Some(v) = from.as_deref().and_then(|f| field(user, f)) {
                        normalized.insert(to.into(), v.clone());
                    }
                }
            }
        }
        if let Some(v) = claims.groups.as_deref().and_then(|f| field(user, f)) {
            normalized.insert("groups".into(), v.clone());
        }
        let mut name = claims.name.as_deref().and_then(|f| field(user, f));
        // GitHub's `name` is null for people who set none; GitHub then shows
        // the login, and so does the gateway (display only: never the subject).
        if self.is_github() && !name.is_some_and(Value::is_string) {
            name = field(user, "login");
        }
        for (to, value) in [
            ("name", name),
            (
                "picture",
                claims.picture.as_deref().and_then(|f| field(user, f)),
            ),
        ] {
            if let Some(v) = value {
                normalized.insert(to.into(), v.clone());
            }
        }
        Identity::from_claims(&normalized)
            .map(|identity| identity.from_connection(self.connection))
            .map_err(|_| SigninError::NoSubject {
                field: claims.subject.clone(),
                why: "is unusable",
            })
    }
}

/// A userinfo field by name, or by JSON Pointer (RFC 6901) when it starts
/// with `/` (for providers that nest the profile, e.g. `/data/id`).
fn field<'v>(user: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    let Some(pointer) = name.strip_prefix('/') else {
        return user.get(name);
    };
    let (first, rest) = match pointer.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (pointer, None),
    };
    let v = user.get(&first.replace("~1", "/").replace("~0", "~"))?;
    match rest {
        None => Some(v),
        Some(rest) => v.pointer(&format!("/{rest}")),
    }
}

/// The subject: a non-empty string as sent, or an integer in decimal
/// (GitHub's `id` is a number). Floats, booleans and everything else are
/// refused: `1.0` and `1` must not be two people, nor one by accident.
fn subject_of(claims: &ClaimMap, user: &Map<String, Value>) -> Result<String, SigninError> {
    let bad = |why: &'static str| SigninError::NoSubject {
        field: claims.subject.clone(),
        why,
    };
    let s = match field(user, &claims.subject) {
        None | Some(Value::Null) => return Err(bad("is missing")),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u.to_string(),
            (None, Some(i)) => i.to_string(),
            _ => return Err(bad("is not an integer")),
        },
        Some(_) => return Err(bad("is neither a string nor an integer")),
    };
    if s.is_empty() {
        return Err(bad("is empty"));
    }
    // `identity` would trim it: " 1" and "1" must not become one person.
    if s.trim() != s {
        return Err(bad("has surrounding whitespace"));
    }
    if s.len() > crate::identity::MAX_CLAIM_LEN || s.chars().any(char::is_control) {
        return Err(bad("is too long or contains control characters"));
    }
    Ok(s)
}

/// The address that is both `primary` and `verified` in a GitHub-shaped
/// email list ("List email addresses for the authenticated user": objects
/// with `email`, `primary`, `verified`, `visibility`). Only JSON `true`
/// counts. A verified address that is not primary is not used: the primary
/// is the one the person chose to be reached at, and picking among the
/// others would make policy depend on list order; such a person signs in
/// without an email (and can make the verified address primary at GitHub).
/// Two primaries (a malformed list) give none.
fn verified_primary(list: &[Value]) -> Option<String> {
    let mut primaries = list
        .iter()
        .filter(|e| e.get("primary") == Some(&Value::Bool(true)));
    let primary = primaries.next()?;
    if primaries.next().is_some() || primary.get("verified") != Some(&Value::Bool(true)) {
        return None;
    }
    primary.get("email")?.as_str().map(str::to_owned)
}

fn json_document(endpoint: &'static str, status: u16, body: &[u8]) -> Result<Value, SigninError> {
    if status != 200 {
        return Err(SigninError::Status { endpoint, status });
    }
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(SigninError::Document {
            endpoint,
            why: "is too large",
        });
    }
    serde_json::from_slice(body).map_err(|_| SigninError::Document {
        endpoint,
        why: "is not valid JSON",
    })
}

/// RFC 6750 §2.1 `b64token`: what may follow `Bearer `.
fn b64token(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// The token endpoint's answer: JSON (RFC 6749 §5.1, and GitHub with
/// `Accept: application/json`) or form-encoded (GitHub's default, "Web
/// application flow", step 2). An `error` counts whatever the status: GitHub
/// reports `bad_verification_code` and others with HTTP 200
/// ("Troubleshooting OAuth app access token request errors").
fn parse_token_response(status: u16, body: &[u8]) -> Result<AccessToken, SigninError> {
    let unusable = |why| SigninError::TokenUnusable { status, why };
    if body.len() > MAX_TOKEN_RESPONSE {
        return Err(unusable("its answer is too large"));
    }
    // The string-valued fields, from either format.
    let fields: Vec<(String, String)> =
        if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
            let v: Map<String, Value> = serde_json::from_slice(body)
                .map_err(|_| unusable("its answer is neither JSON nor form-encoded"))?;
            v.into_iter()
                .filter_map(|(k, v)| Some((k, v.as_str()?.to_owned())))
                .collect()
        } else {
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        };
    let get = |k: &str| {
        fields
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    };
    if let Some(error) = get("error") {
        return Err(SigninError::TokenRefused {
            status,
            code: crate::callback::printable_code(&error),
        });
    }
    if status != 200 {
        return Err(unusable("it is not a token response"));
    }
    let token = get("access_token").ok_or(unusable("there is no access_token"))?;
    if token.len() > MAX_ACCESS_TOKEN_LEN || !b64token(&token) {
        return Err(unusable("the access_token is not a bearer token"));
    }
    // RFC 6749 §7.1: the client must understand the token type; only
    // bearer tokens (RFC 6750) are used here. GitHub says `bearer`.
    match get("token_type") {
        Some(t) if !t.eq_ignore_ascii_case("bearer") => {
            return Err(unusable("the token_type is not bearer"));
        }
        _ => {}
    }
    Ok(AccessToken(token))
}

/// The page for a failed exchange. The person sees a short reason; the
/// operator's detail ([`SigninError`]'s `Display`) goes to the log only.
pub fn failure_page(
    settings: &Settings,
    connection: &Connection,
    error: &SigninError,
) -> crate::Response {
    let mut page = failure_page_for(connection, error);
    crate::pages::add_cookie(&mut page, &crate::cookies::clear(settings, Jar::Login));
    page
}

fn failure_page_for(connection: &Connection, error: &SigninError) -> crate::Response {
    let restart = crate::callback::restart_link();
    let link = (restart.as_str(), "Sign in again");
    let name = &connection.name;
    let logged = |status, class, title: &str, message: &str| {
        crate::pages::problem_with_link(
            status,
            class,
            (title, message),
            link,
            &format!("connection `{}`: {error}", connection.id),
        )
    };
    match error {
        SigninError::TokenRefused { code, .. }
            if code == "bad_verification_code" || code == "invalid_grant" =>
        {
            crate::pages::error_with_link(
                StatusCode::BAD_REQUEST,
                "Sign-in code rejected",
                &format!(
                    "{name} rejected the sign-in code ({code}): it was already used, expired, \
                     or belongs to another sign-in."
                ),
                link.0,
                link.1,
            )
        }
        // GitHub Apps: "The user must have a verified primary email."
        SigninError::TokenRefused { code, .. } if code == "unverified_user_email" => {
            crate::pages::error_with_link(
                StatusCode::FORBIDDEN,
                "Verify your email address",
                &format!(
                    "{name} did not sign you in because your account has no verified primary \
                     email address. Verify it with {name}, then sign in again."
                ),
                link.0,
                link.1,
            )
        }
        SigninError::TokenRefused { .. } | SigninError::TokenUnusable { .. } => logged(
            StatusCode::BAD_GATEWAY,
            "token_endpoint",
            "Sign-in failed",
            &format!("{name} refused the gateway's token request."),
        ),
        SigninError::Status { status, .. } if *status >= 500 => logged(
            StatusCode::BAD_GATEWAY,
            "idp_unavailable",
            "Sign-in is unavailable",
            &format!("{name} did not answer usably. Try again in a moment."),
        ),
        SigninError::Status { .. } => logged(
            StatusCode::BAD_GATEWAY,
            "userinfo",
            "Sign-in failed",
            &format!("{name} did not let the gateway read your profile."),
        ),
        SigninError::Document { .. } | SigninError::NoSubject { .. } => logged(
            StatusCode::BAD_GATEWAY,
            "userinfo",
            "Sign-in failed",
            &format!("{name} sent a profile the gateway cannot use."),
        ),
        SigninError::NotOAuth2 | SigninError::HostNotAllowed(_) | SigninError::Finished => logged(
            StatusCode::INTERNAL_SERVER_ERROR,
            "misconfigured",
            "Sign-in is misconfigured",
            "This sign-in method is not set up correctly. The site's operator has been told.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connections;
    use crate::login::LoginState;
    use crate::testutil::counter_rng;
    use serde_json::json;

    const GH: &str = "http://127.0.0.3:7000";

    fn github() -> Connection {
        connections::parse(&format!(
            r#"[{{"id": "github", "kind": "oauth2", "preset": "github",
                 "client_id": "Iv1.abc", "client_secret": "s3cr=t&x",
                 "authorization_endpoint": "{GH}/login/oauth/authorize",
                 "token_endpoint": "{GH}/login/oauth/access_token",
                 "userinfo_endpoint": "{GH}/api/user",
                 "emails_endpoint": "{GH}/api/user/emails?per_page=100"}}]"#
        ))
        .unwrap()
        .remove(0)
    }

    fn generic(extra: &str) -> Connection {
        connections::parse(&format!(
            r#"[{{"id": "acme", "kind": "oauth2", "client_id": "gw", "client_secret": "s",
                 "authorization_endpoint": "https://auth.acme.example/authorize",
                 "token_endpoint": "https://auth.acme.example/token",
                 "userinfo_endpoint": "https://api.acme.example/me", {extra}}}]"#
        ))
        .unwrap()
        .remove(0)
    }

    fn grant() -> Grant<'static> {
        Grant {
            code: "c0de",
            verifier: "v".repeat(43).leak(),
            redirect_uri: "http://127.0.0.1:3000/.edgeauth/callback/github",
        }
    }

    fn form(req: &http::Request<Vec<u8>>) -> Vec<(String, String)> {
        url::form_urlencoded::parse(req.body())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn param<'a>(f: &'a [(String, String)], k: &str) -> Option<&'a str> {
        f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    /// Runs a whole exchange against canned answers (status, body).
    fn run(c: &Connection, answers: &[(u16, &[u8])]) -> Result<Identity, SigninError> {
        let (mut ex, mut _req) = Exchange::start(c, grant())?;
        for (status, body) in answers {
            match ex.receive(*status, body)? {
                Step::Fetch(r) => _req = r,
                Step::Done(s) => return Ok(s),
            }
        }
        panic!("exchange wants more answers")
    }

    const TOKEN_FORM: &[u8] = b"access_token=gho_16C7e42F292c6912E7710c838347Ae178B4a&scope=read%3Auser%2Cuser%3Aemail&token_type=bearer";

    fn user(v: Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    #[test]
    fn the_github_preset_is_what_github_documents() {
        let c = connections::parse(
            r#"[{"id": "github", "kind": "oauth2", "preset": "github", "client_id": "i", "client_secret": "s"}]"#,
        )
        .unwrap()
        .remove(0);
        let o = settings_of(&c).unwrap();
        assert_eq!(
            o.authorization_endpoint.as_str(),
            "https://github.com/login/oauth/authorize"
        );
        assert_eq!(
            o.token_endpoint.as_str(),
            "https://github.com/login/oauth/access_token"
        );
        assert_eq!(o.userinfo_endpoint.as_str(), "https://api.github.com/user");
        assert_eq!(
            o.emails_endpoint.as_ref().unwrap().as_str(),
            "https://api.github.com/user/emails?per_page=100"
        );
        assert!(o.pkce);
        assert_eq!(o.token_auth, TokenAuth::ClientSecretPost);
        assert_eq!(o.claims.subject, "id");
        assert_eq!(c.scopes, "read:user user:email");
        assert!(c.may_call(&"https://api.github.com/user".parse().unwrap()));
        assert!(!c.may_call(&"https://gist.github.com/".parse().unwrap()));
    }

    #[test]
    fn authorization_url_has_pkce_and_no_oidc_parameters() {
        let s = crate::testutil::settings_with(&[(
            "connections",
            &serde_json::to_string(&json!([{
                "id": "github", "kind": "oauth2", "preset": "github",
                "client_id": "Iv1.abc", "client_secret": "s"
            }, {
                "id": "plain", "kind": "oauth2", "pkce": false, "client_id": "p", "client_secret": "s",
                "authorization_endpoint": "https://auth.acme.example/authorize",
                "token_endpoint": "https://auth.acme.example/token",
                "userinfo_endpoint": "https://auth.acme.example/me", "claims": {"subject": "id"}
            }]))
            .unwrap(),
        )]);
        let url_of = |id: &str| {
            let c = s.connection(id).unwrap();
            let mut rng = counter_rng();
            let login = LoginState::new(id, "/".into(), 1000, &mut rng);
            let target = crate::login::Target {
                connection: c,
                authorization_endpoint: &settings_of(c).unwrap().authorization_endpoint,
            };
            let url = crate::login::authorization_url(&s, target, &login, None).unwrap();
            (url::Url::parse(&url).unwrap(), login)
        };
        let (u, login) = url_of("github");
        assert_eq!(
            u.as_str().split('?').next(),
            Some("https://github.com/login/oauth/authorize")
        );
        let q: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        assert_eq!(param(&q, "client_id"), Some("Iv1.abc"));
        assert_eq!(param(&q, "scope"), Some("read:user user:email"));
        assert_eq!(param(&q, "state"), Some(login.state.as_str()));
        assert_eq!(
            param(&q, "code_challenge"),
            Some(login.code_challenge().as_str())
        );
        assert_eq!(param(&q, "code_challenge_method"), Some("S256"));
        assert_eq!(
            param(&q, "redirect_uri"),
            Some("http://127.0.0.1:3000/.edgeauth/callback/github")
        );
        assert_eq!(param(&q, "nonce"), None);
        assert!(!u.as_str().contains("openid"));

        let (u, _) = url_of("plain");
        assert!(!u.as_str().contains("code_challenge"));
        assert!(
            !u.as_str().contains("scope="),
            "no scopes configured: none sent"
        );
    }

    #[test]
    fn token_request_posts_the_client_credentials_and_the_verifier() {
        let c = github();
        let (ex, req) = Exchange::start(&c, grant()).unwrap();
        assert_eq!(ex.waiting_for(), "token endpoint");
        assert_eq!(req.method(), "POST");
        assert_eq!(req.uri(), "http://127.0.0.3:7000/login/oauth/access_token");
        let f = form(&req);
        assert_eq!(param(&f, "client_id"), Some("Iv1.abc"));
        assert_eq!(param(&f, "client_secret"), Some("s3cr=t&x"));
        assert_eq!(param(&f, "code"), Some("c0de"));
        assert_eq!(param(&f, "code_verifier"), Some("v".repeat(43).as_str()));
        assert_eq!(
            param(&f, "redirect_uri"),
            Some("http://127.0.0.1:3000/.edgeauth/callback/github")
        );
        assert_eq!(req.headers()["accept"], "application/json");
        assert_eq!(
            req.headers()["content-type"],
            "application/x-www-form-urlencoded"
        );
        assert_eq!(req.headers()["user-agent"], USER_AGENT);
        assert!(req.headers().get("authorization").is_none());

        let basic = generic(
            r#""token_auth": "client_secret_basic", "pkce": false, "claims": {"subject": "sub"}"#,
        );
        let (_, req) = Exchange::start(&basic, grant()).unwrap();
        let f = form(&req);
        assert_eq!(param(&f, "client_secret"), None);
        assert_eq!(param(&f, "code_verifier"), None);
        assert_eq!(req.headers()["authorization"], "Basic Z3c6cw==");
    }

    #[test]
    fn github_sign_in_with_a_verified_primary_email() {
        let c = github();
        let (mut ex, _) = Exchange::start(&c, grant()).unwrap();
        let Step::Fetch(userinfo) = ex.receive(200, TOKEN_FORM).unwrap() else {
            panic!("userinfo expected")
        };
        assert_eq!(ex.waiting_for(), "userinfo endpoint");
        assert_eq!(userinfo.method(), "GET");
        assert_eq!(userinfo.uri(), "http://127.0.0.3:7000/api/user");
        let h = userinfo.headers();
        assert_eq!(
            h["authorization"],
            "Bearer gho_16C7e42F292c6912E7710c838347Ae178B4a"
        );
        assert!(h["authorization"].is_sensitive());
        assert_eq!(h["accept"], "application/vnd.github+json");
        assert_eq!(h["x-github-api-version"], "2022-11-28");
        assert_eq!(h["user-agent"], USER_AGENT);
        let Step::Fetch(emails) = ex
            .receive(
                200,
                &user(
                    json!({"login": "octocat", "id": 583231, "name": "The Octocat",
                              "email": null, "avatar_url": "https://a.example/x.png"}),
                ),
            )
            .unwrap()
        else {
            panic!("emails expected")
        };
        assert_eq!(
            emails.uri(),
            "http://127.0.0.3:7000/api/user/emails?per_page=100"
        );
        assert_eq!(emails.headers()["authorization"], h["authorization"]);
        assert_eq!(emails.headers()["x-github-api-version"], "2022-11-28");
        let Step::Done(done) = ex
            .receive(
                200,
                &user(json!([
                    {"email": "old@Example.org", "primary": false, "verified": true, "visibility": null},
                    {"email": "octocat@GitHub.com", "primary": true, "verified": true, "visibility": "private"}
                ])),
            )
            .unwrap()
        else {
            panic!("done expected")
        };
        assert_eq!(done.idp_subject.as_deref(), Some("583231"));
        assert_eq!(done.connection, "github");
        assert_eq!(done.sub, "github|583231");
        assert_eq!(done.email.as_deref(), Some("octocat@github.com"));
        assert!(done.email_verified);
        assert_eq!(done.name.as_deref(), Some("The Octocat"));
        assert!(matches!(ex.receive(200, b"{}"), Err(SigninError::Finished)));
    }

    #[test]
    fn github_public_email_is_never_taken_as_verified() {
        let c = github();
        let u =
            user(json!({"login": "mona", "id": 2, "name": null, "email": "mona@public.example"}));
        for (emails, why) in [
            // Only a verified address that is not primary (primary unverified).
            (
                json!([{"email": "mona@work.example", "primary": false, "verified": true, "visibility": null},
                       {"email": "mona@public.example", "primary": true, "verified": false, "visibility": "public"}]),
                "verified but not primary",
            ),
            (
                json!([{"email": "mona@public.example", "primary": true, "verified": false, "visibility": "public"}]),
                "nothing verified",
            ),
            (json!([]), "no addresses"),
            (
                json!([{"email": "mona@public.example", "primary": true, "verified": "true"}]),
                "verified as a string",
            ),
            (
                json!([{"email": "a@x.example", "primary": true, "verified": true},
                       {"email": "b@x.example", "primary": true, "verified": true}]),
                "two primaries",
            ),
        ] {
            let done = run(&c, &[(200, TOKEN_FORM), (200, &u), (200, &user(emails))]).unwrap();
            assert_eq!(done.email, None, "{why}");
            assert!(!done.email_verified, "{why}");
            assert_eq!(done.verified_email_domain(), None, "{why}");
            assert_eq!(
                done.name.as_deref(),
                Some("mona"),
                "login shown without a name"
            );
            assert_eq!(done.sub, "github|2");
        }
    }

    #[test]
    fn token_responses_in_json_and_form_encoding() {
        let c = github();
        let ok_json = br#"{"access_token":"gho_abc","scope":"read:user","token_type":"bearer"}"#;
        let u = user(json!({"id": 7, "login": "x"}));
        let e = user(json!([]));
        assert_eq!(
            run(&c, &[(200, ok_json), (200, &u), (200, &e)])
                .unwrap()
                .sub,
            "github|7"
        );
        for (status, body, expected) in [
            (
                200,
                &b"error=bad_verification_code&error_description=The+code+passed+is+incorrect+or+expired.&error_uri=https%3A%2F%2Fdocs.github.com"[..],
                SigninError::TokenRefused { status: 200, code: "bad_verification_code".into() },
            ),
            (
                200,
                br#"{"error":"incorrect_client_credentials","error_description":"secret s3cr=t"}"#,
                SigninError::TokenRefused { status: 200, code: "incorrect_client_credentials".into() },
            ),
            (
                400,
                br#"{"error":"invalid_grant<script>"}"#,
                SigninError::TokenRefused { status: 400, code: "invalid_grantscript".into() },
            ),
            (
                200,
                b"scope=x&token_type=bearer",
                SigninError::TokenUnusable { status: 200, why: "there is no access_token" },
            ),
            (
                200,
                b"access_token=a%0Ab&token_type=bearer",
                SigninError::TokenUnusable { status: 200, why: "the access_token is not a bearer token" },
            ),
            (
                200,
                b"access_token=abc&token_type=mac",
                SigninError::TokenUnusable { status: 200, why: "the token_type is not bearer" },
            ),
            (
                500,
                b"<html>oops</html>",
                SigninError::TokenUnusable { status: 500, why: "it is not a token response" },
            ),
            (
                200,
                b"{not json",
                SigninError::TokenUnusable { status: 200, why: "its answer is neither JSON nor form-encoded" },
            ),
        ] {
            assert_eq!(run(&c, &[(status, body)]), Err(expected.clone()));
            let detail = expected.to_string();
            assert!(!detail.contains("incorrect or expired") && !detail.contains("s3cr"), "{detail}");
        }
        let huge = vec![b'a'; MAX_TOKEN_RESPONSE + 1];
        assert!(matches!(
            run(&c, &[(200, &huge)]),
            Err(SigninError::TokenUnusable { .. })
        ));
    }

    #[test]
    fn userinfo_and_email_failures() {
        let c = github();
        for status in [401, 403, 500, 503] {
            assert_eq!(
                run(
                    &c,
                    &[
                        (200, TOKEN_FORM),
                        (status, b"{\"message\":\"Bad credentials\"}")
                    ]
                ),
                Err(SigninError::Status {
                    endpoint: "userinfo endpoint",
                    status
                })
            );
        }
        let u = user(json!({"id": 1}));
        assert_eq!(
            run(&c, &[(200, TOKEN_FORM), (200, &u), (404, b"{}")]),
            Err(SigninError::Status {
                endpoint: "emails endpoint",
                status: 404
            })
        );
        assert!(matches!(
            run(
                &c,
                &[
                    (200, TOKEN_FORM),
                    (200, &u),
                    (200, b"{\"email\":\"a@b.example\"}")
                ]
            ),
            Err(SigninError::Document {
                endpoint: "emails endpoint",
                ..
            })
        ));
        assert!(matches!(
            run(&c, &[(200, TOKEN_FORM), (200, b"[1]")]),
            Err(SigninError::Document {
                endpoint: "userinfo endpoint",
                ..
            })
        ));
        let huge = format!(
            "{{\"id\": 1, \"bio\": \"{}\"}}",
            "x".repeat(MAX_DOCUMENT_BYTES)
        );
        assert!(matches!(
            run(&c, &[(200, TOKEN_FORM), (200, huge.as_bytes())]),
            Err(SigninError::Document {
                why: "is too large",
                ..
            })
        ));
    }

    #[test]
    fn subjects_are_strings_or_integers() {
        let c = github();
        for (id, expected) in [
            (json!(12345), Ok("12345")),
            (json!(u64::MAX), Ok("18446744073709551615")),
            (json!(-3), Ok("-3")),
            (json!("abc|def"), Ok("abc|def")),
            (json!(1.0), Err("is not an integer")),
            (json!(1e3), Err("is not an integer")),
            (json!(true), Err("is neither a string nor an integer")),
            (json!([1]), Err("is neither a string nor an integer")),
            (json!(""), Err("is empty")),
            (json!(" 7"), Err("has surrounding whitespace")),
            (json!(null), Err("is missing")),
            (
                json!("a\nb"),
                Err("is too long or contains control characters"),
            ),
            (
                json!("x".repeat(513)),
                Err("is too long or contains control characters"),
            ),
        ] {
            let u = user(json!({"id": id, "login": "x"}));
            let got = run(&c, &[(200, TOKEN_FORM), (200, &u), (200, b"[]")]);
            match expected {
                Ok(sub) => {
                    let done = got.unwrap();
                    assert_eq!(done.idp_subject.as_deref(), Some(sub));
                    assert_eq!(done.sub, format!("github|{sub}"));
                }
                Err(why) => assert_eq!(
                    got,
                    Err(SigninError::NoSubject {
                        field: "id".into(),
                        why
                    }),
                    "{id}"
                ),
            }
        }
        // A number too large for 64 bits is parsed as a float: refused.
        let got = run(
            &c,
            &[
                (200, TOKEN_FORM),
                (200, b"{\"id\": 123456789012345678901234567890}"),
            ],
        );
        assert!(matches!(got, Err(SigninError::NoSubject { .. })));
    }

    #[test]
    fn a_renamed_login_keeps_the_subject() {
        let c = github();
        let before = user(json!({"id": 99, "login": "old-name", "name": null}));
        let after = user(json!({"id": 99, "login": "new-name", "name": null}));
        let a = run(&c, &[(200, TOKEN_FORM), (200, &before), (200, b"[]")]).unwrap();
        let b = run(&c, &[(200, TOKEN_FORM), (200, &after), (200, b"[]")]).unwrap();
        assert_eq!(a.sub, b.sub);
        assert_ne!(a.name, b.name);
    }

    #[test]
    fn generic_connections_map_claims_by_configuration() {
        let c = generic(
            r#""claims": {"subject": "/data/uid", "email": "mail", "email_verified": "mail_ok",
                          "name": "/data/display", "groups": "teams"}"#,
        );
        let (mut ex, _) = Exchange::start(&c, grant()).unwrap();
        let Step::Fetch(req) = ex
            .receive(200, br#"{"access_token":"t0k","token_type":"Bearer"}"#)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(req.headers()["accept"], "application/json");
        assert!(req.headers().get("x-github-api-version").is_none());
        let Step::Done(done) = ex
            .receive(
                200,
                &user(
                    json!({"data": {"uid": "u-1", "display": "Una"}, "mail": "una@acme.example",
                              "mail_ok": "true", "teams": ["ops", "dev"]}),
                ),
            )
            .unwrap()
        else {
            panic!("no emails endpoint: done after userinfo")
        };
        assert_eq!(done.sub, "acme|u-1");
        assert_eq!(done.email.as_deref(), Some("una@acme.example"));
        assert!(done.email_verified);
        assert_eq!(done.name.as_deref(), Some("Una"));
        assert_eq!(done.groups, ["ops", "dev"]);

        // Without an `email_verified` mapping an email is never verified.
        let c = generic(r#""claims": {"subject": "id", "email": "mail"}"#);
        let done = run(
            &c,
            &[
                (200, b"access_token=t"),
                (
                    200,
                    &user(json!({"id": 5, "mail": "x@acme.example", "email_verified": true})),
                ),
            ],
        )
        .unwrap();
        assert_eq!(done.email.as_deref(), Some("x@acme.example"));
        assert!(!done.email_verified);
    }

    #[test]
    fn only_oauth2_connections_have_an_exchange() {
        let oidc = connections::parse(
            r#"[{"id": "corp", "kind": "oidc", "issuer": "https://idp.example", "client_id": "x", "client_secret": "s"}]"#,
        )
        .unwrap();
        assert!(matches!(
            Exchange::start(&oidc[0], grant()),
            Err(SigninError::NotOAuth2)
        ));
    }

    #[test]
    fn failure_pages_say_little_and_log_the_detail() {
        let c = github();
        let body = |r: &crate::Response| String::from_utf8(r.body().clone()).unwrap();
        let code = failure_page(
            &crate::testutil::settings_with(&[]),
            &c,
            &SigninError::TokenRefused {
                status: 200,
                code: "bad_verification_code".into(),
            },
        );
        assert_eq!(code.status(), 400);
        assert!(body(&code).contains("already used"));
        assert!(
            code.headers()
                .get_all(http::header::SET_COOKIE)
                .iter()
                .any(|v| v.to_str().unwrap().starts_with("edgeauth_login=")
                    && v.to_str().unwrap().contains("Max-Age=0")),
            "the login cookie is cleared"
        );
        let creds = failure_page_for(
            &c,
            &SigninError::TokenRefused {
                status: 200,
                code: "incorrect_client_credentials".into(),
            },
        );
        assert_eq!(creds.status(), 502);
        assert!(!body(&creds).contains("incorrect_client_credentials"));
        let problem = creds.extensions().get::<crate::pages::Problem>().unwrap();
        assert!(problem.detail.contains("connection `github`"));
        assert!(
            problem
                .detail
                .contains("error=incorrect_client_credentials")
        );
        for (e, status) in [
            (
                SigninError::Status {
                    endpoint: USERINFO_ENDPOINT,
                    status: 401,
                },
                502,
            ),
            (
                SigninError::Status {
                    endpoint: USERINFO_ENDPOINT,
                    status: 503,
                },
                502,
            ),
            (
                SigninError::NoSubject {
                    field: "id".into(),
                    why: "is missing",
                },
                502,
            ),
        ] {
            let r = failure_page_for(&c, &e);
            assert_eq!(r.status(), status, "{e}");
            assert!(
                body(&r).contains("GitHub"),
                "{e}: the person sees which provider"
            );
        }
        let r = failure_page_for(&c, &SigninError::HostNotAllowed(EMAILS_ENDPOINT));
        assert_eq!(r.status(), 500);
        assert!(
            !body(&r).contains("emails"),
            "configuration details are logged only"
        );
    }
}
