//! A rule's outbound HTTP call, made synchronously (a rule's host call cannot
//! await) with wasi:http and blocking polls. The rule's allow list was
//! checked by the runtime before this; the platform's own allow list
//! (`allowed_outbound_hosts`) still applies. Time is bounded by the
//! request's connect, first-byte and between-bytes timeouts, the body by
//! [`MAX_HTTP_BODY`].

use edgeauth_rules::event::{HttpError, HttpRequest, HttpResponse, MAX_HTTP_BODY};
use spin_sdk::http::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::RequestOptions;

fn invalid(e: impl std::fmt::Display) -> HttpError {
    HttpError::InvalidRequest(e.to_string())
}

fn classify(e: ErrorCode) -> HttpError {
    match e {
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout => HttpError::Timeout,
        ErrorCode::HttpRequestDenied => HttpError::Unreachable(
            "the platform's allowed_outbound_hosts does not include this host".into(),
        ),
        other => HttpError::Unreachable(format!("{other:?}")),
    }
}

pub fn send(req: &HttpRequest) -> Result<HttpResponse, HttpError> {
    let uri: http::Uri = req.url.parse().map_err(invalid)?;
    let scheme = match uri.scheme_str() {
        Some("https") => Scheme::Https,
        Some("http") => Scheme::Http,
        _ => return Err(invalid("only http and https URLs")),
    };
    let method = match req.method.as_str() {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        other => return Err(invalid(format!("method {other}"))),
    };
    let entries: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_bytes().to_vec()))
        .collect();
    let fields = Fields::from_list(&entries).map_err(|e| invalid(format!("{e:?}")))?;
    let out = OutgoingRequest::new(fields);
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .ok_or_else(|| invalid("no host"))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    if out.set_method(&method).is_err()
        || out.set_scheme(Some(&scheme)).is_err()
        || out.set_authority(Some(&authority)).is_err()
        || out.set_path_with_query(Some(&path)).is_err()
    {
        return Err(invalid("the URL cannot be sent"));
    }
    let body = out.body().map_err(|()| invalid("no request body"))?;
    let timeout_ns = u64::from(req.timeout_ms.max(1)) * 1_000_000;
    let options = RequestOptions::new();
    let _ = options.set_connect_timeout(Some(timeout_ns));
    let _ = options.set_first_byte_timeout(Some(timeout_ns));
    let _ = options.set_between_bytes_timeout(Some(timeout_ns));
    let pending = outgoing_handler::handle(out, Some(options)).map_err(classify)?;
    if let Some(bytes) = &req.body {
        let stream = body
            .write()
            .map_err(|()| invalid("cannot write the request body"))?;
        for chunk in bytes.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| HttpError::Unreachable(format!("writing the body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(classify)?;
    pending.subscribe().block();
    let resp = match pending.get() {
        Some(Ok(Ok(r))) => r,
        Some(Ok(Err(e))) => return Err(classify(e)),
        _ => return Err(HttpError::Unreachable("no response".into())),
    };
    let status = resp.status();
    let headers = resp
        .headers()
        .entries()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let incoming = resp
        .consume()
        .map_err(|()| HttpError::Unreachable("no response body".into()))?;
    let stream = incoming
        .stream()
        .map_err(|()| HttpError::Unreachable("no response body".into()))?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(16 * 1024) {
            Ok(chunk) => {
                if out.len() + chunk.len() > MAX_HTTP_BODY {
                    return Err(HttpError::TooLarge);
                }
                out.extend_from_slice(&chunk);
            }
            Err(wasi::io::streams::StreamError::Closed) => break,
            Err(e) => return Err(HttpError::Unreachable(format!("reading the body: {e:?}"))),
        }
    }
    Ok(HttpResponse {
        status,
        headers,
        body: out,
    })
}
