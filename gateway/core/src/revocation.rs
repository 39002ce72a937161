//! Revoked sessions: logging out puts the session's id on a list in Spin KV,
//! and every request is checked against it, so a copy of the cookie taken
//! before logout is refused afterwards. The list is local storage (no
//! network on the hot path) and each entry lives only until the session
//! would have expired anyway.
//!
//! A session's id is a hash of its sealed cookie value: sessions are not
//! rolling, so the value is fixed for the session's life, and the hash keeps
//! cookie contents out of the store.

use http::HeaderMap;
use http::header::COOKIE;
use sha2::{Digest, Sha256};

use crate::cookies::{self, Jar};
use crate::encoding::b64url;
use crate::kv_schema;
use crate::seal::Purpose;
use crate::session::Session;
use crate::settings::Settings;

/// The KV key of a session (see [`crate::kv_schema::revoked_session`]); the
/// value is an envelope without payload that expires with the session.
fn key(settings: &Settings, value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    kv_schema::revoked_session(&settings.tenant, &b64url(&digest[..18]))
}

/// The keys to look up for the session cookies the request carries (at most a
/// few; none without a session cookie, so anonymous requests cost nothing).
pub fn keys_to_check(settings: &Settings, headers: &HeaderMap) -> Vec<String> {
    let name = cookies::name(settings, Jar::Session);
    cookies::values(headers, &name)
        .unwrap_or_default()
        .iter()
        .filter(|v| !v.is_empty())
        .map(|v| key(settings, v))
        .collect()
}

/// The entries to store at logout, `(key, expires_at)`: only for cookies that
/// open as live sessions, so junk cookies cannot fill the store.
pub fn entries_for_logout(
    settings: &Settings,
    headers: &HeaderMap,
    now: u64,
) -> Vec<(String, u64)> {
    let name = cookies::name(settings, Jar::Session);
    cookies::values(headers, &name)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| {
            let plain = settings.session_keys.open(Purpose::Session, v).ok()?;
            let s: Session = serde_json::from_slice(&plain).ok()?;
            (s.expires_at > now).then(|| (key(settings, v), s.expires_at))
        })
        .collect()
}

/// The person-wide revocation to look up for the request's session (see
/// [`kv_schema::REVOKED_PROFILE`]): its key and the session's issue time.
/// `None` for a request without a live session, or a session from before
/// profiles (it carries no profile id; it ends with its lifetime).
pub fn person_key_to_check(
    settings: &Settings,
    headers: &HeaderMap,
    now: u64,
) -> Option<(String, u64)> {
    let s = crate::session::read(settings, headers, now).ok()?;
    let profile = s.identity.profile_id.as_deref()?;
    Some((
        kv_schema::revoked_profile(&settings.tenant, profile),
        s.issued_at,
    ))
}

/// Whether the stored person-wide revocation covers a session issued at
/// `issued_at`. A session issued in the very second of the revocation is
/// covered too (the clock has whole seconds): fail closed. An unreadable
/// entry under the key revokes as well.
pub fn person_revoked(stored: Option<&[u8]>, issued_at: u64, now: u64) -> bool {
    let Some(stored) = stored else {
        return false;
    };
    match kv_schema::open(stored, now) {
        Ok(payload) => std::str::from_utf8(payload)
            .ok()
            .and_then(|t| t.parse::<u64>().ok())
            .is_none_or(|revoked_at| issued_at <= revoked_at),
        Err(kv_schema::Unusable::Expired) => false,
        Err(kv_schema::Unusable::Malformed) => true,
    }
}

/// The entry that revokes every session of `profile_id` issued up to
/// `now`, as `(key, value, expires_at)`: kept as long as the longest
/// session the settings allow could still live.
pub fn person_entry(tenant: &str, profile_id: &str, now: u64) -> (String, Vec<u8>, u64) {
    let expires_at = now + crate::settings::MAX_SESSION_LIFETIME_SECS;
    (
        kv_schema::revoked_profile(tenant, profile_id),
        kv_schema::encode(expires_at, now.to_string().as_bytes()),
        expires_at,
    )
}

/// Removes the session cookie from the request, which then goes on as one
/// without a session (login redirect, 401, or anonymous on public paths).
pub fn drop_session_cookie(settings: &Settings, headers: &mut HeaderMap) {
    let name = cookies::name(settings, Jar::Session);
    let kept = cookies::keep_pairs(headers, |n| n != name);
    headers.remove(COOKIE);
    if let Some(v) = kept {
        headers.insert(COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session;
    use crate::testutil::{alice, cookie_header as with_cookie, counter_rng, settings_with};

    #[test]
    fn a_person_wide_revocation_ends_the_sessions_issued_before_it() {
        let s = settings_with(&[]);
        let mut person = alice();
        person.profile_id = Some("p_aaaaaaaaaaaaaaaaaaaaaaaaaa".into());
        let cookie = Session::new(person, None, &s, 1000)
            .to_cookie(&s, &mut counter_rng())
            .unwrap();
        let headers = with_cookie(cookie.split(';').next().unwrap());
        let (key, issued) = person_key_to_check(&s, &headers, 1500).unwrap();
        assert_eq!(issued, 1000);
        let (entry_key, value, expires_at) =
            person_entry(&s.tenant, "p_aaaaaaaaaaaaaaaaaaaaaaaaaa", 1200);
        assert_eq!(key, entry_key);
        assert!(expires_at >= 1200 + s.session_lifetime_secs);
        assert!(person_revoked(Some(&value), 1000, 1500), "issued before");
        assert!(person_revoked(Some(&value), 1200, 1500), "the same second");
        assert!(!person_revoked(Some(&value), 1201, 1500), "a later login");
        assert!(!person_revoked(None, 1000, 1500));
        assert!(!person_revoked(Some(&value), 1000, expires_at), "expired");
        assert!(
            person_revoked(Some(b"junk"), 1000, 1500),
            "unreadable: closed"
        );
        // No session, or one from before profiles: nothing to look up.
        assert!(person_key_to_check(&s, &HeaderMap::new(), 1500).is_none());
        let old = Session::new(alice(), None, &s, 1000)
            .to_cookie(&s, &mut counter_rng())
            .unwrap();
        let old = with_cookie(old.split(';').next().unwrap());
        assert!(person_key_to_check(&s, &old, 1500).is_none());
    }

    #[test]
    fn logout_entries_match_later_lookups_and_expire_with_the_session() {
        let s = settings_with(&[]);
        let set = Session::new(alice(), None, &s, 1000)
            .to_cookie(&s, &mut counter_rng())
            .unwrap();
        let pair = set.split(';').next().unwrap();
        let h = with_cookie(&format!("theme=dark; {pair}"));
        let entries = entries_for_logout(&s, &h, 1000);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].1, 1000 + s.session_lifetime_secs);
        assert_eq!(keys_to_check(&s, &h), vec![entries[0].0.clone()]);
        // The key reveals nothing of the cookie.
        assert!(!entries[0].0.contains(&pair[20..40]));
        assert!(entries[0].0.starts_with("revoked-session:default:"));
    }

    #[test]
    fn junk_and_expired_cookies_are_not_stored() {
        let s = settings_with(&[]);
        let h = with_cookie("edgeauth_session=s1.AAAA; edgeauth_session=nope");
        assert!(entries_for_logout(&s, &h, 1000).is_empty());
        assert_eq!(keys_to_check(&s, &h).len(), 2);
        assert!(keys_to_check(&s, &with_cookie("theme=dark")).is_empty());
        let old = Session::new(alice(), None, &s, 1000)
            .to_cookie(&s, &mut counter_rng())
            .unwrap();
        let h = with_cookie(old.split(';').next().unwrap());
        assert!(entries_for_logout(&s, &h, 1000 + s.session_lifetime_secs).is_empty());
    }

    #[test]
    fn dropping_the_session_cookie_keeps_the_others() {
        let s = settings_with(&[]);
        let set = Session::new(alice(), None, &s, 1000)
            .to_cookie(&s, &mut counter_rng())
            .unwrap();
        let pair = set.split(';').next().unwrap();
        let mut h = with_cookie(&format!("a=1; {pair}; b=2"));
        assert!(session::read(&s, &h, 1000).is_ok());
        drop_session_cookie(&s, &mut h);
        assert_eq!(h[COOKIE], "a=1; b=2");
        assert_eq!(
            session::read(&s, &h, 1000),
            Err(session::SessionProblem::Missing)
        );
        let mut only = with_cookie(pair);
        drop_session_cookie(&s, &mut only);
        assert!(only.get(COOKIE).is_none());
    }
}
