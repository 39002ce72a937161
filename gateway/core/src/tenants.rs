//! Tenants selected by the request's host.
//!
//! A tenant is described by a *document*: a JSON object of overrides of the
//! gateway's variables ([`OVERRIDABLE`]), its display `name`, its post-login
//! rule chain (`rules`, the object the `rules` variable has under
//! `tenants.<id>`), the secrets its rules are granted (`rule_secrets`) and
//! the SHA-256 hashes of its own admin tokens (`admin_token_sha256`: they
//! open its profiles API only, `crate::admin::profiles_caller`).
//! Its `public_url` is where its users reach it: the request's `Host` picks
//! the tenant whose `public_url` has that host and port.
//!
//! Documents come from two sources:
//!
//! - the Spin variable `tenants`, `{"<id>": <document>, ...}`, parsed on every
//!   request: the single-tenant/demo case and small static setups;
//!
//!   ```json
//!   {"acme":   {"public_url": "https://acme.example", "allowed_email_domains": "acme.com"},
//!    "globex": {"public_url": "https://login.globex.example", "oidc_client_id": "globex"}}
//!   ```
//!
//! - with `tenant_store = "kv"`, Spin KV, one key per host
//!   ([`crate::kv_schema::tenant_host`]), written through the admin API
//!   ([`crate::tenant_docs`]): a request whose host no variable tenant has
//!   costs one KV read and parses only that tenant's document.
//!
//! The variable wins: its tenants are fixed, the admin API refuses to write a
//! document with one of their ids or hosts. Without both (the default): one
//! implicit tenant, `default`, serving every host with the variables as they
//! are. Otherwise a host that is no tenant's gets 404 and nothing is
//! forwarded. Every cookie a tenant's users get is sealed for that tenant
//! (for stored tenants: for that tenant's *creation*, so a tenant deleted and
//! created again with the same id does not accept the old one's cookies).

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use url::Url;

use crate::settings::{ConfigError, Settings};

/// The tenant of a gateway without a `tenants` variable.
pub const DEFAULT_TENANT: &str = "default";
pub const MAX_TENANTS: usize = 256;
/// The variable that turns on tenant documents in KV (`"kv"`; empty: off).
pub const TENANT_STORE: &str = "tenant_store";
/// The variables this module reads besides [`crate::settings::VARIABLES`].
pub const VARIABLES: &[&str] = &[TENANT_STORE];

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
    "session_idle_timeout_secs",
    "session_reissue_secs",
    "refresh_interval_secs",
    "refresh_grace_secs",
    "assertion_audience",
    "routes",
    "account_linking",
    "connections",
    "name",
    "webhooks",
];

/// Overridable variables whose value is JSON itself: a nested array or
/// object is passed on as JSON text (saves quoting it in a string).
const NESTED_JSON: &[&str] = &["routes", "connections", "webhooks"];

/// Document fields that are not variables: the rule chain and its secrets
/// (read by the rules, not by [`Settings`]), the tenant's admin token
/// hashes (read by the admin API), and the id (checked against the key).
pub const DOCUMENT_FIELDS: &[&str] = &["id", "rules", "rule_secrets", "admin_token_sha256"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: String,
    /// `host[:port]` as a browser sends it in `Host` (default port omitted).
    pub host: String,
    /// The overrides, as variable values (nested JSON as text); always has `name`.
    pub variables: BTreeMap<String, String>,
    pub rules: DocRules,
    /// `admin_token_sha256`: hashes of the bearer tokens that open this
    /// tenant's profiles API (and nothing else).
    pub admin_tokens: Vec<crate::admin::TokenHash>,
}

/// A tenant document's own rule chain and rule secrets; the rules fall back
/// to the `rules` / `rule_secrets` variables for what a document leaves out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DocRules {
    /// The object the `rules` variable has at `tenants.<id>` (`{"chain": [...]}`).
    pub chain: Option<Value>,
    /// `rule_secrets` of the document; `None` when it has none.
    pub secrets: Option<BTreeMap<String, String>>,
}

/// A problem with one field of a tenant document. `field` is a path into the
/// document (`routes[0].path`, `connections[1].client_id`, `public_url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "`{}`: {}", self.field, self.message)
        }
    }
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

/// The host under which a stored tenant for this `Host` header would be
/// found: lower case, `:80`/`:443` dropped (which of the two is the
/// tenant's scheme's default is checked once its document is read).
pub fn store_host(raw: &str) -> String {
    let raw = raw.trim().to_ascii_lowercase();
    match raw.strip_suffix(":443").or_else(|| raw.strip_suffix(":80")) {
        Some(h) => h.to_owned(),
        None => raw,
    }
}

/// The variable value of one document field.
fn variable_value(name: &str, value: Value) -> Result<String, FieldError> {
    Ok(match value {
        Value::String(s) => s,
        v @ (Value::Array(_) | Value::Object(_)) if NESTED_JSON.contains(&name) => v.to_string(),
        // A list of domains reads better as an array.
        Value::Array(items) if name == "allowed_email_domains" => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                match item {
                    Value::String(s) if !s.contains(',') => out.push(s),
                    _ => {
                        return Err(FieldError::new(
                            format!("{name}[{i}]"),
                            "must be a domain (a string without commas)",
                        ));
                    }
                }
            }
            out.join(",")
        }
        Value::Number(n) => n.to_string(),
        _ => {
            let what = if NESTED_JSON.contains(&name) {
                "must be a JSON array (or a string holding one)"
            } else {
                "must be a string"
            };
            return Err(FieldError::new(name, what));
        }
    })
}

impl Tenant {
    /// A tenant from its document (`id` from the key it is filed under).
    /// Checks the document's shape; what the values mean is checked by
    /// building its settings ([`settings_for`]).
    pub fn from_document(id: &str, doc: &Map<String, Value>) -> Result<Tenant, FieldError> {
        if !valid_id(id) {
            return Err(FieldError::new(
                "id",
                format!("tenant id `{id}` must be 1-64 of a-z 0-9 - _"),
            ));
        }
        let mut variables = BTreeMap::new();
        let mut rules = DocRules::default();
        let mut admin_tokens = Vec::new();
        for (name, value) in doc {
            match name.as_str() {
                "id" => {
                    if value.as_str() != Some(id) {
                        return Err(FieldError::new(
                            "id",
                            format!("does not match the tenant id `{id}` it is filed under"),
                        ));
                    }
                }
                "rules" => {
                    if !value.is_object() {
                        return Err(FieldError::new(
                            "rules",
                            "must be a JSON object like {\"chain\": [...]}",
                        ));
                    }
                    rules.chain = Some(value.clone());
                }
                "rule_secrets" => rules.secrets = Some(rule_secrets(value)?),
                "admin_token_sha256" => admin_tokens = token_hashes(value)?,
                _ if OVERRIDABLE.contains(&name.as_str()) => {
                    variables.insert(name.clone(), variable_value(name, value.clone())?);
                }
                _ => {
                    return Err(FieldError::new(
                        name.as_str(),
                        format!(
                            "cannot be set per tenant (allowed: {}, {})",
                            OVERRIDABLE.join(", "),
                            DOCUMENT_FIELDS.join(", ")
                        ),
                    ));
                }
            }
        }
        if !variables.contains_key("name") {
            variables.insert("name".into(), id.to_owned());
        }
        let name = &variables["name"];
        if name.trim().is_empty()
            || name.chars().count() > 100
            || name.chars().any(char::is_control)
        {
            return Err(FieldError::new(
                "name",
                "must be 1-100 characters without control characters",
            ));
        }
        let public = variables.get("public_url").ok_or_else(|| {
            FieldError::new(
                "public_url",
                "is required: its host selects the tenant (needs a `public_url`)",
            )
        })?;
        let host = Url::parse(public.trim())
            .ok()
            .as_ref()
            .and_then(host_of)
            .ok_or_else(|| FieldError::new("public_url", "is not a URL"))?;
        Ok(Tenant {
            id: id.to_owned(),
            host,
            variables,
            rules,
            admin_tokens,
        })
    }

    fn https(&self) -> bool {
        self.variables
            .get("public_url")
            .is_some_and(|u| u.trim_start().starts_with("https:"))
    }

    /// Whether a request with this `Host` header is this tenant's.
    pub fn serves(&self, host: &str) -> bool {
        self.host == normalize_host(host, self.https())
    }

    pub fn name(&self) -> &str {
        &self.variables["name"]
    }
}

/// `admin_token_sha256`: `["<64 lowercase hex digits>", ...]`, the SHA-256 of
/// each token (`printf %s "$TOKEN" | sha256sum`).
fn token_hashes(value: &Value) -> Result<Vec<crate::admin::TokenHash>, FieldError> {
    const FIELD: &str = "admin_token_sha256";
    let Some(items) = value.as_array() else {
        return Err(FieldError::new(
            FIELD,
            "must be a JSON array of token hashes (SHA-256, 64 lowercase hex digits each)",
        ));
    };
    if items.len() > crate::admin::MAX_TENANT_TOKENS {
        return Err(FieldError::new(
            FIELD,
            format!("at most {} tokens", crate::admin::MAX_TENANT_TOKENS),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.as_str()
                .and_then(crate::admin::parse_token_hash)
                .ok_or_else(|| {
                    FieldError::new(
                        format!("{FIELD}[{i}]"),
                        "must be a token's SHA-256 as 64 lowercase hex digits (printf %s \"$TOKEN\" | sha256sum)",
                    )
                })
        })
        .collect()
}

/// `rule_secrets`: `{"<name>": "<value>"}`. Errors never quote values.
fn rule_secrets(value: &Value) -> Result<BTreeMap<String, String>, FieldError> {
    let Some(map) = value.as_object() else {
        return Err(FieldError::new(
            "rule_secrets",
            "must be a JSON object {\"<name>\": \"<value>\"}",
        ));
    };
    let mut out = BTreeMap::new();
    for (name, v) in map {
        if !valid_id(name) {
            return Err(FieldError::new(
                format!("rule_secrets.{name}"),
                "secret names are 1-64 of a-z 0-9 - _",
            ));
        }
        let Some(s) = v.as_str() else {
            return Err(FieldError::new(
                format!("rule_secrets.{name}"),
                "must be a string",
            ));
        };
        out.insert(name.clone(), s.to_owned());
    }
    Ok(out)
}

impl Tenants {
    pub fn parse(text: &str) -> Result<Tenants, ConfigError> {
        if text.trim().is_empty() {
            return Ok(Tenants::default());
        }
        let raw: BTreeMap<String, Map<String, Value>> =
            serde_json::from_str(text).map_err(|e| {
                problem(format!(
                    "not a JSON object of tenants, each an object of variables ({e})"
                ))
            })?;
        if raw.len() > MAX_TENANTS {
            return Err(problem(format!("at most {MAX_TENANTS} tenants")));
        }
        let mut list: Vec<Tenant> = Vec::with_capacity(raw.len());
        for (id, doc) in raw {
            if !valid_id(&id) {
                return Err(problem(format!(
                    "tenant id `{id}` must be 1-64 of a-z 0-9 - _"
                )));
            }
            let tenant = Tenant::from_document(&id, &doc).map_err(|e| {
                let message = if e.message.starts_with("cannot be set per tenant") {
                    format!("`{}` {}", e.field, e.message)
                } else {
                    e.to_string()
                };
                problem(format!("tenant `{id}`: {message}"))
            })?;
            if let Some(other) = list.iter().find(|t| t.host == tenant.host) {
                return Err(problem(format!(
                    "tenants `{}` and `{id}` have the same host `{}`",
                    other.id, tenant.host
                )));
            }
            list.push(tenant);
        }
        Ok(Tenants { list })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.list.iter().map(|t| t.id.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Tenant> {
        self.list.iter()
    }

    pub fn get(&self, id: &str) -> Option<&Tenant> {
        self.list.iter().find(|t| t.id == id)
    }

    /// The tenant serving `host`; `None` for a host no tenant has.
    pub fn for_host(&self, host: &str) -> Option<&Tenant> {
        self.list.iter().find(|t| t.serves(host))
    }

    /// The tenant whose `host[:port]` (as [`Tenant::host`]) is `host`.
    pub fn with_host(&self, host: &str) -> Option<&Tenant> {
        self.list.iter().find(|t| t.host == host)
    }
}

/// Whether tenant documents are read from KV (the `tenant_store` variable).
pub fn store_enabled(get: impl Fn(&str) -> Option<String>) -> Result<bool, ConfigError> {
    match get(TENANT_STORE).unwrap_or_default().trim() {
        "" => Ok(false),
        "kv" => Ok(true),
        other => Err(ConfigError {
            variable: TENANT_STORE,
            problem: format!("`{other}` is not a tenant store (use \"kv\" or leave it empty)"),
        }),
    }
}

/// Why a request has no settings to be served with.
#[derive(Debug, PartialEq, Eq)]
pub enum Unserved {
    /// The configuration is broken: refuse to serve, say what is wrong.
    Misconfigured(ConfigError),
    /// With tenants configured, no tenant has this host (or none was sent).
    UnknownHost(String),
    /// The tenant store could not be read: fail closed.
    StoreUnavailable,
}

/// A tenant's settings and the rules its document brings.
#[derive(Debug)]
pub struct Served {
    pub settings: Settings,
    pub rules: DocRules,
}

/// The settings of `tenant`: its overrides over the gateway's variables,
/// with every cookie sealed for `scope` (its id, or id and creation for a
/// stored tenant). The admin API validates documents with this same
/// function, so whatever is served was validated.
pub fn settings_for(
    get: impl Fn(&str) -> Option<String>,
    tenant: &Tenant,
    scope: &str,
) -> Result<Settings, ConfigError> {
    let mut s =
        Settings::from_variables(|name| tenant.variables.get(name).cloned().or_else(|| get(name)))?;
    s.session_keys.bind_to(scope);
    s.tenant = tenant.id.clone();
    Ok(s)
}

/// The settings of the tenant `host` selects: its overrides over the
/// gateway's variables, with every cookie sealed for that tenant.
pub fn settings_for_host(
    get: impl Fn(&str) -> Option<String>,
    host: Option<&str>,
) -> Result<Settings, Unserved> {
    serve(get, host, |_| Ok(None)).map(|s| s.settings)
}

/// The tenant `host` selects, from the `tenants` variable or (with
/// `tenant_store = "kv"`) from the store: `read` fetches one KV key, called at
/// most once, and only for a host no variable tenant has.
pub fn serve(
    get: impl Fn(&str) -> Option<String>,
    host: Option<&str>,
    read: impl FnOnce(&str) -> Result<Option<Vec<u8>>, ()>,
) -> Result<Served, Unserved> {
    let tenants =
        Tenants::parse(&get("tenants").unwrap_or_default()).map_err(Unserved::Misconfigured)?;
    let store = store_enabled(&get).map_err(Unserved::Misconfigured)?;
    if tenants.is_empty() && !store {
        let mut s = Settings::from_variables(get).map_err(Unserved::Misconfigured)?;
        s.tenant = DEFAULT_TENANT.to_owned();
        return Ok(Served {
            settings: s,
            rules: DocRules::default(),
        });
    }
    let host = host.unwrap_or("");
    if let Some(tenant) = tenants.for_host(host) {
        let settings = settings_for(&get, tenant, &tenant.id).map_err(|e| {
            Unserved::Misconfigured(ConfigError {
                variable: "tenants",
                problem: format!("tenant `{}`: {e}", tenant.id),
            })
        })?;
        return Ok(Served {
            settings,
            rules: tenant.rules.clone(),
        });
    }
    let unknown = || Unserved::UnknownHost(host.to_owned());
    if !store || host.is_empty() {
        return Err(unknown());
    }
    let stored = read(&crate::kv_schema::tenant_host(&store_host(host)))
        .map_err(|()| Unserved::StoreUnavailable)?
        .ok_or_else(unknown)?;
    let stored = crate::tenant_docs::Stored::decode(&stored).map_err(|e| {
        Unserved::Misconfigured(ConfigError {
            variable: TENANT_STORE,
            problem: format!("the document stored for host `{host}` is unreadable: {e}"),
        })
    })?;
    let tenant = stored.tenant().map_err(|e| {
        Unserved::Misconfigured(ConfigError {
            variable: TENANT_STORE,
            problem: format!("tenant `{}`: {e}", stored.id),
        })
    })?;
    // `:80` on an https tenant (or `:443` on http) is another origin.
    if !tenant.serves(host) {
        return Err(unknown());
    }
    let settings = settings_for(&get, &tenant, &stored.scope()).map_err(|e| {
        Unserved::Misconfigured(ConfigError {
            variable: TENANT_STORE,
            problem: format!("tenant `{}`: {e}", tenant.id),
        })
    })?;
    Ok(Served {
        settings,
        rules: tenant.rules,
    })
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
    fn tenants_carry_the_hashes_of_their_admin_tokens() {
        let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let t = Tenants::parse(&format!(
            r#"{{"a": {{"public_url": "https://a.example", "admin_token_sha256": ["{hash}"]}},
                "b": {{"public_url": "https://b.example"}}}}"#
        ))
        .unwrap();
        assert_eq!(
            t.get("a").unwrap().admin_tokens,
            [crate::admin::parse_token_hash(hash).unwrap()]
        );
        assert!(t.get("b").unwrap().admin_tokens.is_empty());
        for (tokens, field) in [
            (
                format!(r#"["{}"]"#, hash.to_uppercase()),
                "admin_token_sha256[0]",
            ),
            (
                format!(r#"["{hash}", "{}"]"#, &hash[1..]),
                "admin_token_sha256[1]",
            ),
            (format!(r#""{hash}""#), "admin_token_sha256"),
            (format!(r#"["{hash} "]"#), "admin_token_sha256[0]"),
            (
                format!("[{}]", vec![format!(r#""{hash}""#); 9].join(",")),
                "admin_token_sha256",
            ),
        ] {
            let json = format!(
                r#"{{"a": {{"public_url": "https://a.example", "admin_token_sha256": {tokens}}}}}"#
            );
            let e = Tenants::parse(&json).unwrap_err().to_string();
            assert!(e.contains(&format!("`{field}`")), "{tokens}: {e}");
        }
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
