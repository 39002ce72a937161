//! The login callback, in steps the component drives:
//! [`begin`] (state check) → replay check in KV → [`token_request`] →
//! [`parse_token_response`] → [`verify`] (with a JWKS refetch on
//! [`IdTokenError::UnknownKey`]) → [`complete`] (policy, session, redirect).

use http::StatusCode;
use http::request::Parts;
use serde::Deserialize;

use crate::connections::Connection;
use crate::cookies::{self, Jar};
use crate::id_token::{CLOCK_SKEW_SECS, Expectations, IdTokenError, Jwks};
use crate::identity::Identity;
use crate::login::{LoginState, StepUpError};
use crate::pages;
use crate::policy;
use crate::provider::ProviderMetadata;
use crate::routes::{self, query_param};
use crate::seal::Purpose;
use crate::session::{Extras, Session};
use crate::settings::Settings;
use crate::{Response, Rng};

const MAX_QUERY_LEN: usize = 8 * 1024;
const MAX_CODE_LEN: usize = 2048;
const MAX_TOKEN_RESPONSE: usize = 64 * 1024;

/// A callback whose state matched its login cookie.
#[derive(Debug, Clone)]
pub struct CallbackStart {
    pub login: LoginState,
    pub code: String,
    /// The authorization response's `iss` (RFC 9207), already checked
    /// against the connection's issuer when present.
    pub iss: Option<String>,
}

pub(crate) fn restart_link() -> String {
    format!("{}?rd=/", routes::LOGIN)
}

fn fail(status: StatusCode, title: &str, detail: &str) -> Response {
    pages::error_with_link(status, title, detail, &restart_link(), "Sign in again")
}

/// [`fail`] for problems an operator must look into: `detail` goes to the log.
fn fail_logged(
    status: StatusCode,
    class: &'static str,
    (title, message): (&str, &str),
    detail: &str,
) -> Response {
    pages::problem_with_link(
        status,
        class,
        (title, message),
        (&restart_link(), "Sign in again"),
        detail,
    )
}

fn clear_login(settings: &Settings, mut resp: Response) -> Response {
    pages::add_cookie(&mut resp, &cookies::clear(settings, Jar::Login));
    resp
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Only short, plain OAuth error codes are echoed back to the person.
pub(crate) fn printable_code(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

fn mix_up(settings: &Settings) -> Response {
    clear_login(
        settings,
        fail(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "The sign-in response came from an unexpected identity provider.",
        ),
    )
}

/// The authorization response's parameters the gateway reads.
const RESPONSE_PARAMETERS: [&str; 5] = ["code", "state", "iss", "error", "error_description"];

/// The first of [`RESPONSE_PARAMETERS`] that the query holds more than once.
fn repeated_response_parameter(parts: &Parts) -> Option<&'static str> {
    let query = parts.uri.query()?;
    let mut seen = [0usize; RESPONSE_PARAMETERS.len()];
    for (key, _) in url::form_urlencoded::parse(query.as_bytes()) {
        if let Some(i) = RESPONSE_PARAMETERS.iter().position(|p| *p == key) {
            seen[i] += 1;
            if seen[i] > 1 {
                return Some(RESPONSE_PARAMETERS[i]);
            }
        }
    }
    None
}

/// Checks the callback of `connection` against the login cookie (state,
/// expiry, the connection the sign-in started with, `iss`) and turns IdP
/// error callbacks into pages a person understands.
pub fn begin(
    settings: &Settings,
    connection: &Connection,
    parts: &Parts,
    now: u64,
) -> Result<CallbackStart, Response> {
    if parts.uri.query().is_some_and(|q| q.len() > MAX_QUERY_LEN) {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            "The sign-in response is too large.",
        ));
    }
    // RFC 6749 §3.1: a response parameter sent twice is malformed. Reading
    // only the first `iss` would let a second, foreign one through to
    // whatever else reads the last (and the same for `state` and `code`).
    if let Some(name) = repeated_response_parameter(parts) {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "Sign-in failed",
            &format!("The sign-in response carries `{name}` more than once."),
        ));
    }
    let login = cookies::values(&parts.headers, &cookies::name(settings, Jar::Login))
        .unwrap_or_default()
        .into_iter()
        .find_map(|v| {
            let plain = settings.session_keys.open(Purpose::Login, &v).ok()?;
            serde_json::from_slice::<LoginState>(&plain).ok()
        });
    let Some(login) = login else {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "Sign-in expired",
            "This sign-in was not started in this browser, took too long, or was already \
             completed. Cookies must be enabled.",
        ));
    };
    let state = query_param(parts, "state").unwrap_or_default();
    if !constant_time_eq(&state, &login.state) || login.expired(now) {
        return Err(clear_login(
            settings,
            fail(
                StatusCode::BAD_REQUEST,
                "Sign-in expired",
                "This sign-in link does not belong to the sign-in in progress, or it expired.",
            ),
        ));
    }
    // A sign-in started with one provider is completed only at that
    // provider's callback: an answer arriving at another connection's
    // callback is a mix-up (RFC 9700 §4.4), whatever it carries.
    if login.connection != connection.id {
        return Err(mix_up(settings));
    }
    let iss = query_param(parts, "iss");
    if let Some(iss) = &iss {
        // RFC 9207 §2.4: a response naming another issuer is a mix-up attack;
        // so is one from a provider that has no issuer identifier to compare.
        if connection.issuer() != Some(iss.as_str()) {
            return Err(mix_up(settings));
        }
    }
    if let Some(error) = query_param(parts, "error") {
        let code = printable_code(&error);
        let resp = if code == "access_denied" {
            fail(
                StatusCode::FORBIDDEN,
                "Sign-in was cancelled",
                "The identity provider reports that sign-in was cancelled or access was denied \
                 (access_denied). You have not been signed in.",
            )
        } else {
            fail_logged(
                StatusCode::BAD_GATEWAY,
                "idp_error",
                (
                    "Sign-in failed",
                    "The identity provider could not sign you in.",
                ),
                &format!("the callback reports error={code}"),
            )
        };
        return Err(clear_login(settings, resp));
    }
    let code = query_param(parts, "code").unwrap_or_default();
    if code.is_empty() || code.len() > MAX_CODE_LEN {
        return Err(clear_login(
            settings,
            fail(
                StatusCode::BAD_REQUEST,
                "Sign-in failed",
                "The sign-in response has no usable authorization code.",
            ),
        ));
    }
    Ok(CallbackStart { login, code, iss })
}

/// KV key marking this login's state as used; its presence means a replay.
/// It is a counter (incremented atomically: the first use sees 1) that
/// expires with the login state.
pub fn replay_key(start: &CallbackStart) -> String {
    crate::kv_schema::used_state(
        &start.login.state,
        start.login.started_at + crate::login::LOGIN_TTL_SECS,
    )
}

pub fn replayed(settings: &Settings) -> Response {
    clear_login(
        settings,
        fail(
            StatusCode::BAD_REQUEST,
            "Sign-in link already used",
            "This sign-in response was already used. Each one works only once.",
        ),
    )
}

/// RFC 9207 §2.4: when the provider's metadata says it sends `iss` in
/// authorization responses, a response without it must be refused (the
/// response may have been made by another provider).
pub fn check_iss_sent(
    settings: &Settings,
    meta: &ProviderMetadata,
    start: &CallbackStart,
) -> Result<(), Response> {
    if meta.authorization_response_iss_parameter_supported && start.iss.is_none() {
        return Err(mix_up(settings));
    }
    Ok(())
}

/// The token request (client_secret_basic, RFC 6749 §2.3.1 form-encoding).
pub fn token_request(
    settings: &Settings,
    connection: &Connection,
    meta: &ProviderMetadata,
    start: &CallbackStart,
) -> http::Request<Vec<u8>> {
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", &start.code)
        .append_pair("redirect_uri", &settings.callback_url(connection))
        .append_pair("code_verifier", &start.login.verifier)
        .finish();
    // Built from parts that are valid by construction: the endpoint was
    // checked as a request URI when discovery was read.
    let mut request = http::Request::new(form.into_bytes());
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = meta.token_endpoint.uri().clone();
    let headers = request.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/json"),
    );
    if let Some(v) = connection.client_secret_basic() {
        headers.insert(http::header::AUTHORIZATION, v);
    }
    request
}

#[derive(Debug, Clone)]
pub struct Tokens {
    /// Empty for connections without ID tokens (`oauth2`).
    pub id_token: String,
    /// The access and refresh tokens, until they are stored server-side
    /// (`crate::refresh::Grant`); never in a cookie.
    pub granted: crate::refresh::Granted,
    /// The stored grant the session will carry the id of; `None`: the
    /// session gets a fresh id of its own.
    pub session: Option<crate::refresh::Handle>,
}

impl Tokens {
    /// What an `oauth2` connection's sign-in leaves: no ID token.
    pub fn none() -> Tokens {
        Tokens::id_token(String::new())
    }

    /// Only an ID token (or none), as a resumed sign-in has it.
    pub fn id_token(id_token: String) -> Tokens {
        Tokens {
            id_token,
            granted: crate::refresh::Granted::default(),
            session: None,
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    error: Option<String>,
}

/// Reads the token endpoint's answer; an `invalid_grant` (replayed or swapped
/// code, wrong PKCE verifier) gets its own page.
pub fn parse_token_response(
    settings: &Settings,
    status: u16,
    body: &[u8],
) -> Result<Tokens, Response> {
    let parsed = if body.len() <= MAX_TOKEN_RESPONSE {
        serde_json::from_slice::<TokenResponse>(body).ok()
    } else {
        None
    };
    let resp = match (status, parsed) {
        (
            200,
            Some(TokenResponse {
                id_token: Some(id_token),
                access_token,
                refresh_token,
                expires_in,
                ..
            }),
        ) => {
            let expires_in = match expires_in {
                Some(serde_json::Value::Number(n)) => n.as_u64(),
                Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
                _ => None,
            };
            return Ok(Tokens {
                id_token,
                granted: crate::refresh::Granted {
                    access_token,
                    refresh_token,
                    expires_in,
                },
                session: None,
            });
        }
        (200, Some(_)) => fail_logged(
            StatusCode::BAD_GATEWAY,
            "token_endpoint",
            (
                "Sign-in failed",
                "The identity provider returned no ID token.",
            ),
            "the token response has no id_token: is the `openid` scope allowed for this client?",
        ),
        (400..=499, Some(TokenResponse { error: Some(e), .. })) if e == "invalid_grant" => fail(
            StatusCode::BAD_REQUEST,
            "Sign-in code rejected",
            "The identity provider rejected the sign-in code (invalid_grant): it was already \
             used, expired, or belongs to another sign-in.",
        ),
        // Only the plain code is logged: an IdP's error_description may echo
        // what it was sent (the client secret, the code).
        (400..=499, Some(TokenResponse { error: Some(e), .. })) => fail_logged(
            StatusCode::BAD_GATEWAY,
            "token_endpoint",
            (
                "Sign-in failed",
                "The identity provider refused the gateway's token request.",
            ),
            &format!(
                "the token endpoint answered HTTP {status} error={}: check the client id and secret",
                printable_code(&e)
            ),
        ),
        (status, _) => fail_logged(
            StatusCode::BAD_GATEWAY,
            "token_endpoint",
            (
                "Sign-in failed",
                "The identity provider's token endpoint gave an unusable answer.",
            ),
            &format!("the token endpoint answered HTTP {status} without a usable body"),
        ),
    };
    Err(clear_login(settings, resp))
}

/// Validates the ID token and maps its claims, as `connection` vouches for
/// them (namespaced subject).
pub fn verify(
    connection: &Connection,
    jwks: &Jwks,
    start: &CallbackStart,
    tokens: &Tokens,
    now: u64,
) -> Result<Identity, IdTokenError> {
    let claims = jwks.verify_id_token(
        &tokens.id_token,
        &Expectations {
            issuer: connection.issuer().unwrap_or_default(),
            client_id: &connection.client_id,
            nonce: &start.login.nonce,
            now,
        },
    )?;
    if let Some(step_up) = &start.login.step_up {
        let auth_time = claims
            .get("auth_time")
            .and_then(serde_json::Value::as_u64)
            .ok_or(IdTokenError::StepUp(StepUpError::NoAuthTime))?;
        step_up
            .satisfied_by(auth_time, now, CLOCK_SKEW_SECS)
            .map_err(IdTokenError::StepUp)?;
    }
    Identity::from_claims(&claims)
        .map(|id| id.from_connection(connection))
        .map_err(|_| IdTokenError::MissingClaim("sub"))
}

/// Whether this callback completes a step-up: [`verify`] has then checked the
/// ID token's `auth_time` against it, so rules may trust `reauthenticated`.
pub fn reauthenticated(start: &CallbackStart) -> bool {
    start.login.step_up.is_some()
}

pub fn verification_failed(settings: &Settings, error: &IdTokenError) -> Response {
    if let IdTokenError::StepUp(e) = error {
        // Not the provider's fault as a rule: the authorization request may
        // have been altered on its way (prompt/max_age stripped). No session.
        return clear_login(
            settings,
            fail(
                StatusCode::UNAUTHORIZED,
                "Fresh sign-in required",
                &format!(
                    "This site asked you to sign in again at the identity provider, and {e}. \
                     You have not been signed in."
                ),
            ),
        );
    }
    clear_login(
        settings,
        fail_logged(
            StatusCode::BAD_GATEWAY,
            "verification_failed",
            (
                "Sign-in could not be verified",
                "The gateway could not verify the identity provider's answer.",
            ),
            &format!("the ID token was refused: {error}"),
        ),
    )
}

/// Policy, then the session cookie and the redirect back to where the person
/// was going. A denied login gets no session.
pub fn complete(
    settings: &Settings,
    identity: Identity,
    tokens: Tokens,
    start: &CallbackStart,
    now: u64,
    rng: Rng<'_>,
) -> Response {
    complete_with_extras(
        settings,
        identity,
        Extras::default(),
        tokens,
        start,
        now,
        rng,
    )
}

/// [`complete`] with what tenant rules added (claims, origin headers).
pub fn complete_with_extras(
    settings: &Settings,
    identity: Identity,
    extras: Extras,
    tokens: Tokens,
    start: &CallbackStart,
    now: u64,
    rng: Rng<'_>,
) -> Response {
    if let Err(denial) = policy::check(settings, &identity) {
        return clear_login(
            settings,
            pages::error_with_link(
                StatusCode::FORBIDDEN,
                "Access denied",
                &format!(
                    "Denied by the rule \u{201c}{}\u{201d}: {}.",
                    denial.rule, denial.reason
                ),
                crate::routes::LOGOUT,
                "Sign in with another account",
            ),
        );
    }
    let id_token = Some(tokens.id_token).filter(|t| !t.is_empty());
    let mut session = Session::new(identity, id_token, settings, now).with_extras(extras);
    // A new id at every sign-in (and so every step-up): no session is ever
    // continued under an id someone held before it.
    match tokens.session {
        Some(handle) => {
            session.sid = handle.sid;
            session.refresh_due = handle.due;
        }
        None => session = session.with_new_id(rng),
    }
    let Some(cookie) = session.to_cookie(settings, rng) else {
        return clear_login(
            settings,
            fail(
                StatusCode::BAD_GATEWAY,
                "Sign-in failed",
                "Your identity has too many claims or groups to fit in a session cookie.",
            ),
        );
    };
    // The return path was validated when the login started and sealed since.
    let mut resp = pages::redirect(&crate::redirect::return_path_or_root(
        Some(&start.login.return_to),
        &settings.public_url,
    ));
    pages::add_cookie(&mut resp, &cookie);
    clear_login(settings, resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{counter_rng, settings_with};
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use http::header::{COOKIE, LOCATION, SET_COOKIE};

    fn started(s: &Settings, now: u64) -> (LoginState, String) {
        let mut rng = counter_rng();
        let login = LoginState::new(&s.connections[0].id, "/app?x=1".into(), now, &mut rng);
        let sealed = s.session_keys.seal(
            Purpose::Login,
            &serde_json::to_vec(&login).unwrap(),
            &mut rng,
        );
        (login, format!("edgeauth_login={sealed}"))
    }

    fn parts(uri: &str, cookie: &str) -> Parts {
        http::Request::get(uri)
            .header(COOKIE, cookie)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn state_must_match_the_cookie() {
        let s = settings_with(&[]);
        let (login, cookie) = started(&s, 1000);
        let ok = begin(
            &s,
            &s.connections[0],
            &parts(
                &format!("/.edgeauth/callback?code=c1&state={}", login.state),
                &cookie,
            ),
            1001,
        )
        .unwrap();
        assert_eq!(ok.code, "c1");
        for uri in [
            "/.edgeauth/callback?code=c1&state=wrong".to_owned(),
            "/.edgeauth/callback?code=c1".to_owned(),
            format!("/.edgeauth/callback?state={}", login.state),
            format!(
                "/.edgeauth/callback?code=c1&state={}&iss=http://evil.example",
                login.state
            ),
        ] {
            let r = begin(&s, &s.connections[0], &parts(&uri, &cookie), 1001).unwrap_err();
            assert_eq!(r.status(), 400, "{uri}");
        }
        // No cookie, or too late.
        let uri = format!("/.edgeauth/callback?code=c1&state={}", login.state);
        assert_eq!(
            begin(&s, &s.connections[0], &parts(&uri, "x=1"), 1001)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            begin(&s, &s.connections[0], &parts(&uri, &cookie), 1000 + 601)
                .unwrap_err()
                .status(),
            400
        );
    }

    #[test]
    fn a_sign_in_completes_only_at_its_connections_callback() {
        let s = settings_with(&[(
            "connections",
            r#"[{"id": "social", "kind": "oidc", "issuer": "http://127.0.0.2:9400", "client_id": "a", "client_secret": "s"},
                {"id": "corp", "kind": "oidc", "issuer": "http://127.0.0.2:9500", "client_id": "b", "client_secret": "s"}]"#,
        )]);
        let (social, corp) = (&s.connections[0], &s.connections[1]);
        let mut rng = counter_rng();
        let login = LoginState::new("social", "/".into(), 1000, &mut rng);
        let cookie = format!(
            "edgeauth_login={}",
            s.session_keys.seal(
                Purpose::Login,
                &serde_json::to_vec(&login).unwrap(),
                &mut rng
            )
        );
        let uri = |path: &str, extra: &str| format!("{path}?code=c1&state={}{extra}", login.state);
        let ok = begin(
            &s,
            social,
            &parts(&uri("/.edgeauth/callback/social", ""), &cookie),
            1001,
        );
        assert!(ok.is_ok());
        // The same answer at the other connection's callback: a mix-up.
        let r = begin(
            &s,
            corp,
            &parts(&uri("/.edgeauth/callback/corp", ""), &cookie),
            1001,
        )
        .unwrap_err();
        assert_eq!(r.status(), 400);
        assert!(String::from_utf8_lossy(r.body()).contains("unexpected identity provider"));
        // `iss` naming the other provider, at the right callback.
        let r = begin(
            &s,
            social,
            &parts(
                &uri(
                    "/.edgeauth/callback/social",
                    "&iss=http%3A%2F%2F127.0.0.2%3A9500",
                ),
                &cookie,
            ),
            1001,
        );
        assert_eq!(r.unwrap_err().status(), 400);
        let r = begin(
            &s,
            social,
            &parts(
                &uri(
                    "/.edgeauth/callback/social",
                    "&iss=http%3A%2F%2F127.0.0.2%3A9400",
                ),
                &cookie,
            ),
            1001,
        );
        assert_eq!(r.unwrap().iss.as_deref(), Some("http://127.0.0.2:9400"));
    }

    #[test]
    fn a_response_parameter_given_twice_is_refused() {
        let s = settings_with(&[]);
        let (login, cookie) = started(&s, 1000);
        let st = &login.state;
        let iss = "http%3A%2F%2F127.0.0.2%3A9400";
        let ok = format!("/.edgeauth/callback?code=c1&state={st}&iss={iss}");
        assert!(begin(&s, &s.connections[0], &parts(&ok, &cookie), 1001).is_ok());
        for uri in [
            format!("{ok}&iss=http%3A%2F%2Fevil.example"),
            format!(
                "/.edgeauth/callback?iss=http%3A%2F%2Fevil.example&{}",
                &ok[20..]
            ),
            format!("{ok}&state={st}"),
            format!("{ok}&code=c2"),
            format!("{ok}&error=access_denied&error=x"),
        ] {
            let r = begin(&s, &s.connections[0], &parts(&uri, &cookie), 1001).unwrap_err();
            assert_eq!(r.status(), 400, "{uri}");
            assert!(
                String::from_utf8_lossy(r.body()).contains("more than once"),
                "{uri}"
            );
        }
    }

    #[test]
    fn a_provider_that_promises_iss_must_send_it() {
        let s = settings_with(&[]);
        let (login, _) = started(&s, 1000);
        let mut meta = crate::testutil::provider_meta();
        let start = CallbackStart {
            login,
            code: "c1".into(),
            iss: None,
        };
        assert!(check_iss_sent(&s, &meta, &start).is_ok());
        meta.authorization_response_iss_parameter_supported = true;
        assert_eq!(check_iss_sent(&s, &meta, &start).unwrap_err().status(), 400);
        let with_iss = CallbackStart {
            iss: Some("http://127.0.0.2:9400".into()),
            ..start
        };
        assert!(check_iss_sent(&s, &meta, &with_iss).is_ok());
    }

    #[test]
    fn access_denied_is_explained() {
        let s = settings_with(&[]);
        let (login, cookie) = started(&s, 1000);
        let r = begin(
            &s,
            &s.connections[0],
            &parts(
                &format!(
                    "/.edgeauth/callback?error=access_denied&state={}",
                    login.state
                ),
                &cookie,
            ),
            1001,
        )
        .unwrap_err();
        assert_eq!(r.status(), 403);
        let body = String::from_utf8(r.body().clone()).unwrap();
        assert!(body.contains("cancelled"));
        assert!(
            r.headers()
                .get_all(SET_COOKIE)
                .iter()
                .any(|c| c.to_str().unwrap().contains("Max-Age=0"))
        );
        let r = begin(
            &s,
            &s.connections[0],
            &parts(
                &format!(
                    "/.edgeauth/callback?error=%3Cscript%3E&state={}",
                    login.state
                ),
                &cookie,
            ),
            1001,
        )
        .unwrap_err();
        assert!(
            !String::from_utf8(r.body().clone())
                .unwrap()
                .contains("<script>")
        );
    }

    #[test]
    fn token_request_carries_pkce_and_basic_auth() {
        let s = settings_with(&[]);
        let (login, _) = started(&s, 1000);
        let meta = crate::testutil::provider_meta();
        let start = CallbackStart {
            login: login.clone(),
            code: "c1".into(),
            iss: None,
        };
        let req = token_request(&s, &s.connections[0], &meta, &start);
        assert_eq!(req.method(), "POST");
        let body = String::from_utf8(req.body().clone()).unwrap();
        assert!(body.contains(&format!("code_verifier={}", login.verifier)));
        assert!(body.contains("grant_type=authorization_code"));
        let auth = req.headers()["authorization"].to_str().unwrap();
        assert_eq!(
            STANDARD
                .decode(auth.strip_prefix("Basic ").unwrap())
                .unwrap(),
            b"edgeauth:edgeauth-dev-secret"
        );
        assert_ne!(
            replay_key(&start),
            replay_key(&CallbackStart {
                login: LoginState {
                    state: "x".into(),
                    ..login
                },
                code: "c1".into(),
                iss: None,
            })
        );
    }

    #[test]
    fn token_errors() {
        let s = settings_with(&[]);
        assert_eq!(
            parse_token_response(&s, 400, br#"{"error":"invalid_grant"}"#)
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            parse_token_response(&s, 401, br#"{"error":"invalid_client"}"#)
                .unwrap_err()
                .status(),
            502
        );
        assert_eq!(
            parse_token_response(&s, 500, b"<html>")
                .unwrap_err()
                .status(),
            502
        );
        assert_eq!(
            parse_token_response(&s, 200, br#"{"access_token":"a"}"#)
                .unwrap_err()
                .status(),
            502
        );
        assert_eq!(
            parse_token_response(&s, 200, br#"{"id_token":"x.y.z"}"#)
                .unwrap()
                .id_token,
            "x.y.z"
        );
    }

    #[test]
    fn complete_applies_policy_and_sets_session() {
        let s = settings_with(&[("allowed_email_domains", "example.com")]);
        let (login, _) = started(&s, 1000);
        let start = CallbackStart {
            login,
            code: "c".into(),
            iss: None,
        };
        let mut rng = counter_rng();
        let alice = Identity {
            sub: "alice".into(),
            email: Some("alice@example.com".into()),
            email_verified: true,
            name: None,
            groups: vec![],
            ..Default::default()
        };
        let r = complete(
            &s,
            alice,
            Tokens::id_token("t".into()),
            &start,
            1001,
            &mut rng,
        );
        assert_eq!(r.status(), 302);
        assert_eq!(r.headers()[LOCATION], "/app?x=1");
        let cookies: Vec<_> = r
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert!(
            cookies
                .iter()
                .any(|c| c.starts_with("edgeauth_session=") && !c.contains("Max-Age=0"))
        );
        assert!(cookies.iter().any(|c| c.starts_with("edgeauth_login=;")
            || c.starts_with("edgeauth_login=") && c.contains("Max-Age=0")));

        let bob = Identity {
            sub: "bob".into(),
            email: Some("bob@example.com".into()),
            email_verified: false,
            name: None,
            groups: vec![],
            ..Default::default()
        };
        let r = complete(
            &s,
            bob,
            Tokens::id_token("t".into()),
            &start,
            1001,
            &mut rng,
        );
        assert_eq!(r.status(), 403);
        assert!(
            String::from_utf8(r.body().clone())
                .unwrap()
                .contains("allowed email domains")
        );
        assert!(
            !r.headers()
                .get_all(SET_COOKIE)
                .iter()
                .any(|c| c.to_str().unwrap().starts_with("edgeauth_session"))
        );
    }

    mod step_up {
        use super::*;
        use crate::login::StepUp;
        use jwt_simple::prelude::*;
        use serde_json::json;

        const NOW: u64 = 1_800_000_000;

        fn signed(auth_time: Option<serde_json::Value>, nonce: &str) -> (Jwks, String) {
            let kp = Ed25519KeyPair::generate().with_key_id("k1");
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "k1",
                             "x": crate::encoding::b64url(&kp.public_key().to_bytes())});
            let mut custom = json!({});
            if let Some(t) = auth_time {
                custom["auth_time"] = t;
            }
            let mut c = Claims::with_custom_claims(custom, Duration::from_secs(300))
                .with_issuer("http://127.0.0.2:9400")
                .with_audience("edgeauth")
                .with_subject("alice")
                .with_nonce(nonce);
            c.issued_at = Some(UnixTimeStamp::from_secs(NOW));
            c.expires_at = Some(UnixTimeStamp::from_secs(NOW + 300));
            let jwks = Jwks::parse(json!({ "keys": [jwk] }).to_string().as_bytes()).unwrap();
            (jwks, kp.sign(c).unwrap())
        }

        fn start_with(step_up: Option<StepUp>) -> CallbackStart {
            let s = settings_with(&[]);
            let (mut login, _) = started(&s, NOW);
            login.step_up = step_up;
            CallbackStart {
                login,
                code: "c".into(),
                iss: None,
            }
        }

        #[test]
        fn a_step_up_needs_a_fresh_auth_time() {
            let s = settings_with(&[]);
            let asked = Some(StepUp {
                prompt_login: true,
                max_age: None,
                asked_at: NOW,
            });
            let start = start_with(asked);
            let verify_with = |auth_time| {
                let (jwks, token) = signed(auth_time, &start.login.nonce);
                verify(
                    &s.connections[0],
                    &jwks,
                    &start,
                    &Tokens::id_token(token),
                    NOW + 5,
                )
            };
            assert!(verify_with(Some(json!(NOW + 2))).is_ok());
            assert!(reauthenticated(&start));
            // Parameters stripped: the IdP answers from its session.
            assert_eq!(
                verify_with(None),
                Err(IdTokenError::StepUp(StepUpError::NoAuthTime))
            );
            assert_eq!(
                verify_with(Some(json!(NOW - 3600))),
                Err(IdTokenError::StepUp(StepUpError::NotFresh))
            );
            // IdPs that send numbers as strings do not pass.
            assert_eq!(
                verify_with(Some(json!((NOW + 2).to_string()))),
                Err(IdTokenError::StepUp(StepUpError::NoAuthTime))
            );
            let page = verification_failed(&s, &verify_with(None).unwrap_err());
            assert_eq!(page.status(), StatusCode::UNAUTHORIZED);
        }

        #[test]
        fn a_plain_login_does_not_need_auth_time() {
            let s = settings_with(&[]);
            let start = start_with(None);
            let (jwks, token) = signed(None, &start.login.nonce);
            assert!(
                verify(
                    &s.connections[0],
                    &jwks,
                    &start,
                    &Tokens::id_token(token),
                    NOW + 5
                )
                .is_ok()
            );
            assert!(!reauthenticated(&start));
        }
    }
}
