//! Revoked sessions: logging out puts the session's id on a list in Spin KV,
//! and every request is checked against it, so a copy of the cookie taken
//! before logout is refused afterwards. The list is local storage (no
//! network on the hot path) and each entry lives only until the session
//! would have expired anyway.
//!
//! A session's id is the random id sealed in it at sign-in
//! (`Session::sid`), the same in every cookie re-issued for it; sessions from
//! before re-issuing are named by a hash of their sealed cookie value, which
//! was fixed for their life. Either way no cookie content reaches the store.

use http::HeaderMap;
use http::header::COOKIE;
use sha2::{Digest, Sha256};

use crate::cookies::{self, Jar};
use crate::encoding::b64url;
use crate::kv_schema;
use crate::seal::Purpose;
use crate::session::Session;
use crate::settings::Settings;

/// The id of `session`, which came in `cookie_value`: its own id, or for a
/// session from before ids, the digest of its cookie.
pub fn id_of(session: &Session, cookie_value: &str) -> String {
    if valid_session_id(&session.sid) {
        session.sid.clone()
    } else {
        session_id(cookie_value)
    }
}

/// The request's session cookies that open as sessions, with their values.
fn opened(settings: &Settings, headers: &HeaderMap) -> Vec<(Session, String)> {
    let name = cookies::name(settings, Jar::Session);
    cookies::values(headers, &name)
        .unwrap_or_default()
        .into_iter()
        .filter(|v| !v.is_empty())
        .filter_map(|v| {
            let plain = settings.session_keys.open(Purpose::Session, &v).ok()?;
            let s: Session = serde_json::from_slice(&plain).ok()?;
            Some((s, v))
        })
        .collect()
}

/// A session's id: a digest of its sealed cookie value (fixed for the
/// session's life), 24 base64url characters. Names it in the revocation
/// list and in the person's list of sessions (`crate::session_index`).
pub fn session_id(cookie_value: &str) -> String {
    let digest = Sha256::digest(cookie_value.as_bytes());
    b64url(&digest[..18])
}

/// Whether `s` has the form of [`session_id`] (ids from requests).
pub fn valid_session_id(s: &str) -> bool {
    s.len() == 24
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The revocation entry of one session by id, `(key, value, expires_at)`.
pub fn entry_for(tenant: &str, id: &str, expires_at: u64) -> (String, Vec<u8>, u64) {
    (
        kv_schema::revoked_session(tenant, id),
        kv_schema::encode(expires_at, b""),
        expires_at,
    )
}

/// What to look up in the store before a request's sessions are trusted,
/// from one opening of its session cookies (opening one is most of the
/// per-request cost of this check, so it is done once for both lists).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Checks {
    /// Each session's own revocation entry (logout, admin revocation).
    pub sessions: Vec<String>,
    /// The person-wide revocation of each live session's person (see
    /// [`kv_schema::REVOKED_PROFILE`]), with the epoch the session was
    /// issued in. Sessions from before profiles carry no profile id and
    /// are not listed (they end with their lifetime).
    pub people: Vec<(String, u64)>,
}

impl Checks {
    /// Every key the checks read, all read before deciding ([`Checks::revoked`]).
    pub fn keys(&self) -> Vec<String> {
        let people = self.people.iter().map(|(key, _)| key.clone());
        self.sessions.iter().cloned().chain(people).collect()
    }

    /// Whether the store's answer (`stored`: the value under a key, `None`
    /// if absent) ends the request's session: a session's own entry exists,
    /// or its person was revoked after the session was issued.
    pub fn revoked<'a>(&self, stored: impl Fn(&str) -> Option<&'a [u8]>) -> bool {
        self.sessions.iter().any(|key| stored(key).is_some())
            || self
                .people
                .iter()
                .any(|(key, epoch)| person_revoked(stored(key), *epoch))
    }
}

/// The [`Checks`] for the session cookies the request carries (at most a
/// few; none without a session cookie, so anonymous requests cost nothing).
/// Cookies that do not open as sessions need none: they are refused anyway.
pub fn checks(settings: &Settings, headers: &HeaderMap, now: u64) -> Checks {
    let mut out = Checks::default();
    for (s, v) in opened(settings, headers) {
        out.sessions
            .push(kv_schema::revoked_session(&settings.tenant, &id_of(&s, &v)));
        if s.expires_at <= now {
            continue;
        }
        if let Some(profile) = s.identity.profile_id.as_deref() {
            out.people.push((
                kv_schema::revoked_profile(&settings.tenant, profile),
                s.identity.profile_epoch,
            ));
        }
    }
    out
}

/// The entries to store at logout, `(key, expires_at)`: only for cookies that
/// open as live sessions, so junk cookies cannot fill the store.
pub fn entries_for_logout(
    settings: &Settings,
    headers: &HeaderMap,
    now: u64,
) -> Vec<(String, u64)> {
    opened(settings, headers)
        .iter()
        .filter(|(s, _)| s.expires_at > now)
        .map(|(s, v)| {
            (
                kv_schema::revoked_session(&settings.tenant, &id_of(s, v)),
                s.expires_at,
            )
        })
        .collect()
}

/// The grants (`crate::refresh`) of the request's sessions, deleted at
/// logout: the refresh tokens in them have no use left.
pub fn grant_keys(settings: &Settings, headers: &HeaderMap) -> Vec<String> {
    opened(settings, headers)
        .iter()
        .filter_map(|(s, _)| crate::refresh::key(settings, s))
        .collect()
}

/// The person's revocation epoch as stored: how many times every session
/// of theirs was revoked (0 when never). `None` for an unreadable entry,
/// which revokes everything ([`person_revoked`]).
pub fn person_epoch(stored: Option<&[u8]>) -> Option<u64> {
    match stored {
        None => Some(0),
        Some(v) => std::str::from_utf8(v).ok()?.trim().parse().ok(),
    }
}

/// Whether the stored person-wide revocation ends a session issued in
/// `epoch`: a revocation after its sign-in raised the stored epoch past it.
/// An unreadable entry under the key revokes as well (fail closed).
pub fn person_revoked(stored: Option<&[u8]>, epoch: u64) -> bool {
    person_epoch(stored).is_none_or(|current| current > epoch)
}

/// The entry that revokes every session of `profile_id` so far, as
/// `(key, value)`, from what is stored now. Epochs rather than times: a
/// sign-in in the same second as the revocation is not caught by it, and
/// one just before is. Kept for good (one small entry per person ever
/// revoked): a session signed in under an epoch must never meet the count
/// restarted from zero.
pub fn person_entry(tenant: &str, profile_id: &str, stored: Option<&[u8]>) -> (String, Vec<u8>) {
    let next = person_epoch(stored).unwrap_or(0).saturating_add(1);
    (
        kv_schema::revoked_profile(tenant, profile_id),
        next.to_string().into_bytes(),
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
    fn one_answer_for_all_keys_decides_every_check() {
        let checks = Checks {
            sessions: vec!["rs/a".into(), "rs/b".into()],
            people: vec![("rp/p".into(), 2)],
        };
        assert_eq!(checks.keys(), ["rs/a", "rs/b", "rp/p"]);
        let answer = |pairs: &'static [(&'static str, &'static [u8])]| {
            move |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| *v)
        };
        // Nothing stored, or the person's epoch not past the session's: live.
        assert!(!checks.revoked(answer(&[])));
        assert!(!checks.revoked(answer(&[("rp/p", b"2")])));
        // Any one session's entry (whatever its value), a later epoch, or an
        // unreadable person entry: revoked.
        assert!(checks.revoked(answer(&[("rs/b", b"")])));
        assert!(checks.revoked(answer(&[("rp/p", b"3")])));
        assert!(checks.revoked(answer(&[("rp/p", b"junk")])));
        // Keys nobody asked for change nothing.
        assert!(!checks.revoked(answer(&[("rs/c", b"x")])));
    }

    #[test]
    fn a_person_wide_revocation_ends_the_sessions_signed_in_before_it() {
        let s = settings_with(&[]);
        let session_in = |epoch: u64| {
            let mut person = alice();
            person.profile_id = Some("p_aaaaaaaaaaaaaaaaaaaaaaaaaa".into());
            person.profile_epoch = epoch;
            let set = Session::new(person, None, &s, 1000)
                .to_cookie(&s, &mut counter_rng())
                .unwrap();
            with_cookie(set.split(';').next().unwrap())
        };
        let found = checks(&s, &session_in(0), 1500);
        assert_eq!(found.sessions.len(), 1);
        let [(key, epoch)] = &found.people[..] else {
            panic!("one person to check: {found:?}")
        };
        let (key, epoch) = (key.clone(), *epoch);
        assert_eq!(epoch, 0);
        let (entry_key, first) = person_entry(&s.tenant, "p_aaaaaaaaaaaaaaaaaaaaaaaaaa", None);
        assert_eq!(key, entry_key);
        assert_eq!(first, b"1");
        assert!(!person_revoked(None, 0), "never revoked");
        assert!(person_revoked(Some(&first), 0), "signed in before");
        assert!(!person_revoked(Some(&first), 1), "signed in after");
        let (_, second) = person_entry(&s.tenant, "p_aaaaaaaaaaaaaaaaaaaaaaaaaa", Some(&first));
        assert_eq!(second, b"2");
        assert!(person_revoked(Some(&second), 1));
        assert!(person_revoked(Some(b"junk"), 5), "unreadable: closed");
        let (_, after_junk) = person_entry(&s.tenant, "p_a", Some(b"junk"));
        assert_eq!(after_junk, b"1");
        assert_eq!(checks(&s, &session_in(2), 1500).people[0].1, 2);
        // No session, or one from before profiles: nothing to look up.
        assert!(checks(&s, &HeaderMap::new(), 1500).people.is_empty());
        let old = Session::new(alice(), None, &s, 1000)
            .to_cookie(&s, &mut counter_rng())
            .unwrap();
        let old = with_cookie(old.split(';').next().unwrap());
        assert!(checks(&s, &old, 1500).people.is_empty());
        // Expired: its own entry is still looked up, its person's is not needed.
        assert!(
            checks(&s, &session_in(0), 1000 + s.session_lifetime_secs)
                .people
                .is_empty()
        );
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
        assert_eq!(checks(&s, &h, 1000).sessions, vec![entries[0].0.clone()]);
        // The key reveals nothing of the cookie.
        assert!(!entries[0].0.contains(&pair[20..40]));
        assert!(entries[0].0.starts_with("revoked-session:default:"));
    }

    #[test]
    fn junk_and_expired_cookies_are_not_stored() {
        let s = settings_with(&[]);
        let h = with_cookie("edgeauth_session=s1.AAAA; edgeauth_session=nope");
        assert!(entries_for_logout(&s, &h, 1000).is_empty());
        // Cookies that do not open are refused anyway: no store read for them.
        assert_eq!(checks(&s, &h, 1000), Checks::default());
        assert_eq!(
            checks(&s, &with_cookie("theme=dark"), 1000),
            Checks::default()
        );
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
