//! The profiles' admin API (`/.edgeauth/admin/profiles/<tenant>/...`):
//! which request is which, metadata patches, and what unlinking and erasure
//! change, in the order the consistency rules of [`crate::profiles`] need.
//! The component does the KV I/O (`profile_admin` there).
//!
//! Credentials ([`crate::admin::profiles_caller`]): the operator's
//! `admin_token` opens every tenant's profiles; a tenant's own tokens
//! (`admin_token_sha256`) open that tenant's and nothing else. The tenant is
//! the path's first segment ([`path_tenant`]), read before any other part
//! of the request. Every key is per tenant, and the tenant in the path must
//! exist, so no call reaches another tenant's data.

use http::Method;
use serde_json::{Map, Value};

use crate::admin::TokenHash;
use crate::kv_schema;
use crate::profiles::{self, Profile};
use crate::tenant_docs::AdminError;

pub const PREFIX: &str = "/.edgeauth/admin/profiles";
/// A `PATCH` body is at most this many bytes.
pub const MAX_PATCH_BODY: usize = 32 * 1024;
/// Each of `user_metadata` and `app_metadata`, serialized, after a patch.
pub use crate::profiles::MAX_METADATA;
/// An import body (JSON lines) is at most this many bytes; the CLI sends a
/// larger file in chunks under it.
pub const MAX_IMPORT_BODY: usize = 1024 * 1024;
/// One import line (a profile within its bounds is far smaller).
pub const MAX_IMPORT_LINE: usize = 64 * 1024;
/// The CLI sends at most this many lines per import request, so the
/// per-line report (each result at most ~250 bytes: [`MAX_REASON_CHARS`])
/// fits its 64 KiB responses.
pub const IMPORT_CHUNK_LINES: usize = 200;
/// A skipped line's reason is cut to this many characters.
pub const MAX_REASON_CHARS: usize = 160;
/// Export page sizes.
pub const DEFAULT_LIMIT: u64 = 100;
pub const MAX_LIMIT: u64 = 500;
/// An export page stops after the profile that takes it past this many
/// bytes (the next page starts after it): memory stays bounded whatever
/// the profiles hold, and pages fit the CLI's 64 KiB responses.
pub const MAX_PAGE_BYTES: usize = 48 * 1024;

pub fn is_admin_path(path: &str) -> bool {
    path.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The admin request a method, path and query name. Tenant ids are checked
/// (form only: existence is the caller's), profile ids have their form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Get {
        tenant: String,
        id: String,
    },
    FindEmail {
        tenant: String,
        email: String,
    },
    FindIdentity {
        tenant: String,
        connection: String,
        subject: String,
    },
    Export {
        tenant: String,
        cursor: u64,
        limit: u64,
    },
    Patch {
        tenant: String,
        id: String,
    },
    Delete {
        tenant: String,
        id: String,
    },
    Unlink {
        tenant: String,
        id: String,
        connection: String,
        subject: String,
    },
    /// `POST .../<tenant>/import`: JSON lines in the export's format.
    Import {
        tenant: String,
    },
    /// `POST .../<tenant>/<id>/merge` with `{"from": "<source id>"}`: the
    /// source profile is merged into `id` ([`profiles::merge`]).
    Merge {
        tenant: String,
        id: String,
    },
    /// "Log out everywhere": every session of the person ends, on every
    /// instance, from their next request (`crate::revocation::person_entry`).
    RevokeSessions {
        tenant: String,
        id: String,
    },
    /// The person's sessions (`crate::session_index`).
    ListSessions {
        tenant: String,
        id: String,
    },
    /// One of them ends, on every instance.
    RevokeSession {
        tenant: String,
        id: String,
        session: String,
    },
    MethodNotAllowed(&'static str),
}

fn bad(error: &'static str, message: impl Into<String>) -> AdminError {
    AdminError::new(400, error, message)
}

fn not_found(message: impl Into<String>) -> AdminError {
    AdminError::new(404, "not_found", message)
}

fn segment(raw: &str) -> Result<String, AdminError> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            bad(
                "invalid_path",
                "path segments must be UTF-8 (percent-encoded)",
            )
        })
}

fn tenant_of(raw: &str) -> Result<String, AdminError> {
    let t = segment(raw)?;
    crate::tenant_docs::check_id(&t)?;
    Ok(t)
}

fn profile_of(raw: &str) -> Result<String, AdminError> {
    let id = segment(raw)?;
    if profiles::valid_id(&id) {
        Ok(id)
    } else {
        Err(bad(
            "invalid_profile_id",
            "profile ids are `p_` and 26 of a-z 2-7",
        ))
    }
}

fn number(name: &str, v: &str, min: u64, max: u64) -> Result<u64, AdminError> {
    v.parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            bad(
                "invalid_query",
                format!("`{name}` must be a whole number from {min} to {max}"),
            )
        })
}

/// The query of `GET .../<tenant>`: a find by email, by identity, or an
/// export page.
fn listing(tenant: String, query: &str) -> Result<Endpoint, AdminError> {
    let (mut email, mut connection, mut subject, mut cursor, mut limit) =
        (None, None, None, None, None);
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        let slot = match k.as_ref() {
            "email" => &mut email,
            "connection" => &mut connection,
            "subject" => &mut subject,
            "cursor" => &mut cursor,
            "limit" => &mut limit,
            other => {
                return Err(bad(
                    "invalid_query",
                    format!(
                        "unknown parameter `{other}` (use email, connection and subject, or cursor and limit)"
                    ),
                ));
            }
        };
        if slot.replace(v.into_owned()).is_some() {
            return Err(bad("invalid_query", format!("`{k}` is given twice")));
        }
    }
    let finding = email.is_some() || connection.is_some() || subject.is_some();
    if finding && (cursor.is_some() || limit.is_some()) {
        return Err(bad(
            "invalid_query",
            "a find (email, connection, subject) takes no cursor or limit",
        ));
    }
    match (email, connection, subject) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(bad(
            "invalid_query",
            "find by `email`, or by `connection` and `subject`, not both",
        )),
        (Some(email), None, None) => {
            let email = profiles::email_key(&email)
                .ok_or_else(|| bad("invalid_query", "`email` is not a plain email address"))?;
            Ok(Endpoint::FindEmail { tenant, email })
        }
        (None, Some(connection), Some(subject))
            if !connection.is_empty() && !subject.is_empty() =>
        {
            Ok(Endpoint::FindIdentity {
                tenant,
                connection,
                subject,
            })
        }
        (None, Some(_), _) | (None, _, Some(_)) => Err(bad(
            "invalid_query",
            "a find by identity needs both `connection` and `subject` (non-empty)",
        )),
        (None, None, None) => Ok(Endpoint::Export {
            tenant,
            cursor: cursor
                .map(|c| number("cursor", &c, 1, u64::MAX))
                .transpose()?
                .unwrap_or(1),
            limit: limit
                .map(|l| number("limit", &l, 1, MAX_LIMIT))
                .transpose()?
                .unwrap_or(DEFAULT_LIMIT),
        }),
    }
}

pub fn endpoint(method: &Method, path: &str, query: Option<&str>) -> Result<Endpoint, AdminError> {
    let no_endpoint = || not_found("no such admin endpoint");
    let rest = path.strip_prefix(PREFIX).ok_or_else(no_endpoint)?;
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        [t] if !t.is_empty() => match *method {
            Method::GET => listing(tenant_of(t)?, query.unwrap_or("")),
            _ => Ok(Endpoint::MethodNotAllowed("GET")),
        },
        [t, "import"] => {
            let tenant = tenant_of(t)?;
            Ok(match *method {
                Method::POST => Endpoint::Import { tenant },
                _ => Endpoint::MethodNotAllowed("POST"),
            })
        }
        [t, p] => {
            let (tenant, id) = (tenant_of(t)?, profile_of(p)?);
            Ok(match *method {
                Method::GET => Endpoint::Get { tenant, id },
                Method::PATCH => Endpoint::Patch { tenant, id },
                Method::DELETE => Endpoint::Delete { tenant, id },
                _ => Endpoint::MethodNotAllowed("GET, PATCH, DELETE"),
            })
        }
        [t, p, "identities", c, s] => {
            let (tenant, id) = (tenant_of(t)?, profile_of(p)?);
            let (connection, subject) = (segment(c)?, segment(s)?);
            if connection.is_empty() || subject.is_empty() {
                return Err(no_endpoint());
            }
            Ok(match *method {
                Method::DELETE => Endpoint::Unlink {
                    tenant,
                    id,
                    connection,
                    subject,
                },
                _ => Endpoint::MethodNotAllowed("DELETE"),
            })
        }
        [t, p, "merge"] => {
            let (tenant, id) = (tenant_of(t)?, profile_of(p)?);
            Ok(match *method {
                Method::POST => Endpoint::Merge { tenant, id },
                _ => Endpoint::MethodNotAllowed("POST"),
            })
        }
        [t, p, "sessions"] => {
            let (tenant, id) = (tenant_of(t)?, profile_of(p)?);
            Ok(match *method {
                Method::GET => Endpoint::ListSessions { tenant, id },
                Method::DELETE => Endpoint::RevokeSessions { tenant, id },
                _ => Endpoint::MethodNotAllowed("GET, DELETE"),
            })
        }
        [t, p, "sessions", s] => {
            let (tenant, id) = (tenant_of(t)?, profile_of(p)?);
            let session = segment(s)?;
            if !crate::revocation::valid_session_id(&session) {
                return Err(bad(
                    "invalid_session_id",
                    "session ids are 24 base64url characters (from the session list)",
                ));
            }
            Ok(match *method {
                Method::DELETE => Endpoint::RevokeSession {
                    tenant,
                    id,
                    session,
                },
                _ => Endpoint::MethodNotAllowed("DELETE"),
            })
        }
        _ => Err(no_endpoint()),
    }
}

/// The source profile id of a merge body, `{"from": "<profile id>"}`;
/// merging a profile into itself (`into`) is refused before anything is read.
pub fn merge_source(body: &[u8], into: &str) -> Result<String, AdminError> {
    let from = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.as_object().filter(|o| o.len() == 1)?.get("from").cloned());
    let Some(Value::String(from)) = from else {
        return Err(bad(
            "invalid_merge",
            "the body must be {\"from\": \"<id of the profile to merge into this one>\"}",
        ));
    };
    if !profiles::valid_id(&from) {
        let mut e = bad(
            "invalid_profile_id",
            "`from`: profile ids are `p_` and 26 of a-z 2-7",
        );
        e.field = Some("from".into());
        return Err(e);
    }
    if from == into {
        return Err(merge_refused(profiles::MergeError::SameProfile));
    }
    Ok(from)
}

/// A merge the profiles' bounds or ids refuse, as the API says it.
pub fn merge_refused(e: profiles::MergeError) -> AdminError {
    use profiles::MergeError as M;
    let error = match e {
        M::SameProfile => "same_profile",
        M::TooManyIdentities { .. } => "too_many_identities",
        M::TooManyEmails { .. } => "too_many_emails",
        M::MetadataTooLarge { .. } => "too_large",
    };
    let mut out = bad(error, e.to_string());
    if let M::MetadataTooLarge { field, .. } = e {
        out.field = Some(field.into());
    }
    out
}

/// The tenant a profiles API path names (its first segment), if it has the
/// form of a tenant id: whose tokens to check, before the rest is parsed.
pub fn path_tenant(path: &str) -> Option<String> {
    let rest = path.strip_prefix(PREFIX)?.strip_prefix('/')?;
    let first = rest.split('/').next()?;
    tenant_of(first).ok()
}

/// Whether tenant `id` exists, and its admin token hashes: with neither a
/// `tenants` variable nor a tenant store the gateway has the one default
/// tenant (no tokens of its own: the operator's only); otherwise a tenant of
/// the variable, or (store on) one stored (`stored` asks the store: `None`
/// when it has no such tenant). `None`: no such tenant.
pub fn tenant_tokens(
    fixed: &crate::tenants::Tenants,
    store: bool,
    id: &str,
    stored: impl FnOnce() -> Result<Option<Vec<TokenHash>>, AdminError>,
) -> Result<Option<Vec<TokenHash>>, AdminError> {
    if fixed.is_empty() && !store {
        return Ok((id == crate::tenants::DEFAULT_TENANT).then(Vec::new));
    }
    if let Some(t) = fixed.get(id) {
        return Ok(Some(t.admin_tokens.clone()));
    }
    if store { stored() } else { Ok(None) }
}

/// Whether an index value names profile `id` (only then is it erased or
/// dropped with it: an entry another profile took over since stays).
pub fn names(value: Option<&[u8]>, id: &str) -> bool {
    value == Some(id.as_bytes())
}

/// The profile an index entry leads to, if it lists what was looked up
/// (the consistency rule: an index is only a pointer).
pub fn trusted_by_email(found: Option<Profile>, email_key: &str) -> Option<Profile> {
    found.filter(|p| p.has_verified_email(email_key))
}

pub fn trusted_by_identity(
    found: Option<Profile>,
    connection: &str,
    subject: &str,
) -> Option<Profile> {
    found.filter(|p| p.has_identity(connection, subject))
}

/// The profile id an index value names, if it has the form of one.
pub fn index_target(value: Option<&[u8]>) -> Option<&str> {
    value
        .and_then(|v| std::str::from_utf8(v).ok())
        .filter(|id| profiles::valid_id(id))
}

/// RFC 7396 JSON merge patch of `target` by `patch`.
fn merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (k, v) in patch {
        match v {
            Value::Null => {
                target.remove(k);
            }
            Value::Object(p) => {
                let slot = target
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(t) = slot {
                    merge(t, p);
                }
            }
            other => {
                target.insert(k.clone(), other.clone());
            }
        }
    }
}

/// Applies a `PATCH` body (`{"user_metadata": {...}, "app_metadata": {...}}`,
/// each a JSON merge patch) to `profile`.
pub fn apply_patch(profile: &mut Profile, body: &[u8]) -> Result<(), AdminError> {
    if body.len() > MAX_PATCH_BODY {
        return Err(AdminError::new(
            413,
            "too_large",
            format!("a patch is at most {MAX_PATCH_BODY} bytes"),
        ));
    }
    let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(body) else {
        return Err(bad(
            "invalid_patch",
            "the body must be a JSON object: {\"user_metadata\": {...}, \"app_metadata\": {...}}",
        ));
    };
    if doc.is_empty() {
        return Err(bad(
            "invalid_patch",
            "nothing to patch: give `user_metadata` and/or `app_metadata`",
        ));
    }
    // On copies: a refused patch changes nothing.
    let (mut user, mut app) = (profile.user_metadata.clone(), profile.app_metadata.clone());
    for (field, patch) in &doc {
        let target = match field.as_str() {
            "user_metadata" => &mut user,
            "app_metadata" => &mut app,
            _ => {
                let mut e = bad(
                    "invalid_patch",
                    format!("`{field}` cannot be patched (only user_metadata and app_metadata)"),
                );
                e.field = Some(field.clone());
                return Err(e);
            }
        };
        let Value::Object(patch) = patch else {
            let mut e = bad("invalid_patch", format!("`{field}` must be a JSON object"));
            e.field = Some(field.clone());
            return Err(e);
        };
        merge(target, patch);
        let size = Value::Object(target.clone()).to_string().len();
        if size > MAX_METADATA {
            let mut e = bad(
                "too_large",
                format!("`{field}` would be {size} bytes; at most {MAX_METADATA}"),
            );
            e.field = Some(field.clone());
            return Err(e);
        }
    }
    profile.user_metadata = user;
    profile.app_metadata = app;
    Ok(())
}

/// Every index key that may name `profile` (its identities and verified
/// emails): erasure deletes those that do, then the profile.
pub fn index_keys(tenant: &str, profile: &Profile) -> Vec<String> {
    let mut keys: Vec<String> = profile
        .identities
        .iter()
        .map(|i| kv_schema::profile_identity(tenant, &i.connection, &i.subject))
        .collect();
    keys.extend(
        profile
            .verified_emails()
            .map(|e| kv_schema::profile_email(tenant, e)),
    );
    keys.sort();
    keys.dedup();
    keys
}

/// The session subjects an identity signs in as: the connection's id and
/// the provider's subject (`crate::connections::Connection::subject`), or
/// for the legacy connection the provider's subject alone.
fn session_subjects(connection: &str, subject: &str) -> Vec<String> {
    let mut out = vec![format!("{connection}|{subject}")];
    if connection == crate::connections::LEGACY_ID {
        out.push(subject.to_owned());
    }
    out
}

/// What is kept about the person beside the profile, per identity: rule
/// records (`rule-user`) and the first-login marker (`login-seen`). Erasure
/// deletes them with the profile (their next sign-in is a first one).
pub fn person_records(tenant: &str, profile: &Profile) -> Vec<String> {
    let mut keys = Vec::new();
    for i in &profile.identities {
        for sub in session_subjects(&i.connection, &i.subject) {
            keys.push(kv_schema::rule_user(tenant, &sub));
            keys.push(kv_schema::login_seen(tenant, &sub));
        }
    }
    keys.sort();
    keys.dedup();
    keys
}

/// What unlinking an identity changes: the profile without it (written
/// first), then the index keys to drop if they still name the profile.
#[derive(Debug)]
pub struct Unlink {
    pub profile: Profile,
    pub drop_indexes: Vec<String>,
}

/// Removes the identity `connection`/`subject` from `profile`, with the
/// emails its connection reported (unless another identity of that
/// connection stays). Its next sign-in finds no index and no profile listing
/// it, so it creates a new profile. The last identity cannot be unlinked:
/// erase the profile instead.
pub fn unlink(
    tenant: &str,
    mut profile: Profile,
    connection: &str,
    subject: &str,
) -> Result<Unlink, AdminError> {
    if !profile.has_identity(connection, subject) {
        return Err(not_found(format!(
            "profile `{}` has no identity `{connection}`/`{subject}`",
            profile.id
        )));
    }
    if profile.identities.len() == 1 {
        return Err(AdminError::new(
            409,
            "last_identity",
            "this is the profile's only identity: erase the profile (DELETE) instead",
        ));
    }
    let before: Vec<String> = profile.verified_emails().map(str::to_owned).collect();
    profile
        .identities
        .retain(|i| !(i.connection == connection && i.subject == subject));
    if !profile
        .identities
        .iter()
        .any(|i| i.connection == connection)
    {
        profile.emails.retain(|e| e.connection != connection);
    }
    let mut drop_indexes = vec![kv_schema::profile_identity(tenant, connection, subject)];
    drop_indexes.extend(
        before
            .iter()
            .filter(|e| !profile.has_verified_email(e))
            .map(|e| kv_schema::profile_email(tenant, e)),
    );
    Ok(Unlink {
        profile,
        drop_indexes,
    })
}

/// One line of an import body: a profile in the export's format, checked to
/// be one the gateway could have written ([`Profile::check`]); the reason
/// otherwise.
pub fn import_line(line: &[u8]) -> Result<Profile, String> {
    if line.len() > MAX_IMPORT_LINE {
        return Err(format!("longer than {MAX_IMPORT_LINE} bytes"));
    }
    let p: Profile = serde_json::from_slice(line)
        .map_err(|e| format!("not a profile in the export's format: {e}"))?;
    p.check()?;
    Ok(p)
}

/// Why an imported profile cannot be stored, if it cannot: its id exists,
/// or one of its identities or verified emails is indexed to another live
/// profile that lists it (an index is only trusted that way, as at sign-in).
/// `read` gets one KV value of the tenant.
pub fn import_conflict<E>(
    tenant: &str,
    p: &Profile,
    mut read: impl FnMut(&str) -> Result<Option<Vec<u8>>, E>,
) -> Result<Option<String>, E> {
    if read(&kv_schema::profile(tenant, &p.id))?.is_some() {
        return Ok(Some(format!("profile `{}` exists", p.id)));
    }
    let mut owner = |key: String, lists: &dyn Fn(&Profile) -> bool| -> Result<Option<String>, E> {
        let value = read(&key)?;
        let Some(id) = index_target(value.as_deref()).map(str::to_owned) else {
            return Ok(None);
        };
        let found = profiles::decode(read(&kv_schema::profile(tenant, &id))?.as_deref());
        Ok(found.filter(|o| lists(o)).map(|_| id))
    };
    for i in &p.identities {
        let key = kv_schema::profile_identity(tenant, &i.connection, &i.subject);
        if let Some(id) = owner(key, &|o| o.has_identity(&i.connection, &i.subject))? {
            return Ok(Some(format!(
                "identity `{}`/`{}` belongs to profile `{id}`",
                i.connection, i.subject
            )));
        }
    }
    for e in p.verified_emails() {
        if let Some(id) = owner(kv_schema::profile_email(tenant, e), &|o| {
            o.has_verified_email(e)
        })? {
            return Ok(Some(format!(
                "verified email `{e}` belongs to profile `{id}`"
            )));
        }
    }
    Ok(None)
}

/// The answer to an import: counts and one result per non-empty line.
#[derive(Debug, Default, serde::Serialize)]
pub struct ImportReport {
    pub imported: usize,
    pub skipped: usize,
    pub results: Vec<ImportResult>,
}

#[derive(Debug, serde::Serialize)]
pub struct ImportResult {
    /// 1-based, counting every line of the body.
    pub line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `imported` or `skipped`.
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ImportReport {
    pub fn imported(&mut self, line: usize, id: &str) {
        self.imported += 1;
        self.results.push(ImportResult {
            line,
            id: Some(id.to_owned()),
            result: "imported",
            reason: None,
        });
    }

    pub fn skipped(&mut self, line: usize, id: Option<&str>, mut reason: String) {
        // A parser's reason may quote the input: keep the report small.
        if let Some((cut, _)) = reason.char_indices().nth(MAX_REASON_CHARS) {
            reason.truncate(cut);
            reason.push('…');
        }
        self.skipped += 1;
        self.results.push(ImportResult {
            line,
            id: id.map(str::to_owned),
            result: "skipped",
            reason: Some(reason),
        });
    }
}

/// The non-empty lines of an import body with their 1-based numbers (a
/// trailing `\r` is dropped, so CRLF files work).
pub fn import_lines(body: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    body.split(|b| *b == b'\n')
        .enumerate()
        .map(|(n, l)| (n + 1, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
}

/// The list entries an export page reads: numbers `cursor ..` up to `limit`
/// of them, not past `count` (the counter's value), and the cursor of the
/// next page (`None` at the end).
pub fn export_page(
    cursor: u64,
    limit: u64,
    count: u64,
) -> (std::ops::RangeInclusive<u64>, Option<u64>) {
    let last = cursor.saturating_add(limit - 1).min(count);
    let next = (last < count).then(|| last + 1);
    (cursor..=last, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::profiles::SignInFacts;
    use serde_json::json;

    const P: &str = "p_aaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn ident(connection: &str, sub: &str, email: &str) -> Identity {
        Identity {
            sub: format!("{connection}|{sub}"),
            idp_subject: Some(sub.into()),
            connection: connection.into(),
            email: Some(email.into()),
            email_verified: true,
            ..Default::default()
        }
    }

    fn two_identities() -> Profile {
        let mut p = Profile::new(
            P.into(),
            &ident("corp", "v1", "v@example.com"),
            &SignInFacts::default(),
            1,
        );
        p.record_sign_in(
            &ident("github", "42", "gh@example.com"),
            &SignInFacts::default(),
            2,
        );
        p
    }

    fn ep(m: Method, path: &str, q: Option<&str>) -> Result<Endpoint, AdminError> {
        endpoint(&m, &format!("{PREFIX}{path}"), q)
    }

    #[test]
    fn paths_and_queries_name_endpoints_or_say_what_is_wrong() {
        assert_eq!(
            ep(Method::GET, &format!("/acme/{P}"), None).unwrap(),
            Endpoint::Get {
                tenant: "acme".into(),
                id: P.into()
            }
        );
        assert_eq!(
            ep(Method::GET, "/acme", Some("email=Bob@EXAMPLE.com")).unwrap(),
            Endpoint::FindEmail {
                tenant: "acme".into(),
                email: "Bob@example.com".into()
            }
        );
        assert_eq!(
            ep(
                Method::GET,
                "/acme",
                Some("connection=gh&subject=a%7Cb%2Fc")
            )
            .unwrap(),
            Endpoint::FindIdentity {
                tenant: "acme".into(),
                connection: "gh".into(),
                subject: "a|b/c".into()
            }
        );
        assert_eq!(
            ep(Method::GET, "/acme", None).unwrap(),
            Endpoint::Export {
                tenant: "acme".into(),
                cursor: 1,
                limit: DEFAULT_LIMIT
            }
        );
        assert_eq!(
            ep(
                Method::DELETE,
                &format!("/acme/{P}/identities/gh/a%2Fb"),
                None
            )
            .unwrap(),
            Endpoint::Unlink {
                tenant: "acme".into(),
                id: P.into(),
                connection: "gh".into(),
                subject: "a/b".into()
            }
        );
        assert_eq!(
            ep(Method::PUT, &format!("/acme/{P}"), None).unwrap(),
            Endpoint::MethodNotAllowed("GET, PATCH, DELETE")
        );
        for (path, q, error) in [
            ("/ACME", None, "invalid_id"),
            ("/acme/p_nope", None, "invalid_profile_id"),
            ("/acme", Some("limit=0"), "invalid_query"),
            ("/acme", Some("limit=501"), "invalid_query"),
            ("/acme", Some("cursor=x"), "invalid_query"),
            ("/acme", Some("email=not-an-email"), "invalid_query"),
            ("/acme", Some("connection=gh"), "invalid_query"),
            ("/acme", Some("email=a@b.c&subject=x"), "invalid_query"),
            ("/acme", Some("sort=asc"), "invalid_query"),
            ("/acme", Some("email=a@b.c&limit=3"), "invalid_query"),
            ("/acme/x/y/z", None, "not_found"),
        ] {
            assert_eq!(
                ep(Method::GET, path, q).unwrap_err().error,
                error,
                "{path} {q:?}"
            );
        }
    }

    #[test]
    fn patches_merge_metadata_within_bounds() {
        let mut p = two_identities();
        p.app_metadata.insert("plan".into(), json!("free"));
        apply_patch(
            &mut p,
            br#"{"user_metadata": {"lang": "fr", "a": {"b": 1}}, "app_metadata": {"plan": null, "roles": ["x"]}}"#,
        )
        .unwrap();
        assert_eq!(
            Value::Object(p.user_metadata.clone()),
            json!({"lang": "fr", "a": {"b": 1}})
        );
        assert_eq!(
            Value::Object(p.app_metadata.clone()),
            json!({"roles": ["x"]})
        );
        apply_patch(
            &mut p,
            br#"{"user_metadata": {"a": {"c": 2}, "lang": null}}"#,
        )
        .unwrap();
        assert_eq!(
            Value::Object(p.user_metadata.clone()),
            json!({"a": {"b": 1, "c": 2}})
        );
        for (body, field) in [
            (&br#"{"name": "x"}"#[..], Some("name")),
            (br#"{"user_metadata": [1]}"#, Some("user_metadata")),
            (br#"[]"#, None),
            (br#"{}"#, None),
            (b"nope", None),
        ] {
            let e = apply_patch(&mut p, body).unwrap_err();
            assert_eq!(e.status, 400);
            assert_eq!(
                e.field.as_deref(),
                field,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let big = format!(
            r#"{{"app_metadata": {{"x": "{}"}}}}"#,
            "y".repeat(MAX_METADATA)
        );
        let e = apply_patch(&mut p, big.as_bytes()).unwrap_err();
        assert_eq!((e.status, e.error), (400, "too_large"));
        assert!(
            !p.app_metadata.contains_key("x"),
            "a refused patch is not kept"
        );
    }

    #[test]
    fn unlinking_drops_the_identity_its_emails_and_their_indexes() {
        let p = two_identities();
        let u = unlink("acme", p.clone(), "github", "42").unwrap();
        assert!(!u.profile.has_identity("github", "42"));
        assert!(!u.profile.has_verified_email("gh@example.com"));
        assert!(u.profile.has_verified_email("v@example.com"));
        assert_eq!(
            u.drop_indexes,
            vec![
                kv_schema::profile_identity("acme", "github", "42"),
                kv_schema::profile_email("acme", "gh@example.com"),
            ]
        );
        assert_eq!(unlink("acme", p, "github", "43").unwrap_err().status, 404);
        assert_eq!(
            unlink("acme", u.profile, "corp", "v1").unwrap_err().status,
            409,
            "the last identity"
        );
    }

    #[test]
    fn erasure_covers_every_index_and_only_entries_naming_the_profile() {
        let keys = index_keys("acme", &two_identities());
        assert_eq!(keys.len(), 4);
        assert!(keys.iter().all(|k| k.contains(":acme:")));
        assert!(names(Some(P.as_bytes()), P));
        assert!(!names(Some(b"p_bbbbbbbbbbbbbbbbbbbbbbbbbb"), P));
        assert!(!names(None, P));
        let records = person_records("acme", &two_identities());
        assert!(records.contains(&kv_schema::rule_user("acme", "github|42")));
        assert!(records.contains(&kv_schema::login_seen("acme", "corp|v1")));
        assert!(
            !records.contains(&kv_schema::rule_user("acme", "42")),
            "a raw subject is another connection's person, unless legacy"
        );
        let mut legacy = two_identities();
        legacy.identities[0].connection = crate::connections::LEGACY_ID.into();
        let records = person_records("acme", &legacy);
        assert!(records.contains(&kv_schema::rule_user("acme", "v1")));
    }

    #[test]
    fn sessions_are_revoked_with_delete() {
        assert_eq!(
            ep(Method::DELETE, &format!("/acme/{P}/sessions"), None).unwrap(),
            Endpoint::RevokeSessions {
                tenant: "acme".into(),
                id: P.into()
            }
        );
        assert_eq!(
            ep(Method::POST, &format!("/acme/{P}/sessions"), None).unwrap(),
            Endpoint::MethodNotAllowed("GET, DELETE")
        );
        assert_eq!(
            ep(Method::GET, &format!("/acme/{P}/sessions"), None).unwrap(),
            Endpoint::ListSessions {
                tenant: "acme".into(),
                id: P.into()
            }
        );
        let sid = "abcdefghijklmnopqrstuv_-";
        assert_eq!(
            ep(Method::DELETE, &format!("/acme/{P}/sessions/{sid}"), None).unwrap(),
            Endpoint::RevokeSession {
                tenant: "acme".into(),
                id: P.into(),
                session: sid.into()
            }
        );
        let e = ep(Method::DELETE, &format!("/acme/{P}/sessions/short"), None).unwrap_err();
        assert_eq!(e.status, 400);
        assert!(ep(Method::DELETE, "/acme/nope/sessions", None).is_err());
    }

    #[test]
    fn a_merge_names_its_source_in_the_body() {
        const S: &str = "p_ssssssssssssssssssssssssss";
        assert_eq!(
            ep(Method::POST, &format!("/acme/{P}/merge"), None).unwrap(),
            Endpoint::Merge {
                tenant: "acme".into(),
                id: P.into()
            }
        );
        assert_eq!(
            ep(Method::GET, &format!("/acme/{P}/merge"), None).unwrap(),
            Endpoint::MethodNotAllowed("POST")
        );
        assert_eq!(
            merge_source(format!(r#"{{"from": "{S}"}}"#).as_bytes(), P).unwrap(),
            S
        );
        for (body, error) in [
            (format!(r#"{{"from": "{P}"}}"#), "same_profile"),
            (r#"{"from": "p_x"}"#.into(), "invalid_profile_id"),
            (
                format!(r#"{{"from": "{S}", "into": "x"}}"#),
                "invalid_merge",
            ),
            (format!(r#"["{S}"]"#), "invalid_merge"),
            ("{}".into(), "invalid_merge"),
        ] {
            let e = merge_source(body.as_bytes(), P).unwrap_err();
            assert_eq!((e.status, e.error), (400, error), "{body}");
        }
        let e = merge_refused(profiles::MergeError::TooManyIdentities { count: 17 });
        assert_eq!((e.status, e.error), (400, "too_many_identities"));
        assert!(
            e.message.contains("17") && e.message.contains("16"),
            "{}",
            e.message
        );
    }

    #[test]
    fn import_lines_are_profiles_within_bounds() {
        assert_eq!(
            ep(Method::POST, "/acme/import", None).unwrap(),
            Endpoint::Import {
                tenant: "acme".into()
            }
        );
        assert_eq!(
            ep(Method::GET, "/acme/import", None).unwrap(),
            Endpoint::MethodNotAllowed("POST")
        );
        let good = two_identities();
        let line = serde_json::to_vec(&good).unwrap();
        assert_eq!(
            import_line(&line).unwrap(),
            good,
            "an export line imports as it was"
        );
        let with = |f: &dyn Fn(&mut Value)| {
            let mut v = serde_json::to_value(&good).unwrap();
            f(&mut v);
            import_line(v.to_string().as_bytes()).unwrap_err()
        };
        for (what, reason) in [
            (with(&|v| v["id"] = json!("p_nope")), "`id`"),
            (with(&|v| v["identities"] = json!([])), "`identities`"),
            (
                with(&|v| v["identities"][1] = v["identities"][0].clone()),
                "listed twice",
            ),
            (
                with(&|v| v["emails"][0]["address"] = json!("V@Example.COM")),
                "`emails[0].address`",
            ),
            (
                with(&|v| v["app_metadata"] = json!({"x": "y".repeat(MAX_METADATA)})),
                "`app_metadata`",
            ),
            (
                with(&|v| v["identities"][0]["claims"] = json!({"x": "y".repeat(9000)})),
                "claims",
            ),
            (
                with(&|v| v["last_user_agent"] = json!("u".repeat(300))),
                "last_user_agent",
            ),
            (with(&|v| v["logins"] = json!("many")), "export's format"),
        ] {
            assert!(what.contains(reason), "{what} (expected {reason})");
        }
        assert!(
            import_line(&vec![b' '; MAX_IMPORT_LINE + 1])
                .unwrap_err()
                .contains("longer")
        );
        let mut report = ImportReport::default();
        report.skipped(7, None, "é".repeat(500));
        assert_eq!(
            report.results[0].reason.as_ref().unwrap().chars().count(),
            MAX_REASON_CHARS + 1
        );
        let lines: Vec<(usize, &[u8])> = import_lines(b"a\r\n\n  \nb\n").collect();
        assert_eq!(lines, [(1, &b"a"[..]), (4, &b"b"[..])]);
    }

    #[test]
    fn an_import_never_takes_what_a_live_profile_has() {
        use std::collections::HashMap;
        let mine = two_identities();
        let mut other = mine.clone();
        other.id = "p_oooooooooooooooooooooooooo".into();
        let mut kv: HashMap<String, Vec<u8>> = HashMap::new();
        let conflict = |kv: &HashMap<String, Vec<u8>>, p: &Profile| {
            import_conflict("acme", p, |k| Ok::<_, ()>(kv.get(k).cloned())).unwrap()
        };
        assert_eq!(conflict(&kv, &mine), None);
        // Stored with its indexes, as an import stores it.
        for step in profiles::import("acme", other.clone()).steps() {
            if let profiles::Step::Put(k, v) = step {
                kv.insert(k.into(), v.into());
            }
        }
        let why = conflict(&kv, &mine).unwrap();
        assert!(
            why.contains("identity `corp`/`v1`") && why.contains(&other.id),
            "{why}"
        );
        // Only an email: the identity indexes are free.
        let mut email_only = mine.clone();
        email_only.identities.retain(|i| i.connection == "github");
        email_only.identities[0].subject = "other".into();
        kv.remove(&kv_schema::profile_identity("acme", "github", "42"));
        let why = conflict(&kv, &email_only).unwrap();
        assert!(why.contains("verified email `v@example.com`"), "{why}");
        // A stale index (naming a profile that does not list it) is no conflict.
        let mut stale = other.clone();
        stale.identities.retain(|i| i.connection == "github");
        stale.emails.clear();
        kv.insert(
            kv_schema::profile("acme", &other.id),
            serde_json::to_vec(&stale).unwrap(),
        );
        assert_eq!(conflict(&kv, &email_only), None);
        // The id itself.
        kv.insert(kv_schema::profile("acme", P), b"{}".to_vec());
        assert!(conflict(&kv, &mine).unwrap().contains("exists"));
    }

    #[test]
    fn export_pages_cover_the_list_once() {
        assert_eq!(export_page(1, 3, 7), (1..=3, Some(4)));
        assert_eq!(export_page(4, 3, 7), (4..=6, Some(7)));
        assert_eq!(export_page(7, 3, 7), (7..=7, None));
        assert_eq!(export_page(1, 3, 0).1, None);
        assert!(export_page(1, 3, 0).0.is_empty());
        assert_eq!(export_page(9, 3, 7).1, None);
        assert_eq!(export_page(u64::MAX, 500, u64::MAX).1, None);
    }

    #[test]
    fn only_existing_tenants_are_served_with_their_own_tokens() {
        let none = crate::tenants::Tenants::default();
        let h = [7u8; 32];
        let asked = |r: Option<Vec<TokenHash>>| move || Ok(r);
        assert_eq!(
            tenant_tokens(&none, false, "default", asked(None)).unwrap(),
            Some(vec![])
        );
        assert_eq!(
            tenant_tokens(&none, false, "acme", asked(Some(vec![h]))).unwrap(),
            None
        );
        assert_eq!(
            tenant_tokens(&none, true, "acme", asked(Some(vec![h]))).unwrap(),
            Some(vec![h])
        );
        assert_eq!(
            tenant_tokens(&none, true, "default", asked(None)).unwrap(),
            None
        );
        let hex = "07".repeat(32);
        let fixed = crate::tenants::Tenants::parse(&format!(
            r#"{{"acme": {{"public_url": "https://a.example", "admin_token_sha256": ["{hex}"]}}}}"#
        ))
        .unwrap();
        assert_eq!(
            tenant_tokens(&fixed, true, "acme", || panic!(
                "the variable's tenant is not looked up"
            ))
            .unwrap(),
            Some(vec![h])
        );
        assert_eq!(
            tenant_tokens(&fixed, false, "globex", asked(None)).unwrap(),
            None
        );
    }

    #[test]
    fn the_tenant_is_the_paths_first_segment() {
        assert_eq!(
            path_tenant(&format!("{PREFIX}/acme")).as_deref(),
            Some("acme")
        );
        assert_eq!(
            path_tenant(&format!("{PREFIX}/acme/{P}/identities/a/b")).as_deref(),
            Some("acme")
        );
        assert_eq!(
            path_tenant(&format!("{PREFIX}/ac%6De/x")).as_deref(),
            Some("acme")
        );
        for bad in ["", "/", "/ACME", "/a%2Fb/x", "x/acme"] {
            assert_eq!(path_tenant(&format!("{PREFIX}{bad}")), None, "{bad}");
        }
        assert_eq!(path_tenant("/.edgeauth/admin/tenants/acme"), None);
    }
}
