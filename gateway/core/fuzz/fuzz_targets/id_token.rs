//! `id_token::Jwks::parse` and `Jwks::verify_id_token` on arbitrary input:
//! an arbitrary JWKS with an arbitrary token; a fixed JWKS (EdDSA, ES256, RS256)
//! with an arbitrary token, which must never verify; and tokens genuinely signed
//! by the fixed Ed25519 key over arbitrary header and claims bytes, where an
//! accepted token must really carry the expected issuer, audience, nonce,
//! subject and times. Accepted claims are then mapped as the callback does.
#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use edgeauth_core::id_token::{Expectations, Jwks};
use edgeauth_core::identity::Identity;
use edgeauth_core_fuzz::{NOW, b64url};
use jwt_simple::prelude::*;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.example";
const CLIENT: &str = "edgeauth";
const NONCE: &str = "n-123";

static ED: LazyLock<ed25519_compact::KeyPair> =
    LazyLock::new(|| ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([7; 32])));

static JWKS: LazyLock<Jwks> = LazyLock::new(|| {
    let es = ES256KeyPair::from_bytes(&[7; 32]).unwrap();
    let p = es.public_key().public_key().to_bytes_uncompressed();
    // A fixed 2048-bit modulus (generating a key pair takes seconds under ASan);
    // nobody can sign for it, which is all the arbitrary-token modes need.
    let mut n = [0u8; 256];
    edgeauth_core_fuzz::seeded_rng(7)(&mut n);
    n[0] |= 0x80;
    n[255] |= 1;
    let doc = json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64url(ED.pk.as_ref())},
        {"kty": "EC", "crv": "P-256", "kid": "es", "alg": "ES256",
         "x": b64url(&p[1..33]), "y": b64url(&p[33..])},
        {"kty": "RSA", "kid": "rs", "use": "sig", "n": b64url(&n), "e": "AQAB"},
    ]});
    Jwks::parse(doc.to_string().as_bytes()).unwrap()
});

#[derive(Arbitrary, Debug)]
enum Input {
    Raw {
        jwks: Vec<u8>,
        token: String,
    },
    Token(String),
    Signed {
        header: Option<Vec<u8>>,
        claims: Vec<u8>,
    },
}

fn expect() -> Expectations<'static> {
    Expectations {
        issuer: ISSUER,
        client_id: CLIENT,
        nonce: NONCE,
        now: NOW,
    }
}

/// A timestamp claim as a plain number of seconds, when it is one small enough
/// not to wrap in jwt-simple's fixed-point time (which is the IdP's problem).
fn secs(claims: &Value, name: &str) -> Option<u64> {
    claims.get(name)?.as_u64().filter(|s| *s < 1 << 32)
}

fn check_accepted(claims_bytes: &[u8], map: &serde_json::Map<String, Value>) {
    let claims: Value = serde_json::from_slice(claims_bytes).expect("accepted claims are JSON");
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["nonce"], NONCE);
    match &claims["aud"] {
        Value::String(a) => assert_eq!(a, CLIENT),
        Value::Array(a) => {
            assert!(a.iter().any(|x| x == CLIENT));
            if a.iter().any(|x| x != CLIENT) {
                assert_eq!(claims["azp"], CLIENT, "multi-audience token without azp");
            }
        }
        other => panic!("accepted aud {other}"),
    }
    if let Some(azp) = claims.get("azp") {
        assert_eq!(azp, CLIENT);
    }
    assert!(claims["sub"].is_string() && map["sub"] == claims["sub"]);
    assert!(claims["exp"].is_number() && claims["iat"].is_number());
    if let Some(exp) = secs(&claims, "exp") {
        assert!(exp + 60 >= NOW, "expired at {exp}");
    }
    if let Some(iat) = secs(&claims, "iat") {
        assert!(iat <= NOW + 60, "issued in the future at {iat}");
    }
    if let Some(nbf) = secs(&claims, "nbf") {
        assert!(nbf <= NOW + 60, "not valid before {nbf}");
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Raw { jwks, token } => {
            if let Ok(set) = Jwks::parse(&jwks) {
                assert!(
                    set.verify_id_token(&token, &expect()).is_err(),
                    "unsigned token verified"
                );
            }
        }
        Input::Token(token) => {
            assert!(
                JWKS.verify_id_token(&token, &expect()).is_err(),
                "forged token verified"
            );
        }
        Input::Signed { header, claims } => {
            let header = header.unwrap_or_else(|| br#"{"alg":"EdDSA","kid":"ed"}"#.to_vec());
            let signed = format!("{}.{}", b64url(&header), b64url(&claims));
            let sig = ED.sk.sign(signed.as_bytes(), None);
            let token = format!("{signed}.{}", b64url(sig.as_ref()));
            if let Ok(map) = JWKS.verify_id_token(&token, &expect()) {
                check_accepted(&claims, &map);
                if let Ok(id) = Identity::from_claims(&map) {
                    assert_eq!(Value::String(id.sub), map["sub"].as_str().unwrap().trim());
                }
            }
        }
    }
});
