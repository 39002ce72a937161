//! Small reserved endpoints: health, JWKS and the signed-in person's identity.

use http::StatusCode;
use http::request::Parts;

use crate::Response;
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

/// The identity in the session, never the tokens behind it.
pub fn userinfo(settings: &Settings, parts: &Parts, now: u64) -> Response {
    match session::read(settings, &parts.headers, now) {
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
    use crate::testutil::settings_with;

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
}
