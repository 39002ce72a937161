//! What the origin receives: the client's request minus anything that could
//! claim an identity, plus the gateway's identity headers and assertion.

use http::header::{COOKIE, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Uri};

use crate::cookies::is_gateway_cookie;
use crate::identity::Identity;
use crate::settings::Settings;

// The one header-name comparison lives in the rule contract crate, so the
// rules' reserved-name check and the gateway's stripping cannot drift apart.
pub use edgeauth_contract::names::{canonical_name, same_name};

/// Removes every spelling of `name` (case, `_`/`-`, duplicates) from `headers`.
pub fn remove_every_spelling(headers: &mut HeaderMap, name: &str) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| same_name(k.as_str(), name))
        .cloned()
        .collect();
    for k in doomed {
        headers.remove(k);
    }
}

/// Headers that describe one connection, not the request (RFC 9110 §7.6.1).
pub fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        canonical_name(name).as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// Identity-bearing header names used by common gateways; origins behind
/// other proxies may trust any of them, so none may come from a client.
const SPOOFABLE_EXACT: &[&str] = &[
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-uri",
    "x-forwarded-prefix",
    "forwarded",
    "x-real-ip",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "remote-user",
    "remote-email",
    "remote-groups",
    "remote-name",
    "x-remote-user",
    "x-user",
    "x-email",
    "x-id-token",
    "x-access-token",
    "cf-access-jwt-assertion",
    "cf-access-authenticated-user-email",
    "x-amzn-oidc-data",
    "x-amzn-oidc-identity",
    "x-amzn-oidc-accesstoken",
    "x-ms-client-principal",
    "x-ms-client-principal-name",
    "x-ms-client-principal-id",
];

const SPOOFABLE_PREFIXES: &[&str] = &[
    "x-remote-",
    "x-webauth-",
    "x-authenticated-",
    "x-consumer-",
    "x-credential-",
    "x-user-",
    "x-ms-token-",
    "x-ms-client-principal",
    "x-goog-iap-",
    "impersonate-",
    "x-auth-request-",
    "x-edgeauth-",
    "x-forwarded-",
    "x-pomerium-",
    "x-vouch-",
    "x-goog-authenticated-",
    "x-userinfo",
    // Set by Spin itself for the component; meaningless to the origin.
    "spin-",
];

/// Whether `name`, in any spelling, could claim an identity or steer routing
/// at the origin: such names never come from a client.
pub fn is_spoofable(name: &str, settings: &Settings) -> bool {
    let n = canonical_name(name);
    SPOOFABLE_EXACT.contains(&n.as_str())
        || SPOOFABLE_PREFIXES.iter().any(|p| n.starts_with(p))
        || settings
            .headers
            .configured()
            .any(|h| same_name(h.as_str(), &n))
}

/// `Cookie` without the gateway's own cookies; `None` if nothing is left.
fn origin_cookies(headers: &HeaderMap) -> Option<HeaderValue> {
    crate::cookies::keep_pairs(headers, |name| !is_gateway_cookie(name))
}

/// The origin URI for a request path.
pub fn origin_uri(settings: &Settings, path_and_query: &str) -> Option<Uri> {
    format!(
        "{}{}",
        settings.origin.origin().ascii_serialization(),
        path_and_query
    )
    .parse()
    .ok()
}

/// Request headers for the origin.
pub fn origin_headers(
    settings: &Settings,
    incoming: &HeaderMap,
    identity: Option<(&Identity, &str)>,
    client_addr: Option<&str>,
) -> HeaderMap {
    // Names listed in `Connection` are hop-by-hop for this request too.
    let connection_listed: Vec<String> = incoming
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(canonical_name)
        .collect();
    let mut out = HeaderMap::with_capacity(incoming.len() + 6);
    for (name, value) in incoming {
        let n = name.as_str();
        if is_hop_by_hop(n)
            || same_name(n, HOST.as_str())
            || same_name(n, COOKIE.as_str())
            || connection_listed.contains(&canonical_name(n))
            || is_spoofable(n, settings)
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    if let Some(cookies) = origin_cookies(incoming) {
        out.insert(COOKIE, cookies);
    }
    let mut put = |name: &Option<HeaderName>, value: Option<String>| {
        if let (Some(name), Some(value)) = (name, value)
            && let Ok(v) = HeaderValue::from_str(&value)
        {
            out.insert(name.clone(), v);
        }
    };
    if let Some((identity, assertion)) = identity {
        let h = &settings.headers;
        put(&h.user, Some(identity.sub.clone()));
        put(&h.email, identity.email.clone());
        // The header is comma-joined, so a group name with a comma would read
        // as several groups; such names travel only in the assertion's array.
        let plain: Vec<&str> = identity
            .groups
            .iter()
            .map(String::as_str)
            .filter(|g| !g.contains(','))
            .collect();
        put(&h.groups, (!plain.is_empty()).then(|| plain.join(",")));
        put(&h.name, identity.name.clone());
        put(&h.profile, identity.profile_id.clone());
        put(&Some(h.assertion.clone()), Some(assertion.to_owned()));
    }
    let public = &settings.public_url;
    put(
        &Some(HeaderName::from_static("x-forwarded-proto")),
        Some(public.scheme().to_owned()),
    );
    put(
        &Some(HeaderName::from_static("x-forwarded-host")),
        public.host_str().map(|host| match public.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        }),
    );
    put(
        &Some(HeaderName::from_static("x-forwarded-for")),
        client_addr.and_then(|a| {
            a.parse::<std::net::SocketAddr>()
                .ok()
                .map(|s| s.ip().to_string())
                .or_else(|| a.parse::<std::net::IpAddr>().ok().map(|i| i.to_string()))
        }),
    );
    out
}

/// Names a rule may never set, in any spelling: they frame or route the
/// request, or carry the client's own credentials.
const NOT_FOR_RULES: &[&str] = &[
    "host",
    "cookie",
    "content-length",
    "content-type",
    "authorization",
];

/// Headers tenant rules set at sign-in (validated then; checked again here so
/// a rule can never replace an identity or HTTP header). Any other spelling
/// of a rule's header still in the request is dropped first, so the origin
/// sees the rule's value under one name only; the component strips every
/// tenant's rule header names from client requests before this
/// ([`remove_every_spelling`]).
pub fn add_rule_headers(settings: &Settings, out: &mut HeaderMap, headers: &[(String, String)]) {
    for (name, value) in headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            continue;
        };
        let n = name.as_str();
        if is_hop_by_hop(n)
            || is_spoofable(n, settings)
            || NOT_FOR_RULES.iter().any(|r| same_name(n, r))
        {
            continue;
        }
        remove_every_spelling(out, n);
        out.insert(name, value);
    }
}

/// The person's access token, for a route that passes it
/// (`crate::refresh`). Every client spelling of the header was stripped
/// with the other identity headers: this is the only way one reaches the
/// origin.
pub fn add_access_token(out: &mut HeaderMap, token: &str) {
    let Ok(mut value) = HeaderValue::from_str(token) else {
        return;
    };
    value.set_sensitive(true);
    remove_every_spelling(out, crate::refresh::ACCESS_TOKEN_HEADER);
    out.insert(HeaderName::from_static("x-forwarded-access-token"), value);
}

/// Whether a header of the origin's response goes back to the client.
/// Hop-by-hop headers are the connection's; and the origin may not set the
/// gateway's cookies (that would let an app, or an injected header, fixate
/// or overwrite a session).
pub fn keep_response_header(name: &str, value: &[u8]) -> bool {
    if is_hop_by_hop(name) {
        return false;
    }
    if same_name(name, "set-cookie") {
        let text = String::from_utf8_lossy(value);
        let cookie_name = text.split(['=', ';']).next().unwrap_or("").trim();
        return !is_gateway_cookie(cookie_name);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{alice, settings_with};

    #[test]
    fn strips_every_spoofed_identity_header() {
        let s = settings_with(&[("header_name", "X-User-Name")]);
        let mut incoming = HeaderMap::new();
        let spoofed = [
            "X-Auth-Request-User",
            "x-auth-request-email",
            "X_Auth_Request_User",
            "x_AUTH_request_GROUPS",
            "X-Auth-Request-Access-Token",
            "X-Forwarded-User",
            "X_Forwarded_Email",
            "X-Forwarded-Groups",
            "X-Forwarded-Access-Token",
            "Remote-User",
            "REMOTE_USER",
            "X-Edgeauth-Assertion",
            "x-edgeauth-anything",
            "X-User-Name",
            "X_User_Name",
            "X-Original-URL",
            "X-Forwarded-Host",
            "Forwarded",
            "Cf-Access-Jwt-Assertion",
            "spin-full-url",
            "X-Remote-Group",
            "X-Remote-Extra-Scopes",
            "X-Goog-Iap-Jwt-Assertion",
            "X-Webauth-User",
            "Impersonate-Group",
            "X-Authenticated-Userid",
            "X-Consumer-Username",
            "X-User-Id",
            "X-Ms-Token-Aad-Id-Token",
            "X-Ms-Client-Principal-Idp",
        ];
        for name in spoofed {
            let n = HeaderName::from_bytes(name.as_bytes()).unwrap();
            incoming.append(n.clone(), HeaderValue::from_static("mallory"));
            incoming.append(n, HeaderValue::from_static("mallory2"));
        }
        incoming.insert("x-app-header", HeaderValue::from_static("kept"));
        incoming.insert(
            "authorization",
            HeaderValue::from_static("Bearer app-token"),
        );
        let out = origin_headers(
            &s,
            &incoming,
            Some((&alice(), "jwt")),
            Some("10.0.0.9:5555"),
        );
        for (name, value) in &out {
            assert_ne!(value, "mallory", "{name} leaked");
            assert_ne!(value, "mallory2", "{name} leaked");
        }
        assert_eq!(out["x-auth-request-user"], "alice");
        assert_eq!(out.get_all("x-auth-request-user").iter().count(), 1);
        assert_eq!(out["x-auth-request-groups"], "admins,devs");
        assert_eq!(out["x-user-name"], "Alice");
        assert_eq!(out["x-edgeauth-assertion"], "jwt");
        assert_eq!(out["x-forwarded-for"], "10.0.0.9");
        assert_eq!(out["x-forwarded-host"], "127.0.0.1:3000");
        assert_eq!(out["x-app-header"], "kept");
        let mut odd = alice();
        odd.groups = vec!["devs,admins".into(), "ops".into()];
        let odd_out = origin_headers(&s, &HeaderMap::new(), Some((&odd, "jwt")), None);
        assert_eq!(
            odd_out["x-auth-request-groups"], "ops",
            "a comma inside a name must not forge groups"
        );
        assert_eq!(out["authorization"], "Bearer app-token");
    }

    #[test]
    fn one_canonical_form_for_every_spelling() {
        for spelling in [
            "X-Tenant-Plan",
            "x_tenant-plan",
            "X_Tenant-Plan",
            "x-TENANT_plan",
            "X_TENANT_PLAN",
            "x.tenant.plan",
            "X-Tenant-Plan.",
            "-x-tenant-plan_",
        ] {
            assert_eq!(canonical_name(spelling), "x-tenant-plan", "{spelling}");
            assert!(same_name(spelling, "x-tenant-plan"));
        }
        assert!(!same_name("x-tenant-plans", "x-tenant-plan"));
        assert!(!same_name("xtenant-plan", "x-tenant-plan"));
        let s = settings_with(&[]);
        for spoof in [
            "X_Auth-Request_User",
            "x-auth_REQUEST-email",
            "Remote_User.",
            "X_Forwarded-Email",
            "x-edgeauth_assertion",
        ] {
            assert!(is_spoofable(spoof, &s), "{spoof}");
        }
        assert!(is_hop_by_hop("Transfer_Encoding"));
        assert!(!is_spoofable("x-app-header", &s));
    }

    #[test]
    fn rule_headers_replace_every_client_spelling() {
        let s = settings_with(&[]);
        let mut incoming = HeaderMap::new();
        for name in [
            "X_Tenant-Plan",
            "x-tenant_plan",
            "X-TENANT-PLAN",
            "x_tenant_plan",
        ] {
            let n = HeaderName::from_bytes(name.as_bytes()).unwrap();
            incoming.append(n.clone(), HeaderValue::from_static("mallory"));
            incoming.append(n, HeaderValue::from_static("mallory2"));
        }
        let mut stripped = incoming.clone();
        remove_every_spelling(&mut stripped, "x-tenant-plan");
        assert!(stripped.is_empty(), "{stripped:?}");

        let mut out = origin_headers(&s, &incoming, Some((&alice(), "jwt")), None);
        add_rule_headers(
            &s,
            &mut out,
            &[
                ("x-tenant-plan".into(), "gold".into()),
                ("Content_Type".into(), "text/evil".into()),
                ("x_auth-request_user".into(), "mallory".into()),
            ],
        );
        let plan: Vec<_> = out
            .iter()
            .filter(|(k, _)| same_name(k.as_str(), "x-tenant-plan"))
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(plan, [("x-tenant-plan", "gold")]);
        assert!(out.get("content_type").is_none());
        assert_eq!(out["x-auth-request-user"], "alice");
        assert!(out.get("x_auth-request_user").is_none());
    }

    #[test]
    fn strips_gateway_cookies_and_hop_by_hop() {
        let s = settings_with(&[]);
        let mut incoming = HeaderMap::new();
        incoming.append(
            COOKIE,
            HeaderValue::from_static("a=1; edgeauth_session=s; b=2"),
        );
        incoming.append(
            COOKIE,
            HeaderValue::from_static("__Host-edgeauth_login=x; EDGEAUTH_session=y"),
        );
        incoming.insert(
            "connection",
            HeaderValue::from_static("close, x-secret-hop"),
        );
        incoming.insert("x-secret-hop", HeaderValue::from_static("1"));
        incoming.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        incoming.insert(HOST, HeaderValue::from_static("127.0.0.1:3000"));
        let out = origin_headers(&s, &incoming, Some((&alice(), "jwt")), None);
        assert_eq!(out[COOKIE], "a=1; b=2");
        assert!(out.get("connection").is_none());
        assert!(out.get("x-secret-hop").is_none());
        assert!(out.get("transfer-encoding").is_none());
        assert!(out.get(HOST).is_none());
        assert!(out.get("x-forwarded-for").is_none());

        let mut only_ours = HeaderMap::new();
        only_ours.insert(COOKIE, HeaderValue::from_static("edgeauth_session=s"));
        assert!(
            origin_headers(&s, &only_ours, Some((&alice(), "jwt")), None)
                .get(COOKIE)
                .is_none()
        );
    }

    #[test]
    fn origin_uri_keeps_path_and_query() {
        let s = settings_with(&[]);
        assert_eq!(
            origin_uri(&s, "/a/b?x=1&y=%2F").unwrap().to_string(),
            "http://127.0.0.1:3001/a/b?x=1&y=%2F"
        );
    }

    #[test]
    fn origin_cannot_set_gateway_cookies() {
        assert!(keep_response_header("Set-Cookie", b"app=1; Path=/"));
        assert!(!keep_response_header(
            "set-cookie",
            b"edgeauth_session=forged; Path=/"
        ));
        assert!(!keep_response_header(
            "set-cookie",
            b"__Host-edgeauth_session=x"
        ));
        assert!(!keep_response_header("Transfer-Encoding", b"chunked"));
        assert!(keep_response_header("x-origin", b"yes"));
    }
}
