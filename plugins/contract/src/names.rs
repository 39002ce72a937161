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

/// Headers a rule may never set, whatever the configuration says: HTTP's
/// own, the platform's, and identity headers other proxies use. Compared
/// case-insensitively and with `_` read as `-` (servers that fold one into
/// the other would otherwise see a reserved name).
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
        ":",
    ];
    let n = name.to_ascii_lowercase().replace('_', "-");
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
