//! Webhook delivery of login events (`crate::events`): the tenant's
//! endpoints, how deliveries are signed, and the at-least-once outbox's
//! decisions (what is due, backoff, expiry, which outbox entries a request
//! looks at). The component only reads and writes KV and sends the requests.
//!
//! Configuration: the `webhooks` variable / tenant document field, a JSON
//! array of `{"url", "secret", "events": [...], "retry_for_secs"}` ([`parse`]).
//!
//! Signing follows Standard Webhooks (<https://www.standardwebhooks.com/>,
//! spec "Signature scheme"): headers `webhook-id` (the event id, the same on
//! every retry: the receiver's idempotency key), `webhook-timestamp` (unix
//! seconds of this attempt) and `webhook-signature`
//! `v1,<base64 HMAC-SHA256 over "<id>.<timestamp>.<body>">`, keyed with the
//! bytes of the secret `whsec_<base64>`.
//!
//! The outbox, per tenant (keys in `crate::kv_schema`): an event is written
//! as one [`Delivery`] per subscribed endpoint under the next number of the
//! tenant's counter (`webhook-seq`) before the login answers. The request
//! that wrote it tries it once, after answering. Every later login, callback
//! and logout request of the tenant runs a small [`Scan`] (at most
//! [`PIGGYBACK`] entries read and sends made) from a cursor kept in KV, and
//! sends what is due; the admin drain endpoint runs a larger one
//! ([`DRAIN`]) that sends every pending delivery whatever its schedule. A
//! delivered entry becomes a tombstone (an empty envelope), so the cursor's
//! head moves past it; an entry past its deadline ([`State::Expired`]) is
//! counted (`webhook-expired`), logged and tombstoned.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::events::{Event, EventType};
use crate::settings::is_loopback;

pub const MAX_ENDPOINTS: usize = 10;
/// The operator's drain: `POST` with `Authorization: Bearer <admin_token>`.
pub const DRAIN_PATH: &str = "/.edgeauth/admin/events/drain";
/// How long undelivered events are retried unless an endpoint says otherwise.
pub const DEFAULT_RETRY_FOR_SECS: u64 = 24 * 3600;
pub const MAX_RETRY_FOR_SECS: u64 = 7 * 24 * 3600;
/// First retry after this long, doubling each time up to [`MAX_BACKOFF_SECS`].
pub const FIRST_BACKOFF_SECS: u64 = 5;
pub const MAX_BACKOFF_SECS: u64 = 3600;
/// A new entry is the writing request's to try; scans leave it alone this
/// long (unless draining), so the two rarely send it twice.
pub const OWNER_LEASE_SECS: u64 = 30;
/// Time limits of one delivery attempt: an endpoint slower than this is
/// retried later (and may see the event twice: it dedupes by `webhook-id`).
pub const CONNECT_TIMEOUT_MS: u64 = 2_000;
pub const RESPONSE_TIMEOUT_MS: u64 = 3_000;
/// Outbox entries stay readable this long after their deadline, so an
/// expired one is still found, counted and logged rather than swept unseen
/// (it would only go unseen with no login, logout or drain for 30 days).
pub const ENTRY_GRACE_SECS: u64 = 30 * 24 * 3600;
/// How long a delivered entry's tombstone is kept (the cursor passes it).
pub const TOMBSTONE_SECS: u64 = 24 * 3600;
/// An entry number handed out but never written (its writer died between
/// the counter and the write) is skipped after this long.
pub const MISSING_GRACE_SECS: u64 = 60;
/// The answer bytes read from an endpoint (only the status matters).
pub const MAX_ANSWER_BYTES: usize = 4096;

/// One subscribed endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: Url,
    secret: Vec<u8>,
    /// Empty = every type (`"*"`).
    pub events: BTreeSet<EventType>,
    pub retry_for_secs: u64,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url.as_str())
            .field("events", &self.events)
            .field("retry_for_secs", &self.retry_for_secs)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    pub fn wants(&self, kind: EventType) -> bool {
        self.events.is_empty() || self.events.contains(&kind)
    }
}

/// The `webhooks` setting: a JSON array (empty text = none). Problems start
/// with the entry's path (`[1].secret: ...`) so tenant documents can name the field.
pub fn parse(text: &str) -> Result<Vec<Endpoint>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<Value> =
        serde_json::from_str(text).map_err(|e| format!("is not a JSON array ({e})"))?;
    if list.len() > MAX_ENDPOINTS {
        return Err(format!("at most {MAX_ENDPOINTS} endpoints"));
    }
    let mut out: Vec<Endpoint> = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let obj = item
            .as_object()
            .ok_or_else(|| format!("[{i}]: must be a JSON object"))?;
        for k in obj.keys() {
            if !["url", "secret", "events", "retry_for_secs"].contains(&k.as_str()) {
                return Err(format!(
                    "[{i}].{k}: unknown field (url, secret, events, retry_for_secs)"
                ));
            }
        }
        let raw_url = obj
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("[{i}].url: is required (a string)"))?;
        let url = endpoint_url(raw_url).map_err(|p| format!("[{i}].url: {p}"))?;
        if out.iter().any(|e| e.url == url) {
            return Err(format!("[{i}].url: `{url}` appears twice"));
        }
        let secret = obj
            .get("secret")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("[{i}].secret: is required (whsec_<base64>)"))
            .and_then(|s| parse_secret(s).map_err(|p| format!("[{i}].secret: {p}")))?;
        let names = obj
            .get("events")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                format!("[{i}].events: is required, a non-empty array of event types or [\"*\"]")
            })?;
        let mut events = BTreeSet::new();
        let mut all = false;
        for (j, n) in names.iter().enumerate() {
            match n.as_str() {
                Some("*") => all = true,
                Some(name) => {
                    events.insert(EventType::parse(name).ok_or_else(|| {
                        format!(
                            "[{i}].events[{j}]: `{name}` is not an event type ({}, or *)",
                            EventType::ALL.map(EventType::as_str).join(", ")
                        )
                    })?);
                }
                None => return Err(format!("[{i}].events[{j}]: must be a string")),
            }
        }
        if all {
            events.clear();
        }
        let retry_for_secs = match obj.get("retry_for_secs") {
            None => DEFAULT_RETRY_FOR_SECS,
            Some(v) => v
                .as_u64()
                .filter(|s| (1..=MAX_RETRY_FOR_SECS).contains(s))
                .ok_or_else(|| {
                    format!(
                        "[{i}].retry_for_secs: must be whole seconds from 1 to {MAX_RETRY_FOR_SECS}"
                    )
                })?,
        };
        out.push(Endpoint {
            url,
            secret,
            events,
            retry_for_secs,
        });
    }
    Ok(out)
}

/// https anywhere, plain http only to loopback; no credentials or fragment.
fn endpoint_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("not a URL ({e})"))?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(url.host()) => {}
        "http" => return Err("must be https (plain http only on loopback)".into()),
        _ => return Err("must be an https URL".into()),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials".into());
    }
    if url.fragment().is_some() {
        return Err("must not have a #fragment".into());
    }
    Ok(url)
}

/// `whsec_<base64>` of 24 to 64 random bytes, as Standard Webhooks
/// libraries generate and read them.
fn parse_secret(text: &str) -> Result<Vec<u8>, String> {
    let b64 = text
        .strip_prefix("whsec_")
        .ok_or("must start with whsec_ (whsec_<base64 of 24-64 random bytes>)")?;
    let bytes = STANDARD
        .decode(b64)
        .map_err(|_| "after whsec_ must come standard base64")?;
    if !(24..=64).contains(&bytes.len()) {
        return Err(format!(
            "must hold 24 to 64 bytes, not {} (whsec_ + base64 of random bytes)",
            bytes.len()
        ));
    }
    Ok(bytes)
}

// ------------------------------------------------------------------ signing

/// `v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>`.
pub fn signature(endpoint: &Endpoint, id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(id.len() + body.len() + 24);
    signed.extend_from_slice(id.as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(timestamp.to_string().as_bytes());
    signed.push(b'.');
    signed.extend_from_slice(body);
    let mac = hmac_sha256::HMAC::mac(&signed, &endpoint.secret);
    format!("v1,{}", STANDARD.encode(mac))
}

/// The signed POST of `delivery` to `endpoint` at `now`.
pub fn request(endpoint: &Endpoint, delivery: &Delivery, now: u64) -> http::Request<Vec<u8>> {
    let body = delivery.body.clone().into_bytes();
    let sig = signature(endpoint, &delivery.event_id, now, &body);
    http::Request::post(endpoint.url.as_str())
        .header("content-type", "application/json")
        .header("user-agent", "edgeauth-webhooks")
        .header("webhook-id", delivery.event_id.as_str())
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", sig)
        .body(body)
        .expect("endpoint URLs and ids are valid header values")
}

// ------------------------------------------------------------------ deliveries

/// One event on its way to one endpoint: the outbox entry's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    /// The exact bytes every attempt sends.
    pub body: String,
    pub created: u64,
    pub deadline: u64,
    pub attempts: u32,
    pub next_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The deliveries `events` need: one per event and subscribed endpoint.
pub fn deliveries(endpoints: &[Endpoint], events: &[Event], now: u64) -> Vec<Delivery> {
    let mut out = Vec::new();
    for event in events {
        let body = String::from_utf8(event.payload()).expect("JSON is UTF-8");
        for e in endpoints.iter().filter(|e| e.wants(event.kind)) {
            out.push(Delivery {
                event_id: event.id.clone(),
                kind: event.kind.as_str().to_owned(),
                url: e.url.to_string(),
                body: body.clone(),
                created: now,
                deadline: now + e.retry_for_secs,
                attempts: 0,
                next_at: now + OWNER_LEASE_SECS,
                last_error: None,
            });
        }
    }
    out
}

/// What a scan finds at an outbox number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Pending(Delivery),
    /// Delivered or given up (a tombstone).
    Finished,
    /// Nothing (not yet written, or long gone).
    Missing,
}

/// The outbox entry's stored value: an envelope lasting past the deadline.
pub fn encode_entry(d: &Delivery) -> (u64, Vec<u8>) {
    let expires = d.deadline + ENTRY_GRACE_SECS;
    let json = serde_json::to_vec(d).expect("a delivery serializes");
    (expires, crate::kv_schema::encode(expires, &json))
}

/// A finished entry: empty, kept a day so the cursor can pass it.
pub fn tombstone(now: u64) -> (u64, Vec<u8>) {
    let expires = now + TOMBSTONE_SECS;
    (expires, crate::kv_schema::encode(expires, b""))
}

/// Reads an entry's live payload (`None`: missing or over).
pub fn decode_entry(live_payload: Option<&[u8]>) -> Found {
    match live_payload {
        None => Found::Missing,
        Some([]) => Found::Finished,
        // Unreadable: nothing can deliver it; treated as finished so the
        // outbox moves on (it can only come from a store someone edited).
        Some(p) => serde_json::from_slice(p)
            .map(Found::Pending)
            .unwrap_or(Found::Finished),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State<'e> {
    Send(&'e Endpoint),
    /// Not due yet (backoff, or the writing request's lease).
    Wait,
    /// Past its deadline, or its endpoint is no longer configured for it:
    /// counted and logged, then given up.
    Expired(String),
}

impl Delivery {
    /// `force`: the operator's drain sends whatever is pending.
    pub fn state<'e>(&self, endpoints: &'e [Endpoint], now: u64, force: bool) -> State<'e> {
        if now >= self.deadline {
            return State::Expired(format!(
                "not delivered within {} s",
                self.deadline - self.created
            ));
        }
        let endpoint = endpoints.iter().find(|e| {
            e.url.as_str() == self.url && EventType::parse(&self.kind).is_some_and(|k| e.wants(k))
        });
        match endpoint {
            None => State::Expired("its endpoint is no longer subscribed to it".into()),
            Some(e) if force || self.next_at <= now => State::Send(e),
            Some(_) => State::Wait,
        }
    }

    /// After a failed attempt: the next one after an exponential backoff.
    pub fn failed(&mut self, error: String, now: u64) {
        self.attempts += 1;
        self.next_at = now + backoff(self.attempts);
        self.last_error = Some(error.chars().take(200).collect());
    }

    /// The log line of an expired delivery.
    pub fn expired_line(&self, why: &str) -> String {
        format!(
            "edgeauth: webhook expired {} {} to {} after {} attempt(s): {why}; last error: {}\n",
            self.event_id,
            self.kind,
            self.url,
            self.attempts,
            self.last_error.as_deref().unwrap_or("none")
        )
    }
}

/// Whether an endpoint's answer is a delivery (any 2xx).
pub fn delivered(status: u16) -> bool {
    (200..300).contains(&status)
}

/// Wait after the `attempts`th failure: 5 s, 10 s, 20 s, ... at most an hour.
pub fn backoff(attempts: u32) -> u64 {
    let doublings = attempts.saturating_sub(1).min(20);
    (FIRST_BACKOFF_SECS << doublings).min(MAX_BACKOFF_SECS)
}

// ------------------------------------------------------------------ scanning

/// Where the next scan of a tenant's outbox starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Every number below it is finished.
    pub head: u64,
    /// The next number to look at.
    pub next: u64,
    /// The head's entry was first found missing then (number, time).
    pub missing_since: Option<(u64, u64)>,
}

impl Default for Cursor {
    fn default() -> Cursor {
        Cursor {
            head: 1,
            next: 1,
            missing_since: None,
        }
    }
}

impl Cursor {
    pub fn decode(payload: Option<&[u8]>) -> Cursor {
        let text = payload.and_then(|p| std::str::from_utf8(p).ok());
        let nums: Vec<u64> = text
            .map(|t| t.split(' ').filter_map(|n| n.parse().ok()).collect())
            .unwrap_or_default();
        match nums.as_slice() {
            [h, n] if *h >= 1 => Cursor {
                head: *h,
                next: *n,
                missing_since: None,
            },
            [h, n, p, t] if *h >= 1 => Cursor {
                head: *h,
                next: *n,
                missing_since: Some((*p, *t)),
            },
            _ => Cursor::default(),
        }
    }

    pub fn encode(&self) -> String {
        match self.missing_since {
            Some((p, t)) => format!("{} {} {p} {t}", self.head, self.next),
            None => format!("{} {}", self.head, self.next),
        }
    }
}

/// How much one request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub reads: usize,
    pub sends: usize,
    /// Send what is pending whatever its schedule.
    pub force: bool,
}

/// Login, callback and logout requests: a couple of due retries.
pub const PIGGYBACK: Budget = Budget {
    reads: 8,
    sends: 2,
    force: false,
};
/// The admin drain endpoint (call it again while it answers `more`).
pub const DRAIN: Budget = Budget {
    reads: 200,
    sends: 25,
    force: true,
};

/// One bounded pass over the numbers `head..=last`, starting at the cursor
/// and wrapping around once, so every pending entry is reached by some pass
/// however many wait ahead of it.
#[derive(Debug, Clone)]
pub struct Scan {
    cursor: Cursor,
    last: u64,
    reads_left: usize,
    sends_left: usize,
    visited: u64,
    /// How many numbers the pass may visit (`head..=last` when it started).
    span: u64,
    now: u64,
    pub force: bool,
}

impl Scan {
    /// `last`: the highest number handed out (the counter's value).
    pub fn new(cursor: Cursor, last: u64, budget: Budget, now: u64) -> Scan {
        let mut cursor = cursor;
        if cursor.head > last.saturating_add(1) {
            // The counter is behind the cursor (a store reset): start over.
            cursor = Cursor::default();
        }
        Scan {
            span: (last + 1).saturating_sub(cursor.head),
            cursor,
            last,
            reads_left: budget.reads,
            sends_left: budget.sends,
            visited: 0,
            now,
            force: budget.force,
        }
    }

    /// The next number to read, or `None` when the pass is over.
    pub fn next_number(&mut self) -> Option<u64> {
        if self.reads_left == 0 || self.sends_left == 0 || self.visited >= self.span {
            return None;
        }
        let c = &mut self.cursor;
        let n = if c.next > self.last || c.next < c.head {
            c.head
        } else {
            c.next
        };
        c.next = n + 1;
        self.reads_left -= 1;
        self.visited += 1;
        Some(n)
    }

    /// Records what number `n` held; the head moves past finished entries
    /// (and past a missing one after [`MISSING_GRACE_SECS`]).
    pub fn saw(&mut self, n: u64, found: &Found) {
        let c = &mut self.cursor;
        if n != c.head {
            return;
        }
        match found {
            Found::Pending(_) => {}
            Found::Finished => {
                c.head += 1;
                c.missing_since = None;
            }
            Found::Missing => match c.missing_since {
                Some((m, t)) if m == n && self.now >= t + MISSING_GRACE_SECS => {
                    c.head += 1;
                    c.missing_since = None;
                }
                Some((m, _)) if m == n => {}
                _ => c.missing_since = Some((n, self.now)),
            },
        }
    }

    /// Call when an entry is to be sent: `false` once the pass's sends are spent.
    pub fn take_send(&mut self) -> bool {
        if self.sends_left == 0 {
            return false;
        }
        self.sends_left -= 1;
        true
    }

    /// Whether numbers were left unvisited (the drain answers `more`).
    pub fn more(&self) -> bool {
        self.visited < self.span
    }

    pub fn cursor(&self) -> Cursor {
        self.cursor
    }

    /// Whether the pass's cursor must be written back over `stored` (the
    /// cursor the pass started from, as stored, and when that value
    /// expires; `None`: nothing stored). Every pass on sign-in and sign-out
    /// requests ends here, and under Spin's SQLite store a write is a
    /// transaction with its fsyncs, so only what a later pass needs is
    /// kept: where the head is (and since when its entry is missing), and
    /// where the pass stopped if it left numbers unvisited (so the next one
    /// goes on from there and every entry is reached). A pass that saw
    /// every number leaves `next` wherever it was: any start reaches them
    /// all again. An unchanged cursor is rewritten once half its life is
    /// gone, so it never expires while entries wait.
    pub fn must_store(&self, stored: Cursor, stored_expires: Option<u64>) -> bool {
        let c = self.cursor;
        let Some(expires) = stored_expires else {
            return c != Cursor::default();
        };
        c.head != stored.head
            || c.missing_since != stored.missing_since
            || (self.more() && c.next != stored.next)
            || expires.saturating_sub(self.now) < CURSOR_SECS / 2
    }
}

/// How long a stored cursor lasts: as long as the longest entry could.
pub const CURSOR_SECS: u64 = MAX_RETRY_FOR_SECS + ENTRY_GRACE_SECS;

// ------------------------------------------------------------------ tenant documents

/// The shape of a tenant document's `webhooks` the admin API relies on
/// (what each entry means is [`parse`]'s, through the settings).
pub fn doc_entries(doc: &serde_json::Map<String, Value>) -> Vec<Value> {
    match doc.get("webhooks") {
        Some(Value::Array(a)) => a.clone(),
        Some(Value::String(s)) => serde_json::from_str::<Vec<Value>>(s).unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn is_kept(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|o| o.len() == 1 && o.get("set") == Some(&Value::Bool(true)))
}

/// Every endpoint's `secret` as `{"set": true}` (write-only).
pub fn redact_doc(doc: &mut serde_json::Map<String, Value>) {
    if !doc.contains_key("webhooks") {
        return;
    }
    let list: Vec<Value> = doc_entries(doc)
        .into_iter()
        .map(|mut e| {
            if let Some(o) = e.as_object_mut()
                && o.contains_key("secret")
            {
                o.insert("secret".into(), serde_json::json!({"set": true}));
            }
            e
        })
        .collect();
    doc.insert("webhooks".into(), Value::Array(list));
}

/// On a `PUT`: an endpoint whose `secret` is omitted or `{"set": true}`
/// keeps the stored endpoint's with the same `url`. Errors name the field.
pub fn merge_doc_secrets(
    new: &mut serde_json::Map<String, Value>,
    old: Option<&serde_json::Map<String, Value>>,
) -> Result<(), (String, String)> {
    if !new.contains_key("webhooks") {
        // Left out: the stored endpoints stay as they are.
        if let Some(w) = old.and_then(|o| o.get("webhooks")) {
            new.insert("webhooks".into(), w.clone());
        }
        return Ok(());
    }
    if matches!(new.get("webhooks"), Some(Value::Null)) {
        new.remove("webhooks");
        return Ok(());
    }
    let old_list = old.map(doc_entries).unwrap_or_default();
    let mut merged = Vec::new();
    for (i, mut e) in doc_entries(new).into_iter().enumerate() {
        if let Some(o) = e.as_object_mut() {
            let keep = o.get("secret").is_none_or(is_kept);
            if keep {
                let url = o.get("url").and_then(Value::as_str).unwrap_or("");
                let stored = old_list
                    .iter()
                    .filter_map(Value::as_object)
                    .find(|p| p.get("url").and_then(Value::as_str) == Some(url))
                    .and_then(|p| p.get("secret"))
                    .filter(|s| s.is_string());
                match stored {
                    Some(s) => {
                        o.insert("secret".into(), s.clone());
                    }
                    None => {
                        return Err((
                            format!("webhooks[{i}].secret"),
                            "no stored secret for this url to keep: give its value".into(),
                        ));
                    }
                }
            }
        }
        merged.push(e);
    }
    new.insert("webhooks".into(), Value::Array(merged));
    Ok(())
}

/// Offline validation: a kept secret is taken as set (to a placeholder).
pub fn assume_kept_doc_secrets(doc: &mut serde_json::Map<String, Value>) {
    if let Some(Value::Array(list)) = doc.get_mut("webhooks") {
        for o in list.iter_mut().filter_map(Value::as_object_mut) {
            if o.get("secret").is_some_and(is_kept) {
                // 24 zero bytes: the shape a real secret has.
                o.insert(
                    "secret".into(),
                    Value::String(format!("whsec_{}", STANDARD.encode([0u8; 24]))),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Context, LoginOutcome, for_login};
    use crate::testutil::counter_rng;
    use serde_json::json;

    /// The secret of the Standard Webhooks spec's published test vector.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn endpoints(v: Value) -> Result<Vec<Endpoint>, String> {
        parse(&v.to_string())
    }

    fn one(url: &str, secret: &str) -> Endpoint {
        endpoints(json!([{"url": url, "secret": secret, "events": ["*"]}]))
            .unwrap()
            .remove(0)
    }

    #[test]
    fn signatures_match_the_standard_webhooks_test_vector() {
        // From the spec's reference libraries' tests
        // (standard-webhooks/standard-webhooks, libraries/*/tests).
        let e = one("https://hooks.example/x", SPEC_SECRET);
        let sig = signature(
            &e,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn endpoints_are_validated_with_the_field_named() {
        let s = SPEC_SECRET;
        let ok = endpoints(json!([
            {"url": "https://crm.example/hooks", "secret": s, "events": ["login", "signup"]},
            {"url": "http://127.0.0.1:9000/h", "secret": s, "events": ["*"], "retry_for_secs": 60}
        ]))
        .unwrap();
        assert!(ok[0].wants(EventType::Signup) && !ok[0].wants(EventType::Logout));
        assert!(ok[1].wants(EventType::RuleFailed));
        assert_eq!(ok[0].retry_for_secs, DEFAULT_RETRY_FOR_SECS);
        assert_eq!(ok[1].retry_for_secs, 60);
        assert!(
            !format!("{:?}", ok[0]).contains("MfKQ"),
            "secret not in Debug"
        );
        assert_eq!(parse("").unwrap(), vec![]);
        for (doc, field) in [
            (
                json!([{"url": "http://crm.example/h", "secret": s, "events": ["login"]}]),
                "[0].url: must be https",
            ),
            (
                json!([{"url": "ftp://x.example/h", "secret": s, "events": ["login"]}]),
                "[0].url",
            ),
            (
                json!([{"url": "https://u:p@x.example/h", "secret": s, "events": ["login"]}]),
                "[0].url: must not carry",
            ),
            (
                json!([{"secret": s, "events": ["login"]}]),
                "[0].url: is required",
            ),
            (
                json!([{"url": "https://x.example/h", "secret": "s3cret", "events": ["login"]}]),
                "[0].secret: must start with whsec_",
            ),
            (
                json!([{"url": "https://x.example/h", "secret": "whsec_c2hvcnQ=", "events": ["login"]}]),
                "[0].secret: must hold 24 to 64 bytes",
            ),
            (
                json!([{"url": "https://x.example/h", "events": ["login"]}]),
                "[0].secret: is required",
            ),
            (
                json!([{"url": "https://x.example/h", "secret": s, "events": []}]),
                "[0].events",
            ),
            (
                json!([{"url": "https://x.example/h", "secret": s, "events": ["Login"]}]),
                "[0].events[0]: `Login` is not",
            ),
            (
                json!([{"url": "https://x.example/h", "secret": s, "events": ["*"], "retry_for_secs": 0}]),
                "[0].retry_for_secs",
            ),
            (
                json!([{"url": "https://x.example/h", "secret": s, "events": ["*"], "retry": 5}]),
                "[0].retry: unknown field",
            ),
            (
                json!([{"url": "https://x.example/h", "secret": s, "events": ["*"]}, {"url": "https://x.example/h", "secret": s, "events": ["*"]}]),
                "[1].url: `https://x.example/h` appears twice",
            ),
            (json!({"url": "x"}), "is not a JSON array"),
        ] {
            let e = endpoints(doc.clone()).unwrap_err();
            assert!(e.starts_with(field), "{doc}: {e}");
        }
    }

    fn sample(now: u64) -> (Vec<Endpoint>, Vec<Delivery>) {
        let eps = endpoints(json!([
            {"url": "https://a.example/h", "secret": SPEC_SECRET, "events": ["login"]},
            {"url": "https://b.example/h", "secret": SPEC_SECRET, "events": ["*"], "retry_for_secs": 100}
        ]))
        .unwrap();
        let ctx = Context {
            tenant: "acme".into(),
            subject: "alice".into(),
            profile_id: None,
            ..Context::default()
        };
        let events = for_login(
            &LoginOutcome::SignedIn { first_login: true },
            &ctx,
            now,
            &mut counter_rng(),
        );
        let ds = deliveries(&eps, &events, now);
        (eps, ds)
    }

    #[test]
    fn each_event_goes_to_each_subscribed_endpoint_with_one_id() {
        let now = 1_000_000;
        let (eps, ds) = sample(now);
        // signup -> b only; login -> a and b.
        let routes: Vec<(&str, &str)> = ds
            .iter()
            .map(|d| (d.kind.as_str(), d.url.as_str()))
            .collect();
        assert_eq!(
            routes,
            [
                ("signup", "https://b.example/h"),
                ("login", "https://a.example/h"),
                ("login", "https://b.example/h")
            ]
        );
        assert_eq!(ds[1].event_id, ds[2].event_id);
        assert_eq!(ds[1].body, ds[2].body);
        assert_eq!(ds[2].deadline, now + 100);
        // The writer's own attempt comes first; scans wait for its lease.
        assert_eq!(ds[0].state(&eps, now, false), State::Wait);
        assert_eq!(ds[0].state(&eps, now, true), State::Send(&eps[1]));
        assert_eq!(
            ds[0].state(&eps, now + OWNER_LEASE_SECS, false),
            State::Send(&eps[1])
        );
        let req = request(&eps[1], &ds[0], now + 7);
        assert_eq!(req.method(), http::Method::POST);
        assert_eq!(req.headers()["webhook-id"], ds[0].event_id.as_str());
        assert_eq!(
            req.headers()["webhook-timestamp"],
            (now + 7).to_string().as_str()
        );
        assert_eq!(
            req.headers()["webhook-signature"],
            signature(&eps[1], &ds[0].event_id, now + 7, ds[0].body.as_bytes()).as_str()
        );
        assert_eq!(req.body(), ds[0].body.as_bytes());
    }

    #[test]
    fn failures_back_off_and_expire_at_the_deadline() {
        let now = 1_000_000;
        let (eps, mut ds) = sample(now);
        let d = &mut ds[2];
        assert_eq!([1, 2, 3, 4].map(backoff), [5, 10, 20, 40]);
        assert_eq!(backoff(40), MAX_BACKOFF_SECS);
        d.failed("connection refused".into(), now);
        assert_eq!(d.attempts, 1);
        assert_eq!(d.next_at, now + 5);
        assert_eq!(d.state(&eps, now + 4, false), State::Wait);
        assert_eq!(d.state(&eps, now + 5, false), State::Send(&eps[1]));
        let State::Expired(why) = d.state(&eps, now + 100, true) else {
            panic!("past the deadline even a drain gives up");
        };
        let line = d.expired_line(&why);
        assert!(
            line.starts_with(&format!(
                "edgeauth: webhook expired {} login to https://b.example/h after 1 attempt(s)",
                d.event_id
            )),
            "{line}"
        );
        assert!(line.contains("connection refused"));
        // An endpoint removed (or unsubscribed) from the configuration.
        assert!(matches!(
            d.state(&eps[..1], now + 5, true),
            State::Expired(_)
        ));
        assert!(delivered(204) && delivered(200) && !delivered(500) && !delivered(302));
    }

    #[test]
    fn entries_round_trip_through_their_envelopes() {
        let now = 1_000_000;
        let (_, ds) = sample(now);
        let (expires, stored) = encode_entry(&ds[0]);
        assert_eq!(expires, ds[0].deadline + ENTRY_GRACE_SECS);
        let payload = crate::kv_schema::open(&stored, now).unwrap();
        assert_eq!(decode_entry(Some(payload)), Found::Pending(ds[0].clone()));
        let (_, t) = tombstone(now);
        assert_eq!(
            decode_entry(Some(crate::kv_schema::open(&t, now).unwrap())),
            Found::Finished
        );
        assert_eq!(decode_entry(None), Found::Missing);
        assert_eq!(decode_entry(Some(b"{junk")), Found::Finished);
    }

    /// Runs scans over an outbox until every pending entry was visited,
    /// returning how many passes that took.
    fn visit_all(outbox: &[Found], budget: Budget) -> (usize, Cursor) {
        let last = outbox.len() as u64;
        let mut cursor = Cursor::default();
        let mut seen = BTreeSet::new();
        let pending: BTreeSet<u64> = (1..=last)
            .filter(|n| matches!(outbox[*n as usize - 1], Found::Pending(_)))
            .collect();
        let mut stored_expires = None;
        for pass in 1..100 {
            let mut scan = Scan::new(cursor, last, budget, 10_000);
            while let Some(n) = scan.next_number() {
                let found = &outbox[n as usize - 1];
                scan.saw(n, found);
                if matches!(found, Found::Pending(_)) {
                    seen.insert(n);
                }
            }
            // Written back only when the gateway would write it.
            if scan.must_store(cursor, stored_expires) {
                cursor = Cursor::decode(Some(scan.cursor().encode().as_bytes()));
                stored_expires = Some(10_000 + CURSOR_SECS);
            }
            if seen == pending {
                return (pass, cursor);
            }
        }
        panic!("some entries were never visited");
    }

    #[test]
    fn scans_are_bounded_reach_every_entry_and_move_the_head() {
        let (_, ds) = sample(0);
        let p = || Found::Pending(ds[0].clone());
        let mut outbox = vec![Found::Finished; 5];
        outbox.push(p());
        outbox.extend(vec![Found::Finished; 20]);
        outbox.push(p());
        outbox.push(Found::Finished);
        let (passes, cursor) = visit_all(&outbox, PIGGYBACK);
        assert!(
            passes > 1,
            "8 reads per request cannot see 28 entries at once"
        );
        assert_eq!(cursor.head, 6, "the head stops at the first pending entry");
        let (passes, _) = visit_all(&outbox, DRAIN);
        assert_eq!(passes, 1);
        // A pending entry at the head does not hide the ones behind it.
        let (_, cursor) = visit_all(&[p(), Found::Finished, p()], PIGGYBACK);
        assert_eq!(cursor.head, 1);
    }

    #[test]
    fn the_cursor_is_written_back_only_when_a_later_pass_needs_it() {
        let (_, ds) = sample(0);
        let now = 10_000;
        let fresh = Some(now + CURSOR_SECS);
        let pass = |cursor: Cursor, outbox: &[Found], budget: Budget| {
            let mut scan = Scan::new(cursor, outbox.len() as u64, budget, now);
            while let Some(n) = scan.next_number() {
                scan.saw(n, &outbox[n as usize - 1]);
            }
            scan
        };
        // Nothing handed out yet, nothing stored: nothing to write.
        assert!(!pass(Cursor::default(), &[], PIGGYBACK).must_store(Cursor::default(), None));
        // Everything delivered and the head already past it: unchanged.
        let done = Cursor {
            head: 3,
            next: 3,
            missing_since: None,
        };
        let finished = [Found::Finished, Found::Finished];
        assert!(!pass(done, &finished, PIGGYBACK).must_store(done, fresh));
        // ... until half its life is gone.
        let old = Some(now + CURSOR_SECS / 2 - 1);
        assert!(pass(done, &finished, PIGGYBACK).must_store(done, old));
        // The head moved past a delivered entry.
        let start = Cursor::default();
        assert!(pass(start, &finished, PIGGYBACK).must_store(start, fresh));
        // A pending entry at the head, all seen: `next` alone moved.
        let pending = [Found::Pending(ds[0].clone())];
        let scan = pass(start, &pending, PIGGYBACK);
        assert_ne!(scan.cursor(), start);
        assert!(!scan.must_store(start, fresh));
        // A missing entry's first sighting is kept (its grace runs from it).
        assert!(pass(start, &[Found::Missing], PIGGYBACK).must_store(start, fresh));
        // Numbers left unvisited: where the pass stopped is kept.
        let many = vec![Found::Pending(ds[0].clone()); 20];
        assert!(pass(start, &many, PIGGYBACK).must_store(start, fresh));
    }

    #[test]
    fn a_missing_entry_holds_the_head_only_for_a_while() {
        let mut scan = Scan::new(Cursor::default(), 2, DRAIN, 1000);
        assert_eq!(scan.next_number(), Some(1));
        scan.saw(1, &Found::Missing);
        assert_eq!(scan.cursor().head, 1, "its writer may still be writing");
        let c = scan.cursor();
        let mut later = Scan::new(c, 2, DRAIN, 1000 + MISSING_GRACE_SECS);
        assert_eq!(later.next_number(), Some(2));
        assert_eq!(later.next_number(), Some(1), "wraps around to the head");
        later.saw(1, &Found::Missing);
        assert_eq!(later.cursor().head, 2);
        assert_eq!(later.next_number(), None, "each number once per pass");
        assert!(!later.more());
        // Sends are bounded too.
        let mut s = Scan::new(Cursor::default(), 100, PIGGYBACK, 0);
        assert!(s.take_send() && s.take_send() && !s.take_send());
        assert_eq!(s.next_number(), None);
        assert!(s.more());
        assert_eq!(Cursor::decode(Some(b"junk")), Cursor::default());
        let c = Cursor {
            head: 3,
            next: 9,
            missing_since: Some((3, 77)),
        };
        assert_eq!(Cursor::decode(Some(c.encode().as_bytes())), c);
        // A counter behind the cursor (store reset) starts over.
        let s = Scan::new(c, 1, DRAIN, 0);
        assert_eq!(s.cursor(), Cursor::default());
    }

    #[test]
    fn tenant_documents_never_show_webhook_secrets() {
        let mut doc = json!({"webhooks": [{"url": "https://a.example/h", "secret": SPEC_SECRET, "events": ["*"]}]})
            .as_object()
            .cloned()
            .unwrap();
        let stored = doc.clone();
        redact_doc(&mut doc);
        assert!(!Value::Object(doc.clone()).to_string().contains("MfKQ"));
        assert_eq!(doc["webhooks"][0]["secret"], json!({"set": true}));
        // The redacted document written back keeps the secret.
        merge_doc_secrets(&mut doc, Some(&stored)).unwrap();
        assert_eq!(doc, stored);
        // Omitted keeps it too; a new url has no secret to keep.
        let mut no_secret = json!({"webhooks": [{"url": "https://a.example/h", "events": ["*"]}]})
            .as_object()
            .cloned()
            .unwrap();
        merge_doc_secrets(&mut no_secret, Some(&stored)).unwrap();
        assert_eq!(no_secret["webhooks"][0]["secret"], SPEC_SECRET);
        let mut moved = json!({"webhooks": [{"url": "https://evil.example/h", "secret": {"set": true}, "events": ["*"]}]}).as_object().cloned().unwrap();
        let (field, _) = merge_doc_secrets(&mut moved, Some(&stored)).unwrap_err();
        assert_eq!(field, "webhooks[0].secret");
        // Left out of the document: the stored endpoints stay.
        let mut other = serde_json::Map::new();
        merge_doc_secrets(&mut other, Some(&stored)).unwrap();
        assert_eq!(other["webhooks"], stored["webhooks"]);
        let mut kept = json!({"webhooks": [{"url": "https://a.example/h", "secret": {"set": true}, "events": ["*"]}]}).as_object().cloned().unwrap();
        assume_kept_doc_secrets(&mut kept);
        assert!(parse(&kept["webhooks"].to_string()).is_ok());
    }
}
