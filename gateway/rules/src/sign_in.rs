//! The event a tenant's chain starts from: who signs in (as the callback
//! established it) and the request they sign in with.

use std::collections::BTreeMap;

use edgeauth_core::identity::Identity;
use edgeauth_core::settings::Settings;
use http::request::Parts;
use serde_json::{Map, Value};

use crate::event::{
    Connection, ConnectionKind, Event, LinkedIdentity, RequestInfo, Transaction, User,
};
use edgeauth_core::profiles::Profile;

/// At most this many `Accept-Language` entries reach a rule.
const MAX_LANGUAGES: usize = 16;
const MAX_LANGUAGE_TAG: usize = 35;
const MAX_USER_AGENT_CHARS: usize = 512;

/// Who signs in, as the callback established it.
pub struct SignIn<'a> {
    pub identity: &'a Identity,
    /// Verified by the callback; only read here.
    pub id_token: &'a str,
    pub return_to: &'a str,
    /// The person's profile, this sign-in already recorded in it.
    pub person: &'a Profile,
    /// Whether this sign-in answered a rule's demand for re-authentication.
    pub reauthenticated: bool,
    /// The id of this sign-in in the audit log.
    pub correlation_id: String,
}

/// The ID token's claims (the payload of an already verified JWT).
pub fn id_token_claims(id_token: &str) -> Map<String, Value> {
    edgeauth_core::encoding::jwt_payload(id_token)
}

fn header(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `Accept-Language` tags, best first; malformed entries are dropped.
pub fn languages(raw: Option<&str>) -> Vec<String> {
    let mut langs: Vec<(f32, String)> = raw
        .unwrap_or_default()
        .split(',')
        .filter_map(|item| {
            let mut it = item.split(';');
            let tag = it.next()?.trim();
            if tag.is_empty()
                || tag.len() > MAX_LANGUAGE_TAG
                || !tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
            {
                return None;
            }
            let q = it
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            Some((q, tag.to_owned()))
        })
        .take(MAX_LANGUAGES)
        .collect();
    // Stable: equal qualities keep the client's order.
    langs.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    langs.into_iter().map(|(_, t)| t).collect()
}

/// The client's address as the platform reports it (`spin-client-addr`,
/// which the platform sets and clients cannot).
pub fn client_ip(parts: &Parts) -> Option<String> {
    edgeauth_core::events::client_ip(parts)
}

/// Every way the person signs in: this sign-in's identity first, with the
/// ID token's claims, then the others linked to their profile, with what
/// their provider said the last time.
fn identities(
    identity: &Identity,
    claims: Map<String, Value>,
    person: &Profile,
) -> Vec<LinkedIdentity> {
    let (connection, subject) = (identity.connection_id(), identity.idp_sub());
    let mut all = vec![LinkedIdentity {
        connection: connection.to_owned(),
        user_id: subject.to_owned(),
        profile: Value::Object(claims).into(),
    }];
    all.extend(
        person
            .identities
            .iter()
            .filter(|i| !(i.connection == connection && i.subject == subject))
            .map(|i| LinkedIdentity {
                connection: i.connection.clone(),
                user_id: i.subject.clone(),
                profile: Value::Object(i.claims.clone()).into(),
            }),
    );
    all
}

/// The event before any rule ran: rule name, config and secrets are filled
/// per rule ([`crate::chain::event_for_rule`]).
pub fn base_event(settings: &Settings, parts: &Parts, tenant: &str, who: SignIn<'_>) -> Event {
    let SignIn {
        identity,
        id_token,
        return_to,
        person,
        reauthenticated,
        correlation_id,
    } = who;
    let mut claims = id_token_claims(id_token);
    let picture = identity.picture.clone().or_else(|| {
        claims
            .get("picture")
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    // Protocol values, not facts about the person.
    for protocol in ["nonce", "at_hash", "c_hash"] {
        claims.remove(protocol);
    }
    let host = settings.public_url.host_str().unwrap_or("").to_owned();
    Event {
        tenant_id: tenant.to_owned(),
        rule_name: String::new(),
        config: Value::Null.into(),
        user: User {
            sub: identity.sub.clone(),
            email: identity.email.clone(),
            email_verified: identity.email_verified,
            name: identity.name.clone(),
            picture,
            groups: identity.groups.clone(),
            identities: identities(identity, claims, person),
            app_metadata: Value::Object(person.app_metadata.clone()).into(),
            user_metadata: Value::Object(person.user_metadata.clone()).into(),
        },
        connection: match settings.connection(identity.connection_id()) {
            Some(c) => Connection {
                id: c.id.clone(),
                kind: match c.kind {
                    edgeauth_core::connections::Kind::Oidc { .. } => ConnectionKind::Oidc,
                    edgeauth_core::connections::Kind::OAuth2(_) => ConnectionKind::Oauth2,
                },
                display_name: c.name.clone(),
            },
            // The session's connection was removed from the configuration.
            None => Connection {
                id: identity.connection_id().to_owned(),
                kind: ConnectionKind::Oidc,
                display_name: identity.connection_id().to_owned(),
            },
        },
        request: RequestInfo {
            ip: client_ip(parts),
            user_agent: header(parts, "user-agent")
                .map(|u| u.chars().take(MAX_USER_AGENT_CHARS).collect()),
            host: header(parts, "host").unwrap_or(host),
            path: parts.uri.path().to_owned(),
            method: parts.method.as_str().to_owned(),
            accepted_languages: languages(header(parts, "accept-language").as_deref()),
        },
        transaction: Transaction {
            first_login: person.logins_before() == 0,
            login_count: person.logins_before(),
            return_url: return_to.to_owned(),
            correlation_id,
            reauthenticated,
            resumed: None,
        },
        secrets: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{alice, settings};
    use edgeauth_core::encoding::b64url;
    use edgeauth_core::profiles::SignInFacts;
    use serde_json::json;

    #[test]
    fn accept_language_is_ordered_by_quality() {
        assert_eq!(
            languages(Some("fr;q=0.5, en-GB, de;q=0.9, <script>")),
            ["en-GB", "de", "fr"]
        );
        assert!(languages(None).is_empty());
        let many = vec!["en"; 40].join(",");
        assert_eq!(languages(Some(&many)).len(), MAX_LANGUAGES);
        assert!(languages(Some(&"a".repeat(36))).is_empty());
    }

    #[test]
    fn client_ip_comes_only_from_the_platform_header() {
        let parts = |h: &[(&str, &str)]| {
            let mut b = http::Request::get("/cb");
            for (k, v) in h {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap().into_parts().0
        };
        assert_eq!(
            client_ip(&parts(&[("spin-client-addr", "192.0.2.7:5555")])).as_deref(),
            Some("192.0.2.7")
        );
        assert_eq!(
            client_ip(&parts(&[("spin-client-addr", "::1")])).as_deref(),
            Some("::1")
        );
        assert_eq!(client_ip(&parts(&[("spin-client-addr", "nope")])), None);
        assert_eq!(client_ip(&parts(&[("x-forwarded-for", "192.0.2.9")])), None);
    }

    #[test]
    fn id_token_claims_are_read_and_protocol_values_dropped() {
        let payload = b64url(
            json!({"sub": "alice", "nonce": "n", "at_hash": "a", "picture": "https://p/a.png", "locale": "fr"})
                .to_string()
                .as_bytes(),
        );
        let token = format!("h.{payload}.s");
        assert_eq!(id_token_claims(&token)["locale"], "fr");
        assert!(id_token_claims("junk").is_empty());
        assert!(
            id_token_claims("h.W10.s").is_empty(),
            "an array is no claims"
        );

        let s = settings();
        let parts = http::Request::get("/.edgeauth/callback?code=c")
            .header("host", "app.example")
            .header("user-agent", "x".repeat(600))
            .header("accept-language", "de, en;q=0.5")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let id = alice();
        // Alice's profile: she signed in twice before, once also through
        // GitHub (linked), and a rule stored her plan.
        let mut person = Profile::new(
            "p_aaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
            &id,
            &SignInFacts::default(),
            900,
        );
        let github = Identity {
            sub: "github|42".into(),
            idp_subject: Some("42".into()),
            connection: "github".into(),
            ..alice()
        };
        let gh_claims = json!({"login": "alice-gh"});
        person.record_sign_in(
            &github,
            &SignInFacts {
                claims: gh_claims.as_object(),
                ..Default::default()
            },
            950,
        );
        person.record_sign_in(&id, &SignInFacts::default(), 1000);
        person.app_metadata = json!({"plan": "pro"}).as_object().unwrap().clone();
        let event = base_event(
            &s,
            &parts,
            "acme",
            SignIn {
                identity: &id,
                id_token: &token,
                return_to: "/app",
                person: &person,
                reauthenticated: true,
                correlation_id: "cid".into(),
            },
        );
        assert_eq!(event.tenant_id, "acme");
        assert_eq!(event.user.picture.as_deref(), Some("https://p/a.png"));
        let profile = &event.user.identities[0].profile;
        assert_eq!(profile["locale"], "fr");
        assert!(profile.get("nonce").is_none() && profile.get("at_hash").is_none());
        assert_eq!(event.user.app_metadata["plan"], "pro");
        assert_eq!(event.user.user_metadata, json!({}));
        let linked: Vec<_> = event
            .user
            .identities
            .iter()
            .map(|i| (i.connection.as_str(), i.user_id.as_str()))
            .collect();
        assert_eq!(linked, [("default", "alice"), ("github", "42")]);
        assert_eq!(event.user.identities[1].profile, gh_claims);
        assert_eq!(event.request.host, "app.example");
        assert_eq!(event.request.user_agent.as_ref().unwrap().len(), 512);
        assert_eq!(event.request.accepted_languages, ["de", "en"]);
        assert_eq!(event.request.path, "/.edgeauth/callback");
        assert!(!event.transaction.first_login);
        assert_eq!(event.transaction.login_count, 2);
        assert!(event.transaction.reauthenticated);
        assert_eq!(event.transaction.return_url, "/app");
        assert_eq!(event.transaction.correlation_id, "cid");
        assert_eq!(event.connection.display_name, "127.0.0.2");
    }
}
