//! Authenticated encryption of the gateway's cookies (XChaCha20-Poly1305).
//!
//! A sealed value is `<key id>.<base64url(nonce || ciphertext)>`. The key id
//! lets several keys be accepted at once (rotation); the first key of the ring
//! seals. The purpose (session, login, logout) is bound as associated data, so
//! a value sealed for one use is rejected for every other.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::encoding::{b64url, b64url_decode};

/// Longest sealed value accepted: browsers cap a cookie near 4 KiB, so anything
/// longer is hostile and is refused before decoding or allocating for it.
pub const MAX_SEALED_LEN: usize = 4000;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const MAX_KEYS: usize = 8;
/// Prefix of [`KeyRing::derive`]'s labels; no sealed value is ever MACed
/// with the raw secret, so derived keys cannot collide with sealing.
const DERIVE_PREFIX: &[u8] = b"edgeauth/v1/derive\0";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Session,
    Login,
    Logout,
    /// A sign-in paused by a tenant rule's redirect (see `edgeauth-rules`).
    RuleResume,
    /// An offer to link a new identity to a profile by proof (`crate::linking`).
    LinkOffer,
    /// A session's refresh and access tokens, kept in KV (`crate::refresh`).
    SessionGrant,
}

impl Purpose {
    fn aad(self) -> &'static [u8] {
        match self {
            Purpose::Session => b"edgeauth/v1/session",
            Purpose::Login => b"edgeauth/v1/login",
            Purpose::Logout => b"edgeauth/v1/logout",
            Purpose::RuleResume => b"edgeauth/v1/rule-resume",
            Purpose::LinkOffer => b"edgeauth/v1/link-offer",
            Purpose::SessionGrant => b"edgeauth/v1/session-grant",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    TooLong,
    Malformed,
    UnknownKey,
    /// Tampered, truncated, sealed for another purpose, or under another key
    /// with the same id.
    Forged,
}

struct SealKey {
    id: String,
    cipher: XChaCha20Poly1305,
    /// The raw secret, only for [`KeyRing::derive`].
    secret: [u8; 32],
}

pub struct KeyRing {
    keys: Vec<SealKey>,
    /// Added to the associated data: values sealed for one scope (tenant)
    /// never open in another, though the keys are the same.
    scope: String,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        write!(f, "KeyRing{ids:?}")
    }
}

pub(crate) fn valid_key_id(id: &str) -> bool {
    (1..=16).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl KeyRing {
    /// Parses `kid:base64url(32 bytes)[,kid:...]`; the first key seals.
    pub fn parse(spec: &str) -> Result<KeyRing, String> {
        let mut keys: Vec<SealKey> = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, secret) = entry
                .split_once(':')
                .ok_or("each key must look like `kid:base64url-of-32-random-bytes`")?;
            if !valid_key_id(id) {
                return Err(format!(
                    "key id `{id}` must be 1-16 characters of A-Z a-z 0-9 - _"
                ));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(format!("key id `{id}` appears twice"));
            }
            let bytes = b64url_decode(secret.trim())
                .filter(|b| b.len() == 32)
                .ok_or_else(|| {
                    format!("key `{id}` must be exactly 32 bytes, base64url without padding")
                })?;
            let mut secret = [0u8; 32];
            secret.copy_from_slice(&bytes);
            keys.push(SealKey {
                id: id.to_owned(),
                cipher: XChaCha20Poly1305::new_from_slice(&bytes).map_err(|e| e.to_string())?,
                secret,
            });
        }
        if keys.is_empty() {
            return Err("at least one key is required (`kid:base64url-of-32-random-bytes`)".into());
        }
        if keys.len() > MAX_KEYS {
            return Err(format!("at most {MAX_KEYS} keys are accepted"));
        }
        Ok(KeyRing {
            keys,
            scope: String::new(),
        })
    }

    /// One key per key of the ring, in the ring's order (the first is the
    /// current one), for another use of the gateway's secret than sealing:
    /// HMAC-SHA-256 keyed by the secret over a fixed prefix and `label`, so
    /// each label gets keys independent of the sealing keys and of every
    /// other label's. Keeps the ring's key ids, so rotating `session_keys`
    /// rotates these too. The scope is not mixed in: bind it yourself.
    pub fn derive(&self, label: &str) -> Vec<(String, [u8; 32])> {
        let mut msg = DERIVE_PREFIX.to_vec();
        msg.extend_from_slice(label.as_bytes());
        self.keys
            .iter()
            .map(|k| (k.id.clone(), hmac_sha256::HMAC::mac(&msg, k.secret)))
            .collect()
    }

    /// Seals and opens for `scope` only from now on.
    pub fn bind_to(&mut self, scope: &str) {
        self.scope = scope.to_owned();
    }

    fn aad(&self, purpose: Purpose) -> Vec<u8> {
        let mut aad = purpose.aad().to_vec();
        if !self.scope.is_empty() {
            // A separator no purpose contains, so scopes cannot run into it.
            aad.push(0);
            aad.extend_from_slice(self.scope.as_bytes());
        }
        aad
    }

    pub fn seal(&self, purpose: Purpose, plaintext: &[u8], rng: crate::Rng<'_>) -> String {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        rng(&mut nonce);
        let ciphertext = key
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &self.aad(purpose),
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        format!("{}.{}", key.id, b64url(&blob))
    }

    pub fn open(&self, purpose: Purpose, sealed: &str) -> Result<Vec<u8>, OpenError> {
        if sealed.len() > MAX_SEALED_LEN {
            return Err(OpenError::TooLong);
        }
        let (id, body) = sealed.split_once('.').ok_or(OpenError::Malformed)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(OpenError::UnknownKey)?;
        let blob = b64url_decode(body).ok_or(OpenError::Malformed)?;
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(OpenError::Malformed);
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        key.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &self.aad(purpose),
                },
            )
            .map_err(|_| OpenError::Forged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{KEY_A, KEY_B, counter_rng};

    fn ring(spec: &str) -> KeyRing {
        KeyRing::parse(spec).unwrap()
    }

    #[test]
    fn round_trip_and_rotation() {
        let mut rng = counter_rng();
        let old = ring(&format!("old:{KEY_A}"));
        let sealed = old.seal(Purpose::Session, b"hello", &mut rng);
        assert!(sealed.starts_with("old."));
        // After rotation the new key seals and the old one still opens.
        let rotated = ring(&format!("new:{KEY_B},old:{KEY_A}"));
        assert_eq!(rotated.open(Purpose::Session, &sealed).unwrap(), b"hello");
        assert!(
            rotated
                .seal(Purpose::Session, b"x", &mut rng)
                .starts_with("new.")
        );
        // Retiring the old key logs those sessions out.
        let retired = ring(&format!("new:{KEY_B}"));
        assert_eq!(
            retired.open(Purpose::Session, &sealed),
            Err(OpenError::UnknownKey)
        );
    }

    #[test]
    fn purpose_is_bound() {
        let mut rng = counter_rng();
        let r = ring(&format!("k:{KEY_A}"));
        let login = r.seal(Purpose::Login, b"state", &mut rng);
        assert_eq!(r.open(Purpose::Session, &login), Err(OpenError::Forged));
    }

    #[test]
    fn tampering_in_every_position_is_detected() {
        let mut rng = counter_rng();
        let r = ring(&format!("k:{KEY_A}"));
        let sealed = r.seal(Purpose::Session, b"some session payload", &mut rng);
        let bytes = sealed.as_bytes();
        for i in 2..bytes.len() {
            let mut t = bytes.to_vec();
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(t).unwrap();
            assert!(
                r.open(Purpose::Session, &t).is_err(),
                "flip at {i} accepted"
            );
        }
        for cut in 0..sealed.len() {
            assert!(
                r.open(Purpose::Session, &sealed[..cut]).is_err(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn same_id_other_secret_is_forged() {
        let mut rng = counter_rng();
        let sealed = ring(&format!("k:{KEY_A}")).seal(Purpose::Session, b"x", &mut rng);
        assert_eq!(
            ring(&format!("k:{KEY_B}")).open(Purpose::Session, &sealed),
            Err(OpenError::Forged)
        );
    }

    #[test]
    fn oversized_is_refused_before_decoding() {
        let r = ring(&format!("k:{KEY_A}"));
        let huge = format!("k.{}", "A".repeat(1 << 20));
        assert_eq!(r.open(Purpose::Session, &huge), Err(OpenError::TooLong));
    }

    #[test]
    fn derived_keys_follow_the_ring_and_differ_per_label() {
        let ring2 = ring(&format!("new:{KEY_B},old:{KEY_A}"));
        let a = ring2.derive("rule-artifact");
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].0.as_str(), a[1].0.as_str()), ("new", "old"));
        assert_ne!(a[0].1, a[1].1);
        // Same secret, same label: same key, whatever the other keys.
        assert_eq!(
            ring(&format!("old:{KEY_A}")).derive("rule-artifact")[0],
            a[1]
        );
        // Another label: another key.
        assert_ne!(ring2.derive("other")[0].1, a[0].1);
        assert_ne!(ring2.derive("rule-artifact\0")[0].1, a[0].1);
    }

    #[test]
    fn parse_errors() {
        assert!(KeyRing::parse("").is_err());
        assert!(KeyRing::parse("nokey").is_err());
        assert!(KeyRing::parse("k:AAAA").is_err());
        assert!(KeyRing::parse(&format!("k:{KEY_A},k:{KEY_B}")).is_err());
        assert!(KeyRing::parse(&format!("bad id:{KEY_A}")).is_err());
    }
}
