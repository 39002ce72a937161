//! Fixed inputs for unit tests.

use std::collections::HashMap;

use crate::settings::Settings;

/// 32 bytes of 0x01 and 0x02, base64url.
pub const KEY_A: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE";
pub const KEY_B: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI";
/// An Ed25519 seed and a P-256 scalar (both 32 bytes of 0x07).
pub const SEED: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc";

/// Deterministic, never-repeating bytes, so tests are reproducible.
pub fn counter_rng() -> impl FnMut(&mut [u8]) {
    let mut n: u64 = 0;
    move |buf: &mut [u8]| {
        for b in buf.iter_mut() {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (n >> 56) as u8;
        }
    }
}

pub fn test_variables() -> HashMap<String, String> {
    [
        ("public_url", "http://127.0.0.1:3000"),
        ("origin_url", "http://127.0.0.1:3001"),
        ("oidc_issuer", "http://127.0.0.2:9400"),
        ("oidc_client_id", "edgeauth"),
        ("oidc_client_secret", "edgeauth-dev-secret"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([
        ("session_keys".to_owned(), format!("s1:{KEY_A}")),
        ("assertion_keys".to_owned(), format!("a1:ed25519:{SEED}")),
    ])
    .collect()
}

/// Request headers with one `Cookie` header.
pub fn cookie_header(value: &str) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::COOKIE,
        http::HeaderValue::from_str(value).expect("test cookie is a valid header value"),
    );
    h
}

pub fn settings_with(overrides: &[(&str, &str)]) -> Settings {
    let mut vars = test_variables();
    for (k, v) in overrides {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Settings::from_variables(|n| vars.get(n).cloned()).expect("test settings are valid")
}

pub fn provider_meta() -> crate::provider::ProviderMetadata {
    let e = |raw: &str| crate::provider::Endpoint::parse("test", raw).expect("test endpoint");
    crate::provider::ProviderMetadata {
        issuer: "http://127.0.0.2:9400".into(),
        authorization_endpoint: e("http://127.0.0.2:9400/auth?tenant=x"),
        token_endpoint: e("http://127.0.0.2:9400/token"),
        jwks_uri: e("http://127.0.0.2:9400/jwks"),
        end_session_endpoint: Some(e("http://127.0.0.2:9400/session/end")),
        authorization_response_iss_parameter_supported: false,
    }
}

/// The dev IdP's alice, as the gateway maps her.
pub fn alice() -> crate::identity::Identity {
    crate::identity::Identity {
        sub: "alice".into(),
        email: Some("alice@example.com".into()),
        email_verified: true,
        name: Some("Alice".into()),
        groups: vec!["admins".into(), "devs".into()],
        ..Default::default()
    }
}
