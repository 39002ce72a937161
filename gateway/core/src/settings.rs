//! The gateway's settings, read from Spin variables and validated once.
//!
//! Every problem is reported with the variable's name and what to change, so an
//! operator can fix a deployment from the error page alone.

use std::fmt;

use http::HeaderName;
use url::{Host, Url};

use crate::assertion::AssertionKeys;
use crate::connections::{self, Connection};
use crate::seal::KeyRing;

/// Names of the plain identity headers sent to the origin; `None` disables one.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    pub user: Option<HeaderName>,
    pub email: Option<HeaderName>,
    pub groups: Option<HeaderName>,
    pub name: Option<HeaderName>,
    /// The person's profile id (`crate::profiles`).
    pub profile: Option<HeaderName>,
    pub assertion: HeaderName,
}

impl IdentityHeaders {
    pub fn configured(&self) -> impl Iterator<Item = &HeaderName> {
        [
            &self.user,
            &self.email,
            &self.groups,
            &self.name,
            &self.profile,
        ]
        .into_iter()
        .flatten()
        .chain(std::iter::once(&self.assertion))
    }
}

#[derive(Debug)]
pub struct Settings {
    /// Scheme, host and port the browser uses to reach the gateway.
    pub public_url: Url,
    /// False only for plain-http loopback development.
    pub secure_cookies: bool,
    pub origin: Url,
    /// The identity providers people sign in with, in the tenant's order;
    /// never empty (`crate::connections`).
    pub connections: Vec<Connection>,
    /// The tenant's name as people see it (the sign-in chooser's heading).
    pub tenant_name: String,
    pub allowed_email_domains: Vec<String>,
    pub session_lifetime_secs: u64,
    /// Idle timeout and re-validation at the provider (`crate::lifecycle`).
    pub lifecycle: crate::lifecycle::Lifecycle,
    /// How long the origin may take to start answering.
    pub origin_timeout_secs: u64,
    pub session_keys: KeyRing,
    pub assertion_keys: AssertionKeys,
    pub assertion_audience: String,
    pub headers: IdentityHeaders,
    /// Per-route rules, first match wins.
    pub routes: Vec<crate::route_rules::RouteRule>,
    /// Whether a new identity joins the profile that has its verified email.
    pub account_linking: crate::profiles::Linking,
    /// Endpoints login events are pushed to (`crate::webhooks`).
    pub webhooks: Vec<crate::webhooks::Endpoint>,
    /// The tenant these settings are for (`crate::tenants`).
    pub tenant: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "variable `{}`: {}", self.variable, self.problem)
    }
}

impl std::error::Error for ConfigError {}

fn err(variable: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        problem: problem.into(),
    }
}

/// Every variable the gateway reads, with its default (`None` = required).
/// The longest `session_lifetime_secs` allows: what a revocation that
/// must outlive every session it covers is kept for.
pub const MAX_SESSION_LIFETIME_SECS: u64 = 30 * 24 * 3600;

pub const VARIABLES: &[(&str, Option<&str>)] = &[
    ("public_url", None),
    ("origin_url", None),
    // The one connection of a gateway without `connections`; required then.
    ("oidc_issuer", Some("")),
    ("oidc_client_id", Some("")),
    ("oidc_client_secret", Some("")),
    ("oidc_scopes", Some("openid email profile")),
    ("connections", Some("")),
    ("name", Some("")),
    ("session_keys", None),
    ("assertion_keys", None),
    ("allowed_email_domains", Some("")),
    ("session_lifetime_secs", Some("28800")),
    ("session_idle_timeout_secs", Some("0")),
    ("session_reissue_secs", Some("0")),
    ("refresh_interval_secs", Some("300")),
    ("refresh_grace_secs", Some("300")),
    ("origin_timeout_secs", Some("30")),
    ("assertion_audience", Some("")),
    ("header_user", Some("X-Auth-Request-User")),
    ("header_email", Some("X-Auth-Request-Email")),
    ("header_groups", Some("X-Auth-Request-Groups")),
    ("header_name", Some("")),
    ("header_profile", Some("X-Auth-Request-Profile")),
    ("assertion_header", Some("X-Edgeauth-Assertion")),
    ("routes", Some("")),
    ("account_linking", Some("off")),
    ("webhooks", Some("")),
    ("tenants", Some("")),
];

pub(crate) fn is_loopback(host: Option<Host<&str>>) -> bool {
    match host {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// An absolute http(s) URL with nothing but scheme, host and port; plain http
/// only on loopback.
fn base_url(variable: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw.trim()).map_err(|e| err(variable, format!("not a URL ({e})")))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(url.host()) => {}
        "http" => {
            return Err(err(
                variable,
                "must use https (plain http is only allowed for loopback development)",
            ));
        }
        other => return Err(err(variable, format!("scheme `{other}` is not http(s)"))),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(err(variable, "must not contain a user name or password"));
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(err(
            variable,
            "must be scheme://host[:port] only, without path, query or fragment",
        ));
    }
    Ok(url)
}

fn header_name(variable: &'static str, raw: &str) -> Result<Option<HeaderName>, ConfigError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let name = HeaderName::from_bytes(raw.as_bytes())
        .map_err(|_| err(variable, format!("`{raw}` is not a valid header name")))?;
    if crate::forward::is_hop_by_hop(name.as_str())
        || matches!(name.as_str(), "host" | "cookie" | "content-length")
    {
        return Err(err(
            variable,
            format!("`{raw}` is reserved for HTTP itself and cannot carry identity"),
        ));
    }
    Ok(Some(name))
}

/// A lower-cased DNS name as it appears after `@` in an email address.
pub(crate) fn normalize_domain(raw: &str) -> Option<String> {
    let raw = raw.trim().trim_end_matches('.');
    if raw.is_empty() || raw.len() > 253 {
        return None;
    }
    // URL host parsing would percent-decode (`ex%61mple.com` -> `example.com`):
    // an IdP verified the literal address, so only plain DNS characters and
    // Unicode letters (for IDNA) are accepted as written.
    if raw
        .bytes()
        .any(|b| b.is_ascii() && !(b.is_ascii_alphanumeric() || b == b'-' || b == b'.'))
    {
        return None;
    }
    // IDNA-maps Unicode names to their ASCII form, so `ExAmple.com` and
    // look-alike spellings compare by what DNS would resolve.
    match Host::parse(raw).ok()? {
        Host::Domain(d) if is_dns_name(&d) => Some(d.to_ascii_lowercase()),
        _ => None,
    }
}

/// Two or more letter-digit-hyphen labels of 1-63 bytes: what is left after
/// IDNA mapping of a real name. URL hosts may also hold `"` `*` `,` `;` and the
/// like, which have no place in an email domain or an identity header.
fn is_dns_name(d: &str) -> bool {
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl Settings {
    /// Reads and validates every variable. `get` returns `None` for a variable
    /// that has no value.
    pub fn from_variables(get: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let var = |name: &'static str| -> Result<String, ConfigError> {
            let default = VARIABLES
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, d)| *d);
            match get(name) {
                Some(v) if !v.trim().is_empty() || default.is_some() => Ok(v),
                _ => default
                    .map(str::to_owned)
                    .ok_or_else(|| err(name, "is required but has no value")),
            }
        };

        let public_url = base_url("public_url", &var("public_url")?)?;
        let secure_cookies = public_url.scheme() == "https";
        let origin = base_url("origin_url", &var("origin_url")?)?;

        let connections = match connections::parse(&var("connections")?)? {
            listed if !listed.is_empty() => listed,
            _ => {
                let needed = |name: &'static str| -> Result<String, ConfigError> {
                    let v = var(name)?;
                    if v.trim().is_empty() {
                        return Err(err(
                            name,
                            "is required but has no value (or list the tenant's `connections`)",
                        ));
                    }
                    Ok(v)
                };
                vec![Connection::legacy(
                    &needed("oidc_issuer")?,
                    &needed("oidc_client_id")?,
                    &needed("oidc_client_secret")?,
                    &var("oidc_scopes")?,
                )?]
            }
        };
        let tenant_name = var("name")?.trim().to_owned();
        if tenant_name.chars().count() > 80 || tenant_name.chars().any(char::is_control) {
            return Err(err(
                "name",
                "must be at most 80 characters without control characters",
            ));
        }

        let mut allowed_email_domains = Vec::new();
        for d in var("allowed_email_domains")?
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            allowed_email_domains.push(
                normalize_domain(d).ok_or_else(|| {
                    err("allowed_email_domains", format!("`{d}` is not a domain"))
                })?,
            );
        }

        let session_lifetime_secs: u64 = var("session_lifetime_secs")?
            .trim()
            .parse()
            .map_err(|_| err("session_lifetime_secs", "must be a whole number of seconds"))?;
        if !(60..=MAX_SESSION_LIFETIME_SECS).contains(&session_lifetime_secs) {
            return Err(err(
                "session_lifetime_secs",
                "must be between 60 and 2592000 (30 days)",
            ));
        }

        let lifecycle = crate::lifecycle::Lifecycle::parse(&var, session_lifetime_secs)?;

        let origin_timeout_secs: u64 = var("origin_timeout_secs")?
            .trim()
            .parse()
            .ok()
            .filter(|t| (1..=3600).contains(t))
            .ok_or_else(|| {
                err(
                    "origin_timeout_secs",
                    "must be a whole number of seconds from 1 to 3600",
                )
            })?;

        let session_keys =
            KeyRing::parse(&var("session_keys")?).map_err(|p| err("session_keys", p))?;
        let assertion_keys =
            AssertionKeys::parse(&var("assertion_keys")?).map_err(|p| err("assertion_keys", p))?;

        let audience = var("assertion_audience")?.trim().to_owned();
        let assertion_audience = if audience.is_empty() {
            origin.origin().ascii_serialization()
        } else {
            audience
        };

        let headers = IdentityHeaders {
            user: header_name("header_user", &var("header_user")?)?,
            email: header_name("header_email", &var("header_email")?)?,
            groups: header_name("header_groups", &var("header_groups")?)?,
            name: header_name("header_name", &var("header_name")?)?,
            profile: header_name("header_profile", &var("header_profile")?)?,
            assertion: header_name("assertion_header", &var("assertion_header")?)?
                .ok_or_else(|| err("assertion_header", "must name a header"))?,
        };

        let routes = crate::route_rules::parse(&var("routes")?).map_err(|p| err("routes", p))?;
        let account_linking = match var("account_linking")?.trim() {
            "" | "off" => crate::profiles::Linking::Off,
            "verified_email" => crate::profiles::Linking::VerifiedEmail,
            "verified_email_with_proof" => crate::profiles::Linking::VerifiedEmailWithProof,
            other => {
                return Err(err(
                    "account_linking",
                    format!(
                        "`{other}` is not one of off, verified_email, verified_email_with_proof"
                    ),
                ));
            }
        };

        let webhooks = crate::webhooks::parse(&var("webhooks")?).map_err(|p| err("webhooks", p))?;

        Ok(Settings {
            tenant: crate::tenants::DEFAULT_TENANT.to_owned(),
            routes,
            account_linking,
            webhooks,
            public_url,
            secure_cookies,
            origin,
            connections,
            tenant_name,
            allowed_email_domains,
            session_lifetime_secs,
            lifecycle,
            origin_timeout_secs,
            session_keys,
            assertion_keys,
            assertion_audience,
            headers,
        })
    }

    /// `https://gw.example` without the trailing slash.
    pub fn public_origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }

    /// The redirect URI of `connection`, to register at its provider.
    pub fn callback_url(&self, connection: &Connection) -> String {
        format!("{}{}", self.public_origin(), connection.callback_path())
    }

    /// The connection with this id.
    pub fn connection(&self, id: &str) -> Option<&Connection> {
        self.connections.iter().find(|c| c.id == id)
    }

    /// The connection whose callback this is: `None` is the legacy path
    /// `/.edgeauth/callback`, which only the legacy connection has.
    pub fn connection_for_callback(&self, id: Option<&str>) -> Option<&Connection> {
        match id {
            None => self.connections.iter().find(|c| c.legacy),
            Some(id) => self.connection(id).filter(|c| !c.legacy),
        }
    }

    /// The name people see: the tenant's `name`, else its id.
    pub fn display_name(&self) -> &str {
        if self.tenant_name.is_empty() {
            &self.tenant
        } else {
            &self.tenant_name
        }
    }

    pub fn logged_out_url(&self) -> String {
        format!("{}{}", self.public_origin(), crate::routes::LOGGED_OUT)
    }
}

/// The variables only a gateway built with tenant rules reads (the
/// component's `rules` cargo feature). `admin_token` is not among them: it
/// also opens the tenant documents' and profiles' admin APIs.
pub const RULE_VARIABLES: &[&str] = &["rules", "rule_keys", "rule_secrets"];

/// For a gateway built without tenant rules: a rule variable that is set
/// would be silently ignored (no rule would ever run), so it is refused like
/// any other invalid setting, naming the missing feature. `doc_rules` says
/// whether the request's tenant document brings a rule chain of its own.
pub fn refuse_rule_settings(
    get: impl Fn(&str) -> Option<String>,
    doc_rules: bool,
) -> Result<(), ConfigError> {
    const WHY: &str = "is set, but this gateway is built without tenant rules \
        (cargo feature `rules` of edgeauth-component): no rule would ever run; \
        leave it empty or use a build with the feature";
    for name in RULE_VARIABLES {
        if get(name).is_some_and(|v| !v.trim().is_empty()) {
            return Err(err(name, WHY));
        }
    }
    if doc_rules {
        return Err(err("tenants", format!("the tenant's `rules` {WHY}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{settings_with, test_variables};

    #[test]
    fn valid_settings_parse() {
        let s = settings_with(&[]);
        assert_eq!(s.public_origin(), "http://127.0.0.1:3000");
        assert!(!s.secure_cookies);
        assert_eq!(s.assertion_audience, "http://127.0.0.1:3001");
        assert_eq!(
            s.callback_url(&s.connections[0]),
            "http://127.0.0.1:3000/.edgeauth/callback"
        );
    }

    fn problem(overrides: &[(&str, &str)]) -> ConfigError {
        let mut vars = test_variables();
        for (k, v) in overrides {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        Settings::from_variables(|n| vars.get(n).cloned()).unwrap_err()
    }

    #[test]
    fn plain_http_only_on_loopback() {
        let e = problem(&[("public_url", "http://gw.example.com")]);
        assert_eq!(e.variable, "public_url");
        assert!(e.problem.contains("https"));
        let e = problem(&[("oidc_issuer", "http://idp.example.com")]);
        assert_eq!(e.variable, "oidc_issuer");
        let s = settings_with(&[("public_url", "https://gw.example.com")]);
        assert!(s.secure_cookies);
    }

    #[test]
    fn rejects_paths_and_credentials_in_base_urls() {
        assert_eq!(
            problem(&[("origin_url", "http://127.0.0.1:3001/app")]).variable,
            "origin_url"
        );
        assert_eq!(
            problem(&[("public_url", "https://u:p@gw.example.com")]).variable,
            "public_url"
        );
    }

    #[test]
    fn missing_required_names_the_variable() {
        let mut vars = test_variables();
        vars.remove("oidc_client_secret");
        let e = Settings::from_variables(|n| vars.get(n).cloned()).unwrap_err();
        assert_eq!(e.variable, "oidc_client_secret");
        assert!(e.to_string().contains("required"));
    }

    #[test]
    fn bad_keys_and_headers_are_reported() {
        assert_eq!(
            problem(&[("session_keys", "k1:short")]).variable,
            "session_keys"
        );
        assert_eq!(
            problem(&[("assertion_keys", "k1:rsa:AAAA")]).variable,
            "assertion_keys"
        );
        assert_eq!(
            problem(&[("header_user", "Bad Header")]).variable,
            "header_user"
        );
        assert_eq!(
            problem(&[("header_email", "Cookie")]).variable,
            "header_email"
        );
        assert_eq!(
            problem(&[("oidc_scopes", "email profile")]).variable,
            "oidc_scopes"
        );
        assert_eq!(
            problem(&[("session_lifetime_secs", "10")]).variable,
            "session_lifetime_secs"
        );
    }

    #[test]
    fn email_domains_are_normalized() {
        let s = settings_with(&[("allowed_email_domains", " Example.COM , bücher.example ")]);
        assert_eq!(
            s.allowed_email_domains,
            vec!["example.com".to_owned(), "xn--bcher-kva.example".to_owned()]
        );
        assert_eq!(
            problem(&[("allowed_email_domains", "not a domain")]).variable,
            "allowed_email_domains"
        );
    }

    #[test]
    fn rule_settings_are_refused_without_rule_support() {
        let vars = |set: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                set.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(refuse_rule_settings(vars(&[]), false), Ok(()));
        // Empty is unset; admin_token opens other admin APIs too.
        assert_eq!(
            refuse_rule_settings(vars(&[("rules", "  "), ("admin_token", "t")]), false),
            Ok(())
        );
        for name in ["rules", "rule_keys", "rule_secrets"] {
            let set: &'static [(&'static str, &'static str)] = match name {
                "rules" => &[("rules", r#"{"tenants": {}}"#)],
                "rule_keys" => &[("rule_keys", "k1:abc")],
                _ => &[("rule_secrets", "{}")],
            };
            let e = refuse_rule_settings(vars(set), false).unwrap_err();
            assert_eq!(e.variable, name);
            assert!(e.to_string().contains("cargo feature `rules`"), "{e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("variable `{name}`: is set")),
                "{e}"
            );
        }
        let e = refuse_rule_settings(vars(&[]), true).unwrap_err();
        assert_eq!(e.variable, "tenants");
        assert!(e.problem.starts_with("the tenant's `rules` is set"), "{e}");
    }
}
