//! Who may call the operator's admin API (`/.edgeauth/admin/...`: rule
//! artifacts, tenant documents): one check, shared by every admin endpoint.

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

#[cfg(test)]
mod tests {
    use super::*;

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
