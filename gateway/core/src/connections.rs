//! A tenant's connections: the identity providers its people sign in with.
//!
//! A tenant lists them, in order, in the `connections` variable (or its
//! tenant document), a JSON array:
//!
//! ```json
//! [{"id": "corp", "name": "Acme SSO", "kind": "oidc", "issuer": "https://idp.acme.example",
//!   "client_id": "gw", "client_secret": "…", "email_domains": ["acme.com"]},
//!  {"id": "github", "name": "GitHub", "kind": "oauth2", "preset": "github",
//!   "client_id": "Iv1.…", "client_secret": "…"}]
//! ```
//!
//! Without `connections` the `oidc_*` variables make the one connection
//! `default` exactly as before connections existed: its callback is
//! `/.edgeauth/callback` and its subjects reach the origin as the IdP sent
//! them. Every listed connection has its own callback,
//! `/.edgeauth/callback/<id>`, and its subjects are namespaced as
//! `<id>|<subject>`, so two providers' subjects can never collide at the
//! origin (a connection id never contains `|`).

use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::provider::Endpoint;
use crate::settings::{ConfigError, is_loopback, normalize_domain};

/// The id of the connection made from the `oidc_*` variables.
pub const LEGACY_ID: &str = "default";
pub const MAX_CONNECTIONS: usize = 32;
const MAX_NAME_CHARS: usize = 64;
const MAX_ALLOWED_HOSTS: usize = 16;
const MAX_EMAIL_DOMAINS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: String,
    /// What people see on the chooser ("Sign in with <name>").
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
    /// Space-separated, as sent in the authorization request.
    pub scopes: String,
    /// Home-realm discovery: an email in one of these domains picks this
    /// connection without a choice (lower-case, IDNA-mapped).
    pub email_domains: Vec<String>,
    /// `host[:port]` (lower case, default port omitted) this connection's
    /// requests may go to besides the hosts of its configured URLs.
    pub allowed_hosts: Vec<String>,
    /// Made from the `oidc_*` variables: today's callback path and raw subjects.
    pub legacy: bool,
    /// The tenant trusts this provider's *verified* emails enough to link a
    /// new identity to the profile that has the same address
    /// (`crate::profiles`). Off unless configured: an IdP that lets people
    /// type any address and marks it verified must never link.
    pub trust_email: bool,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// OpenID Connect: discovery from the issuer, code + PKCE, ID token.
    Oidc { issuer: String },
    /// OAuth 2.0 without OpenID Connect: code (+ PKCE), token, userinfo.
    OAuth2(Box<OAuth2>),
}

/// How the token endpoint is told who the gateway is (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuth {
    ClientSecretBasic,
    ClientSecretPost,
}

/// Known providers whose rules the gateway knows (see `oauth2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    Github,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth2 {
    pub preset: Option<Preset>,
    pub authorization_endpoint: Endpoint,
    pub token_endpoint: Endpoint,
    pub userinfo_endpoint: Endpoint,
    /// GitHub: `/user/emails`, where the verified primary address is.
    pub emails_endpoint: Option<Endpoint>,
    pub pkce: bool,
    pub token_auth: TokenAuth,
    /// The authorization server's issuer identifier, if it has one: an `iss`
    /// in the authorization response must then equal it (RFC 9207).
    pub issuer: Option<String>,
    pub claims: ClaimMap,
}

/// Which field of the userinfo JSON is which claim. `subject` must be stable
/// for the person (GitHub: the numeric `id`, not the `login` they can change).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimMap {
    pub subject: String,
    #[serde(default)]
    pub email: Option<String>,
    /// Without it an email is never treated as verified.
    #[serde(default)]
    pub email_verified: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub picture: Option<String>,
    #[serde(default)]
    pub groups: Option<String>,
}

/// A connection as written in configuration.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    id: String,
    #[serde(default)]
    name: Option<String>,
    kind: RawKind,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    scopes: Option<String>,
    #[serde(default)]
    email_domains: Vec<String>,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    preset: Option<Preset>,
    #[serde(default)]
    authorization_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
    #[serde(default)]
    emails_endpoint: Option<String>,
    #[serde(default)]
    pkce: Option<bool>,
    #[serde(default)]
    token_auth: Option<TokenAuth>,
    #[serde(default)]
    claims: Option<ClaimMap>,
    #[serde(default)]
    trust_email: Option<bool>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum RawKind {
    Oidc,
    Oauth2,
}

/// Connection ids: 1-32 of `a-z 0-9 - _` (they appear in callback paths,
/// KV keys and namespaced subjects, and never contain `|`).
pub fn valid_id(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn problem(p: impl Into<String>) -> ConfigError {
    ConfigError {
        variable: "connections",
        problem: p.into(),
    }
}

/// `host[:port]` of a URL, lower case, default port omitted.
pub(crate) fn host_port(url: &Url) -> Option<String> {
    let host = url.host_str()?.to_ascii_lowercase();
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    })
}

/// `host[:port]` of a request URI, in [`host_port`]'s form.
pub fn uri_host_port(uri: &http::Uri) -> Option<String> {
    let host = uri.host()?.to_ascii_lowercase();
    let default = match uri.scheme_str() {
        Some("https") => 443,
        Some("http") => 80,
        _ => return None,
    };
    Some(match uri.port_u16() {
        Some(p) if p != default => format!("{host}:{p}"),
        _ => host,
    })
}

/// An issuer URL: https (http only on loopback), no query or fragment.
pub(crate) fn check_issuer(raw: &str) -> Result<String, String> {
    let issuer = raw.trim().to_owned();
    let url = Url::parse(&issuer).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(url.host()) => {}
        _ => return Err("must be an https URL (http only on loopback)".into()),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not contain a query or fragment".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain a user name or password".into());
    }
    Ok(issuer)
}

fn scopes_of(raw: Option<&str>, default: &str) -> String {
    raw.unwrap_or(default)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

impl Connection {
    /// The connection the `oidc_*` variables describe. Its requests go to the
    /// issuer's host only (before connections, Spin's allow list named that
    /// one host, so every working setup has its endpoints there).
    pub fn legacy(
        issuer: &str,
        client_id: &str,
        client_secret: &str,
        scopes: &str,
    ) -> Result<Connection, ConfigError> {
        let var = |variable: &'static str, p: String| ConfigError {
            variable,
            problem: p,
        };
        let issuer = check_issuer(issuer).map_err(|p| var("oidc_issuer", p))?;
        let scopes = scopes_of(Some(scopes), "");
        if !scopes.split(' ').any(|s| s == "openid") {
            return Err(var("oidc_scopes", "must include `openid`".into()));
        }
        let name = Url::parse(&issuer)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| issuer.clone());
        Ok(Connection {
            id: LEGACY_ID.to_owned(),
            name,
            client_id: client_id.trim().to_owned(),
            client_secret: client_secret.trim().to_owned(),
            scopes,
            email_domains: Vec::new(),
            allowed_hosts: Vec::new(),
            legacy: true,
            trust_email: false,
            kind: Kind::Oidc { issuer },
        })
    }

    pub fn is_oidc(&self) -> bool {
        matches!(self.kind, Kind::Oidc { .. })
    }

    /// PKCE (S256): always for OpenID providers, as configured for OAuth2.
    /// `Authorization` for `client_secret_basic` (RFC 6749 §2.3.1: the id
    /// and the secret are each form-encoded, then joined and base64-encoded).
    /// `None` never happens in practice (base64 is always a valid header
    /// value); the provider would then refuse the request with a clear error.
    pub fn client_secret_basic(&self) -> Option<http::HeaderValue> {
        use base64::Engine as _;
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            enc(&self.client_id),
            enc(&self.client_secret)
        ));
        let mut v = http::HeaderValue::from_str(&format!("Basic {basic}")).ok()?;
        v.set_sensitive(true);
        Some(v)
    }

    pub fn uses_pkce(&self) -> bool {
        match &self.kind {
            Kind::Oidc { .. } => true,
            Kind::OAuth2(o) => o.pkce,
        }
    }

    /// The issuer an authorization response's `iss` must equal (RFC 9207),
    /// if the provider has one.
    pub fn issuer(&self) -> Option<&str> {
        match &self.kind {
            Kind::Oidc { issuer } => Some(issuer),
            Kind::OAuth2(o) => o.issuer.as_deref(),
        }
    }

    /// The subject the origin sees: namespaced by connection, except for the
    /// legacy connection whose subjects origins already store.
    pub fn subject(&self, idp_subject: &str) -> String {
        if self.legacy {
            idp_subject.to_owned()
        } else {
            format!("{}|{idp_subject}", self.id)
        }
    }

    /// Path of this connection's redirect URI.
    pub fn callback_path(&self) -> String {
        if self.legacy {
            crate::routes::CALLBACK.to_owned()
        } else {
            format!("{}/{}", crate::routes::CALLBACK, self.id)
        }
    }

    /// Whether the gateway may send this connection's requests to `uri`:
    /// only to the hosts of its configured URLs and its `allowed_hosts`, so a
    /// provider's document cannot point the gateway at other hosts.
    pub fn may_call(&self, uri: &http::Uri) -> bool {
        let Some(target) = uri_host_port(uri) else {
            return false;
        };
        if self.allowed_hosts.contains(&target) {
            return true;
        }
        let of = |raw: &str| Url::parse(raw).ok().as_ref().and_then(host_port);
        match &self.kind {
            Kind::Oidc { issuer } => of(issuer).as_deref() == Some(target.as_str()),
            Kind::OAuth2(o) => [
                Some(&o.authorization_endpoint),
                Some(&o.token_endpoint),
                Some(&o.userinfo_endpoint),
                o.emails_endpoint.as_ref(),
            ]
            .into_iter()
            .flatten()
            .any(|e| uri_host_port(e.uri()).as_deref() == Some(target.as_str())),
        }
    }

    /// Whether an email's domain is one of this connection's (home realm).
    pub fn serves_email_domain(&self, domain: &str) -> bool {
        self.email_domains.iter().any(|d| d == domain)
    }
}

/// Parses the `connections` variable; empty means "none" (the legacy one).
pub fn parse(text: &str) -> Result<Vec<Connection>, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let raw: Vec<Value> = serde_json::from_str(text)
        .map_err(|e| problem(format!("not a JSON array of connections ({e})")))?;
    if raw.is_empty() {
        return Err(problem("lists no connection"));
    }
    if raw.len() > MAX_CONNECTIONS {
        return Err(problem(format!("at most {MAX_CONNECTIONS} connections")));
    }
    let mut out: Vec<Connection> = Vec::with_capacity(raw.len());
    for (i, value) in raw.into_iter().enumerate() {
        let label = value
            .get("id")
            .and_then(Value::as_str)
            .map(|id| format!("connections[{i}] (`{id}`)"))
            .unwrap_or_else(|| format!("connections[{i}]"));
        let at = |p: String| problem(format!("{label}: {p}"));
        let r: Raw = serde_json::from_value(value).map_err(|e| at(e.to_string()))?;
        let c = one(r).map_err(at)?;
        if out.iter().any(|o| o.id == c.id) {
            return Err(at(format!("the id `{}` is used twice", c.id)));
        }
        for d in &c.email_domains {
            if let Some(o) = out.iter().find(|o| o.serves_email_domain(d)) {
                return Err(at(format!(
                    "email domain `{d}` is also connection `{}`'s: home-realm discovery needs \
                     one connection per domain",
                    o.id
                )));
            }
        }
        out.push(c);
    }
    Ok(out)
}

fn required(v: Option<String>, field: &str) -> Result<String, String> {
    match v.map(|s| s.trim().to_owned()) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(format!("`{field}` is required")),
    }
}

fn endpoint(field: &'static str, raw: &str) -> Result<Endpoint, String> {
    Endpoint::parse(field, raw.trim()).map_err(|e| format!("`{field}`: {e}"))
}

fn required_endpoint(field: &'static str, v: Option<String>) -> Result<Endpoint, String> {
    endpoint(field, &required(v, field)?)
}

fn one(r: Raw) -> Result<Connection, String> {
    if !valid_id(&r.id) {
        return Err(format!(
            "`id` `{}` must be 1-32 of a-z 0-9 - _",
            r.id.chars().take(40).collect::<String>()
        ));
    }
    let name = r.name.map(|n| n.trim().to_owned()).unwrap_or_default();
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(format!(
            "`name` must be at most {MAX_NAME_CHARS} characters without control characters"
        ));
    }
    let client_id = required(r.client_id, "client_id")?;
    let client_secret = required(r.client_secret, "client_secret")?;
    if r.email_domains.len() > MAX_EMAIL_DOMAINS {
        return Err(format!("at most {MAX_EMAIL_DOMAINS} `email_domains`"));
    }
    let mut email_domains = Vec::new();
    for d in &r.email_domains {
        let n =
            normalize_domain(d).ok_or_else(|| format!("`email_domains`: `{d}` is not a domain"))?;
        if !email_domains.contains(&n) {
            email_domains.push(n);
        }
    }
    if r.allowed_hosts.len() > MAX_ALLOWED_HOSTS {
        return Err(format!("at most {MAX_ALLOWED_HOSTS} `allowed_hosts`"));
    }
    let mut allowed_hosts = Vec::new();
    for h in &r.allowed_hosts {
        let url = Url::parse(&format!("https://{}", h.trim()))
            .ok()
            .filter(|u| u.path() == "/" && u.username().is_empty() && u.query().is_none());
        let hp = url
            .as_ref()
            .and_then(host_port)
            .filter(|hp| hp.eq_ignore_ascii_case(h.trim()))
            .ok_or_else(|| format!("`allowed_hosts`: `{h}` is not host[:port]"))?;
        allowed_hosts.push(hp);
    }
    let kind = match r.kind {
        RawKind::Oidc => {
            for (field, set) in [
                ("preset", r.preset.is_some()),
                ("authorization_endpoint", r.authorization_endpoint.is_some()),
                ("token_endpoint", r.token_endpoint.is_some()),
                ("userinfo_endpoint", r.userinfo_endpoint.is_some()),
                ("emails_endpoint", r.emails_endpoint.is_some()),
                ("pkce", r.pkce.is_some()),
                ("token_auth", r.token_auth.is_some()),
                ("claims", r.claims.is_some()),
            ] {
                if set {
                    return Err(format!(
                        "`{field}` is for `oauth2` connections; an `oidc` connection reads its \
                         endpoints from the issuer's discovery document"
                    ));
                }
            }
            let issuer = check_issuer(&required(r.issuer, "issuer")?)
                .map_err(|p| format!("`issuer`: {p}"))?;
            Kind::Oidc { issuer }
        }
        RawKind::Oauth2 => {
            let preset = r.preset.map(crate::oauth2::preset);
            let pick = |given: Option<String>, from_preset: Option<&'static str>| {
                given.or_else(|| from_preset.map(str::to_owned))
            };
            let p = preset.as_ref();
            let authorization = pick(
                r.authorization_endpoint,
                p.map(|p| p.authorization_endpoint),
            );
            let token = pick(r.token_endpoint, p.map(|p| p.token_endpoint));
            let userinfo = pick(r.userinfo_endpoint, p.map(|p| p.userinfo_endpoint));
            let emails = pick(r.emails_endpoint, p.and_then(|p| p.emails_endpoint));
            let issuer = r
                .issuer
                .map(|i| check_issuer(&i).map_err(|p| format!("`issuer`: {p}")))
                .transpose()?;
            let claims = match (r.claims, p) {
                (Some(c), _) => c,
                (None, Some(p)) => p.claims.clone(),
                (None, None) => {
                    return Err(
                        "`claims` is required: at least {\"subject\": \"<field of the userinfo \
                         JSON that never changes for a person>\"}"
                            .into(),
                    );
                }
            };
            if claims.subject.trim().is_empty() {
                return Err("`claims.subject` must name a userinfo field".into());
            }
            Kind::OAuth2(Box::new(OAuth2 {
                preset: r.preset,
                authorization_endpoint: required_endpoint("authorization_endpoint", authorization)?,
                token_endpoint: required_endpoint("token_endpoint", token)?,
                userinfo_endpoint: required_endpoint("userinfo_endpoint", userinfo)?,
                emails_endpoint: emails
                    .map(|e| endpoint("emails_endpoint", &e))
                    .transpose()?,
                pkce: r.pkce.unwrap_or(p.is_none_or(|p| p.pkce)),
                token_auth: r
                    .token_auth
                    .or(p.map(|p| p.token_auth))
                    .unwrap_or(TokenAuth::ClientSecretBasic),
                issuer,
                claims,
            }))
        }
    };
    let default_scopes = match (&kind, r.preset) {
        (Kind::Oidc { .. }, _) => "openid email profile",
        (Kind::OAuth2(_), Some(p)) => crate::oauth2::preset(p).scopes,
        (Kind::OAuth2(_), None) => "",
    };
    let scopes = scopes_of(r.scopes.as_deref(), default_scopes);
    if matches!(kind, Kind::Oidc { .. }) && !scopes.split(' ').any(|s| s == "openid") {
        return Err("`scopes` must include `openid` for an `oidc` connection".into());
    }
    let name = if name.is_empty() {
        match &kind {
            Kind::OAuth2(o) if o.preset == Some(Preset::Github) => "GitHub".to_owned(),
            Kind::Oidc { issuer } => Url::parse(issuer)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| r.id.clone()),
            _ => r.id.clone(),
        }
    } else {
        name
    };
    Ok(Connection {
        id: r.id,
        name,
        client_id,
        client_secret,
        scopes,
        email_domains,
        allowed_hosts,
        legacy: false,
        // GitHub's verified primary address is one GitHub has confirmed the
        // person receives mail at (the only email the preset ever reports).
        trust_email: r.trust_email.unwrap_or(r.preset == Some(Preset::Github)),
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_of(json: &str) -> String {
        parse(json).unwrap_err().to_string()
    }

    #[test]
    fn parses_oidc_and_github() {
        let c = parse(
            r#"[{"id": "corp", "name": "Acme SSO", "kind": "oidc", "issuer": "https://idp.acme.example",
                 "client_id": "gw", "client_secret": "s", "email_domains": ["Acme.COM"]},
                {"id": "github", "kind": "oauth2", "preset": "github", "client_id": "i", "client_secret": "s"}]"#,
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].name, "Acme SSO");
        assert_eq!(c[0].scopes, "openid email profile");
        assert_eq!(c[0].email_domains, ["acme.com"]);
        assert_eq!(c[0].callback_path(), "/.edgeauth/callback/corp");
        assert_eq!(c[0].subject("abc"), "corp|abc");
        assert_eq!(c[1].name, "GitHub");
        let Kind::OAuth2(o) = &c[1].kind else {
            panic!("oauth2")
        };
        assert_eq!(o.claims.subject, "id");
        assert!(o.emails_endpoint.is_some());
    }

    #[test]
    fn legacy_keeps_raw_subjects_and_the_old_callback() {
        let c = Connection::legacy("http://127.0.0.2:9400", "gw", "s", "openid email").unwrap();
        assert_eq!(c.id, LEGACY_ID);
        assert_eq!(c.subject("abc"), "abc");
        assert_eq!(c.callback_path(), "/.edgeauth/callback");
    }

    #[test]
    fn calls_only_configured_hosts() {
        let c = parse(
            r#"[{"id": "corp", "kind": "oidc", "issuer": "https://idp.acme.example/tenant",
                 "client_id": "gw", "client_secret": "s", "allowed_hosts": ["keys.acme.example:8443"]}]"#,
        )
        .unwrap();
        let ok = |u: &str| c[0].may_call(&u.parse().unwrap());
        assert!(ok("https://idp.acme.example/token"));
        assert!(ok("https://IDP.acme.example:443/token"));
        assert!(ok("https://keys.acme.example:8443/jwks"));
        assert!(!ok("https://keys.acme.example/jwks"));
        assert!(!ok("https://idp.acme.example:8443/token"));
        assert!(!ok("https://169.254.169.254/latest"));
        assert!(!ok("/relative"));
    }

    #[test]
    fn errors_name_the_connection_and_field() {
        for (json, expected) in [
            ("{}", "not a JSON array"),
            ("[]", "lists no connection"),
            (
                r#"[{"id": "Bad", "kind": "oidc"}]"#,
                "connections[0] (`Bad`): `id`",
            ),
            (
                r#"[{"id": "a", "kind": "oidc", "issuer": "https://i.example", "client_secret": "s"}]"#,
                "connections[0] (`a`): `client_id` is required",
            ),
            (
                r#"[{"id": "a", "kind": "saml", "client_id": "x", "client_secret": "s"}]"#,
                "connections[0] (`a`): unknown variant `saml`",
            ),
            (
                r#"[{"id": "a", "kind": "oidc", "issuer": "http://i.example", "client_id": "x", "client_secret": "s"}]"#,
                "`issuer`: must be an https URL",
            ),
            (
                r#"[{"id": "a", "kind": "oidc", "issuer": "https://i.example", "client_id": "x", "client_secret": "s", "scopes": "email"}]"#,
                "`scopes` must include `openid`",
            ),
            (
                r#"[{"id": "a", "kind": "oauth2", "client_id": "x", "client_secret": "s", "authorization_endpoint": "https://a.example/a", "token_endpoint": "https://a.example/t", "userinfo_endpoint": "https://a.example/u"}]"#,
                "`claims` is required",
            ),
            (
                r#"[{"id": "a", "kind": "oauth2", "client_id": "x", "client_secret": "s", "claims": {"subject": "id"}}]"#,
                "`authorization_endpoint` is required",
            ),
            (
                r#"[{"id": "a", "kind": "oauth2", "preset": "github", "client_id": "x", "client_secret": "s", "token_endpoint": "https://a.example/a b"}]"#,
                "`token_endpoint`",
            ),
            (
                r#"[{"id": "a", "kind": "oidc", "issuer": "https://i.example", "client_id": "x", "client_secret": "s", "preset": "github"}]"#,
                "`preset` is for `oauth2`",
            ),
            (
                r#"[{"id": "a", "kind": "oidc", "issuer": "https://i.example", "client_id": "x", "client_secret": "s", "typo": 1}]"#,
                "unknown field `typo`",
            ),
            (
                r#"[{"id": "a", "kind": "oidc", "issuer": "https://i.example", "client_id": "x", "client_secret": "s"},
                    {"id": "a", "kind": "oidc", "issuer": "https://j.example", "client_id": "x", "client_secret": "s"}]"#,
                "connections[1] (`a`): the id `a` is used twice",
            ),
            (
                r#"[{"id": "a", "kind": "oidc", "issuer": "https://i.example", "client_id": "x", "client_secret": "s", "email_domains": ["x.com"]},
                    {"id": "b", "kind": "oidc", "issuer": "https://j.example", "client_id": "x", "client_secret": "s", "email_domains": ["X.com"]}]"#,
                "email domain `x.com` is also connection `a`'s",
            ),
            (
                r#"[{"id": "a", "kind": "oidc", "issuer": "https://i.example", "client_id": "x", "client_secret": "s", "allowed_hosts": ["https://x.example"]}]"#,
                "`allowed_hosts`",
            ),
        ] {
            let got = err_of(json);
            assert!(got.contains(expected), "{json}: {got}");
            assert!(got.starts_with("variable `connections`"), "{got}");
        }
    }
}
