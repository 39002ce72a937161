//! OpenID provider metadata (discovery) and the cache policy for it and the
//! provider's JWKS. The component stores [`ProviderCache`] in Spin KV; the rules
//! for when to refetch live here so they are tested with plain numbers.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::connections::{Connection, Kind};
use crate::settings::is_loopback;

/// Larger documents are refused: real ones are a few KiB.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Discovery and JWKS are refreshed this often even when nothing fails.
pub const CACHE_TTL_SECS: u64 = 3600;
/// An unknown `kid` triggers a JWKS refetch at most this often, so forged
/// tokens cannot turn the gateway into a request amplifier against the IdP.
pub const JWKS_REFETCH_INTERVAL_SECS: u64 = 60;

/// The provider's endpoints, each checked once when the discovery document
/// is read (and again when a cached copy is loaded), so nothing later has to
/// parse a URL the provider chose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: Endpoint,
    pub token_endpoint: Endpoint,
    pub jwks_uri: Endpoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_session_endpoint: Option<Endpoint>,
    /// RFC 9207: the provider sends `iss` with every authorization response.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub authorization_response_iss_parameter_supported: bool,
}

/// An endpoint URL that is both a WHATWG URL (the browser is redirected to
/// it, with parameters added) and, exactly as written, an HTTP request URI
/// (the gateway sends requests to it), naming the same host and port both
/// ways. `url::Url` repairs what it does not like (spaces, `<`, non-ASCII
/// hosts) while `http::Uri` refuses it, so a URL checked only by the first
/// would fail later, where the request is built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Endpoint {
    text: String,
    uri: http::Uri,
}

impl Endpoint {
    pub fn parse(which: &'static str, raw: &str) -> Result<Endpoint, ProviderError> {
        let bad = |why: &str| ProviderError::BadEndpoint(which, why.to_owned());
        let url = Url::parse(raw).map_err(|e| ProviderError::BadEndpoint(which, e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(url.host()) => {}
            _ => return Err(bad("must be https (http only on loopback)")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not carry credentials"));
        }
        // RFC 3986 characters only: `http` lets some others through (`"`,
        // `{`, `|`, non-ASCII bytes), which `url` would have encoded, so the
        // two would send different bytes.
        let uri: http::Uri = raw
            .bytes()
            .all(uri_char)
            .then(|| raw.parse().ok())
            .flatten()
            .ok_or_else(|| {
                bad(
                    "not a valid URI: spaces, quotes, angle brackets, braces and non-ASCII \
                     characters must be percent-encoded",
                )
            })?;
        let same_target = uri.scheme_str() == Some(url.scheme())
            && uri
                .host()
                .zip(url.host_str())
                .is_some_and(|(a, b)| a.eq_ignore_ascii_case(b))
            && uri.port_u16().or(url.port_or_known_default()) == url.port_or_known_default()
            && uri.authority().is_some_and(|a| !a.as_str().contains('@'));
        if !same_target {
            return Err(bad(
                "names a different host or port depending on who reads it",
            ));
        }
        Ok(Endpoint {
            text: raw.to_owned(),
            uri,
        })
    }

    /// The request URI, for requests the gateway sends.
    pub fn uri(&self) -> &http::Uri {
        &self.uri
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

/// Characters RFC 3986 allows in a URI (unreserved, reserved and `%`).
fn uri_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
}

/// Reads as the URL text, so code that adds parameters parses it with `url`.
impl std::ops::Deref for Endpoint {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl TryFrom<String> for Endpoint {
    type Error = ProviderError;
    fn try_from(text: String) -> Result<Endpoint, ProviderError> {
        Endpoint::parse("cached endpoint", &text)
    }
}

impl From<Endpoint> for String {
    fn from(e: Endpoint) -> String {
        e.text
    }
}

/// The discovery document as published, before its endpoints are checked.
#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    end_session_endpoint: Option<String>,
    /// Only a JSON `true` counts (RFC 8414 metadata values are typed).
    #[serde(default)]
    authorization_response_iss_parameter_supported: Option<serde_json::Value>,
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

/// The issuer of an OIDC connection; others have no discovery document.
fn oidc_issuer(connection: &Connection) -> Result<&str, ProviderError> {
    match &connection.kind {
        Kind::Oidc { issuer } => Ok(issuer),
        Kind::OAuth2(_) => Err(ProviderError::BadEndpoint(
            "discovery document URL",
            "an oauth2 connection has no discovery document".into(),
        )),
    }
}

/// Where the discovery document is; an issuer that is no request URI (the
/// settings check it only as a URL) is reported like an unusable endpoint.
pub fn discovery_url(connection: &Connection) -> Result<Endpoint, ProviderError> {
    Endpoint::parse(
        "discovery document URL (from the issuer)",
        &format!(
            "{}/.well-known/openid-configuration",
            oidc_issuer(connection)?.trim_end_matches('/')
        ),
    )
}

/// A GET for a JSON document at a checked endpoint.
pub fn get(endpoint: &Endpoint) -> http::Request<Vec<u8>> {
    let mut request = http::Request::new(Vec::new());
    *request.uri_mut() = endpoint.uri().clone();
    request.headers_mut().insert(
        http::header::ACCEPT,
        http::HeaderValue::from_static("application/json"),
    );
    request
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
///
/// The endpoints the gateway itself calls (token, JWKS) must be on a host
/// the connection allows (`Connection::may_call`): a provider's document does
/// not get to point the gateway at other hosts.
pub fn parse_discovery(
    connection: &Connection,
    status: u16,
    body: &[u8],
) -> Result<ProviderMetadata, ProviderError> {
    check_document(status, body)?;
    let expected = oidc_issuer(connection)?;
    let doc: Discovery =
        serde_json::from_slice(body).map_err(|e| ProviderError::NotJson(e.to_string()))?;
    if doc.issuer != expected {
        return Err(ProviderError::IssuerMismatch {
            expected: expected.to_owned(),
            got: doc.issuer,
        });
    }
    let called = |which: &'static str, raw: &str| -> Result<Endpoint, ProviderError> {
        let e = Endpoint::parse(which, raw)?;
        if !connection.may_call(e.uri()) {
            return Err(ProviderError::BadEndpoint(
                which,
                format!(
                    "its host `{}` is not the issuer's; list it in the connection's \
                     `allowed_hosts` if the provider really lives there",
                    crate::connections::uri_host_port(e.uri()).unwrap_or_default()
                ),
            ));
        }
        Ok(e)
    };
    Ok(ProviderMetadata {
        authorization_endpoint: Endpoint::parse(
            "authorization_endpoint",
            &doc.authorization_endpoint,
        )?,
        token_endpoint: called("token_endpoint", &doc.token_endpoint)?,
        jwks_uri: called("jwks_uri", &doc.jwks_uri)?,
        end_session_endpoint: doc
            .end_session_endpoint
            .as_deref()
            .map(|e| Endpoint::parse("end_session_endpoint", e))
            .transpose()?,
        authorization_response_iss_parameter_supported: doc
            .authorization_response_iss_parameter_supported
            == Some(serde_json::Value::Bool(true)),
        issuer: doc.issuer,
    })
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
    pub fn key(connection: &Connection) -> String {
        crate::kv_schema::provider(connection.issuer().unwrap_or_default())
    }

    /// A cached entry is used only if it belongs to this issuer and is fresh.
    pub fn usable(&self, connection: &Connection, now: u64) -> bool {
        Some(self.issuer.as_str()) == connection.issuer()
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

    fn conn(overrides: &[(&str, &str)]) -> Connection {
        settings_with(overrides).connections.remove(0)
    }
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
        let s = conn(&[]);
        let m = parse_discovery(&s, 200, &doc("http://127.0.0.2:9400")).unwrap();
        assert_eq!(m.token_endpoint.as_str(), "http://127.0.0.2:9400/token");
        assert_eq!(m.token_endpoint.uri().path(), "/token");
        assert_eq!(
            discovery_url(&s).unwrap().as_str(),
            "http://127.0.0.2:9400/.well-known/openid-configuration"
        );
    }

    #[test]
    fn the_gateway_calls_only_the_connections_hosts() {
        let s = conn(&[]);
        let mut v: serde_json::Value =
            serde_json::from_slice(&doc("http://127.0.0.2:9400")).unwrap();
        v["jwks_uri"] = json!("http://127.0.0.1:6379/keys");
        match parse_discovery(&s, 200, v.to_string().as_bytes()) {
            Err(ProviderError::BadEndpoint("jwks_uri", why)) => {
                assert!(why.contains("127.0.0.1:6379"), "{why}")
            }
            other => panic!("accepted a JWKS on another host: {other:?}"),
        }
        // Listed in the connection's allowed_hosts, it is fine.
        let mut listed = conn(&[]);
        listed.allowed_hosts.push("127.0.0.1:6379".into());
        assert!(parse_discovery(&listed, 200, v.to_string().as_bytes()).is_ok());
        // The browser-facing endpoints may be elsewhere (the gateway never calls them).
        let mut v: serde_json::Value =
            serde_json::from_slice(&doc("http://127.0.0.2:9400")).unwrap();
        v["authorization_endpoint"] = json!("https://login.example/authorize");
        assert!(parse_discovery(&s, 200, v.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn iss_parameter_support_is_read_strictly() {
        let s = conn(&[]);
        for (value, expected) in [
            (json!(true), true),
            (json!("true"), false),
            (json!(1), false),
            (json!(false), false),
        ] {
            let mut v: serde_json::Value =
                serde_json::from_slice(&doc("http://127.0.0.2:9400")).unwrap();
            v["authorization_response_iss_parameter_supported"] = value.clone();
            let m = parse_discovery(&s, 200, v.to_string().as_bytes()).unwrap();
            assert_eq!(
                m.authorization_response_iss_parameter_supported, expected,
                "{value}"
            );
        }
    }

    #[test]
    fn rejects_bad_documents() {
        let s = conn(&[]);
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

    /// Found by the issue-8 review: such URLs passed the `url` check and then
    /// trapped the component where the token or JWKS request was built.
    #[test]
    fn endpoints_must_be_request_uris_as_written() {
        let s = conn(&[]);
        let i = "http://127.0.0.2:9400";
        for field in [
            "authorization_endpoint",
            "token_endpoint",
            "jwks_uri",
            "end_session_endpoint",
        ] {
            for bad in [
                format!("{i}/a b"),
                format!("{i}/a<b"),
                format!("{i}/a\"b"),
                format!("{i}/a{{b}}"),
                format!("{i}/a|b"),
                format!("{i}/caf\u{e9}"),
                "https://idp-\u{e4}.example/token".to_owned(),
                "https://user:pw@idp.example/token".to_owned(),
                format!("{i}\\@evil.example/token"),
                "http://127.0.0.2:9400:80/x".to_owned(),
            ] {
                let mut v: serde_json::Value = serde_json::from_slice(&doc(i)).unwrap();
                v[field] = json!(bad);
                match parse_discovery(&s, 200, v.to_string().as_bytes()) {
                    Err(ProviderError::BadEndpoint(which, why)) => {
                        assert_eq!(which, field, "{bad}");
                        assert!(!why.is_empty());
                    }
                    other => panic!("{field} = {bad:?} accepted: {other:?}"),
                }
            }
        }
        // Percent-encoded, the same URLs are fine, and requests to them build.
        let mut v: serde_json::Value = serde_json::from_slice(&doc(i)).unwrap();
        v["jwks_uri"] = json!(format!("{i}/a%20b?x=%3C"));
        let m = parse_discovery(&s, 200, v.to_string().as_bytes()).unwrap();
        assert_eq!(get(&m.jwks_uri).uri().path(), "/a%20b");
    }

    #[test]
    fn cached_metadata_is_checked_again() {
        let s = conn(&[]);
        let m = parse_discovery(&s, 200, &doc("http://127.0.0.2:9400")).unwrap();
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<ProviderMetadata>(&text).unwrap(), m);
        let tampered = text.replace("/token", "/to ken");
        assert!(serde_json::from_str::<ProviderMetadata>(&tampered).is_err());
    }

    #[test]
    fn cache_policy() {
        let s = conn(&[]);
        let meta = parse_discovery(&s, 200, &doc("http://127.0.0.2:9400")).unwrap();
        let c = ProviderCache {
            issuer: s.issuer().unwrap().to_owned(),
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
        let other = conn(&[("oidc_issuer", "http://127.0.0.3:9400")]);
        assert!(!c.usable(&other, 1000));
        assert_ne!(ProviderCache::key(&s), ProviderCache::key(&other));
    }
}
