//! Signed assertions reused across a session's requests.
//!
//! Signing is most of the hot path's CPU in the component (an Ed25519
//! signature is two base-point multiplications in wasm32, and each request
//! runs in a fresh instance, so nothing can stay in memory). The assertion
//! of a session is the same on every request for its lifetime, so it is kept
//! in Spin KV, a local store, and reused while at least half of its lifetime
//! is left; the origin always gets one valid for 30 s or more.
//!
//! The key hashes everything the assertion depends on: the session cookie
//! (identity and the claims rules added), the signing key id, issuer and
//! audience; any change of them is a new key, so a stale assertion is never
//! served.

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::assertion::ASSERTION_LIFETIME_SECS;
use crate::cookies::{self, Jar};
use crate::encoding::b64url;
use crate::kv_schema;
use crate::settings::Settings;

/// A cached assertion is reused only while this much of it is left.
pub const MIN_REMAINING_SECS: u64 = ASSERTION_LIFETIME_SECS / 2;

/// The cache key for the request's session cookie(s); `None` without one.
pub fn key(settings: &Settings, headers: &HeaderMap) -> Option<String> {
    let name = cookies::name(settings, Jar::Session);
    let values = cookies::values(headers, &name)?;
    if values.is_empty() {
        return None;
    }
    let mut h = Sha256::new();
    for part in [
        settings.assertion_keys.signing_kid(),
        &settings.public_origin(),
        &settings.assertion_audience,
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for v in &values {
        h.update(v.as_bytes());
        h.update([0]);
    }
    Some(kv_schema::assertion(
        &settings.tenant,
        &b64url(&h.finalize()[..18]),
    ))
}

/// When an assertion signed at `now` expires (and its cache entry with it).
pub fn expires_at(now: u64) -> u64 {
    now + ASSERTION_LIFETIME_SECS
}

/// The KV value for an assertion signed at `now`.
pub fn encode(jwt: &str, now: u64) -> Vec<u8> {
    kv_schema::encode(expires_at(now), jwt.as_bytes())
}

/// The cached assertion if it has enough lifetime left.
pub fn reusable(value: &[u8], now: u64) -> Option<&str> {
    let (exp, jwt) = kv_schema::decode(value).ok()?;
    let jwt = std::str::from_utf8(jwt).ok()?;
    // An expiry further out than a fresh assertion's is not ours: ignore it.
    (exp >= now + MIN_REMAINING_SECS && exp <= now + ASSERTION_LIFETIME_SECS && !jwt.is_empty())
        .then_some(jwt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{cookie_header as cookie, settings_with};

    #[test]
    fn key_changes_with_whatever_the_assertion_depends_on() {
        let s = settings_with(&[]);
        let a = key(&s, &cookie("edgeauth_session=s1.AAAA; x=1")).unwrap();
        assert_eq!(
            Some(a.clone()),
            key(&s, &cookie("x=2; edgeauth_session=s1.AAAA"))
        );
        assert!(a.starts_with("assertion:default:"));
        assert!(!a.contains("AAAA"));
        assert_ne!(
            Some(a.clone()),
            key(&s, &cookie("edgeauth_session=s1.AAAB"))
        );
        let other_aud = settings_with(&[("assertion_audience", "https://app.example")]);
        assert_ne!(
            Some(a.clone()),
            key(&other_aud, &cookie("edgeauth_session=s1.AAAA"))
        );
        let new_key = settings_with(&[(
            "assertion_keys",
            &format!(
                "a2:ed25519:{},a1:ed25519:{}",
                crate::testutil::SEED,
                crate::testutil::SEED
            ),
        )]);
        assert_ne!(
            Some(a.clone()),
            key(&new_key, &cookie("edgeauth_session=s1.AAAA"))
        );
        let other_iss = settings_with(&[("public_url", "http://localhost:3000")]);
        assert_ne!(
            Some(a),
            key(&other_iss, &cookie("edgeauth_session=s1.AAAA"))
        );
        assert_eq!(key(&s, &cookie("x=1")), None);
    }

    #[test]
    fn reused_only_with_half_its_lifetime_left() {
        let v = encode("h.p.s", 1000);
        assert_eq!(expires_at(1000), 1060);
        assert!(v.starts_with(b"1060 "));
        assert_eq!(reusable(&v, 1000), Some("h.p.s"));
        assert_eq!(reusable(&v, 1000 + MIN_REMAINING_SECS), Some("h.p.s"));
        assert_eq!(reusable(&v, 1001 + MIN_REMAINING_SECS), None);
        assert_eq!(reusable(&v, 990), None, "expiry beyond a fresh lifetime");
        for junk in [&b"nope"[..], b"12 ", b"x h.p.s", b"\xff"] {
            assert_eq!(reusable(junk, 1000), None);
        }
    }
}
