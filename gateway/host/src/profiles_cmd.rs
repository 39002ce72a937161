//! `edgeauth profiles ...`: people's profiles, through a running gateway's
//! admin API (`/.edgeauth/admin/profiles`, see edgeauth_core::profile_admin).

use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use edgeauth_core::profile_admin;
use edgeauth_rules::event::{HttpRequest, HttpResponse};
use serde_json::Value;

use crate::client;

pub const USAGE: &str = "\
edgeauth profiles: people's profiles (README, \"Profile admin API\")

USAGE:
    edgeauth profiles get    TENANT PROFILE_ID
    edgeauth profiles find   TENANT --email ADDRESS
    edgeauth profiles find   TENANT --connection ID --subject SUBJECT
    edgeauth profiles patch  TENANT PROFILE_ID PATCH.json   (`-`: standard input)
    edgeauth profiles unlink TENANT PROFILE_ID CONNECTION SUBJECT
    edgeauth profiles delete TENANT PROFILE_ID              (erasure)
    edgeauth profiles export TENANT [--limit N]             (JSON lines, every page)

Every command takes --gateway URL (or EDGEAUTH_GATEWAY); the admin token is
read from EDGEAUTH_ADMIN_TOKEN. A patch is
{\"user_metadata\": {...}, \"app_metadata\": {...}}, each a JSON merge patch
(null removes a key).
";

const TIMEOUT: Duration = Duration::from_secs(30);

struct Args {
    positional: Vec<String>,
    flags: Vec<(String, String)>,
}

impl Args {
    fn parse(args: &[String], allowed: &[&str]) -> Result<Args> {
        let mut positional = Vec::new();
        let mut flags = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.strip_prefix("--") {
                Some(f) => {
                    let (flag, inline) = match f.split_once('=') {
                        Some((f, v)) => (format!("--{f}"), Some(v.to_owned())),
                        None => (format!("--{f}"), None),
                    };
                    if flag != "--gateway" && !allowed.contains(&flag.as_str()) {
                        bail!("unknown option {flag}\n\n{USAGE}");
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
                None => positional.push(a.clone()),
            }
        }
        Ok(Args { positional, flags })
    }

    fn value(&self, flag: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(f, _)| f == flag)
            .map(|(_, v)| v.as_str())
    }

    fn exactly<const N: usize>(&self, what: &str) -> Result<[&str; N]> {
        let v: Vec<&str> = self.positional.iter().map(String::as_str).collect();
        v.try_into()
            .map_err(|_| anyhow!("expected {what}\n\n{USAGE}"))
    }

    fn gateway(&self) -> Result<String> {
        self.value("--gateway")
            .map(str::to_owned)
            .or_else(|| std::env::var("EDGEAUTH_GATEWAY").ok())
            .map(|g| g.trim_end_matches('/').to_owned())
            .context("give the gateway's URL with --gateway URL or EDGEAUTH_GATEWAY")
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters (path
/// segments and query values: subjects may hold `/`, `|`, `@`, `+`).
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn main(args: &[String]) -> Result<()> {
    let Some(cmd) = args.first() else {
        print!("{USAGE}");
        return Ok(());
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "get" => {
            let a = Args::parse(rest, &[])?;
            let [t, id] = a.exactly("TENANT PROFILE_ID")?;
            print_json(&call(
                &a.gateway()?,
                "GET",
                &format!("/{}/{}", enc(t), enc(id)),
                None,
            )?)
        }
        "find" => {
            let a = Args::parse(rest, &["--email", "--connection", "--subject"])?;
            let [t] = a.exactly("TENANT")?;
            let query = match (
                a.value("--email"),
                a.value("--connection"),
                a.value("--subject"),
            ) {
                (Some(e), None, None) => format!("email={}", enc(e)),
                (None, Some(c), Some(s)) => format!("connection={}&subject={}", enc(c), enc(s)),
                _ => bail!("find by --email, or by --connection and --subject\n\n{USAGE}"),
            };
            print_json(&call(
                &a.gateway()?,
                "GET",
                &format!("/{}?{query}", enc(t)),
                None,
            )?)
        }
        "patch" => {
            let a = Args::parse(rest, &[])?;
            let [t, id, file] = a.exactly("TENANT PROFILE_ID PATCH.json")?;
            let body = if file == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)?;
                b
            } else {
                std::fs::read(file).with_context(|| format!("cannot read {file}"))?
            };
            let path = format!("/{}/{}", enc(t), enc(id));
            print_json(&call(&a.gateway()?, "PATCH", &path, Some(body))?)
        }
        "unlink" => {
            let a = Args::parse(rest, &[])?;
            let [t, id, c, s] = a.exactly("TENANT PROFILE_ID CONNECTION SUBJECT")?;
            let path = format!("/{}/{}/identities/{}/{}", enc(t), enc(id), enc(c), enc(s));
            call(&a.gateway()?, "DELETE", &path, None)?;
            println!("identity `{c}`/`{s}` unlinked from profile `{id}`");
            Ok(())
        }
        "delete" => {
            let a = Args::parse(rest, &[])?;
            let [t, id] = a.exactly("TENANT PROFILE_ID")?;
            call(
                &a.gateway()?,
                "DELETE",
                &format!("/{}/{}", enc(t), enc(id)),
                None,
            )?;
            println!("profile `{id}` erased from tenant `{t}`");
            Ok(())
        }
        "export" => {
            let a = Args::parse(rest, &["--limit"])?;
            let [t] = a.exactly("TENANT")?;
            let limit = a.value("--limit").unwrap_or("50");
            let gateway = a.gateway()?;
            let mut cursor = String::from("1");
            let mut out = std::io::stdout().lock();
            // One page in memory at a time, written out before the next.
            loop {
                let path = format!("/{}?cursor={cursor}&limit={}", enc(t), enc(limit));
                let resp = call(&gateway, "GET", &path, None)?;
                out.write_all(&resp.body)?;
                match header(&resp, "edgeauth-next-cursor") {
                    Some(next) => cursor = enc(next),
                    None => break,
                }
            }
            out.flush()?;
            Ok(())
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown profiles command {other:?}\n\n{USAGE}"),
    }
}

fn header<'a>(resp: &'a HttpResponse, name: &str) -> Option<&'a str> {
    resp.headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn print_json(resp: &HttpResponse) -> Result<()> {
    let v: Value = serde_json::from_slice(&resp.body).context("the gateway answered non-JSON")?;
    println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    Ok(())
}

/// One admin API call; the response for 2xx, else the API's error.
fn call(gateway: &str, method: &str, path: &str, body: Option<Vec<u8>>) -> Result<HttpResponse> {
    let token = std::env::var("EDGEAUTH_ADMIN_TOKEN")
        .context("set EDGEAUTH_ADMIN_TOKEN to the gateway's admin_token")?;
    let url = format!("{gateway}{}{path}", profile_admin::PREFIX);
    let mut headers = vec![("authorization".to_owned(), format!("Bearer {token}"))];
    if body.is_some() {
        headers.push(("content-type".into(), "application/json".into()));
    }
    let req = HttpRequest {
        method: method.into(),
        url: url.clone(),
        headers,
        body,
        timeout_ms: TIMEOUT.as_millis() as u32,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let resp = rt
        .block_on(client::send(&req, TIMEOUT))
        .map_err(|e| anyhow!("{method} {url}: {e}"))?;
    if !(200..300).contains(&resp.status) {
        let body: Value = serde_json::from_slice(&resp.body).unwrap_or(Value::Null);
        let message = body["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| String::from_utf8_lossy(&resp.body).trim().to_owned());
        let field = body["field"]
            .as_str()
            .map(|f| format!(" [field {f}]"))
            .unwrap_or_default();
        bail!("{method} {url}: HTTP {}: {message}{field}", resp.status);
    }
    Ok(resp)
}
