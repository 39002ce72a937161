//! Operator endpoints for versioned deployments and execution logs, under
//! `/.edgeauth/admin/rules/<tenant>/` (same token as the other rule
//! endpoints, `admin::handle` checks it first):
//!
//! - `POST <rule>/versions`: upload a version (`PUT <rule>` also deploys it);
//! - `GET  <rule>/versions`: the rule's versions and which deployments use them;
//! - `GET  <rule>/logs?limit=N`: the rule's last runs;
//! - `GET  _deployment`, `POST _deploy` (`{"rules": ["name@version", ...]}`),
//!   `POST _rollback[?to=N]`, `POST _gc`.
//!
//! The decisions are `edgeauth_rules::deploy`'s; this module reads and
//! writes KV (`super::versions`). Deploys and rollbacks change the record by
//! compare-and-swap (`versions::update_record`), deciding again over the
//! record that won when another write landed first.

use edgeauth_core::Response;
use edgeauth_core::settings::Settings;
use edgeauth_rules::artifact::{self, MAX_ARTIFACT, Place};
use edgeauth_rules::deploy::{self, Record, Refused, Stamp, VersionMeta};
use edgeauth_rules::runtime::Runtime;
use edgeauth_rules::{config, run_log};
use http::StatusCode;
use http::request::Parts;
use serde_json::json;
use spin_sdk::http::IncomingRequest;

use super::admin::{body, check_target, names_ok, problem, reply, tenant_chain};
use super::chain::{self, audit};
use super::versions::{self, RecordError, UpdateError};
use crate::kv::{Kv, Unavailable};

const MAX_DEPLOY_BODY: usize = 16 * 1024;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn actor(parts: &Parts) -> String {
    deploy::actor(
        parts
            .headers
            .get("x-edgeauth-actor")
            .and_then(|v| v.to_str().ok()),
    )
}

fn unavailable(_: Unavailable) -> Response {
    edgeauth_core::pages::storage_unavailable()
}

fn refused(r: Refused) -> Response {
    problem(
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::CONFLICT),
        r.message,
    )
}

fn record_error(e: RecordError) -> Response {
    match e {
        RecordError::Unavailable => edgeauth_core::pages::storage_unavailable(),
        RecordError::Unreadable(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

fn record(kv: &Kv, tenant: &str) -> Result<Option<Record>, Response> {
    versions::record(kv, tenant).map_err(record_error)
}

fn update_error(e: UpdateError) -> Response {
    match e {
        UpdateError::Refused(r) => refused(r),
        UpdateError::Record(e) => record_error(e),
    }
}

/// Changes the tenant's record by compare-and-swap with `decide`; the
/// record written (`true`) or, when `decide` changed nothing, the one
/// stored (`false`).
fn update(
    kv: &Kv,
    tenant: &str,
    mut decide: impl FnMut(Option<&Record>) -> versions::Updated,
) -> Result<(bool, Option<Record>), Response> {
    let mut seen = None;
    let written = versions::update_record(kv, tenant, |current| {
        seen = current.cloned();
        decide(current)
    })
    .map_err(update_error)?;
    Ok(match written {
        Some(record) => (true, Some(record)),
        None => (false, seen),
    })
}

/// The store and the tenant's deployment record, which every deployment
/// endpoint starts from.
fn open_record(tenant: &str) -> Result<(Kv, Option<Record>), Response> {
    let kv = Kv::open()?;
    let current = record(&kv, tenant)?;
    Ok((kv, current))
}

fn tenant_ok(tenant: &str) -> Result<(), Response> {
    if config::valid_name(tenant) {
        Ok(())
    } else {
        Err(problem(
            StatusCode::BAD_REQUEST,
            "tenant names are 1-64 of a-z 0-9 - _",
        ))
    }
}

/// Checks and stores an artifact as a new version of `rule` (the same bytes
/// again: the existing version, untouched); with `deploy`, then deploys it.
pub async fn upload(
    settings: &Settings,
    parts: &Parts,
    (tenant, rule): (&str, &str),
    req: IncomingRequest,
    deploy: bool,
) -> Response {
    if let Err(r) = names_ok(tenant, rule) {
        return r;
    }
    let keys = match chain::keys() {
        Ok(k) => k,
        Err(e) => return problem(StatusCode::CONFLICT, e),
    };
    if let Err(r) = check_target(settings, tenant, rule) {
        return r;
    }
    let bytes = match body(req, MAX_ARTIFACT).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let verified = match artifact::verify(&bytes, rule, &keys) {
        Ok(v) => v,
        Err(e) => {
            audit(
                json!({"event": "artifact-refused", "tenant": tenant, "rule": rule, "detail": e.to_string()}),
            );
            return problem(StatusCode::BAD_REQUEST, format!("artifact refused: {e}"));
        }
    };
    // Loading it once now catches a runtime mismatch before any sign-in does.
    let runtime = match Runtime::new() {
        Ok(r) => r,
        Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    if let Err(e) = runtime.load(&verified) {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("artifact does not load: {e}"),
        );
    }
    let header = verified.header.clone();
    let kv = match Kv::open() {
        Ok(kv) => kv,
        Err(r) => return r,
    };
    let version = artifact::version_id(&bytes);
    let existing = match versions::meta(&kv, tenant, rule, &version) {
        Ok(m) => m,
        Err(e) => return unavailable(e),
    };
    let created = existing.is_none();
    let meta = match existing {
        // Immutable: the same bytes are the version already stored.
        Some(m) => m,
        None => {
            let meta = VersionMeta {
                version: version.clone(),
                rule: rule.to_owned(),
                sha256: artifact::sha256_hex(&bytes),
                kid: header.kid.clone(),
                uploader: actor(parts),
                uploaded_at: now(),
                bytes: bytes.len() as u64,
                created: header.created,
                code_sha256: header.code_sha256.clone(),
            };
            // Checked once here; sign-ins check the gateway's MAC instead,
            // which also binds the bytes to this version id.
            let keys = artifact::BindKeys::from_ring(&settings.session_keys);
            let place = Place::Version {
                tenant,
                rule,
                version: &version,
            };
            let bound = match artifact::bind_at(&bytes, &place, &keys) {
                Ok(b) => b,
                Err(e) => return problem(StatusCode::INTERNAL_SERVER_ERROR, e),
            };
            if let Err(e) = versions::store(&kv, tenant, rule, &meta, &bound) {
                return unavailable(e);
            }
            audit(json!({
                "event": "rule-version-stored", "tenant": tenant, "rule": rule, "version": version,
                "kid": meta.kid, "uploader": meta.uploader, "bytes": meta.bytes,
            }));
            meta
        }
    };
    let mut out = json!({
        "tenant": tenant, "rule": rule, "version": version, "created": created,
        "bytes": bytes.len(), "header": header, "meta": meta,
    });
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    if deploy {
        match deploy_versions(settings, parts, &kv, tenant, &[(rule.to_owned(), version)]) {
            Ok((_, record)) => out["deployment"] = json!(record.active),
            Err(r) => return r,
        }
    }
    reply(status, out)
}

/// Deploys `requested` over the tenant's active deployment; the record
/// (written last, one compare-and-swap) is the switch. `true`: a new
/// deployment; `false`: they were already active.
fn deploy_versions(
    settings: &Settings,
    parts: &Parts,
    kv: &Kv,
    tenant: &str,
    requested: &[(String, String)],
) -> Result<(bool, Record), Response> {
    let chain = tenant_chain(settings, tenant)?;
    let mut known = std::collections::BTreeMap::new();
    for (rule, _) in requested {
        if !config::valid_name(rule) {
            continue; // refused by the decision, naming the chain's rules
        }
        let listed: Vec<String> = versions::metas(kv, tenant, rule)
            .map_err(unavailable)?
            .into_iter()
            .map(|m| m.version)
            .collect();
        known.insert(rule.clone(), listed);
    }
    // Numbered before deciding: a refused deploy only skips a number. One
    // number for every attempt: a deploy that lands is numbered once.
    let id = versions::next_deployment_id(kv, tenant).map_err(unavailable)?;
    let stamp = Stamp {
        id,
        at: now(),
        by: actor(parts),
    };
    let (changed, record) = update(kv, tenant, |current| {
        Ok(deploy::deploy(
            tenant,
            current,
            &chain,
            requested,
            &known,
            stamp.clone(),
        )?)
    })?;
    let record = record.ok_or_else(|| problem(StatusCode::INTERNAL_SERVER_ERROR, "no record"))?;
    if changed {
        audit(json!({
            "event": "rules-deployed", "tenant": tenant, "deployment": record.active.id,
            "versions": record.active.versions, "by": record.active.by,
        }));
    }
    Ok((changed, record))
}

pub async fn deploy(
    settings: &Settings,
    parts: &Parts,
    tenant: &str,
    req: IncomingRequest,
) -> Response {
    if let Err(r) = tenant_ok(tenant) {
        return r;
    }
    let text = match body(req, MAX_DEPLOY_BODY).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let specs = match deploy::parse_deploy_body(&text) {
        Ok(s) => s,
        Err(r) => return refused(r),
    };
    let mut requested = Vec::new();
    for spec in &specs {
        match deploy::parse_spec(spec) {
            Ok(p) => requested.push(p),
            Err(r) => return refused(r),
        }
    }
    let kv = match Kv::open() {
        Ok(kv) => kv,
        Err(r) => return r,
    };
    match deploy_versions(settings, parts, &kv, tenant, &requested) {
        Ok((changed, record)) => reply(
            StatusCode::OK,
            json!({
                "tenant": tenant, "changed": changed,
                "deployment": record.active, "previous": record.previous,
            }),
        ),
        Err(r) => r,
    }
}

/// `POST _rollback[?to=N]`: the previous deployment's versions (or
/// deployment N's, a kept one) active again, as a new deployment.
pub fn rollback(parts: &Parts, tenant: &str) -> Response {
    if let Err(r) = tenant_ok(tenant) {
        return r;
    }
    let to =
        match deploy::parse_rollback_to(edgeauth_core::routes::query_param(parts, "to").as_deref())
        {
            Ok(to) => to,
            Err(r) => return refused(r),
        };
    let (kv, current) = match open_record(tenant) {
        Ok(opened) => opened,
        Err(r) => return r,
    };
    // Refused before taking a number when there is nothing to return to.
    let probe = Stamp {
        id: 0,
        at: 0,
        by: String::new(),
    };
    match deploy::rollback(tenant, current.as_ref(), to, probe) {
        Err(r) => return refused(r),
        Ok(None) => {
            if let Some(r) = current {
                return reply(
                    StatusCode::OK,
                    json!({"tenant": tenant, "changed": false, "deployment": r.active, "previous": r.previous}),
                );
            }
        }
        Ok(Some(_)) => {}
    }
    let id = match versions::next_deployment_id(&kv, tenant) {
        Ok(id) => id,
        Err(e) => return unavailable(e),
    };
    let stamp = Stamp {
        id,
        at: now(),
        by: actor(parts),
    };
    let updated = update(&kv, tenant, |current| {
        let next = deploy::rollback(tenant, current, to, stamp.clone())?;
        // The versions it restores must still exist (gc keeps them; a store
        // edited by hand might not).
        for (rule, version) in next.iter().flat_map(|n| &n.active.versions) {
            if !versions::exists(&kv, tenant, rule, version) {
                return Err(UpdateError::Refused(Refused {
                    status: 409,
                    message: format!(
                        "version `{version}` of rule `{rule}` is gone; deploy a version instead"
                    ),
                }));
            }
        }
        Ok(next)
    });
    let (changed, next) = match updated {
        Ok((changed, Some(next))) => (changed, next),
        Ok((_, None)) => return problem(StatusCode::INTERNAL_SERVER_ERROR, "no record"),
        Err(r) => return r,
    };
    if changed {
        audit(json!({
            "event": "rules-rolled-back", "tenant": tenant, "deployment": next.active.id,
            "rollback_of": next.active.rollback_of, "restores": next.active.restores,
            "versions": next.active.versions, "by": next.active.by,
        }));
    }
    reply(
        StatusCode::OK,
        json!({"tenant": tenant, "changed": changed, "deployment": next.active, "previous": next.previous}),
    )
}

pub fn deployment(tenant: &str) -> Response {
    if let Err(r) = tenant_ok(tenant) {
        return r;
    }
    match open_record(tenant).map(|(_, r)| r) {
        Ok(Some(r)) => reply(
            StatusCode::OK,
            json!({"tenant": tenant, "deployment": r.active, "previous": r.previous}),
        ),
        Ok(None) => reply(
            StatusCode::OK,
            json!({"tenant": tenant, "deployment": null, "previous": []}),
        ),
        Err(r) => r,
    }
}

pub fn versions(tenant: &str, rule: &str) -> Response {
    if let Err(r) = names_ok(tenant, rule) {
        return r;
    }
    let (kv, current) = match open_record(tenant) {
        Ok(opened) => opened,
        Err(r) => return r,
    };
    let metas = match versions::metas(&kv, tenant, rule) {
        Ok(m) => m,
        Err(e) => return unavailable(e),
    };
    let used_by = |version: &str| -> Vec<u64> {
        current
            .iter()
            .flat_map(|r| std::iter::once(&r.active).chain(&r.previous))
            .filter(|d| d.versions.get(rule).is_some_and(|v| v == version))
            .map(|d| d.id)
            .collect()
    };
    let active = current
        .as_ref()
        .and_then(|r| r.active.versions.get(rule).cloned());
    let listed: Vec<serde_json::Value> = metas
        .iter()
        .map(|m| {
            json!({
                "version": m.version, "sha256": m.sha256, "kid": m.kid, "uploader": m.uploader,
                "uploaded_at": m.uploaded_at, "bytes": m.bytes, "created": m.created,
                "active": active.as_deref() == Some(m.version.as_str()),
                "deployments": used_by(&m.version),
            })
        })
        .collect();
    reply(
        StatusCode::OK,
        json!({"tenant": tenant, "rule": rule, "active": active, "versions": listed}),
    )
}

pub fn gc(settings: &Settings, tenant: &str) -> Response {
    if let Err(r) = tenant_ok(tenant) {
        return r;
    }
    let chain = match tenant_chain(settings, tenant) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (kv, current) = match open_record(tenant) {
        Ok(opened) => opened,
        Err(r) => return r,
    };
    let mut listed = std::collections::BTreeMap::new();
    for rule in deploy::gc_rules(Some(&chain), current.as_ref()) {
        match versions::metas(&kv, tenant, &rule) {
            Ok(m) => {
                listed.insert(rule, m.into_iter().map(|m| m.version).collect::<Vec<_>>());
            }
            Err(e) => return unavailable(e),
        }
    }
    let plan = deploy::gc_plan(current.as_ref(), &listed);
    // Window: a deploy racing this naming a version deleted here leaves a
    // deployment whose sign-ins fail closed ("deployed version ... is
    // gone") until the next deploy; deploys check that versions exist.
    for (rule, gone) in &plan {
        for version in gone {
            if let Err(e) = versions::delete(&kv, tenant, rule, version) {
                return unavailable(e);
            }
        }
    }
    let kept: std::collections::BTreeMap<&String, Vec<&String>> = listed
        .iter()
        .map(|(rule, all)| {
            let gone = plan.get(rule);
            (
                rule,
                all.iter()
                    .filter(|v| !gone.is_some_and(|g| g.contains(v)))
                    .collect(),
            )
        })
        .collect();
    audit(json!({"event": "rule-versions-collected", "tenant": tenant, "deleted": plan}));
    reply(
        StatusCode::OK,
        json!({"tenant": tenant, "deleted": plan, "kept": kept}),
    )
}

pub fn logs(parts: &Parts, tenant: &str, rule: &str) -> Response {
    if let Err(r) = names_ok(tenant, rule) {
        return r;
    }
    let limit: u64 = edgeauth_core::routes::query_param(parts, "limit")
        .and_then(|n| n.parse().ok())
        .unwrap_or(run_log::RING);
    let kv = match Kv::open() {
        Ok(kv) => kv,
        Err(r) => return r,
    };
    match versions::read_logs(&kv, tenant, rule, limit) {
        Ok(runs) => reply(
            StatusCode::OK,
            json!({"tenant": tenant, "rule": rule, "ring": run_log::RING, "runs": runs}),
        ),
        Err(e) => unavailable(e),
    }
}
