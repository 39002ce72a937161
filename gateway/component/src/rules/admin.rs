//! Operator endpoints for rule artifacts, under `/.edgeauth/admin/rules/`,
//! enabled only when the secret variable `admin_token` is set and called with
//! `Authorization: Bearer <admin_token>`:
//!
//! - `PUT  .../<tenant>/<rule>`: store a signed artifact as a version
//!   (checked first, then stored bound with the gateway's MAC to its
//!   version, `artifact::bind_at`) and deploy it; the other version and
//!   deployment endpoints are `super::deploy_admin`'s;
//! - `DELETE .../<tenant>/<rule>`: the artifact stored before versions;
//! - `GET  .../<tenant>`: the tenant's chain and each artifact's signed header;
//! - `POST .../<tenant>/_run?iterations=N` with an event (JSON): runs the
//!   chain without applying anything or calling out, and reports each rule's
//!   commands and timings (load = KV read + check + deserialize; the check
//!   is the gateway's MAC, or the signature for artifacts stored without it),
//!   and the last iteration's log lines, fuel and memory of each rule.

use std::time::Instant;

use edgeauth_core::Response;
use edgeauth_core::kv_schema;
use edgeauth_core::pages;
use edgeauth_core::settings::Settings;
use edgeauth_core::tenant_docs::Index;
use edgeauth_core::tenants::{self, DocRules, Tenants};
use edgeauth_rules::admin::{self, Endpoint, stats};
use edgeauth_rules::artifact;
use edgeauth_rules::config::{self, Source};
use edgeauth_rules::deploy::Pinned;
use edgeauth_rules::event::Event;
use edgeauth_rules::runtime::Runtime;
use futures::StreamExt;
use http::StatusCode;
use http::request::Parts;
use serde_json::{Value, json};
use spin_sdk::http::IncomingRequest;

use super::{chain, deploy_admin, versions};
use crate::kv::Kv;
use edgeauth_rules::chain::{Timing, event_for_rule};

pub const PREFIX: &str = "/.edgeauth/admin/rules/";
const MAX_EVENT: usize = 64 * 1024;
const MAX_ITERATIONS: u32 = 1000;

pub(super) fn reply(status: StatusCode, body: Value) -> Response {
    pages::json(status, body.to_string())
}

pub(super) fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    reply(
        status,
        json!({"error": status.canonical_reason().unwrap_or("error").to_ascii_lowercase().replace(' ', "_"), "message": message.into()}),
    )
}

fn authorized(parts: &Parts) -> Option<bool> {
    let given = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    admin::authorized(given, &chain::variable("admin_token"))
}

pub(super) async fn body(req: IncomingRequest, limit: usize) -> Result<Vec<u8>, Response> {
    let mut stream = req.into_body_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            problem(
                StatusCode::BAD_REQUEST,
                format!("reading the body failed: {e:?}"),
            )
        })?;
        if out.len() + chunk.len() > limit {
            return Err(problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {limit} bytes"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

pub async fn handle(
    settings: &Settings,
    doc: &DocRules,
    parts: &Parts,
    req: IncomingRequest,
    rest: &str,
) -> Response {
    match authorized(parts) {
        None => return edgeauth_core::endpoints::not_found(parts),
        Some(false) => {
            chain::audit(json!({"event": "admin-denied", "path": parts.uri.path()}));
            return problem(StatusCode::UNAUTHORIZED, "a valid admin token is required");
        }
        Some(true) => {}
    }
    match admin::endpoint(&parts.method, rest) {
        Endpoint::List { tenant } => list(settings, doc, tenant),
        Endpoint::DryRun { tenant } => dry_run(settings, doc, parts, req, tenant).await,
        Endpoint::Put { tenant, rule } => {
            deploy_admin::upload(settings, parts, (tenant, rule), req, true).await
        }
        Endpoint::Upload { tenant, rule } => {
            deploy_admin::upload(settings, parts, (tenant, rule), req, false).await
        }
        Endpoint::Versions { tenant, rule } => deploy_admin::versions(tenant, rule),
        Endpoint::Logs { tenant, rule } => deploy_admin::logs(parts, tenant, rule),
        Endpoint::Deployment { tenant } => deploy_admin::deployment(tenant),
        Endpoint::Deploy { tenant } => deploy_admin::deploy(settings, parts, tenant, req).await,
        Endpoint::Rollback { tenant } => deploy_admin::rollback(parts, tenant),
        Endpoint::Gc { tenant } => deploy_admin::gc(settings, tenant),
        Endpoint::Delete { tenant, rule } => delete(tenant, rule),
        Endpoint::NotFound => problem(StatusCode::NOT_FOUND, "no such admin endpoint"),
    }
}

pub(super) fn names_ok(tenant: &str, rule: &str) -> Result<(), Response> {
    if config::valid_name(tenant) && config::valid_name(rule) {
        Ok(())
    } else {
        Err(problem(
            StatusCode::BAD_REQUEST,
            "tenant and rule names are 1-64 of a-z 0-9 - _",
        ))
    }
}

/// The tenants the gateway serves, and the rules document of `tenant`
/// (`None`: no such tenant): the `tenants` variable's, then (with
/// `tenant_store = "kv"`) the stored ones; without either, only `default`.
pub(super) fn tenants_and_doc(tenant: &str) -> Result<(Vec<String>, Option<DocRules>), Response> {
    let get = crate::vars::get;
    let fixed = Tenants::parse(&get("tenants").unwrap_or_default())
        .map_err(|e| pages::misconfigured(&e.to_string()))?;
    let store = tenants::store_enabled(get).map_err(|e| pages::misconfigured(&e.to_string()))?;
    if fixed.is_empty() && !store {
        let doc = (tenant == tenants::DEFAULT_TENANT).then(DocRules::default);
        return Ok((vec![tenants::DEFAULT_TENANT.to_owned()], doc));
    }
    let mut ids: Vec<String> = fixed.ids().map(str::to_owned).collect();
    let mut doc = fixed.get(tenant).map(|t| t.rules.clone());
    if store {
        let kv = Kv::open()?;
        let index = kv
            .get_raw(kv_schema::TENANT_INDEX)
            .map_err(|_| pages::storage_unavailable())?;
        ids.extend(Index::decode(index.as_deref()).tenants.into_keys());
        if doc.is_none() {
            doc = crate::tenant_admin::stored(&kv, tenant)
                .map_err(|_| pages::storage_unavailable())?
                .and_then(|(_, s)| s.tenant().ok())
                .map(|t| t.rules);
        }
    }
    Ok((ids, doc))
}

/// The tenant's rule chain (empty without one), or 404 naming the tenants
/// there are.
pub(super) fn tenant_chain(
    settings: &Settings,
    tenant: &str,
) -> Result<edgeauth_rules::config::TenantRules, Response> {
    let (ids, doc) = tenants_and_doc(tenant)?;
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    if let Err(refused) = admin::tenant_known(tenant, &ids) {
        return Err(problem(StatusCode::NOT_FOUND, refused.message));
    }
    let rules = match &doc {
        Some(doc) => chain::load_for(settings, tenant, doc)
            .map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, e))?,
        None => None,
    };
    Ok(rules
        .as_ref()
        .and_then(|r| r.config.tenant(tenant))
        .cloned()
        .unwrap_or_default())
}

/// Refuses an upload that would be stored and never run: for a tenant the
/// gateway does not serve, or under a name no chain entry of it loads.
pub(super) fn check_target(settings: &Settings, tenant: &str, rule: &str) -> Result<(), Response> {
    let (ids, doc) = tenants_and_doc(tenant)?;
    let rules = match &doc {
        Some(doc) => chain::load_for(settings, tenant, doc)
            .map_err(|e| problem(StatusCode::INTERNAL_SERVER_ERROR, e))?,
        None => None,
    };
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let chain = rules.as_ref().and_then(|r| r.config.tenant(tenant));
    admin::upload_target(tenant, rule, &ids, chain).map_err(|refused| {
        chain::audit(
            json!({"event": "artifact-refused", "tenant": tenant, "rule": rule, "detail": refused.message}),
        );
        problem(
            StatusCode::from_u16(refused.status).unwrap_or(StatusCode::CONFLICT),
            refused.message,
        )
    })
}

fn delete(tenant: &str, rule: &str) -> Response {
    if let Err(r) = names_ok(tenant, rule) {
        return r;
    }
    let kv = match Kv::open() {
        Ok(kv) => kv,
        Err(r) => return r,
    };
    let _ = kv.delete(&config::artifact_key(tenant, rule));
    chain::audit(json!({"event": "artifact-deleted", "tenant": tenant, "rule": rule}));
    reply(
        StatusCode::OK,
        json!({"tenant": tenant, "rule": rule, "deleted": true}),
    )
}

fn list(settings: &Settings, doc: &DocRules, tenant: &str) -> Response {
    let rules = match chain::load(settings, doc) {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let kv = Kv::open().ok();
    let pinned = kv
        .as_ref()
        .and_then(|kv| versions::record(kv, tenant).ok())
        .map(|r| Pinned::of(r.as_ref()))
        .unwrap_or_default();
    let chain: Vec<Value> = rules
        .as_ref()
        .and_then(|r| r.config.tenant(tenant))
        .map(|t| {
            t.chain
                .iter()
                .map(|r| {
                    let version = chain::version_of(&pinned, r);
                    let artifact = chain::artifact_bytes(kv.as_ref(), tenant, r, version)
                        .ok()
                        .and_then(|b| artifact::parse_unverified(artifact::stored_artifact(&b)).ok().map(|(h, _, _, code)| json!({"header": h, "code_bytes": code.len()})));
                    json!({
                        "name": r.name,
                        "source": match &r.source { Source::Kv => "kv".to_owned(), Source::File(p) => format!("file:{p}") },
                        "fuel": r.fuel, "memory_bytes": r.memory_bytes, "output_bytes": r.output_bytes,
                        "fail_open": r.fail_open, "allowed_hosts": r.allowed_hosts, "headers": r.headers,
                        "secrets": r.secrets, "artifact": artifact, "version": version,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    reply(
        StatusCode::OK,
        json!({"tenant": tenant, "deployment": pinned.deployment, "chain": chain}),
    )
}

async fn dry_run(
    settings: &Settings,
    doc: &DocRules,
    parts: &Parts,
    req: IncomingRequest,
    tenant: &str,
) -> Response {
    let rules = match chain::load(settings, doc) {
        Ok(Some(r)) => r,
        Ok(None) => return problem(StatusCode::CONFLICT, "no rules are configured"),
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let Some(tenant_rules) = rules.config.tenant(tenant) else {
        return problem(
            StatusCode::NOT_FOUND,
            format!("tenant `{tenant}` has no rules"),
        );
    };
    let iterations: u32 = edgeauth_core::routes::query_param(parts, "iterations")
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
        .clamp(1, MAX_ITERATIONS);
    let text = match body(req, MAX_EVENT).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let mut event: Event = match serde_json::from_slice(&text) {
        Ok(e) => e,
        Err(e) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!("the body is not an event: {e}"),
            );
        }
    };
    event.tenant_id = tenant.to_owned();
    let kv = Kv::open().ok();
    let mut deployment_us = Vec::new();
    let mut engine_us = Vec::new();
    let mut chain_us = Vec::new();
    let mut per_rule: Vec<Vec<Timing>> = vec![Vec::new(); tenant_rules.chain.len()];
    let mut last: Vec<Value> = Vec::new();
    for _ in 0..iterations {
        // What a sign-in reads first: the deployment record (timed apart).
        let read = Instant::now();
        let pinned = match kv.as_ref().map(|kv| versions::record(kv, tenant)) {
            Some(Ok(record)) => Pinned::of(record.as_ref()),
            Some(Err(e)) => {
                return problem(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("the deployment record cannot be read: {e:?}"),
                );
            }
            None => Pinned::default(),
        };
        deployment_us.push(read.elapsed().as_micros() as u64);
        let started = Instant::now();
        let runtime = match Runtime::new() {
            Ok(r) => r,
            Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e),
        };
        engine_us.push(started.elapsed().as_micros() as u64);
        last.clear();
        for (i, rule) in tenant_rules.chain.iter().enumerate() {
            let for_rule = event_for_rule(&event, rule, &rules.secrets);
            let (result, timing) = chain::run_rule(
                &runtime,
                (&rules.keys, &rules.bind),
                kv.as_ref(),
                (rule, chain::version_of(&pinned, rule)),
                &for_rule,
                true,
            );
            let mut out = match &result {
                Ok(commands) => json!({"rule": rule.name, "commands": commands}),
                Err(f) => json!({"rule": rule.name, "failure": f.kind(), "detail": f.to_string()}),
            };
            // This run's own figures and log lines (`edgeauth rule test` of
            // a signed artifact prints them).
            out["logs"] = json!(timing.logs);
            out["fuel"] = json!(timing.fuel);
            out["memory_bytes"] = json!(timing.memory_bytes);
            out["load_us"] = json!(timing.load_us);
            out["instantiate_us"] = json!(timing.instantiate_us);
            out["call_us"] = json!(timing.call_us);
            last.push(out);
            per_rule[i].push(timing);
            if result.is_err() && !rule.fail_open {
                break;
            }
        }
        chain_us.push(started.elapsed().as_micros() as u64);
    }
    let rules_out: Vec<Value> = tenant_rules
        .chain
        .iter()
        .zip(per_rule)
        .map(|(r, t)| {
            let total: Vec<u64> = t
                .iter()
                .map(|t| t.load_us + t.instantiate_us + t.call_us)
                .collect();
            json!({
                "rule": r.name,
                "fuel": t.last().map(|t| t.fuel),
                "load_us": stats(t.iter().map(|t| t.load_us).collect()),
                "read_us": stats(t.iter().map(|t| t.read_us).collect()),
                "verify_us": stats(t.iter().map(|t| t.verify_us).collect()),
                "deserialize_us": stats(t.iter().map(|t| t.deserialize_us).collect()),
                "instantiate_us": stats(t.iter().map(|t| t.instantiate_us).collect()),
                "call_us": stats(t.iter().map(|t| t.call_us).collect()),
                "total_us": stats(total),
            })
        })
        .collect();
    reply(
        StatusCode::OK,
        json!({
            "tenant": tenant, "iterations": iterations,
            "deployment_us": stats(deployment_us),
            "engine_us": stats(engine_us), "chain_us": stats(chain_us),
            "rules": rules_out, "results": last,
        }),
    )
}
