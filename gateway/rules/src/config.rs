//! The tenants' rule chains, from the Spin variable `rules` (JSON):
//!
//! ```json
//! {"tenants": {"default": {"chain": [
//!   {"name": "email-domain", "config": {"domains": ["example.com"]}},
//!   {"name": "crm-lead", "allowed_hosts": ["https://crm.example"], "secrets": ["crm_token"],
//!    "fuel": 20000000, "memory_bytes": 8388608, "fail_open": true}
//! ]}}}
//! ```
//!
//! Empty or absent: no rules, the gateway behaves as without this feature.
//! Every budget has a safe default and a hard ceiling.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

// Names and origins are part of the rule contract, shared with the SDK.
pub use edgeauth_contract::names::{header_token, reserved_header, valid_name};
pub use edgeauth_contract::validate::origin_of;

/// The tenant of a gateway without a `tenants` variable (edgeauth-core's `tenants`).
pub const DEFAULT_TENANT: &str = "default";

pub const DEFAULT_FUEL: u64 = 50_000_000;
pub const MAX_FUEL: u64 = 2_000_000_000;
pub const DEFAULT_MEMORY: usize = 16 << 20;
pub const MAX_MEMORY: usize = 64 << 20;
pub const DEFAULT_OUTPUT: usize = edgeauth_contract::DEFAULT_OUTPUT_BYTES;
pub const MAX_OUTPUT: usize = 1 << 20;
pub const DEFAULT_HTTP_TIMEOUT_MS: u32 = 2_000;
pub const MAX_HTTP_TIMEOUT_MS: u32 = 10_000;
pub const DEFAULT_HTTP_CALLS: u32 = 4;
pub const MAX_HTTP_CALLS: u32 = 16;
pub const MAX_RULES: usize = 16;

/// Where a rule's signed artifact comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Spin KV, key [`artifact_key`], put there by the admin endpoint.
    Kv,
    /// A file shipped with the app (Spin `files`), path relative to its mount.
    File(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RuleConfig {
    pub name: String,
    pub source: Source,
    /// Passed to the rule as `event.config`.
    pub config: Value,
    pub fuel: u64,
    pub memory_bytes: usize,
    pub output_bytes: usize,
    /// A failure (budget, trap, bad output) is logged and the rule skipped.
    pub fail_open: bool,
    /// Origins (`scheme://host[:port]`) the rule may call and redirect to.
    pub allowed_hosts: Vec<String>,
    /// Lower-cased header names the rule may set for the origin.
    pub headers: Vec<String>,
    /// Names of tenant secrets granted to the rule.
    pub secrets: Vec<String>,
    pub http_timeout_ms: u32,
    pub http_calls: u32,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TenantRules {
    pub chain: Vec<RuleConfig>,
}

impl TenantRules {
    /// Every header name any rule of the tenant may set: the gateway strips
    /// them from client requests so only rules can supply them.
    pub fn rule_headers(&self) -> impl Iterator<Item = &str> {
        self.chain
            .iter()
            .flat_map(|r| r.headers.iter().map(String::as_str))
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RulesConfig {
    pub tenants: BTreeMap<String, TenantRules>,
}

impl RulesConfig {
    pub fn is_empty(&self) -> bool {
        self.tenants.values().all(|t| t.chain.is_empty())
    }

    pub fn tenant(&self, id: &str) -> Option<&TenantRules> {
        self.tenants.get(id).filter(|t| !t.chain.is_empty())
    }
}

/// KV key of a tenant's uploaded rule artifact.
pub fn artifact_key(tenant: &str, rule: &str) -> String {
    edgeauth_core::kv_schema::rule_artifact(tenant, rule)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    tenants: BTreeMap<String, RawTenant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    #[serde(default)]
    chain: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    config: Value,
    fuel: Option<u64>,
    memory_bytes: Option<usize>,
    output_bytes: Option<usize>,
    #[serde(default)]
    fail_open: bool,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    #[serde(default)]
    headers: Vec<String>,
    #[serde(default)]
    secrets: Vec<String>,
    http_timeout_ms: Option<u32>,
    http_calls: Option<u32>,
}

fn bounded<T: PartialOrd + Copy + std::fmt::Display>(
    rule: &str,
    field: &str,
    value: Option<T>,
    default: T,
    min: T,
    max: T,
) -> Result<T, String> {
    let v = value.unwrap_or(default);
    if v < min || v > max {
        return Err(format!(
            "rule `{rule}`: `{field}` must be between {min} and {max}"
        ));
    }
    Ok(v)
}

/// Parses and validates the `rules` variable. `reserved` tells whether a
/// header name belongs to the gateway's own configuration (identity headers).
pub fn parse(text: &str, reserved: impl Fn(&str) -> bool) -> Result<RulesConfig, String> {
    if text.trim().is_empty() {
        return Ok(RulesConfig::default());
    }
    let raw: RawConfig =
        serde_json::from_str(text).map_err(|e| format!("not valid rules JSON: {e}"))?;
    let mut tenants = BTreeMap::new();
    for (tenant, t) in raw.tenants {
        if !valid_name(&tenant) {
            return Err(format!("tenant id `{tenant}` must be 1-64 of a-z 0-9 - _"));
        }
        if t.chain.len() > MAX_RULES {
            return Err(format!(
                "tenant `{tenant}`: at most {MAX_RULES} rules per chain"
            ));
        }
        let mut chain: Vec<RuleConfig> = Vec::new();
        for r in t.chain {
            let name = r.name;
            if !valid_name(&name) {
                return Err(format!("rule name `{name}` must be 1-64 of a-z 0-9 - _"));
            }
            if chain.iter().any(|c| c.name == name) {
                return Err(format!("tenant `{tenant}`: rule `{name}` appears twice"));
            }
            let source = match r.source.as_deref() {
                None | Some("kv") => Source::Kv,
                Some(s) => match s.strip_prefix("file:") {
                    Some(p) if !p.is_empty() && !p.split('/').any(|c| c == "..") => {
                        Source::File(p.to_owned())
                    }
                    _ => {
                        return Err(format!(
                            "rule `{name}`: `source` must be \"kv\" or \"file:<path>\""
                        ));
                    }
                },
            };
            if !(r.config.is_null() || r.config.is_object()) {
                return Err(format!("rule `{name}`: `config` must be a JSON object"));
            }
            let mut allowed_hosts = Vec::new();
            for h in &r.allowed_hosts {
                let bare = url::Url::parse(h).is_ok_and(|u| {
                    u.path() == "/" && u.query().is_none() && u.fragment().is_none()
                });
                let origin = origin_of(h).filter(|_| bare).ok_or_else(|| {
                    format!("rule `{name}`: allowed host `{h}` must be scheme://host[:port]")
                })?;
                allowed_hosts.push(origin);
            }
            let mut headers = Vec::new();
            for h in &r.headers {
                let lower = h.to_ascii_lowercase();
                if !header_token(&lower) {
                    return Err(format!("rule `{name}`: `{h}` is not a header name"));
                }
                if reserved_header(&lower) || reserved(&lower) {
                    return Err(format!(
                        "rule `{name}`: header `{h}` is reserved for HTTP or the gateway's identity headers"
                    ));
                }
                headers.push(lower);
            }
            for s in &r.secrets {
                if !valid_name(s) {
                    return Err(format!(
                        "rule `{name}`: secret name `{s}` must be 1-64 of a-z 0-9 - _"
                    ));
                }
            }
            chain.push(RuleConfig {
                fuel: bounded(&name, "fuel", r.fuel, DEFAULT_FUEL, 10_000, MAX_FUEL)?,
                memory_bytes: bounded(
                    &name,
                    "memory_bytes",
                    r.memory_bytes,
                    DEFAULT_MEMORY,
                    1 << 16,
                    MAX_MEMORY,
                )?,
                output_bytes: bounded(
                    &name,
                    "output_bytes",
                    r.output_bytes,
                    DEFAULT_OUTPUT,
                    256,
                    MAX_OUTPUT,
                )?,
                http_timeout_ms: bounded(
                    &name,
                    "http_timeout_ms",
                    r.http_timeout_ms,
                    DEFAULT_HTTP_TIMEOUT_MS,
                    1,
                    MAX_HTTP_TIMEOUT_MS,
                )?,
                http_calls: bounded(
                    &name,
                    "http_calls",
                    r.http_calls,
                    DEFAULT_HTTP_CALLS,
                    0,
                    MAX_HTTP_CALLS,
                )?,
                name,
                source,
                config: if r.config.is_null() {
                    Value::Object(Default::default())
                } else {
                    r.config
                },
                fail_open: r.fail_open,
                allowed_hosts,
                headers,
                secrets: r.secrets,
            });
        }
        tenants.insert(tenant, TenantRules { chain });
    }
    Ok(RulesConfig { tenants })
}

/// Tenant secrets, from the secret Spin variable `rule_secrets`:
/// `{"<tenant>": {"<name>": "<value>"}}`.
pub fn parse_secrets(text: &str) -> Result<BTreeMap<String, BTreeMap<String, String>>, String> {
    if text.trim().is_empty() {
        return Ok(BTreeMap::new());
    }
    // The error never quotes the text: it holds secrets.
    serde_json::from_str(text)
        .map_err(|_| "must be a JSON object {\"<tenant>\": {\"<name>\": \"<value>\"}}".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> bool {
        false
    }

    #[test]
    fn empty_means_no_rules() {
        assert!(parse("", none).unwrap().is_empty());
        assert!(parse("  ", none).unwrap().is_empty());
        assert!(
            parse(r#"{"tenants": {"default": {"chain": []}}}"#, none)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn defaults_and_bounds() {
        let c = parse(
            r#"{"tenants": {"default": {"chain": [
                {"name": "a"},
                {"name": "b", "source": "file:rules/b.rule", "fuel": 1000000, "fail_open": true,
                 "allowed_hosts": ["https://CRM.example:443/"], "headers": ["X-Roles"], "secrets": ["crm"]}
            ]}}}"#,
            none,
        )
        .unwrap();
        let chain = &c.tenant("default").unwrap().chain;
        assert_eq!(chain[0].fuel, DEFAULT_FUEL);
        assert_eq!(chain[0].memory_bytes, DEFAULT_MEMORY);
        assert_eq!(chain[0].source, Source::Kv);
        assert_eq!(chain[0].config, serde_json::json!({}));
        assert_eq!(chain[1].source, Source::File("rules/b.rule".into()));
        assert_eq!(chain[1].allowed_hosts, ["https://crm.example"]);
        assert_eq!(chain[1].headers, ["x-roles"]);
        assert!(chain[1].fail_open);
        assert_eq!(
            c.tenant("default")
                .unwrap()
                .rule_headers()
                .collect::<Vec<_>>(),
            ["x-roles"]
        );
    }

    #[test]
    fn refuses_what_is_unsafe_or_unclear() {
        let bad = [
            r#"{"tenants": {"default": {"chain": [{"name": "A"}]}}}"#,
            r#"{"tenants": {"default": {"chain": [{"name": "a"}, {"name": "a"}]}}}"#,
            r#"{"tenants": {"default": {"chain": [{"name": "a", "fuel": 1}]}}}"#,
            r#"{"tenants": {"default": {"chain": [{"name": "a", "memory_bytes": 999999999999}]}}}"#,
            r#"{"tenants": {"default": {"chain": [{"name": "a", "headers": ["Cookie"]}]}}}"#,
            r#"{"tenants": {"default": {"chain": [{"name": "a", "headers": ["X-Forwarded-User"]}]}}}"#,
            r#"{"tenants": {"default": {"chain": [{"name": "a", "headers": ["x-mine"]}]}}}"#,
            r#"{"tenants": {"default": {"chain": [{"name": "a", "allowed_hosts": ["https://x.example/path"]}]}}}"#,
            r#"{"tenants": {"default": {"chain": [{"name": "a", "allowed_hosts": ["ftp://x.example"]}]}}}"#,
            r#"{"tenants": {"default": {"chain": [{"name": "a", "source": "file:../etc/passwd"}]}}}"#,
            r#"{"tenants": {"default": {"chain": [{"name": "a", "config": [1]}]}}}"#,
            r#"{"tenants": {"default": {"chain": [{"name": "a", "bogus": 1}]}}}"#,
            r#"not json"#,
        ];
        for text in bad {
            assert!(parse(text, |h| h == "x-mine").is_err(), "{text}");
        }
    }

    #[test]
    fn secrets_errors_do_not_echo_values() {
        let e = parse_secrets(r#"{"default": "hunter2"}"#).unwrap_err();
        assert!(!e.contains("hunter2"));
        assert_eq!(
            parse_secrets(r#"{"default": {"k": "v"}}"#).unwrap()["default"]["k"],
            "v"
        );
    }
}
