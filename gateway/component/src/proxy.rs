//! Streams a request to the origin and its answer back, without buffering
//! either body whole.

use edgeauth_core::access::Forward;
use edgeauth_core::forward::keep_response_header;
use edgeauth_core::pages;
use edgeauth_core::settings::Settings;
use http::request::Parts;
use spin_sdk::http::{
    Fields, IncomingRequest, Method, OutgoingRequest, OutgoingResponse, ResponseOutparam, Scheme,
};

use futures::SinkExt;

use crate::io::{pipe, respond, send_with_timeouts};

const ORIGIN_CONNECT_TIMEOUT_NS: u64 = 5_000_000_000;

fn method(m: &http::Method) -> Method {
    match *m {
        http::Method::GET => Method::Get,
        http::Method::POST => Method::Post,
        http::Method::PUT => Method::Put,
        http::Method::DELETE => Method::Delete,
        http::Method::PATCH => Method::Patch,
        http::Method::HEAD => Method::Head,
        http::Method::OPTIONS => Method::Options,
        http::Method::CONNECT => Method::Connect,
        http::Method::TRACE => Method::Trace,
        ref other => Method::Other(other.as_str().to_owned()),
    }
}

pub async fn forward(
    settings: &Settings,
    req: IncomingRequest,
    parts: &Parts,
    plan: Forward,
    out: ResponseOutparam,
) {
    let json = edgeauth_core::pages::wants_json(parts);
    let entries: Vec<(String, Vec<u8>)> = plan
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    let Ok(headers) = Fields::from_list(&entries) else {
        return respond(
            out,
            pages::error(
                http::StatusCode::BAD_REQUEST,
                "Bad request",
                "A request header cannot be forwarded.",
                json,
            ),
        )
        .await;
    };
    let outgoing = OutgoingRequest::new(headers);
    let scheme = match plan.uri.scheme_str() {
        Some("https") => Scheme::Https,
        _ => Scheme::Http,
    };
    let set = outgoing.set_method(&method(&parts.method)).is_ok()
        && outgoing.set_scheme(Some(&scheme)).is_ok()
        && outgoing
            .set_authority(plan.uri.authority().map(|a| a.as_str()))
            .is_ok()
        && outgoing
            .set_path_with_query(plan.uri.path_and_query().map(|p| p.as_str()))
            .is_ok();
    if !set {
        return respond(
            out,
            pages::error(
                http::StatusCode::BAD_REQUEST,
                "Bad request",
                "The request cannot be forwarded.",
                json,
            ),
        )
        .await;
    }

    let request_body = outgoing.take_body();
    let upload = pipe(req.into_body_stream(), request_body);
    let send = send_with_timeouts(
        outgoing,
        ORIGIN_CONNECT_TIMEOUT_NS,
        settings.origin_timeout_secs.saturating_mul(1_000_000_000),
    );
    // The origin may answer before or after reading the whole body; drive both.
    let (sent, uploaded) = futures::join!(send, upload);
    let response = match sent {
        Ok(r) => r,
        Err(e) => return respond(out, pages::origin_unavailable(&e.to_string(), json)).await,
    };
    if let Err(e) = uploaded {
        eprintln!("edgeauth: request body not fully forwarded: {e}");
    }

    let mut kept: Vec<(String, Vec<u8>)> = response
        .headers()
        .entries()
        .into_iter()
        .filter(|(name, value)| keep_response_header(name, value))
        .collect();
    // The session cookie re-issued for the idle clock or a refresh.
    if let Some(cookie) = &plan.set_cookie {
        kept.push(("set-cookie".into(), cookie.as_bytes().to_vec()));
    }
    let outgoing_response =
        OutgoingResponse::new(Fields::from_list(&kept).unwrap_or_else(|_| Fields::new()));
    let _ = outgoing_response.set_status_code(response.status());
    let mut response_body = outgoing_response.take_body();
    let mut origin_body = response.take_body_stream();
    // The body goes out with the head, not after it: Spin does not set
    // TCP_NODELAY, and a head sent alone holds a small body back until the
    // client's delayed ACK, 40 ms (see io::respond). So a body the origin
    // announced as small (Content-Length up to FIRST_PART_MAX) is read
    // whole before the response is handed over, as a buffering proxy
    // would; of any other, what has already arrived. A streaming answer
    // (no length) never has its head held for its body.
    let small = response
        .headers()
        .get("content-length")
        .first()
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok())
        .filter(|n| *n <= FIRST_PART_MAX);
    let first = match small {
        Some(length) => read_up_to(&mut origin_body, length).await,
        None => ready_now(&mut origin_body),
    };
    if !first.bytes.is_empty() && response_body.send(first.bytes).await.is_err() {
        eprintln!("edgeauth: response body cut short: client gone");
    }
    if first.ended {
        drop(response_body);
        out.set(outgoing_response);
        return;
    }
    out.set(outgoing_response);
    if let Some(e) = first.error {
        eprintln!("edgeauth: response body cut short: read: {e:?}");
        return;
    }
    if let Err(e) = pipe(origin_body, response_body).await {
        eprintln!("edgeauth: response body cut short: {e}");
    }
}

/// The largest part of the origin's body written before the response is
/// handed over: one write, well within what wasi:http hosts buffer
/// without a reader (io::WHOLE_RESPONSE_MAX).
const FIRST_PART_MAX: usize = 64 * 1024;

/// What a body stream yields without waiting.
struct ReadyNow<E> {
    bytes: Vec<u8>,
    /// The stream ended (all of the body is in `bytes`).
    ended: bool,
    error: Option<E>,
}

/// Reads until `length` bytes came or the body ended (a HEAD answer's
/// never comes).
async fn read_up_to<S, E>(stream: &mut S, length: usize) -> ReadyNow<E>
where
    S: futures::Stream<Item = Result<Vec<u8>, E>> + Unpin,
{
    use futures::StreamExt;
    let mut ready = ReadyNow {
        bytes: Vec::new(),
        ended: false,
        error: None,
    };
    while ready.bytes.len() < length {
        match stream.next().await {
            Some(Ok(chunk)) => ready.bytes.extend_from_slice(&chunk),
            Some(Err(e)) => {
                ready.error = Some(e);
                break;
            }
            None => {
                ready.ended = true;
                break;
            }
        }
    }
    ready
}

fn ready_now<S, E>(stream: &mut S) -> ReadyNow<E>
where
    S: futures::Stream<Item = Result<Vec<u8>, E>> + Unpin,
{
    use futures::{FutureExt, StreamExt};
    let mut ready = ReadyNow {
        bytes: Vec::new(),
        ended: false,
        error: None,
    };
    while ready.bytes.len() < FIRST_PART_MAX {
        match stream.next().now_or_never() {
            Some(Some(Ok(chunk))) => ready.bytes.extend_from_slice(&chunk),
            Some(Some(Err(e))) => {
                ready.error = Some(e);
                break;
            }
            Some(None) => {
                ready.ended = true;
                break;
            }
            None => break,
        }
    }
    ready
}
