//! Each person's sessions, for the admin API ("where is this person signed
//! in?", then end one of them): `session-index:<tenant>:<profile id>` holds
//! a JSON list of [`Entry`], newest last, at most [`MAX_ENTRIES`], in an
//! envelope that expires with the longest-lived one.
//!
//! Written when a response starts a session (any response that sets a
//! session cookie: the callback, a resumed rule chain), never on the
//! authenticated request path. A read-modify-write: two sign-ins of one
//! person at the same instant may leave one of them off the list. That
//! session still ends with "log out everywhere", which does not use the
//! list (`crate::revocation::person_entry`), and with its lifetime.

use http::header::SET_COOKIE;
use http::request::Parts;
use serde::{Deserialize, Serialize};

use crate::Response;
use crate::cookies::{self, Jar};
use crate::kv_schema;
use crate::revocation;
use crate::seal::Purpose;
use crate::session::Session;
use crate::settings::Settings;

/// The list keeps the newest this many sessions (older ones still end with
/// "log out everywhere" and with their lifetime).
pub const MAX_ENTRIES: usize = 20;
const MAX_USER_AGENT_CHARS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// [`revocation::id_of`]: also its key in the revocation list.
    pub id: String,
    pub signed_in_at: u64,
    pub expires_at: u64,
    pub connection: String,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    /// The person's revocation epoch the session was signed in under.
    #[serde(default)]
    pub epoch: u64,
}

/// The session `response` starts, if it sets one for a person with a
/// profile: their profile id and the entry for the list.
pub fn issued(settings: &Settings, response: &Response, parts: &Parts) -> Option<(String, Entry)> {
    let name = cookies::name(settings, Jar::Session);
    let value = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next()?.split_once('='))
        .find(|(n, v)| *n == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())?;
    let plain = settings.session_keys.open(Purpose::Session, &value).ok()?;
    let s: Session = serde_json::from_slice(&plain).ok()?;
    let profile = s.identity.profile_id.clone()?;
    let user_agent = parts
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|u| u.chars().take(MAX_USER_AGENT_CHARS).collect());
    Some((
        profile,
        Entry {
            id: revocation::id_of(&s, &value),
            signed_in_at: s.issued_at,
            expires_at: s.expires_at,
            connection: s.identity.connection_id().to_owned(),
            ip: crate::events::client_ip(parts),
            user_agent,
            epoch: s.identity.profile_epoch,
        },
    ))
}

/// The listed sessions that have not expired (revocations aside).
pub fn live(stored: Option<&[u8]>, now: u64) -> Vec<Entry> {
    let Some(json) = stored.and_then(|s| kv_schema::open(s, now).ok()) else {
        return Vec::new();
    };
    let mut all: Vec<Entry> = serde_json::from_slice(json).unwrap_or_default();
    all.retain(|e| e.expires_at > now);
    all
}

/// The list with `entry` added (expired ones dropped, the oldest beyond
/// [`MAX_ENTRIES`] too), as `(value, expires_at)`.
pub fn add(stored: Option<&[u8]>, entry: Entry, now: u64) -> (Vec<u8>, u64) {
    let mut all = live(stored, now);
    all.retain(|e| e.id != entry.id);
    all.push(entry);
    let excess = all.len().saturating_sub(MAX_ENTRIES);
    all.drain(..excess);
    let expires_at = all.iter().map(|e| e.expires_at).max().unwrap_or(now);
    let json = serde_json::to_vec(&all).unwrap_or_default();
    (kv_schema::encode(expires_at, &json), expires_at)
}

/// Whether a listed session is still active: not revoked by itself
/// (`revoked`: its revocation entry exists) nor by a "log out everywhere"
/// since it began (`epoch_now`: the person's current epoch).
pub fn active(entry: &Entry, revoked: bool, epoch_now: Option<u64>) -> bool {
    !revoked && epoch_now.is_some_and(|now| entry.epoch >= now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::testutil::{alice, counter_rng, settings_with};

    fn entry(id: &str, exp: u64) -> Entry {
        Entry {
            id: id.into(),
            signed_in_at: 1,
            expires_at: exp,
            connection: "default".into(),
            ip: None,
            user_agent: None,
            epoch: 0,
        }
    }

    #[test]
    fn a_response_that_sets_a_session_names_it() {
        let s = settings_with(&[]);
        let person = Identity {
            profile_id: Some("p_aaaaaaaaaaaaaaaaaaaaaaaaaa".into()),
            profile_epoch: 3,
            ..alice()
        };
        let set = Session::new(person, None, &s, 1000)
            .to_cookie(&s, &mut counter_rng())
            .unwrap();
        let mut r = crate::pages::redirect("/app");
        crate::pages::add_cookie(&mut r, &set);
        let parts = http::Request::get("/.edgeauth/callback")
            .header("user-agent", "Firefox")
            .header("spin-client-addr", "192.0.2.4:999")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let (profile, e) = issued(&s, &r, &parts).unwrap();
        assert_eq!(profile, "p_aaaaaaaaaaaaaaaaaaaaaaaaaa");
        let value = set.split(';').next().unwrap().split_once('=').unwrap().1;
        assert_eq!(e.id, revocation::session_id(value));
        assert!(revocation::valid_session_id(&e.id));
        assert_eq!((e.signed_in_at, e.epoch), (1000, 3));
        assert_eq!(e.ip.as_deref(), Some("192.0.2.4"));
        assert_eq!(e.user_agent.as_deref(), Some("Firefox"));
        // A cleared cookie, or none: nothing started.
        let mut cleared = crate::pages::redirect("/");
        crate::pages::add_cookie(&mut cleared, &cookies::clear(&s, Jar::Session));
        assert!(issued(&s, &cleared, &parts).is_none());
        // A session without profile (from before profiles): not listed.
        let old = Session::new(alice(), None, &s, 1000)
            .to_cookie(&s, &mut counter_rng())
            .unwrap();
        let mut r = crate::pages::redirect("/");
        crate::pages::add_cookie(&mut r, &old);
        assert!(issued(&s, &r, &parts).is_none());
    }

    #[test]
    fn the_list_keeps_the_newest_live_sessions() {
        let (v, exp) = add(None, entry("a", 500), 100);
        assert_eq!(exp, 500);
        let (v, _) = add(Some(&v), entry("b", 300), 100);
        assert_eq!(live(Some(&v), 100).len(), 2);
        assert_eq!(live(Some(&v), 400).len(), 1, "b expired");
        let (v, _) = add(Some(&v), entry("c", 900), 400);
        let ids: Vec<_> = live(Some(&v), 400).into_iter().map(|e| e.id).collect();
        assert_eq!(ids, ["a", "c"]);
        let mut v = v;
        for i in 0..30 {
            v = add(Some(&v), entry(&format!("n{i}"), 900), 400).0;
        }
        let all = live(Some(&v), 400);
        assert_eq!(all.len(), MAX_ENTRIES);
        assert_eq!(all.last().unwrap().id, "n29");
        assert!(live(Some(b"junk"), 1).is_empty());
    }

    #[test]
    fn revoked_sessions_are_not_active() {
        let e = Entry {
            epoch: 2,
            ..entry("a", 900)
        };
        assert!(active(&e, false, Some(2)));
        assert!(!active(&e, true, Some(2)), "revoked by itself");
        assert!(!active(&e, false, Some(3)), "logged out everywhere since");
        assert!(!active(&e, false, None), "unreadable epoch");
    }
}
