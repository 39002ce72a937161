//! The gateway's reserved paths. Everything else belongs to the origin.

use http::request::Parts;

pub const PREFIX: &str = "/.edgeauth/";
pub const LOGIN: &str = "/.edgeauth/login";
pub const CALLBACK: &str = "/.edgeauth/callback";
pub const LOGOUT: &str = "/.edgeauth/logout";
pub const LOGGED_OUT: &str = "/.edgeauth/logged-out";
pub const JWKS: &str = "/.edgeauth/jwks.json";
pub const HEALTH: &str = "/.edgeauth/health";
pub const USERINFO: &str = "/.edgeauth/userinfo";
pub const LINK: &str = "/.edgeauth/link";
pub const BACKCHANNEL_LOGOUT: &str = "/.edgeauth/backchannel-logout";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Login,
    /// `/.edgeauth/callback` (the legacy connection's) or
    /// `/.edgeauth/callback/<connection>`.
    Callback(Option<String>),
    Logout,
    LoggedOut,
    Jwks,
    Health,
    Userinfo,
    /// The offer to link accounts by proof (`crate::linking`).
    Link,
    /// OIDC Back-Channel Logout (`crate::backchannel`): the legacy
    /// connection's, or `/<connection>`'s.
    BackchannelLogout(Option<String>),
    /// Under the reserved prefix but not a known endpoint: never forwarded.
    UnknownReserved,
    /// Anything else: needs a session (unless a rule makes it public), then
    /// goes to the origin with this normalized path.
    Protected(String),
    /// A path servers could read two ways; refused.
    BadPath(crate::paths::PathError),
}

pub fn route(parts: &Parts) -> Route {
    let path = match crate::paths::normalize(parts.uri.path()) {
        Ok(p) => p,
        Err(e) => return Route::BadPath(e),
    };
    let path = path.as_str();
    // The prefix is matched case-insensitively and on its decoded form too, so
    // `/.EdgeAuth/` or `/%2eedgeauth/` cannot smuggle a reserved path to the origin.
    let lowered = path.to_ascii_lowercase();
    let decoded = percent_encoding::percent_decode_str(&lowered)
        .decode_utf8_lossy()
        .into_owned();
    let reserved = |p: &str| p.starts_with(PREFIX) || p == PREFIX.trim_end_matches('/');
    if !reserved(&lowered) && !reserved(&decoded) {
        // `/.edgeauth./x` is the gateway's `/.edgeauth/x` to servers that drop
        // trailing dots and spaces: neither the gateway's nor the origin's.
        if crate::paths::trimmed_reading(&lowered).is_some_and(|t| reserved(&t)) {
            return Route::BadPath(crate::paths::PathError::Ambiguous(
                "the gateway's reserved prefix with trailing dots or spaces",
            ));
        }
        return Route::Protected(path.to_owned());
    }
    // `<base>/<connection id>`: the connection, if the id has its form.
    let per_connection = |p: &str, base: &str| -> Option<Option<String>> {
        let id = p.strip_prefix(base)?.strip_prefix('/')?;
        Some(crate::connections::valid_id(id).then(|| id.to_owned()))
    };
    match path {
        LOGIN => Route::Login,
        CALLBACK => Route::Callback(None),
        BACKCHANNEL_LOGOUT => Route::BackchannelLogout(None),
        p if let Some(id) = per_connection(p, CALLBACK) => match id {
            Some(id) => Route::Callback(Some(id)),
            None => Route::UnknownReserved,
        },
        p if let Some(id) = per_connection(p, BACKCHANNEL_LOGOUT) => match id {
            Some(id) => Route::BackchannelLogout(Some(id)),
            None => Route::UnknownReserved,
        },
        LOGOUT => Route::Logout,
        LOGGED_OUT => Route::LoggedOut,
        JWKS => Route::Jwks,
        HEALTH => Route::Health,
        USERINFO => Route::Userinfo,
        LINK => Route::Link,
        _ => Route::UnknownReserved,
    }
}

/// The value of query parameter `name` (first occurrence), decoded.
pub fn query_param(parts: &Parts, name: &str) -> Option<String> {
    let q = parts.uri.query()?;
    url::form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(uri: &str) -> Route {
        let (parts, ()) = http::Request::get(uri).body(()).unwrap().into_parts();
        route(&parts)
    }

    #[test]
    fn classifies() {
        assert_eq!(r("/.edgeauth/login?rd=/x"), Route::Login);
        assert_eq!(r("/.edgeauth/callback?code=1"), Route::Callback(None));
        assert_eq!(
            r("/.edgeauth/callback/github?code=1"),
            Route::Callback(Some("github".into()))
        );
        assert_eq!(r("/.edgeauth/callback/GitHub"), Route::UnknownReserved);
        assert_eq!(r("/.edgeauth/callback/a/b"), Route::UnknownReserved);
        assert_eq!(
            r("/.edgeauth/backchannel-logout"),
            Route::BackchannelLogout(None)
        );
        assert_eq!(
            r("/.edgeauth/backchannel-logout/corp"),
            Route::BackchannelLogout(Some("corp".into()))
        );
        assert_eq!(
            r("/.edgeauth/backchannel-logout/a/b"),
            Route::UnknownReserved
        );
        assert_eq!(r("/.edgeauth/callback/"), Route::UnknownReserved);
        assert_eq!(r("/.edgeauth/jwks.json"), Route::Jwks);
        assert_eq!(r("/.edgeauth/nope"), Route::UnknownReserved);
        assert_eq!(r("/.edgeauth"), Route::UnknownReserved);
        assert_eq!(r("/.EDGEAUTH/login"), Route::UnknownReserved);
        assert_eq!(r("/%2eedgeauth/login"), Route::Login);
        assert_eq!(r("/x/../.edgeauth/jwks.json"), Route::Jwks);
        assert_eq!(r("//.edgeauth/health"), Route::Health);
        assert_eq!(
            r("/app/.edgeauth/login"),
            Route::Protected("/app/.edgeauth/login".into())
        );
        assert_eq!(r("/a//b/./c"), Route::Protected("/a/b/c".into()));
        assert_eq!(r("/"), Route::Protected("/".into()));
        assert!(matches!(r("/a%2fb"), Route::BadPath(_)));
        assert!(matches!(r("/.edgeauth./userinfo"), Route::BadPath(_)));
        assert!(matches!(r("/.EdgeAuth%20/login"), Route::BadPath(_)));
        assert_eq!(
            r("/.edgeauthx./a"),
            Route::Protected("/.edgeauthx./a".into())
        );
    }
}
