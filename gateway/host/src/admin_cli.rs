//! What the `edgeauth tenant` and `edgeauth profiles` commands share: their
//! argument shape (positional arguments, `--flag value` / `--flag=value`)
//! and one call to a gateway's admin API (`admin_token` bearer, errors
//! reported with the API's message and field).

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use edgeauth_rules::event::{HttpRequest, HttpResponse};
use serde_json::Value;

use crate::client;

const TIMEOUT: Duration = Duration::from_secs(30);

pub struct Args {
    pub positional: Vec<String>,
    flags: Vec<(String, String)>,
    switches: Vec<String>,
    usage: &'static str,
}

impl Args {
    /// Every `--flag` takes a value; only those in `allowed` are accepted.
    pub fn parse(args: &[String], allowed: &[&str], usage: &'static str) -> Result<Args> {
        Self::parse_with(args, allowed, &[], usage)
    }

    /// [`Self::parse`] that also accepts the value-less `switches`.
    pub fn parse_with(
        args: &[String],
        allowed: &[&str],
        switches: &[&str],
        usage: &'static str,
    ) -> Result<Args> {
        let mut positional = Vec::new();
        let mut flags = Vec::new();
        let mut given_switches = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let Some(f) = a.strip_prefix("--") else {
                positional.push(a.clone());
                continue;
            };
            let (flag, inline) = match f.split_once('=') {
                Some((f, v)) => (format!("--{f}"), Some(v.to_owned())),
                None => (format!("--{f}"), None),
            };
            if inline.is_none() && switches.contains(&flag.as_str()) {
                given_switches.push(flag);
                continue;
            }
            if !allowed.contains(&flag.as_str()) {
                bail!("unknown option {flag}\n\n{usage}");
            }
            let v = match inline {
                Some(v) => v,
                None => it
                    .next()
                    .cloned()
                    .with_context(|| format!("{flag} needs a value"))?,
            };
            flags.push((flag, v));
        }
        Ok(Args {
            positional,
            flags,
            switches: given_switches,
            usage,
        })
    }

    /// Whether the switch was given.
    pub fn has(&self, switch: &str) -> bool {
        self.switches.iter().any(|s| s == switch)
    }

    /// The last value given for `flag`.
    pub fn value(&self, flag: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(f, _)| f == flag)
            .map(|(_, v)| v.as_str())
    }

    /// Exactly `N` positional arguments, described by `what` otherwise.
    pub fn exactly<const N: usize>(&self, what: &str) -> Result<[&str; N]> {
        let v: Vec<&str> = self.positional.iter().map(String::as_str).collect();
        v.try_into()
            .map_err(|_| anyhow!("expected {what}\n\n{}", self.usage))
    }

    /// `--gateway URL` or `EDGEAUTH_GATEWAY`, without a trailing slash.
    pub fn gateway(&self) -> Result<String> {
        self.value("--gateway")
            .map(str::to_owned)
            .or_else(|| std::env::var("EDGEAUTH_GATEWAY").ok())
            .map(|g| g.trim_end_matches('/').to_owned())
            .context("give the gateway's URL with --gateway URL or EDGEAUTH_GATEWAY")
    }
}

/// The request of one admin API call: the bearer token, the body with its
/// content type, and who acts (`x-edgeauth-actor`, named in the gateway's
/// audit lines). Every admin command builds its calls here.
pub fn request(
    token: &str,
    method: &str,
    url: &str,
    body: Option<(Vec<u8>, &str)>,
    actor: Option<&str>,
    timeout: Duration,
) -> HttpRequest {
    let mut headers = vec![("authorization".to_owned(), format!("Bearer {token}"))];
    let body = body.map(|(bytes, content_type)| {
        headers.push(("content-type".into(), content_type.into()));
        bytes
    });
    if let Some(actor) = actor {
        headers.push(("x-edgeauth-actor".into(), actor.into()));
    }
    HttpRequest {
        method: method.into(),
        url: url.to_owned(),
        headers,
        body,
        timeout_ms: timeout.as_millis() as u32,
    }
}

/// What an admin API refusal says: its `message`, and the `field` it is
/// about when it names one; `None` when the body is not the API's JSON.
pub fn refusal(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let message = v["message"].as_str()?;
    Some(match v["field"].as_str() {
        Some(f) => format!("{message} [field {f}]"),
        None => message.to_owned(),
    })
}

/// One admin API call to `<gateway><prefix><path>` with the token from
/// EDGEAUTH_ADMIN_TOKEN; the response for 2xx, else the API's error.
pub fn call(
    gateway: &str,
    prefix: &str,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> Result<HttpResponse> {
    let token = std::env::var("EDGEAUTH_ADMIN_TOKEN")
        .context("set EDGEAUTH_ADMIN_TOKEN to the gateway's admin_token (for `edgeauth profiles`: or one of the tenant's own tokens)")?;
    let url = format!("{gateway}{prefix}{path}");
    let body = body.map(|b| (b, "application/json"));
    let req = request(&token, method, &url, body, None, TIMEOUT);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let resp = rt
        .block_on(client::send(&req, TIMEOUT))
        .map_err(|e| anyhow!("{method} {url}: {e}"))?;
    if !(200..300).contains(&resp.status) {
        let message = refusal(&resp.body)
            .unwrap_or_else(|| String::from_utf8_lossy(&resp.body).trim().to_owned());
        bail!("{method} {url}: HTTP {}: {message}", resp.status);
    }
    Ok(resp)
}
