//! Tenant documents managed at runtime: the decisions of the admin API under
//! `/.edgeauth/admin/tenants` (the component only does its KV and HTTP).
//!
//! - `GET    /.edgeauth/admin/tenants`: every tenant (id, host, name,
//!   connection ids, and whether it is `fixed` by the `tenants` variable);
//! - `GET    .../tenants/<id>`: its document, secrets shown as `{"set": true}`;
//! - `PUT    .../tenants/<id>`: create or replace it (validated first);
//! - `DELETE .../tenants/<id>`;
//! - `POST   .../tenants/<id>/_validate`: everything `PUT` checks, nothing stored.
//!
//! A document is validated by building the tenant's [`Settings`] with
//! [`crate::tenants::settings_for`], the function the request path uses, over
//! the gateway's own variables; so whatever is stored, is served. Errors name
//! the field (`routes[0].path`, `connections[1].id`, `public_url`).
//!
//! Secrets are write-only: `oidc_client_secret`, every connection's
//! `client_secret` (and other `*_secret` fields) and every `rule_secrets`
//! value read back as `{"set": true}`. On `PUT`, a secret that is omitted or
//! given as `{"set": true}` keeps the stored value (a connection's, for the
//! same connection id), so a document read back can be edited and put again;
//! `null` removes it.
//!
//! KV (keys in [`crate::kv_schema`]): the document under its host (the one
//! read a request makes), its host under its id, and two admin-only values:
//! the listing ([`Index`]) and the union of its rule headers. A `PUT` that
//! moves a tenant to another host deletes the old host's key; two tenants
//! never share a host (409 naming the other). Spin KV has no transactions:
//! the writes are ordered so that a failure half-way leaves the new host
//! served and at worst the old one too until the `PUT` is repeated, and two
//! admin writes racing may drop one tenant from the listing (not from being
//! served); admin writes are meant to come from one operator or pipeline.

use std::collections::{BTreeMap, BTreeSet};

use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::settings::{ConfigError, Settings};
use crate::tenants::{self, FieldError, Tenant, Tenants, valid_id};

/// Largest document accepted (bytes of JSON).
pub const MAX_DOCUMENT: usize = 64 * 1024;
/// Most tenants the store holds (bounds the admin listing, not the request path).
pub const MAX_STORED: usize = 10_000;
/// Most connections in one document (a structural bound; the settings check the rest).
pub const MAX_CONNECTIONS: usize = 32;
pub const PREFIX: &str = "/.edgeauth/admin/tenants";

// ------------------------------------------------------------------ errors

/// An admin API refusal: status, a stable `error` code, the message, and the
/// document field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    pub status: u16,
    pub error: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl AdminError {
    pub fn new(status: u16, error: &'static str, message: impl Into<String>) -> AdminError {
        AdminError {
            status,
            error,
            message: message.into(),
            field: None,
        }
    }

    fn invalid(e: FieldError) -> AdminError {
        AdminError {
            status: 400,
            error: "invalid_document",
            message: e.to_string(),
            field: (!e.field.is_empty()).then_some(e.field),
        }
    }

    /// `{"error": ..., "message": ..., "field": ...}`.
    pub fn body(&self) -> String {
        let mut v = json!({"error": self.error, "message": self.message});
        if let Some(f) = &self.field {
            v["field"] = json!(f);
        }
        v.to_string()
    }
}

fn conflict(message: impl Into<String>) -> AdminError {
    AdminError::new(409, "conflict", message)
}

// ------------------------------------------------------------------ endpoints

/// The admin request a method and path name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    List,
    Get(String),
    Put(String),
    Delete(String),
    Validate(String),
    /// Under the prefix, but no such endpoint (404).
    NotFound,
    /// A known path with a method it does not take (405).
    MethodNotAllowed(&'static str),
}

/// Whether `path` is the tenant admin API's (checked before any tenant is
/// chosen: the API belongs to the gateway, not to a tenant's host).
pub fn is_admin_path(path: &str) -> bool {
    path.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

pub fn endpoint(method: &Method, path: &str) -> Endpoint {
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Endpoint::NotFound;
    };
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let segments: Vec<&str> = rest.split('/').collect();
    let id = |s: &str| s.to_owned();
    match segments.as_slice() {
        [""] => match *method {
            Method::GET => Endpoint::List,
            _ => Endpoint::MethodNotAllowed("GET"),
        },
        [t] => match *method {
            Method::GET => Endpoint::Get(id(t)),
            Method::PUT => Endpoint::Put(id(t)),
            Method::DELETE => Endpoint::Delete(id(t)),
            _ => Endpoint::MethodNotAllowed("GET, PUT, DELETE"),
        },
        [t, "_validate"] => match *method {
            Method::POST => Endpoint::Validate(id(t)),
            _ => Endpoint::MethodNotAllowed("POST"),
        },
        _ => Endpoint::NotFound,
    }
}

/// A tenant id from the path, or 400.
pub fn check_id(id: &str) -> Result<(), AdminError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(AdminError::new(
            400,
            "invalid_id",
            "tenant ids are 1-64 of a-z 0-9 - _",
        ))
    }
}

// ------------------------------------------------------------------ documents

/// The body of a `PUT` or `_validate`: one JSON object, at most [`MAX_DOCUMENT`].
pub fn parse_body(body: &[u8]) -> Result<Map<String, Value>, AdminError> {
    if body.len() > MAX_DOCUMENT {
        return Err(AdminError::new(
            413,
            "too_large",
            format!("a tenant document is at most {MAX_DOCUMENT} bytes"),
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AdminError::new(
            400,
            "invalid_document",
            "the body must be a JSON object (a tenant document)",
        )),
        Err(e) => Err(AdminError::new(
            400,
            "invalid_json",
            format!("the body is not JSON: {e}"),
        )),
    }
}

/// Secret fields of a connection object.
pub fn is_secret_field(name: &str) -> bool {
    name.ends_with("secret") || name.ends_with("private_key")
}

/// The marker a secret reads back as, and that keeps it on a `PUT`.
fn is_kept(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|o| o.len() == 1 && o.get("set") == Some(&Value::Bool(true)))
}

fn set_marker() -> Value {
    json!({"set": true})
}

/// The shape of `connections` the store relies on (ids for merging
/// secrets and listing); what each connection means is the settings' check.
fn check_connections(doc: &Map<String, Value>, merging: bool) -> Result<(), FieldError> {
    let Some(value) = doc.get("connections") else {
        return Ok(());
    };
    let parsed;
    let list = match value {
        Value::Array(a) => a,
        // A string holding the array, as in the `connections` variable.
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s).map_err(|e| {
                FieldError::new("connections", format!("is not a JSON array ({e})"))
            })?;
            parsed
                .as_array()
                .ok_or_else(|| FieldError::new("connections", "must be a JSON array"))?
        }
        _ => return Err(FieldError::new("connections", "must be a JSON array")),
    };
    if list.len() > MAX_CONNECTIONS {
        return Err(FieldError::new(
            "connections",
            format!("at most {MAX_CONNECTIONS} connections"),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, c) in list.iter().enumerate() {
        let Some(obj) = c.as_object() else {
            return Err(FieldError::new(
                format!("connections[{i}]"),
                "must be a JSON object",
            ));
        };
        let id = obj.get("id").and_then(Value::as_str).ok_or_else(|| {
            FieldError::new(format!("connections[{i}].id"), "is required (a string)")
        })?;
        if !valid_id(id) {
            return Err(FieldError::new(
                format!("connections[{i}].id"),
                "must be 1-64 of a-z 0-9 - _",
            ));
        }
        if !seen.insert(id) {
            return Err(FieldError::new(
                format!("connections[{i}].id"),
                format!("`{id}` appears twice"),
            ));
        }
        for (k, v) in obj {
            // Before the merge, a secret may still say "keep" or "remove".
            let placeholder = merging && (is_kept(v) || v.is_null());
            if is_secret_field(k) && !v.is_string() && !placeholder {
                return Err(FieldError::new(
                    format!("connections[{i}].{k}"),
                    "must be a string (or omitted / {\"set\": true} to keep the stored one)",
                ));
            }
        }
    }
    Ok(())
}

fn connections_of(doc: &Map<String, Value>) -> Vec<Value> {
    match doc.get("connections") {
        Some(Value::Array(a)) => a.clone(),
        Some(Value::String(s)) => serde_json::from_str::<Vec<Value>>(s).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Resolves one write-only field of `new` from `old`: omitted or
/// `{"set": true}` keeps the stored value, `null` removes it.
fn merge_one(
    new: &mut Map<String, Value>,
    old: Option<&Map<String, Value>>,
    key: &str,
    field: &str,
) -> Result<(), FieldError> {
    let stored = old.and_then(|o| o.get(key)).filter(|v| v.is_string());
    match new.get(key) {
        None => {
            if let Some(s) = stored {
                new.insert(key.to_owned(), s.clone());
            }
        }
        Some(Value::Null) => {
            new.remove(key);
        }
        Some(v) if is_kept(v) => match stored {
            Some(s) => {
                new.insert(key.to_owned(), s.clone());
            }
            None => {
                return Err(FieldError::new(
                    field,
                    "no stored secret to keep: give its value",
                ));
            }
        },
        Some(Value::String(_)) => {}
        Some(_) => return Err(FieldError::new(field, "must be a string")),
    }
    Ok(())
}

/// Fills in the secrets a `PUT` left out from the stored document `old`.
pub fn merge_secrets(
    new: &mut Map<String, Value>,
    old: Option<&Map<String, Value>>,
) -> Result<(), AdminError> {
    merge_one(new, old, "oidc_client_secret", "oidc_client_secret").map_err(AdminError::invalid)?;

    // Connections: by id, in the new document's order.
    if new.contains_key("connections") {
        check_connections(new, true).map_err(AdminError::invalid)?;
        let old_conns = old.map(connections_of).unwrap_or_default();
        let mut merged = Vec::new();
        for (i, c) in connections_of(new).into_iter().enumerate() {
            let mut obj = c.as_object().cloned().unwrap_or_default();
            let id = obj
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let previous = old_conns
                .iter()
                .filter_map(Value::as_object)
                .find(|o| o.get("id").and_then(Value::as_str) == Some(id.as_str()));
            let secret_keys: BTreeSet<String> = obj
                .keys()
                .chain(previous.iter().flat_map(|p| p.keys()))
                .filter(|k| is_secret_field(k))
                .cloned()
                .collect();
            for k in secret_keys {
                merge_one(&mut obj, previous, &k, &format!("connections[{i}].{k}"))
                    .map_err(AdminError::invalid)?;
            }
            merged.push(Value::Object(obj));
        }
        new.insert("connections".into(), Value::Array(merged));
    }

    // Webhook endpoints' secrets, by url (crate::webhooks).
    crate::webhooks::merge_doc_secrets(new, old)
        .map_err(|(field, problem)| AdminError::invalid(FieldError::new(field, problem)))?;

    // Rule secrets, by name; the whole map when the document leaves it out.
    let old_secrets = old
        .and_then(|o| o.get("rule_secrets"))
        .and_then(Value::as_object);
    match new.get_mut("rule_secrets") {
        None => {
            if let Some(s) = old_secrets {
                new.insert("rule_secrets".into(), Value::Object(s.clone()));
            }
        }
        Some(Value::Object(secrets)) => {
            let names: BTreeSet<String> = secrets
                .keys()
                .chain(old_secrets.iter().flat_map(|o| o.keys()))
                .cloned()
                .collect();
            for name in names {
                merge_one(secrets, old_secrets, &name, &format!("rule_secrets.{name}"))
                    .map_err(AdminError::invalid)?;
            }
        }
        Some(Value::Null) => {
            new.remove("rule_secrets");
        }
        Some(_) => {
            return Err(AdminError::invalid(FieldError::new(
                "rule_secrets",
                "must be a JSON object {\"<name>\": \"<value>\"}",
            )));
        }
    }
    Ok(())
}

/// For checks without the store (`edgeauth tenant validate` offline): every
/// `{"set": true}` secret is taken as set, to a placeholder.
pub fn assume_kept_secrets(doc: &mut Map<String, Value>) {
    let fill = |v: &mut Value| {
        if is_kept(v) {
            *v = Value::String("placeholder".into());
        }
    };
    if let Some(v) = doc.get_mut("oidc_client_secret") {
        fill(v);
    }
    if let Some(Value::Array(conns)) = doc.get_mut("connections") {
        for c in conns.iter_mut().filter_map(Value::as_object_mut) {
            for (k, v) in c.iter_mut() {
                if is_secret_field(k) {
                    fill(v);
                }
            }
        }
    }
    if let Some(Value::Object(secrets)) = doc.get_mut("rule_secrets") {
        secrets.values_mut().for_each(fill);
    }
    crate::webhooks::assume_kept_doc_secrets(doc);
}

/// A document as the admin API shows it: every secret as `{"set": true}`.
pub fn redact(doc: &Map<String, Value>) -> Map<String, Value> {
    let mut out = doc.clone();
    if out.get("oidc_client_secret").is_some_and(Value::is_string) {
        out.insert("oidc_client_secret".into(), set_marker());
    }
    if out.contains_key("connections") {
        let conns: Vec<Value> = connections_of(doc)
            .into_iter()
            .map(|c| match c {
                Value::Object(mut o) => {
                    for (k, v) in o.iter_mut() {
                        if is_secret_field(k) {
                            *v = set_marker();
                        }
                    }
                    Value::Object(o)
                }
                other => other,
            })
            .collect();
        out.insert("connections".into(), Value::Array(conns));
    }
    if let Some(Value::Object(secrets)) = out.get_mut("rule_secrets") {
        for v in secrets.values_mut() {
            *v = set_marker();
        }
    }
    crate::webhooks::redact_doc(&mut out);
    out
}

/// Where in the document a settings error is, from its variable and text.
/// `routes` problems start with `rule <n>:` (1-based); a problem starting
/// with `[<i>]...:` or `<variable>[<i>]...:` is taken as a path as it is.
fn field_of(e: &ConfigError, doc: &Map<String, Value>) -> String {
    let var = e.variable;
    let p = e.problem.as_str();
    let path_prefix = |s: &str| -> Option<String> {
        let end = s.find(": ")?;
        let head = &s[..end];
        (head.starts_with('[') && !head.contains(' ')).then(|| head.to_owned())
    };
    if let Some(path) = p.strip_prefix(var).and_then(path_prefix) {
        return format!("{var}{path}");
    }
    if let Some(path) = path_prefix(p) {
        return format!("{var}{path}");
    }
    if var == "routes"
        && let Some(rest) = p.strip_prefix("rule ")
        && let Some((n, detail)) = rest.split_once(':')
        && let Ok(n) = n.parse::<usize>()
        && n >= 1
    {
        let sub = if detail.contains("HTTP method") {
            ".methods"
        } else if detail.contains("not a domain") {
            ".allowed_email_domains"
        } else if detail.contains("path") || detail.contains("reserved") || detail.contains('*') {
            ".path"
        } else {
            ""
        };
        return format!("routes[{}]{sub}", n - 1);
    }
    // `connections[1] (`gh`): `client_id` is required` (crate::connections)
    if var == "connections"
        && let Some(rest) = p.strip_prefix("connections[")
        && let Some((i, after)) = rest.split_once(']')
        && i.parse::<usize>().is_ok()
    {
        let field = after
            .split_once(": ")
            .and_then(|(_, d)| d.strip_prefix('`'))
            .and_then(|d| d.split_once('`'))
            .map(|(f, _)| f)
            .filter(|f| {
                !f.is_empty()
                    && f.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            });
        return match field {
            Some(f) => format!("connections[{i}].{f}"),
            None => format!("connections[{i}]"),
        };
    }
    if var == "connections"
        && let Some(rest) = p.strip_prefix("connection `")
        && let Some((id, _)) = rest.split_once('`')
        && let Some(i) = connections_of(doc)
            .iter()
            .position(|c| c.get("id").and_then(Value::as_str) == Some(id))
    {
        return format!("connections[{i}]");
    }
    var.to_owned()
}

/// A document the gateway would serve.
#[derive(Debug)]
pub struct Validated {
    pub tenant: Tenant,
    pub settings: Settings,
}

/// Checks `doc` as tenant `id` exactly as a request would load it: its shape,
/// then its settings over the gateway's variables (`get`), then its rule
/// chain (`check_rules`, the rules crate's parser, given the settings so
/// identity header names stay reserved).
pub fn validate(
    get: impl Fn(&str) -> Option<String>,
    id: &str,
    doc: &Map<String, Value>,
    check_rules: impl Fn(&Settings, &str, &Value) -> Result<(), String>,
) -> Result<Validated, AdminError> {
    check_id(id)?;
    check_connections(doc, false).map_err(AdminError::invalid)?;
    for (k, v) in doc {
        if (k == "oidc_client_secret" || k == "rule_secrets") && (is_kept(v) || v.is_null()) {
            return Err(AdminError::invalid(FieldError::new(
                k.as_str(),
                "no stored secret to keep: give its value",
            )));
        }
    }
    let tenant = Tenant::from_document(id, doc).map_err(AdminError::invalid)?;
    let settings = tenants::settings_for(&get, &tenant, id).map_err(|e| {
        let field = field_of(&e, doc);
        if tenants::OVERRIDABLE.contains(&e.variable) {
            AdminError {
                status: 400,
                error: "invalid_document",
                message: format!("`{field}`: {}", e.problem),
                field: Some(field),
            }
        } else {
            // Not the document's fault: the gateway's own variables are broken.
            AdminError::new(
                500,
                "misconfigured",
                format!("the gateway's variable `{}` is invalid", e.variable),
            )
        }
    })?;
    if let Some(chain) = &tenant.rules.chain {
        check_rules(&settings, id, chain).map_err(|message| {
            let field = rule_field(chain, &message);
            AdminError {
                status: 400,
                error: "invalid_document",
                message: format!("`{field}`: {message}"),
                field: Some(field),
            }
        })?;
    }
    Ok(Validated { tenant, settings })
}

/// `rules.chain[<i>]` of the rule a rules-config error names (`rule `x`: ...`).
fn rule_field(chain: &Value, message: &str) -> String {
    let named = message
        .strip_prefix("rule `")
        .or_else(|| message.strip_prefix("rule name `"))
        .and_then(|r| r.split_once('`'))
        .map(|(n, _)| n);
    let index = named.and_then(|n| {
        chain
            .get("chain")?
            .as_array()?
            .iter()
            .position(|r| r.get("name").and_then(Value::as_str) == Some(n))
    });
    match index {
        Some(i) => format!("rules.chain[{i}]"),
        None => "rules".to_owned(),
    }
}

// ------------------------------------------------------------------ stored form

/// What is stored under [`crate::kv_schema::tenant_host`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub id: String,
    /// Random, set when the id is first created and kept by updates: cookies
    /// are sealed for it, so a tenant deleted and created again under the
    /// same id does not accept cookies of the one before.
    pub created: String,
    pub doc: Map<String, Value>,
}

impl Stored {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Stored, String> {
        serde_json::from_slice(bytes).map_err(|e| e.to_string())
    }

    pub fn tenant(&self) -> Result<Tenant, FieldError> {
        Tenant::from_document(&self.id, &self.doc)
    }

    /// What this tenant's cookies are sealed for.
    pub fn scope(&self) -> String {
        format!("{}#{}", self.id, self.created)
    }
}

/// One line of the listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub host: String,
    pub name: String,
    pub connections: Vec<String>,
    /// Header names this tenant's rules may set (lower case).
    #[serde(default)]
    pub rule_headers: Vec<String>,
}

impl Summary {
    pub fn of(tenant: &Tenant, doc: &Map<String, Value>) -> Summary {
        let rule_headers = tenant
            .rules
            .chain
            .as_ref()
            .and_then(|c| c.get("chain"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.get("headers")?.as_array())
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_ascii_lowercase)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        Summary {
            host: tenant.host.clone(),
            name: tenant.name().to_owned(),
            connections: connections_of(doc)
                .iter()
                .filter_map(|c| c.get("id")?.as_str().map(str::to_owned))
                .collect(),
            rule_headers,
        }
    }
}

/// The listing of stored tenants ([`crate::kv_schema::TENANT_INDEX`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub tenants: BTreeMap<String, Summary>,
}

impl Index {
    /// A missing or unreadable index is an empty one (it is rebuilt by writes).
    pub fn decode(bytes: Option<&[u8]>) -> Index {
        bytes
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default()
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Every header any stored tenant's rules may set
    /// ([`crate::kv_schema::TENANT_RULE_HEADERS`], a JSON array).
    pub fn rule_headers(&self) -> Vec<u8> {
        let all: BTreeSet<&str> = self
            .tenants
            .values()
            .flat_map(|s| s.rule_headers.iter().map(String::as_str))
            .collect();
        serde_json::to_vec(&all).unwrap_or_default()
    }
}

/// The header names in a stored [`crate::kv_schema::TENANT_RULE_HEADERS`].
pub fn decode_rule_headers(bytes: &[u8]) -> Result<Vec<String>, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

// ------------------------------------------------------------------ writes

/// What a `PUT` of tenant `id` at `host` does to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutPlan {
    /// The host it was filed under before, when that changes: its key is deleted.
    pub leave_host: Option<String>,
    pub created: bool,
}

/// Decides whether tenant `id` may be stored at `host`: `fixed` are the
/// `tenants` variable's tenants, `host_owner` the id stored at `host` now,
/// `previous_host` where `id` is stored now, `stored_count` how many are.
pub fn plan_put(
    id: &str,
    host: &str,
    fixed: &Tenants,
    host_owner: Option<&str>,
    previous_host: Option<&str>,
    stored_count: usize,
) -> Result<PutPlan, AdminError> {
    if fixed.get(id).is_some() {
        return Err(conflict(format!(
            "tenant `{id}` is defined by the `tenants` variable and cannot be changed through the API"
        )));
    }
    if let Some(other) = fixed.with_host(host) {
        return Err(AdminError {
            field: Some("public_url".into()),
            ..conflict(format!(
                "host `{host}` is tenant `{}`'s (defined by the `tenants` variable)",
                other.id
            ))
        });
    }
    if let Some(other) = host_owner.filter(|o| *o != id) {
        return Err(AdminError {
            field: Some("public_url".into()),
            ..conflict(format!("host `{host}` is already tenant `{other}`'s"))
        });
    }
    if previous_host.is_none() && stored_count >= MAX_STORED {
        return Err(AdminError::new(
            507,
            "too_many_tenants",
            format!("at most {MAX_STORED} tenants can be stored"),
        ));
    }
    Ok(PutPlan {
        leave_host: previous_host.filter(|h| *h != host).map(str::to_owned),
        created: previous_host.is_none(),
    })
}

/// The listing entry of a fixed (variable) tenant.
pub fn fixed_entry(t: &Tenant) -> Value {
    let conns: Vec<String> = t
        .variables
        .get("connections")
        .and_then(|c| serde_json::from_str::<Vec<Value>>(c).ok())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.get("id")?.as_str().map(str::to_owned))
        .collect();
    json!({"id": t.id, "host": t.host, "name": t.name(), "connections": conns, "source": "variable"})
}

pub fn stored_entry(id: &str, s: &Summary) -> Value {
    json!({"id": id, "host": s.host, "name": s.name, "connections": s.connections, "source": "kv"})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::test_variables;

    fn vars() -> impl Fn(&str) -> Option<String> {
        let v = test_variables();
        move |n: &str| v.get(n).cloned()
    }

    fn doc(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn no_rules(_: &Settings, _: &str, _: &Value) -> Result<(), String> {
        Ok(())
    }

    fn invalid(d: Value) -> AdminError {
        validate(vars(), "acme", &doc(d), no_rules).unwrap_err()
    }

    #[test]
    fn endpoints_by_method_and_path() {
        assert!(is_admin_path("/.edgeauth/admin/tenants"));
        assert!(is_admin_path("/.edgeauth/admin/tenants/acme"));
        assert!(!is_admin_path("/.edgeauth/admin/tenantsx"));
        assert!(!is_admin_path("/.edgeauth/admin/rules/acme"));
        let e = |m: Method, p: &str| endpoint(&m, p);
        assert_eq!(e(Method::GET, "/.edgeauth/admin/tenants"), Endpoint::List);
        assert_eq!(e(Method::GET, "/.edgeauth/admin/tenants/"), Endpoint::List);
        assert_eq!(
            e(Method::PUT, "/.edgeauth/admin/tenants/acme"),
            Endpoint::Put("acme".into())
        );
        assert_eq!(
            e(Method::POST, "/.edgeauth/admin/tenants/acme/_validate"),
            Endpoint::Validate("acme".into())
        );
        assert_eq!(
            e(Method::POST, "/.edgeauth/admin/tenants/acme"),
            Endpoint::MethodNotAllowed("GET, PUT, DELETE")
        );
        assert_eq!(
            e(Method::GET, "/.edgeauth/admin/tenants/a/b/c"),
            Endpoint::NotFound
        );
    }

    #[test]
    fn a_valid_document_builds_the_settings_a_request_gets() {
        let d = doc(json!({
            "public_url": "https://acme.example",
            "name": "Acme Corp",
            "allowed_email_domains": ["acme.com", "Acme.org"],
            "routes": [{"path": "/pub/", "public": true}],
            "session_lifetime_secs": 3600,
        }));
        let v = validate(vars(), "acme", &d, no_rules).unwrap();
        assert_eq!(v.settings.tenant, "acme");
        assert_eq!(v.settings.allowed_email_domains, ["acme.com", "acme.org"]);
        assert_eq!(v.settings.routes.len(), 1);
        assert_eq!(v.settings.session_lifetime_secs, 3600);
        assert_eq!(v.tenant.host, "acme.example");
        assert_eq!(v.tenant.name(), "Acme Corp");
        // Without a name, the id is shown.
        let v = validate(
            vars(),
            "acme",
            &doc(json!({"public_url": "https://acme.example"})),
            no_rules,
        )
        .unwrap();
        assert_eq!(v.tenant.name(), "acme");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (json!({}), "public_url"),
            (json!({"public_url": "http://acme.example"}), "public_url"),
            (json!({"public_url": "not a url"}), "public_url"),
            (
                json!({"public_url": "https://a.example", "routes": [{"path": "/ok/"}, {"path": "/x/../../y"}]}),
                "routes[1].path",
            ),
            (
                json!({"public_url": "https://a.example", "routes": [{"path": "/.edgeauth/x"}]}),
                "routes[0].path",
            ),
            (
                json!({"public_url": "https://a.example", "routes": [{"path": "/a", "methods": ["G ET"]}]}),
                "routes[0].methods",
            ),
            (
                json!({"public_url": "https://a.example", "allowed_email_domains": "not a domain"}),
                "allowed_email_domains",
            ),
            (
                json!({"public_url": "https://a.example", "session_lifetime_secs": 5}),
                "session_lifetime_secs",
            ),
            (
                json!({"public_url": "https://a.example", "oidc_scopes": true}),
                "oidc_scopes",
            ),
            (
                json!({"public_url": "https://a.example", "session_keys": "k:x"}),
                "session_keys",
            ),
            (
                json!({"public_url": "https://a.example", "connections": [{"id": "a"}, {"name": "x"}]}),
                "connections[1].id",
            ),
            (
                json!({"public_url": "https://a.example", "connections": [{"id": "a"}, {"id": "a"}]}),
                "connections[1].id",
            ),
            (
                json!({"public_url": "https://a.example", "connections": [{"id": "a", "client_secret": 5}]}),
                "connections[0].client_secret",
            ),
            (
                json!({"public_url": "https://a.example", "connections": {"id": "a"}}),
                "connections",
            ),
            (
                json!({"public_url": "https://a.example", "rules": [1]}),
                "rules",
            ),
            (
                json!({"public_url": "https://a.example", "rule_secrets": {"k": 1}}),
                "rule_secrets.k",
            ),
            (
                json!({"public_url": "https://a.example", "name": ""}),
                "name",
            ),
            (
                json!({"public_url": "https://a.example", "webhooks": [{"url": "http://crm.example/h", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "events": ["login"]}]}),
                "webhooks[0].url",
            ),
            (
                json!({"public_url": "https://a.example", "webhooks": [{"url": "https://crm.example/h", "secret": {"set": true}, "events": ["login"]}]}),
                "webhooks[0].secret",
            ),
            (
                json!({"public_url": "https://a.example", "id": "other"}),
                "id",
            ),
        ];
        for (d, field) in cases {
            let e = invalid(d.clone());
            assert_eq!(e.status, 400, "{d}: {e:?}");
            assert_eq!(e.field.as_deref(), Some(field), "{d}: {e:?}");
            assert!(e.message.contains(field), "{d}: {}", e.message);
            let body: Value = serde_json::from_str(&e.body()).unwrap();
            assert_eq!(body["field"], field);
            assert_eq!(body["error"], "invalid_document");
        }
        // The rules crate's message points at the rule.
        let e = validate(
            vars(),
            "acme",
            &doc(json!({"public_url": "https://a.example", "rules": {"chain": [{"name": "a"}, {"name": "b"}]}})),
            |_, _, _| Err("rule `b`: `fuel` must be between 1 and 2".into()),
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("rules.chain[1]"));
        assert_eq!(
            validate(vars(), "Acme", &doc(json!({})), no_rules)
                .unwrap_err()
                .error,
            "invalid_id"
        );
    }

    #[test]
    fn a_broken_gateway_variable_is_not_blamed_on_the_document() {
        let mut v = test_variables();
        v.insert("session_keys".into(), "broken".into());
        let e = validate(
            |n: &str| v.get(n).cloned(),
            "acme",
            &doc(json!({"public_url": "https://a.example"})),
            no_rules,
        )
        .unwrap_err();
        assert_eq!(e.status, 500);
        assert!(!e.message.contains("broken"));
    }

    #[test]
    fn bodies_are_bounded_objects() {
        assert_eq!(parse_body(b"[1]").unwrap_err().status, 400);
        assert_eq!(parse_body(b"{").unwrap_err().error, "invalid_json");
        let big = format!("{{\"name\": \"{}\"}}", "x".repeat(MAX_DOCUMENT));
        assert_eq!(parse_body(big.as_bytes()).unwrap_err().status, 413);
        assert!(parse_body(b"{\"public_url\": \"https://a.example\"}").is_ok());
    }

    fn stored_doc() -> Map<String, Value> {
        doc(json!({
            "public_url": "https://acme.example",
            "oidc_client_secret": "top",
            "connections": [
                {"id": "social", "kind": "oidc", "issuer": "https://social.example", "client_id": "s", "client_secret": "s-secret"},
                {"id": "corp", "kind": "oidc", "issuer": "https://corp.example", "client_id": "c", "client_secret": "c-secret"}
            ],
            "rule_secrets": {"crm": "crm-token", "other": "o"},
            "webhooks": [{"url": "https://crm.example/hooks", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "events": ["login"]}]
        }))
    }

    #[test]
    fn secrets_read_back_redacted_and_round_trip() {
        let old = stored_doc();
        let shown = redact(&old);
        let text = Value::Object(shown.clone()).to_string();
        for secret in [
            "top",
            "s-secret",
            "c-secret",
            "crm-token",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            assert!(!text.contains(&format!("\"{secret}\"")), "{text}");
        }
        assert_eq!(shown["oidc_client_secret"], json!({"set": true}));
        assert_eq!(
            shown["connections"][1]["client_secret"],
            json!({"set": true})
        );
        assert_eq!(shown["rule_secrets"]["crm"], json!({"set": true}));
        // What was read back, put again unchanged, stores the same document.
        let mut again = shown.clone();
        merge_secrets(&mut again, Some(&old)).unwrap();
        assert_eq!(again, old);
    }

    #[test]
    fn omitted_secrets_are_kept_per_connection_and_null_removes() {
        let old = stored_doc();
        let mut new = doc(json!({
            "public_url": "https://acme.example",
            "connections": [
                {"id": "corp", "kind": "oidc", "client_id": "c2"},
                {"id": "social", "kind": "oidc", "client_id": "s", "client_secret": "new-s"},
                {"id": "fresh", "kind": "oidc", "client_id": "f"}
            ],
            "rule_secrets": {"crm": null, "added": "v"}
        }));
        merge_secrets(&mut new, Some(&old)).unwrap();
        assert_eq!(new["oidc_client_secret"], "top");
        assert_eq!(new["connections"][0]["client_secret"], "c-secret");
        assert_eq!(new["connections"][0]["client_id"], "c2");
        assert_eq!(new["connections"][1]["client_secret"], "new-s");
        assert!(new["connections"][2].get("client_secret").is_none());
        assert_eq!(new["rule_secrets"], json!({"added": "v", "other": "o"}));
        // A secret to keep that was never stored is an error naming it.
        let mut bad =
            doc(json!({"connections": [{"id": "fresh", "client_secret": {"set": true}}]}));
        let e = merge_secrets(&mut bad, Some(&old)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("connections[0].client_secret"));
        // Offline, a document read back validates with its secrets assumed set.
        let mut shown = redact(&old);
        assume_kept_secrets(&mut shown);
        assert!(validate(vars(), "acme", &shown, no_rules).is_ok());
        // And without any stored document, the marker cannot validate.
        let e = invalid(
            json!({"public_url": "https://a.example", "oidc_client_secret": {"set": true}}),
        );
        assert_eq!(e.field.as_deref(), Some("oidc_client_secret"));
    }

    #[test]
    fn hosts_are_never_shared_and_fixed_tenants_stay_fixed() {
        let fixed = Tenants::parse(r#"{"acme": {"public_url": "https://acme.example"}}"#).unwrap();
        let e = plan_put("acme", "x.example", &fixed, None, None, 0).unwrap_err();
        assert_eq!(e.status, 409);
        assert!(e.message.contains("`tenants` variable"));
        let e = plan_put("globex", "acme.example", &fixed, None, None, 0).unwrap_err();
        assert_eq!(e.status, 409);
        assert!(e.message.contains("`acme`"), "{}", e.message);
        let e = plan_put("globex", "g.example", &fixed, Some("initech"), None, 0).unwrap_err();
        assert_eq!(e.status, 409);
        assert!(e.message.contains("`initech`"));
        assert_eq!(
            plan_put("globex", "g.example", &fixed, None, None, 0).unwrap(),
            PutPlan {
                leave_host: None,
                created: true
            }
        );
        assert_eq!(
            plan_put("globex", "g2.example", &fixed, None, Some("g.example"), 1).unwrap(),
            PutPlan {
                leave_host: Some("g.example".into()),
                created: false
            }
        );
        assert_eq!(
            plan_put(
                "globex",
                "g.example",
                &fixed,
                Some("globex"),
                Some("g.example"),
                1
            )
            .unwrap()
            .leave_host,
            None
        );
        assert_eq!(
            plan_put("new", "n.example", &fixed, None, None, MAX_STORED)
                .unwrap_err()
                .status,
            507
        );
    }

    #[test]
    fn the_index_lists_and_unites_rule_headers() {
        let d = doc(json!({
            "public_url": "https://acme.example:8443",
            "name": "Acme",
            "connections": [{"id": "social"}, {"id": "corp"}],
            "rules": {"chain": [{"name": "r", "headers": ["X-Roles", "x-tier"]}]}
        }));
        let t = Tenant::from_document("acme", &d).unwrap();
        let s = Summary::of(&t, &d);
        assert_eq!(s.host, "acme.example:8443");
        assert_eq!(s.connections, ["social", "corp"]);
        assert_eq!(s.rule_headers, ["x-roles", "x-tier"]);
        let mut index = Index::default();
        index.tenants.insert("acme".into(), s);
        let back = Index::decode(Some(&index.encode()));
        assert_eq!(back, index);
        assert_eq!(
            decode_rule_headers(&index.rule_headers()).unwrap(),
            ["x-roles", "x-tier"]
        );
        assert_eq!(Index::decode(Some(b"junk")), Index::default());
    }

    #[test]
    fn stored_documents_are_served_by_their_host_only() {
        let stored = Stored {
            id: "acme".into(),
            created: "c1".into(),
            doc: doc(
                json!({"public_url": "https://acme.example", "allowed_email_domains": "acme.com"}),
            ),
        };
        let key = crate::kv_schema::tenant_host("acme.example");
        let mut v = test_variables();
        v.insert("tenant_store".into(), "kv".into());
        let get = |n: &str| v.get(n).cloned();
        let read = |k: &str| Ok((k == key).then(|| stored.encode()));
        for host in ["acme.example", "ACME.example:443"] {
            let served = tenants::serve(get, Some(host), read).unwrap();
            assert_eq!(served.settings.tenant, "acme");
            assert_eq!(served.settings.allowed_email_domains, ["acme.com"]);
        }
        for host in ["acme.example:80", "other.example", ""] {
            assert!(
                matches!(
                    tenants::serve(get, Some(host), read),
                    Err(tenants::Unserved::UnknownHost(_))
                ),
                "{host}"
            );
        }
        assert!(matches!(
            tenants::serve(get, Some("acme.example"), |_| Err(())),
            Err(tenants::Unserved::StoreUnavailable)
        ));
        // Without the store turned on, KV is never read.
        let plain = |n: &str| test_variables().get(n).cloned();
        let served = tenants::serve(plain, Some("acme.example"), |_| {
            panic!("read without tenant_store")
        })
        .unwrap();
        assert_eq!(served.settings.tenant, "default");
    }

    #[test]
    fn a_recreated_tenant_does_not_open_the_old_ones_cookies() {
        use crate::seal::Purpose;
        let mut v = test_variables();
        v.insert("tenant_store".into(), "kv".into());
        let get = |n: &str| v.get(n).cloned();
        let settings = |created: &str| {
            let s = Stored {
                id: "acme".into(),
                created: created.into(),
                doc: doc(json!({"public_url": "https://acme.example"})),
            };
            tenants::serve(get, Some("acme.example"), |_| Ok(Some(s.encode())))
                .unwrap()
                .settings
        };
        let first = settings("one");
        let sealed = first.session_keys.seal(
            Purpose::Session,
            b"alice",
            &mut crate::testutil::counter_rng(),
        );
        assert!(first.session_keys.open(Purpose::Session, &sealed).is_ok());
        assert!(
            settings("two")
                .session_keys
                .open(Purpose::Session, &sealed)
                .is_err()
        );
    }

    #[test]
    fn variable_tenants_win_over_stored_ones() {
        let mut v = test_variables();
        v.insert("tenant_store".into(), "kv".into());
        v.insert(
            "tenants".into(),
            r#"{"fixed": {"public_url": "https://acme.example", "name": "Fixed", "rules": {"chain": []}, "rule_secrets": {"k": "v"}}}"#.into(),
        );
        let get = |n: &str| v.get(n).cloned();
        let served = tenants::serve(get, Some("acme.example"), |_| {
            panic!("a variable tenant's host is not looked up")
        })
        .unwrap();
        assert_eq!(served.settings.tenant, "fixed");
        assert_eq!(
            served.rules.secrets.unwrap()["k"],
            "v",
            "the variable accepts the document shape"
        );
        v.insert("tenant_store".into(), "redis".into());
        let get = |n: &str| v.get(n).cloned();
        match tenants::serve(get, Some("acme.example"), |_| Ok(None)) {
            Err(tenants::Unserved::Misconfigured(e)) => assert_eq!(e.variable, "tenant_store"),
            other => panic!("{other:?}"),
        }
    }
}
