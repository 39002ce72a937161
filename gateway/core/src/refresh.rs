//! Re-validating a signed-in person at their provider, and the tokens the
//! origin may ask for: the refresh and access tokens a connection granted
//! live server-side, sealed under the tenant's session keys in one KV record
//! per session (the *grant*, `session-grant:<tenant>:<session id>`); the
//! cookie only carries when the next re-validation is due, so requests
//! before that make no store read and no network call for it.
//!
//! When a request finds its session due, the first one to take the refresh
//! marker of the grant's generation (an atomic counter) redeems the refresh
//! token; the others go on with the session as it stands (it was valid at
//! the last check, a moment ago), so 50 parallel requests make one refresh
//! and none fails. That also keeps providers that rotate refresh tokens and
//! revoke a grant whose old token is reused (RFC 9700 4.14.2) from ever
//! seeing a reuse. Outcomes:
//! - granted: the new tokens are stored (next generation) and the cookie
//!   re-issued with the next due time;
//! - `invalid_grant`: the person was disabled or the grant revoked at the
//!   provider: the grant is marked revoked and the session ends everywhere;
//! - no answer (provider down, 5xx, nonsense): the session goes on for
//!   `refresh_grace_secs` after the first failure, retrying at most every
//!   [`RETRY_SECS`], then fails closed.
//!
//! A grant is bound to its tenant, session and connection inside the seal:
//! copied under another tenant's or session's key it does not open as
//! theirs, and it is only ever sent to the token endpoint of the connection
//! it came from.

use serde::{Deserialize, Serialize};

use crate::Rng;
use crate::connections::Connection;
use crate::kv_schema;
use crate::seal::{MAX_SEALED_LEN, Purpose};
use crate::session::Session;
use crate::settings::Settings;

/// After a failed attempt, requests go on without trying again this long.
pub const RETRY_SECS: u64 = 10;
/// An access token this close to its expiry is refreshed before it is sent.
pub const TOKEN_MARGIN_SECS: u64 = 10;
/// A refresh marker is one attempt's: a request that took it and died
/// (instance killed mid-refresh) holds up refreshing only this long.
pub const ATTEMPT_SECS: u64 = 30;
/// The header a route with `pass_access_token` gets the access token in
/// (the name oauth2-proxy uses; stripped from every client request).
pub const ACCESS_TOKEN_HEADER: &str = "X-Forwarded-Access-Token";
/// Longer tokens are not kept (the grant must fit one sealed value).
const MAX_TOKEN_LEN: usize = 1500;

/// What the token endpoint granted with the ID token at sign-in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Granted {
    pub access_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<u64>,
}

/// What a session carries of its grant: its id and first due time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handle {
    pub sid: String,
    #[serde(default)]
    pub due: u64,
}

/// The stored grant of one session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    #[serde(rename = "t")]
    tenant: String,
    #[serde(rename = "s")]
    sid: String,
    #[serde(rename = "c")]
    pub connection: String,
    #[serde(rename = "rt", default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(rename = "at", default, skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    /// 0: unknown (the provider did not say).
    #[serde(rename = "ax", default)]
    access_expires_at: u64,
    /// Next re-validation; 0: none (no refresh token).
    #[serde(rename = "d", default)]
    pub due: u64,
    #[serde(rename = "g", default)]
    pub generation: u64,
    #[serde(rename = "f", default)]
    failing_since: u64,
    #[serde(rename = "r", default)]
    retry_at: u64,
    #[serde(rename = "v", default)]
    revoked: bool,
}

fn short(token: Option<String>) -> Option<String> {
    token.filter(|t| !t.is_empty() && t.len() <= MAX_TOKEN_LEN)
}

impl Grant {
    /// The grant a sign-in starts with, if one is worth keeping: a refresh
    /// token while re-validation is on, or an access token some route
    /// passes to the origin.
    pub fn start(
        settings: &Settings,
        connection: &Connection,
        granted: Granted,
        now: u64,
        rng: Rng<'_>,
    ) -> Option<Grant> {
        let interval = settings.lifecycle.refresh_interval_secs;
        let refresh_token = short(granted.refresh_token).filter(|_| interval > 0);
        let access_token =
            short(granted.access_token).filter(|_| crate::route_rules::any_pass_token(settings));
        if refresh_token.is_none() && access_token.is_none() {
            return None;
        }
        Some(Grant {
            tenant: settings.tenant.clone(),
            sid: crate::session::new_id(rng),
            connection: connection.id.clone(),
            due: if refresh_token.is_some() {
                now + interval
            } else {
                0
            },
            access_expires_at: granted.expires_in.map_or(0, |s| now.saturating_add(s)),
            refresh_token,
            access_token,
            generation: 0,
            failing_since: 0,
            retry_at: 0,
            revoked: false,
        })
    }

    /// What the session cookie carries of it.
    pub fn handle(&self) -> Handle {
        Handle {
            sid: self.sid.clone(),
            due: self.due,
        }
    }

    /// `(key, value)` to store, expiring with the session.
    pub fn sealed(&self, settings: &Settings, expires_at: u64, rng: Rng<'_>) -> (String, Vec<u8>) {
        let json = serde_json::to_vec(self).expect("grant serializes");
        let sealed = settings
            .session_keys
            .seal(Purpose::SessionGrant, &json, rng);
        (
            kv_schema::session_grant(&self.tenant, &self.sid),
            kv_schema::encode(expires_at, sealed.as_bytes()),
        )
    }

    /// Whether it fits one sealed value (it is not stored otherwise).
    pub fn fits(&self, settings: &Settings, rng: Rng<'_>) -> bool {
        let json = serde_json::to_vec(self).expect("grant serializes");
        settings
            .session_keys
            .seal(Purpose::SessionGrant, &json, rng)
            .len()
            <= MAX_SEALED_LEN
    }

    /// The access token, while it is good for [`TOKEN_MARGIN_SECS`] more.
    fn usable_token(&self, now: u64) -> Option<String> {
        let good = self.access_expires_at == 0 || self.access_expires_at > now + TOKEN_MARGIN_SECS;
        self.access_token.clone().filter(|_| good && !self.revoked)
    }

    fn token_expiring(&self, now: u64) -> bool {
        self.access_token.is_some() && self.usable_token(now).is_none()
    }
}

/// The grant key of `session`, if it has a grant at all.
pub fn key(settings: &Settings, session: &Session) -> Option<String> {
    crate::revocation::valid_session_id(&session.sid)
        .then(|| kv_schema::session_grant(&settings.tenant, &session.sid))
}

/// The stored grant of `session`, if it opens as this tenant's, this
/// session's and this connection's, and has not expired.
pub fn open(settings: &Settings, session: &Session, stored: &[u8], now: u64) -> Option<Grant> {
    let payload = kv_schema::open(stored, now).ok()?;
    let text = std::str::from_utf8(payload).ok()?;
    let plain = settings
        .session_keys
        .open(Purpose::SessionGrant, text)
        .ok()?;
    let grant: Grant = serde_json::from_slice(&plain).ok()?;
    (grant.tenant == settings.tenant
        && grant.sid == session.sid
        && grant.connection == session.identity.connection_id())
    .then_some(grant)
}

/// Whether a request with `session` must look at its grant: its
/// re-validation is due, or the route passes the access token.
pub fn needs_grant(session: &Session, passes_token: bool, now: u64) -> bool {
    (session.refresh_due != 0 && session.refresh_due <= now) || passes_token
}

/// What a request does about its session's grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Forward; re-issue the cookie with this due time if it moved; pass
    /// this access token if the route asked for one.
    Forward {
        reissue_due: Option<u64>,
        access_token: Option<String>,
    },
    /// Redeem the refresh token, if this request takes `marker` first.
    Refresh { marker: String },
    /// Another request is refreshing and this one needs the token it will
    /// bring: read the grant again shortly.
    Wait,
    /// The session ends (revoked at the provider, or its grant is gone).
    Revoked,
    /// The provider could not re-validate the person within the grace.
    Unavailable,
}

fn forward(session: &Session, grant: &Grant, passes_token: bool, now: u64) -> Next {
    Next::Forward {
        reissue_due: (grant.due != session.refresh_due).then_some(grant.due),
        access_token: grant.usable_token(now).filter(|_| passes_token),
    }
}

/// The decision for a request whose session [`needs_grant`], from the
/// stored grant (`None`: missing or not this session's).
pub fn next(
    settings: &Settings,
    session: &Session,
    grant: Option<&Grant>,
    passes_token: bool,
    now: u64,
) -> Next {
    let Some(grant) = grant else {
        // A session that should have a grant and has none lost it to a
        // logout (or to tampering): it ends. Without one it never had a
        // token to pass.
        return if session.refresh_due != 0 {
            Next::Revoked
        } else {
            Next::Forward {
                reissue_due: None,
                access_token: None,
            }
        };
    };
    if grant.revoked {
        return Next::Revoked;
    }
    let can_refresh = grant.refresh_token.is_some();
    let due = can_refresh
        && ((grant.due != 0 && grant.due <= now) || (passes_token && grant.token_expiring(now)));
    if !due {
        return forward(session, grant, passes_token, now);
    }
    // After a failure, one attempt per RETRY_SECS; between attempts the
    // session goes on within the grace and is refused after it, until an
    // attempt succeeds.
    if grant.failing_since != 0 && now < grant.retry_at {
        return lost_race(settings, grant, passes_token, now);
    }
    let attempt = now.saturating_sub(grant.due) / ATTEMPT_SECS;
    Next::Refresh {
        marker: kv_schema::refresh_lock(
            &settings.tenant,
            &grant.sid,
            grant.generation,
            attempt,
            // Fixed per attempt: the expiry is part of the marker's key.
            grant.due + (attempt + 2) * ATTEMPT_SECS,
        ),
    }
}

/// A request that did not get to refresh (another one is, or one failed a
/// moment ago): it goes on with the session as last checked, unless the
/// provider has been failing for longer than the grace, or the request
/// needs a token it does not have.
pub fn lost_race(settings: &Settings, grant: &Grant, passes_token: bool, now: u64) -> Next {
    if grant.failing_since != 0
        && now >= grant.failing_since + settings.lifecycle.refresh_grace_secs
    {
        return Next::Unavailable;
    }
    waiting(grant, passes_token, now)
}

fn waiting(grant: &Grant, passes_token: bool, now: u64) -> Next {
    if passes_token && grant.token_expiring(now) {
        return Next::Wait;
    }
    // The cookie stays as it is while a refresh is pending: only a settled
    // grant moves the due time.
    Next::Forward {
        reissue_due: None,
        access_token: grant.usable_token(now).filter(|_| passes_token),
    }
}

/// The answer when the provider could not re-validate the session within
/// the grace (or the token a route needs did not come): nothing is
/// forwarded; the person can retry, and signs in again once it is back.
pub fn unavailable(json: bool) -> crate::Response {
    crate::pages::problem(
        http::StatusCode::SERVICE_UNAVAILABLE,
        "revalidation_unavailable",
        "Session check unavailable",
        "Your identity provider could not confirm your session just now. Try again in a moment.",
        "the session is due for re-validation and the provider's token endpoint did not answer \
         within refresh_grace_secs",
        json,
    )
}

/// The refresh-token grant request to `token_endpoint` (the connection's).
pub fn request(
    connection: &Connection,
    token_endpoint: &http::Uri,
    grant: &Grant,
) -> Option<http::Request<Vec<u8>>> {
    let refresh_token = grant.refresh_token.as_deref()?;
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "refresh_token")
        .append_pair("refresh_token", refresh_token)
        .finish();
    let mut request = http::Request::new(form.into_bytes());
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = token_endpoint.clone();
    let headers = request.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    headers.insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        http::header::AUTHORIZATION,
        connection.client_secret_basic()?,
    );
    Some(request)
}

/// The provider's answer to a refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Granted(Granted),
    /// `invalid_grant`: the person or the grant is gone at the provider.
    Revoked,
    /// No usable answer (unreachable, 5xx, other errors): retried.
    NoAnswer(String),
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    refresh_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    error: Option<String>,
}

/// Reads the token endpoint's answer to a refresh.
pub fn answer(status: u16, body: &[u8]) -> Answer {
    let parsed = serde_json::from_slice::<TokenAnswer>(body).ok();
    match (status, parsed) {
        (200, Some(a)) if a.access_token.as_deref().is_some_and(|t| !t.is_empty()) => {
            // IdPs send `expires_in` as a number or, some, as a string.
            let expires_in = match &a.expires_in {
                Some(serde_json::Value::Number(n)) => n.as_u64(),
                Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
                _ => None,
            };
            Answer::Granted(Granted {
                access_token: a.access_token,
                refresh_token: a.refresh_token,
                expires_in,
            })
        }
        (400..=499, Some(a)) if a.error.as_deref() == Some("invalid_grant") => Answer::Revoked,
        (status, Some(a)) => Answer::NoAnswer(format!(
            "status {status}{}",
            a.error.map(|e| format!(", error {e}")).unwrap_or_default()
        )),
        (status, None) => Answer::NoAnswer(format!("status {status}, not a token response")),
    }
}

/// The grant to store after an attempt, and what the request does next.
pub fn settle(
    settings: &Settings,
    session: &Session,
    grant: &Grant,
    answer: Answer,
    passes_token: bool,
    now: u64,
) -> (Grant, Next) {
    let mut next = grant.clone();
    next.generation += 1;
    match answer {
        Answer::Granted(g) => {
            // A provider that does not rotate keeps the old refresh token valid.
            if let Some(rt) = short(g.refresh_token) {
                next.refresh_token = Some(rt);
            }
            if let Some(at) = short(g.access_token) {
                next.access_token = Some(at);
                next.access_expires_at = g.expires_in.map_or(0, |s| now.saturating_add(s));
            }
            next.due = now + settings.lifecycle.refresh_interval_secs.max(1);
            next.failing_since = 0;
            next.retry_at = 0;
            let then = forward(session, &next, passes_token, now);
            (next, then)
        }
        Answer::Revoked => {
            next.revoked = true;
            next.refresh_token = None;
            next.access_token = None;
            (next, Next::Revoked)
        }
        Answer::NoAnswer(_) => {
            if next.failing_since == 0 {
                next.failing_since = now;
            }
            next.retry_at = now + RETRY_SECS;
            let then = lost_race(settings, &next, passes_token, now);
            (next, then)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{alice, counter_rng, settings_with};

    fn signed_in(s: &Settings, granted: Granted, now: u64) -> (Session, Grant) {
        let mut rng = counter_rng();
        let grant = Grant::start(s, &s.connections[0], granted, now, &mut rng).unwrap();
        let h = grant.handle();
        let mut session = Session::new(alice(), None, s, now);
        session.sid = h.sid;
        session.refresh_due = h.due;
        (session, grant)
    }

    fn tokens(rt: &str) -> Granted {
        Granted {
            access_token: Some("at-1".into()),
            refresh_token: Some(rt.into()),
            expires_in: Some(3600),
        }
    }

    #[test]
    fn nothing_is_kept_without_a_refresh_token_or_a_route_that_passes_one() {
        let s = settings_with(&[]);
        let mut rng = counter_rng();
        let only_access = Granted {
            access_token: Some("at".into()),
            ..Granted::default()
        };
        assert!(Grant::start(&s, &s.connections[0], only_access.clone(), 1000, &mut rng).is_none());
        let off = settings_with(&[("refresh_interval_secs", "0")]);
        assert!(Grant::start(&off, &off.connections[0], tokens("rt"), 1000, &mut rng).is_none());
        let passing = settings_with(&[(
            "routes",
            r#"[{"path": "/api/", "pass_access_token": true}]"#,
        )]);
        let g = Grant::start(
            &passing,
            &passing.connections[0],
            only_access,
            1000,
            &mut rng,
        )
        .unwrap();
        assert_eq!(g.due, 0, "no refresh token: nothing to re-validate with");
    }

    #[test]
    fn sealed_grants_open_only_for_their_tenant_session_and_connection() {
        let s = settings_with(&[]);
        let (session, grant) = signed_in(&s, tokens("rt-1"), 1000);
        let mut rng = counter_rng();
        let (k, v) = grant.sealed(&s, 5000, &mut rng);
        assert_eq!(Some(k), key(&s, &session));
        assert_eq!(open(&s, &session, &v, 1001), Some(grant.clone()));
        // Another session of the same tenant (the record copied under its key).
        let (other, _) = signed_in(&s, tokens("rt-2"), 1000);
        let mut other = other;
        other.sid = crate::session::new_id(&mut rng);
        assert_eq!(open(&s, &other, &v, 1001), None);
        // Another tenant with the very same keys.
        let mut t = settings_with(&[]);
        t.tenant = "acme".into();
        assert_eq!(open(&t, &session, &v, 1001), None);
        // Another connection's session under the same id.
        let mut moved = session.clone();
        moved.identity.connection = "gh".into();
        assert_eq!(open(&s, &moved, &v, 1001), None);
        // Expired with the session.
        assert_eq!(open(&s, &session, &v, 5000), None);
    }

    #[test]
    fn a_due_session_refreshes_once_per_generation_and_attempt() {
        let s = settings_with(&[("refresh_interval_secs", "300")]);
        let (session, grant) = signed_in(&s, tokens("rt-1"), 1000);
        assert!(!needs_grant(&session, false, 1299));
        assert!(needs_grant(&session, false, 1300));
        let a = next(&s, &session, Some(&grant), false, 1300);
        let b = next(&s, &session, Some(&grant), false, 1310);
        let Next::Refresh { marker } = &a else {
            panic!("{a:?}")
        };
        assert_eq!(a, b, "one marker for every request of the burst");
        assert!(marker.starts_with("refresh-lock:"));
        assert_eq!(kv_schema::key_expiry(marker), Some(1300 + 2 * ATTEMPT_SECS));
        assert!(kv_schema::key_expiry(marker).unwrap() > 1310);
        // A later window (the refresher died): a new marker.
        assert_ne!(
            a,
            next(&s, &session, Some(&grant), false, 1300 + ATTEMPT_SECS)
        );
        // The losers go on as they are, no cookie change.
        assert_eq!(
            lost_race(&s, &grant, false, 1300),
            Next::Forward {
                reissue_due: None,
                access_token: None
            }
        );
    }

    #[test]
    fn a_granted_refresh_moves_the_due_time_and_keeps_an_unrotated_token() {
        let s = settings_with(&[("refresh_interval_secs", "300")]);
        let (session, grant) = signed_in(&s, tokens("rt-1"), 1000);
        let answer = Answer::Granted(Granted {
            access_token: Some("at-2".into()),
            refresh_token: None,
            expires_in: Some(60),
        });
        let (stored, then) = settle(&s, &session, &grant, answer, true, 1300);
        assert_eq!(stored.generation, 1);
        assert_eq!(stored.refresh_token.as_deref(), Some("rt-1"));
        assert_eq!(stored.due, 1600);
        assert_eq!(
            then,
            Next::Forward {
                reissue_due: Some(1600),
                access_token: Some("at-2".into())
            }
        );
        // A request with the old cookie after that: no new refresh, the cookie catches up.
        assert_eq!(
            next(&s, &session, Some(&stored), false, 1301),
            Next::Forward {
                reissue_due: Some(1600),
                access_token: None
            }
        );
        // The access token near its expiry is refreshed for a route that passes it.
        assert!(matches!(
            next(&s, &session.clone(), Some(&stored), true, 1355),
            Next::Refresh { .. }
        ));
    }

    #[test]
    fn invalid_grant_ends_the_session_for_good() {
        let s = settings_with(&[]);
        let (session, grant) = signed_in(&s, tokens("rt-1"), 1000);
        let (stored, then) = settle(&s, &session, &grant, Answer::Revoked, false, 1300);
        assert_eq!(then, Next::Revoked);
        assert_eq!(
            next(&s, &session, Some(&stored), false, 1301),
            Next::Revoked
        );
        // A missing grant ends a session that should have one.
        assert_eq!(next(&s, &session, None, false, 1301), Next::Revoked);
    }

    #[test]
    fn an_unreachable_provider_gets_the_grace_then_fails_closed() {
        let s = settings_with(&[
            ("refresh_interval_secs", "300"),
            ("refresh_grace_secs", "60"),
        ]);
        let (session, grant) = signed_in(&s, tokens("rt-1"), 1000);
        let down = || Answer::NoAnswer("status 503".into());
        let (stored, then) = settle(&s, &session, &grant, down(), false, 1300);
        assert!(matches!(then, Next::Forward { .. }));
        // No retry storm: requests within RETRY_SECS go on without trying.
        assert!(matches!(
            next(&s, &session, Some(&stored), false, 1305),
            Next::Forward { .. }
        ));
        assert!(matches!(
            next(&s, &session, Some(&stored), false, 1311),
            Next::Refresh { .. }
        ));
        let (stored, _) = settle(&s, &session, &stored, down(), false, 1311);
        assert_eq!(
            stored.failing_since, 1300,
            "the grace runs from the first failure"
        );
        // Past the grace: refused between attempts, and when an attempt fails.
        assert!(matches!(
            next(&s, &session, Some(&stored), false, 1321),
            Next::Refresh { .. }
        ));
        let (stored, then) = settle(&s, &session, &stored, down(), false, 1360);
        assert_eq!(then, Next::Unavailable);
        assert_eq!(
            next(&s, &session, Some(&stored), false, 1365),
            Next::Unavailable
        );
        assert_eq!(lost_race(&s, &stored, false, 1365), Next::Unavailable);
        // The provider back: the next attempt (after RETRY_SECS) restores it.
        assert!(matches!(
            next(&s, &session, Some(&stored), false, 1370),
            Next::Refresh { .. }
        ));
        // Back before the grace ran out: all is well again.
        let (ok, then) = settle(
            &s,
            &session,
            &stored,
            Answer::Granted(tokens("rt-2")),
            false,
            1320,
        );
        assert_eq!(ok.failing_since, 0);
        assert!(matches!(
            then,
            Next::Forward {
                reissue_due: Some(1620),
                ..
            }
        ));
    }

    #[test]
    fn answers_are_read_strictly() {
        let ok =
            br#"{"access_token":"a","refresh_token":"r","expires_in":"60","token_type":"Bearer"}"#;
        assert_eq!(
            answer(200, ok),
            Answer::Granted(Granted {
                access_token: Some("a".into()),
                refresh_token: Some("r".into()),
                expires_in: Some(60)
            })
        );
        assert_eq!(
            answer(400, br#"{"error":"invalid_grant"}"#),
            Answer::Revoked
        );
        assert!(matches!(
            answer(400, br#"{"error":"invalid_client"}"#),
            Answer::NoAnswer(_)
        ));
        assert!(matches!(
            answer(200, br#"{"token_type":"Bearer"}"#),
            Answer::NoAnswer(_)
        ));
        assert!(matches!(answer(502, b"<html>"), Answer::NoAnswer(_)));
    }

    #[test]
    fn the_refresh_request_is_the_connections() {
        let s = settings_with(&[]);
        let (_, grant) = signed_in(&s, tokens("rt-1"), 1000);
        let meta = crate::testutil::provider_meta();
        let req = request(&s.connections[0], meta.token_endpoint.uri(), &grant).unwrap();
        let body = String::from_utf8(req.body().clone()).unwrap();
        assert_eq!(body, "grant_type=refresh_token&refresh_token=rt-1");
        assert!(
            req.headers()["authorization"]
                .to_str()
                .unwrap()
                .starts_with("Basic ")
        );
        assert_eq!(req.uri(), meta.token_endpoint.uri());
    }
}
