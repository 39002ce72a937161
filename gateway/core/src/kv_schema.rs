//! The gateway's key-value schema: every key it reads or writes, the format
//! of every value, and the bounded sweep that removes what expired.
//!
//! Spin KV (and Redis behind it) has no expiry of its own, and listing keys
//! (`get-keys`, wasi:keyvalue `list-keys`, whose cursor Spin does not
//! support) returns the whole store. So:
//!
//! - every value the gateway writes is an [envelope](encode): its expiry
//!   (unix seconds) and the payload. A value past its expiry is ignored when
//!   read ([`open`]), so the sweep only reclaims space and is never needed for
//!   correctness;
//! - single-use markers are counters (wasi:keyvalue `increment`, atomic in
//!   Spin's SQLite and Redis stores): the interface fixes their value, so
//!   their expiry is part of their key instead ([`used_state`],
//!   [`resume_used`]);
//! - each key is recorded once in a sweep index, when it is first written
//!   ([`needs_index`]): the write takes the next number of its expiry's
//!   bucket ([`index_count`], by `increment`) and stores its key under that
//!   number ([`index_entry`]). A sweep pass ([`SweepPass`]) walks the
//!   buckets that are over, oldest first from a cursor kept in KV
//!   ([`SWEEP_CURSOR`]), at most [`SWEEP_BATCH`] store operations per pass,
//!   and deletes the indexed keys whose current value is over; a key written
//!   again since with a later expiry is indexed again at that expiry
//!   ([`Verdict::Reindex`]), so the index holds about one entry per live key
//!   however often keys are rewritten. The cost is two small writes per new
//!   key and a bounded pass on the first and every [`SWEEP_EVERY`]th new key
//!   of a bucket; no request ever lists the store, however large it is.
//!
//! The exception is *configuration* the operator writes through the admin
//! API (rule artifacts, tenant documents and their indexes): it must not
//! expire, so it is stored as written, without an envelope, is never put in
//! the sweep index, and [`verdict`] never lets a sweep delete it. Tenant
//! documents are found by host with one read ([`tenant_host`]); the admin
//! API keeps [`tenant_id`], [`TENANT_INDEX`] and [`TENANT_RULE_HEADERS`]
//! consistent with them (`crate::tenant_docs`).
//!
//! Values written before this schema: revocations (`<expiry>`) and cached
//! assertions (`<expiry> <jwt>`) already had this form and stay valid.
//! JSON values (provider cache, paused sign-ins) do not open and count as
//! expired: the provider documents are fetched again, a paused sign-in has
//! to start over. Rule user records in JSON are kept (read as they are and
//! rewritten as envelopes at the person's next sign-in). Old replay markers
//! (`used-state:<hash>`) are no longer consulted: the authorization code they
//! protected is single-use at the identity provider too, and their state
//! expires within [`crate::login::LOGIN_TTL_SECS`] anyway. `rule-reauth:`
//! markers are gone: a step-up is bound into the sealed login state
//! ([`crate::login::StepUp`]). Entries written before the index existed are
//! not in it and are not swept.

use sha2::{Digest, Sha256};

use crate::encoding::b64url;

/// Replay markers of login states (counters; expiry in the key).
pub const USED_STATE: &str = "used-state";
/// Logged-out sessions; the envelope's payload is empty.
pub const REVOKED_SESSION: &str = "revoked-session";
/// Per person (by profile id): how many times every session of theirs was
/// revoked (erasure; an admin's "log out everywhere"), as decimal text
/// without envelope, never expiring (`crate::revocation::person_entry`).
/// Sessions carry the count they were signed in under.
pub const REVOKED_PROFILE: &str = "revoked-profile";
/// Per person (by profile id): their sessions, for the admin API
/// (`crate::session_index`); an envelope that expires with the last one.
pub const SESSION_INDEX: &str = "session-index";
/// Signed assertions reused across a session's requests.
pub const ASSERTION: &str = "assertion";
/// Discovery document and JWKS per issuer.
pub const PROVIDER: &str = "provider";
/// What rules keep per person and tenant (logins, metadata).
pub const RULE_USER: &str = "rule-user";
/// A sign-in paused by a rule's redirect.
pub const RULE_RESUME: &str = "rule-resume";
/// Single-use markers of paused sign-ins (counters; expiry in the key).
pub const RULE_RESUME_USED: &str = "rule-resume-used";
/// Single-use markers of offers to link accounts (counters; expiry in the key).
pub const LINK_USED: &str = "link-used";
/// Single-use markers of back-channel logout tokens' `jti` (counters;
/// expiry in the key).
pub const LOGOUT_USED: &str = "logout-used";
/// Per tenant, connection and the provider's session id (`sid` of the ID
/// token): the profile signed in with it, for back-channel logout by `sid`
/// (`crate::backchannel`); an envelope that expires with the sessions.
pub const PROVIDER_SID: &str = "provider-sid";
/// What a session's provider granted beyond the ID token (refresh and
/// access tokens), sealed, per session id (`crate::refresh`).
pub const SESSION_GRANT: &str = "session-grant";
/// Single-flight of one refresh (`crate::refresh`): a counter marker.
pub const REFRESH_LOCK: &str = "refresh-lock";
/// Rule artifacts uploaded by the operator: configuration, not state, so
/// stored as uploaded (signed bytes), never expiring and never swept.
pub const RULE_ARTIFACT: &str = "rule-artifact";
/// Versioned rule deployments (`edgeauth_rules::deploy`), configuration like
/// [`RULE_ARTIFACT`]: never expiring, never swept.
/// - `rule-version:<tenant>:<rule>:<version>`: one immutable version, the
///   artifact as uploaded, bound with the gateway's MAC to the tenant, the
///   rule and the version id (the start of the artifact's SHA-256), so it is
///   content-addressed and never rewritten;
/// - `rule-version-meta:<tenant>:<rule>:<version>`: its metadata (JSON),
///   written after the artifact: a version whose metadata exists is complete;
/// - `rule-version-seq:<tenant>:<rule>` (a counter) and
///   `rule-version-list:<tenant>:<rule>:<n>` (a version id): the rule's
///   versions in upload order, appended by `increment` so concurrent uploads
///   never lose one (Spin KV cannot list keys cheaply);
/// - `rule-deployment:<tenant>`: the active deployment and the previous ones
///   (JSON), the one record a sign-in reads to know which versions it runs,
///   written last by a deploy or a rollback (one write: the switch is atomic),
///   by compare-and-swap (wasi:keyvalue `atomics`), so concurrent deploys
///   recompute instead of overwriting each other; JSON `null` before the
///   first deployment (`edgeauth_rules::deploy::NO_DEPLOYMENT`);
/// - `rule-deployment-seq:<tenant>`: a counter numbering deployments;
/// - `rule-deployment-init:<tenant>`: a counter marking that the record was
///   created: the first deploy to increment it stores the `null` record that
///   every deploy then swaps from (Spin's SQLite store cannot swap from a
///   missing key conditionally). Deleting the record by hand needs this
///   marker deleted too, else deploys of the tenant wait for a record that
///   nobody creates (and answer 409).
pub const RULE_VERSION: &str = "rule-version";
pub const RULE_VERSION_META: &str = "rule-version-meta";
pub const RULE_VERSION_SEQ: &str = "rule-version-seq";
pub const RULE_VERSION_LIST: &str = "rule-version-list";
pub const RULE_DEPLOYMENT: &str = "rule-deployment";
pub const RULE_DEPLOYMENT_SEQ: &str = "rule-deployment-seq";
pub const RULE_DEPLOYMENT_INIT: &str = "rule-deployment-init";
/// Per-rule execution logs (`edgeauth_rules::run_log`): a counter numbering
/// a rule's runs and a ring of slots `rule-log:<tenant>:<rule>:<n mod ring>`.
/// The ring bounds them (a fixed number of keys per rule, each overwritten),
/// so they are stored without an envelope and never indexed or swept: two
/// writes per run, the least a sign-in can pay for them.
pub const RULE_LOG_SEQ: &str = "rule-log-seq";
pub const RULE_LOG: &str = "rule-log";
/// Tenant documents (`crate::tenant_docs`), configuration like rule
/// artifacts: stored as JSON without an envelope, never expiring, never
/// indexed or swept. The request path reads only [`tenant_host`].
pub const TENANT_HOST: &str = "tenant-host";
/// Which host a stored tenant is filed under, by id (for the admin API).
pub const TENANT_ID: &str = "tenant-id";
/// The admin listing of stored tenants (id, host, name, connection ids,
/// rule headers), so listing never lists the store.
pub const TENANT_INDEX: &str = "tenant-index";
/// Every header name any stored tenant's rules may set: stripped from every
/// client request, as the `rules` variable's are (tenants may share an origin).
pub const TENANT_RULE_HEADERS: &str = "tenant-rule-headers";
/// Login events' webhook outbox, per tenant (`crate::webhooks`): the
/// counter numbering its entries (a counter without expiry, never swept),
/// the entries (envelopes: a delivery, or empty once finished), the scan
/// cursor (an envelope), and the count of deliveries given up (a counter).
pub const WEBHOOK_SEQ: &str = "webhook-seq";
pub const WEBHOOK_OUT: &str = "webhook-out";
pub const WEBHOOK_CURSOR: &str = "webhook-cursor";
pub const WEBHOOK_EXPIRED: &str = "webhook-expired";
/// Per tenant and subject: the person has signed in before (a counter
/// without expiry; tells a first login, `signup`, without rules).
pub const LOGIN_SEEN: &str = "login-seen";
/// Sweep index: per-bucket counters and entries, and the cursor.
/// People's profiles (`crate::profiles`) and their indexes: records the
/// tenant keeps until it erases them, so stored as JSON without an envelope
/// and never swept, like configuration.
pub const PROFILE: &str = "profile";
/// `connection|subject` → profile id.
pub const PROFILE_IDENTITY: &str = "profile-identity";
/// Verified email (`crate::profiles::email_key`) → profile id.
pub const PROFILE_EMAIL: &str = "profile-email";
/// The tenant's append-only list of the profiles it created, for export
/// (Spin KV cannot list keys cheaply): a counter without expiry numbering
/// the entries ([`profile_seq`], by `increment`), and entry `n` holding the
/// id of the `n`th profile created ([`profile_list`]). Entries are never
/// rewritten or removed; an erased profile's entry names a profile that is
/// gone and the export skips it.
pub const PROFILE_SEQ: &str = "profile-seq";
pub const PROFILE_LIST: &str = "profile-list";
pub const SWEEP_COUNT: &str = "sweep-count";
pub const SWEEP_ENTRY: &str = "sweep-entry";
pub const SWEEP_CURSOR: &str = "sweep-cursor";

/// Every prefix the gateway uses, for tools and tests.
pub const PREFIXES: &[&str] = &[
    USED_STATE,
    REVOKED_SESSION,
    REVOKED_PROFILE,
    SESSION_INDEX,
    ASSERTION,
    PROVIDER,
    RULE_USER,
    RULE_RESUME,
    RULE_RESUME_USED,
    LINK_USED,
    LOGOUT_USED,
    PROVIDER_SID,
    SESSION_GRANT,
    REFRESH_LOCK,
    RULE_ARTIFACT,
    RULE_VERSION,
    RULE_VERSION_META,
    RULE_VERSION_SEQ,
    RULE_VERSION_LIST,
    RULE_DEPLOYMENT,
    RULE_DEPLOYMENT_SEQ,
    RULE_DEPLOYMENT_INIT,
    RULE_LOG_SEQ,
    RULE_LOG,
    TENANT_HOST,
    TENANT_ID,
    TENANT_INDEX,
    TENANT_RULE_HEADERS,
    PROFILE,
    PROFILE_IDENTITY,
    PROFILE_EMAIL,
    PROFILE_SEQ,
    PROFILE_LIST,
    WEBHOOK_SEQ,
    WEBHOOK_OUT,
    WEBHOOK_CURSOR,
    WEBHOOK_EXPIRED,
    LOGIN_SEEN,
    SWEEP_COUNT,
    SWEEP_ENTRY,
    SWEEP_CURSOR,
];

/// Width of one sweep bucket: writes whose expiries fall in the same five
/// minutes share a counter.
pub const SWEEP_BUCKET_SECS: u64 = 300;
/// A bucket is swept only this long after its end, so that a writer whose
/// clock lags cannot add to a bucket already swept.
pub const SWEEP_GRACE_SECS: u64 = 300;
/// Store operations one pass may spend.
pub const SWEEP_BATCH: usize = 64;
/// One write in this many (by its index number, so it holds across instances
/// without coordination) runs a sweep pass; the first write of a bucket does too.
pub const SWEEP_EVERY: i64 = 16;
/// How long the provider cache is kept (it is refreshed long before; a
/// stale copy still lets a JWKS survive a discovery refresh).
pub const PROVIDER_RETENTION_SECS: u64 = 24 * 3600;
/// How long person records are kept after the person's last sign-in.
pub const RULE_USER_RETENTION_SECS: u64 = 400 * 24 * 3600;
/// How long the cursor is kept without sweeps (it is rewritten by each pass).
const CURSOR_RETENTION_SECS: u64 = 30 * 24 * 3600;

fn hashed(text: &str) -> String {
    b64url(&Sha256::digest(text.as_bytes()))
}

/// `used-state:<expires_at>:<hash of the state>`.
pub fn used_state(state: &str, expires_at: u64) -> String {
    format!("{USED_STATE}:{expires_at}:{}", hashed(state))
}

/// `revoked-session:<tenant>:<digest of the cookie>` (digest made by the caller).
pub fn revoked_session(tenant: &str, digest: &str) -> String {
    format!("{REVOKED_SESSION}:{tenant}:{digest}")
}

pub fn session_index(tenant: &str, profile_id: &str) -> String {
    format!("{SESSION_INDEX}:{tenant}:{profile_id}")
}

pub fn revoked_profile(tenant: &str, profile_id: &str) -> String {
    format!("{REVOKED_PROFILE}:{tenant}:{profile_id}")
}

/// `assertion:<tenant>:<digest of what the assertion depends on>`.
pub fn assertion(tenant: &str, digest: &str) -> String {
    format!("{ASSERTION}:{tenant}:{digest}")
}

/// `provider:<hash of the issuer>`: two configurations never share by accident.
pub fn provider(issuer: &str) -> String {
    let digest = Sha256::digest(issuer.as_bytes());
    format!("{PROVIDER}:{}", b64url(&digest[..16]))
}

pub fn rule_user(tenant: &str, sub: &str) -> String {
    format!("{RULE_USER}:{tenant}:{}", hashed(sub))
}

pub fn rule_resume(nonce: &str) -> String {
    format!("{RULE_RESUME}:{}", hashed(nonce))
}

/// The counter that makes resuming a paused sign-in single-use.
/// The single-use marker of a back-channel logout token (`crate::backchannel`):
/// per issuer and `jti`, kept until the token could no longer be accepted.
pub fn logout_used(issuer: &str, jti: &str, expires_at: u64) -> String {
    format!(
        "{LOGOUT_USED}:{expires_at}:{}",
        hashed(&format!("{issuer}|{jti}"))
    )
}

pub fn provider_sid(tenant: &str, connection: &str, sid: &str) -> String {
    format!(
        "{PROVIDER_SID}:{tenant}:{}",
        hashed(&format!("{connection}|{sid}"))
    )
}

/// `session-grant:<tenant>:<session id>`.
pub fn session_grant(tenant: &str, sid: &str) -> String {
    format!("{SESSION_GRANT}:{tenant}:{sid}")
}

/// The marker the one request that refreshes a session's grant takes:
/// per tenant, session, grant generation and attempt window.
pub fn refresh_lock(
    tenant: &str,
    sid: &str,
    generation: u64,
    attempt: u64,
    expires_at: u64,
) -> String {
    format!(
        "{REFRESH_LOCK}:{expires_at}:{}",
        hashed(&format!("{tenant}|{sid}|{generation}|{attempt}"))
    )
}

/// The single-use marker of an offer to link accounts (`crate::linking`).
pub fn link_used(nonce: &str, expires_at: u64) -> String {
    format!("{LINK_USED}:{expires_at}:{}", hashed(nonce))
}

pub fn resume_used(nonce: &str, expires_at: u64) -> String {
    format!("{RULE_RESUME_USED}:{expires_at}:{}", hashed(nonce))
}

pub fn rule_artifact(tenant: &str, rule: &str) -> String {
    format!("{RULE_ARTIFACT}:{tenant}:{rule}")
}

/// `rule-version:<tenant>:<rule>:<version>`: a version's bound artifact.
pub fn rule_version(tenant: &str, rule: &str, version: &str) -> String {
    format!("{RULE_VERSION}:{tenant}:{rule}:{version}")
}

/// `rule-version-meta:<tenant>:<rule>:<version>`: a version's metadata.
pub fn rule_version_meta(tenant: &str, rule: &str, version: &str) -> String {
    format!("{RULE_VERSION_META}:{tenant}:{rule}:{version}")
}

/// `rule-version-seq:<tenant>:<rule>`: the counter numbering the list.
pub fn rule_version_seq(tenant: &str, rule: &str) -> String {
    format!("{RULE_VERSION_SEQ}:{tenant}:{rule}")
}

/// `rule-version-list:<tenant>:<rule>:<n>` (1-based): the `n`th upload's version.
pub fn rule_version_list(tenant: &str, rule: &str, n: u64) -> String {
    format!("{RULE_VERSION_LIST}:{tenant}:{rule}:{n}")
}

/// `rule-deployment:<tenant>`: the tenant's active and previous deployments.
pub fn rule_deployment(tenant: &str) -> String {
    format!("{RULE_DEPLOYMENT}:{tenant}")
}

/// `rule-deployment-seq:<tenant>`: the counter numbering deployments.
pub fn rule_deployment_seq(tenant: &str) -> String {
    format!("{RULE_DEPLOYMENT_SEQ}:{tenant}")
}

/// `rule-deployment-init:<tenant>`: the counter marking the record created.
pub fn rule_deployment_init(tenant: &str) -> String {
    format!("{RULE_DEPLOYMENT_INIT}:{tenant}")
}

/// `rule-log-seq:<tenant>:<rule>`: the counter numbering the rule's runs.
pub fn rule_log_seq(tenant: &str, rule: &str) -> String {
    format!("{RULE_LOG_SEQ}:{tenant}:{rule}")
}

/// `rule-log:<tenant>:<rule>:<slot>`: one slot of the rule's log ring.
pub fn rule_log(tenant: &str, rule: &str, slot: u64) -> String {
    format!("{RULE_LOG}:{tenant}:{rule}:{slot}")
}

/// `tenant-host:<host[:port]>` (as `crate::tenants::store_host` makes it):
/// the tenant document a request with that `Host` is served with.
pub fn tenant_host(host: &str) -> String {
    format!("{TENANT_HOST}:{host}")
}

/// `tenant-id:<id>`: the host the stored tenant `id` is filed under.
pub fn tenant_id(id: &str) -> String {
    format!("{TENANT_ID}:{id}")
}

/// `profile:<tenant>:<profile id>`.
pub fn profile(tenant: &str, id: &str) -> String {
    format!("{PROFILE}:{tenant}:{id}")
}

/// `profile-identity:<tenant>:<hash of connection|subject>`.
pub fn profile_identity(tenant: &str, connection: &str, subject: &str) -> String {
    format!(
        "{PROFILE_IDENTITY}:{tenant}:{}",
        hashed(&format!("{connection}|{subject}"))
    )
}

/// `profile-email:<tenant>:<hash of the email key>`.
pub fn profile_email(tenant: &str, email_key: &str) -> String {
    format!("{PROFILE_EMAIL}:{tenant}:{}", hashed(email_key))
}

/// `profile-seq:<tenant>`: the counter numbering [`profile_list`] entries.
pub fn profile_seq(tenant: &str) -> String {
    format!("{PROFILE_SEQ}:{tenant}")
}

/// `profile-list:<tenant>:<n>` (1-based): the id of the `n`th profile created.
pub fn profile_list(tenant: &str, n: u64) -> String {
    format!("{PROFILE_LIST}:{tenant}:{n}")
}

/// The counter numbering `tenant`'s webhook outbox entries.
pub fn webhook_seq(tenant: &str) -> String {
    format!("{WEBHOOK_SEQ}:{tenant}")
}

/// Outbox entry `n` of `tenant`.
pub fn webhook_out(tenant: &str, n: u64) -> String {
    format!("{WEBHOOK_OUT}:{tenant}:{n}")
}

pub fn webhook_cursor(tenant: &str) -> String {
    format!("{WEBHOOK_CURSOR}:{tenant}")
}

/// How many of `tenant`'s deliveries expired undelivered (a counter).
pub fn webhook_expired(tenant: &str) -> String {
    format!("{WEBHOOK_EXPIRED}:{tenant}")
}

/// Whether `sub` has signed in to `tenant` before (a counter).
pub fn login_seen(tenant: &str, sub: &str) -> String {
    format!("{LOGIN_SEEN}:{tenant}:{}", hashed(sub))
}

/// Configuration (and people's profiles) the sweep must never delete,
/// whatever an index entry says.
fn is_configuration(key: &str) -> bool {
    [
        RULE_ARTIFACT,
        RULE_VERSION,
        RULE_VERSION_META,
        RULE_VERSION_SEQ,
        RULE_VERSION_LIST,
        RULE_DEPLOYMENT,
        RULE_DEPLOYMENT_SEQ,
        RULE_DEPLOYMENT_INIT,
        TENANT_HOST,
        TENANT_ID,
        TENANT_INDEX,
        TENANT_RULE_HEADERS,
        PROFILE,
        PROFILE_IDENTITY,
        PROFILE_EMAIL,
        PROFILE_SEQ,
        PROFILE_LIST,
    ]
    .iter()
    .any(|p| {
        key.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
    })
}

// ------------------------------------------------------------------ values

/// Why a value cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// Not an envelope (a value from before this schema, or junk).
    Malformed,
    /// Its expiry has passed.
    Expired,
}

/// The stored form of `payload` that expires at `expires_at`:
/// `<expires_at in decimal> <payload>` (no space and no payload when empty).
pub fn encode(expires_at: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = expires_at.to_string().into_bytes();
    if !payload.is_empty() {
        out.push(b' ');
        out.extend_from_slice(payload);
    }
    out
}

/// `(expires_at, payload)` of a stored value.
pub fn decode(value: &[u8]) -> Result<(u64, &[u8]), Unusable> {
    let (head, payload) = match value.iter().position(|&b| b == b' ') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => (value, &value[value.len()..]),
    };
    // Digits only (`u64::from_str` would also take a sign), at most u64's width.
    if head.is_empty() || head.len() > 20 || !head.iter().all(u8::is_ascii_digit) {
        return Err(Unusable::Malformed);
    }
    let expires_at = std::str::from_utf8(head)
        .ok()
        .and_then(|h| h.parse::<u64>().ok())
        .ok_or(Unusable::Malformed)?;
    Ok((expires_at, payload))
}

/// The payload of a stored value that is still live at `now`.
pub fn open(value: &[u8], now: u64) -> Result<&[u8], Unusable> {
    let (expires_at, payload) = decode(value)?;
    if expires_at <= now {
        return Err(Unusable::Expired);
    }
    Ok(payload)
}

/// The expiry a counter key carries (`<prefix>:<expires_at>:...`).
pub fn key_expiry(key: &str) -> Option<u64> {
    let mut parts = key.splitn(3, ':');
    let prefix = parts.next()?;
    if ![
        USED_STATE,
        RULE_RESUME_USED,
        LINK_USED,
        LOGOUT_USED,
        REFRESH_LOCK,
    ]
    .contains(&prefix)
    {
        return None;
    }
    parts.next()?.parse().ok()
}

// ------------------------------------------------------------------ sweeping

/// The bucket a write expiring at `expires_at` is indexed in.
pub fn bucket_of(expires_at: u64) -> u64 {
    expires_at / SWEEP_BUCKET_SECS
}

/// The counter handing out index numbers in `bucket` (read with `increment(0)`).
pub fn index_count(bucket: u64) -> String {
    format!("{SWEEP_COUNT}:{bucket}")
}

/// A counter's value as a plain read (`get`) returns it, for stores whose
/// atomic increment keeps it in one of the two encodings Spin's backends
/// use: 8 bytes little-endian (SQLite, and the edgeauth host) or ASCII
/// decimal (Redis `INCRBY`). `None`: another encoding; read it with an
/// increment of 0 instead. The two cannot be confused: an 8-byte
/// little-endian counter below 2^56 ends in a zero byte, never a digit.
///
/// A read this way costs the store no write: under Spin's SQLite store
/// an increment of 0 is a write transaction with its fsyncs.
pub fn counter_value(stored: &[u8]) -> Option<i64> {
    let decimal = match stored {
        [b'-', digits @ ..] => digits,
        digits => digits,
    };
    if !decimal.is_empty() && decimal.len() <= 19 && decimal.iter().all(u8::is_ascii_digit) {
        return std::str::from_utf8(stored).ok()?.parse().ok();
    }
    <[u8; 8]>::try_from(stored).ok().map(i64::from_le_bytes)
}

/// The index entry number `n` (1-based) of `bucket`; its value is the key written.
pub fn index_entry(bucket: u64, n: i64) -> String {
    format!("{SWEEP_ENTRY}:{bucket}:{n}")
}

/// Whether the write that got index number `n` also runs a sweep pass.
pub fn sweeps_after(n: i64) -> bool {
    n == 1 || n % SWEEP_EVERY == 0
}

/// Whether everything in `bucket` has expired, with the grace for clock skew.
pub fn bucket_due(bucket: u64, now: u64) -> bool {
    (bucket + 1)
        .saturating_mul(SWEEP_BUCKET_SECS)
        .saturating_add(SWEEP_GRACE_SECS)
        <= now
}

/// Where the sweep goes on: the next index entry to look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub bucket: u64,
    /// The next entry number in `bucket` (1-based).
    pub next: i64,
}

impl Cursor {
    /// Without a stored cursor: nothing indexed can be older than now's bucket
    /// minus the grace, so start there.
    pub fn start(now: u64) -> Cursor {
        Cursor {
            bucket: bucket_of(now.saturating_sub(SWEEP_GRACE_SECS + SWEEP_BUCKET_SECS)),
            next: 1,
        }
    }

    /// The stored cursor, or a fresh start if there is none or it is unusable.
    pub fn load(value: Option<&[u8]>, now: u64) -> Cursor {
        value
            .and_then(|v| open(v, now).ok())
            .and_then(|p| std::str::from_utf8(p).ok())
            .and_then(|t| t.split_once(' '))
            .and_then(|(b, n)| Some((b.parse().ok()?, n.parse().ok()?)))
            .filter(|&(_, n): &(u64, i64)| n >= 1)
            .map(|(bucket, next)| Cursor { bucket, next })
            .unwrap_or_else(|| Cursor::start(now))
    }

    pub fn encode(&self, now: u64) -> Vec<u8> {
        encode(
            now + CURSOR_RETENTION_SECS,
            format!("{} {}", self.bucket, self.next).as_bytes(),
        )
    }
}

/// Whether a write must add its key to the sweep index: only when the key
/// is new (or held a value from before the envelope); a rewrite of an
/// indexed key is found at its old entry and indexed again then.
pub fn needs_index(previous: Option<&[u8]>) -> bool {
    previous.is_none_or(|v| decode(v).is_err())
}

/// What to do with an indexed key whose bucket is over. The index entry
/// itself is deleted in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Over (or gone): delete it.
    Delete,
    /// Written again since with a later expiry: index it again there.
    Reindex(u64),
    /// Not the sweep's to delete (configuration).
    Forget,
}

/// Decides about the key `target` whose current value is `value`.
pub fn verdict(target: &str, value: Option<&[u8]>, now: u64) -> Verdict {
    if let Some(exp) = key_expiry(target) {
        return if exp > now {
            Verdict::Reindex(exp)
        } else {
            Verdict::Delete
        };
    }
    // Never delete configuration, whatever an index entry says.
    if is_configuration(target) {
        return Verdict::Forget;
    }
    match value.map(|v| decode(v)) {
        Some(Ok((exp, _))) if exp > now => Verdict::Reindex(exp),
        _ => Verdict::Delete,
    }
}

/// Store operations one index entry may cost in a pass.
pub const OPS_PER_ENTRY: usize = 5;

/// One bounded sweep pass: the caller asks which bucket to look at, reads its
/// counter, asks which entries to read, reads them and their targets, and
/// deletes what [`verdict`] says; every store operation is charged to the
/// pass's budget, so a pass costs at most about [`SWEEP_BATCH`] operations
/// whatever the store holds.
#[derive(Debug, Clone)]
pub struct SweepPass {
    cursor: Cursor,
    now: u64,
    budget: usize,
}

impl SweepPass {
    pub fn new(cursor: Cursor, now: u64) -> SweepPass {
        SweepPass {
            cursor,
            now,
            budget: SWEEP_BATCH,
        }
    }

    /// The next bucket to read the counter of (costs one operation), if the
    /// cursor's bucket is over and budget is left.
    pub fn bucket(&mut self) -> Option<u64> {
        if self.budget == 0 || !bucket_due(self.cursor.bucket, self.now) {
            return None;
        }
        self.budget -= 1;
        Some(self.cursor.bucket)
    }

    /// The entry numbers of the cursor's bucket to process now, given its
    /// counter; each costs up to [`OPS_PER_ENTRY`] operations (read the
    /// entry and its target, delete the entry, then delete the target or
    /// index it again).
    pub fn entries(&mut self, count: i64) -> std::ops::RangeInclusive<i64> {
        let affordable = (self.budget / OPS_PER_ENTRY) as i64;
        let last = count.min(self.cursor.next + affordable - 1);
        let range = self.cursor.next..=last;
        let taken = (last - self.cursor.next + 1).max(0) as usize;
        self.budget -= taken * OPS_PER_ENTRY;
        self.cursor.next = last.max(self.cursor.next - 1) + 1;
        range
    }

    /// After [`entries`](Self::entries): whether the bucket is finished; then
    /// the cursor moves to the next bucket and its counter may be deleted
    /// (one more operation).
    pub fn finish_bucket(&mut self, count: i64) -> bool {
        if self.cursor.next <= count {
            return false;
        }
        self.cursor = Cursor {
            bucket: self.cursor.bucket + 1,
            next: 1,
        };
        self.budget = self.budget.saturating_sub(1);
        true
    }

    pub fn cursor(&self) -> Cursor {
        self.cursor
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_read_in_either_backend_encoding() {
        use super::counter_value;
        // SQLite / the edgeauth host: i64 little-endian.
        assert_eq!(counter_value(&7i64.to_le_bytes()), Some(7));
        assert_eq!(counter_value(&0i64.to_le_bytes()), Some(0));
        assert_eq!(counter_value(&(-3i64).to_le_bytes()), Some(-3));
        assert_eq!(counter_value(&12345678i64.to_le_bytes()), Some(12345678));
        // Redis: decimal text, including one of exactly 8 digits.
        assert_eq!(counter_value(b"7"), Some(7));
        assert_eq!(counter_value(b"12345678"), Some(12345678));
        assert_eq!(counter_value(b"-2"), Some(-2));
        // Anything else: not read this way.
        assert_eq!(counter_value(b""), None);
        assert_eq!(counter_value(b"-"), None);
        assert_eq!(counter_value(b"12 4"), None);
        assert_eq!(counter_value(b"99999999999999999999"), None);
        assert_eq!(counter_value(&[1, 2, 3]), None);
    }

    use super::*;

    #[test]
    fn envelopes_carry_their_expiry() {
        let v = encode(1000, b"{\"a\":1}");
        assert_eq!(v, b"1000 {\"a\":1}");
        assert_eq!(open(&v, 999), Ok(&b"{\"a\":1}"[..]));
        assert_eq!(open(&v, 1000), Err(Unusable::Expired));
        assert_eq!(encode(5, b""), b"5");
        assert_eq!(open(b"5", 4), Ok(&b""[..]));
        // Old revocation entries and cached assertions already had this form.
        assert_eq!(decode(b"1700000000"), Ok((1_700_000_000, &b""[..])));
        assert_eq!(decode(b"1060 h.p.s"), Ok((1060, &b"h.p.s"[..])));
        for junk in [
            &b""[..],
            b"{\"tenant\":1}",
            b"+5 x",
            b"-1",
            b" 5",
            b"99999999999999999999999 x",
            b"\xff",
        ] {
            assert_eq!(decode(junk), Err(Unusable::Malformed), "{junk:?}");
        }
    }

    #[test]
    fn keys_hide_secrets_and_counters_carry_expiry() {
        let k = used_state("the-state", 1600);
        assert!(k.starts_with("used-state:1600:"));
        assert!(!k.contains("the-state"));
        assert_eq!(key_expiry(&k), Some(1600));
        assert_eq!(key_expiry(&resume_used("n", 7)), Some(7));
        assert_eq!(key_expiry(&rule_resume("n")), None);
        assert_eq!(key_expiry("used-state:x:y"), None);
        assert_ne!(rule_user("t", "alice"), rule_user("u", "alice"));
        assert_eq!(rule_artifact("t", "r"), "rule-artifact:t:r");
        for k in [
            used_state("s", 1),
            revoked_session("t", "d"),
            assertion("t", "d"),
            provider("https://idp"),
            rule_user("t", "s"),
            rule_resume("n"),
            resume_used("n", 1),
            rule_artifact("t", "r"),
            tenant_host("acme.example:8443"),
            tenant_id("acme"),
            TENANT_INDEX.to_owned(),
            TENANT_RULE_HEADERS.to_owned(),
            index_count(3),
            index_entry(3, 1),
            webhook_seq("t"),
            webhook_out("t", 1),
            webhook_cursor("t"),
            webhook_expired("t"),
            login_seen("t", "alice"),
        ] {
            let prefix = k.split(':').next().unwrap();
            assert!(PREFIXES.contains(&prefix), "{k}");
        }
    }

    #[test]
    fn verdicts_keep_what_was_written_again() {
        let now = 10_000;
        assert!(needs_index(None));
        assert!(needs_index(Some(b"{\"legacy\":1}")));
        assert!(
            !needs_index(Some(&encode(5, b"p"))),
            "indexed when first written"
        );
        assert_eq!(verdict("rule-resume:x", None, now), Verdict::Delete);
        assert_eq!(
            verdict("rule-resume:x", Some(&encode(now, b"p")), now),
            Verdict::Delete
        );
        assert_eq!(
            verdict("rule-user:t:x", Some(&encode(now + 1, b"p")), now),
            Verdict::Reindex(now + 1)
        );
        assert_eq!(
            verdict("provider:x", Some(b"{\"legacy\":1}"), now),
            Verdict::Delete
        );
        assert_eq!(
            verdict(&used_state("s", now), Some(&[1, 0, 0, 0, 0, 0, 0, 0]), now),
            Verdict::Delete
        );
        assert_eq!(
            verdict(&used_state("s", now + 1), None, now),
            Verdict::Reindex(now + 1)
        );
        assert_eq!(verdict("rule-artifact:t:r", None, now), Verdict::Forget);
        for config in [
            rule_version("t", "r", "0123abcd0123abcd"),
            rule_version_meta("t", "r", "0123abcd0123abcd"),
            rule_version_list("t", "r", 1),
            rule_deployment("t"),
            rule_deployment_init("t"),
        ] {
            assert_eq!(verdict(&config, None, now), Verdict::Forget, "{config}");
        }
        for config in [
            tenant_host("a.example"),
            tenant_id("a"),
            TENANT_INDEX.to_owned(),
            TENANT_RULE_HEADERS.to_owned(),
        ] {
            assert_eq!(
                verdict(&config, Some(b"{}"), now),
                Verdict::Forget,
                "{config}"
            );
        }
        assert_eq!(verdict("tenant-hostx", None, now), Verdict::Delete);
    }

    #[test]
    fn cursor_round_trips_and_falls_back() {
        let now = 1_000_000;
        let c = Cursor {
            bucket: 3000,
            next: 7,
        };
        assert_eq!(Cursor::load(Some(&c.encode(now)), now), c);
        let start = Cursor::start(now);
        for bad in [&b"junk"[..], b"1 2", b"99999999 a b", b"99999999 5 0"] {
            assert_eq!(Cursor::load(Some(bad), now), start, "{bad:?}");
        }
        assert_eq!(Cursor::load(None, now), start);
        assert!(!bucket_due(bucket_of(now), now));
        assert!(bucket_due(start.bucket, now));
        // Whatever expires at `e` is swept no sooner than the grace after `e`,
        // and no later than a bucket and the grace after it.
        for e in [now, now + 1, now + SWEEP_BUCKET_SECS - 1] {
            assert!(!bucket_due(bucket_of(e), e + SWEEP_GRACE_SECS));
            assert!(bucket_due(
                bucket_of(e),
                e + SWEEP_BUCKET_SECS + SWEEP_GRACE_SECS
            ));
        }
    }

    /// Runs passes over an index of `counts` per bucket, returning the entries
    /// processed per pass.
    fn passes(counts: &[i64], start: Cursor, now: u64) -> Vec<Vec<(u64, i64)>> {
        let mut cursor = start;
        let mut out = Vec::new();
        loop {
            let mut pass = SweepPass::new(cursor, now);
            let mut seen = Vec::new();
            let mut ops = 0;
            while let Some(b) = pass.bucket() {
                ops += 1;
                let count = counts
                    .get((b - start.bucket) as usize)
                    .copied()
                    .unwrap_or(0);
                for n in pass.entries(count) {
                    seen.push((b, n));
                    ops += OPS_PER_ENTRY;
                }
                if pass.finish_bucket(count) {
                    ops += 1;
                } else {
                    break;
                }
            }
            assert!(ops <= SWEEP_BATCH + 1, "a pass cost {ops} operations");
            let done = pass.cursor() == cursor;
            cursor = pass.cursor();
            if done {
                break;
            }
            out.push(seen);
        }
        out
    }

    #[test]
    fn passes_are_bounded_and_cover_every_entry_once() {
        let start = Cursor {
            bucket: 100,
            next: 1,
        };
        let counts = [3, 0, 40, 0, 0, 1];
        let now = (start.bucket + counts.len() as u64 + 1) * SWEEP_BUCKET_SECS + SWEEP_GRACE_SECS;
        let all: Vec<(u64, i64)> = passes(&counts, start, now).concat();
        let expected: Vec<(u64, i64)> = counts
            .iter()
            .enumerate()
            .flat_map(|(i, &c)| (1..=c).map(move |n| (start.bucket + i as u64, n)))
            .collect();
        assert_eq!(all, expected);
        assert!(
            passes(&counts, start, now).len() > 1,
            "44 entries need several passes"
        );
    }

    #[test]
    fn buckets_not_yet_over_are_left_alone() {
        let now = 1_000_000;
        let mut pass = SweepPass::new(
            Cursor {
                bucket: bucket_of(now),
                next: 1,
            },
            now,
        );
        assert_eq!(pass.bucket(), None);
        let mut pass = SweepPass::new(Cursor::start(now), now);
        let b = pass.bucket().unwrap();
        assert!(pass.entries(0).is_empty());
        assert!(pass.finish_bucket(0));
        assert_eq!(pass.cursor().bucket, b + 1);
        assert_eq!(pass.bucket(), None, "the next bucket is still running");
    }

    #[test]
    fn sweeps_run_on_first_and_every_sixteenth_write() {
        assert!(sweeps_after(1));
        assert!(!sweeps_after(2));
        assert!(sweeps_after(16));
        assert!(sweeps_after(32));
        assert_eq!((1..=64).filter(|&n| sweeps_after(n)).count(), 5);
    }
}
