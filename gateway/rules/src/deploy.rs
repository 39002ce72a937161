//! Versioned rule deployments: the decisions (the component does their KV
//! I/O, keys in `edgeauth_core::kv_schema`).
//!
//! - An upload creates an immutable [`VersionMeta`] (id = the start of the
//!   artifact's SHA-256, `artifact::version_id`): uploading the same bytes
//!   again is the same version, different bytes are another one.
//! - A tenant's [`Record`] names, per rule of its chain, the version that
//!   runs (the active [`Deployment`]) and keeps the [`HISTORY`] previous
//!   deployments. A sign-in reads it once ([`Pinned`]) and loads exactly
//!   those versions; a deploy writes it last, after the versions it names
//!   exist, in one write, so a sign-in sees the whole old or the whole new
//!   chain, never a mix.
//! - [`rollback`] makes the previous deployment active again (as a new
//!   deployment, so a second rollback goes forward again); [`rollback`] with
//!   a number makes that kept deployment active again.
//! - Concurrent deploys of one tenant: the component reads and writes the
//!   record by compare-and-swap and recomputes on a conflict (at most
//!   [`CAS_ATTEMPTS`] times, then [`conflict`]); [`landed`] checks a write
//!   that the store reported done, [`decode_stored`] reads the
//!   [`NO_DEPLOYMENT`] placeholder a first deploy creates.
//! - [`gc_plan`] deletes the versions no deployment in the record names.
//!
//! A chain rule the active deployment does not name runs its artifact from
//! before versions (`rule-artifact:<tenant>:<rule>`), if any: uploads from
//! before keep working until the rule is deployed by version.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::admin::listing;
use crate::config::{Source, TenantRules};

/// Previous deployments kept in the record: what rollback can return to,
/// and what garbage collection keeps.
pub const HISTORY: usize = 3;
/// How many recent deployment ids a record keeps for [`landed`] (a few
/// hundred bytes more for the sign-in that reads the record).
pub const LANDED: usize = 64;
/// Versions listed or kept per rule at most (listing reads one key each).
pub const MAX_VERSIONS: usize = 200;

/// What is known of one uploaded version (`rule-version-meta:...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionMeta {
    pub version: String,
    pub rule: String,
    /// SHA-256 of the artifact as uploaded (hex); the version id is its start.
    pub sha256: String,
    /// The key that signed it (checked at upload).
    pub kid: String,
    /// Who uploaded it, as the uploader said (informational: the admin
    /// token is one credential).
    pub uploader: String,
    /// Unix seconds of the upload.
    pub uploaded_at: u64,
    /// Size of the artifact as uploaded.
    pub bytes: u64,
    /// The signed header's `created` and code digest.
    pub created: u64,
    pub code_sha256: String,
}

impl VersionMeta {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<VersionMeta> {
        serde_json::from_slice(bytes).ok()
    }
}

/// One deployment: which version of each rule runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// Numbered per tenant by an atomic counter.
    pub id: u64,
    /// Unix seconds.
    pub at: u64,
    pub by: String,
    /// Rule name -> version id.
    pub versions: BTreeMap<String, String>,
    /// The deployment that was active when this one rolled it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_of: Option<u64>,
    /// The deployment whose versions this one restored (`rollback --to N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restores: Option<u64>,
}

/// A tenant's deployment record (`rule-deployment:<tenant>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub active: Deployment,
    /// Most recent first, at most [`HISTORY`].
    #[serde(default)]
    pub previous: Vec<Deployment>,
    /// The ids of the most recent writes, newest first, at most [`LANDED`]:
    /// what [`landed`] reads back after a swap. The history alone is too
    /// short: under Spin's SQLite store, 10 concurrent deploys pushed a
    /// landed write out of it before its read-back, and it retried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub landed: Vec<u64>,
}

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A stored record; an unreadable one is an error (fail closed: a
    /// sign-in must not silently run other versions than deployed).
    pub fn decode(bytes: &[u8]) -> Result<Record, String> {
        serde_json::from_slice(bytes)
            .map_err(|e| format!("the tenant's deployment record is unreadable: {e}"))
    }

    /// Every version the record names (active and previous), by rule.
    pub fn referenced(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for d in std::iter::once(&self.active).chain(&self.previous) {
            for (rule, version) in &d.versions {
                let v = out.entry(rule.as_str()).or_default();
                if !v.contains(&version.as_str()) {
                    v.push(version);
                }
            }
        }
        out
    }
}

/// The versions one sign-in runs, read once at its start and kept with a
/// paused sign-in, so it resumes with the same ones.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pinned {
    /// The active deployment's id; 0 without any deployment.
    pub deployment: u64,
    pub versions: BTreeMap<String, String>,
}

impl Pinned {
    pub fn of(record: Option<&Record>) -> Pinned {
        record.map_or_else(Pinned::default, |r| Pinned {
            deployment: r.active.id,
            versions: r.active.versions.clone(),
        })
    }

    /// The version of `rule` to load; `None`: its artifact from before versions.
    pub fn version(&self, rule: &str) -> Option<&str> {
        self.versions.get(rule).map(String::as_str)
    }
}

/// Why a deploy, rollback or version request is refused; `status` is the
/// HTTP status the admin API answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub status: u16,
    pub message: String,
}

fn refused(status: u16, message: String) -> Refused {
    Refused { status, message }
}

/// `name@version` (as the CLI and the deploy body spell a chain entry).
pub fn parse_spec(spec: &str) -> Result<(String, String), Refused> {
    let Some((name, version)) = spec.split_once('@') else {
        return Err(refused(
            400,
            format!("`{spec}` is not `rule@version` (e.g. `roles@3f2a9c1d0b4e5f60`)"),
        ));
    };
    if !crate::config::valid_name(name) {
        return Err(refused(
            400,
            format!("rule name `{name}` must be 1-64 of a-z 0-9 - _"),
        ));
    }
    if !crate::artifact::valid_version(version) {
        return Err(refused(
            400,
            format!(
                "version `{version}` of `{name}` must be {} lowercase hex digits, as `edgeauth rule upload` printed it",
                crate::artifact::VERSION_LEN
            ),
        ));
    }
    Ok((name.to_owned(), version.to_owned()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployBody {
    rules: Vec<String>,
}

/// The `name@version` specs of a deploy request's body,
/// `{"rules": ["name@version", ...]}`.
pub fn parse_deploy_body(body: &[u8]) -> Result<Vec<String>, Refused> {
    serde_json::from_slice::<DeployBody>(body)
        .map(|b| b.rules)
        .map_err(|e| {
            refused(
                400,
                format!("the body must be {{\"rules\": [\"name@version\", ...]}}: {e}"),
            )
        })
}

/// Who deploys, and when (from the request; `id` from the tenant's counter).
#[derive(Debug, Clone)]
pub struct Stamp {
    pub id: u64,
    pub at: u64,
    pub by: String,
}

/// The record after deploying `requested` (rule -> version) over `current`:
/// the other rules keep their versions, rules no longer loaded from uploads
/// by the chain are dropped. `known` lists, per requested rule, the versions
/// uploaded for this tenant. `Ok(None)`: nothing would change.
pub fn deploy(
    tenant: &str,
    current: Option<&Record>,
    chain: &TenantRules,
    requested: &[(String, String)],
    known: &BTreeMap<String, Vec<String>>,
    stamp: Stamp,
) -> Result<Option<Record>, Refused> {
    if requested.is_empty() {
        return Err(refused(400, "name at least one `rule@version`".into()));
    }
    let uploadable: Vec<&str> = chain
        .chain
        .iter()
        .filter(|r| r.source == Source::Kv)
        .map(|r| r.name.as_str())
        .collect();
    for (i, (rule, version)) in requested.iter().enumerate() {
        if requested[..i].iter().any(|(r, _)| r == rule) {
            return Err(refused(400, format!("rule `{rule}` is named twice")));
        }
        if !uploadable.contains(&rule.as_str()) {
            let message = if uploadable.is_empty() {
                format!(
                    "tenant `{tenant}` has no rule loaded from uploads in its chain, so no version of `{rule}` would run"
                )
            } else {
                format!(
                    "rule `{rule}` is in no chain entry of tenant `{tenant}` loaded from uploads; those are {}",
                    listing(uploadable.iter().copied())
                )
            };
            return Err(refused(409, message));
        }
        let versions: Vec<&str> = known
            .get(rule)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default();
        if !versions.contains(&version.as_str()) {
            let message = if versions.is_empty() {
                format!("rule `{rule}` of tenant `{tenant}` has no versions; upload one first")
            } else {
                format!(
                    "rule `{rule}` of tenant `{tenant}` has no version `{version}`; its versions are {}",
                    listing(versions.iter().copied())
                )
            };
            return Err(refused(404, message));
        }
    }
    let mut versions: BTreeMap<String, String> = current
        .map(|r| r.active.versions.clone())
        .unwrap_or_default();
    versions.retain(|rule, _| uploadable.contains(&rule.as_str()));
    for (rule, version) in requested {
        versions.insert(rule.clone(), version.clone());
    }
    if current.is_some_and(|r| r.active.versions == versions) {
        return Ok(None);
    }
    Ok(Some(push(
        current,
        Deployment {
            id: stamp.id,
            at: stamp.at,
            by: stamp.by,
            versions,
            rollback_of: None,
            restores: None,
        },
    )))
}

/// `next` becomes active, the active one the most recent previous.
fn push(current: Option<&Record>, next: Deployment) -> Record {
    let mut previous = Vec::new();
    let mut landed = vec![next.id];
    if let Some(r) = current {
        previous.push(r.active.clone());
        previous.extend(r.previous.iter().cloned());
        landed.extend(&r.landed);
        if r.landed.is_empty() {
            // A record written before `landed` existed: its history says.
            landed.extend(previous.iter().map(|d| d.id));
        }
    }
    previous.truncate(HISTORY);
    landed.truncate(LANDED);
    Record {
        active: next,
        previous,
        landed,
    }
}

/// The record after a rollback: the versions of deployment `to` (`None`:
/// the previous one) become active again, as a new deployment (the one
/// rolled back goes to the history, so rolling back again returns to it;
/// the restored one leaves it, as it is active again). `Ok(None)`: `to` is
/// the active deployment, nothing to do. `to` must be a kept deployment:
/// older ones' versions may have been collected.
pub fn rollback(
    tenant: &str,
    current: Option<&Record>,
    to: Option<u64>,
    stamp: Stamp,
) -> Result<Option<Record>, Refused> {
    let Some(current) = current else {
        return Err(refused(
            409,
            format!("tenant `{tenant}` has no deployment to roll back"),
        ));
    };
    let index = match to {
        None if current.previous.is_empty() => {
            return Err(refused(
                409,
                format!(
                    "tenant `{tenant}` has no previous deployment: deployment {} is its first",
                    current.active.id
                ),
            ));
        }
        None => 0,
        Some(n) if n == current.active.id => return Ok(None),
        Some(n) => match current.previous.iter().position(|d| d.id == n) {
            Some(i) => i,
            None => {
                let kept = std::iter::once(&current.active)
                    .chain(&current.previous)
                    .map(|d| d.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(refused(
                    404,
                    format!(
                        "tenant `{tenant}` has no deployment {n} to roll back to; its deployments are {kept} (active first; older ones are not kept)"
                    ),
                ));
            }
        },
    };
    let mut rest = current.clone();
    let restored = rest.previous.remove(index);
    Ok(Some(push(
        Some(&rest),
        Deployment {
            id: stamp.id,
            at: stamp.at,
            by: stamp.by,
            versions: restored.versions,
            rollback_of: Some(current.active.id),
            restores: to.map(|_| restored.id),
        },
    )))
}

/// `?to=N` of a rollback request: a deployment number.
pub fn parse_rollback_to(to: Option<&str>) -> Result<Option<u64>, Refused> {
    match to {
        None => Ok(None),
        Some(n) => n.parse::<u64>().ok().filter(|n| *n > 0).map(Some).ok_or_else(|| {
            refused(
                400,
                format!("`to` must be a deployment number (as `edgeauth rule deployment` lists them), not `{n}`"),
            )
        }),
    }
}

/// How many times a deploy or rollback reads the record, recomputes and
/// tries its compare-and-swap before giving up with [`conflict`]. A try fails
/// only because another write landed in between, so this many deploys of
/// one tenant at once all land.
pub const CAS_ATTEMPTS: usize = 16;

/// The answer when every attempt met another write.
pub fn conflict() -> Refused {
    refused(
        409,
        format!(
            "the deployment changed concurrently; retry (another deploy or rollback of this tenant landed before each of {CAS_ATTEMPTS} attempts)"
        ),
    )
}

/// What a first deploy stores where the record is missing, before its
/// compare-and-swap: "no deployment yet" (JSON `null`). Spin's SQLite store
/// swaps from a missing key unconditionally (an upsert), so the record is
/// only ever created this way (the component's `versions::update_record`)
/// and then changed by swaps from a value the store compares.
pub const NO_DEPLOYMENT: &[u8] = b"null";

/// A stored record (`None`: never deployed by version, or the
/// [`NO_DEPLOYMENT`] placeholder).
pub fn decode_stored(bytes: Option<&[u8]>) -> Result<Option<Record>, String> {
    match bytes {
        None => Ok(None),
        Some(b) if b == NO_DEPLOYMENT => Ok(None),
        Some(b) => Record::decode(b).map(Some),
    }
}

/// Whether the write of deployment `id` is in `stored` (read back after
/// every swap): active, or among the [`LANDED`] ids a later write kept.
/// Spin 4.1's Redis store answers every swap with `cas-failed`, including
/// the ones that wrote, and one whose transaction Redis aborted as done, so
/// the component trusts this instead of the answer. (A write followed by
/// more than [`LANDED`] others before its read-back would read as not
/// landed: the retry then finds its versions active and changes nothing.)
pub fn landed(stored: Option<&Record>, id: u64) -> bool {
    stored.is_some_and(|r| {
        r.landed.contains(&id)
            || std::iter::once(&r.active)
                .chain(&r.previous)
                .any(|d| d.id == id)
    })
}

/// What garbage collection deletes: per rule, the listed versions that
/// neither the active nor a previous deployment names.
pub fn gc_plan(
    record: Option<&Record>,
    listed: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, Vec<String>> {
    let referenced = record.map(Record::referenced).unwrap_or_default();
    listed
        .iter()
        .filter_map(|(rule, versions)| {
            let keep = referenced.get(rule.as_str());
            let gone: Vec<String> = versions
                .iter()
                .filter(|v| !keep.is_some_and(|k| k.contains(&v.as_str())))
                .cloned()
                .collect();
            (!gone.is_empty()).then(|| (rule.clone(), gone))
        })
        .collect()
}

/// The rules garbage collection looks at: the chain's rules loaded from
/// uploads and every rule the record names.
pub fn gc_rules(chain: Option<&TenantRules>, record: Option<&Record>) -> Vec<String> {
    let mut rules: Vec<String> = chain
        .map(|c| {
            c.chain
                .iter()
                .filter(|r| r.source == Source::Kv)
                .map(|r| r.name.clone())
                .collect()
        })
        .unwrap_or_default();
    if let Some(r) = record {
        for name in r.referenced().keys() {
            if !rules.iter().any(|n| n == name) {
                rules.push((*name).to_owned());
            }
        }
    }
    rules
}

/// The versions of a rule in upload order, from its list entries (`None`:
/// an entry that could not be read or was collected): each once.
pub fn versions_listed(entries: impl IntoIterator<Item = Option<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in entries.into_iter().flatten() {
        if crate::artifact::valid_version(&v) && !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Which list entries (1-based) to read for a rule whose counter is `seq`:
/// the latest [`MAX_VERSIONS`].
pub fn list_range(seq: i64) -> std::ops::RangeInclusive<u64> {
    let seq = seq.max(0) as u64;
    seq.saturating_sub(MAX_VERSIONS as u64 - 1).max(1)..=seq
}

/// A free-form name of who uploads or deploys, as sent by the CLI
/// (`x-edgeauth-actor`): printable, at most 64 characters; else `admin`.
pub fn actor(header: Option<&str>) -> String {
    match header.map(str::trim) {
        Some(a)
            if !a.is_empty() && a.chars().count() <= 64 && a.chars().all(|c| !c.is_control()) =>
        {
            a.to_owned()
        }
        _ => "admin".to_owned(),
    }
}

/// A paused sign-in may resume only if every version it still has to run
/// exists (`exists(rule, version)`); `Err(rule)`: the first one gone.
pub fn check_pinned(
    chain: &TenantRules,
    from: usize,
    pinned: &Pinned,
    mut exists: impl FnMut(&str, &str) -> bool,
) -> Result<(), String> {
    for rule in chain.chain.iter().skip(from) {
        if let Some(v) = pinned.version(&rule.name)
            && !exists(&rule.name, v)
        {
            return Err(rule.name.clone());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tenant_rules;

    const V1: &str = "1111111111111111";
    const V2: &str = "2222222222222222";
    const V3: &str = "3333333333333333";

    fn stamp(id: u64) -> Stamp {
        Stamp {
            id,
            at: 1000 + id,
            by: "ci".into(),
        }
    }

    fn known(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(r, v)| ((*r).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
            .collect()
    }

    /// The record a deploy that must change something produces.
    fn deployed(
        tenant: &str,
        current: Option<&Record>,
        chain: &TenantRules,
        pairs: &[(&str, &str)],
        known: &BTreeMap<String, Vec<String>>,
        id: u64,
    ) -> Record {
        deploy(tenant, current, chain, &req(pairs), known, stamp(id))
            .unwrap()
            .expect("the deploy changes the record")
    }

    fn req(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(r, v)| ((*r).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn specs_name_a_rule_and_a_full_version() {
        assert_eq!(
            parse_spec(&format!("roles@{V1}")).unwrap(),
            ("roles".into(), V1.into())
        );
        for bad in [
            "roles",
            "roles@",
            "roles@abc",
            "Roles@1111111111111111",
            "@1111111111111111",
            "a@b@c",
        ] {
            let e = parse_spec(bad).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
        }
        assert!(
            parse_spec("roles@abc")
                .unwrap_err()
                .message
                .contains("16 lowercase hex digits")
        );
    }

    #[test]
    fn a_deploy_switches_the_named_rules_and_keeps_the_others() {
        let chain = tenant_rules(&["a", "b"], &[]);
        let k = known(&[("a", &[V1, V2]), ("b", &[V1, V3])]);
        let first = deployed("acme", None, &chain, &[("a", V1), ("b", V1)], &k, 1);
        assert_eq!(first.active.id, 1);
        assert!(first.previous.is_empty());
        let second = deployed("acme", Some(&first), &chain, &[("a", V2)], &k, 2);
        assert_eq!(second.active.versions["a"], V2);
        assert_eq!(second.active.versions["b"], V1, "b keeps its version");
        assert_eq!(second.previous, vec![first.active.clone()]);
        // The same versions again: nothing to do, the history is kept.
        assert_eq!(
            deploy(
                "acme",
                Some(&second),
                &chain,
                &req(&[("a", V2)]),
                &k,
                stamp(3)
            ),
            Ok(None)
        );
        // The history is bounded.
        let mut r = second;
        for (i, v) in [V1, V2, V1, V2].iter().enumerate() {
            r = deploy(
                "acme",
                Some(&r),
                &chain,
                &req(&[("a", v)]),
                &k,
                stamp(10 + i as u64),
            )
            .unwrap()
            .unwrap();
        }
        assert_eq!(r.previous.len(), HISTORY);
        assert_eq!(r.previous[0].id, 12);
    }

    #[test]
    fn deploys_of_unknown_rules_or_versions_are_refused_naming_what_exists() {
        let mut chain = tenant_rules(&["a", "b", "shipped"], &[]);
        chain.chain[2].source = Source::File("rules/x.rule".into());
        let k = known(&[("a", &[V1, V2])]);
        let e = deploy("acme", None, &chain, &req(&[("c", V1)]), &k, stamp(1)).unwrap_err();
        assert_eq!(e.status, 409);
        assert_eq!(
            e.message,
            "rule `c` is in no chain entry of tenant `acme` loaded from uploads; those are `a`, `b`"
        );
        let e = deploy("acme", None, &chain, &req(&[("shipped", V1)]), &k, stamp(1)).unwrap_err();
        assert_eq!(e.status, 409);
        let e = deploy("acme", None, &chain, &req(&[("a", V3)]), &k, stamp(1)).unwrap_err();
        assert_eq!(e.status, 404);
        assert_eq!(
            e.message,
            format!(
                "rule `a` of tenant `acme` has no version `{V3}`; its versions are `{V1}`, `{V2}`"
            )
        );
        let e = deploy("acme", None, &chain, &req(&[("b", V1)]), &k, stamp(1)).unwrap_err();
        assert_eq!(
            e.message,
            "rule `b` of tenant `acme` has no versions; upload one first"
        );
        let e = deploy(
            "acme",
            None,
            &chain,
            &req(&[("a", V1), ("a", V2)]),
            &k,
            stamp(1),
        )
        .unwrap_err();
        assert_eq!(e.status, 400);
        assert_eq!(
            deploy("acme", None, &chain, &[], &k, stamp(1))
                .unwrap_err()
                .status,
            400
        );
        let empty = TenantRules::default();
        let e = deploy("acme", None, &empty, &req(&[("a", V1)]), &k, stamp(1)).unwrap_err();
        assert!(
            e.message
                .starts_with("tenant `acme` has no rule loaded from uploads"),
            "{}",
            e.message
        );
    }

    #[test]
    fn rules_that_left_the_chain_leave_the_next_deployment() {
        let k = known(&[("a", &[V1]), ("b", &[V1])]);
        let both = tenant_rules(&["a", "b"], &[]);
        let r = deployed("t", None, &both, &[("a", V1), ("b", V1)], &k, 1);
        let only_a = tenant_rules(&["a"], &[]);
        let k2 = known(&[("a", &[V1, V2])]);
        let r = deploy("t", Some(&r), &only_a, &req(&[("a", V2)]), &k2, stamp(2))
            .unwrap()
            .unwrap();
        assert_eq!(r.active.versions.keys().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn rollback_restores_the_previous_chain_and_a_second_one_goes_forward() {
        let chain = tenant_rules(&["a", "b"], &[]);
        let k = known(&[("a", &[V1, V2]), ("b", &[V1, V2])]);
        assert_eq!(rollback("t", None, None, stamp(1)).unwrap_err().status, 409);
        let one = deployed("t", None, &chain, &[("a", V1), ("b", V1)], &k, 1);
        let e = rollback("t", Some(&one), None, stamp(2)).unwrap_err();
        assert_eq!(
            e.message,
            "tenant `t` has no previous deployment: deployment 1 is its first"
        );
        let two = deployed("t", Some(&one), &chain, &[("a", V2), ("b", V2)], &k, 2);
        let back = rollback("t", Some(&two), None, stamp(3)).unwrap().unwrap();
        assert_eq!(back.active.versions, one.active.versions);
        assert_eq!((back.active.id, back.active.rollback_of), (3, Some(2)));
        assert_eq!(back.active.restores, None);
        assert_eq!(back.previous[0].id, 2);
        assert_eq!(
            back.previous.len(),
            1,
            "deployment 1 is now active again as 3"
        );
        let forward = rollback("t", Some(&back), None, stamp(4)).unwrap().unwrap();
        assert_eq!(forward.active.versions, two.active.versions);
        // Encoded and read back as stored.
        assert_eq!(Record::decode(&forward.encode()).unwrap(), forward);
        assert!(Record::decode(b"{").is_err());
    }

    /// Deployments 1..=n, each switching `a` to another version.
    fn history(n: u64) -> Record {
        let chain = tenant_rules(&["a", "b"], &[]);
        let k = known(&[("a", &[V1, V2, V3]), ("b", &[V1])]);
        let mut r = deployed("t", None, &chain, &[("a", V1), ("b", V1)], &k, 1);
        for id in 2..=n {
            let v = [V1, V2, V3][(id % 3) as usize];
            r = deploy("t", Some(&r), &chain, &req(&[("a", v)]), &k, stamp(id))
                .unwrap()
                .unwrap();
        }
        r
    }

    #[test]
    fn rollback_to_a_kept_deployment_restores_its_versions() {
        let r = history(5); // active 5, previous 4 3 2
        assert_eq!(
            r.previous.iter().map(|d| d.id).collect::<Vec<_>>(),
            [4, 3, 2]
        );
        let back = rollback("t", Some(&r), Some(3), stamp(6)).unwrap().unwrap();
        assert_eq!(back.active.versions, r.previous[1].versions);
        assert_eq!(
            (
                back.active.id,
                back.active.rollback_of,
                back.active.restores
            ),
            (6, Some(5), Some(3))
        );
        // 3 is active again (as 6); 5 is the most recent previous one.
        assert_eq!(
            back.previous.iter().map(|d| d.id).collect::<Vec<_>>(),
            [5, 4, 2]
        );
        // Rolling back to the active one changes nothing.
        assert_eq!(rollback("t", Some(&back), Some(6), stamp(7)), Ok(None));
        // Unknown numbers are refused, naming the kept ones.
        for n in [1, 3, 99] {
            let e = rollback("t", Some(&back), Some(n), stamp(7)).unwrap_err();
            assert_eq!(e.status, 404);
            assert_eq!(
                e.message,
                format!(
                    "tenant `t` has no deployment {n} to roll back to; its deployments are 6, 5, 4, 2 (active first; older ones are not kept)"
                )
            );
        }
        let e = rollback("t", None, Some(1), stamp(1)).unwrap_err();
        assert_eq!(e.status, 409);
        // The one-step rollback is `to` the most recent previous one, without `restores`.
        let one = rollback("t", Some(&r), None, stamp(6)).unwrap().unwrap();
        let to4 = rollback("t", Some(&r), Some(4), stamp(6)).unwrap().unwrap();
        assert_eq!(one.active.versions, to4.active.versions);
        assert_eq!(one.previous, to4.previous);
        assert_eq!((one.active.restores, to4.active.restores), (None, Some(4)));
    }

    #[test]
    fn rollback_targets_are_deployment_numbers() {
        assert_eq!(parse_rollback_to(None), Ok(None));
        assert_eq!(parse_rollback_to(Some("12")), Ok(Some(12)));
        for bad in ["", "0", "-1", "x", "1.5"] {
            let e = parse_rollback_to(Some(bad)).unwrap_err();
            assert_eq!(e.status, 400, "{bad}");
        }
    }

    #[test]
    fn concurrent_deploys_recomputed_on_the_record_that_won_keep_both_changes() {
        // Two deploys read the same record; the first swap lands, the second
        // conflicts, re-reads and recomputes over the first one's record.
        let chain = tenant_rules(&["a", "b"], &[]);
        let k = known(&[("a", &[V1, V2]), ("b", &[V1, V2])]);
        let base = deployed("t", None, &chain, &[("a", V1), ("b", V1)], &k, 1);
        let first = deploy("t", Some(&base), &chain, &req(&[("a", V2)]), &k, stamp(2))
            .unwrap()
            .unwrap();
        let second = deploy("t", Some(&first), &chain, &req(&[("b", V2)]), &k, stamp(3))
            .unwrap()
            .unwrap();
        assert_eq!(second.active.versions["a"], V2);
        assert_eq!(second.active.versions["b"], V2);
        assert_eq!(
            second.previous.iter().map(|d| d.id).collect::<Vec<_>>(),
            [2, 1]
        );
        // Read back: each write is found while it is kept.
        assert!(landed(Some(&second), 3) && landed(Some(&second), 2));
        assert!(!landed(Some(&first), 3), "the write the store lost");
        assert!(!landed(None, 1));
        // Ten writes later, deployment 2 is long out of the history (3
        // kept) and still reads as landed; a record from before `landed`
        // existed answers from its history.
        let later = history(12);
        assert_eq!(later.previous.len(), HISTORY);
        assert!((1..=12).all(|id| landed(Some(&later), id)));
        assert!(!landed(Some(&later), 13));
        assert_eq!(Record::decode(&later.encode()).unwrap(), later);
        let old: Record = serde_json::from_str(
            &String::from_utf8(second.encode())
                .unwrap()
                .replace(r#","landed":[3,2,1]"#, ""),
        )
        .unwrap();
        assert!(old.landed.is_empty() && landed(Some(&old), 2));
        let next = deploy("t", Some(&old), &chain, &req(&[("a", V1)]), &k, stamp(4))
            .unwrap()
            .unwrap();
        assert_eq!(next.landed, [4, 3, 2, 1]);
        assert_eq!(conflict().status, 409);
        assert!(
            conflict()
                .message
                .starts_with("the deployment changed concurrently; retry")
        );
    }

    #[test]
    fn the_placeholder_reads_as_no_deployment() {
        assert_eq!(decode_stored(None), Ok(None));
        assert_eq!(decode_stored(Some(NO_DEPLOYMENT)), Ok(None));
        let r = history(2);
        assert_eq!(decode_stored(Some(&r.encode())), Ok(Some(r)));
        assert!(decode_stored(Some(b"{")).is_err());
        assert!(decode_stored(Some(b"")).is_err(), "only the placeholder");
    }

    #[test]
    fn gc_deletes_only_versions_no_kept_deployment_names() {
        let chain = tenant_rules(&["a", "b"], &[]);
        let k = known(&[("a", &[V1, V2, V3]), ("b", &[V1, V2])]);
        let one = deployed("t", None, &chain, &[("a", V1), ("b", V1)], &k, 1);
        let two = deploy("t", Some(&one), &chain, &req(&[("a", V2)]), &k, stamp(2))
            .unwrap()
            .unwrap();
        let plan = gc_plan(Some(&two), &k);
        assert_eq!(plan, known(&[("a", &[V3]), ("b", &[V2])]));
        // Without a record, everything listed goes.
        assert_eq!(gc_plan(None, &k), k);
        assert_eq!(gc_rules(Some(&chain), Some(&two)), ["a", "b"]);
        let only_a = tenant_rules(&["a"], &[]);
        assert_eq!(gc_rules(Some(&only_a), Some(&two)), ["a", "b"]);
    }

    #[test]
    fn listing_versions_reads_the_latest_entries_once_each() {
        assert_eq!(list_range(0).count(), 0);
        assert_eq!(list_range(3), 1..=3);
        assert_eq!(list_range(250), 51..=250);
        let listed = versions_listed([
            Some(V1.into()),
            None,
            Some(V2.into()),
            Some(V1.into()),
            Some("junk".into()),
        ]);
        assert_eq!(listed, [V1, V2]);
    }

    #[test]
    fn a_paused_sign_in_resumes_only_while_its_versions_exist() {
        let chain = tenant_rules(&["a", "b", "c"], &[]);
        let pinned = Pinned {
            deployment: 4,
            versions: [
                ("a".to_owned(), V1.to_owned()),
                ("b".to_owned(), V2.to_owned()),
            ]
            .into_iter()
            .collect(),
        };
        assert_eq!(check_pinned(&chain, 0, &pinned, |_, _| true), Ok(()));
        assert_eq!(
            check_pinned(&chain, 0, &pinned, |r, _| r != "b"),
            Err("b".to_owned())
        );
        // Rules already run, and rules without a version (pre-version
        // artifacts), are not looked up.
        let mut asked = Vec::new();
        assert_eq!(
            check_pinned(&chain, 1, &pinned, |r, v| {
                asked.push((r.to_owned(), v.to_owned()));
                true
            }),
            Ok(())
        );
        assert_eq!(asked, [("b".to_owned(), V2.to_owned())]);
        assert_eq!(Pinned::of(None), Pinned::default());
        assert_eq!(pinned.version("c"), None);
    }

    #[test]
    fn deploy_bodies_list_specs() {
        assert_eq!(
            parse_deploy_body(br#"{"rules": ["a@1111111111111111"]}"#).unwrap(),
            ["a@1111111111111111"]
        );
        for bad in [
            &b"[]"[..],
            b"{}",
            br#"{"rules": "a"}"#,
            br#"{"rules": [], "x": 1}"#,
        ] {
            assert_eq!(parse_deploy_body(bad).unwrap_err().status, 400);
        }
    }

    #[test]
    fn actors_are_short_printable_names() {
        assert_eq!(actor(Some(" ci@build-7 ")), "ci@build-7");
        assert_eq!(actor(None), "admin");
        assert_eq!(actor(Some("")), "admin");
        assert_eq!(actor(Some("a\nb")), "admin");
        assert_eq!(actor(Some(&"x".repeat(65))), "admin");
    }
}
