//! The profiles' admin API (`/.edgeauth/admin/profiles/<tenant>/...`, see
//! `edgeauth_core::profile_admin`): reads the body, reads and writes KV and
//! answers; every decision is the core's. Credentials: the operator's
//! `admin_token` or one of the path's tenant's own tokens
//! (`edgeauth_core::admin::profiles_caller`); errors as the tenant
//! documents' API (`tenant_admin`).

use edgeauth_core::Response;
use edgeauth_core::admin::{self, ProfilesCaller, TokenHash};
use edgeauth_core::endpoints;
use edgeauth_core::kv_schema;
use edgeauth_core::profile_admin::{self as decide, Endpoint, MAX_PATCH_BODY};
use edgeauth_core::profiles::{self, MergeWrite, Profile};
use edgeauth_core::revocation;
use edgeauth_core::tenant_docs::AdminError;
use edgeauth_core::tenants::{self, Tenants};
use futures::StreamExt;
use http::StatusCode;
use http::request::Parts;
use serde_json::{Value, json};
use spin_sdk::http::IncomingRequest;

use crate::kv::Kv;
use crate::tenant_admin::{audit, open, refuse, reply, store_down, stored, unauthorized, variable};

pub async fn handle(parts: &Parts, req: IncomingRequest) -> Response {
    // Whose tokens to check: the path's tenant's (none when it does not
    // exist, so its existence shows only to a caller allowed to know).
    let site = decide::path_tenant(parts.uri.path()).map(|t| {
        let tokens = tenant_site(&t);
        (t, tokens)
    });
    let tokens = match &site {
        Some((_, Ok(Some(tokens)))) => tokens.as_slice(),
        _ => &[],
    };
    let given = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let operator = variable("admin_token").unwrap_or_default();
    match admin::profiles_caller(given, &operator, tokens) {
        ProfilesCaller::NoApi => return endpoints::not_found(parts),
        ProfilesCaller::Unauthorized => return unauthorized(parts),
        ProfilesCaller::Operator | ProfilesCaller::Tenant => {}
    }
    // Only the operator gets here without the tenant's tokens: a tenant
    // token matched, so its tenant exists.
    if let Some((t, found)) = &site {
        match found {
            Err(e) => return refuse(e.clone()),
            Ok(None) => {
                return refuse(AdminError::new(
                    404,
                    "not_found",
                    format!("no tenant `{t}`"),
                ));
            }
            Ok(Some(_)) => {}
        }
    }
    let checked = site.as_ref().map(|(t, _)| t.as_str());
    match serve(parts, req, checked).await {
        Ok(r) => r,
        Err(e) => refuse(e),
    }
}

/// Whether tenant `id` exists, and its admin token hashes (`None`: no such
/// tenant).
fn tenant_site(id: &str) -> Result<Option<Vec<TokenHash>>, AdminError> {
    let fixed = Tenants::parse(&variable("tenants").unwrap_or_default())
        .map_err(|_| AdminError::new(500, "misconfigured", "the `tenants` variable is invalid"))?;
    let store = tenants::store_enabled(variable)
        .map_err(|e| AdminError::new(500, "misconfigured", e.to_string()))?;
    decide::tenant_tokens(&fixed, store, id, || {
        // A stored document that no longer parses still names its tenant;
        // its tokens are then unknown, so only the operator's opens it.
        Ok(stored(&open()?, id)?
            .map(|(_, s)| s.tenant().map(|t| t.admin_tokens).unwrap_or_default()))
    })
}

fn get(kv: &Kv, key: &str) -> Result<Option<Vec<u8>>, AdminError> {
    kv.get_raw(key).map_err(|_| store_down())
}

fn profile_at(kv: &Kv, tenant: &str, id: &str) -> Result<Option<Profile>, AdminError> {
    Ok(profiles::decode(
        get(kv, &kv_schema::profile(tenant, id))?.as_deref(),
    ))
}

fn existing(kv: &Kv, tenant: &str, id: &str) -> Result<Profile, AdminError> {
    profile_at(kv, tenant, id)?.ok_or_else(|| {
        AdminError::new(
            404,
            "not_found",
            format!("no profile `{id}` in tenant `{tenant}`"),
        )
    })
}

/// The profile an index key names, if the index is trusted (`trust`).
fn through_index(
    kv: &Kv,
    tenant: &str,
    key: &str,
    trust: impl FnOnce(Option<Profile>) -> Option<Profile>,
) -> Result<Response, AdminError> {
    let value = get(kv, key)?;
    let found = match decide::index_target(value.as_deref()) {
        Some(id) => trust(profile_at(kv, tenant, id)?),
        None => None,
    };
    match found {
        Some(p) => Ok(shown(StatusCode::OK, &p)),
        None => Err(AdminError::new(
            404,
            "not_found",
            format!("no profile in tenant `{tenant}` matches"),
        )),
    }
}

fn shown(status: StatusCode, p: &Profile) -> Response {
    reply(status, serde_json::to_value(p).unwrap_or(Value::Null))
}

fn save(kv: &Kv, tenant: &str, p: &Profile) -> Result<(), AdminError> {
    let bytes = serde_json::to_vec(p).map_err(|_| store_down())?;
    kv.put_permanent(&kv_schema::profile(tenant, &p.id), &bytes)
        .map_err(|_| store_down())
}

/// Deletes the index entries among `keys` that still name profile `id`.
fn drop_indexes(kv: &Kv, keys: &[String], id: &str) -> Result<(), AdminError> {
    for key in keys {
        if decide::names(get(kv, key)?.as_deref(), id) {
            kv.delete(key).map_err(|_| store_down())?;
        }
    }
    Ok(())
}

fn not_allowed(allow: &'static str) -> Response {
    let mut r = refuse(AdminError::new(
        405,
        "method_not_allowed",
        format!("use {allow}"),
    ));
    r.headers_mut()
        .insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
    r
}

fn tenant_id(e: &Endpoint) -> Option<&str> {
    match e {
        Endpoint::Get { tenant, .. }
        | Endpoint::FindEmail { tenant, .. }
        | Endpoint::FindIdentity { tenant, .. }
        | Endpoint::Export { tenant, .. }
        | Endpoint::Patch { tenant, .. }
        | Endpoint::Delete { tenant, .. }
        | Endpoint::Unlink { tenant, .. }
        | Endpoint::Merge { tenant, .. }
        | Endpoint::Import { tenant }
        | Endpoint::RevokeSessions { tenant, .. }
        | Endpoint::ListSessions { tenant, .. }
        | Endpoint::RevokeSession { tenant, .. } => Some(tenant),
        Endpoint::MethodNotAllowed(_) => None,
    }
}

/// Serves `parts` for `checked`, the tenant whose credentials were checked.
async fn serve(
    parts: &Parts,
    req: IncomingRequest,
    checked: Option<&str>,
) -> Result<Response, AdminError> {
    let endpoint = decide::endpoint(&parts.method, parts.uri.path(), parts.uri.query())?;
    if let Endpoint::MethodNotAllowed(allow) = endpoint {
        return Ok(not_allowed(allow));
    }
    let tenant = tenant_id(&endpoint).unwrap_or_default().to_owned();
    // Both come from the path's first segment; never serve another.
    if checked != Some(tenant.as_str()) {
        return Err(AdminError::new(404, "not_found", "no such admin endpoint"));
    }
    let kv = Kv::open().map_err(|_| store_down())?;
    let t = tenant.as_str();
    match endpoint {
        Endpoint::Get { id, .. } => Ok(shown(StatusCode::OK, &existing(&kv, t, &id)?)),
        Endpoint::FindEmail { email, .. } => {
            through_index(&kv, t, &kv_schema::profile_email(t, &email), |p| {
                decide::trusted_by_email(p, &email)
            })
        }
        Endpoint::FindIdentity {
            connection,
            subject,
            ..
        } => through_index(
            &kv,
            t,
            &kv_schema::profile_identity(t, &connection, &subject),
            |p| decide::trusted_by_identity(p, &connection, &subject),
        ),
        Endpoint::Patch { id, .. } => {
            let body = body(req, MAX_PATCH_BODY, "a patch").await?;
            let mut p = existing(&kv, t, &id)?;
            decide::apply_patch(&mut p, &body)?;
            save(&kv, t, &p)?;
            audit(json!({"event": "profile-patched", "tenant": t, "profile": id}));
            Ok(shown(StatusCode::OK, &p))
        }
        Endpoint::Delete { id, .. } => {
            let p = existing(&kv, t, &id)?;
            // The person's sessions end first, wherever they are used.
            crate::profile_store::revoke_person(&kv, t, &id).map_err(|_| store_down())?;
            // Indexes next: a failed erasure leaves the profile, and
            // repeating the DELETE finds every index again.
            drop_indexes(&kv, &decide::index_keys(t, &p), &id)?;
            for key in decide::person_records(t, &p) {
                kv.delete(&key).map_err(|_| store_down())?;
            }
            kv.delete(&kv_schema::profile(t, &id))
                .map_err(|_| store_down())?;
            audit(json!({"event": "profile-erased", "tenant": t, "profile": id}));
            Ok(reply(
                StatusCode::OK,
                json!({"id": id, "tenant": t, "erased": true}),
            ))
        }
        Endpoint::Unlink {
            id,
            connection,
            subject,
            ..
        } => {
            let u = decide::unlink(t, existing(&kv, t, &id)?, &connection, &subject)?;
            // The profile first: from then on the index is untrusted.
            save(&kv, t, &u.profile)?;
            drop_indexes(&kv, &u.drop_indexes, &id)?;
            audit(json!({
                "event": "profile-unlinked", "tenant": t, "profile": id, "connection": connection,
            }));
            Ok(shown(StatusCode::OK, &u.profile))
        }
        Endpoint::Merge { id, .. } => {
            let from = decide::merge_source(&body(req, MAX_PATCH_BODY, "a merge").await?, &id)?;
            let target = existing(&kv, t, &id)?;
            let source = existing(&kv, t, &from)?;
            let merged = profiles::merge(t, target, source).map_err(decide::merge_refused)?;
            apply_merge(&kv, t, &merged)?;
            // Sessions naming the merged-away profile end: the next sign-in
            // lands on the target.
            crate::profile_store::revoke_person(&kv, t, &from).map_err(|_| store_down())?;
            audit(json!({"event": "profile-merged", "tenant": t, "profile": id, "from": from}));
            Ok(shown(StatusCode::OK, &merged.profile))
        }
        Endpoint::Import { .. } => {
            let body = body(
                req,
                decide::MAX_IMPORT_BODY,
                "an import body (JSON lines; send larger files in chunks)",
            )
            .await?;
            let report = import(&kv, t, &body)?;
            audit(json!({
                "event": "profiles-imported", "tenant": t,
                "imported": report.imported, "skipped": report.skipped,
            }));
            Ok(reply(
                StatusCode::OK,
                serde_json::to_value(&report).unwrap_or(Value::Null),
            ))
        }
        Endpoint::RevokeSessions { id, .. } => {
            existing(&kv, t, &id)?;
            crate::profile_store::revoke_person(&kv, t, &id).map_err(|_| store_down())?;
            audit(json!({"event": "profile-sessions-revoked", "tenant": t, "profile": id}));
            Ok(reply(
                StatusCode::OK,
                json!({"id": id, "tenant": t, "sessions_revoked": true}),
            ))
        }
        Endpoint::ListSessions { id, .. } => {
            existing(&kv, t, &id)?;
            let sessions: Vec<Value> = crate::profile_store::sessions(&kv, t, &id)
                .map_err(|_| store_down())?
                .into_iter()
                .map(|e| {
                    json!({
                        "id": e.id, "signed_in_at": e.signed_in_at, "expires_at": e.expires_at,
                        "connection": e.connection, "ip": e.ip, "user_agent": e.user_agent,
                    })
                })
                .collect();
            Ok(reply(StatusCode::OK, json!({ "sessions": sessions })))
        }
        Endpoint::RevokeSession { id, session, .. } => {
            existing(&kv, t, &id)?;
            let listed = crate::profile_store::sessions(&kv, t, &id).map_err(|_| store_down())?;
            let Some(e) = listed.iter().find(|e| e.id == session) else {
                return Err(AdminError::new(
                    404,
                    "not_found",
                    format!("no active session `{session}` of profile `{id}`"),
                ));
            };
            let now = crate::io::Clock::now().secs;
            let (key, value, expires_at) = revocation::entry_for(t, &e.id, e.expires_at);
            kv.put(&key, &value, expires_at, now)
                .map_err(|_| store_down())?;
            audit(
                json!({"event": "session-revoked", "tenant": t, "profile": id, "session": session}),
            );
            Ok(reply(
                StatusCode::OK,
                json!({"id": id, "tenant": t, "session": session, "revoked": true}),
            ))
        }
        Endpoint::Export { cursor, limit, .. } => export(&kv, t, cursor, limit),
        Endpoint::MethodNotAllowed(allow) => Ok(not_allowed(allow)),
    }
}

/// A merge's writes, in the core's order, stopping at the first failure
/// (repeating the merge finishes it: `profiles::merge`).
pub(crate) fn apply_merge(kv: &Kv, tenant: &str, m: &profiles::Merged) -> Result<(), AdminError> {
    let down = |_| store_down();
    for w in &m.writes {
        match w {
            MergeWrite::Put(key, value) => kv.put_permanent(key, value).map_err(down)?,
            MergeWrite::EmailIndex { key, email } => {
                let value = get(kv, key)?;
                let owner =
                    match decide::index_target(value.as_deref()).filter(|id| !m.involves(id)) {
                        Some(other) => profile_at(kv, tenant, other)?,
                        None => None,
                    };
                if profiles::email_index_free(owner.as_ref(), email) {
                    kv.put_permanent(key, m.profile.id.as_bytes())
                        .map_err(down)?;
                }
            }
            MergeWrite::Delete(key) => kv.delete(key).map_err(down)?,
        }
    }
    Ok(())
}

/// Stores each profile of an import body that is valid and takes nothing a
/// live profile has, with the sign-in's write order; lines in order, so a
/// later line sees what an earlier one wrote. A store failure stops it (the
/// lines before are imported; repeating the import skips them as existing).
fn import(kv: &Kv, tenant: &str, body: &[u8]) -> Result<decide::ImportReport, AdminError> {
    let mut report = decide::ImportReport::default();
    for (line, text) in decide::import_lines(body) {
        let p = match decide::import_line(text) {
            Ok(p) => p,
            Err(reason) => {
                report.skipped(line, None, reason);
                continue;
            }
        };
        if let Some(reason) = decide::import_conflict(tenant, &p, |key| get(kv, key))? {
            report.skipped(line, Some(&p.id), reason);
            continue;
        }
        let plan = profiles::import(tenant, p);
        crate::profile_writes::apply(kv, tenant, &plan).map_err(|_| store_down())?;
        report.imported(line, &plan.profile.id);
    }
    Ok(report)
}

/// One export page: JSON lines, at most `limit` list entries read (two KV
/// reads each) and about [`decide::MAX_PAGE_BYTES`], erased profiles skipped; the next page's cursor in the
/// `edgeauth-next-cursor` header (absent on the last page).
fn export(kv: &Kv, tenant: &str, cursor: u64, limit: u64) -> Result<Response, AdminError> {
    let count = kv
        .increment(&kv_schema::profile_seq(tenant), 0)
        .map_err(|_| store_down())?;
    let count = count.max(0) as u64;
    let (range, mut next) = decide::export_page(cursor, limit, count);
    let mut body = Vec::new();
    for n in range {
        if body.len() >= decide::MAX_PAGE_BYTES {
            next = Some(n);
            break;
        }
        let entry = get(kv, &kv_schema::profile_list(tenant, n))?;
        let Some(id) = decide::index_target(entry.as_deref()) else {
            continue;
        };
        if let Some(p) = profile_at(kv, tenant, id)? {
            serde_json::to_writer(&mut body, &p).map_err(|_| store_down())?;
            body.push(b'\n');
        }
    }
    let mut r = http::Response::new(body);
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-ndjson"),
    );
    h.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    if let Some(next) = next {
        h.insert("edgeauth-next-cursor", http::HeaderValue::from(next));
    }
    Ok(r)
}

/// The request body, at most `max` bytes (read no further); `what` names
/// the body in the refusal.
async fn body(req: IncomingRequest, max: usize, what: &str) -> Result<Vec<u8>, AdminError> {
    let mut stream = req.into_body_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|_| AdminError::new(400, "bad_body", "reading the request body failed"))?;
        if out.len() + chunk.len() > max {
            return Err(AdminError::new(
                413,
                "too_large",
                format!("{what} is at most {max} bytes"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
