//! Login events: what happened at sign-in and sign-out, as one structured
//! record the gateway pushes to a tenant's webhook endpoints
//! (`crate::webhooks`).
//!
//! An event's JSON is the Standard Webhooks payload shape
//! (`{"type", "timestamp", "data"}`); `data` carries the event id (also the
//! delivery's `webhook-id`, so retries are recognisable), the tenant, who
//! (`user_id`, the person's profile id (`crate::profiles`); `subject`, the
//! connection's subject as the origin gets it),
//! the connection, the client's IP and user agent, and the sign-in's
//! correlation id.
//!
//! Which events a sign-in produces is [`for_login`]: a completed login is
//! `login`, plus `signup` when it is the person's first; a login the gateway's
//! policy or a rule refused is `login.denied`; a rule that failed is
//! `rule.failed`; a sign-in a rule paused produces nothing until it finishes.
//! A sign-in that proves an offer to link accounts (`crate::linking`) also
//! produces `link` ([`for_link`]), whose `data.linked` names the identity
//! that joined and the profile merged away.

use serde_json::{Value, json};

use crate::encoding::b64url;

/// The longest user agent an event carries (they can be kilobytes).
pub const MAX_USER_AGENT_CHARS: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventType {
    Login,
    Signup,
    Logout,
    LoginDenied,
    RuleFailed,
    /// Another identity joined the person's profile (`crate::linking`).
    Link,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::Login,
        EventType::Signup,
        EventType::Logout,
        EventType::LoginDenied,
        EventType::RuleFailed,
        EventType::Link,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Login => "login",
            EventType::Signup => "signup",
            EventType::Logout => "logout",
            EventType::LoginDenied => "login.denied",
            EventType::RuleFailed => "rule.failed",
            EventType::Link => "link",
        }
    }

    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

/// Who, where and in which sign-in: the same for every event of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    pub tenant: String,
    /// The session subject (`<connection>|<sub>` for listed connections).
    pub subject: String,
    /// The person's profile (`crate::profiles`), when known.
    pub profile_id: Option<String>,
    pub connection: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub correlation_id: String,
}

impl Context {
    /// Keeps the user agent bounded.
    pub fn with_user_agent(mut self, ua: Option<&str>) -> Context {
        self.user_agent = ua.map(|u| u.chars().take(MAX_USER_AGENT_CHARS).collect());
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `evt_<base64url of 16 random bytes>`; the deliveries' `webhook-id`.
    pub id: String,
    pub kind: EventType,
    /// Unix seconds.
    pub time: u64,
    pub context: Context,
    /// Why a login was denied or which rule failed and how.
    pub reason: Option<String>,
    pub rule: Option<String>,
    /// For `link`: what joined the profile.
    pub linked: Option<Linked>,
}

/// An identity that joined a profile, and the profile it had until then
/// (merged in and gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    pub connection: String,
    pub subject: String,
    pub merged_profile: String,
}

/// The client's address as the platform reports it (`spin-client-addr`,
/// which the platform sets and clients cannot), without the port.
pub fn client_ip(parts: &http::request::Parts) -> Option<String> {
    let raw = parts.headers.get("spin-client-addr")?.to_str().ok()?;
    raw.parse::<std::net::SocketAddr>()
        .map(|s| s.ip().to_string())
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(|i| i.to_string()))
        .ok()
}

/// The context of a request about `identity` (sign-in or sign-out).
pub fn context(
    tenant: &str,
    identity: &crate::identity::Identity,
    parts: &http::request::Parts,
    correlation_id: String,
) -> Context {
    Context {
        tenant: tenant.to_owned(),
        subject: identity.sub.clone(),
        profile_id: identity.profile_id.clone(),
        connection: identity.connection_id().to_owned(),
        ip: client_ip(parts),
        user_agent: None,
        correlation_id,
    }
    .with_user_agent(
        parts
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    )
}

/// A fresh event id from 16 random bytes.
pub fn new_id(rng: crate::Rng<'_>) -> String {
    let mut b = [0u8; 16];
    rng(&mut b);
    format!("evt_{}", b64url(&b))
}

/// How a sign-in ended, as far as events are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome {
    SignedIn {
        first_login: bool,
    },
    /// The gateway's own policy (`crate::policy`) refused it.
    PolicyDenied {
        reason: String,
    },
    RuleDenied {
        rule: String,
        reason: String,
    },
    RuleFailed {
        rule: String,
        kind: String,
    },
    /// A rule sent the person elsewhere (or asked for a fresh login): the
    /// sign-in ends later, with its own outcome.
    Paused,
}

/// The events of one sign-in, in the order they happened.
pub fn for_login(
    outcome: &LoginOutcome,
    context: &Context,
    now: u64,
    rng: crate::Rng<'_>,
) -> Vec<Event> {
    let event = |kind, reason: Option<&str>, rule: Option<&str>, rng: crate::Rng<'_>| Event {
        id: new_id(rng),
        kind,
        time: now,
        context: context.clone(),
        reason: reason.map(str::to_owned),
        rule: rule.map(str::to_owned),
        linked: None,
    };
    match outcome {
        LoginOutcome::SignedIn { first_login } => {
            let mut out = Vec::new();
            if *first_login {
                out.push(event(EventType::Signup, None, None, rng));
            }
            out.push(event(EventType::Login, None, None, rng));
            out
        }
        LoginOutcome::PolicyDenied { reason } => {
            vec![event(EventType::LoginDenied, Some(reason), None, rng)]
        }
        LoginOutcome::RuleDenied { rule, reason } => {
            vec![event(EventType::LoginDenied, Some(reason), Some(rule), rng)]
        }
        LoginOutcome::RuleFailed { rule, kind } => {
            vec![event(EventType::RuleFailed, Some(kind), Some(rule), rng)]
        }
        LoginOutcome::Paused => Vec::new(),
    }
}

/// The logout of the session whose context this is.
pub fn for_logout(context: &Context, now: u64, rng: crate::Rng<'_>) -> Event {
    Event {
        id: new_id(rng),
        kind: EventType::Logout,
        time: now,
        context: context.clone(),
        reason: None,
        rule: None,
        linked: None,
    }
}

/// An identity joined the profile of the person signing in (`context`).
pub fn for_link(context: &Context, linked: Linked, now: u64, rng: crate::Rng<'_>) -> Event {
    Event {
        id: new_id(rng),
        kind: EventType::Link,
        time: now,
        context: context.clone(),
        reason: None,
        rule: None,
        linked: Some(linked),
    }
}

impl Event {
    /// The JSON body every endpoint receives (the same bytes on every retry).
    pub fn payload(&self) -> Vec<u8> {
        let c = &self.context;
        let mut data = json!({
            "event_id": self.id,
            "tenant": c.tenant,
            // One id per person whatever the connection: the profile's
            // (sessions from before profiles: the subject).
            "user_id": c.profile_id.as_deref().unwrap_or(&c.subject),
            "subject": c.subject,
            "connection": c.connection,
            "ip": c.ip,
            "user_agent": c.user_agent,
            "correlation_id": c.correlation_id,
        });
        if let Some(r) = &self.reason {
            data["reason"] = Value::String(r.clone());
        }
        if let Some(r) = &self.rule {
            data["rule"] = Value::String(r.clone());
        }
        if let Some(l) = &self.linked {
            data["linked"] = json!({
                "connection": l.connection,
                "subject": l.subject,
                "merged_profile": l.merged_profile,
            });
        }
        json!({
            "type": self.kind.as_str(),
            "timestamp": rfc3339(self.time),
            "data": data,
        })
        .to_string()
        .into_bytes()
    }
}

/// `2024-05-01T12:00:00Z` for unix seconds (proleptic Gregorian, UTC).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01: eras of 400 years (146097 days).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::counter_rng;

    fn ctx() -> Context {
        Context {
            tenant: "acme".into(),
            subject: "corp|alice".into(),
            profile_id: None,
            connection: "corp".into(),
            ip: Some("192.0.2.7".into()),
            user_agent: None,
            correlation_id: "cid-1".into(),
        }
        .with_user_agent(Some(&"x".repeat(2000)))
    }

    #[test]
    fn the_request_gives_ip_and_user_agent() {
        let parts = http::Request::get("/.edgeauth/callback")
            .header("spin-client-addr", "[2001:db8::1]:4431")
            .header("user-agent", "UA/1")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let mut id = crate::identity::Identity::from_claims(
            serde_json::json!({"sub": "alice"}).as_object().unwrap(),
        )
        .unwrap();
        id.connection = "corp".into();
        let c = context("acme", &id, &parts, "cid".into());
        assert_eq!(c.ip.as_deref(), Some("2001:db8::1"));
        assert_eq!(c.user_agent.as_deref(), Some("UA/1"));
        assert_eq!(c.connection, "corp");
        assert_eq!(c.subject, "alice");
    }

    #[test]
    fn a_link_names_what_joined_the_profile() {
        let mut c = ctx();
        c.profile_id = Some("p_aaaaaaaaaaaaaaaaaaaaaaaaaa".into());
        let linked = Linked {
            connection: "social".into(),
            subject: "s-9".into(),
            merged_profile: "p_bbbbbbbbbbbbbbbbbbbbbbbbbb".into(),
        };
        let e = for_link(&c, linked, 7, &mut counter_rng());
        assert_eq!(e.kind, EventType::Link);
        assert_eq!(EventType::parse("link"), Some(EventType::Link));
        let p: Value = serde_json::from_slice(&e.payload()).unwrap();
        assert_eq!(p["type"], "link");
        assert_eq!(p["data"]["user_id"], "p_aaaaaaaaaaaaaaaaaaaaaaaaaa");
        assert_eq!(p["data"]["linked"]["connection"], "social");
        assert_eq!(p["data"]["linked"]["subject"], "s-9");
        assert_eq!(
            p["data"]["linked"]["merged_profile"],
            "p_bbbbbbbbbbbbbbbbbbbbbbbbbb"
        );
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(4_107_542_399), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn a_first_login_is_a_signup_and_a_login_of_one_sign_in() {
        let mut rng = counter_rng();
        let first = for_login(
            &LoginOutcome::SignedIn { first_login: true },
            &ctx(),
            1000,
            &mut rng,
        );
        let kinds: Vec<_> = first.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventType::Signup, EventType::Login]);
        assert_ne!(first[0].id, first[1].id);
        assert!(first[0].id.starts_with("evt_"));
        let later = for_login(
            &LoginOutcome::SignedIn { first_login: false },
            &ctx(),
            1000,
            &mut rng,
        );
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].kind, EventType::Login);
        assert!(for_login(&LoginOutcome::Paused, &ctx(), 1000, &mut rng).is_empty());
    }

    #[test]
    fn denials_and_failures_say_why() {
        let mut rng = counter_rng();
        let d = for_login(
            &LoginOutcome::RuleDenied {
                rule: "email-domain".into(),
                reason: "not staff".into(),
            },
            &ctx(),
            5,
            &mut rng,
        );
        assert_eq!(d[0].kind, EventType::LoginDenied);
        let p: Value = serde_json::from_slice(&d[0].payload()).unwrap();
        assert_eq!(p["type"], "login.denied");
        assert_eq!(p["data"]["rule"], "email-domain");
        assert_eq!(p["data"]["reason"], "not staff");
        let f = for_login(
            &LoginOutcome::RuleFailed {
                rule: "crm".into(),
                kind: "timeout".into(),
            },
            &ctx(),
            5,
            &mut rng,
        );
        assert_eq!(f[0].kind, EventType::RuleFailed);
        let p = for_login(
            &LoginOutcome::PolicyDenied {
                reason: "unverified".into(),
            },
            &ctx(),
            5,
            &mut rng,
        );
        let v: Value = serde_json::from_slice(&p[0].payload()).unwrap();
        assert_eq!(v["data"]["reason"], "unverified");
        assert!(v["data"].get("rule").is_none());
    }

    #[test]
    fn payload_carries_the_context() {
        let mut rng = counter_rng();
        let e = for_logout(&ctx(), 1_700_000_000, &mut rng);
        let v: Value = serde_json::from_slice(&e.payload()).unwrap();
        assert_eq!(v["type"], "logout");
        assert_eq!(v["timestamp"], "2023-11-14T22:13:20Z");
        let d = &v["data"];
        assert_eq!(d["event_id"], e.id.as_str());
        assert_eq!(d["tenant"], "acme");
        assert_eq!(d["user_id"], "corp|alice");
        assert_eq!(d["subject"], "corp|alice");
        assert_eq!(d["connection"], "corp");
        assert_eq!(d["ip"], "192.0.2.7");
        assert_eq!(d["correlation_id"], "cid-1");
        assert_eq!(
            d["user_agent"].as_str().unwrap().len(),
            MAX_USER_AGENT_CHARS
        );
        assert_eq!(e.payload(), e.payload(), "the same bytes every time");
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("Login"), None);
    }
}
