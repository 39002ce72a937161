//! The gateway's cookies: names, attributes and bounded reading.
//!
//! Over https the names carry the `__Host-` prefix, which makes browsers refuse
//! them unless Secure, host-only and Path=/, so a sibling subdomain cannot plant
//! or overwrite them (session fixation). Plain http is loopback development only.

use cookie::{Cookie, SameSite};
use http::HeaderMap;
use http::header::{COOKIE, HeaderValue};

use crate::settings::Settings;

/// Reading more than this much `Cookie` header is refused outright.
pub const MAX_COOKIE_HEADER: usize = 16 * 1024;
/// How many same-named cookies are tried before giving up.
const MAX_CANDIDATES: usize = 4;
/// Every cookie the gateway sets starts with this, so none is forwarded.
pub const NAME_STEM: &str = "edgeauth_";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jar {
    Session,
    Login,
    /// A sign-in paused by a tenant rule's redirect.
    Resume,
    /// An offer to link accounts by proof (`crate::linking`).
    Link,
}

impl Jar {
    fn stem(self) -> &'static str {
        match self {
            Jar::Session => "edgeauth_session",
            Jar::Login => "edgeauth_login",
            Jar::Resume => "edgeauth_resume",
            Jar::Link => "edgeauth_link",
        }
    }
}

pub fn name(settings: &Settings, jar: Jar) -> String {
    if settings.secure_cookies {
        format!("__Host-{}", jar.stem())
    } else {
        jar.stem().to_owned()
    }
}

fn path(settings: &Settings, jar: Jar) -> &'static str {
    match jar {
        // `__Host-` requires Path=/; on loopback http the login cookie is kept
        // to the reserved prefix so it is not sent with ordinary requests.
        Jar::Login | Jar::Resume | Jar::Link if !settings.secure_cookies => crate::routes::PREFIX,
        _ => "/",
    }
}

/// A `Set-Cookie` value.
pub fn set(settings: &Settings, jar: Jar, value: String, max_age_secs: u64) -> String {
    Cookie::build((name(settings, jar), value))
        .path(path(settings, jar))
        .http_only(true)
        .secure(settings.secure_cookies)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age_secs).unwrap_or(i64::MAX),
        ))
        .build()
        .to_string()
}

/// A `Set-Cookie` value that deletes the cookie.
pub fn clear(settings: &Settings, jar: Jar) -> String {
    set(settings, jar, String::new(), 0)
}

/// Values of the cookie named `name` across every `Cookie` header, at most a
/// few; `None` when the headers are oversized (a denial-of-service attempt is
/// treated like having no cookie at all).
pub fn values(headers: &HeaderMap, name: &str) -> Option<Vec<String>> {
    let mut total = 0usize;
    let mut out = Vec::new();
    for header in headers.get_all(COOKIE) {
        total += header.len();
        if total > MAX_COOKIE_HEADER {
            return None;
        }
        let Ok(text) = header.to_str() else { continue };
        for c in Cookie::split_parse(text).flatten() {
            if c.name() == name && out.len() < MAX_CANDIDATES {
                out.push(c.value().to_owned());
            }
        }
    }
    Some(out)
}

/// The request's cookies as one `Cookie` value, keeping only the pairs whose
/// name `keep` accepts; `None` when nothing is left.
pub fn keep_pairs(headers: &HeaderMap, keep: impl Fn(&str) -> bool) -> Option<HeaderValue> {
    let kept: Vec<&str> = headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            !pair.is_empty() && keep(pair.split_once('=').map_or(*pair, |(n, _)| n).trim())
        })
        .collect();
    if kept.is_empty() {
        None
    } else {
        HeaderValue::from_str(&kept.join("; ")).ok()
    }
}

/// True for cookies the gateway owns, which the origin must never see.
pub fn is_gateway_cookie(name: &str) -> bool {
    let bare = name.strip_prefix("__Host-").unwrap_or(name);
    bare.to_ascii_lowercase().starts_with(NAME_STEM)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::settings_with;

    #[test]
    fn attributes_over_https_and_loopback() {
        let https = settings_with(&[("public_url", "https://gw.example")]);
        let c = set(&https, Jar::Session, "v".into(), 60);
        assert!(c.starts_with("__Host-edgeauth_session=v"), "{c}");
        for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age=60"] {
            assert!(c.contains(attr), "{c} lacks {attr}");
        }
        assert!(!c.contains("Domain"));
        let dev = settings_with(&[]);
        let c = set(&dev, Jar::Login, "v".into(), 600);
        assert!(c.starts_with("edgeauth_login=v"));
        assert!(!c.contains("Secure"));
        assert!(c.contains("Path=/.edgeauth/"));
    }

    #[test]
    fn reads_bounded_values() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, "a=1; edgeauth_session=x; b=2".parse().unwrap());
        h.append(COOKIE, "edgeauth_session=y".parse().unwrap());
        assert_eq!(values(&h, "edgeauth_session").unwrap(), vec!["x", "y"]);
        let mut many = HeaderMap::new();
        let line = (0..100)
            .map(|i| format!("edgeauth_session={i}"))
            .collect::<Vec<_>>()
            .join("; ");
        many.append(COOKIE, line.parse().unwrap());
        assert_eq!(
            values(&many, "edgeauth_session").unwrap().len(),
            MAX_CANDIDATES
        );
        let mut huge = HeaderMap::new();
        huge.append(
            COOKIE,
            format!("x={}", "a".repeat(MAX_COOKIE_HEADER))
                .parse()
                .unwrap(),
        );
        assert_eq!(values(&huge, "edgeauth_session"), None);
    }

    #[test]
    fn gateway_cookie_names() {
        assert!(is_gateway_cookie("edgeauth_session"));
        assert!(is_gateway_cookie("__Host-edgeauth_login"));
        assert!(is_gateway_cookie("EDGEAUTH_SESSION"));
        assert!(!is_gateway_cookie("app_session"));
    }
}
