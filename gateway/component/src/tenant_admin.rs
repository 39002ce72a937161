//! The tenant documents' admin API (`/.edgeauth/admin/tenants`, see
//! `edgeauth_core::tenant_docs`): this module reads the body, reads and
//! writes KV and answers; every decision is the core's.
//!
//! It is the gateway's, not a tenant's: it answers on any host (a gateway
//! whose tenants all live in KV has no host before the first is put), and
//! only with `Authorization: Bearer <admin_token>`; without an `admin_token`
//! it does not exist (404).

use edgeauth_core::Response;
use edgeauth_core::admin;
use edgeauth_core::endpoints;
use edgeauth_core::kv_schema;
use edgeauth_core::pages;
use edgeauth_core::settings::Settings;
use edgeauth_core::tenant_docs::{
    self, AdminError, Endpoint, Index, MAX_DOCUMENT, Stored, Summary,
};
use edgeauth_core::tenants::{self, Tenants};
use futures::StreamExt;
use http::StatusCode;
use http::request::Parts;
use serde_json::{Map, Value, json};
use spin_sdk::http::IncomingRequest;

use crate::kv::Kv;

pub(crate) fn variable(name: &str) -> Option<String> {
    crate::vars::get(name)
}

pub(crate) fn reply(status: StatusCode, body: Value) -> Response {
    pages::json(status, body.to_string())
}

pub(crate) fn refuse(e: AdminError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    pages::json(status, e.body())
}

pub(crate) fn store_down() -> AdminError {
    AdminError::new(
        503,
        "storage_unavailable",
        "the key-value store is not available",
    )
}

/// One audit line, in a single write (lines of concurrent requests never interleave).
pub(crate) fn audit(fields: Value) {
    use std::io::Write as _;
    // Same form as the rules' audit lines.
    let line = format!("edgeauth-audit: {fields}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// The admin token check every admin endpoint starts with: `Some` answer
/// (404 without an `admin_token`, 401 for a wrong or absent one) refuses.
pub(crate) fn gate(parts: &Parts) -> Option<Response> {
    let given = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match admin::authorized(given, &variable("admin_token").unwrap_or_default()) {
        None => Some(endpoints::not_found(parts)),
        Some(false) => Some(unauthorized(parts)),
        Some(true) => None,
    }
}

/// The 401 of a request without a valid token (audited).
pub(crate) fn unauthorized(parts: &Parts) -> Response {
    audit(json!({"event": "admin-denied", "path": parts.uri.path()}));
    let mut r = refuse(AdminError::new(
        401,
        "unauthorized",
        "a valid admin token is required",
    ));
    r.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer"),
    );
    r
}

pub async fn handle(parts: &Parts, req: IncomingRequest) -> Response {
    if let Some(refused) = gate(parts) {
        return refused;
    }
    match serve(parts, req).await {
        Ok(r) => r,
        Err(e) => refuse(e),
    }
}

async fn serve(parts: &Parts, req: IncomingRequest) -> Result<Response, AdminError> {
    let fixed = Tenants::parse(&variable("tenants").unwrap_or_default())
        .map_err(|_| AdminError::new(500, "misconfigured", "the `tenants` variable is invalid"))?;
    let store = tenants::store_enabled(variable)
        .map_err(|e| AdminError::new(500, "misconfigured", e.to_string()))?;
    let endpoint = tenant_docs::endpoint(&parts.method, parts.uri.path());
    let needs_store = || {
        if store {
            Ok(())
        } else {
            Err(AdminError::new(
                409,
                "no_tenant_store",
                "tenant documents are not enabled on this gateway: set the variable `tenant_store` to \"kv\"",
            ))
        }
    };
    match endpoint {
        Endpoint::List => list(&fixed, store),
        Endpoint::Get(id) => {
            tenant_docs::check_id(&id)?;
            read_one(&fixed, store, &id)
        }
        Endpoint::Put(id) => {
            tenant_docs::check_id(&id)?;
            needs_store()?;
            let doc = tenant_docs::parse_body(&body(req).await?)?;
            put(&fixed, &id, doc, false)
        }
        Endpoint::Validate(id) => {
            tenant_docs::check_id(&id)?;
            let doc = tenant_docs::parse_body(&body(req).await?)?;
            if store {
                put(&fixed, &id, doc, true)
            } else {
                let v = tenant_docs::validate(variable, &id, &doc, check_rules)?;
                Ok(valid(&id, &v.tenant))
            }
        }
        Endpoint::Delete(id) => {
            tenant_docs::check_id(&id)?;
            needs_store()?;
            delete(&fixed, &id)
        }
        Endpoint::NotFound => Err(AdminError::new(404, "not_found", "no such admin endpoint")),
        Endpoint::MethodNotAllowed(allow) => {
            let mut r = refuse(AdminError::new(
                405,
                "method_not_allowed",
                format!("use {allow}"),
            ));
            if let Ok(v) = http::HeaderValue::from_str(allow) {
                r.headers_mut().insert(http::header::ALLOW, v);
            }
            Ok(r)
        }
    }
}

/// The request body, at most [`MAX_DOCUMENT`] bytes (read no further).
async fn body(req: IncomingRequest) -> Result<Vec<u8>, AdminError> {
    let mut stream = req.into_body_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|_| AdminError::new(400, "bad_body", "reading the request body failed"))?;
        if out.len() + chunk.len() > MAX_DOCUMENT {
            return Err(AdminError::new(
                413,
                "too_large",
                format!("a tenant document is at most {MAX_DOCUMENT} bytes"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The rule chain of a document, checked by the parser the request path
/// uses for it (`rules` module), with the gateway's identity headers reserved.
#[cfg(feature = "rules")]
fn check_rules(settings: &Settings, id: &str, chain: &Value) -> Result<(), String> {
    let own = |h: &str| settings.headers.configured().any(|c| c.as_str() == h);
    let config = edgeauth_rules::config::parse(&json!({"tenants": {id: chain}}).to_string(), own)?;
    if !config.is_empty() && variable("rule_keys").unwrap_or_default().trim().is_empty() {
        return Err(
            "the gateway has no `rule_keys` to verify rule artifacts with, so it cannot run rules"
                .into(),
        );
    }
    Ok(())
}

#[cfg(not(feature = "rules"))]
fn check_rules(_: &Settings, _: &str, _: &Value) -> Result<(), String> {
    Err("this gateway is built without tenant rules".into())
}

// ------------------------------------------------------------------ KV

fn get(kv: &Kv, key: &str) -> Result<Option<Vec<u8>>, AdminError> {
    kv.get_raw(key).map_err(|_| store_down())
}

fn set(kv: &Kv, key: &str, value: &[u8]) -> Result<(), AdminError> {
    kv.put_permanent(key, value).map_err(|_| store_down())
}

/// Where tenant `id` is stored, and its stored form.
pub(crate) fn stored(kv: &Kv, id: &str) -> Result<Option<(String, Stored)>, AdminError> {
    let Some(host) = get(kv, &kv_schema::tenant_id(id))? else {
        return Ok(None);
    };
    let host = String::from_utf8_lossy(&host).into_owned();
    let doc = get(kv, &kv_schema::tenant_host(&host))?
        .and_then(|b| Stored::decode(&b).ok())
        .filter(|s| s.id == id);
    Ok(doc.map(|d| (host, d)))
}

fn owner_of(kv: &Kv, host: &str) -> Result<Option<String>, AdminError> {
    Ok(get(kv, &kv_schema::tenant_host(host))?
        .and_then(|b| Stored::decode(&b).ok())
        .map(|s| s.id))
}

pub(crate) fn open() -> Result<Kv, AdminError> {
    Kv::open().map_err(|_| store_down())
}

fn save_index(kv: &Kv, index: &Index) -> Result<(), AdminError> {
    set(kv, kv_schema::TENANT_INDEX, &index.encode())?;
    set(kv, kv_schema::TENANT_RULE_HEADERS, &index.rule_headers())
}

fn random_id() -> String {
    let mut b = [0u8; 12];
    crate::io::rng(&mut b);
    edgeauth_core::encoding::b64url(&b)
}

// ------------------------------------------------------------------ endpoints

fn valid(id: &str, t: &tenants::Tenant) -> Response {
    reply(
        StatusCode::OK,
        json!({"id": id, "valid": true, "host": t.host, "name": t.name()}),
    )
}

fn list(fixed: &Tenants, store: bool) -> Result<Response, AdminError> {
    let mut out: Vec<Value> = fixed.iter().map(tenant_docs::fixed_entry).collect();
    if store {
        let kv = open()?;
        let index = Index::decode(get(&kv, kv_schema::TENANT_INDEX)?.as_deref());
        out.extend(
            index
                .tenants
                .iter()
                .map(|(id, s)| tenant_docs::stored_entry(id, s)),
        );
    }
    Ok(reply(StatusCode::OK, json!({"tenants": out})))
}

fn read_one(fixed: &Tenants, store: bool, id: &str) -> Result<Response, AdminError> {
    let doc = if fixed.get(id).is_some() {
        // The variable's own text, so the document reads back as written.
        let all: Map<String, Value> =
            serde_json::from_str(&variable("tenants").unwrap_or_default()).unwrap_or_default();
        all.get(id).and_then(Value::as_object).cloned()
    } else if store {
        stored(&open()?, id)?.map(|(_, s)| s.doc)
    } else {
        None
    };
    let Some(doc) = doc else {
        return Err(AdminError::new(
            404,
            "not_found",
            format!("no tenant `{id}`"),
        ));
    };
    let mut shown = tenant_docs::redact(&doc);
    shown.insert("id".into(), json!(id));
    Ok(reply(StatusCode::OK, Value::Object(shown)))
}

/// `PUT` (or, with `dry_run`, `_validate`): merge the stored secrets in,
/// validate, check the host, then write the document under its host, the
/// host under the id, drop the old host, and update the listing.
fn put(
    fixed: &Tenants,
    id: &str,
    mut doc: Map<String, Value>,
    dry_run: bool,
) -> Result<Response, AdminError> {
    let kv = open()?;
    let previous = stored(&kv, id)?;
    tenant_docs::merge_secrets(&mut doc, previous.as_ref().map(|(_, s)| &s.doc))?;
    doc.remove("id");
    let validated = tenant_docs::validate(variable, id, &doc, check_rules)?;
    let host = tenants::store_host(&validated.tenant.host);
    let owner = owner_of(&kv, &host)?;
    let mut index = Index::decode(get(&kv, kv_schema::TENANT_INDEX)?.as_deref());
    let plan = tenant_docs::plan_put(
        id,
        &host,
        fixed,
        owner.as_deref(),
        previous.as_ref().map(|(h, _)| h.as_str()),
        index.tenants.len(),
    )?;
    if dry_run {
        return Ok(valid(id, &validated.tenant));
    }
    let summary = Summary::of(&validated.tenant, &doc);
    let record = Stored {
        id: id.to_owned(),
        created: previous.map(|(_, s)| s.created).unwrap_or_else(random_id),
        doc,
    };
    // The new host first: if a later write fails, the tenant is served at
    // its new host and the PUT can simply be repeated.
    set(&kv, &kv_schema::tenant_host(&host), &record.encode())?;
    set(&kv, &kv_schema::tenant_id(id), host.as_bytes())?;
    if let Some(old) = &plan.leave_host {
        kv.delete(&kv_schema::tenant_host(old))
            .map_err(|_| store_down())?;
    }
    index.tenants.insert(id.to_owned(), summary);
    save_index(&kv, &index)?;
    audit(json!({
        "event": if plan.created { "tenant-created" } else { "tenant-updated" },
        "tenant": id, "host": host, "left_host": plan.leave_host,
    }));
    let mut shown = tenant_docs::redact(&record.doc);
    shown.insert("id".into(), json!(id));
    let status = if plan.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(reply(status, Value::Object(shown)))
}

fn delete(fixed: &Tenants, id: &str) -> Result<Response, AdminError> {
    if fixed.get(id).is_some() {
        return Err(AdminError::new(
            409,
            "conflict",
            format!(
                "tenant `{id}` is defined by the `tenants` variable and cannot be deleted through the API"
            ),
        ));
    }
    let kv = open()?;
    let Some((host, _)) = stored(&kv, id)? else {
        return Err(AdminError::new(
            404,
            "not_found",
            format!("no stored tenant `{id}`"),
        ));
    };
    // Its host first: from then on it is not served.
    kv.delete(&kv_schema::tenant_host(&host))
        .map_err(|_| store_down())?;
    kv.delete(&kv_schema::tenant_id(id))
        .map_err(|_| store_down())?;
    let mut index = Index::decode(get(&kv, kv_schema::TENANT_INDEX)?.as_deref());
    index.tenants.remove(id);
    save_index(&kv, &index)?;
    audit(json!({"event": "tenant-deleted", "tenant": id, "host": host}));
    Ok(reply(
        StatusCode::OK,
        json!({"id": id, "host": host, "deleted": true}),
    ))
}
