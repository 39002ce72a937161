//! Responses the gateway writes itself: short pages a person can act on, or
//! JSON for API clients. Never a token or secret in them.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::request::Parts;
use http::{HeaderValue, StatusCode};

use crate::Response;

/// API clients get JSON errors: they asked for JSON and did not ask for HTML.
pub fn wants_json(parts: &Parts) -> bool {
    let accept = parts
        .headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase();
    accept.contains("application/json") && !accept.contains("text/html")
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn base(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response {
    let mut resp = http::Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    resp
}

fn html_page(title: &str, body_html: &str) -> Vec<u8> {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{t}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}}\
         h1{{font-size:1.4em}}</style></head><body><h1>{t}</h1>{body_html}</body></html>",
        t = escape(title)
    )
    .into_bytes()
}

/// An error page (or `{"error": .., "message": ..}` for API clients).
pub fn error(status: StatusCode, title: &str, detail: &str, json: bool) -> Response {
    if json {
        let body = serde_json::json!({
            "error": title.to_ascii_lowercase().replace(' ', "_"),
            "message": detail,
        });
        return base(status, "application/json", body.to_string().into_bytes());
    }
    base(
        status,
        "text/html; charset=utf-8",
        html_page(title, &format!("<p>{}</p>", escape(detail))),
    )
}

/// An error page with a link to start again.
pub fn error_with_link(
    status: StatusCode,
    title: &str,
    detail: &str,
    href: &str,
    label: &str,
) -> Response {
    base(
        status,
        "text/html; charset=utf-8",
        html_page(
            title,
            &format!(
                "<p>{}</p><p><a href=\"{}\">{}</a></p>",
                escape(detail),
                escape(href),
                escape(label)
            ),
        ),
    )
}

pub fn info(title: &str, detail: &str, href: &str, label: &str) -> Response {
    error_with_link(StatusCode::OK, title, detail, href, label)
}

pub fn json(status: StatusCode, body: String) -> Response {
    base(status, "application/json", body.into_bytes())
}

pub fn text(status: StatusCode, body: &str) -> Response {
    base(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

/// 302 with an empty body.
pub fn redirect(location: &str) -> Response {
    let mut resp = base(StatusCode::FOUND, "text/plain; charset=utf-8", Vec::new());
    match HeaderValue::from_str(location) {
        Ok(v) => {
            resp.headers_mut().insert(LOCATION, v);
            resp
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Redirect failed",
            "The redirect target is not a valid header value.",
            false,
        ),
    }
}

pub fn add_cookie(resp: &mut Response, set_cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(set_cookie) {
        resp.headers_mut().append(SET_COOKIE, v);
    }
}

/// With tenants configured, the request's host is none of theirs.
pub fn unknown_host(host: &str, json: bool) -> Response {
    let shown: String = host.chars().take(100).collect();
    error(
        StatusCode::NOT_FOUND,
        "Unknown host",
        &format!("This gateway serves no site at `{shown}`. Check the address you opened."),
        json,
    )
}

/// The gateway cannot serve because its configuration is invalid.
pub fn misconfigured(problem: &str) -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Gateway misconfigured",
        &format!("The gateway refuses to serve until its configuration is fixed: {problem}."),
        false,
    )
}

/// The identity provider could not be used; `detail` says how.
pub fn idp_unavailable(detail: &str, json: bool) -> Response {
    error(
        StatusCode::BAD_GATEWAY,
        "Sign-in is unavailable",
        &format!("The identity provider could not be used: {detail}. Try again in a moment."),
        json,
    )
}

pub fn origin_unavailable(json: bool) -> Response {
    error(
        StatusCode::BAD_GATEWAY,
        "Application unavailable",
        "The application behind this gateway did not answer. Try again in a moment.",
        json,
    )
}

pub fn storage_unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "Sign-in is unavailable",
        "The gateway's key-value store is not available, so sign-in cannot be completed safely.",
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_negotiates() {
        let r = error(StatusCode::FORBIDDEN, "No <b>", "x\"<script>", false);
        let body = String::from_utf8(r.body().clone()).unwrap();
        assert!(!body.contains("<script>"));
        assert!(body.contains("&lt;script&gt;"));
        assert_eq!(r.headers()["cache-control"], "no-store");
        let (parts, ()) = http::Request::get("/")
            .header("accept", "application/json")
            .body(())
            .unwrap()
            .into_parts();
        assert!(wants_json(&parts));
        let (parts, ()) = http::Request::get("/")
            .header("accept", "text/html,application/json;q=0.9")
            .body(())
            .unwrap()
            .into_parts();
        assert!(!wants_json(&parts));
    }
}
