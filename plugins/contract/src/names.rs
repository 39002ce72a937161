//! Names in the contract: tenants, rules and secrets, and the claim and
//! header names no rule may set, whatever a tenant configures.

/// Tenant, rule and secret names: 1-64 of `a-z 0-9 - _`.
pub fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A header name a tenant may list for a rule: 1-64 of `A-Z a-z 0-9 -`.
pub fn header_token(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The one form in which the gateway compares header names, wherever it
/// strips a name from a client's request or sets one for the origin.
///
/// Lower-cased, with every character other than a letter or digit read as
/// `-`, and separators at either end dropped. Servers disagree on what a name
/// means: CGI, WSGI, Rack and PHP map `-` and `_` to the same variable (so
/// `X_Auth-Request_User` is as dangerous as the dashed name), some frameworks
/// map `.` too, and lenient parsers trim what surrounds a name. Folding more
/// than any one server does only ever strips an odd lookalike of a name the
/// gateway owns, which no legitimate client needs to send.
pub fn canonical_name(name: &str) -> String {
    folded(name).map(char::from).collect()
}

/// The bytes of [`canonical_name`], without allocating: this runs for every
/// header of every request.
fn folded(name: &str) -> impl Iterator<Item = u8> + '_ {
    let b = name.as_bytes();
    let start = b
        .iter()
        .position(u8::is_ascii_alphanumeric)
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(u8::is_ascii_alphanumeric)
        .map_or(start, |i| i + 1);
    b.get(start..end).unwrap_or_default().iter().map(|&c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_lowercase()
        } else {
            b'-'
        }
    })
}

/// Whether two header names are the same for the gateway (see [`canonical_name`]).
pub fn same_name(a: &str, b: &str) -> bool {
    folded(a).eq(folded(b))
}

/// Headers a rule may never set, whatever the configuration says: HTTP's
/// own, the platform's, and identity headers other proxies use. Compared in
/// [`canonical_name`] form, like every header name the gateway handles.
pub fn reserved_header(name: &str) -> bool {
    const EXACT: &[&str] = &[
        "host",
        "cookie",
        "set-cookie",
        "authorization",
        "proxy-authorization",
        "content-length",
        "content-type",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "forwarded",
        "x-real-ip",
        "remote-user",
        "x-user",
        "x-email",
    ];
    const PREFIXES: &[&str] = &[
        "x-forwarded-",
        "x-auth-request-",
        "x-edgeauth-",
        "spin-",
        "sec-",
        "proxy-",
    ];
    // Pseudo-headers (`:authority`) before folding, which drops the colon.
    if name.starts_with(':') {
        return true;
    }
    let n = canonical_name(name);
    EXACT.contains(&n.as_str()) || PREFIXES.iter().any(|p| n.starts_with(p))
}

/// Claims a rule may never set: registered JWT claims, OpenID Connect
/// standard claims and the gateway's own.
pub const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "azp",
    "nonce",
    "auth_time",
    "acr",
    "amr",
    "at_hash",
    "c_hash",
    "sid",
    "cnf",
    "scope",
    "client_id",
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "email",
    "email_verified",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "phone_number",
    "phone_number_verified",
    "address",
    "updated_at",
    "groups",
    "roles",
    "tenant",
    // The gateway's connection claims: which provider, and its own subject.
    "connection",
    "idp_sub",
    "profile_id",
];

/// Longest claim name a rule may set.
pub const MAX_CLAIM_NAME: usize = 256;

/// Why a claim name is refused, if it is.
pub fn claim_name_problem(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if name.is_empty() || name.len() > MAX_CLAIM_NAME || name.chars().any(char::is_control) {
        return Some("must be 1-256 printable characters");
    }
    if RESERVED_CLAIMS.contains(&lower.as_str()) {
        return Some("is a registered or gateway-owned claim");
    }
    if lower.contains("edgeauth") {
        return Some("is in the gateway's own namespace");
    }
    if !name.contains('/') && !name.contains(':') {
        return Some("must be namespaced (for example https://example.com/roles)");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("crm-lead_2"));
        for bad in ["", "A", "a b", "a/b", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(header_token("X-Roles"));
        assert!(!header_token("x_roles") && !header_token("x roles") && !header_token(""));
    }

    #[test]
    fn reserved_headers_in_every_spelling() {
        for h in [
            "Cookie",
            "X-Forwarded-User",
            "x_forwarded_email",
            "X_Forwarded-Email",
            "X-EdgeAuth-Assertion",
            "SEC-fetch-site",
            "-X-Forwarded-User",
            "Remote.User.",
        ] {
            assert!(reserved_header(h), "{h}");
        }
        assert!(!reserved_header("x-roles"));
    }

    #[test]
    fn claim_names() {
        assert_eq!(claim_name_problem("https://example.com/roles"), None);
        for bad in [
            "sub",
            "ROLES",
            "email",
            "https://edgeauth.dev/x",
            "plain",
            "",
            "a\n:b",
        ] {
            assert!(claim_name_problem(bad).is_some(), "{bad:?}");
        }
        assert!(claim_name_problem(&format!("https://x.example/{}", "a".repeat(300))).is_some());
    }
}
