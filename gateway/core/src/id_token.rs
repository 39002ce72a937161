//! ID token verification against the provider's JWKS (jwt-simple underneath).
//!
//! The algorithm is taken from the key, never trusted from the token alone:
//! only RS256, ES256 and EdDSA, and the JWK's type must match the header's
//! `alg`, which closes `alg: none` and RSA-public-key-as-HMAC-secret confusion.

use jwt_simple::prelude::*;
use serde_json::{Map, Value};

use crate::encoding::b64url_decode;
use crate::provider::{ProviderError, check_document};

pub const MAX_TOKEN_LEN: usize = 16 * 1024;
const MAX_KEYS: usize = 32;
pub const CLOCK_SKEW_SECS: u64 = 60;

enum VerifyKey {
    Rs256(Box<RS256PublicKey>),
    Es256(ES256PublicKey),
    EdDsa(Ed25519PublicKey),
}

impl VerifyKey {
    fn alg(&self) -> &'static str {
        match self {
            VerifyKey::Rs256(_) => "RS256",
            VerifyKey::Es256(_) => "ES256",
            VerifyKey::EdDsa(_) => "EdDSA",
        }
    }
}

struct PublicJwk {
    kid: Option<String>,
    key: VerifyKey,
}

/// The usable signature keys of a JWKS; keys we cannot use are skipped.
pub struct Jwks {
    keys: Vec<PublicJwk>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdTokenError {
    Malformed,
    UnsupportedAlg(String),
    /// No key with this `kid`: the JWKS may be stale, refetch once.
    UnknownKey,
    Invalid(String),
    MissingClaim(&'static str),
    AzpMismatch,
    /// A step-up was asked and the token does not prove it happened.
    StepUp(crate::login::StepUpError),
}

impl std::fmt::Display for IdTokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdTokenError::Malformed => write!(f, "the ID token is not a well-formed JWT"),
            IdTokenError::UnsupportedAlg(a) => {
                write!(
                    f,
                    "the ID token uses algorithm `{a}`, which is not accepted"
                )
            }
            IdTokenError::UnknownKey => {
                write!(
                    f,
                    "the ID token was signed with a key the provider does not publish"
                )
            }
            IdTokenError::Invalid(e) => write!(f, "the ID token is invalid ({e})"),
            IdTokenError::MissingClaim(c) => write!(f, "the ID token has no `{c}` claim"),
            IdTokenError::AzpMismatch => {
                write!(f, "the ID token was issued to another client (azp)")
            }
            IdTokenError::StepUp(e) => write!(f, "a fresh sign-in was required, but {e}"),
        }
    }
}

fn jwk_bytes(jwk: &Value, field: &str) -> Option<Vec<u8>> {
    b64url_decode(jwk.get(field)?.as_str()?)
}

fn parse_key(jwk: &Value) -> Option<PublicJwk> {
    if jwk.get("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
    let declared_alg = jwk.get("alg").and_then(Value::as_str);
    let key = match (
        jwk.get("kty")?.as_str()?,
        jwk.get("crv").and_then(Value::as_str),
    ) {
        ("RSA", _) => {
            let n = jwk_bytes(jwk, "n")?;
            let e = jwk_bytes(jwk, "e")?;
            // Refuse weak keys outright rather than trusting the IdP to.
            if n.len() < 256 {
                return None;
            }
            VerifyKey::Rs256(Box::new(RS256PublicKey::from_components(&n, &e).ok()?))
        }
        ("EC", Some("P-256")) => {
            let (x, y) = (jwk_bytes(jwk, "x")?, jwk_bytes(jwk, "y")?);
            if x.len() != 32 || y.len() != 32 {
                return None;
            }
            let mut point = vec![0x04];
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            VerifyKey::Es256(ES256PublicKey::from_bytes(&point).ok()?)
        }
        ("OKP", Some("Ed25519")) => {
            VerifyKey::EdDsa(Ed25519PublicKey::from_bytes(&jwk_bytes(jwk, "x")?).ok()?)
        }
        _ => return None,
    };
    if declared_alg.is_some_and(|a| a != key.alg()) {
        return None;
    }
    Some(PublicJwk { kid, key })
}

/// What the ID token must say, from the login transaction.
pub struct Expectations<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub now: u64,
}

impl Jwks {
    pub fn parse(body: &[u8]) -> Result<Jwks, ProviderError> {
        check_document(200, body)?;
        let doc: Value =
            serde_json::from_slice(body).map_err(|e| ProviderError::NotJson(e.to_string()))?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| ProviderError::NotJson("no `keys` array".into()))?;
        Ok(Jwks {
            keys: keys.iter().take(MAX_KEYS).filter_map(parse_key).collect(),
        })
    }

    fn find(&self, alg: &str, kid: Option<&str>) -> Result<&VerifyKey, IdTokenError> {
        if !matches!(alg, "RS256" | "ES256" | "EdDSA") {
            return Err(IdTokenError::UnsupportedAlg(alg.chars().take(16).collect()));
        }
        let mut candidates = self.keys.iter().filter(|k| k.key.alg() == alg);
        match kid {
            Some(kid) => candidates
                .find(|k| k.kid.as_deref() == Some(kid))
                .map(|k| &k.key)
                .ok_or(IdTokenError::UnknownKey),
            // Without a kid, only an unambiguous key is acceptable.
            None => match (candidates.next(), candidates.next()) {
                (Some(k), None) => Ok(&k.key),
                _ => Err(IdTokenError::UnknownKey),
            },
        }
    }

    /// Verifies signature and the options' time/issuer/audience rules.
    pub fn verify_any(
        &self,
        token: &str,
        options: VerificationOptions,
    ) -> Result<JWTClaims<Value>, IdTokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(IdTokenError::Malformed);
        }
        let meta = Token::decode_metadata(token).map_err(|_| IdTokenError::Malformed)?;
        let key = self.find(meta.algorithm(), meta.key_id())?;
        let options = Some(options);
        let verified = match key {
            VerifyKey::Rs256(k) => k.verify_token::<Value>(token, options),
            VerifyKey::Es256(k) => k.verify_token::<Value>(token, options),
            VerifyKey::EdDsa(k) => k.verify_token::<Value>(token, options),
        };
        verified.map_err(|e| IdTokenError::Invalid(e.to_string()))
    }

    /// Full OIDC Core §3.1.3.7 validation; returns every claim as JSON.
    pub fn verify_id_token(
        &self,
        token: &str,
        expect: &Expectations<'_>,
    ) -> Result<Map<String, Value>, IdTokenError> {
        let options = VerificationOptions {
            allowed_issuers: Some(HashSet::from([expect.issuer.to_owned()])),
            allowed_audiences: Some(HashSet::from([expect.client_id.to_owned()])),
            required_nonce: Some(expect.nonce.to_owned()),
            time_tolerance: Some(Duration::from_secs(CLOCK_SKEW_SECS)),
            artificial_time: Some(UnixTimeStamp::from_secs(expect.now)),
            max_token_length: Some(MAX_TOKEN_LEN),
            ..Default::default()
        };
        let claims = self.verify_any(token, options)?;
        if claims.expires_at.is_none() {
            return Err(IdTokenError::MissingClaim("exp"));
        }
        if claims.issued_at.is_none() {
            return Err(IdTokenError::MissingClaim("iat"));
        }
        let sub = claims
            .subject
            .clone()
            .ok_or(IdTokenError::MissingClaim("sub"))?;
        let mut map = match claims.custom {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        let audiences = claims
            .audiences
            .map(|a| a.into_set().len())
            .unwrap_or_default();
        match map.get("azp") {
            Some(Value::String(azp)) if azp != expect.client_id => {
                return Err(IdTokenError::AzpMismatch);
            }
            Some(Value::String(_)) => {}
            Some(_) => return Err(IdTokenError::AzpMismatch),
            None if audiences > 1 => return Err(IdTokenError::AzpMismatch),
            None => {}
        }
        map.insert("sub".into(), Value::String(sub));
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::b64url;
    use serde_json::json;

    const NOW: u64 = 1_800_000_000;

    fn ed_key(kid: &str) -> (Ed25519KeyPair, Value) {
        let kp = Ed25519KeyPair::generate().with_key_id(kid);
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
                         "x": b64url(&kp.public_key().to_bytes())});
        (kp, jwk)
    }

    fn es_key(kid: &str) -> (ES256KeyPair, Value) {
        let kp = ES256KeyPair::generate().with_key_id(kid);
        let p = kp.public_key().public_key().to_bytes_uncompressed();
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256",
                         "x": b64url(&p[1..33]), "y": b64url(&p[33..])});
        (kp, jwk)
    }

    fn rsa_key(kid: &str) -> (RS256KeyPair, Value) {
        let kp = RS256KeyPair::generate(2048).unwrap().with_key_id(kid);
        let c = kp.public_key().to_components();
        let jwk = json!({"kty": "RSA", "kid": kid, "n": b64url(&c.n), "e": b64url(&c.e)});
        (kp, jwk)
    }

    fn jwks(keys: &[&Value]) -> Jwks {
        Jwks::parse(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    fn claims() -> JWTClaims<Value> {
        let mut c = Claims::with_custom_claims(
            json!({"email": "alice@example.com", "email_verified": true}),
            Duration::from_secs(300),
        )
        .with_issuer("https://idp.example")
        .with_audience("edgeauth")
        .with_subject("alice")
        .with_nonce("n-123");
        c.issued_at = Some(UnixTimeStamp::from_secs(NOW));
        c.expires_at = Some(UnixTimeStamp::from_secs(NOW + 300));
        c
    }

    fn expect(now: u64) -> Expectations<'static> {
        Expectations {
            issuer: "https://idp.example",
            client_id: "edgeauth",
            nonce: "n-123",
            now,
        }
    }

    #[test]
    fn accepts_each_supported_algorithm() {
        let (ed, ed_jwk) = ed_key("ed");
        let (es, es_jwk) = es_key("es");
        let (rs, rs_jwk) = rsa_key("rs");
        let set = jwks(&[&ed_jwk, &es_jwk, &rs_jwk]);
        for token in [
            ed.sign(claims()).unwrap(),
            es.sign(claims()).unwrap(),
            rs.sign(claims()).unwrap(),
        ] {
            let m = set.verify_id_token(&token, &expect(NOW + 1)).unwrap();
            assert_eq!(m["sub"], "alice");
            assert_eq!(m["email"], "alice@example.com");
        }
    }

    fn reject(token: &str, set: &Jwks, expect: Expectations<'_>) -> IdTokenError {
        set.verify_id_token(token, &expect).unwrap_err()
    }

    #[test]
    fn rejects_wrong_claims() {
        let (ed, jwk) = ed_key("ed");
        let set = jwks(&[&jwk]);
        let sign = |c: JWTClaims<Value>| ed.sign(c).unwrap();
        let cases: Vec<(&str, JWTClaims<Value>)> = vec![
            ("iss", claims().with_issuer("https://evil.example")),
            ("aud", claims().with_audience("other-client")),
            ("nonce", claims().with_nonce("other")),
            ("expired", {
                let mut c = claims();
                c.expires_at = Some(UnixTimeStamp::from_secs(NOW - 120));
                c
            }),
            ("future iat", {
                let mut c = claims();
                c.issued_at = Some(UnixTimeStamp::from_secs(NOW + 3600));
                c
            }),
            ("future nbf", {
                let mut c = claims();
                c.invalid_before = Some(UnixTimeStamp::from_secs(NOW + 3600));
                c
            }),
            ("azp", {
                let mut c = claims();
                c.custom["azp"] = json!("other-client");
                c
            }),
            (
                "multi-aud without azp",
                claims().with_audiences(HashSet::from(["edgeauth", "x"])),
            ),
            ("no nonce", {
                let mut c = claims();
                c.nonce = None;
                c
            }),
            ("no exp", {
                let mut c = claims();
                c.expires_at = None;
                c
            }),
        ];
        for (what, c) in cases {
            assert!(
                set.verify_id_token(&sign(c), &expect(NOW + 1)).is_err(),
                "{what} accepted"
            );
        }
        // Unknown kid asks for a refetch.
        let (other, _) = ed_key("rotated");
        assert_eq!(
            reject(&other.sign(claims()).unwrap(), &set, expect(NOW)),
            IdTokenError::UnknownKey
        );
    }

    #[test]
    fn rejects_alg_none_and_hmac_confusion() {
        let (rs, rs_jwk) = rsa_key("rs");
        let set = jwks(&[&rs_jwk]);
        let body = b64url(
            json!({"iss": "https://idp.example", "aud": "edgeauth", "sub": "alice",
                   "nonce": "n-123", "iat": NOW, "exp": NOW + 300})
            .to_string()
            .as_bytes(),
        );
        let none = format!("{}.{body}.", b64url(br#"{"alg":"none","kid":"rs"}"#));
        assert!(matches!(
            reject(&none, &set, expect(NOW)),
            IdTokenError::UnsupportedAlg(_)
        ));
        // HS256 keyed with the RSA public key's DER, the classic confusion.
        let der = rs.public_key().to_der().unwrap();
        let hs = HS256Key::from_bytes(&der).with_key_id("rs");
        let forged = hs.authenticate(claims()).unwrap();
        assert!(matches!(
            reject(&forged, &set, expect(NOW)),
            IdTokenError::UnsupportedAlg(_)
        ));
        // ES256 header pointing at an RSA kid.
        let (es, _) = es_key("rs");
        assert_eq!(
            reject(&es.sign(claims()).unwrap(), &set, expect(NOW)),
            IdTokenError::UnknownKey
        );
        // Garbage.
        for junk in ["", "a.b", "a.b.c", &"x".repeat(MAX_TOKEN_LEN + 1)] {
            assert!(set.verify_id_token(junk, &expect(NOW)).is_err());
        }
    }

    #[test]
    fn tampered_signature_fails() {
        let (ed, jwk) = ed_key("ed");
        let set = jwks(&[&jwk]);
        let token = ed.sign(claims()).unwrap();
        let (head, sig) = token.rsplit_once('.').unwrap();
        let mut sig = sig.as_bytes().to_vec();
        sig[3] = if sig[3] == b'A' { b'B' } else { b'A' };
        let tampered = format!("{head}.{}", String::from_utf8(sig).unwrap());
        assert!(matches!(
            reject(&tampered, &set, expect(NOW)),
            IdTokenError::Invalid(_)
        ));
    }

    #[test]
    fn skips_unusable_keys() {
        let set = Jwks::parse(
            json!({"keys": [
                {"kty": "RSA", "n": "AQAB", "e": "AQAB"},
                {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
                {"kty": "oct", "k": "c2VjcmV0"},
                {"kty": "OKP", "crv": "Ed25519", "use": "enc", "x": b64url(&[9; 32])}
            ]})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert!(set.keys.is_empty());
        assert!(Jwks::parse(b"{\"nokeys\": 1}").is_err());
        assert!(Jwks::parse(b"<html>").is_err());
    }
}
