//! Shared fixtures for the fuzz targets: one valid configuration, fixed keys and
//! a deterministic RNG, so every crash reproduces from its input file alone.

use std::collections::HashMap;
use std::sync::LazyLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use edgeauth_core::settings::Settings;

/// 32 bytes of 0x01 / 0x02 (the core's unit-test keys), base64url.
pub const KEY_A: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE";
pub const KEY_B: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI";
pub const SEED: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc";

/// A fixed "now" well inside the range real clocks give.
pub const NOW: u64 = 1_800_000_000;

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn valid_variables() -> HashMap<String, String> {
    [
        ("public_url", "http://127.0.0.1:3000".to_owned()),
        ("origin_url", "http://127.0.0.1:3001".to_owned()),
        ("oidc_issuer", "http://127.0.0.2:9400".to_owned()),
        ("oidc_client_id", "edgeauth".to_owned()),
        ("oidc_client_secret", "edgeauth-dev-secret".to_owned()),
        ("session_keys", format!("s1:{KEY_A},s0:{KEY_B}")),
        ("assertion_keys", format!("a1:ed25519:{SEED}")),
        (
            "routes",
            r#"[{"path": "/public/", "public": true}, {"path": "/api/", "api": true}]"#.to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

pub fn settings_from(vars: &HashMap<String, String>) -> Result<Settings, String> {
    Settings::from_variables(|n| vars.get(n).cloned()).map_err(|e| e.to_string())
}

/// Plain-http loopback settings (unprefixed cookie names).
pub static SETTINGS: LazyLock<Settings> =
    LazyLock::new(|| settings_from(&valid_variables()).expect("fixture settings are valid"));

/// The same over https (`__Host-` cookie names).
pub static SETTINGS_HTTPS: LazyLock<Settings> = LazyLock::new(|| {
    let mut vars = valid_variables();
    vars.insert("public_url".into(), "https://gw.example.com".into());
    settings_from(&vars).expect("fixture settings are valid")
});

/// Deterministic bytes seeded from the input, so sealing is reproducible.
pub fn seeded_rng(seed: u64) -> impl FnMut(&mut [u8]) {
    let mut n = seed;
    move |buf: &mut [u8]| {
        for b in buf.iter_mut() {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (n >> 56) as u8;
        }
    }
}

/// A `Cookie` header map from arbitrary header values; values `http` itself
/// refuses (as a server would) are skipped.
pub fn cookie_headers<S: AsRef<[u8]>>(values: &[S]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for v in values {
        if let Ok(v) = http::HeaderValue::from_bytes(v.as_ref()) {
            h.append(http::header::COOKIE, v);
        }
    }
    h
}
