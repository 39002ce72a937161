//! Running a tenant's chain at sign-in and applying what it decided.

use std::collections::BTreeMap;
use std::time::Instant;

use edgeauth_core::Response;
use edgeauth_core::callback::{self, CallbackStart, Tokens};
use edgeauth_core::cookies::{self, Jar};
use edgeauth_core::encoding::{b64url, b64url_decode};
use edgeauth_core::identity::Identity;
use edgeauth_core::login::{self, LoginState};
use edgeauth_core::pages;
use edgeauth_core::policy;
use edgeauth_core::routes;
use edgeauth_core::seal::Purpose;
use edgeauth_core::session::Extras;
use edgeauth_core::settings::Settings;
use edgeauth_rules::artifact::{self, TrustedKeys};
use edgeauth_rules::command::Command;
use edgeauth_rules::config::{self, RuleConfig, RulesConfig, Source, TenantRules};
use edgeauth_rules::event::{
    Connection, ConnectionKind, Event, HttpError, HttpRequest, HttpResponse, LinkedIdentity,
    LogLevel, RequestInfo, Transaction, User,
};
use edgeauth_rules::merge::merge_patch;
use edgeauth_rules::runtime::{Failure, Io, Runtime};
use http::StatusCode;
use http::request::Parts;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use spin_sdk::http::IncomingRequest;
use spin_sdk::key_value::Store;

use crate::io;

/// How long the browser has to come back from a rule's redirect.
const RESUME_TTL_SECS: u64 = 900;
/// Metadata documents larger than this are refused.
const MAX_METADATA: usize = 16 * 1024;
/// Fields accepted at the continue endpoint.
const MAX_RESUME_FIELDS: usize = 32;
const MAX_RESUME_FIELD: usize = 1024;
pub const CONTINUE: &str = "/.edgeauth/continue";

pub(super) fn variable(name: &str) -> String {
    spin_sdk::variables::get(name).unwrap_or_default()
}

/// Everything the rules need from the configuration.
pub(super) struct Rules {
    pub config: RulesConfig,
    pub keys: TrustedKeys,
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
}

/// The rules configuration, `None` if no tenant has rules.
pub(super) fn load(settings: &Settings) -> Result<Option<Rules>, String> {
    let text = variable("rules");
    if text.trim().is_empty() {
        return Ok(None);
    }
    let own = |h: &str| settings.headers.configured().any(|c| c.as_str() == h);
    let config = config::parse(&text, own).map_err(|e| format!("variable `rules`: {e}"))?;
    if config.is_empty() {
        return Ok(None);
    }
    Ok(Some(Rules {
        config,
        keys: keys()?,
        secrets: config::parse_secrets(&variable("rule_secrets"))
            .map_err(|e| format!("variable `rule_secrets`: {e}"))?,
    }))
}

pub(super) fn keys() -> Result<TrustedKeys, String> {
    let keys = TrustedKeys::parse(&variable("rule_keys"))
        .map_err(|e| format!("variable `rule_keys`: {e}"))?;
    if keys.is_empty() {
        return Err("variable `rule_keys`: rules are configured but no public key is given to verify their artifacts".into());
    }
    Ok(keys)
}

/// Every request: refuses to serve with a broken rules configuration and
/// strips the names rules may set from what the client sent.
pub fn prepare(settings: &Settings, parts: &mut Parts) -> Result<(), Response> {
    let rules = load(settings).map_err(|problem| {
        eprintln!("edgeauth: refusing to serve: {problem}");
        pages::misconfigured(&problem)
    })?;
    // Every tenant's rule headers, not only this tenant's: tenants may share
    // an origin, and a header one tenant's rules set must never come from a client.
    if let Some(rules) = rules.as_ref() {
        for name in rules
            .config
            .tenants
            .values()
            .flat_map(TenantRules::rule_headers)
        {
            // Every spelling (case, `_` for `-` anywhere, duplicates): servers
            // that read them as one name must not see a client's lookalike.
            edgeauth_core::forward::remove_every_spelling(&mut parts.headers, name);
        }
    }
    Ok(())
}

pub(super) fn store() -> Result<Store, Response> {
    Store::open_default().map_err(|e| {
        eprintln!("edgeauth: key-value store unavailable: {e:?}");
        pages::storage_unavailable()
    })
}

fn hash(text: &str) -> String {
    b64url(&Sha256::digest(text.as_bytes()))
}

/// One log line in a single write, so lines of concurrent requests never
/// interleave in the platform's log.
pub(super) fn log_line(line: String) {
    use std::io::Write as _;
    let mut line = line;
    line.push('\n');
    let _ = std::io::stderr().write_all(line.as_bytes());
}

pub(super) fn audit(fields: Value) {
    log_line(format!("edgeauth-audit: {fields}"));
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    io::rng(&mut b);
    b64url(&b)
}

// ------------------------------------------------------------------ records

/// What the gateway keeps per person and tenant for rules.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct UserRecord {
    #[serde(default)]
    logins: u64,
    #[serde(default)]
    app: Value,
    #[serde(default)]
    user: Value,
}

fn user_key(tenant: &str, sub: &str) -> String {
    format!("rule-user:{tenant}:{}", hash(sub))
}

fn object_or_empty(v: Value) -> Value {
    if v.is_object() {
        v
    } else {
        Value::Object(Map::new())
    }
}

fn load_user(kv: &Store, tenant: &str, sub: &str) -> UserRecord {
    kv.get(&user_key(tenant, sub))
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice::<UserRecord>(&b).ok())
        .map(|r| UserRecord {
            app: object_or_empty(r.app),
            user: object_or_empty(r.user),
            ..r
        })
        .unwrap_or(UserRecord {
            logins: 0,
            app: json!({}),
            user: json!({}),
        })
}

/// A sign-in paused by a rule's redirect, kept in KV under its nonce.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    tenant: String,
    index: usize,
    rule: String,
    identity: Identity,
    login: LoginState,
    id_token: String,
    progress: Progress,
    base: Event,
    expires: u64,
}

/// The sealed values binding a paused sign-in to the URL and the browser.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResumeToken {
    /// "state" (in the URL) or "cookie".
    k: String,
    n: String,
    e: u64,
}

fn resume_key(nonce: &str) -> String {
    format!("rule-resume:{}", hash(nonce))
}

// ------------------------------------------------------------------ the event

fn id_token_claims(id_token: &str) -> Map<String, Value> {
    // Already verified by the callback; only read here.
    id_token
        .split('.')
        .nth(1)
        .and_then(b64url_decode)
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default()
}

fn header(parts: &Parts, name: &str) -> Option<String> {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn languages(raw: Option<String>) -> Vec<String> {
    let mut langs: Vec<(f32, String)> = raw
        .unwrap_or_default()
        .split(',')
        .filter_map(|item| {
            let mut it = item.split(';');
            let tag = it.next()?.trim();
            if tag.is_empty()
                || tag.len() > 35
                || !tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
            {
                return None;
            }
            let q = it
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            Some((q, tag.to_owned()))
        })
        .take(16)
        .collect();
    langs.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    langs.into_iter().map(|(_, t)| t).collect()
}

fn client_ip(parts: &Parts) -> Option<String> {
    let raw = header(parts, "spin-client-addr")?;
    raw.parse::<std::net::SocketAddr>()
        .map(|s| s.ip().to_string())
        .or_else(|_| raw.parse::<std::net::IpAddr>().map(|i| i.to_string()))
        .ok()
}

/// Who signs in, as the callback established it.
struct SignIn<'a> {
    identity: &'a Identity,
    id_token: &'a str,
    start: &'a CallbackStart,
    record: &'a UserRecord,
    reauthenticated: bool,
}

fn base_event(settings: &Settings, parts: &Parts, tenant: &str, who: SignIn<'_>) -> Event {
    let SignIn {
        identity,
        id_token,
        start,
        record,
        reauthenticated,
    } = who;
    let mut claims = id_token_claims(id_token);
    let picture = claims
        .get("picture")
        .and_then(Value::as_str)
        .map(str::to_owned);
    for protocol in ["nonce", "at_hash", "c_hash"] {
        claims.remove(protocol);
    }
    let host = settings.public_url.host_str().unwrap_or("").to_owned();
    Event {
        tenant_id: tenant.to_owned(),
        rule_name: String::new(),
        config: Value::Null,
        user: User {
            sub: identity.sub.clone(),
            email: identity.email.clone(),
            email_verified: identity.email_verified,
            name: identity.name.clone(),
            picture,
            groups: identity.groups.clone(),
            identities: vec![LinkedIdentity {
                connection: "default".into(),
                user_id: identity.sub.clone(),
                profile: Value::Object(claims),
            }],
            app_metadata: record.app.clone(),
            user_metadata: record.user.clone(),
        },
        connection: Connection {
            id: "default".into(),
            kind: ConnectionKind::Oidc,
            display_name: url::Url::parse(&settings.issuer)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| settings.issuer.clone()),
        },
        request: RequestInfo {
            ip: client_ip(parts),
            user_agent: header(parts, "user-agent").map(|u| u.chars().take(512).collect()),
            host: header(parts, "host").unwrap_or(host),
            path: parts.uri.path().to_owned(),
            method: parts.method.as_str().to_owned(),
            accepted_languages: languages(header(parts, "accept-language")),
        },
        transaction: Transaction {
            first_login: record.logins == 0,
            login_count: record.logins,
            return_url: start.login.return_to.clone(),
            correlation_id: random_id(),
            reauthenticated,
            resumed: None,
        },
        secrets: BTreeMap::new(),
    }
}

// ------------------------------------------------------------------ running

/// The gateway side of a rule's host imports.
pub(super) struct GatewayIo {
    pub dry_run: bool,
}

impl Io for GatewayIo {
    fn now_ms(&mut self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn random(&mut self, buf: &mut [u8]) {
        io::rng(buf);
    }

    fn log(&mut self, tenant: &str, rule: &str, level: LogLevel, message: &str) {
        log_line(format!(
            "edgeauth: rule log [{tenant}/{rule}] {}: {message}",
            level.as_str()
        ));
    }

    fn http(&mut self, request: &HttpRequest) -> Result<HttpResponse, HttpError> {
        if self.dry_run {
            return Err(HttpError::Unreachable("dry run: no outbound calls".into()));
        }
        super::net::send(request)
    }
}

/// What the chain has accumulated so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Progress {
    pub claims: Map<String, Value>,
    pub headers: Vec<(String, String)>,
    pub app: Value,
    pub user: Value,
    pub metadata_changed: bool,
}

/// How a chain ended.
pub(super) enum End {
    Done,
    Deny {
        rule: String,
        reason: String,
    },
    Redirect {
        index: usize,
        rule: String,
        url: String,
    },
    Reauth {
        rule: String,
        prompt_login: bool,
        max_age: Option<u32>,
    },
    Failed {
        rule: String,
        failure: Failure,
    },
}

/// Per-rule timings, for audit lines and the admin dry run.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Timing {
    pub rule: String,
    /// Read + verify + deserialize.
    pub load_us: u64,
    pub read_us: u64,
    pub verify_us: u64,
    pub deserialize_us: u64,
    pub instantiate_us: u64,
    pub call_us: u64,
    pub fuel: u64,
    pub commands: Vec<Command>,
}

pub(super) fn artifact_bytes(
    kv: Option<&Store>,
    tenant: &str,
    rule: &RuleConfig,
) -> Result<Vec<u8>, Failure> {
    match &rule.source {
        Source::Kv => kv
            .and_then(|kv| {
                kv.get(&config::artifact_key(tenant, &rule.name))
                    .ok()
                    .flatten()
            })
            .ok_or_else(|| Failure::Load("no artifact uploaded for it".into())),
        Source::File(path) => {
            std::fs::read(path).map_err(|e| Failure::Load(format!("cannot read {path}: {e}")))
        }
    }
}

/// Loads, verifies and runs one rule.
pub(super) fn run_rule(
    runtime: &Runtime,
    rules: &Rules,
    kv: Option<&Store>,
    rule: &RuleConfig,
    event: &Event,
    dry_run: bool,
) -> (Result<Vec<Command>, Failure>, Timing) {
    let started = Instant::now();
    let mut timing = Timing {
        rule: rule.name.clone(),
        ..Timing::default()
    };
    let bytes = match artifact_bytes(kv, &event.tenant_id, rule) {
        Ok(b) => b,
        Err(f) => return (Err(f), timing),
    };
    timing.read_us = started.elapsed().as_micros() as u64;
    let verified = match artifact::verify(&bytes, &rule.name, &rules.keys) {
        Ok(v) => v,
        Err(e) => {
            return (
                Err(Failure::Load(format!("its artifact was refused: {e}"))),
                timing,
            );
        }
    };
    timing.verify_us = started.elapsed().as_micros() as u64 - timing.read_us;
    let component = match runtime.load(&verified) {
        Ok(c) => c,
        Err(f) => return (Err(f), timing),
    };
    timing.load_us = started.elapsed().as_micros() as u64;
    timing.deserialize_us = timing.load_us - timing.read_us - timing.verify_us;
    let mut event = event.clone();
    event.rule_name = rule.name.clone();
    event.config = rule.config.clone();
    let granted = rules.secrets.get(&event.tenant_id);
    event.secrets = rule
        .secrets
        .iter()
        .filter_map(|s| {
            granted
                .and_then(|g| g.get(s))
                .map(|v| (s.clone(), v.clone()))
        })
        .collect();
    match runtime.run(&component, rule, &event, Box::new(GatewayIo { dry_run })) {
        Ok(outcome) => {
            timing.instantiate_us = outcome.instantiate_us;
            timing.call_us = outcome.call_us;
            timing.fuel = outcome.fuel_used;
            timing.commands = outcome.commands.clone();
            (Ok(outcome.commands), timing)
        }
        Err(f) => (Err(f), timing),
    }
}

fn apply(
    commands: Vec<Command>,
    progress: &mut Progress,
    index: usize,
    rule: &RuleConfig,
    event: &Event,
) -> Result<Option<End>, Failure> {
    for c in commands {
        match c {
            Command::Log { level, message } => {
                log_line(format!(
                    "edgeauth: rule log [{}/{}] {}: {message}",
                    event.tenant_id,
                    rule.name,
                    level.as_str()
                ));
            }
            Command::SetClaim { name, value } => {
                progress.claims.insert(name, value);
            }
            Command::SetHeader { name, value } => {
                progress.headers.retain(|(n, _)| *n != name);
                progress.headers.push((name, value));
            }
            Command::PatchAppMetadata { patch } | Command::PatchUserMetadata { patch }
                if patch.as_object().is_some_and(Map::is_empty) => {}
            Command::PatchAppMetadata { patch } => {
                merge_patch(&mut progress.app, &patch);
                progress.metadata_changed = true;
                if progress.app.to_string().len() > MAX_METADATA {
                    return Err(Failure::Output("app metadata would exceed 16 KiB".into()));
                }
            }
            Command::PatchUserMetadata { patch } => {
                merge_patch(&mut progress.user, &patch);
                progress.metadata_changed = true;
                if progress.user.to_string().len() > MAX_METADATA {
                    return Err(Failure::Output("user metadata would exceed 16 KiB".into()));
                }
            }
            Command::Deny { reason } => {
                return Ok(Some(End::Deny {
                    rule: rule.name.clone(),
                    reason,
                }));
            }
            Command::Redirect { url } => {
                return Ok(Some(End::Redirect {
                    index,
                    rule: rule.name.clone(),
                    url,
                }));
            }
            Command::RequireReauth {
                prompt_login,
                max_age,
            } => {
                if event.transaction.reauthenticated {
                    return Err(Failure::Output(
                        "asked for re-authentication again right after one".into(),
                    ));
                }
                return Ok(Some(End::Reauth {
                    rule: rule.name.clone(),
                    prompt_login,
                    max_age,
                }));
            }
        }
    }
    Ok(None)
}

/// Runs `tenant`'s chain from rule `from` (the first one sees `resumed`).
pub(super) fn run_chain(
    rules: &Rules,
    tenant: &TenantRules,
    base: &Event,
    from: usize,
    resumed: Option<Vec<(String, String)>>,
    progress: &mut Progress,
) -> End {
    let runtime = match Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            return End::Failed {
                rule: tenant
                    .chain
                    .get(from)
                    .map_or_else(String::new, |r| r.name.clone()),
                failure: Failure::Load(e),
            };
        }
    };
    let kv = Store::open_default().ok();
    let mut resumed = resumed;
    for (index, rule) in tenant.chain.iter().enumerate().skip(from) {
        let mut event = base.clone();
        event.user.app_metadata = progress.app.clone();
        event.user.user_metadata = progress.user.clone();
        event.transaction.resumed = resumed.take();
        let (result, timing) = run_rule(&runtime, rules, kv.as_ref(), rule, &event, false);
        let outcome = result.and_then(|commands| {
            let mut attempt = progress.clone();
            let end = apply(commands, &mut attempt, index, rule, &event)?;
            *progress = attempt;
            Ok(end)
        });
        let mut line = json!({
            "event": "rule", "tenant": event.tenant_id, "rule": rule.name,
            "correlation_id": event.transaction.correlation_id,
            "load_us": timing.load_us, "instantiate_us": timing.instantiate_us, "call_us": timing.call_us, "fuel": timing.fuel,
        });
        match outcome {
            Ok(None) => {
                line["outcome"] = json!("ok");
                audit(line);
            }
            Ok(Some(end)) => {
                line["outcome"] = json!(match &end {
                    End::Deny { .. } => "deny",
                    End::Redirect { .. } => "redirect",
                    End::Reauth { .. } => "reauth",
                    _ => "ok",
                });
                audit(line);
                return end;
            }
            Err(failure) => {
                line["outcome"] = json!(if rule.fail_open {
                    "failed-open"
                } else {
                    "failed"
                });
                line["kind"] = json!(failure.kind());
                line["detail"] = json!(failure.to_string());
                audit(line);
                if !rule.fail_open {
                    return End::Failed {
                        rule: rule.name.clone(),
                        failure,
                    };
                }
            }
        }
    }
    End::Done
}

// ------------------------------------------------------------------ outcomes

fn clear_login(settings: &Settings, mut resp: Response) -> Response {
    pages::add_cookie(&mut resp, &cookies::clear(settings, Jar::Login));
    resp
}

fn denied(settings: &Settings, rule: &str, reason: &str) -> Response {
    let detail = if reason.is_empty() {
        format!("Denied by the sign-in rule \u{201c}{rule}\u{201d}.")
    } else {
        format!("Denied by the sign-in rule \u{201c}{rule}\u{201d}: {reason}")
    };
    clear_login(
        settings,
        pages::error_with_link(
            StatusCode::FORBIDDEN,
            "Access denied",
            &detail,
            routes::LOGOUT,
            "Sign in with another account",
        ),
    )
}

fn failed(settings: &Settings, rule: &str, failure: &Failure, correlation_id: &str) -> Response {
    clear_login(
        settings,
        pages::error_with_link(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sign-in failed",
            &format!(
                "The sign-in rule \u{201c}{rule}\u{201d} could not complete: {failure}. You have not been signed in. \
                 The administrator can find this sign-in in the gateway's log under reference {correlation_id}."
            ),
            &format!("{}?rd=/", routes::LOGIN),
            "Try again",
        ),
    )
}

struct Finish<'a> {
    settings: &'a Settings,
    identity: Identity,
    id_token: String,
    login: LoginState,
    base: Event,
    now: u64,
}

impl Finish<'_> {
    async fn end(self, end: End, mut progress: Progress) -> Response {
        let settings = self.settings;
        let cid = self.base.transaction.correlation_id.clone();
        match end {
            End::Done => {
                let kv = match store() {
                    Ok(kv) => kv,
                    Err(r) => return r,
                };
                let record = UserRecord {
                    logins: self.base.transaction.login_count + 1,
                    app: std::mem::take(&mut progress.app),
                    user: std::mem::take(&mut progress.user),
                };
                let key = user_key(&self.base.tenant_id, &self.identity.sub);
                if let Err(e) = kv.set(
                    &key,
                    &serde_json::to_vec(&record).expect("record serializes"),
                ) {
                    eprintln!("edgeauth: could not save rule metadata: {e:?}");
                    if progress.metadata_changed {
                        return pages::storage_unavailable();
                    }
                }
                let extras = Extras {
                    claims: progress.claims,
                    headers: progress.headers,
                };
                let start = CallbackStart {
                    login: self.login,
                    code: String::new(),
                };
                callback::complete_with_extras(
                    settings,
                    self.identity,
                    extras,
                    Tokens {
                        id_token: self.id_token,
                    },
                    &start,
                    self.now,
                    &mut io::rng,
                )
            }
            End::Deny { rule, reason } => {
                audit(
                    json!({"event": "login-denied", "tenant": self.base.tenant_id, "rule": rule, "sub": self.identity.sub, "correlation_id": cid}),
                );
                denied(settings, &rule, &reason)
            }
            End::Failed { rule, failure } => {
                audit(
                    json!({"event": "login-failed", "tenant": self.base.tenant_id, "rule": rule, "kind": failure.kind(), "detail": failure.to_string(), "sub": self.identity.sub, "correlation_id": cid}),
                );
                failed(settings, &rule, &failure, &cid)
            }
            End::Redirect { index, rule, url } => self.pause(index, rule, url, progress),
            End::Reauth {
                rule,
                prompt_login,
                max_age,
            } => {
                let state = match io::ProviderState::load(settings, self.now).await {
                    Ok(s) => s,
                    Err(r) => return r,
                };
                audit(
                    json!({"event": "login-reauth", "tenant": self.base.tenant_id, "rule": rule, "sub": self.identity.sub, "correlation_id": cid}),
                );
                // The step-up is bound into the new login cookie; the callback
                // checks the ID token's auth_time against it.
                login::start_step_up(
                    settings,
                    &state.cache.metadata,
                    self.login.return_to.clone(),
                    prompt_login,
                    max_age,
                    self.now,
                    &mut io::rng,
                )
            }
        }
    }

    fn pause(self, index: usize, rule: String, url: String, progress: Progress) -> Response {
        let settings = self.settings;
        let nonce = random_id();
        let expires = self.now + RESUME_TTL_SECS;
        let pending = Pending {
            tenant: self.base.tenant_id.clone(),
            index,
            rule: rule.clone(),
            identity: self.identity,
            login: self.login,
            id_token: self.id_token,
            progress,
            base: self.base,
            expires,
        };
        let kv = match store() {
            Ok(kv) => kv,
            Err(r) => return r,
        };
        if kv
            .set(
                &resume_key(&nonce),
                &serde_json::to_vec(&pending).expect("pending serializes"),
            )
            .is_err()
        {
            return pages::storage_unavailable();
        }
        let seal = |k: &str| {
            let token = ResumeToken {
                k: k.into(),
                n: nonce.clone(),
                e: expires,
            };
            settings.session_keys.seal(
                Purpose::RuleResume,
                &serde_json::to_vec(&token).expect("token serializes"),
                &mut io::rng,
            )
        };
        let state = seal("state");
        let sep = if url.contains('?') { '&' } else { '?' };
        let target = format!(
            "{url}{sep}state={}",
            url::form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>()
        );
        audit(
            json!({"event": "login-paused", "tenant": pending.tenant, "rule": rule, "sub": pending.identity.sub, "correlation_id": pending.base.transaction.correlation_id}),
        );
        let mut resp = clear_login(settings, pages::redirect(&target));
        pages::add_cookie(
            &mut resp,
            &cookies::set(settings, Jar::Resume, seal("cookie"), RESUME_TTL_SECS),
        );
        resp
    }
}

/// The end of the callback: the tenant's chain, then the session.
pub async fn complete(
    settings: &Settings,
    parts: &Parts,
    identity: Identity,
    tokens: Tokens,
    start: &CallbackStart,
    now: u64,
) -> Response {
    let rules = match load(settings) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return callback::complete(settings, identity, tokens, start, now, &mut io::rng);
        }
        Err(problem) => return pages::misconfigured(&problem),
    };
    let tenant_id = settings.tenant.as_str();
    let Some(tenant) = rules.config.tenant(tenant_id) else {
        return callback::complete(settings, identity, tokens, start, now, &mut io::rng);
    };
    // The gateway's own policy first: a denied person runs no tenant code.
    if policy::check(settings, &identity).is_err() {
        return callback::complete(settings, identity, tokens, start, now, &mut io::rng);
    }
    let kv = match store() {
        Ok(kv) => kv,
        Err(r) => return r,
    };
    let record = load_user(&kv, tenant_id, &identity.sub);
    // `verify` checked the ID token's auth_time against the step-up bound
    // into this login's cookie; nothing the browser sends can set this.
    let reauthenticated = callback::reauthenticated(start);
    let who = SignIn {
        identity: &identity,
        id_token: &tokens.id_token,
        start,
        record: &record,
        reauthenticated,
    };
    let base = base_event(settings, parts, tenant_id, who);
    let mut progress = Progress {
        app: record.app.clone(),
        user: record.user.clone(),
        ..Progress::default()
    };
    let end = run_chain(&rules, tenant, &base, 0, None, &mut progress);
    let finish = Finish {
        settings,
        identity,
        id_token: tokens.id_token,
        login: start.login.clone(),
        base,
        now,
    };
    finish.end(end, progress).await
}

/// A continue request that cannot resume. The resume cookie is kept: a
/// forged or foreign link must not cancel the sign-in in progress.
fn resume_error(detail: &str) -> Response {
    pages::error_with_link(
        StatusCode::BAD_REQUEST,
        "Sign-in expired",
        detail,
        &format!("{}?rd=/", routes::LOGIN),
        "Sign in again",
    )
}

fn open_token(settings: &Settings, kind: &str, sealed: &str, now: u64) -> Option<ResumeToken> {
    let plain = settings
        .session_keys
        .open(Purpose::RuleResume, sealed)
        .ok()?;
    let t: ResumeToken = serde_json::from_slice(&plain).ok()?;
    (t.k == kind && t.e > now).then_some(t)
}

/// `GET /.edgeauth/continue?state=...&<fields>`: resumes a paused sign-in.
async fn resume(settings: &Settings, parts: &Parts, now: u64) -> Response {
    let pairs: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let state = pairs
        .iter()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let cookie =
        cookies::values(&parts.headers, &cookies::name(settings, Jar::Resume)).unwrap_or_default();
    let Some(url_token) = open_token(settings, "state", &state, now) else {
        return resume_error("This link does not continue a sign-in in progress, or it expired.");
    };
    let bound = cookie
        .iter()
        .filter_map(|c| open_token(settings, "cookie", c, now))
        .any(|t| t.n == url_token.n);
    if !bound {
        return resume_error(
            "This sign-in was started in another browser, or cookies are disabled.",
        );
    }
    let fields: Vec<(String, String)> = pairs.into_iter().filter(|(k, _)| k != "state").collect();
    if fields.len() > MAX_RESUME_FIELDS
        || fields
            .iter()
            .any(|(k, v)| k.len() > 128 || v.len() > MAX_RESUME_FIELD)
    {
        return resume_error("The form sent too many or too long fields.");
    }
    let kv = match store() {
        Ok(kv) => kv,
        Err(r) => return r,
    };
    let key = resume_key(&url_token.n);
    let pending = kv
        .get(&key)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice::<Pending>(&b).ok());
    // Single use: a replayed continue link finds nothing.
    let _ = kv.delete(&key);
    let Some(pending) = pending.filter(|p| p.expires > now) else {
        return resume_error("This sign-in was already completed or it expired.");
    };
    if pending.tenant != settings.tenant {
        return resume_error("This sign-in belongs to another site; sign in again.");
    }
    let rules = match load(settings) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return resume_error("Sign-in rules are no longer configured; sign in again.");
        }
        Err(problem) => return pages::misconfigured(&problem),
    };
    let Some(tenant) = rules.config.tenant(&pending.tenant) else {
        return resume_error("Sign-in rules changed; sign in again.");
    };
    if tenant.chain.get(pending.index).map(|r| r.name.as_str()) != Some(pending.rule.as_str()) {
        return resume_error("Sign-in rules changed while you were away; sign in again.");
    }
    let mut progress = pending.progress;
    let end = run_chain(
        &rules,
        tenant,
        &pending.base,
        pending.index,
        Some(fields),
        &mut progress,
    );
    let finish = Finish {
        settings,
        identity: pending.identity,
        id_token: pending.id_token,
        login: pending.login,
        base: pending.base,
        now,
    };
    // Paused again (a new cookie is set), or done: then the cookie goes.
    let paused = matches!(end, End::Redirect { .. });
    let mut resp = finish.end(end, progress).await;
    if !paused {
        pages::add_cookie(&mut resp, &cookies::clear(settings, Jar::Resume));
    }
    resp
}

/// Reserved paths this module serves; `None` for anything else.
pub async fn reserved(
    settings: &Settings,
    parts: &Parts,
    req: IncomingRequest,
    now: u64,
) -> Option<Response> {
    let path = parts.uri.path();
    // Without rules the continue endpoint does not exist (404 as before).
    if path == CONTINUE && matches!(load(settings), Ok(Some(_))) {
        if parts.method != http::Method::GET {
            return Some(pages::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                "Use GET.",
                false,
            ));
        }
        return Some(resume(settings, parts, now).await);
    }
    if let Some(rest) = path.strip_prefix(super::admin::PREFIX) {
        return Some(super::admin::handle(settings, parts, req, rest).await);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_is_ordered_by_quality() {
        assert_eq!(
            languages(Some("fr;q=0.5, en-GB, de;q=0.9, <script>".into())),
            ["en-GB", "de", "fr"]
        );
        assert!(languages(None).is_empty());
    }
}
