//! The embedded rule runtime: wasmtime without a compiler, running
//! precompiled rule components on the Pulley interpreter, one fresh store per
//! call with a fuel budget, a memory cap (the total over all the component's
//! linear memories, see the `limits` module) and an output cap.
//!
//! Inside the gateway component (wasm32-wasip2) this is a no_std "custom
//! platform" wasmtime build; natively (the host's `edgeauth rule run`) the same
//! code runs what the host compiled in-process.

use std::time::Instant;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, Store, Trap};

use crate::command::{self, Command};
use crate::config::RuleConfig;
use crate::event::{self as plain, Event, HttpError, LogLevel, RawCommand};

mod limits;

use limits::Limiter;

mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/plugin.wit",
        world: "edgeauth:plugin/post-login",
    });
}

use bindings::PostLogin;
use bindings::edgeauth::plugin::{host, types as wit};

/// What the embedding gateway provides to rules.
pub trait Io: Send {
    fn now_ms(&mut self) -> u64;
    fn random(&mut self, buf: &mut [u8]);
    /// A line in the gateway's log, already tagged with tenant and rule.
    fn log(&mut self, tenant: &str, rule: &str, level: LogLevel, message: &str);
    /// Called only for requests the rule's allow list admits.
    fn http(&mut self, request: &plain::HttpRequest) -> Result<plain::HttpResponse, HttpError>;
}

/// Engine settings shared by the precompiler and the embedded runtime; the
/// two must agree or the runtime refuses the artifact.
pub fn configure(config: &mut Config) {
    config
        .wasm_component_model(true)
        .consume_fuel(true)
        .signals_based_traps(false)
        .memory_reservation(0)
        .memory_guard_size(0)
        .memory_reservation_for_growth(0)
        .memory_init_cow(false)
        .gc_heap_reservation(0)
        .gc_heap_guard_size(0)
        // (Component-model async stays off: the `component-model-async`
        // cargo feature is enabled neither here nor in the host.)
        .concurrency_support(false)
        .max_wasm_stack(256 << 10);
}

pub use crate::failure::Failure;

/// A failed call: why, what it used up to the failure, and the rule's own
/// log lines (host `log` import) of the call, for the audit line.
#[derive(Debug)]
pub struct Failed {
    pub failure: Failure,
    pub fuel_used: u64,
    pub instantiate_us: u64,
    pub call_us: u64,
    pub logs: Vec<String>,
}

impl Failed {
    fn before_call(failure: Failure) -> Failed {
        Failed {
            failure,
            fuel_used: 0,
            instantiate_us: 0,
            call_us: 0,
            logs: Vec::new(),
        }
    }
}

/// A successful call.
#[derive(Debug)]
pub struct Outcome {
    pub commands: Vec<Command>,
    pub fuel_used: u64,
    /// Linear memory the rule's store held at the end, over all memories
    /// (what its `memory_bytes` cap limits).
    pub memory_bytes: usize,
    pub instantiate_us: u64,
    pub call_us: u64,
    /// The rule's own log lines of the call (host `log` import), for its
    /// execution log.
    pub logs: Vec<String>,
}

struct RuleState {
    limiter: Limiter,
    io: Box<dyn Io>,
    tenant: String,
    rule: String,
    allowed_hosts: Vec<String>,
    http_timeout_ms: u32,
    http_calls_left: u32,
    forbidden: Option<String>,
    /// The call's log lines (`level: message`), the last [`KEPT_LOGS`].
    logs: Vec<String>,
}

impl wit::Host for RuleState {}

fn level(l: wit::LogLevel) -> LogLevel {
    match l {
        wit::LogLevel::Debug => LogLevel::Debug,
        wit::LogLevel::Info => LogLevel::Info,
        wit::LogLevel::Warn => LogLevel::Warn,
        wit::LogLevel::Error => LogLevel::Error,
    }
}

const MAX_HOST_LOG: usize = 2000;
/// Log lines of a call kept for a failure's audit line, and their length.
const KEPT_LOGS: usize = 10;
const KEPT_LOG_CHARS: usize = 500;
const MAX_RANDOM: u32 = 1024;

impl host::Host for RuleState {
    fn log(&mut self, l: wit::LogLevel, message: String) {
        let message: String = message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_HOST_LOG)
            .collect();
        self.io.log(&self.tenant, &self.rule, level(l), &message);
        if self.logs.len() == KEPT_LOGS {
            self.logs.remove(0);
        }
        let kept: String = message.chars().take(KEPT_LOG_CHARS).collect();
        self.logs.push(format!("{}: {kept}", level(l).as_str()));
    }

    fn now_ms(&mut self) -> u64 {
        self.io.now_ms()
    }

    fn random_bytes(&mut self, len: u32) -> Vec<u8> {
        let mut buf = vec![0; len.min(MAX_RANDOM) as usize];
        self.io.random(&mut buf);
        buf
    }

    fn http_fetch(
        &mut self,
        req: host::HttpRequest,
    ) -> Result<host::HttpResponse, host::HttpError> {
        let request = plain::HttpRequest {
            method: req.method,
            url: req.url,
            headers: req.headers,
            body: req.body,
            timeout_ms: req.timeout_ms.clamp(1, self.http_timeout_ms),
        };
        self.fetch(request)
            .map(|r| host::HttpResponse {
                status: r.status,
                headers: r.headers,
                body: r.body,
            })
            .map_err(|e| match e {
                HttpError::ForbiddenHost(h) => host::HttpError::ForbiddenHost(h),
                HttpError::InvalidRequest(m) => host::HttpError::InvalidRequest(m),
                HttpError::Timeout => host::HttpError::Timeout,
                HttpError::Unreachable(m) => host::HttpError::Unreachable(m),
                HttpError::TooLarge => host::HttpError::TooLarge,
                HttpError::BudgetExhausted => host::HttpError::BudgetExhausted,
            })
    }
}

impl RuleState {
    fn fetch(&mut self, req: plain::HttpRequest) -> Result<plain::HttpResponse, HttpError> {
        if !matches!(
            req.method.as_str(),
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE"
        ) {
            return Err(HttpError::InvalidRequest(format!(
                "method {} is not allowed",
                req.method
            )));
        }
        let Some(origin) = crate::config::origin_of(&req.url) else {
            return Err(HttpError::InvalidRequest(
                "the URL must be an absolute http(s) URL".into(),
            ));
        };
        if !self.allowed_hosts.contains(&origin) {
            // Recorded: the sign-in fails even if the rule swallows the error.
            self.forbidden.get_or_insert(origin.clone());
            return Err(HttpError::ForbiddenHost(origin));
        }
        for (name, value) in &req.headers {
            let ok_name =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            let lower = name.to_ascii_lowercase();
            if !ok_name
                || value.bytes().any(|b| b < 0x20 && b != b'\t')
                || matches!(
                    lower.as_str(),
                    "host" | "content-length" | "transfer-encoding" | "connection"
                )
            {
                return Err(HttpError::InvalidRequest(format!(
                    "header `{name}` is not allowed"
                )));
            }
        }
        if req
            .body
            .as_ref()
            .is_some_and(|b| b.len() > plain::MAX_HTTP_BODY)
        {
            return Err(HttpError::InvalidRequest(
                "the body is larger than 64 KiB".into(),
            ));
        }
        if self.http_calls_left == 0 {
            return Err(HttpError::BudgetExhausted);
        }
        self.http_calls_left -= 1;
        self.io.http(&req)
    }
}

fn to_wit(e: &Event) -> wit::Event {
    let text = plain::json_text;
    wit::Event {
        tenant_id: e.tenant_id.clone(),
        rule_name: e.rule_name.clone(),
        config: text(&e.config),
        user: wit::User {
            sub: e.user.sub.clone(),
            email: e.user.email.clone(),
            email_verified: e.user.email_verified,
            name: e.user.name.clone(),
            picture: e.user.picture.clone(),
            groups: e.user.groups.clone(),
            identities: e
                .user
                .identities
                .iter()
                .map(|i| wit::LinkedIdentity {
                    connection: i.connection.clone(),
                    user_id: i.user_id.clone(),
                    profile: text(&i.profile),
                })
                .collect(),
            app_metadata: text(&e.user.app_metadata),
            user_metadata: text(&e.user.user_metadata),
        },
        connection: wit::Connection {
            id: e.connection.id.clone(),
            kind: match e.connection.kind {
                plain::ConnectionKind::Oidc => wit::ConnectionKind::Oidc,
                plain::ConnectionKind::Oauth2 => wit::ConnectionKind::Oauth2,
                plain::ConnectionKind::Saml => wit::ConnectionKind::Saml,
            },
            display_name: e.connection.display_name.clone(),
        },
        request: wit::RequestInfo {
            ip: e.request.ip.clone(),
            user_agent: e.request.user_agent.clone(),
            host: e.request.host.clone(),
            path: e.request.path.clone(),
            method: e.request.method.clone(),
            accepted_languages: e.request.accepted_languages.clone(),
        },
        transaction: wit::Transaction {
            first_login: e.transaction.first_login,
            login_count: e.transaction.login_count,
            return_url: e.transaction.return_url.clone(),
            correlation_id: e.transaction.correlation_id.clone(),
            reauthenticated: e.transaction.reauthenticated,
            resumed: e.transaction.resumed.clone(),
        },
        secrets: e
            .secrets
            .iter()
            .map(|(name, value)| wit::Secret {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
    }
}

fn from_wit(c: wit::Command) -> RawCommand {
    match c {
        wit::Command::Deny(r) => RawCommand::Deny(r),
        wit::Command::SetClaim(c) => RawCommand::SetClaim {
            name: c.name,
            value: c.value,
        },
        wit::Command::SetHeader(h) => RawCommand::SetHeader {
            name: h.name,
            value: h.value,
        },
        wit::Command::PatchAppMetadata(p) => RawCommand::PatchAppMetadata(p),
        wit::Command::PatchUserMetadata(p) => RawCommand::PatchUserMetadata(p),
        wit::Command::Redirect(r) => RawCommand::Redirect { url: r.url },
        wit::Command::RequireReauth(r) => RawCommand::RequireReauth {
            prompt_login: r.prompt_login,
            max_age: r.max_age,
        },
        wit::Command::Log(l) => RawCommand::Log {
            level: level(l.level),
            message: l.message,
        },
    }
}

fn classify(err: wasmtime::Error, state: &RuleState) -> Failure {
    if state.limiter.exceeded() {
        return Failure::Memory;
    }
    let trap = match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => return Failure::Fuel,
        Some(t) => t.to_string(),
        None => format!("{err}"),
    };
    // A rule built with the SDK logged why it panicked just before the trap.
    let messages = state
        .logs
        .iter()
        .filter_map(|l| l.split_once(": ").map(|(_, m)| m));
    crate::failure::trap(&trap, messages)
}

/// One engine and linker; a fresh store per call.
pub struct Runtime {
    engine: Engine,
    linker: Linker<RuleState>,
}

impl Runtime {
    /// The embedded runtime (no compiler): runs precompiled artifacts.
    pub fn new() -> Result<Runtime, String> {
        let mut config = Config::new();
        configure(&mut config);
        let engine = Engine::new(&config).map_err(|e| format!("rule engine: {e}"))?;
        Runtime::with_engine(engine)
    }

    /// With an engine the caller configured (the host's compiling engine).
    pub fn with_engine(engine: Engine) -> Result<Runtime, String> {
        let mut linker = Linker::new(&engine);
        PostLogin::add_to_linker::<RuleState, HasSelf<RuleState>>(&mut linker, |s| s)
            .map_err(|e| format!("rule linker: {e}"))?;
        Ok(Runtime { engine, linker })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Checks that `component` implements the `post-login` world and imports
    /// nothing but the rule interfaces (what instantiation would check, plus
    /// a clear list of anything extra).
    pub fn check(&self, component: &Component) -> Result<(), String> {
        let ty = component.component_type();
        let foreign: Vec<String> = ty
            .imports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .filter(|n| {
                !(n.starts_with("edgeauth:plugin/host@0.1.")
                    || n.starts_with("edgeauth:plugin/types@0.1."))
            })
            .collect();
        if foreign.iter().any(|n| n.starts_with("wasi:")) {
            // componentize-js output with its default features: the engine's
            // console, clocks, randomness and fetch come through WASI, which a
            // rule never gets (its clock, randomness and log are `host`'s).
            return Err(format!(
                "it imports {} (a rule may import only edgeauth:plugin/host). A Rust rule: build it for wasm32-unknown-unknown. A JavaScript rule: build it with componentize-js --disable stdio random clocks http fetch-event (plugins/README.md)",
                foreign.join(", ")
            ));
        }
        if !foreign.is_empty() {
            return Err(format!(
                "it imports {} (a rule may import only edgeauth:plugin/host; build it for wasm32-unknown-unknown so it has no WASI imports)",
                foreign.join(", ")
            ));
        }
        let pre = self
            .linker
            .instantiate_pre(component)
            .map_err(|e| format!("{e:#}"))?;
        bindings::PostLoginPre::new(pre).map_err(|e| {
            format!("it does not export edgeauth:plugin/rule@0.1.0 as the world says: {e:#}")
        })?;
        Ok(())
    }

    /// Loads a verified artifact's code.
    pub fn load(&self, artifact: &crate::artifact::Verified<'_>) -> Result<Component, Failure> {
        // SAFETY: the code is a precompiled component whose Ed25519 signature
        // under a key the operator trusts was just verified: only the
        // project's tooling produces those, from a validated component.
        unsafe { Component::deserialize(&self.engine, artifact.code) }
            .map_err(|e| Failure::Load(format!("{e}")))
    }

    /// Runs `component` once for `event` within `rule`'s budget.
    pub fn run(
        &self,
        component: &Component,
        rule: &RuleConfig,
        event: &Event,
        io: Box<dyn Io>,
    ) -> Result<Outcome, Failed> {
        let started = Instant::now();
        let state = RuleState {
            limiter: Limiter::new(rule.memory_bytes),
            io,
            tenant: event.tenant_id.clone(),
            rule: rule.name.clone(),
            allowed_hosts: rule.allowed_hosts.clone(),
            http_timeout_ms: rule.http_timeout_ms,
            http_calls_left: rule.http_calls,
            forbidden: None,
            logs: Vec::new(),
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store
            .set_fuel(rule.fuel)
            .map_err(|e| Failed::before_call(Failure::Load(format!("{e}"))))?;
        let instance = match PostLogin::instantiate(&mut store, component, &self.linker) {
            Ok(i) => i,
            Err(e) => {
                let failure = match classify(e, store.data()) {
                    Failure::Trap(t) => Failure::Load(t),
                    // Refused before the rule ran a line of its own: its
                    // memories' initial sizes do not fit the cap. Say so,
                    // with the figure to configure.
                    Failure::Memory => {
                        let (cap, asked) = store.data().limiter.refused();
                        Failure::MemoryAtStart { cap, asked }
                    }
                    other => other,
                };
                return Err(Failed {
                    failure,
                    fuel_used: rule.fuel - store.get_fuel().unwrap_or(0),
                    instantiate_us: started.elapsed().as_micros() as u64,
                    call_us: 0,
                    logs: std::mem::take(&mut store.data_mut().logs),
                });
            }
        };
        let instantiated = Instant::now();
        let input = to_wit(event);
        let result = instance
            .edgeauth_plugin_rule()
            .call_on_login(&mut store, &input);
        let call_us = instantiated.elapsed().as_micros() as u64;
        let fuel_used = rule.fuel - store.get_fuel().unwrap_or(0);
        let instantiate_us = (instantiated - started).as_micros() as u64;
        // What it used up to the failure, whatever the failure.
        let failed = |failure: Failure, state: &mut RuleState| Failed {
            failure,
            fuel_used,
            instantiate_us,
            call_us,
            logs: std::mem::take(&mut state.logs),
        };
        let returned = match result {
            Ok(r) => r,
            Err(e) => {
                let failure = classify(e, store.data());
                return Err(failed(failure, store.data_mut()));
            }
        };
        if let Some(h) = store.data().forbidden.clone() {
            return Err(failed(Failure::ForbiddenHost(h), store.data_mut()));
        }
        let raw = match returned {
            Ok(raw) => raw,
            Err(e) => {
                let failure = Failure::Error(e.chars().take(500).collect());
                return Err(failed(failure, store.data_mut()));
            }
        };
        let commands = match command::validate(raw.into_iter().map(from_wit).collect(), rule) {
            Ok(c) => c,
            Err(e) => return Err(failed(Failure::Output(e), store.data_mut())),
        };
        Ok(Outcome {
            commands,
            fuel_used,
            memory_bytes: store.data().limiter.in_use(),
            instantiate_us,
            call_us,
            logs: std::mem::take(&mut store.data_mut().logs),
        })
    }
}
