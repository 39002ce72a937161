//! Small reserved endpoints: health, JWKS and the signed-in person's identity.

use http::StatusCode;
use http::request::Parts;

use crate::Response;
use crate::access;
use crate::pages;
use crate::session;
use crate::settings::Settings;

pub fn health() -> Response {
    pages::text(StatusCode::OK, "ok\n")
}

pub fn jwks(settings: &Settings) -> Response {
    let mut r = pages::json(StatusCode::OK, settings.assertion_keys.jwks_json());
    // Origins may cache the keys briefly; rotation publishes new keys before use.
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// The identity in the session, never the tokens behind it; and only while
/// the current policy still admits the person to the app
/// ([`access::admits_to_app`]), as it would on a forwarded request.
pub fn userinfo(settings: &Settings, parts: &Parts, now: u64) -> Response {
    let session = session::read(settings, &parts.headers, now);
    if let Ok(s) = &session
        && let Err(d) = access::admits_to_app(settings, &s.identity)
    {
        return access::denied(&d, true);
    }
    match session {
        Ok(s) => pages::json(
            StatusCode::OK,
            serde_json::json!({
                "sub": s.identity.sub,
                "email": s.identity.email,
                "email_verified": s.identity.email_verified,
                "name": s.identity.name,
                "groups": s.identity.groups,
                "session_expires_at": s.expires_at,
            })
            .to_string(),
        ),
        Err(_) => pages::json(
            StatusCode::UNAUTHORIZED,
            r#"{"error":"unauthenticated","message":"Sign in first."}"#.to_owned(),
        ),
    }
}

pub fn not_found(parts: &Parts) -> Response {
    pages::error(
        StatusCode::NOT_FOUND,
        "Not found",
        "No such gateway endpoint.",
        pages::wants_json(parts),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{alice, settings_with};

    #[test]
    fn userinfo_requires_a_session() {
        let s = settings_with(&[]);
        let parts = http::Request::get("/.edgeauth/userinfo")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert_eq!(userinfo(&s, &parts, 1).status(), 401);
        assert_eq!(jwks(&s).status(), 200);
    }

    #[test]
    fn userinfo_follows_the_current_policy() {
        let open = settings_with(&[]);
        let mut rng = crate::testutil::counter_rng();
        let mut bob = alice();
        bob.sub = "bob".into();
        bob.groups = vec!["users".into()];
        let mut cookie = |id: crate::identity::Identity| {
            let c = session::Session::new(id, None, &open, 1000)
                .to_cookie(&open, &mut rng)
                .unwrap();
            c.split(';').next().unwrap().to_owned()
        };
        let (a, b) = (cookie(alice()), cookie(bob));
        let ask = |s: &Settings, c: &str| {
            let parts = http::Request::get("/.edgeauth/userinfo")
                .header(http::header::COOKIE, c)
                .body(())
                .unwrap()
                .into_parts()
                .0;
            userinfo(s, &parts, 1001)
        };
        let whole_app = settings_with(&[(
            "routes",
            r#"[{"path": "/", "public": false, "allowed_groups": ["admins"]}]"#,
        )]);
        let one_part = settings_with(&[(
            "routes",
            r#"[{"path": "/admin/", "allowed_groups": ["admins"]}]"#,
        )]);
        let other_domain = settings_with(&[("allowed_email_domains", "example.org")]);
        assert_eq!(ask(&open, &b).status(), 200);
        assert_eq!(ask(&whole_app, &a).status(), 200);
        let refused = ask(&whole_app, &b);
        assert_eq!(refused.status(), 403);
        assert_eq!(refused.headers()["content-type"], "application/json");
        assert!(!String::from_utf8_lossy(refused.body()).contains("bob"));
        assert_eq!(ask(&one_part, &b).status(), 200);
        assert_eq!(ask(&other_domain, &a).status(), 403);
    }
}
