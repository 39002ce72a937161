//! The I/O of a tenant's chain at sign-in: Spin variables, KV, the embedded
//! runtime, the log, the clock and randomness. What the chain decides, and
//! what each ending means, is `edgeauth_rules` (chain, outcome, resume).

use std::time::Instant;

use edgeauth_core::Response;
use edgeauth_core::callback::{self, CallbackStart};
use edgeauth_core::connections::Connection;
use edgeauth_core::kv_schema;
use edgeauth_core::login;
use edgeauth_core::pages;
use edgeauth_core::policy;
use edgeauth_core::settings::Settings;
use edgeauth_core::tenant_docs;
use edgeauth_core::tenants::{self, DocRules};
use edgeauth_rules::artifact::{self, BindKeys, Place, TrustedKeys};
use edgeauth_rules::chain::{self as pure, End, Line, Progress, RunRule, Timing};
use edgeauth_rules::command::Command;
use edgeauth_rules::config::{self, RuleConfig, RulesConfig, Source, TenantRules};
use edgeauth_rules::deploy::{self, Pinned};
use edgeauth_rules::event::{Event, HttpError, HttpRequest, HttpResponse, LogLevel};
use edgeauth_rules::outcome::{self, Finish, Step};
use edgeauth_rules::record::Pending;
use edgeauth_rules::resume::{self, CONTINUE, ResumeError};
use edgeauth_rules::run_log::Entry;
use edgeauth_rules::runtime::{Failure, Io, Runtime};
use edgeauth_rules::sign_in::{self, SignIn};
use http::StatusCode;
use http::request::Parts;
use spin_sdk::http::IncomingRequest;

use super::versions::{self, RecordError};
use crate::io;
use crate::kv::Kv;

pub(super) fn variable(name: &str) -> String {
    crate::vars::get(name).unwrap_or_default()
}

/// Everything the rules need from the configuration.
pub(super) struct Rules {
    pub config: RulesConfig,
    pub keys: TrustedKeys,
    /// The gateway's keys for its MAC over stored artifacts.
    pub bind: BindKeys,
    pub secrets: pure::Secrets,
}

/// The rules configuration, `None` if no tenant has rules: the `rules` and
/// `rule_secrets` variables, where the request's tenant document's own
/// chain and secrets (`doc`) replace the variables' for that tenant.
pub(super) fn load(settings: &Settings, doc: &DocRules) -> Result<Option<Rules>, String> {
    load_for(settings, settings.tenant.as_str(), doc)
}

/// [`load`] with the document rules `doc` of tenant `tenant` (the admin
/// endpoints name a tenant that need not be the request host's).
pub(super) fn load_for(
    settings: &Settings,
    tenant: &str,
    doc: &DocRules,
) -> Result<Option<Rules>, String> {
    let text = variable("rules");
    if text.trim().is_empty() && doc.chain.is_none() {
        return Ok(None);
    }
    let own = |h: &str| settings.headers.configured().any(|c| c.as_str() == h);
    let mut config = config::parse(&text, own).map_err(|e| format!("variable `rules`: {e}"))?;
    if let Some(chain) = &doc.chain {
        let mine = config::parse(
            &serde_json::json!({"tenants": {tenant: chain}}).to_string(),
            own,
        )
        .map_err(|e| format!("tenant `{tenant}`'s document, `rules`: {e}"))?;
        config.tenants.extend(mine.tenants);
    }
    if config.is_empty() {
        return Ok(None);
    }
    let mut secrets = config::parse_secrets(&variable("rule_secrets"))
        .map_err(|e| format!("variable `rule_secrets`: {e}"))?;
    if let Some(own_secrets) = &doc.secrets {
        secrets.insert(tenant.to_owned(), own_secrets.clone());
    }
    Ok(Some(Rules {
        config,
        keys: keys()?,
        bind: BindKeys::from_ring(&settings.session_keys),
        secrets,
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
pub fn prepare(settings: &Settings, doc: &DocRules, parts: &mut Parts) -> Result<(), Response> {
    let rules = load(settings, doc).map_err(|problem| {
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
    // And every stored tenant's (kept in one small KV value by the admin API,
    // so this does not read their documents).
    if tenants::store_enabled(crate::vars::get).unwrap_or(false) {
        let stored = Kv::open()?
            .get_raw(kv_schema::TENANT_RULE_HEADERS)
            .map_err(|_| pages::storage_unavailable())?;
        if let Some(bytes) = stored {
            let names = tenant_docs::decode_rule_headers(&bytes).map_err(|e| {
                pages::misconfigured(&format!(
                    "the stored tenants' rule headers are unreadable: {e}"
                ))
            })?;
            for name in &names {
                edgeauth_core::forward::remove_every_spelling(&mut parts.headers, name);
            }
        }
    }
    Ok(())
}

/// One log line in a single write, so lines of concurrent requests never
/// interleave in the platform's log.
pub(super) fn log_line(line: String) {
    use std::io::Write as _;
    let mut line = line;
    line.push('\n');
    let _ = std::io::stderr().write_all(line.as_bytes());
}

pub(super) fn log(line: Line) {
    log_line(line.render());
}

pub(super) fn audit(fields: serde_json::Value) {
    log(Line::Audit(fields));
}

fn random_id() -> String {
    let mut b = [0u8; 16];
    io::rng(&mut b);
    edgeauth_core::encoding::b64url(&b)
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
        log(Line::Rule {
            tenant: tenant.to_owned(),
            rule: rule.to_owned(),
            level,
            message: message.to_owned(),
        });
    }

    fn http(&mut self, request: &HttpRequest) -> Result<HttpResponse, HttpError> {
        if self.dry_run {
            return Err(HttpError::Unreachable("dry run: no outbound calls".into()));
        }
        super::net::send(request)
    }
}

/// The stored bytes of `rule`: the deployed `version`, or (`None`) the
/// artifact uploaded before versions, or its file.
pub(super) fn artifact_bytes(
    kv: Option<&Kv>,
    tenant: &str,
    rule: &RuleConfig,
    version: Option<&str>,
) -> Result<Vec<u8>, Failure> {
    match (&rule.source, version) {
        (Source::Kv, Some(v)) => kv
            .and_then(|kv| {
                kv.get_raw(&kv_schema::rule_version(tenant, &rule.name, v))
                    .ok()
            })
            .flatten()
            .ok_or_else(|| Failure::Load(format!("its deployed version {v} is gone"))),
        (Source::Kv, None) => kv
            .and_then(|kv| kv.get_raw(&config::artifact_key(tenant, &rule.name)).ok())
            .flatten()
            .ok_or_else(|| {
                Failure::Load(
                    "no version of it is deployed (`edgeauth rule deploy`), nor an artifact uploaded before versions".into(),
                )
            }),
        (Source::File(path), _) => {
            std::fs::read(path).map_err(|e| Failure::Load(format!("cannot read {path}: {e}")))
        }
    }
}

/// The version of `rule` a sign-in pinned to `pinned` loads (files have none).
pub(super) fn version_of<'p>(pinned: &'p Pinned, rule: &RuleConfig) -> Option<&'p str> {
    match rule.source {
        Source::Kv => pinned.version(&rule.name),
        Source::File(_) => None,
    }
}

/// Loads, verifies and runs one rule on `event` (made for it by
/// `chain::event_for_rule`).
pub(super) fn run_rule(
    runtime: &Runtime,
    (keys, bind): (&TrustedKeys, &BindKeys),
    kv: Option<&Kv>,
    (rule, version): (&RuleConfig, Option<&str>),
    event: &Event,
    dry_run: bool,
) -> (Result<Vec<Command>, Failure>, Timing) {
    let started = Instant::now();
    let mut timing = Timing {
        rule: rule.name.clone(),
        ..Timing::default()
    };
    let bytes = match artifact_bytes(kv, &event.tenant_id, rule, version) {
        Ok(b) => b,
        Err(f) => return (Err(f), timing),
    };
    timing.read_us = started.elapsed().as_micros() as u64;
    // Uploaded artifacts carry the gateway's MAC, checked instead of the
    // signature; older ones and files get the full signature check.
    let tenant = event.tenant_id.as_str();
    let place = match version {
        Some(version) => Place::Version {
            tenant,
            rule: &rule.name,
            version,
        },
        None => Place::Rule {
            tenant,
            rule: &rule.name,
        },
    };
    let verified = match artifact::open_at(&bytes, &place, keys, bind) {
        Ok((v, _)) => v,
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
    match runtime.run(&component, rule, event, Box::new(GatewayIo { dry_run })) {
        Ok(outcome) => {
            timing.instantiate_us = outcome.instantiate_us;
            timing.call_us = outcome.call_us;
            timing.fuel = outcome.fuel_used;
            timing.memory_bytes = outcome.memory_bytes as u64;
            timing.commands = outcome.commands.clone();
            timing.logs = outcome.logs;
            (Ok(outcome.commands), timing)
        }
        Err(failed) => {
            timing.instantiate_us = failed.instantiate_us;
            timing.call_us = failed.call_us;
            timing.fuel = failed.fuel_used;
            timing.logs = failed.logs;
            (Err(failed.failure), timing)
        }
    }
}

/// Runs rules on the embedded runtime, artifacts from KV (the pinned
/// versions) or files, and keeps each run's execution log entry.
struct Runner<'a> {
    runtime: Runtime,
    keys: &'a TrustedKeys,
    bind: &'a BindKeys,
    kv: Option<Kv>,
    pinned: &'a Pinned,
    now: u64,
    /// The running rule's version and log lines, until its audit line.
    current: (Option<String>, Vec<String>),
    runs: Vec<(String, Entry)>,
}

impl RunRule for Runner<'_> {
    fn run(&mut self, rule: &RuleConfig, event: &Event) -> (Result<Vec<Command>, Failure>, Timing) {
        let version = version_of(self.pinned, rule);
        let (result, timing) = run_rule(
            &self.runtime,
            (self.keys, self.bind),
            self.kv.as_ref(),
            (rule, version),
            event,
            false,
        );
        self.current = (version.map(str::to_owned), timing.logs.clone());
        (result, timing)
    }

    fn log(&mut self, line: Line) {
        match &line {
            Line::Rule { level, message, .. } => {
                self.current
                    .1
                    .push(format!("{}: {message}", level.as_str()));
            }
            Line::Audit(fields) => {
                let (version, logs) = std::mem::take(&mut self.current);
                if let Some(entry) = Entry::from_audit(fields, logs, version.as_deref(), self.now)
                    && let Some(rule) = fields.get("rule").and_then(|r| r.as_str())
                {
                    self.runs.push((rule.to_owned(), entry));
                }
            }
        }
        log(line);
    }
}

/// Runs the chain with the `pinned` versions, then stores each run in its
/// rule's execution log (the only KV writes rules add to a sign-in).
fn run_chain(
    rules: &Rules,
    tenant: &TenantRules,
    (base, pinned): (&Event, &Pinned),
    from: usize,
    resumed: Option<Vec<(String, String)>>,
    progress: &mut Progress,
    now: u64,
) -> End {
    let runtime = match Runtime::new() {
        Ok(r) => r,
        Err(e) => return pure::unavailable(tenant, from, Failure::Load(e)),
    };
    let mut runner = Runner {
        runtime,
        keys: &rules.keys,
        bind: &rules.bind,
        kv: Kv::open().ok(),
        pinned,
        now,
        current: (None, Vec::new()),
        runs: Vec::new(),
    };
    let end = pure::run_chain(
        &mut runner,
        tenant,
        &rules.secrets,
        base,
        from,
        resumed,
        progress,
    );
    if let Some(kv) = runner.kv.take()
        && !runner.runs.is_empty()
    {
        // After the answer: the person does not wait for the log writes.
        let runs = std::mem::take(&mut runner.runs);
        let tenant = base.tenant_id.clone();
        let cid = base.transaction.correlation_id.clone();
        crate::after::defer(move || record_runs(&kv, &tenant, &cid, &runs));
    }
    end
}

/// Best effort: a sign-in does not fail because its log could not be kept.
/// Its cost is in the audit line (`write_us`), paid after the answer.
fn record_runs(kv: &Kv, tenant: &str, correlation_id: &str, runs: &[(String, Entry)]) {
    let started = Instant::now();
    let mut failed = 0;
    for (rule, entry) in runs {
        if versions::append_log(kv, tenant, rule, entry).is_err() {
            failed += 1;
        }
    }
    audit(serde_json::json!({
        "event": "rule-runs-recorded", "tenant": tenant,
        "correlation_id": correlation_id,
        "runs": runs.len(), "failed": failed,
        "write_us": started.elapsed().as_micros() as u64,
    }));
}

/// The versions a sign-in of `tenant` runs: the deployment record, read once.
fn pinned_now(tenant: &str) -> Result<Pinned, Response> {
    let kv = Kv::open()?;
    match versions::record(&kv, tenant) {
        Ok(record) => Ok(Pinned::of(record.as_ref())),
        Err(RecordError::Unavailable) => Err(pages::storage_unavailable()),
        Err(RecordError::Unreadable(e)) => {
            eprintln!("edgeauth: tenant `{tenant}`: {e}");
            Err(pages::misconfigured(&e))
        }
    }
}

// ------------------------------------------------------------------ outcomes

/// Carries out what the chain's ending asks for.
async fn finish(
    settings: &Settings,
    fin: Finish,
    end: End,
    progress: Progress,
    now: u64,
) -> Response {
    let event = edgeauth_rules::login_event::outcome(&fin, &end);
    crate::events::record_chain(&event, &edgeauth_rules::login_event::context(&fin), now);
    match outcome::finish(settings, fin, end, progress, now, &mut io::rng) {
        Step::Respond { response, audit } => {
            if let Some(line) = audit {
                log(line);
            }
            response
        }
        Step::SaveMetadata {
            profile_id,
            app,
            user,
            response,
            on_failure,
        } => {
            let saved = profile_id.is_some_and(|id| {
                crate::profile_store::set_rule_metadata(settings, &id, &app, &user).is_ok()
            });
            if !saved {
                eprintln!("edgeauth: could not save the rules' metadata in the profile");
                return on_failure;
            }
            response
        }
        Step::Pause {
            key,
            value,
            expires_at,
            audit,
            response,
            on_failure,
        } => {
            let kv = match Kv::open() {
                Ok(kv) => kv,
                Err(r) => return r,
            };
            if kv.put(&key, &value, expires_at, now).is_err() {
                return on_failure;
            }
            log(audit);
            response
        }
        Step::Reauth {
            rule: _,
            connection,
            prompt_login,
            max_age,
            return_to,
            audit,
        } => {
            let Some(connection) = settings.connection(&connection) else {
                return pages::misconfigured("the sign-in's connection is no longer configured");
            };
            reauth(
                settings,
                connection,
                (prompt_login, max_age),
                return_to,
                audit,
                now,
            )
            .await
        }
    }
}

/// A rule's demand for a fresh login: the step-up is bound into the new
/// login cookie, and the callback checks the ID token's `auth_time` against it.
async fn reauth(
    settings: &Settings,
    connection: &Connection,
    (prompt_login, max_age): (bool, Option<u32>),
    return_to: String,
    audit: Line,
    now: u64,
) -> Response {
    let state = match io::ProviderState::load(connection, now).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    log(audit);
    login::start_step_up(
        settings,
        login::Target {
            connection,
            authorization_endpoint: &state.cache.metadata.authorization_endpoint,
        },
        return_to,
        prompt_login,
        max_age,
        now,
        &mut io::rng,
    )
}

/// The end of the callback: the tenant's chain, then the session.
pub async fn complete(
    settings: &Settings,
    doc: &DocRules,
    parts: &Parts,
    who: crate::rules::SignedIn,
    start: &CallbackStart,
    now: u64,
) -> Response {
    let crate::rules::SignedIn {
        identity,
        person,
        tokens,
    } = who;
    let rules = match load(settings, doc) {
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
    // `verify` checked the ID token's auth_time against the step-up bound
    // into this login's cookie; nothing the browser sends can set this.
    let reauthenticated = callback::reauthenticated(start);
    let base = sign_in::base_event(
        settings,
        parts,
        tenant_id,
        SignIn {
            identity: &identity,
            id_token: &tokens.id_token,
            return_to: &start.login.return_to,
            person: &person,
            reauthenticated,
            correlation_id: random_id(),
        },
    );
    // One read: the whole chain runs the versions deployed at this moment,
    // whatever deploys happen while it runs.
    let pinned = match pinned_now(tenant_id) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut progress = Progress::starting(
        &serde_json::Value::Object(person.app_metadata),
        &serde_json::Value::Object(person.user_metadata),
    );
    let end = run_chain(
        &rules,
        tenant,
        (&base, &pinned),
        0,
        None,
        &mut progress,
        now,
    );
    let fin = Finish {
        identity,
        id_token: tokens.id_token,
        session: tokens.session,
        login: start.login.clone(),
        base,
        resumed: false,
        pinned,
    };
    finish(settings, fin, end, progress, now).await
}

/// `GET /.edgeauth/continue?state=...&<fields>`: resumes a paused sign-in.
async fn resume(settings: &Settings, doc: &DocRules, parts: &Parts, now: u64) -> Response {
    let request = match resume::parse_continue(settings, parts, now) {
        Ok(c) => c,
        Err(e) => return outcome::resume_error(e),
    };
    let kv = match Kv::open() {
        Ok(kv) => kv,
        Err(r) => return r,
    };
    // Single use, atomically: of concurrent requests with this link only
    // one gets past here.
    match kv.first_use(
        &kv_schema::resume_used(&request.nonce, request.expires),
        now,
    ) {
        Ok(true) => {}
        Ok(false) => return outcome::resume_error(ResumeError::Used),
        Err(_) => return pages::storage_unavailable(),
    }
    let key = kv_schema::rule_resume(&request.nonce);
    let pending = kv
        .get_raw(&key)
        .ok()
        .flatten()
        .and_then(|b| Pending::decode(&b, now));
    let _ = kv.delete(&key);
    let Some(pending) = pending else {
        return outcome::resume_error(ResumeError::Used);
    };
    let rules = match load(settings, doc) {
        Ok(r) => r,
        Err(problem) => return pages::misconfigured(&problem),
    };
    let tenant = match resume::check_pending(
        &pending,
        &settings.tenant,
        rules.as_ref().map(|r| &r.config),
    ) {
        Ok(t) => t,
        Err(e) => return outcome::resume_error(e),
    };
    let Some(rules) = rules.as_ref() else {
        return outcome::resume_error(ResumeError::NoRules);
    };
    // The versions it started with (paused before deployments existed: the
    // active ones); if one of them was garbage-collected since, it cannot
    // go on with a consistent chain.
    let pinned = match pending.pinned {
        Some(p) => p,
        None => match pinned_now(&pending.tenant) {
            Ok(p) => p,
            Err(r) => return r,
        },
    };
    if let Err(rule) = deploy::check_pinned(tenant, pending.index, &pinned, |r, v| {
        versions::exists(&kv, &pending.tenant, r, v)
    }) {
        audit(serde_json::json!({
            "event": "resume-refused", "tenant": pending.tenant, "rule": rule,
            "deployment": pinned.deployment, "correlation_id": pending.base.transaction.correlation_id,
            "detail": "a version the sign-in started with is gone",
        }));
        return outcome::resume_error(ResumeError::RulesChanged);
    }
    let mut progress = pending.progress;
    let end = run_chain(
        rules,
        tenant,
        (&pending.base, &pinned),
        pending.index,
        Some(request.fields),
        &mut progress,
        now,
    );
    let fin = Finish {
        identity: pending.identity,
        id_token: pending.id_token,
        session: pending.session,
        login: pending.login,
        base: pending.base,
        resumed: true,
        pinned,
    };
    finish(settings, fin, end, progress, now).await
}

/// Reserved paths this module serves; `None` for anything else.
pub async fn reserved(
    settings: &Settings,
    doc: &DocRules,
    parts: &Parts,
    req: IncomingRequest,
    now: u64,
) -> Option<Response> {
    let path = parts.uri.path();
    // Without rules the continue endpoint does not exist (404 as before).
    if path == CONTINUE && matches!(load(settings, doc), Ok(Some(_))) {
        if parts.method != http::Method::GET {
            return Some(pages::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "Method not allowed",
                "Use GET.",
                false,
            ));
        }
        return Some(resume(settings, doc, parts, now).await);
    }
    if let Some(rest) = path.strip_prefix(super::admin::PREFIX) {
        return Some(super::admin::handle(settings, doc, parts, req, rest).await);
    }
    None
}
