//! Who may call the admin API (`/.edgeauth/admin/...`): the operator's
//! `admin_token` opens all of it (rule artifacts, tenant documents, the
//! events drain, every tenant's profiles); a tenant's own tokens
//! (`admin_token_sha256` in its document, [`TokenHash`]) open that tenant's
//! profiles API and nothing else ([`profiles_caller`]).

use sha2::{Digest, Sha256};

/// The admin API's answer to an `Authorization` header: `None` when no admin
/// token is configured (the API does not exist), else whether it matches.
pub fn authorized(authorization: Option<&str>, configured: &str) -> Option<bool> {
    if configured.trim().is_empty() {
        return None;
    }
    let given = authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compare digests: constant time whatever the lengths.
    let a = Sha256::digest(given.trim().as_bytes());
    let b = Sha256::digest(configured.trim().as_bytes());
    Some(
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0,
    )
}

/// The SHA-256 of one of a tenant's admin bearer tokens: the configuration
/// holds hashes only, so reading a tenant document never reveals a token.
pub type TokenHash = [u8; 32];

/// The most tokens one tenant may have (rotation needs two; a few more for
/// separate pipelines).
pub const MAX_TENANT_TOKENS: usize = 8;

/// A hash as configured: exactly 64 lowercase hex digits (one spelling, so
/// a hash is never taken for another by case).
pub fn parse_token_hash(text: &str) -> Option<TokenHash> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// Who a request to one tenant's profiles API is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfilesCaller {
    /// Neither an `admin_token` nor tokens for this tenant: the API does not
    /// exist for it (404, as without `admin_token` before).
    NoApi,
    /// No valid token for this tenant: 401, whether the token is garbage,
    /// another tenant's, or the tenant does not exist (the gateway never
    /// looks up whose a token is, so the answer tells nothing about other
    /// tenants).
    Unauthorized,
    Operator,
    /// One of this tenant's own tokens.
    Tenant,
}

/// Decides a profiles API request for one tenant: `operator` is the
/// `admin_token` variable, `tenant_tokens` the path's tenant's hashes (empty
/// for a tenant without any, or one that does not exist). A tenant token is
/// compared exactly as sent after `Bearer ` (no trimming, no case folding:
/// the hash is of those bytes), against every hash in constant time.
pub fn profiles_caller(
    authorization: Option<&str>,
    operator: &str,
    tenant_tokens: &[TokenHash],
) -> ProfilesCaller {
    match authorized(authorization, operator) {
        Some(true) => return ProfilesCaller::Operator,
        None if tenant_tokens.is_empty() => return ProfilesCaller::NoApi,
        _ => {}
    }
    let given = authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let digest = Sha256::digest(given.as_bytes());
    // Every hash is compared, whichever matches: time does not say which.
    let matched = tenant_tokens.iter().fold(0u8, |any, h| {
        let diff = h
            .iter()
            .zip(digest.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y));
        any | u8::from(diff == 0)
    });
    if matched == 1 && !given.is_empty() {
        ProfilesCaller::Tenant
    } else {
        ProfilesCaller::Unauthorized
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_of(token: &str) -> TokenHash {
        Sha256::digest(token.as_bytes()).into()
    }

    #[test]
    fn token_hashes_have_one_spelling() {
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(parse_token_hash(hex), Some(hash_of("test")));
        for bad in [
            &hex.to_uppercase()[..],
            &hex[..63],
            &format!("{hex}0"),
            &format!(" {}", &hex[1..]),
            "",
            &format!("{}g", &hex[..63]),
        ] {
            assert_eq!(parse_token_hash(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_tenant_token_opens_its_tenant_only_and_exactly() {
        let acme = [hash_of("old-acme"), hash_of("acme-t0ken")];
        let call = |auth: &str, tokens: &[TokenHash]| profiles_caller(Some(auth), "op", tokens);
        assert_eq!(call("Bearer acme-t0ken", &acme), ProfilesCaller::Tenant);
        assert_eq!(call("Bearer old-acme", &acme), ProfilesCaller::Tenant);
        assert_eq!(call("Bearer op", &acme), ProfilesCaller::Operator);
        assert_eq!(call("Bearer op", &[]), ProfilesCaller::Operator);
        for wrong in [
            "Bearer acme-t0ken ",
            "Bearer  acme-t0ken",
            "Bearer ACME-T0KEN",
            "bearer acme-t0ken",
            "acme-t0ken",
            "Bearer acme-t0ke",
            "Bearer ",
        ] {
            assert_eq!(
                call(wrong, &acme),
                ProfilesCaller::Unauthorized,
                "{wrong:?}"
            );
        }
        // Another tenant's path holds other hashes (or none): not this token.
        assert_eq!(
            call("Bearer acme-t0ken", &[hash_of("globex")]),
            ProfilesCaller::Unauthorized
        );
        assert_eq!(call("Bearer acme-t0ken", &[]), ProfilesCaller::Unauthorized);
        assert_eq!(
            profiles_caller(None, "op", &acme),
            ProfilesCaller::Unauthorized
        );
        // The hash of the empty token never opens anything.
        assert_eq!(
            profiles_caller(Some("Bearer "), "", &[hash_of("")]),
            ProfilesCaller::Unauthorized
        );
        // Without an operator token the API exists only for tenants with tokens.
        assert_eq!(
            profiles_caller(Some("Bearer x"), "", &[]),
            ProfilesCaller::NoApi
        );
        assert_eq!(
            profiles_caller(Some("Bearer acme-t0ken"), "", &acme),
            ProfilesCaller::Tenant
        );
    }

    #[test]
    fn the_admin_token_is_required_and_compared_whole() {
        assert_eq!(authorized(Some("Bearer s3cret"), ""), None);
        assert_eq!(authorized(Some("Bearer s3cret"), " s3cret "), Some(true));
        assert_eq!(authorized(Some("Bearer s3cre"), "s3cret"), Some(false));
        assert_eq!(authorized(Some("s3cret"), "s3cret"), Some(false));
        assert_eq!(authorized(None, "s3cret"), Some(false));
        assert_eq!(authorized(Some("Bearer "), "s3cret"), Some(false));
    }
}
