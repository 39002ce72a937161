//! The hot path: session check, policy, and the plan for forwarding.
//! No network I/O: the session cookie carries everything needed.

use http::request::Parts;
use http::{HeaderMap, Method, StatusCode, Uri};

use crate::Response;
use crate::identity::Identity;
use crate::pages;
use crate::policy::{self, Denial};
use crate::route_rules::{self, RouteRule};
use crate::routes::LOGIN;
use crate::session;
use crate::settings::Settings;

/// How to send the request on to the origin.
#[derive(Debug)]
pub struct Forward {
    pub uri: Uri,
    pub headers: HeaderMap,
    /// An assertion signed for this request, to cache (`crate::assertion_cache`);
    /// `None` when a cached one was used or there is no identity.
    pub fresh_assertion: Option<String>,
    /// The request's session (`None` on a public path without one), for
    /// the lifecycle duties the caller does around forwarding
    /// (`crate::lifecycle::duty`).
    pub session: Option<session::Session>,
    /// Whether the governing route passes the access token.
    pub passes_token: bool,
    /// A re-issued session cookie to send with the origin's answer.
    pub set_cookie: Option<String>,
}

#[derive(Debug)]
pub enum Access {
    Forward(Box<Forward>),
    Respond(Response),
}

/// The browser is sent to log in and come back to the same path.
pub fn login_redirect(parts: &Parts) -> Response {
    let here = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let rd: String = url::form_urlencoded::byte_serialize(here.as_bytes()).collect();
    pages::redirect(&format!("{LOGIN}?rd={rd}"))
}

pub fn unauthenticated(parts: &Parts, api: bool) -> Response {
    if api || pages::wants_json(parts) {
        return pages::json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({
                "error": "unauthenticated",
                "message": "Sign in first.",
                "login_url": LOGIN,
            })
            .to_string(),
        );
    }
    // Only safe methods come back after login; a form post cannot be replayed.
    if matches!(parts.method, Method::GET | Method::HEAD) {
        return login_redirect(parts);
    }
    pages::error_with_link(
        StatusCode::UNAUTHORIZED,
        "Sign in first",
        "This request needs a signed-in session.",
        &format!("{LOGIN}?rd=/"),
        "Sign in",
    )
}

fn deny(parts: &Parts, denial: Denial) -> Access {
    Access::Respond(denied(&denial, pages::wants_json(parts)))
}

/// The policy a signed-in person meets on a path under `rule`: the global
/// policy and the rule's own, unless the rule makes the path public.
fn admits(
    settings: &Settings,
    rule: Option<&RouteRule>,
    identity: &Identity,
) -> Result<(), Denial> {
    if rule.is_some_and(|r| r.public) {
        return Ok(());
    }
    policy::check(settings, identity)?;
    rule.map_or(Ok(()), |r| r.check(identity))
}

/// Whether the current policy still admits `identity` to the app at all, for
/// the gateway's own endpoints that answer with the person's identity
/// (`/.edgeauth/userinfo`): judged as a request for the app's root `/` is,
/// so a session that policy would now turn away at the origin gets no answer
/// there either. The global policy always applies here, even when `/` is public.
pub fn admits_to_app(settings: &Settings, identity: &Identity) -> Result<(), Denial> {
    let root = route_rules::find(&settings.routes, "/", &Method::GET).filter(|r| !r.public);
    admits(settings, root, identity)
}

/// A refusal by policy, as a page or JSON.
pub fn denied(denial: &Denial, json: bool) -> Response {
    pages::error(
        StatusCode::FORBIDDEN,
        "Access denied",
        &format!(
            "Denied by the rule \u{201c}{}\u{201d}: {}.",
            denial.rule, denial.reason
        ),
        json,
    )
}

/// Decides a request for a non-reserved, already normalized `path`.
pub fn authorize(settings: &Settings, parts: &Parts, path: &str, now: u64) -> Access {
    authorize_with_cache(settings, parts, path, now, None)
}

/// [`authorize`], reusing `cached`, the request's entry of the assertion
/// cache, when it is still good.
pub fn authorize_with_cache(
    settings: &Settings,
    parts: &Parts,
    path: &str,
    now: u64,
    cached: Option<&[u8]>,
) -> Access {
    let rule = match route_rules::governing(&settings.routes, path, &parts.method) {
        Ok(rule) => rule,
        Err(e) => return Access::Respond(bad_path(parts, e)),
    };
    let public = rule.is_some_and(|r| r.public);
    let session = match session::read(settings, &parts.headers, now) {
        Ok(s) => Some(s),
        Err(_) if public => None,
        Err(_) => return Access::Respond(unauthenticated(parts, rule.is_some_and(|r| r.api))),
    };
    let identity = session.as_ref().map(|s| &s.identity);
    if let Some(Err(d)) = identity.map(|id| admits(settings, rule, id)) {
        return deny(parts, d);
    }
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let Some(uri) = crate::forward::origin_uri(settings, &path_and_query) else {
        return Access::Respond(pages::error(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The request target cannot be forwarded.",
            pages::wants_json(parts),
        ));
    };
    let reused = cached.and_then(|c| crate::assertion_cache::reusable(c, now));
    let mut fresh_assertion = None;
    let assertion = session.as_ref().map(|s| match reused {
        Some(jwt) => jwt.to_owned(),
        None => {
            let jwt = settings.assertion_keys.sign_with_claims(
                &s.identity,
                &s.extras.claims,
                &settings.public_origin(),
                &settings.assertion_audience,
                now,
            );
            fresh_assertion = Some(jwt.clone());
            jwt
        }
    });
    let client_addr = parts
        .headers
        .get("spin-client-addr")
        .and_then(|v| v.to_str().ok());
    let mut headers = crate::forward::origin_headers(
        settings,
        &parts.headers,
        identity.zip(assertion.as_deref()),
        client_addr,
    );
    if let Some(s) = &session {
        crate::forward::add_rule_headers(settings, &mut headers, &s.extras.headers);
    }
    Access::Forward(Box::new(Forward {
        uri,
        headers,
        fresh_assertion,
        passes_token: rule.is_some_and(|r| r.pass_access_token) && session.is_some(),
        session,
        set_cookie: None,
    }))
}

/// A path that could be read two ways never reaches the origin.
pub fn bad_path(parts: &Parts, error: crate::paths::PathError) -> Response {
    pages::error(
        StatusCode::BAD_REQUEST,
        "Bad request",
        &format!("Refused because {error}."),
        pages::wants_json(parts),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Session;
    use crate::testutil::{counter_rng, settings_with};
    use http::header::{COOKIE, LOCATION};

    fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn cookie_for(s: &Settings, email: &str, verified: bool) -> String {
        let id = Identity {
            sub: "u1".into(),
            email: Some(email.into()),
            email_verified: verified,
            name: None,
            groups: vec![],
            ..Default::default()
        };
        let mut rng = counter_rng();
        let c = Session::new(id, None, s, 1000)
            .to_cookie(s, &mut rng)
            .unwrap();
        c.split(';').next().unwrap().to_owned()
    }

    #[test]
    fn no_session_redirects_browsers_and_401s_apis() {
        let s = settings_with(&[]);
        let Access::Respond(r) = authorize(&s, &req("GET", "/a/b?x=1&y=2", &[]), "/a/b", 1000)
        else {
            panic!()
        };
        assert_eq!(r.status(), 302);
        assert_eq!(
            r.headers()[LOCATION],
            "/.edgeauth/login?rd=%2Fa%2Fb%3Fx%3D1%26y%3D2"
        );
        let Access::Respond(r) = authorize(
            &s,
            &req("GET", "/api", &[("accept", "application/json")]),
            "/api",
            1000,
        ) else {
            panic!()
        };
        assert_eq!(r.status(), 401);
        let Access::Respond(r) = authorize(&s, &req("POST", "/form", &[]), "/form", 1000) else {
            panic!()
        };
        assert_eq!(r.status(), 401);
    }

    #[test]
    fn valid_session_forwards_with_identity() {
        let s = settings_with(&[]);
        let c = cookie_for(&s, "alice@example.com", true);
        let Access::Forward(f) = authorize(
            &s,
            &req("GET", "/x?q=1", &[(COOKIE.as_str(), &c)]),
            "/x",
            1001,
        ) else {
            panic!()
        };
        assert_eq!(f.uri.to_string(), "http://127.0.0.1:3001/x?q=1");
        assert_eq!(f.headers["x-auth-request-user"], "u1");
        assert!(f.headers.get(COOKIE).is_none());
        // The assertion is the freshly signed one, and it verifies against the
        // gateway's published keys for this person, issuer and audience.
        let jwt = f.headers["x-edgeauth-assertion"].to_str().unwrap();
        assert_eq!(f.fresh_assertion.as_deref(), Some(jwt));
        let claims = verify_assertion(&s, jwt, 1001);
        assert_eq!(claims.subject.as_deref(), Some("u1"));
        assert_eq!(claims.custom["email"], "alice@example.com");
        assert_eq!(claims.custom["email_verified"], true);
        assert_eq!(
            claims.expires_at.unwrap().as_secs(),
            1001 + crate::assertion::ASSERTION_LIFETIME_SECS
        );
    }

    /// Claims of an assertion that verifies against the gateway's JWKS (its
    /// issuer and audience, at `now`); panics otherwise.
    fn verify_assertion(
        s: &Settings,
        jwt: &str,
        now: u64,
    ) -> jwt_simple::prelude::JWTClaims<serde_json::Value> {
        use jwt_simple::prelude::{Duration, UnixTimeStamp, VerificationOptions};
        use std::collections::HashSet;
        let jwks = crate::id_token::Jwks::parse(s.assertion_keys.jwks_json().as_bytes()).unwrap();
        let options = VerificationOptions {
            allowed_issuers: Some(HashSet::from([s.public_origin()])),
            allowed_audiences: Some(HashSet::from([s.assertion_audience.clone()])),
            artificial_time: Some(UnixTimeStamp::from_secs(now)),
            time_tolerance: Some(Duration::from_secs(0)),
            ..Default::default()
        };
        jwks.verify_any(jwt, options)
            .unwrap_or_else(|e| panic!("assertion does not verify: {e:?}"))
    }

    #[test]
    fn a_cached_assertion_is_reused_only_while_it_has_time_left() {
        let s = settings_with(&[]);
        let c = cookie_for(&s, "alice@example.com", true);
        let parts = req("GET", "/x", &[(COOKIE.as_str(), &c)]);
        let Access::Forward(first) = authorize_with_cache(&s, &parts, "/x", 1001, None) else {
            panic!()
        };
        let jwt = first
            .fresh_assertion
            .clone()
            .expect("signed and offered for caching");
        assert_eq!(first.headers["x-edgeauth-assertion"], jwt.as_str());
        let entry = crate::assertion_cache::encode(&jwt, 1001);
        let Access::Forward(again) = authorize_with_cache(&s, &parts, "/x", 1031, Some(&entry))
        else {
            panic!()
        };
        assert_eq!(again.fresh_assertion, None);
        assert_eq!(again.headers["x-edgeauth-assertion"], jwt.as_str());
        let Access::Forward(later) = authorize_with_cache(&s, &parts, "/x", 1032, Some(&entry))
        else {
            panic!()
        };
        assert_ne!(later.headers["x-edgeauth-assertion"], jwt.as_str());
        assert!(later.fresh_assertion.is_some());
        // Never for a request whose session does not hold.
        let bad = req(
            "GET",
            "/x",
            &[(COOKIE.as_str(), "edgeauth_session=s1.AAAA")],
        );
        assert!(matches!(
            authorize_with_cache(&s, &bad, "/x", 1031, Some(&entry)),
            Access::Respond(_)
        ));
    }

    #[test]
    fn rule_extras_reach_the_origin_but_never_replace_identity() {
        let s = settings_with(&[]);
        let id = Identity {
            sub: "u1".into(),
            email: None,
            email_verified: false,
            name: None,
            groups: vec![],
            ..Default::default()
        };
        let mut extras = crate::session::Extras::default();
        extras.claims.insert(
            "https://example.com/roles".into(),
            serde_json::json!(["admin"]),
        );
        extras
            .claims
            .insert("sub".into(), serde_json::json!("mallory"));
        extras.headers.push(("x-roles".into(), "admin".into()));
        extras
            .headers
            .push(("x-auth-request-user".into(), "mallory".into()));
        extras.headers.push(("host".into(), "evil.example".into()));
        let mut rng = counter_rng();
        let c = Session::new(id, None, &s, 1000)
            .with_extras(extras)
            .to_cookie(&s, &mut rng)
            .unwrap();
        let c = c.split(';').next().unwrap().to_owned();
        let Access::Forward(f) =
            authorize(&s, &req("GET", "/x", &[(COOKIE.as_str(), &c)]), "/x", 1001)
        else {
            panic!()
        };
        assert_eq!(f.headers["x-roles"], "admin");
        assert_eq!(f.headers["x-auth-request-user"], "u1");
        assert!(f.headers.get("host").is_none());
        let jwt = f.headers["x-edgeauth-assertion"].to_str().unwrap();
        let payload = crate::encoding::b64url_decode(jwt.split('.').nth(1).unwrap()).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(
            claims["https://example.com/roles"],
            serde_json::json!(["admin"])
        );
        assert_eq!(claims["sub"], "u1");
    }

    #[test]
    fn policy_applies_to_existing_sessions() {
        let open = settings_with(&[]);
        let c = cookie_for(&open, "bob@example.com", false);
        let strict = settings_with(&[("allowed_email_domains", "example.com")]);
        let Access::Respond(r) = authorize(
            &strict,
            &req("GET", "/", &[(COOKIE.as_str(), &c)]),
            "/",
            1001,
        ) else {
            panic!()
        };
        assert_eq!(r.status(), 403);
    }

    #[test]
    fn public_paths_and_route_policies() {
        let s = settings_with(&[(
            "routes",
            r#"[{"path": "/public/", "public": true}, {"path": "/admin/", "allowed_groups": ["admins"]}, {"path": "/api/", "api": true}]"#,
        )]);
        let spoof = [("x-auth-request-user", "mallory")];
        let Access::Forward(f) =
            authorize(&s, &req("GET", "/public/a?x=1", &spoof), "/public/a", 1000)
        else {
            panic!()
        };
        assert!(f.session.is_none());
        assert!(f.headers.get("x-auth-request-user").is_none());
        assert!(f.headers.get("x-edgeauth-assertion").is_none());
        assert_eq!(f.uri.to_string(), "http://127.0.0.1:3001/public/a?x=1");
        let Access::Respond(r) = authorize(&s, &req("GET", "/api/x", &[]), "/api/x", 1000) else {
            panic!()
        };
        assert_eq!(r.status(), 401);
        let c = cookie_for(&s, "alice@example.com", true);
        let Access::Respond(r) = authorize(
            &s,
            &req("GET", "/Admin/x", &[(COOKIE.as_str(), &c)]),
            "/Admin/x",
            1001,
        ) else {
            panic!()
        };
        assert_eq!(
            r.status(),
            403,
            "case variants of a policy path are covered"
        );
        // A signed-in person on a public path is still identified.
        let Access::Forward(f) = authorize(
            &s,
            &req("GET", "/public/", &[(COOKIE.as_str(), &c)]),
            "/public/",
            1001,
        ) else {
            panic!()
        };
        assert_eq!(f.headers["x-auth-request-user"], "u1");
    }
}
