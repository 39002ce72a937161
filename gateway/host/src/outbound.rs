//! Outbound HTTP: Spin's `allowed_outbound_hosts` rules, and the wasi:http
//! hook that enforces them and bounds every request in time.
//!
//! The entry grammar mirrors Spin's outbound-networking config
//! (`scheme://host[:port]`): `*` for any scheme/host/port, `*.domain` for
//! subdomains only, CIDR ranges, `a..b` port ranges (end exclusive), default
//! ports per scheme, `self`/`self.alt` for requests back to this app, no
//! paths (one trailing `/` tolerated). Templated entries are resolved with the
//! application variables; an entry that resolves to nothing (`""`,
//! `http://`, `https://`) is skipped so an optional endpoint can be left empty.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use http_body_util::BodyExt;
use wasmtime_wasi_http::{RequestOptions, WasiBody, WasiHttpHooks};

use crate::variables::{AppVariables, Template};

/// One parsed `allowed_outbound_hosts` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedHost {
    /// `None` means any scheme (`*://`).
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostPattern {
    Any,
    /// `*.example.com`, stored as `.example.com`: matches strict subdomains.
    Subdomain(String),
    /// `self` / `self.alt`: only requests addressed to the app itself.
    ToSelf,
    Domain(String),
    Ip(IpAddr),
    Cidr(IpAddr, u8),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PortPattern {
    Any,
    /// Single ports are stored as `p..p+1`.
    Range(u32, u32),
}

/// Default ports Spin knows per scheme; an entry without a port for any other
/// scheme is invalid.
fn well_known_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        "postgres" => Some(5432),
        "mysql" => Some(3306),
        "redis" => Some(6379),
        "mqtt" => Some(1883),
        _ => None,
    }
}

const FORMAT_HELP: &str =
    "hosts must be in the form <scheme>://<host>[:<port>], with '*' wildcards allowed for each";

impl AllowedHost {
    pub fn parse(entry: &str) -> Result<Self> {
        let url = entry.trim();
        // Credentials would end up in logs through the messages below.
        if url.contains('@') {
            bail!(
                "an allowed outbound host must not contain a user name or password (value not shown): {FORMAT_HELP}"
            );
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            if matches!(url, "*" | ":" | "" | "?") {
                bail!(
                    "{url:?} is not an allowed outbound host format: {FORMAT_HELP}; '*://*:*' allows everything"
                );
            }
            bail!("{url:?} does not contain a scheme (e.g., 'http://' or '*://')");
        };
        // The last ':' separates the port unless the whole rest is already a
        // valid host (IPv6 literals and CIDRs contain colons).
        let (host, port) = match rest.rsplit_once(':') {
            None => (rest, ""),
            Some((h, "")) => (h, ""),
            Some((h, tail)) if parse_host(rest).is_err() => {
                let port = match tail.split_once('/') {
                    Some((_, path)) if !path.is_empty() => {
                        bail!("{url:?} has a path but is not allowed to")
                    }
                    Some((port, _)) => port,
                    None => tail,
                };
                (h, port)
            }
            Some(_) => (rest, ""),
        };
        let port = parse_port(port, scheme)
            .with_context(|| format!("invalid allowed host port {port:?} in {url:?}"))?;
        let scheme = parse_scheme(scheme)
            .with_context(|| format!("invalid allowed host scheme {scheme:?} in {url:?}"))?;
        let host = parse_host(host)
            .with_context(|| format!("invalid allowed host {host:?} in {url:?}"))?;
        Ok(Self { scheme, host, port })
    }

    fn allows(&self, scheme: &str, host: &RequestHost, port: Option<u16>) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        let host_ok = match (&self.host, host) {
            (HostPattern::Any, _) => true,
            (HostPattern::Subdomain(suffix), RequestHost::Domain(d)) => {
                d.ends_with(suffix.as_str())
            }
            (HostPattern::Domain(a), RequestHost::Domain(b)) => a == b,
            (HostPattern::Ip(a), RequestHost::Ip(b)) => a == b,
            (HostPattern::Cidr(net, len), RequestHost::Ip(ip)) => cidr_contains(*net, *len, *ip),
            _ => false,
        };
        host_ok && self.port_allows(scheme, port)
    }

    fn port_allows(&self, scheme: &str, port: Option<u16>) -> bool {
        match self.port {
            PortPattern::Any => true,
            PortPattern::Range(lo, hi) => match port.or_else(|| well_known_port(scheme)) {
                Some(p) => (lo..hi).contains(&u32::from(p)),
                None => false,
            },
        }
    }

    fn allows_self(&self) -> bool {
        let scheme_ok = match &self.scheme {
            None => true,
            Some(s) => s == "http" || s == "https",
        };
        scheme_ok && matches!(self.host, HostPattern::Any | HostPattern::ToSelf)
    }
}

fn parse_scheme(scheme: &str) -> Result<Option<String>> {
    if scheme == "*" {
        return Ok(None);
    }
    ensure!(!scheme.starts_with('{'), "scheme lists are not supported");
    ensure!(
        !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphabetic()),
        "only alphabetic characters are allowed"
    );
    Ok(Some(scheme.to_ascii_lowercase()))
}

fn parse_port(port: &str, scheme: &str) -> Result<PortPattern> {
    if port.is_empty() {
        let p = well_known_port(scheme).with_context(|| {
            format!("no port was provided and the scheme {scheme:?} does not have a known default port number")
        })?;
        return Ok(PortPattern::Range(p.into(), u32::from(p) + 1));
    }
    if port == "*" {
        return Ok(PortPattern::Any);
    }
    ensure!(!port.starts_with('{'), "port lists are not supported");
    if let Some((lo, hi)) = port.split_once("..") {
        let lo: u16 = lo
            .parse()
            .with_context(|| format!("port range {port:?} contains non-number"))?;
        let hi: u16 = hi
            .parse()
            .with_context(|| format!("port range {port:?} contains non-number"))?;
        return Ok(PortPattern::Range(lo.into(), hi.into()));
    }
    let p: u16 = port
        .parse()
        .with_context(|| format!("port {port:?} is not a number"))?;
    Ok(PortPattern::Range(p.into(), u32::from(p) + 1))
}

fn parse_host(host: &str) -> Result<HostPattern> {
    let host = host.trim();
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    if host == "self" || host == "self.alt" {
        return Ok(HostPattern::ToSelf);
    }
    ensure!(!host.starts_with('{'), "host lists are not supported");
    if let Some((ip, len)) = parse_cidr(host) {
        return Ok(HostPattern::Cidr(ip, len));
    }
    let host = host.strip_suffix('/').unwrap_or(host);
    ensure!(!host.contains('/'), "must not include a path");
    if let Some(domain) = host.strip_prefix("*.") {
        ensure!(
            !domain.contains('*'),
            "wildcards are allowed only as prefixes"
        );
        return match parse_literal(domain)? {
            RequestHost::Domain(d) => Ok(HostPattern::Subdomain(format!(".{d}"))),
            RequestHost::Ip(_) => bail!("wildcard suffix must be a domain"),
        };
    }
    ensure!(
        !host.contains('*'),
        "wildcards are allowed only as subdomains"
    );
    Ok(match parse_literal(host)? {
        RequestHost::Domain(d) => HostPattern::Domain(d),
        RequestHost::Ip(ip) => HostPattern::Ip(ip),
    })
}

/// `addr/len` with an IPv4 or unbracketed IPv6 address; host bits are
/// ignored (Spin truncates them too).
fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = s.split_once('/')?;
    let ip: IpAddr = addr.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

fn cidr_contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    fn prefix_eq(a: u128, b: u128, bits: u32, len: u8) -> bool {
        let len = u32::from(len);
        if len == 0 {
            return true;
        }
        let shift = bits - len;
        (a >> shift) == (b >> shift)
    }
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            prefix_eq(u32::from(n).into(), u32::from(i).into(), 32, len)
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => prefix_eq(u128::from(n), u128::from(i), 128, len),
        _ => false,
    }
}

/// A host as it appears in a request or a literal entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestHost {
    Domain(String),
    Ip(IpAddr),
}

/// Parses a host: `[v6]`, dotted IPv4, or a DNS name (lower-cased). Rejects
/// anything a URL parser would refuse or reinterpret (percent escapes,
/// brackets, backslashes, numeric-looking names that are not valid IPv4).
pub fn parse_literal(host: &str) -> Result<RequestHost> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .context("unterminated IPv6 literal")?;
        let ip: Ipv6Addr = inner.parse().context("invalid IPv6 literal")?;
        return Ok(RequestHost::Ip(IpAddr::V6(ip)));
    }
    ensure!(!host.is_empty(), "empty host");
    let last_label = host.trim_end_matches('.').rsplit('.').next().unwrap_or("");
    let numeric = !last_label.is_empty()
        && (last_label.bytes().all(|b| b.is_ascii_digit())
            || last_label.to_ascii_lowercase().starts_with("0x"));
    if numeric {
        let ip: Ipv4Addr = host.parse().context("invalid IPv4 address")?;
        return Ok(RequestHost::Ip(IpAddr::V4(ip)));
    }
    let ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    ensure!(ok, "invalid character in host name {host:?}");
    // One trailing dot (a fully qualified name) is fine; other empty labels are not.
    let labels = host.strip_suffix('.').unwrap_or(host);
    ensure!(
        !labels.split('.').any(str::is_empty),
        "empty label in host name {host:?}"
    );
    Ok(RequestHost::Domain(host.to_ascii_lowercase()))
}

/// A component's resolved `allowed_outbound_hosts`.
#[derive(Clone, Debug, Default)]
pub struct AllowedHosts {
    entries: Vec<AllowedHost>,
    /// Entries as shown to operators (templates touching secrets unexpanded).
    display: Vec<String>,
}

impl AllowedHosts {
    pub fn resolve(raw: &[String], app: &AppVariables) -> Result<Self> {
        if raw.len() == 1 && raw[0] == "insecure:allow-all" {
            bail!(
                "'insecure:allow-all' is not allowed - use '*://*:*' instead if you really want to allow all outbound traffic"
            );
        }
        let mut out = Self::default();
        for entry in raw {
            let template = Template::parse(entry)?;
            if template.is_literal() {
                out.entries.push(AllowedHost::parse(entry)?);
                out.display.push(entry.clone());
                continue;
            }
            let resolved = app
                .render(&template)
                .with_context(|| format!("allowed_outbound_hosts entry {entry:?}"))?;
            if resolved.is_empty() || resolved == "http://" || resolved == "https://" {
                continue;
            }
            let secret = app.touches_secret(&template);
            let parsed = match AllowedHost::parse(&resolved) {
                Ok(p) => p,
                // The parse error quotes the value, which must not reach logs.
                Err(_) if secret => bail!(
                    "allowed_outbound_hosts entry {entry:?} resolves to an invalid host (value not shown: it uses a secret variable)"
                ),
                Err(e) => {
                    return Err(e.context(format!(
                        "allowed_outbound_hosts entry {entry:?} resolves to an invalid host"
                    )));
                }
            };
            out.entries.push(parsed);
            out.display.push(if secret {
                entry.clone()
            } else {
                format!("{resolved} (from {entry})")
            });
        }
        Ok(out)
    }

    pub fn display(&self) -> &[String] {
        &self.display
    }

    /// Whether an absolute request URL is allowed. `scheme` is the request's
    /// scheme, `host` its host (IPv6 in brackets), `port` its explicit port.
    pub fn allows(&self, scheme: &str, host: &str, port: Option<u16>) -> bool {
        let Ok(host) = parse_literal(host) else {
            return false;
        };
        let scheme = scheme.to_ascii_lowercase();
        self.entries.iter().any(|e| e.allows(&scheme, &host, port))
    }

    pub fn allows_self(&self) -> bool {
        self.entries.iter().any(AllowedHost::allows_self)
    }
}

/// Time limits applied when the component sets none, so an unresponsive
/// origin cannot hold a request (and its instance) forever.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub between_bytes: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            first_byte: Duration::from_secs(30),
            between_bytes: Duration::from_secs(30),
        }
    }
}

/// Per-component outbound policy, shared by all its instances.
#[derive(Debug)]
pub struct OutboundPolicy {
    pub component_id: String,
    pub allowed: AllowedHosts,
    /// Authority (`127.0.0.1:3000`) that `self`/`self.alt` requests go to.
    pub self_authority: String,
    pub timeouts: Timeouts,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Addressed to `self.alt`: rewrite to the app's own listener.
    ToSelf,
    Deny,
}

impl OutboundPolicy {
    pub fn decide(&self, uri: &http::Uri) -> Decision {
        let Some(authority) = uri.authority() else {
            return Decision::Deny;
        };
        let scheme = uri.scheme_str().unwrap_or("https");
        if authority.host().eq_ignore_ascii_case("self.alt") {
            return if self.allowed.allows_self() {
                Decision::ToSelf
            } else {
                Decision::Deny
            };
        }
        if self
            .allowed
            .allows(scheme, authority.host(), authority.port_u16())
        {
            Decision::Allow
        } else {
            Decision::Deny
        }
    }

    fn with_defaults(&self, options: Option<RequestOptions>) -> RequestOptions {
        let o = options.unwrap_or_default();
        RequestOptions {
            connect_timeout: Some(o.connect_timeout.unwrap_or(self.timeouts.connect)),
            first_byte_timeout: Some(o.first_byte_timeout.unwrap_or(self.timeouts.first_byte)),
            between_bytes_timeout: Some(
                o.between_bytes_timeout
                    .unwrap_or(self.timeouts.between_bytes),
            ),
        }
    }
}

/// The wasi:http hooks of one instance: everything default except
/// `send_request`, which enforces the policy.
pub struct OutboundHooks {
    pub policy: Arc<OutboundPolicy>,
}

type SendResult = wasmtime_wasi_http::Result<(
    http::Response<WasiBody>,
    Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
)>;

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        // Nothing here can act on the guest's report of response-processing
        // errors; the guest sees those itself.
        drop(fut);
        let policy = self.policy.clone();
        Box::new(async move {
            match policy.decide(request.uri()) {
                Decision::Allow => {}
                Decision::ToSelf => {
                    let paq = request
                        .uri()
                        .path_and_query()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_else(|| "/".to_string());
                    let uri = format!("http://{}{paq}", policy.self_authority);
                    *request.uri_mut() = uri
                        .parse()
                        .map_err(|_| wasmtime_wasi_http::Error::HttpRequestUriInvalid)?;
                    if let Ok(v) = http::HeaderValue::from_str(&policy.self_authority) {
                        request.headers_mut().insert(http::header::HOST, v);
                    }
                }
                Decision::Deny => {
                    let uri = request.uri();
                    eprintln!(
                        "edgeauth: outbound request to {}://{} denied: not in allowed_outbound_hosts of component {:?}",
                        uri.scheme_str().unwrap_or("?"),
                        uri.authority().map(|a| a.as_str()).unwrap_or("<none>"),
                        policy.component_id
                    );
                    return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
                }
            }
            let options = policy.with_defaults(options);
            if request.uri().scheme() == Some(&http::uri::Scheme::HTTP) {
                // Plain http (the origin next door): keep-alive connections.
                let response = crate::pool::global().send(request, options).await?;
                let io = async { Ok(()) };
                return Ok((response, Box::new(io) as Box<dyn Future<Output = _> + Send>));
            }
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variables::VariableDecl;
    use std::collections::BTreeMap;

    fn app(vars: &[(&str, &str)]) -> AppVariables {
        let decls: BTreeMap<String, VariableDecl> = vars
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    VariableDecl {
                        default: Some(v.to_string()),
                        required: false,
                        secret: false,
                    },
                )
            })
            .collect();
        AppVariables::resolve(&decls, |_| None).unwrap()
    }

    fn hosts(entries: &[&str]) -> AllowedHosts {
        let raw: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
        AllowedHosts::resolve(&raw, &app(&[])).unwrap()
    }

    fn policy(entries: &[&str]) -> OutboundPolicy {
        OutboundPolicy {
            component_id: "gateway".into(),
            allowed: hosts(entries),
            self_authority: "127.0.0.1:3000".into(),
            timeouts: Timeouts::default(),
        }
    }

    fn allowed(p: &OutboundPolicy, url: &str) -> Decision {
        p.decide(&url.parse().unwrap())
    }

    /// The project's own spin.toml, read as `edgeauth up` reads it: any host
    /// over https, plain http on loopback only (what the settings accept,
    /// gateway/core/src/settings.rs), as the real Spin decides for it.
    #[test]
    fn the_project_manifest_allows_https_anywhere_and_http_on_loopback_only() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let m = crate::manifest::Manifest::load(&dir.join("spin.toml")).unwrap();
        let raw = &m.components["gateway"].allowed_outbound_hosts;
        let p = OutboundPolicy {
            component_id: "gateway".into(),
            allowed: AllowedHosts::resolve(raw, &app(&[])).unwrap(),
            self_authority: "127.0.0.1:3000".into(),
            timeouts: Timeouts::default(),
        };
        for url in [
            "https://idp.example/token",
            "https://idp.example:8443/jwks",
            "https://10.0.0.5/",
            "http://127.0.0.1:3001/",
            "http://127.0.0.2:9400/.well-known/openid-configuration",
            "http://127.255.0.1/",
            "http://[::1]:8080/",
            "http://localhost:3001/",
        ] {
            assert_eq!(allowed(&p, url), Decision::Allow, "{url}");
        }
        for url in [
            "http://idp.example/",
            "http://10.0.0.5:8080/",
            "http://128.0.0.1/",
            "http://[::2]/",
            "http://localhost.example/",
        ] {
            assert_eq!(allowed(&p, url), Decision::Deny, "{url}");
        }
    }

    #[test]
    fn credentials_are_refused_without_being_echoed() {
        for entry in ["http://user:s3cret@127.0.0.1:3001", "user:s3cret@127.0.0.1"] {
            let e = AllowedHost::parse(entry).unwrap_err();
            assert!(!format!("{e:#}").contains("s3cret"), "{e:#}");
        }
    }

    #[test]
    fn entry_grammar_matches_spin() {
        let valid = [
            "http://spin.fermyon.dev",
            "http://spin.fermyon.dev/",
            "https://spin.fermyon.dev:5555",
            "http://spin.fermyon.dev:4444/",
            "http://spin.fermyon.dev:4444..5555",
            "*://spin.fermyon.dev:7777",
            "http://self",
            "http://self.alt",
            "http://localhost:3001",
            "http://*.example.com",
            "http://192.168.1.1:3002",
            "http://[::1]",
            "http://[::1]:8001",
            "http://[::1]:*",
            "*://127.0.0.0/24:80",
            "http://10.0.0.0/8",
            "http://ff00::/8",
            "http://2001:db8::/32:443",
            "*://*:*",
            "mysql://db.internal",
            "  https://trimmed.example  ",
        ];
        for v in valid {
            assert!(
                AllowedHost::parse(v).is_ok(),
                "{v:?} should be valid: {:?}",
                AllowedHost::parse(v)
            );
        }
        let invalid = [
            "spin.fermyon.dev",
            "spin.fermyon.dev:80",
            "localhost",
            "*",
            "",
            "http://spin.fermyon.dev/a",
            "http://spin.fermyon.dev:6666/a/b",
            "http://*.fermyon.dev/a",
            "https://idp.example/realms/acme",
            "http://example.com//",
            "http://self//",
            "http://[::1]//",
            "http://example.com:notaport",
            "http://example.com:8080..70000",
            "http://example.com:99999",
            "http://*.example.com:8080..",
            "http://*.",
            "http://*.:8080",
            "http://a.*.example.com",
            "http://ex*ample.com",
            "http://*.127.0.0.1",
            "http://*.[::1]",
            "http://example%2.com",
            "http://exa[mple.com",
            r"http://exa\mple.com",
            "http://example.com:80:90",
            "http://[::1",
            "http://[::1]junk",
            "ftp://files.example",
            "ht3p://x.example",
            "{http,https}://x.example",
            "http://{a,b}.example",
            "*://127.0.0.0/24",
        ];
        for v in invalid {
            assert!(AllowedHost::parse(v).is_err(), "{v:?} should be invalid");
        }
        assert!(AllowedHosts::resolve(&["insecure:allow-all".to_string()], &app(&[])).is_err());
    }

    #[test]
    fn request_matching_table() {
        let p = policy(&[
            "*://spin.fermyon.dev:443",
            "http://example.com:8383",
            "https://*.example.org",
            "http://127.0.0.1:9001",
            "http://[::1]:8080",
            "http://10.1.0.0/16:*",
            "https://Upper.Example.NET",
        ]);
        let table = [
            ("http://example.com:8383/foo/bar", true),
            ("http://example.com/", false),
            ("http://example.com:8384/", false),
            ("https://example.com:8383/", false),
            ("https://spin.fermyon.dev", true),
            ("https://spin.fermyon.dev/x?y=1", true),
            ("http://spin.fermyon.dev:443/", true),
            ("http://spin.fermyon.dev/", false),
            ("https://a.example.org/p", true),
            ("https://a.b.example.org", true),
            ("https://A.EXAMPLE.ORG", true),
            ("https://example.org", false),
            ("https://myexample.org", false),
            ("http://a.example.org", false),
            ("https://a.example.org:8443", false),
            ("http://127.0.0.1:9001/app", true),
            ("http://127.0.0.1:9002/app", false),
            ("http://localhost:9001/app", false),
            ("http://[::1]:8080/", true),
            ("http://[::1]:8081/", false),
            ("http://10.1.200.3:1234/", true),
            ("http://10.2.0.1:1234/", false),
            ("https://upper.example.net/", true),
            ("http://google.com/", false),
        ];
        for (url, want) in table {
            let got = allowed(&p, url) == Decision::Allow;
            assert_eq!(got, want, "{url}");
        }
    }

    #[test]
    fn wildcards_and_ranges() {
        let p = policy(&[
            "http://*.example2.com:8383",
            "http://ranged.example:4444..5555",
            "*://*:*",
        ]);
        assert_eq!(allowed(&p, "https://anything.test:1/"), Decision::Allow);
        let p = policy(&[
            "http://*.example2.com:8383",
            "http://ranged.example:4444..5555",
        ]);
        assert_eq!(
            allowed(&p, "http://a.b.example2.com:8383/foo"),
            Decision::Allow
        );
        assert_eq!(allowed(&p, "http://a.b.example2.com/foo"), Decision::Deny);
        assert_eq!(allowed(&p, "http://example2.com:8383/"), Decision::Deny);
        assert_eq!(allowed(&p, "http://ranged.example:4444/"), Decision::Allow);
        assert_eq!(allowed(&p, "http://ranged.example:5554/"), Decision::Allow);
        // Spin's ranges exclude their end.
        assert_eq!(allowed(&p, "http://ranged.example:5555/"), Decision::Deny);
    }

    #[test]
    fn self_requests() {
        let p = policy(&["http://self"]);
        assert_eq!(allowed(&p, "http://self.alt/health"), Decision::ToSelf);
        assert_eq!(allowed(&p, "http://127.0.0.1:3000/"), Decision::Deny);
        let p = policy(&["https://idp.example"]);
        assert_eq!(allowed(&p, "http://self.alt/health"), Decision::Deny);
        let p = policy(&["*://*:*"]);
        assert_eq!(allowed(&p, "http://self.alt/x"), Decision::ToSelf);
    }

    #[test]
    fn templates_resolve_with_app_variables() {
        let vars = app(&[
            ("origin_url", "http://127.0.0.1:9001"),
            ("idp_host", "idp.example"),
            ("empty", ""),
            ("with_path", "https://idp.example/realms/acme"),
            ("with_slash", "https://idp.example/"),
        ]);
        let raw = |e: &[&str]| e.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let h = AllowedHosts::resolve(
            &raw(&["{{ origin_url }}", "https://{{idp_host}}:8443"]),
            &vars,
        )
        .unwrap();
        assert!(h.allows("http", "127.0.0.1", Some(9001)));
        assert!(h.allows("https", "idp.example", Some(8443)));
        assert!(!h.allows("https", "idp.example", None));
        assert_eq!(
            h.display()[0],
            "http://127.0.0.1:9001 (from {{ origin_url }})"
        );

        // Empty resolutions are skipped, as in Spin (optional endpoints).
        let h = AllowedHosts::resolve(
            &raw(&["{{ empty }}", "https://{{ empty }}", "http://{{empty}}"]),
            &vars,
        )
        .unwrap();
        assert!(h.display().is_empty());

        // A variable carrying a path makes the entry invalid, as in Spin.
        let err = AllowedHosts::resolve(&raw(&["{{ with_path }}"]), &vars).unwrap_err();
        assert!(format!("{err:#}").contains("path"), "{err:#}");
        // A single trailing slash is tolerated.
        let h = AllowedHosts::resolve(&raw(&["{{ with_slash }}"]), &vars).unwrap();
        assert!(h.allows("https", "idp.example", None));
        // Unknown variables are an error.
        assert!(AllowedHosts::resolve(&raw(&["{{ nope }}"]), &vars).is_err());

        // Secret values are neither shown nor echoed in errors.
        let mut decls = BTreeMap::new();
        decls.insert(
            "hidden".to_string(),
            VariableDecl {
                default: Some("https://tok3n.example/p".to_string()),
                required: false,
                secret: true,
            },
        );
        let secret_vars = AppVariables::resolve(&decls, |_| None).unwrap();
        let err = AllowedHosts::resolve(&raw(&["{{ hidden }}"]), &secret_vars).unwrap_err();
        assert!(!format!("{err:#}").contains("tok3n"), "{err:#}");
    }

    #[test]
    fn default_timeouts_fill_only_missing_values() {
        let p = policy(&[]);
        let o = p.with_defaults(None);
        assert_eq!(o.connect_timeout, Some(Duration::from_secs(5)));
        assert_eq!(o.first_byte_timeout, Some(Duration::from_secs(30)));
        let o = p.with_defaults(Some(RequestOptions {
            connect_timeout: Some(Duration::from_millis(100)),
            ..Default::default()
        }));
        assert_eq!(o.connect_timeout, Some(Duration::from_millis(100)));
        assert_eq!(o.first_byte_timeout, Some(Duration::from_secs(30)));
    }
}
