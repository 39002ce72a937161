//! Native stand-ins for the host functions, so rules are unit-tested with
//! plain `cargo test`: a settable clock, a scripted HTTP responder that
//! records requests, and captured log lines (state is per test thread); and
//! [`run`], which checks a rule's output with the gateway's own validation
//! (`edgeauth-contract`), so a test fails where a sign-in would.

use std::cell::RefCell;

use edgeauth_contract::command::RawCommand;
use edgeauth_contract::{names, validate};

use crate::host::{HttpError, HttpRequest, HttpResponse};
use crate::{Command, Commands, Level, Login};

type Responder = Box<dyn FnMut(&HttpRequest) -> Result<HttpResponse, HttpError>>;

thread_local! {
    static NOW: RefCell<u64> = const { RefCell::new(1_800_000_000_000) };
    static HTTP: RefCell<Option<Responder>> = const { RefCell::new(None) };
    static SENT: RefCell<Vec<HttpRequest>> = const { RefCell::new(Vec::new()) };
    static LOGS: RefCell<Vec<(Level, String)>> = const { RefCell::new(Vec::new()) };
}

pub fn set_now_ms(ms: u64) {
    NOW.with(|n| *n.borrow_mut() = ms);
}

pub fn now_ms() -> u64 {
    NOW.with(|n| *n.borrow())
}

/// Answers every outbound call of this thread with `f`.
pub fn on_http(f: impl FnMut(&HttpRequest) -> Result<HttpResponse, HttpError> + 'static) {
    HTTP.with(|h| *h.borrow_mut() = Some(Box::new(f)));
}

/// Requests made so far on this thread.
pub fn sent() -> Vec<HttpRequest> {
    SENT.with(|s| s.borrow().clone())
}

/// Log lines so far on this thread.
pub fn logs() -> Vec<(Level, String)> {
    LOGS.with(|l| l.borrow().clone())
}

pub(crate) fn record_log(level: Level, message: &str) {
    LOGS.with(|l| l.borrow_mut().push((level, message.to_owned())));
}

pub(crate) fn fetch(req: &HttpRequest) -> Result<HttpResponse, HttpError> {
    SENT.with(|s| s.borrow_mut().push(req.clone()));
    HTTP.with(|h| match h.borrow_mut().as_mut() {
        Some(f) => f(req),
        None => Err(HttpError::Unreachable(
            "no HTTP responder in this test".into(),
        )),
    })
}

/// A 200 response with `body`.
pub fn ok(body: &str) -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![],
        body: body.as_bytes().to_vec(),
    }
}

/// What the tenant's configuration grants the rule under test: the origin
/// headers it may set, the origins it may redirect to, its output cap.
/// Names are checked as the gateway checks its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    headers: Vec<String>,
    allowed_hosts: Vec<String>,
    output_bytes: usize,
}

impl Default for Grant {
    fn default() -> Grant {
        Grant {
            headers: Vec::new(),
            allowed_hosts: Vec::new(),
            output_bytes: edgeauth_contract::DEFAULT_OUTPUT_BYTES,
        }
    }
}

impl Grant {
    /// Nothing granted, the default output cap (64 KiB).
    pub fn new() -> Grant {
        Grant::default()
    }

    /// An origin header the rule may set (the rule entry's `headers`).
    /// Panics for a name the gateway refuses in its configuration.
    #[track_caller]
    pub fn header(mut self, name: &str) -> Grant {
        let lower = name.to_ascii_lowercase();
        assert!(
            names::header_token(&lower) && !names::reserved_header(&lower),
            "the gateway refuses a rule entry granting header `{name}` (not a header name, or reserved for HTTP or identity)"
        );
        self.headers.push(lower);
        self
    }

    /// An origin the rule may call and redirect to (`allowed_hosts`).
    /// Panics for anything but `scheme://host[:port]`.
    #[track_caller]
    pub fn allowed_host(mut self, origin: &str) -> Grant {
        match validate::origin_of(origin) {
            Some(o) => self.allowed_hosts.push(o),
            None => panic!("the gateway refuses allowed host `{origin}`: use scheme://host[:port]"),
        }
        self
    }

    /// The rule entry's `output_bytes`.
    pub fn output_bytes(mut self, bytes: usize) -> Grant {
        self.output_bytes = bytes;
        self
    }
}

/// Why [`run`] did not produce commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The rule returned `Err` (the gateway fails the sign-in).
    Rule(String),
    /// The gateway would refuse what the rule returned (and fail the sign-in).
    Refused(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Rule(e) => write!(f, "the rule returned an error: {e}"),
            Failure::Refused(e) => write!(f, "the gateway would refuse the rule's output: {e}"),
        }
    }
}

/// Runs `rule` on `login` and hands its commands through the WIT form and
/// the gateway's own validation, as a sign-in would: the commands the
/// gateway would apply, or why it would fail the sign-in.
pub fn run(
    rule: fn(&Login) -> Result<Commands, String>,
    login: &Login,
    grant: &Grant,
) -> Result<Vec<Command>, Failure> {
    let out = rule(login).map_err(Failure::Rule)?;
    let raw: Vec<RawCommand> = out.0.into_iter().map(RawCommand::from).collect();
    validate::validate(
        raw,
        &validate::Grant {
            headers: &grant.headers,
            allowed_hosts: &grant.allowed_hosts,
            output_bytes: grant.output_bytes,
        },
    )
    .map_err(Failure::Refused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    fn sets_header(login: &Login) -> Result<Commands, String> {
        let name: String =
            login.config::<std::collections::BTreeMap<String, String>>()?["header"].clone();
        let mut out = Commands::new();
        out.header(name, "admin");
        Ok(out)
    }

    #[test]
    fn granted_commands_pass_as_the_gateway_would_apply_them() {
        let login = Login::from_json(json!({"config": {"header": "X-Roles"}}));
        let out = run(sets_header, &login, &Grant::new().header("x-roles")).unwrap();
        assert_eq!(
            out,
            [Command::SetHeader {
                name: "x-roles".into(),
                value: "admin".into()
            }]
        );
    }

    #[test]
    fn what_the_gateway_refuses_fails_the_test_helper() {
        let login = Login::from_json(json!({"config": {"header": "X-Forwarded-User"}}));
        let e = run(sets_header, &login, &Grant::new().header("x-roles")).unwrap_err();
        assert!(
            matches!(&e, Failure::Refused(m) if m.contains("X-Forwarded-User")),
            "{e}"
        );
        fn bad_claim(_: &Login) -> Result<Commands, String> {
            let mut out = Commands::new();
            out.claim("email", "admin@example.com");
            Ok(out)
        }
        let e = run(bad_claim, &Login::default(), &Grant::new()).unwrap_err();
        assert!(
            matches!(&e, Failure::Refused(m) if m.contains("registered")),
            "{e}"
        );
    }

    #[test]
    #[should_panic(expected = "refuses a rule entry granting header `X-Forwarded-User`")]
    fn granting_a_reserved_header_is_refused_like_the_gateways_configuration() {
        let _ = Grant::new().header("X-Forwarded-User");
    }
}
