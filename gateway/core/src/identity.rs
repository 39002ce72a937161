//! One normalized identity from whatever claims an IdP sends.
//!
//! IdPs disagree on shapes (`groups` as a string or a list, `email_verified` as
//! a bool or the string "true"); this is the one place that copes, and it is
//! strict: a malformed email is dropped rather than guessed at.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::connections::Connection;

pub(crate) const MAX_CLAIM_LEN: usize = 512;
const MAX_GROUPS: usize = 64;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<String>,
    /// The connection it came from; empty in sessions sealed before
    /// connections existed, which all came from the legacy one.
    #[serde(rename = "cx", default, skip_serializing_if = "String::is_empty")]
    pub connection: String,
    /// The subject as the provider sent it, when `sub` is namespaced.
    #[serde(rename = "isub", default, skip_serializing_if = "Option::is_none")]
    pub idp_subject: Option<String>,
    /// The person's profile (`crate::profiles`): one id whatever connection
    /// they used. Absent in sessions from before profiles.
    #[serde(rename = "pid", default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
    /// The person's revocation epoch when they signed in
    /// (`crate::revocation::person_revoked`): a later "log out everywhere"
    /// or erasure raises the stored one past it.
    #[serde(rename = "pep", default, skip_serializing_if = "is_zero")]
    pub profile_epoch: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimsError {
    MissingSubject,
}

fn short_string(v: Option<&Value>) -> Option<String> {
    let s = v?.as_str()?.trim();
    if s.is_empty() || s.len() > MAX_CLAIM_LEN || s.chars().any(char::is_control) {
        return None;
    }
    Some(s.to_owned())
}

/// `local@domain` with exactly one `@`; the domain is IDNA-mapped and
/// lower-cased so policy compares what DNS would resolve.
pub fn normalize_email(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let (local, domain) = raw.split_once('@')?;
    if local.is_empty() || domain.contains('@') || local.len() > 64 {
        return None;
    }
    if local
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';' | '"'))
    {
        return None;
    }
    let domain = crate::settings::normalize_domain(domain)?;
    Some(format!("{local}@{domain}"))
}

impl Identity {
    pub fn from_claims(claims: &Map<String, Value>) -> Result<Identity, ClaimsError> {
        let sub = short_string(claims.get("sub")).ok_or(ClaimsError::MissingSubject)?;
        // An address with blanks around it is not one a provider verified
        // as written: dropped, not trimmed into someone else's (linking
        // compares addresses exactly, `crate::profiles`).
        let email = claims
            .get("email")
            .and_then(Value::as_str)
            .filter(|e| e.trim() == *e)
            .and_then(normalize_email);
        let email_verified = email.is_some()
            && match claims.get("email_verified") {
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
                _ => false,
            };
        let name = short_string(claims.get("name"));
        let groups = match claims.get("groups") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|g| short_string(Some(g)))
                .take(MAX_GROUPS)
                .collect(),
            Some(v @ Value::String(_)) => short_string(Some(v)).into_iter().collect(),
            _ => Vec::new(),
        };
        let picture = short_string(claims.get("picture"))
            .filter(|p| p.starts_with("https://") || p.starts_with("http://"));
        Ok(Identity {
            sub,
            email,
            email_verified,
            name,
            groups,
            picture,
            connection: String::new(),
            idp_subject: None,
            profile_id: None,
            profile_epoch: 0,
        })
    }

    /// The identity as `connection` vouches for it: the subject namespaced
    /// (`Connection::subject`), the provider's own kept beside it.
    pub fn from_connection(mut self, connection: &Connection) -> Identity {
        let namespaced = connection.subject(&self.sub);
        if namespaced != self.sub {
            self.idp_subject = Some(std::mem::replace(&mut self.sub, namespaced));
        }
        self.connection = connection.id.clone();
        self
    }

    /// The id of the connection it came from.
    pub fn connection_id(&self) -> &str {
        if self.connection.is_empty() {
            crate::connections::LEGACY_ID
        } else {
            &self.connection
        }
    }

    /// The provider's own subject.
    pub fn idp_sub(&self) -> &str {
        self.idp_subject.as_deref().unwrap_or(&self.sub)
    }

    /// The domain of the email, only when the IdP says it is verified.
    pub fn verified_email_domain(&self) -> Option<&str> {
        if !self.email_verified {
            return None;
        }
        self.email.as_deref()?.rsplit_once('@').map(|(_, d)| d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn maps_standard_claims() {
        let id = Identity::from_claims(&map(json!({
            "sub": "alice", "email": "Alice@Example.COM", "email_verified": true,
            "name": "Alice Example", "groups": ["admins", "devs"]
        })))
        .unwrap();
        assert_eq!(id.email.as_deref(), Some("Alice@example.com"));
        assert!(id.email_verified);
        assert_eq!(id.groups, vec!["admins", "devs"]);
        assert_eq!(id.verified_email_domain(), Some("example.com"));
    }

    #[test]
    fn groups_as_string_and_verified_as_string() {
        let id = Identity::from_claims(&map(json!({
            "sub": "x", "email": "x@example.com", "email_verified": "true", "groups": "ops"
        })))
        .unwrap();
        assert!(id.email_verified);
        assert_eq!(id.groups, vec!["ops"]);
    }

    #[test]
    fn unverified_or_malformed_email_gives_no_domain() {
        for claims in [
            json!({"sub": "b", "email": "bob@example.com", "email_verified": false}),
            json!({"sub": "b", "email": "bob@example.com"}),
            json!({"sub": "b", "email": "bob@evil.test@example.com", "email_verified": true}),
            json!({"sub": "b", "email": "@example.com", "email_verified": true}),
            json!({"sub": "b", "email": "bob", "email_verified": true}),
            json!({"sub": "b", "email": "bob@localhost", "email_verified": true}),
            json!({"sub": "b", "email": 42, "email_verified": true}),
        ] {
            let id = Identity::from_claims(&map(claims.clone())).unwrap();
            assert_eq!(id.verified_email_domain(), None, "{claims}");
        }
    }

    #[test]
    fn idn_domains_fold_to_ascii() {
        let id = Identity::from_claims(&map(json!({
            "sub": "c", "email": "c@BÜCHER.example", "email_verified": true
        })))
        .unwrap();
        assert_eq!(id.verified_email_domain(), Some("xn--bcher-kva.example"));
    }

    /// Found by fuzzing (identity_claims target): URL host parsing let `"`
    /// `*` `,` `;` into email domains (and so into identity headers), and
    /// normalizing such an address twice gave different answers.
    #[test]
    fn fuzz_email_domain_must_be_a_dns_name() {
        let crash = format!(
            "{{bbob@E\"name\"\u{7a9}\"\u{7a9}XPDE.\"namDE{}.\"nxn--am\"name\"e\"\u{7a9}XPveDEcoXPDE.2name\"\u{7a9}XP\"name\"e\"\u{7a9}XPocXDEPDE.2name\"\u{7a9}\u{7a9}XPDEcoXPDE.2name\"\u{7a9}XXPDEc",
            "*".repeat(111)
        );
        assert_eq!(normalize_email(&crash), None);
        for bad in [
            "a@example.com,evil.example",
            "a@example.com;x=1",
            "a@\"example\".com",
            "a@*.example.com",
            "a@exa'mple.com",
            "a@-example.com",
            "a@example..com",
            "a@example_1.com",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad}");
        }
        for good in ["a@Example.COM", "a@b\u{fc}cher.example", "a@x-1.example."] {
            let once = normalize_email(good).unwrap();
            assert_eq!(normalize_email(&once).as_ref(), Some(&once), "{good}");
        }
    }

    #[test]
    fn blanks_around_an_email_drop_it() {
        for email in [
            "a@example.com ",
            " a@example.com",
            "a@example.com\n",
            "\ta@example.com",
        ] {
            let id = Identity::from_claims(&map(json!({
                "sub": "s", "email": email, "email_verified": true
            })))
            .unwrap();
            assert_eq!(id.email, None, "{email:?}");
        }
    }

    #[test]
    fn percent_escapes_in_domains_are_not_decoded() {
        for email in ["a@ex%61mple.com", "a@example%2Ecom", "a@corp%2eexample"] {
            let id = Identity::from_claims(&map(json!({
                "sub": "s", "email": email, "email_verified": true
            })))
            .unwrap();
            assert_eq!(id.verified_email_domain(), None, "{email}");
        }
    }

    #[test]
    fn subject_is_required_and_bounded() {
        assert_eq!(
            Identity::from_claims(&map(json!({"email": "a@b.example"}))),
            Err(ClaimsError::MissingSubject)
        );
        assert!(Identity::from_claims(&map(json!({"sub": "x".repeat(10_000)}))).is_err());
        let many: Vec<String> = (0..1000).map(|i| format!("g{i}")).collect();
        let id = Identity::from_claims(&map(json!({"sub": "s", "groups": many}))).unwrap();
        assert_eq!(id.groups.len(), MAX_GROUPS);
    }
}
