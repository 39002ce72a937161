//! Login events' I/O: records what a request's sign-in or sign-out produced,
//! writes it to the tenant's KV outbox before the answer goes out, then
//! (after answering) tries those deliveries and a bounded number of due
//! retries. What an event is, what is due, backoff, expiry and signing are
//! `edgeauth_core::events` / `edgeauth_core::webhooks`.
//!
//! A component instance serves one request, so the request's events are
//! collected in instance state: the rules chain records its ending there
//! (`record_chain`), the callback and logout here.

use std::cell::RefCell;

use edgeauth_core::Response;
use edgeauth_core::events::{self, Context, Event, EventType, LoginOutcome};
use edgeauth_core::identity::Identity;
use edgeauth_core::policy::Denial;
use edgeauth_core::settings::Settings;
use edgeauth_core::webhooks::{self, Budget, Delivery, Found, Scan, State};
use edgeauth_core::{admin, endpoints, kv_schema, session};
use http::request::Parts;
use serde_json::json;
use spin_sdk::http::ResponseOutparam;

use crate::io;
use crate::kv::Kv;

thread_local! {
    /// `None`: nothing recorded; `Some(empty)`: a chain paused (no event yet).
    static RECORDED: RefCell<Option<Vec<Event>>> = const { RefCell::new(None) };
}

fn record(new: Vec<Event>) {
    RECORDED.with(|r| r.borrow_mut().get_or_insert_with(Vec::new).extend(new));
}

/// The rules chain ended (or paused) with `outcome`.
#[cfg_attr(not(feature = "rules"), allow(dead_code))]
pub fn record_chain(outcome: &LoginOutcome, context: &Context, now: u64) {
    record(events::for_login(outcome, context, now, &mut io::rng));
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    io::rng(&mut b);
    edgeauth_core::encoding::b64url(&b)
}

/// Taken before the callback completes: whose sign-in, and whether the
/// gateway's policy refuses it.
pub struct SignIn {
    context: Context,
    denial: Option<Denial>,
}

pub fn signing_in(settings: &Settings, identity: &Identity, parts: &Parts) -> SignIn {
    SignIn {
        context: events::context(&settings.tenant, identity, parts, random_id()),
        denial: edgeauth_core::policy::check(settings, identity).err(),
    }
}

/// After the callback: the chain's ending if a chain ran, else the policy's
/// verdict. A first login without rules is told by a per-subject marker
/// (`kv_schema::login_seen`, set at the first login); with rules, by the rule
/// record (`logins == 0`), which the marker then follows.
pub fn signed_in(settings: &Settings, sign_in: SignIn, now: u64) {
    let chain = RECORDED.with(|r| r.borrow_mut().take());
    // A marker already there answers with a read; only a first login (or
    // one racing it) writes: under Spin's SQLite store a write costs ~1 ms
    // of CPU and an fsync'd transaction, and every returning login paid one.
    let seen_before = |subject: &str| {
        let key = kv_schema::login_seen(&settings.tenant, subject);
        let kv = Kv::open().ok()?;
        match kv.get_raw(&key) {
            Ok(Some(_)) => Some(true),
            Ok(None) => kv.first_use(&key, now).ok().map(|first| !first),
            Err(_) => None,
        }
    };
    let list = match chain {
        Some(list) => {
            if list.iter().any(|e| e.kind == EventType::Login) {
                let _ = seen_before(&sign_in.context.subject);
            }
            list
        }
        None => {
            let outcome = match sign_in.denial {
                Some(d) => LoginOutcome::PolicyDenied {
                    reason: format!("{}: {}", d.rule, d.reason),
                },
                None => LoginOutcome::SignedIn {
                    // Store down: not a signup we can vouch for.
                    first_login: seen_before(&sign_in.context.subject) == Some(false),
                },
            };
            events::for_login(&outcome, &sign_in.context, now, &mut io::rng)
        }
    };
    record(list);
}

/// The offer's identity joined the profile of the person signing in.
pub fn linked(
    settings: &Settings,
    identity: &Identity,
    parts: &Parts,
    offer: &edgeauth_core::linking::Offer,
    now: u64,
) {
    let context = events::context(&settings.tenant, identity, parts, random_id());
    let linked = events::Linked {
        connection: offer.connection.clone(),
        subject: offer.subject.clone(),
        merged_profile: offer.from.clone(),
    };
    record(vec![events::for_link(&context, linked, now, &mut io::rng)]);
}

/// A logout of the request's (live) session.
pub fn logging_out(settings: &Settings, parts: &Parts, now: u64) {
    if let Ok(s) = session::read(settings, &parts.headers, now) {
        let context = events::context(&settings.tenant, &s.identity, parts, random_id());
        record(vec![events::for_logout(&context, now, &mut io::rng)]);
    }
}

/// Deliveries written to the outbox, to try after answering.
pub struct Outbox(Vec<(u64, Delivery)>);

/// Writes the request's events to the outbox (before the answer: an event
/// whose write failed is logged, the login itself goes on).
fn store(settings: &Settings, now: u64) -> Outbox {
    let list = RECORDED.with(|r| r.borrow_mut().take()).unwrap_or_default();
    let deliveries = webhooks::deliveries(&settings.webhooks, &list, now);
    if deliveries.is_empty() {
        return Outbox(Vec::new());
    }
    let Ok(kv) = Kv::open() else {
        for d in &deliveries {
            log(format!(
                "edgeauth: webhook event {} {} not stored: key-value store unavailable\n",
                d.event_id, d.kind
            ));
        }
        return Outbox(Vec::new());
    };
    // One increment numbers them all (the counter moves by their count:
    // the numbers up to its new value are this request's), so a first
    // login's signup and login cost one counter write, not two.
    let count = deliveries.len() as i64;
    let last = kv.increment(&kv_schema::webhook_seq(&settings.tenant), count);
    let mut out = Vec::new();
    for (i, d) in deliveries.into_iter().enumerate() {
        let n = last.as_ref().map(|last| last - count + 1 + i as i64);
        let (expires, value) = webhooks::encode_entry(&d);
        match n {
            Ok(n) if n > 0 => {
                let n = n as u64;
                if kv
                    .put(
                        &kv_schema::webhook_out(&settings.tenant, n),
                        &value,
                        expires,
                        now,
                    )
                    .is_ok()
                {
                    out.push((n, d));
                    continue;
                }
            }
            _ => {}
        }
        log(format!(
            "edgeauth: webhook event {} {} not stored: key-value store unavailable\n",
            d.event_id, d.kind
        ));
    }
    Outbox(out)
}

fn log(line: String) {
    use std::io::Write as _;
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Answers `response`, with the request's events in the outbox first; then
/// tries them and, when `retries`, a bounded number of due ones.
pub async fn respond(
    settings: &Settings,
    out: ResponseOutparam,
    response: Response,
    retries: bool,
    now: u64,
) {
    let outbox = store(settings, now);
    io::respond(out, response).await;
    crate::after::run();
    if settings.webhooks.is_empty() && outbox.0.is_empty() {
        return;
    }
    if !outbox.0.is_empty() || retries {
        let budget = if retries {
            webhooks::PIGGYBACK
        } else {
            Budget {
                reads: 0,
                sends: outbox.0.len(),
                force: false,
            }
        };
        let _ = run(settings, outbox, budget, now).await;
    }
}

#[derive(Default)]
struct Stats {
    delivered: u64,
    failed: u64,
    expired: u64,
    waiting: u64,
    more: bool,
}

/// One pass: this request's own deliveries, then what the scan finds due.
async fn run(settings: &Settings, own: Outbox, budget: Budget, now: u64) -> Option<Stats> {
    let kv = Kv::open().ok()?;
    let tenant = settings.tenant.as_str();
    let mut stats = Stats::default();
    let mut to_send: Vec<(u64, Delivery, &webhooks::Endpoint)> = Vec::new();
    for (n, d) in own.0 {
        if let State::Send(e) = d.state(&settings.webhooks, now, true) {
            to_send.push((n, d, e));
        }
    }
    let own_numbers: Vec<u64> = to_send.iter().map(|(n, _, _)| *n).collect();
    if budget.reads > 0 {
        let last = kv.counter(&kv_schema::webhook_seq(tenant)).ok()?.max(0) as u64;
        let cursor_key = kv_schema::webhook_cursor(tenant);
        let stored = kv.get_raw(&cursor_key).ok().flatten();
        // The stored cursor and when it expires (`None`: none, or over).
        let stored = stored
            .as_deref()
            .and_then(|v| kv_schema::decode(v).ok())
            .filter(|(expires, _)| *expires > now);
        let start = webhooks::Cursor::decode(stored.map(|(_, payload)| payload));
        let mut scan = Scan::new(start, last, budget, now);
        while let Some(n) = scan.next_number() {
            if own_numbers.contains(&n) {
                continue;
            }
            let key = kv_schema::webhook_out(tenant, n);
            let found = webhooks::decode_entry(kv.get_live(&key, now).ok().flatten().as_deref());
            scan.saw(n, &found);
            let Found::Pending(d) = found else { continue };
            match d.state(&settings.webhooks, now, scan.force) {
                State::Send(e) => {
                    if scan.take_send() {
                        to_send.push((n, d, e));
                    }
                }
                State::Wait => stats.waiting += 1,
                State::Expired(why) => {
                    log(d.expired_line(&why));
                    let _ = kv.increment(&kv_schema::webhook_expired(tenant), 1);
                    let (exp, t) = webhooks::tombstone(now);
                    let _ = kv.put(&key, &t, exp, now);
                    stats.expired += 1;
                }
            }
        }
        stats.more = scan.more();
        if scan.must_store(start, stored.map(|(expires, _)| expires)) {
            let expires = now + webhooks::CURSOR_SECS;
            let _ = kv.put(
                &cursor_key,
                &kv_schema::encode(expires, scan.cursor().encode().as_bytes()),
                expires,
                now,
            );
        }
    }
    // Concurrently: one slow endpoint costs the pass one timeout, not one per event.
    let sends = to_send.iter().map(|(_, d, e)| send(e, d, now));
    let results = futures::future::join_all(sends).await;
    for ((n, mut d, _), result) in to_send.into_iter().zip(results) {
        let key = kv_schema::webhook_out(tenant, n);
        match result {
            Ok(status) if webhooks::delivered(status) => {
                let (exp, t) = webhooks::tombstone(now);
                let _ = kv.put(&key, &t, exp, now);
                stats.delivered += 1;
            }
            other => {
                let error = match other {
                    Ok(status) => format!("answered {status}"),
                    Err(e) => e,
                };
                d.failed(error, now);
                let (exp, value) = webhooks::encode_entry(&d);
                let _ = kv.put(&key, &value, exp, now);
                stats.failed += 1;
            }
        }
    }
    Some(stats)
}

/// One signed attempt to the configured endpoint (never to a URL the outbox
/// holds: `e` comes from the tenant's current settings).
async fn send(e: &webhooks::Endpoint, d: &Delivery, now: u64) -> Result<u16, String> {
    let request = webhooks::request(e, d, now);
    let out = io::outgoing(&request).ok_or("invalid request")?;
    let mut body = out.take_body();
    let sending = io::send_with_timeouts(
        out,
        webhooks::CONNECT_TIMEOUT_MS * 1_000_000,
        webhooks::RESPONSE_TIMEOUT_MS * 1_000_000,
    );
    let upload = async move {
        use futures::SinkExt;
        body.send(request.into_body())
            .await
            .map_err(|e| format!("{e:?}"))?;
        drop(body);
        Ok::<(), String>(())
    };
    let (resp, uploaded) = futures::join!(sending, upload);
    uploaded?;
    Ok(resp?.status())
}

/// `POST /.edgeauth/admin/events/drain`: one large pass that sends every
/// pending delivery of the request's tenant whatever its schedule.
pub async fn reserved(settings: &Settings, parts: &Parts, now: u64) -> Option<Response> {
    if parts.uri.path() != webhooks::DRAIN_PATH {
        return None;
    }
    let given = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let token = crate::vars::get("admin_token").unwrap_or_default();
    let answer = |status: u16, body: serde_json::Value| {
        http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("cache-control", "no-store")
            .body(body.to_string().into_bytes())
            .expect("static response")
    };
    match admin::authorized(given, &token) {
        None => return Some(endpoints::not_found(parts)),
        Some(false) => {
            return Some(answer(
                401,
                json!({"error": "unauthorized", "message": "a valid admin token is required"}),
            ));
        }
        Some(true) => {}
    }
    if parts.method != http::Method::POST {
        return Some(answer(
            405,
            json!({"error": "method_not_allowed", "message": "use POST"}),
        ));
    }
    let Some(stats) = run(settings, Outbox(Vec::new()), webhooks::DRAIN, now).await else {
        return Some(answer(
            503,
            json!({"error": "storage_unavailable", "message": "the key-value store is not available"}),
        ));
    };
    let expired_total = Kv::open()
        .ok()
        .and_then(|kv| {
            kv.counter(&kv_schema::webhook_expired(&settings.tenant))
                .ok()
        })
        .unwrap_or(0);
    Some(answer(
        200,
        json!({
            "tenant": settings.tenant,
            "delivered": stats.delivered, "failed": stats.failed, "expired": stats.expired,
            "waiting": stats.waiting, "more": stats.more, "expired_total": expired_total,
        }),
    ))
}
