//! `backchannel::token_of` and `backchannel::verify` on arbitrary input: an
//! arbitrary form body; an arbitrary token against a fixed JWKS, which must
//! never verify; and tokens genuinely signed by the fixed Ed25519 key over
//! arbitrary header and claims bytes, where an accepted logout token must
//! really carry the issuer, the audience, a recent `iat`, a `jti`, the
//! back-channel logout event, no `nonce`, and a `sub` or `sid`.
#![no_main]

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use edgeauth_core::backchannel::{self, EVENT, MAX_AGE_SECS};
use edgeauth_core::id_token::Jwks;
use edgeauth_core_fuzz::{NOW, b64url};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const ISSUER: &str = "https://idp.example";
const CLIENT: &str = "edgeauth";

static ED: LazyLock<ed25519_compact::KeyPair> =
    LazyLock::new(|| ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new([9; 32])));

static JWKS: LazyLock<Jwks> = LazyLock::new(|| {
    let doc = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64url(ED.pk.as_ref())}]});
    Jwks::parse(doc.to_string().as_bytes()).unwrap()
});

#[derive(Arbitrary, Debug)]
enum Input {
    Form(Vec<u8>),
    Token(String),
    Signed {
        header: Option<Vec<u8>>,
        claims: Vec<u8>,
    },
}

fn check_accepted(claims_bytes: &[u8], t: &backchannel::LogoutToken) {
    let claims: Value = serde_json::from_slice(claims_bytes).expect("accepted claims are JSON");
    assert_eq!(claims["iss"], ISSUER);
    match &claims["aud"] {
        Value::String(a) => assert_eq!(a, CLIENT),
        Value::Array(a) => assert!(a.iter().any(|x| x == CLIENT)),
        other => panic!("accepted aud {other}"),
    }
    assert!(claims["events"][EVENT].is_object(), "no logout event");
    assert!(claims.get("nonce").is_none(), "a nonce passed");
    assert_eq!(claims["jti"].as_str(), Some(t.jti.as_str()));
    assert!(
        t.iat <= NOW + 60 && t.iat + MAX_AGE_SECS >= NOW,
        "iat {}",
        t.iat
    );
    assert!(t.sub.is_some() || t.sid.is_some());
}

fuzz_target!(|input: Input| {
    match input {
        Input::Form(body) => {
            if let Ok(token) = backchannel::token_of(&body) {
                assert!(!token.is_empty());
                assert!(
                    backchannel::verify(&JWKS, &token, ISSUER, CLIENT, NOW).is_err(),
                    "a token nobody signed verified"
                );
            }
        }
        Input::Token(token) => {
            assert!(
                backchannel::verify(&JWKS, &token, ISSUER, CLIENT, NOW).is_err(),
                "forged token verified"
            );
        }
        Input::Signed { header, claims } => {
            let header = header.unwrap_or_else(|| br#"{"alg":"EdDSA","kid":"ed"}"#.to_vec());
            let signed = format!("{}.{}", b64url(&header), b64url(&claims));
            let sig = ED.sk.sign(signed.as_bytes(), None);
            let token = format!("{signed}.{}", b64url(sig.as_ref()));
            if let Ok(t) = backchannel::verify(&JWKS, &token, ISSUER, CLIENT, NOW) {
                check_accepted(&claims, &t);
            }
        }
    }
});
