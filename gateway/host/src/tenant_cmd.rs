//! `edgeauth tenant ...`: tenant documents, through a running gateway's
//! admin API (`/.edgeauth/admin/tenants`, see edgeauth_core::tenant_docs),
//! or checked offline with the gateway's own validation.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, anyhow, bail};
use edgeauth_core::settings::Settings;
use edgeauth_core::tenant_docs;
use serde_json::{Map, Value, json};

use crate::admin_cli::{self, Args};
use crate::manifest::Manifest;
use crate::variables::ENV_PREFIX;

pub const USAGE: &str = "\
edgeauth tenant: manage tenant documents (README, \"Tenant documents\")

USAGE:
    edgeauth tenant put      TENANT.json [--id ID] [--gateway URL]
    edgeauth tenant get      ID [--gateway URL]
    edgeauth tenant list     [--gateway URL]
    edgeauth tenant delete   ID [--gateway URL]
    edgeauth tenant validate TENANT.json [--id ID] [--manifest spin.toml] [--gateway URL]

The id is --id or the document's `id`. The gateway is --gateway or
EDGEAUTH_GATEWAY (its base URL, any host it answers on); the admin token is
read from EDGEAUTH_ADMIN_TOKEN. `get` shows secrets as {\"set\": true}; a
document read back can be edited and put again (omitted secrets are kept).

`validate` without --gateway runs the gateway's own checks here: the
document's settings over the gateway variables from SPIN_VARIABLE_<NAME>,
then the manifest's defaults, with placeholders for the gateway-wide keys;
with --gateway it asks that gateway (which also checks hosts in use).
";

pub fn main(args: &[String]) -> Result<()> {
    let Some(cmd) = args.first() else {
        print!("{USAGE}");
        return Ok(());
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "put" => {
            let a = Args::parse(rest, &["--id", "--gateway"], USAGE)?;
            let path = PathBuf::from(a.exactly::<1>("one tenant document (.json)")?[0]);
            let doc = read_doc(&path)?;
            let id = id_of(&a, &doc, &path)?;
            let out = call(&a.gateway()?, "PUT", &format!("/{id}"), Some(&doc))?;
            let verb = if out.0 == 201 { "created" } else { "updated" };
            println!("tenant `{id}` {verb}:");
            println!("{}", pretty(&out.1));
            Ok(())
        }
        "get" => {
            let a = Args::parse(rest, &["--gateway"], USAGE)?;
            let id = a.exactly::<1>("one tenant id")?[0];
            println!(
                "{}",
                pretty(&call(&a.gateway()?, "GET", &format!("/{id}"), None)?.1)
            );
            Ok(())
        }
        "list" => {
            let a = Args::parse(rest, &["--gateway"], USAGE)?;
            if !a.positional.is_empty() {
                bail!("`list` takes no arguments\n\n{USAGE}");
            }
            let (_, body) = call(&a.gateway()?, "GET", "", None)?;
            let list = body["tenants"].as_array().cloned().unwrap_or_default();
            println!(
                "{:<24} {:<32} {:<9} {:<24} CONNECTIONS",
                "ID", "HOST", "SOURCE", "NAME"
            );
            for t in list {
                let s = |k: &str| t[k].as_str().unwrap_or("").to_owned();
                let conns: Vec<&str> = t["connections"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                println!(
                    "{:<24} {:<32} {:<9} {:<24} {}",
                    s("id"),
                    s("host"),
                    s("source"),
                    s("name"),
                    conns.join(",")
                );
            }
            Ok(())
        }
        "delete" => {
            let a = Args::parse(rest, &["--gateway"], USAGE)?;
            let id = a.exactly::<1>("one tenant id")?[0];
            call(&a.gateway()?, "DELETE", &format!("/{id}"), None)?;
            println!("tenant `{id}` deleted");
            Ok(())
        }
        "validate" => {
            let a = Args::parse(rest, &["--id", "--gateway", "--manifest"], USAGE)?;
            let path = PathBuf::from(a.exactly::<1>("one tenant document (.json)")?[0]);
            let doc = read_doc(&path)?;
            let id = id_of(&a, &doc, &path)?;
            if a.value("--gateway").is_some() {
                let (_, body) = call(
                    &a.gateway()?,
                    "POST",
                    &format!("/{id}/_validate"),
                    Some(&doc),
                )?;
                println!("{}: OK (checked by the gateway): {body}", path.display());
                return Ok(());
            }
            validate_offline(&path, &id, &doc, a.value("--manifest"))
        }
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown tenant command {other:?}\n\n{USAGE}"),
    }
}

fn read_doc(path: &Path) -> Result<Map<String, Value>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    tenant_docs::parse_body(&bytes).map_err(|e| anyhow!("{}: {}", path.display(), e.message))
}

fn id_of(a: &Args, doc: &Map<String, Value>, path: &Path) -> Result<String> {
    let in_doc = doc.get("id").and_then(Value::as_str);
    match (a.value("--id"), in_doc) {
        (Some(flag), Some(doc)) if flag != doc => bail!(
            "{}: its `id` is `{doc}` but --id says `{flag}`",
            path.display()
        ),
        (Some(id), _) | (None, Some(id)) => Ok(id.to_owned()),
        (None, None) => bail!(
            "{}: give the tenant id with --id ID or an `id` field",
            path.display()
        ),
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// One admin API call; `Ok((status, body))` for 2xx, else the API's error.
fn call(
    gateway: &str,
    method: &str,
    path: &str,
    doc: Option<&Map<String, Value>>,
) -> Result<(u16, Value)> {
    let body = doc.map(|d| serde_json::to_vec(d).unwrap_or_default());
    let resp = admin_cli::call(gateway, tenant_docs::PREFIX, method, path, body)?;
    let body: Value = serde_json::from_slice(&resp.body).unwrap_or_else(
        |_| json!({"message": String::from_utf8_lossy(&resp.body).trim().to_owned()}),
    );
    Ok((resp.status, body))
}

/// The gateway's checks without a gateway: the same `validate` over the
/// variables this machine would give it.
fn validate_offline(
    path: &Path,
    id: &str,
    doc: &Map<String, Value>,
    manifest: Option<&str>,
) -> Result<()> {
    let manifest_path = PathBuf::from(manifest.unwrap_or("spin.toml"));
    let defaults = if manifest.is_some() || manifest_path.exists() {
        Manifest::load(&manifest_path)?
            .variables
            .into_iter()
            .filter_map(|(k, v)| v.default.map(|d| (k, d)))
            .collect()
    } else {
        std::collections::BTreeMap::new()
    };
    // Gateway-wide secrets are not the document's business: placeholders of
    // the right form, so only the document's own fields can fail.
    // (32 bytes of 0x07: an all-zero key is refused as no key at all.)
    let key = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc";
    let placeholder = |name: &str| -> Option<String> {
        match name {
            "session_keys" => Some(format!("placeholder:{key}")),
            "assertion_keys" => Some(format!("placeholder:ed25519:{key}")),
            "oidc_client_secret" => Some("placeholder".into()),
            _ => None,
        }
    };
    let get = |name: &str| {
        std::env::var(format!("{ENV_PREFIX}{}", name.to_ascii_uppercase()))
            .ok()
            .or_else(|| defaults.get(name).cloned().filter(|d| !d.is_empty()))
            .or_else(|| placeholder(name))
            .or_else(|| defaults.get(name).cloned())
    };
    let check_rules = |settings: &Settings, id: &str, chain: &Value| -> Result<(), String> {
        let own = |h: &str| settings.headers.configured().any(|c| c.as_str() == h);
        edgeauth_rules::config::parse(&json!({"tenants": {id: chain}}).to_string(), own).map(|_| ())
    };
    let mut doc = doc.clone();
    doc.remove("id");
    tenant_docs::assume_kept_secrets(&mut doc);
    match tenant_docs::validate(get, id, &doc, check_rules) {
        Ok(v) => {
            println!(
                "{}: OK, tenant `{id}` ({}) at host `{}`",
                path.display(),
                v.tenant.name(),
                v.tenant.host
            );
            Ok(())
        }
        Err(e) => bail!(
            "{}: {}{}",
            path.display(),
            e.message,
            e.field.map(|f| format!(" [field {f}]")).unwrap_or_default()
        ),
    }
}
