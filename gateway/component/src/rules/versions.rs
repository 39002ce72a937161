//! The KV I/O of versioned deployments and of the per-rule execution logs.
//! Keys are `edgeauth_core::kv_schema`'s; what to write, keep or delete is
//! decided in `edgeauth_rules::deploy` and `edgeauth_rules::run_log`.

use edgeauth_core::kv_schema;
use edgeauth_rules::deploy::{self, Record, Refused, VersionMeta};
use edgeauth_rules::run_log::{self, Entry};

use crate::kv::{CasOpen, Kv, Unavailable};

/// Why the deployment record cannot be used.
#[derive(Debug)]
pub enum RecordError {
    Unavailable,
    /// Stored but unreadable: sign-ins fail closed rather than run other
    /// versions than deployed.
    Unreadable(String),
}

/// The tenant's deployment record (`None`: never deployed by version).
pub fn record(kv: &Kv, tenant: &str) -> Result<Option<Record>, RecordError> {
    match kv.get_raw(&kv_schema::rule_deployment(tenant)) {
        Err(Unavailable) => Err(RecordError::Unavailable),
        Ok(bytes) => deploy::decode_stored(bytes.as_deref()).map_err(RecordError::Unreadable),
    }
}

/// Why [`update_record`] wrote nothing.
#[derive(Debug)]
pub enum UpdateError {
    /// The decision refused (or every attempt met another write:
    /// `deploy::conflict`).
    Refused(Refused),
    Record(RecordError),
}

impl From<Unavailable> for UpdateError {
    fn from(_: Unavailable) -> Self {
        UpdateError::Record(RecordError::Unavailable)
    }
}

impl From<Refused> for UpdateError {
    fn from(r: Refused) -> Self {
        UpdateError::Refused(r)
    }
}

/// What [`update_record`] did: `Ok(Some(record))` wrote that record (the
/// switch: one write of the whole record, after every version it names
/// was stored); `Ok(None)`: `decide` changed nothing.
pub type Updated = Result<Option<Record>, UpdateError>;

/// Read-decide-write of the tenant's record as a compare-and-swap: reads it
/// (`atomics::cas`), lets `decide` compute the next one from it (`Ok(None)`:
/// nothing to change), swaps, and on a conflict reads and decides again,
/// at most `deploy::CAS_ATTEMPTS` times. So two deploys racing (on one
/// instance or several sharing the store) each land over the other's
/// record instead of overwriting it.
///
/// What Spin 4.1's stores do, and how this copes:
/// - SQLite (the default): `Cas::new` reads nothing, `current` does, and a
///   swap from a missing key is an unconditional upsert: so the record is
///   never swapped from missing. The first deploy to increment
///   `rule-deployment-init:<tenant>` stores the `null` record
///   (`deploy::NO_DEPLOYMENT`); the others wait for it and swap from it.
/// - Redis: WATCH at `current`, MULTI/SET/EXEC at swap, which Redis runs
///   only if the key did not change; but Spin then sends `UNWATCH <key>`,
///   which Redis refuses (UNWATCH takes no argument), and reports that as
///   `cas-failed` after every swap, one that wrote included; and it reads
///   an aborted EXEC as success. So its answer means nothing: after every
///   swap the record is read back (`deploy::landed`: is this deployment
///   there, active or kept by a later write?), and a try that did not land
///   is retried.
/// - A store without atomics (`CasOpen::Unsupported`): read, decide, write,
///   as before compare-and-swap, with a warning: concurrent deploys of one
///   tenant may then lose one another's change.
pub fn update_record(
    kv: &Kv,
    tenant: &str,
    mut decide: impl FnMut(Option<&Record>) -> Updated,
) -> Updated {
    let key = kv_schema::rule_deployment(tenant);
    for attempt in 0..deploy::CAS_ATTEMPTS {
        if attempt > 0 {
            backoff(attempt);
        }
        let cas = match kv.cas(&key) {
            Ok(cas) => cas,
            Err(CasOpen::Unavailable) => return Err(Unavailable.into()),
            Err(CasOpen::Unsupported(e)) => return update_unchecked(kv, tenant, &e, decide),
        };
        if cas.current.is_none() {
            if kv.increment(&kv_schema::rule_deployment_init(tenant), 1)? == 1 {
                kv.put_permanent(&key, deploy::NO_DEPLOYMENT)?;
            }
            continue;
        }
        let current = deploy::decode_stored(cas.current.as_deref())
            .map_err(|e| UpdateError::Record(RecordError::Unreadable(e)))?;
        let Some(next) = decide(current.as_ref())? else {
            return Ok(None);
        };
        // Whatever the store answers, the record read back decides (Spin's
        // Redis store answers wrong both ways, see above).
        let reported = kv.swap(cas, &next.encode())?;
        let stored = record(kv, tenant).map_err(UpdateError::Record)?;
        if deploy::landed(stored.as_ref(), next.active.id) {
            return Ok(Some(next));
        }
        if reported {
            eprintln!(
                "edgeauth: the store reported the swap of {key} done but holds another record; retrying"
            );
        }
    }
    Err(deploy::conflict().into())
}

/// A few milliseconds, more with each attempt, spread by a random part so
/// racing deploys do not retry in step.
fn backoff(attempt: usize) {
    let mut r = [0u8; 1];
    crate::io::rng(&mut r);
    let ms = attempt as u64 * 2 + u64::from(r[0] % 8);
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

/// Read, decide, write: for a store without compare-and-swap.
fn update_unchecked(
    kv: &Kv,
    tenant: &str,
    why: &str,
    mut decide: impl FnMut(Option<&Record>) -> Updated,
) -> Updated {
    eprintln!(
        "edgeauth: warning: the key-value store has no compare-and-swap ({why}); the deployment record of tenant `{tenant}` is written without it, so concurrent deploys of the tenant may lose one another's change"
    );
    let current = record(kv, tenant).map_err(UpdateError::Record)?;
    let next = decide(current.as_ref())?;
    if let Some(next) = &next {
        kv.put_permanent(&kv_schema::rule_deployment(tenant), &next.encode())?;
    }
    Ok(next)
}

/// The next deployment number of `tenant` (atomic across instances).
pub fn next_deployment_id(kv: &Kv, tenant: &str) -> Result<u64, Unavailable> {
    kv.increment(&kv_schema::rule_deployment_seq(tenant), 1)
        .map(|n| n.max(1) as u64)
}

pub fn meta(
    kv: &Kv,
    tenant: &str,
    rule: &str,
    version: &str,
) -> Result<Option<VersionMeta>, Unavailable> {
    Ok(kv
        .get_raw(&kv_schema::rule_version_meta(tenant, rule, version))?
        .and_then(|b| VersionMeta::decode(&b)))
}

/// The rule's versions still stored, in upload order.
pub fn metas(kv: &Kv, tenant: &str, rule: &str) -> Result<Vec<VersionMeta>, Unavailable> {
    let seq = kv.counter(&kv_schema::rule_version_seq(tenant, rule))?;
    let mut entries = Vec::new();
    for n in deploy::list_range(seq) {
        let id = kv
            .get_raw(&kv_schema::rule_version_list(tenant, rule, n))?
            .and_then(|b| String::from_utf8(b).ok());
        entries.push(id);
    }
    let mut out = Vec::new();
    for version in deploy::versions_listed(entries) {
        if let Some(m) = meta(kv, tenant, rule, &version)? {
            out.push(m);
        }
    }
    Ok(out)
}

/// Stores a new version: the bound artifact first, then its metadata (a
/// version with metadata is complete), then its entry in the rule's list.
/// Two uploads of the same bytes racing both write valid bindings of the
/// same artifact; the list reads each version once.
pub fn store(
    kv: &Kv,
    tenant: &str,
    rule: &str,
    meta: &VersionMeta,
    bound: &[u8],
) -> Result<(), Unavailable> {
    let v = &meta.version;
    kv.put_permanent(&kv_schema::rule_version(tenant, rule, v), bound)?;
    kv.put_permanent(
        &kv_schema::rule_version_meta(tenant, rule, v),
        &meta.encode(),
    )?;
    let n = kv.increment(&kv_schema::rule_version_seq(tenant, rule), 1)?;
    kv.put_permanent(
        &kv_schema::rule_version_list(tenant, rule, n.max(1) as u64),
        v.as_bytes(),
    )
}

/// Deletes a version: its metadata first (it is then no longer listed or
/// deployable), then its artifact. Its list entry stays and is skipped.
pub fn delete(kv: &Kv, tenant: &str, rule: &str, version: &str) -> Result<(), Unavailable> {
    kv.delete(&kv_schema::rule_version_meta(tenant, rule, version))?;
    kv.delete(&kv_schema::rule_version(tenant, rule, version))
}

pub fn exists(kv: &Kv, tenant: &str, rule: &str, version: &str) -> bool {
    kv.exists(&kv_schema::rule_version(tenant, rule, version))
        .unwrap_or(false)
}

/// Appends one run to the rule's log ring: a counter increment and one
/// write (the ring bounds the slots: no envelope, no sweep index).
pub fn append_log(kv: &Kv, tenant: &str, rule: &str, entry: &Entry) -> Result<(), Unavailable> {
    let n = kv
        .increment(&kv_schema::rule_log_seq(tenant, rule), 1)?
        .max(1) as u64;
    kv.put_permanent(
        &kv_schema::rule_log(tenant, rule, run_log::slot(n)),
        &entry.encode(n),
    )
}

/// The rule's last runs, newest first.
pub fn read_logs(kv: &Kv, tenant: &str, rule: &str, limit: u64) -> Result<Vec<Entry>, Unavailable> {
    let seq = kv.counter(&kv_schema::rule_log_seq(tenant, rule))?;
    let mut out = Vec::new();
    for n in run_log::latest(seq, limit) {
        let stored = kv.get_raw(&kv_schema::rule_log(tenant, rule, run_log::slot(n)))?;
        if let Some(e) = stored.and_then(|b| Entry::decode(&b, n)) {
            out.push(e);
        }
    }
    Ok(out)
}
