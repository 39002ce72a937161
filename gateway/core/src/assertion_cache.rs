//! Signed assertions reused across a session's requests.
//!
//! Signing is most of the hot path's CPU in the component (an Ed25519
//! signature is two base-point multiplications in wasm32, and each request
//! runs in a fresh instance, so nothing can stay in memory). The assertion
//! of a session is the same on every request for its lifetime, so it is
//! reused while at least half of its lifetime is left; the origin always gets
//! one valid for 30 s or more. It is kept in two places:
//!
//! - the browser's assertion cookie, sealed under the session keys: read
//!   with the request, so a browser's requests need no store read for it
//!   (each KV call is a host call, and under Spin's SQLite store a blocking
//!   section; with Redis, a round trip);
//! - Spin KV, for clients that do not keep cookies, and for the request that
//!   finds the cookie missing or stale.
//!
//! Both are bound to everything the assertion depends on: the session cookie
//! (identity and the claims rules added), the signing key id, issuer and
//! audience ([`binding`]). Any change of them is a new binding, so a stale
//! assertion is never served, and an assertion cookie copied next to another
//! session cookie is ignored.

use http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::assertion::ASSERTION_LIFETIME_SECS;
use crate::cookies::{self, Jar};
use crate::encoding::b64url;
use crate::kv_schema;
use crate::seal::Purpose;
use crate::settings::Settings;

/// A cached assertion is reused only while this much of it is left.
pub const MIN_REMAINING_SECS: u64 = ASSERTION_LIFETIME_SECS / 2;

/// What a cached assertion is bound to, for the request's session
/// cookie(s): a digest of them, the signing key id, issuer and audience;
/// `None` without a session cookie.
fn binding(settings: &Settings, headers: &HeaderMap) -> Option<String> {
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
    Some(b64url(&h.finalize()[..18]))
}

/// The cache key for the request's session cookie(s); `None` without one.
pub fn key(settings: &Settings, headers: &HeaderMap) -> Option<String> {
    Some(kv_schema::assertion(
        &settings.tenant,
        &binding(settings, headers)?,
    ))
}

/// The entry (as [`encode`] writes it) carried by the request's assertion
/// cookie, if one opens under the session keys and is bound to this
/// request ([`binding`]). Whether it is still reusable is [`reusable`]'s call.
pub fn from_cookie(settings: &Settings, headers: &HeaderMap) -> Option<Vec<u8>> {
    let name = cookies::name(settings, Jar::Assertion);
    let values = cookies::values(headers, &name)?;
    if values.is_empty() {
        return None;
    }
    let binding = binding(settings, headers)?;
    values.iter().find_map(|v| {
        let plain = settings.session_keys.open(Purpose::Assertion, v).ok()?;
        let rest = plain.strip_prefix(binding.as_bytes())?.strip_prefix(b" ")?;
        Some(rest.to_vec())
    })
}

/// A browser keeps a cookie up to this size (4096 bytes with its name and
/// attributes); a larger assertion (many claims from rules) is not sent.
const MAX_COOKIE_VALUE: usize = 3800;

/// The `Set-Cookie` handing the browser `jwt` (expiring at `expires_at`)
/// to send back while it is reusable; `None` without a session cookie, with
/// less than the reuse margin left, or when too large to keep.
pub fn cookie(
    settings: &Settings,
    headers: &HeaderMap,
    jwt: &str,
    expires_at: u64,
    now: u64,
    rng: crate::Rng<'_>,
) -> Option<String> {
    let binding = binding(settings, headers)?;
    let reusable_for = expires_at
        .checked_sub(MIN_REMAINING_SECS)?
        .checked_sub(now)
        .filter(|secs| *secs > 0)?;
    let mut plain = binding.into_bytes();
    plain.push(b' ');
    plain.extend(kv_schema::encode(expires_at, jwt.as_bytes()));
    let sealed = settings.session_keys.seal(Purpose::Assertion, &plain, rng);
    (sealed.len() <= MAX_COOKIE_VALUE)
        .then(|| cookies::set(settings, Jar::Assertion, sealed, reusable_for))
}

/// When an assertion signed at `now` expires (and its cache entry with it).
pub fn expires_at(now: u64) -> u64 {
    now + ASSERTION_LIFETIME_SECS
}

/// The KV value for an assertion signed at `now`.
pub fn encode(jwt: &str, now: u64) -> Vec<u8> {
    kv_schema::encode(expires_at(now), jwt.as_bytes())
}

/// The cached assertion and its expiry, if it has enough lifetime left.
pub fn reusable(value: &[u8], now: u64) -> Option<(&str, u64)> {
    let (exp, jwt) = kv_schema::decode(value).ok()?;
    let jwt = std::str::from_utf8(jwt).ok()?;
    // An expiry further out than a fresh assertion's is not ours: ignore it.
    (exp >= now + MIN_REMAINING_SECS && exp <= now + ASSERTION_LIFETIME_SECS && !jwt.is_empty())
        .then_some((jwt, exp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{cookie_header as cookie, counter_rng, settings_with};

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

    fn with_cookies(pairs: &[(&str, &str)]) -> HeaderMap {
        let text: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}={v}")).collect();
        cookie(&text.join("; "))
    }

    fn cookie_pair(set_cookie: &str) -> (&str, &str) {
        set_cookie
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
    }

    #[test]
    fn the_assertion_cookie_serves_only_the_session_it_was_made_for() {
        let s = settings_with(&[]);
        let mine = with_cookies(&[("edgeauth_session", "s1.AAAA")]);
        let set = super::cookie(&s, &mine, "h.p.s", 1060, 1000, &mut counter_rng()).unwrap();
        assert!(set.starts_with("edgeauth_assertion="), "{set}");
        assert!(
            set.contains("HttpOnly") && set.contains("Max-Age=30"),
            "{set}"
        );
        let (name, value) = cookie_pair(&set);
        assert!(!value.contains("h.p.s"), "sealed, not readable: {value}");
        let back = with_cookies(&[("edgeauth_session", "s1.AAAA"), (name, value)]);
        let entry = from_cookie(&s, &back).expect("opens for its own session");
        assert_eq!(reusable(&entry, 1000), Some(("h.p.s", 1060)));
        assert_eq!(reusable(&entry, 1031), None, "less than half its life left");
        // Next to another session cookie, or without one: not used.
        let other = with_cookies(&[("edgeauth_session", "s1.AAAB"), (name, value)]);
        assert_eq!(from_cookie(&s, &other), None);
        assert_eq!(from_cookie(&s, &with_cookies(&[(name, value)])), None);
        // Another audience, issuer or signing key: not used.
        let aud = settings_with(&[("assertion_audience", "https://app.example")]);
        assert_eq!(from_cookie(&aud, &back), None);
        // Tampered, or sealed for another purpose (a session cookie): not used.
        let mut flipped = value.to_owned().into_bytes();
        let i = flipped.len() - 3;
        flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        let tampered = with_cookies(&[("edgeauth_session", "s1.AAAA"), (name, &flipped)]);
        assert_eq!(from_cookie(&s, &tampered), None);
        let as_session = s.session_keys.seal(
            Purpose::Session,
            format!("{} 1060 h.p.s", binding(&s, &mine).unwrap()).as_bytes(),
            &mut counter_rng(),
        );
        let foreign = with_cookies(&[("edgeauth_session", "s1.AAAA"), (name, &as_session)]);
        assert_eq!(from_cookie(&s, &foreign), None);
    }

    #[test]
    fn no_assertion_cookie_when_it_could_not_be_reused_or_kept() {
        let s = settings_with(&[]);
        let mine = with_cookies(&[("edgeauth_session", "s1.AAAA")]);
        let mut rng = counter_rng();
        assert!(super::cookie(&s, &mine, "h.p.s", 1060, 1029, &mut rng).is_some());
        assert_eq!(
            super::cookie(&s, &mine, "h.p.s", 1060, 1030, &mut rng),
            None
        );
        assert_eq!(super::cookie(&s, &mine, "h.p.s", 10, 1000, &mut rng), None);
        assert_eq!(
            super::cookie(&s, &cookie("x=1"), "h.p.s", 1060, 1000, &mut rng),
            None
        );
        let big = "a".repeat(4000);
        assert_eq!(super::cookie(&s, &mine, &big, 1060, 1000, &mut rng), None);
        let https = settings_with(&[("public_url", "https://gw.example")]);
        let set = super::cookie(
            &https,
            &with_cookies(&[("__Host-edgeauth_session", "s1.AAAA")]),
            "h.p.s",
            1060,
            1000,
            &mut rng,
        )
        .unwrap();
        assert!(
            set.starts_with("__Host-edgeauth_assertion=") && set.contains("Secure"),
            "{set}"
        );
    }

    #[test]
    fn reused_only_with_half_its_lifetime_left() {
        let v = encode("h.p.s", 1000);
        assert_eq!(expires_at(1000), 1060);
        assert!(v.starts_with(b"1060 "));
        assert_eq!(reusable(&v, 1000), Some(("h.p.s", 1060)));
        assert_eq!(
            reusable(&v, 1000 + MIN_REMAINING_SECS),
            Some(("h.p.s", 1060))
        );
        assert_eq!(reusable(&v, 1001 + MIN_REMAINING_SECS), None);
        assert_eq!(reusable(&v, 990), None, "expiry beyond a fresh lifetime");
        for junk in [&b"nope"[..], b"12 ", b"x h.p.s", b"\xff"] {
            assert_eq!(reusable(junk, 1000), None);
        }
    }
}
