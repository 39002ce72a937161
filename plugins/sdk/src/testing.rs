//! Native stand-ins for the host functions, so rules are unit-tested with
//! plain `cargo test`: a settable clock, a scripted HTTP responder that
//! records requests, and captured log lines. State is per test thread.

use std::cell::RefCell;

use crate::Level;
use crate::host::{HttpError, HttpRequest, HttpResponse};

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
