//! What the gateway keeps in KV for rules: per person ([`UserRecord`]) and
//! per paused sign-in ([`Pending`]), in the envelopes of
//! [`edgeauth_core::kv_schema`].

use edgeauth_core::identity::Identity;
use edgeauth_core::kv_schema::{self, RULE_USER_RETENTION_SECS};
use edgeauth_core::login::LoginState;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::chain::Progress;
use crate::event::Event;

/// What the gateway keeps per person and tenant for rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    #[serde(default)]
    pub logins: u64,
    #[serde(default)]
    pub app: Value,
    #[serde(default)]
    pub user: Value,
}

impl Default for UserRecord {
    fn default() -> Self {
        UserRecord {
            logins: 0,
            app: json!({}),
            user: json!({}),
        }
    }
}

fn object_or_empty(v: Value) -> Value {
    if v.is_object() {
        v
    } else {
        Value::Object(Map::new())
    }
}

impl UserRecord {
    /// The stored record, or a first sign-in's empty one. Records from before
    /// the KV envelope (plain JSON) are still read; they are rewritten as
    /// envelopes at the next sign-in.
    pub fn decode(stored: Option<&[u8]>, now: u64) -> UserRecord {
        let Some(stored) = stored else {
            return UserRecord::default();
        };
        let json = match kv_schema::open(stored, now) {
            Ok(payload) => payload,
            Err(kv_schema::Unusable::Malformed) => stored,
            Err(kv_schema::Unusable::Expired) => return UserRecord::default(),
        };
        serde_json::from_slice::<UserRecord>(json)
            .map(|r| UserRecord {
                app: object_or_empty(r.app),
                user: object_or_empty(r.user),
                ..r
            })
            .unwrap_or_default()
    }

    /// `(expires_at, value)`: kept for [`RULE_USER_RETENTION_SECS`] after this sign-in.
    pub fn encode(&self, now: u64) -> (u64, Vec<u8>) {
        let expires_at = now + RULE_USER_RETENTION_SECS;
        let json = serde_json::to_vec(self).unwrap_or_default();
        (expires_at, kv_schema::encode(expires_at, &json))
    }
}

/// A sign-in paused by a rule's redirect, kept in KV under its nonce until
/// it expires with the resume link.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    pub tenant: String,
    pub index: usize,
    pub rule: String,
    pub identity: Identity,
    pub login: LoginState,
    pub id_token: String,
    pub progress: Progress,
    pub base: Event,
    pub expires: u64,
}

impl Pending {
    pub fn encode(&self) -> Vec<u8> {
        kv_schema::encode(self.expires, &serde_json::to_vec(self).unwrap_or_default())
    }

    /// The stored paused sign-in if it is still live; from before the KV
    /// envelope (plain JSON), expired or unreadable: none, sign in again.
    pub fn decode(stored: &[u8], now: u64) -> Option<Pending> {
        let json = kv_schema::open(stored, now).ok()?;
        serde_json::from_slice::<Pending>(json)
            .ok()
            .filter(|p| p.expires > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::alice;

    #[test]
    fn user_records_carry_their_retention_and_old_ones_still_read() {
        let r = UserRecord {
            logins: 3,
            app: json!({"plan": "pro"}),
            user: json!({"nick": "al"}),
        };
        let (exp, v) = r.encode(1000);
        assert_eq!(exp, 1000 + RULE_USER_RETENTION_SECS);
        assert_eq!(UserRecord::decode(Some(&v), 1001), r);
        assert_eq!(UserRecord::decode(Some(&v), exp), UserRecord::default());
        let legacy = br#"{"logins":2,"app":[1],"user":{"a":1}}"#;
        let old = UserRecord::decode(Some(legacy), 1001);
        assert_eq!(old.logins, 2);
        assert_eq!(old.app, json!({}), "non-objects become empty objects");
        assert_eq!(old.user, json!({"a": 1}));
        assert_eq!(UserRecord::decode(None, 1), UserRecord::default());
        assert_eq!(UserRecord::decode(Some(b"junk"), 1), UserRecord::default());
    }

    #[test]
    fn pending_sign_ins_expire_with_their_link() {
        let p = Pending {
            tenant: "acme".into(),
            index: 1,
            rule: "profile".into(),
            identity: alice(),
            login: crate::testing::login_state(),
            id_token: "h.p.s".into(),
            progress: Progress::default(),
            base: Event::default(),
            expires: 2000,
        };
        let v = p.encode();
        assert!(v.starts_with(b"2000 {"));
        let back = Pending::decode(&v, 1999).unwrap();
        assert_eq!((back.index, back.rule.as_str()), (1, "profile"));
        assert!(Pending::decode(&v, 2000).is_none());
        let legacy = serde_json::to_vec(&p).unwrap();
        assert!(Pending::decode(&legacy, 1).is_none());
    }
}
