//! base64url helpers (RFC 4648 §5, unpadded), the encoding of every token we mint.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url; anything else (padding, `+`, `/`, whitespace) is an error.
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// `n` random bytes as base64url, for state, nonce and PKCE verifiers.
pub fn random_token(rng: crate::Rng<'_>, n: usize) -> String {
    let mut buf = vec![0u8; n];
    rng(&mut buf);
    b64url(&buf)
}

/// The payload of a JWT the caller already verified, as a JSON object;
/// empty for anything else (no token, junk, a payload that is no object).
pub fn jwt_payload(jwt: &str) -> serde_json::Map<String, serde_json::Value> {
    jwt.split('.')
        .nth(1)
        .and_then(b64url_decode)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}
