//! What the gateway keeps in KV for rules between requests: a paused
//! sign-in ([`Pending`]), in the envelopes of [`edgeauth_core::kv_schema`].
//! What rules keep about a person lives in their profile
//! (`edgeauth_core::profiles`).

use edgeauth_core::identity::Identity;
use edgeauth_core::kv_schema;
use edgeauth_core::login::LoginState;
use serde::{Deserialize, Serialize};

use crate::chain::Progress;
use crate::event::Event;

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
    /// The session grant stored at the callback; absent in sign-ins paused
    /// before grants existed.
    #[serde(default)]
    pub session: Option<edgeauth_core::refresh::Handle>,
    pub progress: Progress,
    pub base: Event,
    pub expires: u64,
    /// The deployment the sign-in started with; it resumes with the same
    /// versions. Absent in sign-ins paused before deployments existed
    /// (they resume with the active one).
    #[serde(default)]
    pub pinned: Option<crate::deploy::Pinned>,
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
    fn pending_sign_ins_expire_with_their_link() {
        let p = Pending {
            tenant: "acme".into(),
            index: 1,
            rule: "profile".into(),
            identity: alice(),
            login: crate::testing::login_state(),
            id_token: "h.p.s".into(),
            session: None,
            progress: Progress::default(),
            base: Event::default(),
            expires: 2000,
            pinned: None,
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
