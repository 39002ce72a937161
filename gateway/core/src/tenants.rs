//! Tenants selected by the request's host.
//!
//! The Spin variable `tenants` (JSON) lists the tenants one gateway serves.
//! Each is a set of overrides of the gateway's variables, and its
//! `public_url` is where its users reach it: the request's `Host` picks the
//! tenant whose `public_url` has that host and port.
//!
//! ```json
//! {"acme":   {"public_url": "https://acme.example", "allowed_email_domains": "acme.com"},
//!  "globex": {"public_url": "https://login.globex.example", "oidc_client_id": "globex"}}
//! ```
//!
//! Empty (the default): one implicit tenant, `default`, serving every host
//! with the variables as they are. With tenants, a host that is no tenant's
//! gets 404 and nothing is forwarded. Every cookie a tenant's users get is
//! sealed for that tenant, so a session from one host is worthless on another
//! even though the tenants share the gateway's keys.

use std::collections::BTreeMap;

use url::Url;

use crate::settings::{ConfigError, Settings};

/// The tenant of a gateway without a `tenants` variable.
pub const DEFAULT_TENANT: &str = "default";
pub const MAX_TENANTS: usize = 256;

/// Variables a tenant may set for itself. The keys, the timeouts and the
/// identity header names stay gateway-wide: they are the operator's, and a
/// tenant renaming identity headers could make the gateway forward a header
/// another tenant's origin trusts unstripped.
pub const OVERRIDABLE: &[&str] = &[
    "public_url",
    "origin_url",
    "oidc_issuer",
    "oidc_client_id",
    "oidc_client_secret",
    "oidc_scopes",
    "allowed_email_domains",
    "session_lifetime_secs",
    "assertion_audience",
    "routes",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: String,
    /// `host[:port]` as a browser sends it in `Host` (default port omitted).
    pub host: String,
    pub variables: BTreeMap<String, String>,
}

/// The parsed `tenants` variable; empty means the implicit default tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tenants {
    list: Vec<Tenant>,
}

/// Tenant ids: 1-64 of `a-z 0-9 - _` (they name KV keys and log fields).
pub fn valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn problem(p: impl Into<String>) -> ConfigError {
    ConfigError {
        variable: "tenants",
        problem: p.into(),
    }
}

/// `host[:port]` of a URL the way it arrives in a `Host` header.
fn host_of(url: &Url) -> Option<String> {
    let host = url.host_str()?.to_ascii_lowercase();
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

/// A `Host` header value in the form `host_of` produces: lower case, default
/// port of the scheme dropped.
fn normalize_host(raw: &str, https: bool) -> String {
    let raw = raw.trim().to_ascii_lowercase();
    let default = if https { ":443" } else { ":80" };
    match raw.strip_suffix(default) {
        Some(h) => h.to_owned(),
        None => raw,
    }
}

impl Tenants {
    pub fn parse(text: &str) -> Result<Tenants, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Tenants::default());
        }
        let raw: BTreeMap<String, BTreeMap<String, serde_json::Value>> = serde_json::from_str(text)
            .map_err(|e| {
                problem(format!(
                    "not a JSON object of tenants, each an object of variables ({e})"
                ))
            })?;
        if raw.len() > MAX_TENANTS {
            return Err(problem(format!("at most {MAX_TENANTS} tenants")));
        }
        let mut list: Vec<Tenant> = Vec::with_capacity(raw.len());
        for (id, vars) in raw {
            if !valid_id(&id) {
                return Err(problem(format!(
                    "tenant id `{id}` must be 1-64 of a-z 0-9 - _"
                )));
            }
            let mut variables = BTreeMap::new();
            for (name, value) in vars {
                if !OVERRIDABLE.contains(&name.as_str()) {
                    return Err(problem(format!(
                        "tenant `{id}`: `{name}` cannot be set per tenant (allowed: {})",
                        OVERRIDABLE.join(", ")
                    )));
                }
                let value = match value {
                    serde_json::Value::String(s) => s,
                    // `routes` is JSON itself; a nested value saves quoting it.
                    v @ (serde_json::Value::Array(_) | serde_json::Value::Object(_))
                        if name == "routes" =>
                    {
                        v.to_string()
                    }
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => {
                        return Err(problem(format!("tenant `{id}`: `{name}` must be a string")));
                    }
                };
                variables.insert(name, value);
            }
            let public = variables.get("public_url").ok_or_else(|| {
                problem(format!(
                    "tenant `{id}` needs a `public_url`: its host selects the tenant"
                ))
            })?;
            let host = Url::parse(public.trim())
                .ok()
                .as_ref()
                .and_then(host_of)
                .ok_or_else(|| problem(format!("tenant `{id}`: `public_url` is not a URL")))?;
            if let Some(other) = list.iter().find(|t| t.host == host) {
                return Err(problem(format!(
                    "tenants `{}` and `{id}` have the same host `{host}`",
                    other.id
                )));
            }
            list.push(Tenant {
                id,
                host,
                variables,
            });
        }
        Ok(Tenants { list })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|t| t.id.as_str())
    }

    /// The tenant serving `host`; `None` for a host no tenant has.
    pub fn for_host(&self, host: &str) -> Option<&Tenant> {
        self.list.iter().find(|t| {
            let https = t
                .variables
                .get("public_url")
                .is_some_and(|u| u.trim_start().starts_with("https:"));
            t.host == normalize_host(host, https)
        })
    }
}

/// Why a request has no settings to be served with.
#[derive(Debug, PartialEq, Eq)]
pub enum Unserved {
    /// The configuration is broken: refuse to serve, say what is wrong.
    Misconfigured(ConfigError),
    /// With tenants configured, no tenant has this host (or none was sent).
    UnknownHost(String),
}

/// The settings of the tenant `host` selects: its overrides over the
/// gateway's variables, with every cookie sealed for that tenant.
pub fn settings_for_host(
    get: impl Fn(&str) -> Option<String>,
    host: Option<&str>,
) -> Result<Settings, Unserved> {
    let tenants =
        Tenants::parse(&get("tenants").unwrap_or_default()).map_err(Unserved::Misconfigured)?;
    if tenants.is_empty() {
        let mut s = Settings::from_variables(get).map_err(Unserved::Misconfigured)?;
        s.tenant = DEFAULT_TENANT.to_owned();
        return Ok(s);
    }
    let host = host.unwrap_or("");
    let tenant = tenants
        .for_host(host)
        .ok_or_else(|| Unserved::UnknownHost(host.to_owned()))?;
    let mut s =
        Settings::from_variables(|name| tenant.variables.get(name).cloned().or_else(|| get(name)))
            .map_err(|e| {
                Unserved::Misconfigured(ConfigError {
                    variable: "tenants",
                    problem: format!("tenant `{}`: {e}", tenant.id),
                })
            })?;
    s.session_keys.bind_to(&tenant.id);
    s.tenant = tenant.id.clone();
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::Purpose;
    use crate::testutil::{counter_rng, test_variables};

    fn with_tenants(json: &str) -> impl Fn(&str) -> Option<String> {
        let mut vars = test_variables();
        vars.insert("tenants".into(), json.into());
        move |n: &str| vars.get(n).cloned()
    }

    const TWO: &str = r#"{
        "acme": {"public_url": "https://acme.example", "allowed_email_domains": "acme.com"},
        "globex": {"public_url": "http://127.0.0.1:8080", "routes": [{"path": "/pub/", "public": true}]}
    }"#;

    #[test]
    fn without_tenants_every_host_is_the_default_tenant() {
        let get = |n: &str| test_variables().get(n).cloned();
        for host in [Some("anything.example"), None] {
            let s = settings_for_host(get, host).unwrap();
            assert_eq!(s.tenant, DEFAULT_TENANT);
        }
    }

    #[test]
    fn host_selects_the_tenant_and_its_overrides() {
        let get = with_tenants(TWO);
        let acme = settings_for_host(&get, Some("ACME.example:443")).unwrap();
        assert_eq!(acme.tenant, "acme");
        assert_eq!(acme.allowed_email_domains, ["acme.com"]);
        assert_eq!(
            acme.callback_url(&acme.connections[0]),
            "https://acme.example/.edgeauth/callback"
        );
        let globex = settings_for_host(&get, Some("127.0.0.1:8080")).unwrap();
        assert_eq!(globex.tenant, "globex");
        assert!(globex.allowed_email_domains.is_empty());
        assert_eq!(globex.routes.len(), 1);
    }

    #[test]
    fn unknown_or_missing_host_is_not_served() {
        let get = with_tenants(TWO);
        for host in [
            Some("evil.example"),
            Some("acme.example:8443"),
            Some(""),
            None,
        ] {
            assert!(matches!(
                settings_for_host(&get, host),
                Err(Unserved::UnknownHost(_))
            ));
        }
        // Port 80 is not https's default: not acme's host.
        assert!(settings_for_host(&get, Some("acme.example:80")).is_err());
    }

    #[test]
    fn a_session_sealed_for_one_tenant_does_not_open_for_another() {
        let get = with_tenants(TWO);
        let acme = settings_for_host(&get, Some("acme.example")).unwrap();
        let globex = settings_for_host(&get, Some("127.0.0.1:8080")).unwrap();
        let sealed = acme
            .session_keys
            .seal(Purpose::Session, b"alice", &mut counter_rng());
        assert_eq!(
            acme.session_keys.open(Purpose::Session, &sealed).unwrap(),
            b"alice"
        );
        assert!(globex.session_keys.open(Purpose::Session, &sealed).is_err());
        let untenanted = settings_for_host(|n| test_variables().get(n).cloned(), None).unwrap();
        assert!(
            untenanted
                .session_keys
                .open(Purpose::Session, &sealed)
                .is_err()
        );
    }

    #[test]
    fn bad_tenant_documents_name_the_problem() {
        let cases = [
            ("[1]", "JSON object"),
            (
                r#"{"Acme": {"public_url": "https://a.example"}}"#,
                "tenant id",
            ),
            (
                r#"{"a": {"allowed_email_domains": "a.com"}}"#,
                "needs a `public_url`",
            ),
            (
                r#"{"a": {"public_url": "https://a.example", "session_keys": "k:x"}}"#,
                "cannot be set per tenant",
            ),
            (
                r#"{"a": {"public_url": "https://x.example"}, "b": {"public_url": "https://X.example/"}}"#,
                "same host",
            ),
            (
                r#"{"a": {"public_url": "http://a.example"}}"#,
                "tenant `a`: variable `public_url`",
            ),
            (
                r#"{"a": {"public_url": "https://a.example", "oidc_scopes": true}}"#,
                "must be a string",
            ),
        ];
        for (json, expected) in cases {
            let got = match settings_for_host(with_tenants(json), Some("a.example")) {
                Err(Unserved::Misconfigured(e)) => e.to_string(),
                other => panic!("{json}: expected a config error, got {other:?}"),
            };
            assert!(got.contains(expected), "{json}: {got}");
            assert!(got.starts_with("variable `tenants`"), "{got}");
        }
    }
}
