//! What the gateway offers a rule: logging, the clock, randomness and
//! outbound HTTP to the hosts the tenant allowed. In native unit tests these
//! are served by [`crate::testing`].

use crate::Level;

pub use edgeauth_contract::http::{HttpError, HttpRequest, HttpResponse, MAX_HTTP_BODY};

/// Logs a line now (also when the rule fails later).
pub fn log(level: Level, message: &str) {
    #[cfg(target_family = "wasm")]
    crate::bindings::edgeauth::plugin::host::log(crate::wire::level(level), message);
    #[cfg(not(target_family = "wasm"))]
    crate::testing::record_log(level, message);
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    #[cfg(target_family = "wasm")]
    return crate::bindings::edgeauth::plugin::host::now_ms();
    #[cfg(not(target_family = "wasm"))]
    return crate::testing::now_ms();
}

/// Secure random bytes (at most 1024).
pub fn random_bytes(len: u32) -> Vec<u8> {
    #[cfg(target_family = "wasm")]
    return crate::bindings::edgeauth::plugin::host::random_bytes(len);
    #[cfg(not(target_family = "wasm"))]
    return vec![4; len.min(1024) as usize];
}

/// An outbound call; the gateway checks the URL's origin against the rule's
/// allow list and caps `timeout_ms`.
pub fn fetch(request: &HttpRequest) -> Result<HttpResponse, HttpError> {
    #[cfg(target_family = "wasm")]
    return crate::wire::http_result(crate::bindings::edgeauth::plugin::host::http_fetch(
        &crate::wire::http_request(request),
    ));
    #[cfg(not(target_family = "wasm"))]
    return crate::testing::fetch(request);
}

/// `POST url` with a JSON body.
pub fn post_json(
    url: &str,
    body: &serde_json::Value,
    headers: &[(&str, &str)],
    timeout_ms: u32,
) -> Result<HttpResponse, HttpError> {
    let mut h: Vec<(String, String)> = vec![("content-type".into(), "application/json".into())];
    h.extend(
        headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    fetch(&HttpRequest {
        method: "POST".into(),
        url: url.into(),
        headers: h,
        body: Some(body.to_string().into_bytes()),
        timeout_ms,
    })
}
