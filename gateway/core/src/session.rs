//! The session: identity and times, sealed into one cookie, so any gateway
//! instance can check it with no network I/O (logged-out sessions are refused
//! through a local KV list: `crate::revocation`).

use http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::Rng;
use crate::cookies::{self, Jar};
use crate::identity::Identity;
use crate::seal::{MAX_SEALED_LEN, Purpose};
use crate::settings::Settings;

/// What the tenant's post-login rules added to the sign-in: claims for the
/// assertion and headers for the origin. Validated by `edgeauth-rules`
/// before they get here; empty without rules.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Extras {
    #[serde(
        rename = "c",
        default,
        skip_serializing_if = "serde_json::Map::is_empty"
    )]
    pub claims: serde_json::Map<String, serde_json::Value>,
    #[serde(rename = "h", default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<(String, String)>,
}

impl Extras {
    pub fn is_empty(&self) -> bool {
        self.claims.is_empty() && self.headers.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    #[serde(rename = "u")]
    pub identity: Identity,
    #[serde(rename = "iat")]
    pub issued_at: u64,
    #[serde(rename = "exp")]
    pub expires_at: u64,
    /// Kept for `id_token_hint` at logout; dropped when it would not fit.
    #[serde(rename = "idt", default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(rename = "x", default, skip_serializing_if = "Extras::is_empty")]
    pub extras: Extras,
    /// The session's id, random and new at every sign-in and step-up; the
    /// same in every cookie re-issued for it (idle clock, refresh), so a
    /// logout revokes the copies taken before a re-issue too. Empty in
    /// sessions from before re-issuing, which are named by their cookie
    /// (`crate::revocation::session_id`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sid: String,
    /// The last request that moved the idle clock (`crate::lifecycle`); 0:
    /// the sign-in.
    #[serde(rename = "ls", default, skip_serializing_if = "is_zero")]
    pub seen: u64,
    /// When the person is next re-validated at their provider with the
    /// refresh token kept server-side (`crate::refresh`); 0: never (the
    /// connection granted none, or re-validation is off).
    #[serde(rename = "rd", default, skip_serializing_if = "is_zero")]
    pub refresh_due: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Session ids: 144 random bits, base64url: 24 characters, the form of
/// `crate::revocation::session_id`, so both kinds of id read alike.
pub fn new_id(rng: Rng<'_>) -> String {
    let mut bytes = [0u8; 18];
    rng(&mut bytes);
    crate::encoding::b64url(&bytes)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionProblem {
    Missing,
    Invalid,
    Expired,
}

impl Session {
    pub fn new(
        identity: Identity,
        id_token: Option<String>,
        settings: &Settings,
        now: u64,
    ) -> Session {
        Session {
            identity,
            issued_at: now,
            expires_at: now + settings.session_lifetime_secs,
            id_token,
            extras: Extras::default(),
            sid: String::new(),
            seen: 0,
            refresh_due: 0,
        }
    }

    /// The session under a fresh random id (every new sign-in gets one).
    pub fn with_new_id(mut self, rng: Rng<'_>) -> Session {
        self.sid = new_id(rng);
        self
    }

    /// When the idle clock last moved.
    pub fn last_seen(&self) -> u64 {
        self.seen.max(self.issued_at)
    }

    /// The same session with its idle clock moved to `now`.
    pub fn seen_at(&self, now: u64) -> Session {
        Session {
            seen: now,
            ..self.clone()
        }
    }

    pub fn with_extras(mut self, extras: Extras) -> Session {
        self.extras = extras;
        self
    }

    /// The `Set-Cookie` value, or `None` if the identity is too large for a
    /// cookie even without the ID token.
    pub fn to_cookie(&self, settings: &Settings, rng: Rng<'_>) -> Option<String> {
        let mut session = self.clone();
        loop {
            let json = serde_json::to_vec(&session).expect("session serializes");
            let sealed = settings.session_keys.seal(Purpose::Session, &json, rng);
            if sealed.len() <= MAX_SEALED_LEN {
                // A re-issued cookie lives no longer than the session.
                let max_age = session.expires_at.saturating_sub(session.last_seen());
                return Some(cookies::set(settings, Jar::Session, sealed, max_age));
            }
            session.id_token.take()?;
        }
    }
}

/// The first valid session among the request's session cookies.
pub fn read(settings: &Settings, headers: &HeaderMap, now: u64) -> Result<Session, SessionProblem> {
    read_with_cookie(settings, headers, now).map(|(s, _)| s)
}

/// [`read`], with the cookie value the session came from.
pub fn read_with_cookie(
    settings: &Settings,
    headers: &HeaderMap,
    now: u64,
) -> Result<(Session, String), SessionProblem> {
    let name = cookies::name(settings, Jar::Session);
    let candidates = cookies::values(headers, &name).ok_or(SessionProblem::Invalid)?;
    if candidates.is_empty() {
        return Err(SessionProblem::Missing);
    }
    let mut problem = SessionProblem::Invalid;
    for value in candidates {
        let Ok(plain) = settings.session_keys.open(Purpose::Session, &value) else {
            continue;
        };
        let Ok(session) = serde_json::from_slice::<Session>(&plain) else {
            continue;
        };
        // Absolute lifetime; a session "from the future" means a clock or key problem.
        if session.expires_at <= now
            || session.issued_at > now + 60
            || settings.lifecycle.idle_expired(&session, now)
        {
            problem = SessionProblem::Expired;
            continue;
        }
        return Ok((session, value));
    }
    Err(problem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{KEY_B, counter_rng, settings_with};
    use http::header::COOKIE;

    fn alice() -> Identity {
        Identity {
            sub: "alice".into(),
            email: Some("alice@example.com".into()),
            email_verified: true,
            name: None,
            groups: vec!["admins".into()],
            ..Default::default()
        }
    }

    fn headers_with(set_cookie: &str) -> HeaderMap {
        let pair = set_cookie.split(';').next().unwrap();
        let mut h = HeaderMap::new();
        h.insert(COOKIE, format!("other=1; {pair}").parse().unwrap());
        h
    }

    #[test]
    fn round_trip_and_absolute_expiry() {
        let s = settings_with(&[("session_lifetime_secs", "3600")]);
        let mut rng = counter_rng();
        let cookie = Session::new(alice(), Some("tok".into()), &s, 1000)
            .to_cookie(&s, &mut rng)
            .unwrap();
        let h = headers_with(&cookie);
        let got = read(&s, &h, 2000).unwrap();
        assert_eq!(got.identity, alice());
        assert_eq!(got.id_token.as_deref(), Some("tok"));
        assert_eq!(read(&s, &h, 1000 + 3600), Err(SessionProblem::Expired));
        assert_eq!(
            read(&s, &HeaderMap::new(), 2000),
            Err(SessionProblem::Missing)
        );
    }

    #[test]
    fn foreign_key_and_tampering_are_invalid() {
        let s = settings_with(&[]);
        let other = settings_with(&[("session_keys", &format!("s1:{KEY_B}"))]);
        let mut rng = counter_rng();
        let cookie = Session::new(alice(), None, &other, 1000)
            .to_cookie(&other, &mut rng)
            .unwrap();
        assert_eq!(
            read(&s, &headers_with(&cookie), 1001),
            Err(SessionProblem::Invalid)
        );
        let mut h = HeaderMap::new();
        h.insert(COOKIE, "edgeauth_session=s1.AAAA".parse().unwrap());
        assert_eq!(read(&s, &h, 1001), Err(SessionProblem::Invalid));
    }

    #[test]
    fn planted_cookie_does_not_shadow_a_valid_one() {
        let s = settings_with(&[]);
        let mut rng = counter_rng();
        let cookie = Session::new(alice(), None, &s, 1000)
            .to_cookie(&s, &mut rng)
            .unwrap();
        let pair = cookie.split(';').next().unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            COOKIE,
            format!("edgeauth_session=garbage; {pair}").parse().unwrap(),
        );
        assert!(read(&s, &h, 1001).is_ok());
    }

    #[test]
    fn oversized_identity_drops_id_token_then_refuses() {
        let s = settings_with(&[]);
        let mut rng = counter_rng();
        let big_token = "x".repeat(3000);
        let cookie = Session::new(alice(), Some(big_token), &s, 1000)
            .to_cookie(&s, &mut rng)
            .unwrap();
        assert!(
            read(&s, &headers_with(&cookie), 1001)
                .unwrap()
                .id_token
                .is_none()
        );
        let mut huge = alice();
        huge.groups = (0..64).map(|i| format!("{i:0>100}")).collect();
        assert!(
            Session::new(huge, None, &s, 1000)
                .to_cookie(&s, &mut rng)
                .is_none()
        );
    }
}
