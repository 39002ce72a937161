//! The KV I/O of versioned deployments and of the per-rule execution logs.
//! Keys are `edgeauth_core::kv_schema`'s; what to write, keep or delete is
//! decided in `edgeauth_rules::deploy` and `edgeauth_rules::run_log`.

use edgeauth_core::kv_schema;
use edgeauth_rules::deploy::{self, Record, VersionMeta};
use edgeauth_rules::run_log::{self, Entry};

use crate::kv::{Kv, Unavailable};

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
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => Record::decode(&bytes)
            .map(Some)
            .map_err(RecordError::Unreadable),
    }
}

/// The switch: one write of the whole record, after every version it names
/// was stored.
pub fn write_record(kv: &Kv, tenant: &str, record: &Record) -> Result<(), Unavailable> {
    kv.put_permanent(&kv_schema::rule_deployment(tenant), &record.encode())
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
