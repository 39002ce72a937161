//! The signed identity assertion sent to the origin, and the JWKS that lets the
//! origin verify it. Keys are EdDSA (Ed25519) or ES256; the first key signs and
//! every key is published, so keys rotate without rejecting in-flight requests.

use edgeauth_contract::names::claim_name_problem;
use jwt_simple::prelude::*;
use serde_json::json;

use crate::encoding::{b64url, b64url_decode};
use crate::identity::Identity;
use crate::seal::valid_key_id;

/// Short on purpose: the assertion is minted per request, so it only has to
/// outlive the hop to the origin.
pub const ASSERTION_LIFETIME_SECS: u64 = 60;
const MAX_KEYS: usize = 8;

/// Settings are parsed on every request (each one is a fresh instance), so a
/// key is only checked here; the scalar multiplication that derives its public
/// half runs when a key is used, once per signature, not at every parse.
enum Signer {
    /// The 32-byte seed, never all zeros.
    Ed25519([u8; 32]),
    /// A P-256 scalar in [1, n).
    Es256([u8; 32]),
}

/// The order of the P-256 group, big-endian.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

impl Signer {
    fn es256(scalar: &[u8; 32], id: &str) -> ES256KeyPair {
        ES256KeyPair::from_bytes(scalar)
            .expect("a scalar in [1, n) is a valid P-256 key")
            .with_key_id(id)
    }
}

struct SigningKey {
    id: String,
    signer: Signer,
}

pub struct AssertionKeys {
    keys: Vec<SigningKey>,
}

impl std::fmt::Debug for AssertionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|k| k.id.as_str()).collect();
        write!(f, "AssertionKeys{ids:?}")
    }
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    email: Option<&'a str>,
    email_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    groups: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    picture: Option<&'a str>,
    /// The connection the person signed in with, and the subject as that
    /// provider knows it (`sub` is namespaced by connection).
    connection: &'a str,
    idp_sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile_id: Option<&'a str>,
    /// Claims added by tenant rules (never one of the names above).
    #[serde(flatten)]
    extra: serde_json::Map<String, serde_json::Value>,
}

impl AssertionKeys {
    /// Parses `kid:ed25519:<base64url 32-byte seed>` and
    /// `kid:es256:<base64url 32-byte scalar>`, comma-separated.
    pub fn parse(spec: &str) -> Result<AssertionKeys, String> {
        let mut keys: Vec<SigningKey> = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let mut parts = entry.splitn(3, ':');
            let (Some(id), Some(alg), Some(secret)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err("each key must look like `kid:ed25519:<base64url seed>` or `kid:es256:<base64url scalar>`".into());
            };
            if !valid_key_id(id) {
                return Err(format!(
                    "key id `{id}` must be 1-16 characters of A-Z a-z 0-9 - _"
                ));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(format!("key id `{id}` appears twice"));
            }
            let secret = b64url_decode(secret.trim())
                .filter(|b| b.len() == 32)
                .ok_or_else(|| format!("key `{id}` must be 32 bytes, base64url without padding"))?;
            let secret: [u8; 32] = secret.try_into().expect("length checked");
            let signer = match alg {
                "ed25519" if secret == [0u8; 32] => {
                    return Err(format!("key `{id}`: an all-zero seed is not a key"));
                }
                "ed25519" => Signer::Ed25519(secret),
                // Big-endian comparison: 0 < scalar < n.
                "es256" if secret == [0u8; 32] || secret >= P256_ORDER => {
                    return Err(format!("key `{id}` is not a valid P-256 scalar"));
                }
                "es256" => Signer::Es256(secret),
                other => {
                    return Err(format!(
                        "key `{id}`: algorithm `{other}` is not supported (use ed25519 or es256)"
                    ));
                }
            };
            keys.push(SigningKey {
                id: id.to_owned(),
                signer,
            });
        }
        if keys.is_empty() {
            return Err("at least one signing key is required".into());
        }
        if keys.len() > MAX_KEYS {
            return Err(format!("at most {MAX_KEYS} keys are accepted"));
        }
        Ok(AssertionKeys { keys })
    }

    /// A JWT for the origin: iss = the gateway, aud = the app, 60 s lifetime.
    pub fn sign(&self, identity: &Identity, issuer: &str, audience: &str, now: u64) -> String {
        self.sign_with_claims(identity, &serde_json::Map::new(), issuer, audience, now)
    }

    /// [`Self::sign`] plus claims added by tenant rules.
    pub fn sign_with_claims(
        &self,
        identity: &Identity,
        extra: &serde_json::Map<String, serde_json::Value>,
        issuer: &str,
        audience: &str,
        now: u64,
    ) -> String {
        let custom = AssertionClaims {
            email: identity.email.as_deref(),
            email_verified: identity.email_verified,
            name: identity.name.as_deref(),
            groups: &identity.groups,
            picture: identity.picture.as_deref(),
            connection: identity.connection_id(),
            idp_sub: identity.idp_sub(),
            profile_id: identity.profile_id.as_deref(),
            extra: extra
                .iter()
                // The same check rules' commands pass (one definition of the
                // reserved names): a rule's claim never replaces the gateway's.
                .filter(|(k, _)| claim_name_problem(k).is_none())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let mut claims =
            Claims::with_custom_claims(custom, Duration::from_secs(ASSERTION_LIFETIME_SECS))
                .with_issuer(issuer)
                .with_audience(audience)
                .with_subject(&identity.sub);
        claims.issued_at = Some(UnixTimeStamp::from_secs(now));
        claims.invalid_before = Some(UnixTimeStamp::from_secs(now));
        claims.expires_at = Some(UnixTimeStamp::from_secs(now + ASSERTION_LIFETIME_SECS));
        let key = &self.keys[0];
        match &key.signer {
            // ed25519-dalek rather than jwt-simple's ed25519-compact: its
            // 32-bit limbs avoid u128 arithmetic, which wasm32 can only
            // emulate (__multi3); about 40 % less CPU per signature in the
            // component. Deterministic signatures (RFC 8032).
            Signer::Ed25519(seed) => {
                use ed25519_dalek::Signer as _;
                let header = json!({ "alg": "EdDSA", "typ": "JWT", "kid": key.id });
                let payload = serde_json::to_vec(&claims).expect("claims serialize");
                let input = format!(
                    "{}.{}",
                    b64url(header.to_string().as_bytes()),
                    b64url(&payload)
                );
                let signature = ed25519_dalek::SigningKey::from_bytes(seed).sign(input.as_bytes());
                format!("{input}.{}", b64url(&signature.to_bytes()))
            }
            Signer::Es256(scalar) => Signer::es256(scalar, &key.id)
                .sign(claims)
                .expect("signing a serializable claim set with a valid key does not fail"),
        }
    }

    /// Id of the key that signs (the first).
    pub fn signing_kid(&self) -> &str {
        &self.keys[0].id
    }

    /// The public keys as a JWKS document (RFC 7517).
    pub fn jwks_json(&self) -> String {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .map(|k| match &k.signer {
                Signer::Ed25519(seed) => json!({
                    "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                    "kid": k.id,
                    "x": b64url(ed25519_dalek::SigningKey::from_bytes(seed).verifying_key().as_bytes()),
                }),
                Signer::Es256(scalar) => {
                    let pair = Signer::es256(scalar, &k.id);
                    let point = pair.public_key().public_key().to_bytes_uncompressed();
                    json!({
                        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
                        "kid": k.id, "x": b64url(&point[1..33]), "y": b64url(&point[33..65]),
                    })
                }
            })
            .collect();
        json!({ "keys": keys }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{SEED, alice};

    fn verify_with_jwks(
        keys: &AssertionKeys,
        token: &str,
        now: u64,
    ) -> Result<JWTClaims<serde_json::Value>, String> {
        let jwks: serde_json::Value = serde_json::from_str(&keys.jwks_json()).unwrap();
        let doc = crate::id_token::Jwks::parse(jwks.to_string().as_bytes()).unwrap();
        let mut opts = VerificationOptions {
            allowed_issuers: Some(HashSet::from(["https://gw.example".to_owned()])),
            allowed_audiences: Some(HashSet::from(["https://app.example".to_owned()])),
            ..Default::default()
        };
        opts.artificial_time = Some(UnixTimeStamp::from_secs(now));
        opts.time_tolerance = Some(Duration::from_secs(0));
        doc.verify_any(token, opts).map_err(|e| format!("{e:?}"))
    }

    #[test]
    fn ed25519_and_es256_assertions_verify_against_published_jwks() {
        for spec in [format!("e1:ed25519:{SEED}"), format!("p1:es256:{SEED}")] {
            let keys = AssertionKeys::parse(&spec).unwrap();
            let now = 1_800_000_000;
            let token = keys.sign(&alice(), "https://gw.example", "https://app.example", now);
            let claims = verify_with_jwks(&keys, &token, now + 10).unwrap();
            assert_eq!(claims.subject.as_deref(), Some("alice"));
            assert_eq!(claims.custom["email"], "alice@example.com");
            assert_eq!(claims.custom["groups"], json!(["admins", "devs"]));
            // Expired once its 60 s are up.
            assert!(verify_with_jwks(&keys, &token, now + 61).is_err());
        }
    }

    #[test]
    fn jwks_never_contains_private_material() {
        let keys = AssertionKeys::parse(&format!("e1:ed25519:{SEED},p1:es256:{SEED}")).unwrap();
        let jwks: serde_json::Value = serde_json::from_str(&keys.jwks_json()).unwrap();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        for k in jwks["keys"].as_array().unwrap() {
            assert!(k.get("d").is_none(), "private key leaked: {k}");
        }
        assert!(!keys.jwks_json().contains(SEED));
    }

    #[test]
    fn parse_errors() {
        assert!(AssertionKeys::parse("").is_err());
        assert!(AssertionKeys::parse(&format!("k:hs256:{SEED}")).is_err());
        assert!(AssertionKeys::parse("k:ed25519:AAAA").is_err());
        let zero = "A".repeat(43);
        assert!(AssertionKeys::parse(&format!("k:ed25519:{zero}")).is_err());
        assert!(AssertionKeys::parse(&format!("k:es256:{zero}")).is_err());
        // The P-256 group order itself is out of range; n - 1 is the largest key.
        let mut n = P256_ORDER;
        assert!(AssertionKeys::parse(&format!("k:es256:{}", b64url(&n))).is_err());
        n[31] -= 1;
        assert!(AssertionKeys::parse(&format!("k:es256:{}", b64url(&n))).is_ok());
    }
}
