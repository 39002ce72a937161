//! OpenID provider metadata (discovery) and the cache policy for it and the
//! provider's JWKS. The component stores [`ProviderCache`] in Spin KV; the rules
//! for when to refetch live here so they are tested with plain numbers.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::settings::{Settings, is_loopback};

/// Larger documents are refused: real ones are a few KiB.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Discovery and JWKS are refreshed this often even when nothing fails.
pub const CACHE_TTL_SECS: u64 = 3600;
/// An unknown `kid` triggers a JWKS refetch at most this often, so forged
/// tokens cannot turn the gateway into a request amplifier against the IdP.
pub const JWKS_REFETCH_INTERVAL_SECS: u64 = 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderError {
    Status(u16),
    TooLarge,
    NotJson(String),
    IssuerMismatch { expected: String, got: String },
    BadEndpoint(&'static str, String),
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProviderError::Status(s) => write!(f, "the identity provider answered HTTP {s}"),
            ProviderError::TooLarge => write!(f, "the identity provider's document is too large"),
            ProviderError::NotJson(e) => {
                write!(
                    f,
                    "the identity provider's document is not valid JSON ({e})"
                )
            }
            ProviderError::IssuerMismatch { expected, got } => write!(
                f,
                "discovery names issuer `{got}` but the gateway is configured for `{expected}`"
            ),
            ProviderError::BadEndpoint(which, why) => {
                write!(f, "the provider's {which} is unusable ({why})")
            }
        }
    }
}

pub fn discovery_url(settings: &Settings) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        settings.issuer.trim_end_matches('/')
    )
}

pub fn get(url: &str) -> http::Request<Vec<u8>> {
    http::Request::get(url)
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .expect("a GET with a validated URL is a valid request")
}

fn endpoint(which: &'static str, raw: &str) -> Result<(), ProviderError> {
    let url = Url::parse(raw).map_err(|e| ProviderError::BadEndpoint(which, e.to_string()))?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url.host()) => Ok(()),
        _ => Err(ProviderError::BadEndpoint(
            which,
            "must be https (http only on loopback)".into(),
        )),
    }
}

pub(crate) fn check_document(status: u16, body: &[u8]) -> Result<(), ProviderError> {
    if status != 200 {
        return Err(ProviderError::Status(status));
    }
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(ProviderError::TooLarge);
    }
    Ok(())
}

/// Parses and checks a discovery document against the configured issuer
/// (OIDC Discovery §4.3: the issuer must match exactly).
pub fn parse_discovery(
    settings: &Settings,
    status: u16,
    body: &[u8],
) -> Result<ProviderMetadata, ProviderError> {
    check_document(status, body)?;
    let meta: ProviderMetadata =
        serde_json::from_slice(body).map_err(|e| ProviderError::NotJson(e.to_string()))?;
    if meta.issuer != settings.issuer {
        return Err(ProviderError::IssuerMismatch {
            expected: settings.issuer.clone(),
            got: meta.issuer,
        });
    }
    endpoint("authorization_endpoint", &meta.authorization_endpoint)?;
    endpoint("token_endpoint", &meta.token_endpoint)?;
    endpoint("jwks_uri", &meta.jwks_uri)?;
    if let Some(e) = &meta.end_session_endpoint {
        endpoint("end_session_endpoint", e)?;
    }
    Ok(meta)
}

/// What the component keeps in KV per issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderCache {
    pub issuer: String,
    pub metadata: ProviderMetadata,
    pub metadata_fetched_at: u64,
    /// The raw JWKS document, re-parsed on use.
    #[serde(default)]
    pub jwks: Option<String>,
    #[serde(default)]
    pub jwks_fetched_at: u64,
}

impl ProviderCache {
    /// KV key, derived from the issuer so that two configurations never share
    /// keys by accident.
    pub fn key(settings: &Settings) -> String {
        crate::kv_schema::provider(&settings.issuer)
    }

    /// A cached entry is used only if it belongs to this issuer and is fresh.
    pub fn usable(&self, settings: &Settings, now: u64) -> bool {
        self.issuer == settings.issuer
            && now.saturating_sub(self.metadata_fetched_at) < CACHE_TTL_SECS
            && self.metadata_fetched_at <= now
    }

    pub fn jwks_fresh(&self, now: u64) -> bool {
        self.jwks.is_some()
            && self.jwks_fetched_at <= now
            && now - self.jwks_fetched_at < CACHE_TTL_SECS
    }

    /// After an unknown `kid`: may we fetch the JWKS again?
    pub fn may_refetch_jwks(&self, now: u64) -> bool {
        self.jwks.is_none()
            || now.saturating_sub(self.jwks_fetched_at) >= JWKS_REFETCH_INTERVAL_SECS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::settings_with;
    use serde_json::json;

    fn doc(issuer: &str) -> Vec<u8> {
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/auth"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "end_session_endpoint": format!("{issuer}/session/end"),
            "extra": [1, 2, 3]
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn accepts_matching_issuer() {
        let s = settings_with(&[]);
        let m = parse_discovery(&s, 200, &doc("http://127.0.0.2:9400")).unwrap();
        assert_eq!(m.token_endpoint, "http://127.0.0.2:9400/token");
        assert_eq!(
            discovery_url(&s),
            "http://127.0.0.2:9400/.well-known/openid-configuration"
        );
    }

    #[test]
    fn rejects_bad_documents() {
        let s = settings_with(&[]);
        assert!(matches!(
            parse_discovery(&s, 200, &doc("http://127.0.0.2:9401")),
            Err(ProviderError::IssuerMismatch { .. })
        ));
        assert_eq!(
            parse_discovery(&s, 500, b"{}"),
            Err(ProviderError::Status(500))
        );
        assert!(matches!(
            parse_discovery(&s, 200, b"<html>oops</html>"),
            Err(ProviderError::NotJson(_))
        ));
        assert_eq!(
            parse_discovery(&s, 200, &vec![b' '; MAX_DOCUMENT_BYTES + 1]),
            Err(ProviderError::TooLarge)
        );
        let mut v: serde_json::Value =
            serde_json::from_slice(&doc("http://127.0.0.2:9400")).unwrap();
        v["token_endpoint"] = json!("http://idp.example.com/token");
        assert!(matches!(
            parse_discovery(&s, 200, v.to_string().as_bytes()),
            Err(ProviderError::BadEndpoint("token_endpoint", _))
        ));
    }

    #[test]
    fn cache_policy() {
        let s = settings_with(&[]);
        let meta = parse_discovery(&s, 200, &doc("http://127.0.0.2:9400")).unwrap();
        let c = ProviderCache {
            issuer: s.issuer.clone(),
            metadata: meta,
            metadata_fetched_at: 1000,
            jwks: Some("{}".into()),
            jwks_fetched_at: 1000,
        };
        assert!(c.usable(&s, 1000 + CACHE_TTL_SECS - 1));
        assert!(!c.usable(&s, 1000 + CACHE_TTL_SECS));
        assert!(
            !c.usable(&s, 999),
            "an entry from the future is not trusted"
        );
        assert!(!c.may_refetch_jwks(1000 + JWKS_REFETCH_INTERVAL_SECS - 1));
        assert!(c.may_refetch_jwks(1000 + JWKS_REFETCH_INTERVAL_SECS));
        let other = settings_with(&[("oidc_issuer", "http://127.0.0.3:9400")]);
        assert!(!c.usable(&other, 1000));
        assert_ne!(ProviderCache::key(&s), ProviderCache::key(&other));
    }
}
