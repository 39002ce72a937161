//! Responses the gateway writes itself: short pages a person can act on, or
//! JSON for API clients. Never a token or secret in them.
//!
//! Failures inside the gateway (configuration, the IdP, storage, the origin,
//! a token that does not verify) are [`problem`] pages: the page names the
//! class of problem and a reference, the detail (file paths, the IdP's own
//! error text, raw failure messages) is kept in a [`Problem`] extension of the
//! response for the log. The component calls [`finish`] on every response on
//! its way out: it draws the reference, renders it into the page and returns
//! the one log line that carries the same reference with the detail.

use http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use http::request::Parts;
use http::{HeaderValue, StatusCode};

use crate::{Response, Rng};

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

/// The private side of a [`problem`] page, in the response's extensions until
/// [`finish`] turns it into a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// What kind of problem, as a word: `idp_unavailable`, `misconfigured`, ...
    /// Shown (it is no detail) and logged.
    pub class: &'static str,
    /// What exactly went wrong, for the operator: logged, never shown.
    pub detail: String,
    public: PublicPage,
}

/// What a [`problem`] page says, kept to render it again with its reference.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PublicPage {
    title: String,
    message: String,
    link: Option<(String, String)>,
    json: bool,
}

/// A page for a failure inside the gateway: `title` and `message` say what
/// kind of problem it is and what the person can do, `detail` is logged only.
pub fn problem(
    status: StatusCode,
    class: &'static str,
    title: &str,
    message: &str,
    detail: &str,
    json: bool,
) -> Response {
    problem_page(status, class, title, message, None, detail, json)
}

/// [`problem`] with a link to start again (never JSON: a browser's sign-in).
pub fn problem_with_link(
    status: StatusCode,
    class: &'static str,
    (title, message): (&str, &str),
    (href, label): (&str, &str),
    detail: &str,
) -> Response {
    let link = Some((href.to_owned(), label.to_owned()));
    problem_page(status, class, title, message, link, detail, false)
}

fn problem_page(
    status: StatusCode,
    class: &'static str,
    title: &str,
    message: &str,
    link: Option<(String, String)>,
    detail: &str,
    json: bool,
) -> Response {
    let public = PublicPage {
        title: title.to_owned(),
        message: message.to_owned(),
        link,
        json,
    };
    let mut resp = render_problem(status, class, &public, None);
    resp.extensions_mut().insert(Problem {
        class,
        detail: detail.to_owned(),
        public,
    });
    resp
}

fn render_problem(
    status: StatusCode,
    class: &str,
    page: &PublicPage,
    reference: Option<&str>,
) -> Response {
    if page.json {
        let mut body = serde_json::json!({ "error": class, "message": page.message });
        if let Some(r) = reference {
            body["reference"] = r.into();
        }
        return base(status, "application/json", body.to_string().into_bytes());
    }
    let mut html = format!("<p>{}</p>", escape(&page.message));
    if let Some(r) = reference {
        html.push_str(&format!(
            "<p>If this persists, tell the site's administrator: reference {}.</p>",
            escape(r)
        ));
    }
    if let Some((href, label)) = &page.link {
        html.push_str(&format!(
            "<p><a href=\"{}\">{}</a></p>",
            escape(href),
            escape(label)
        ));
    }
    base(
        status,
        "text/html; charset=utf-8",
        html_page(&page.title, &html),
    )
}

/// Bytes of randomness in a reference: unguessable, and short enough to read
/// out over the phone.
const REFERENCE_BYTES: usize = 8;

/// Every response goes through here on its way out. A [`problem`] page gets a
/// fresh reference drawn from `rng` and rendered into it; the returned log
/// line (one line, newline included) carries the same reference, the class
/// and the detail. Other responses pass unchanged, with no line.
pub fn finish(mut resp: Response, rng: Rng<'_>) -> (Response, Option<String>) {
    let Some(problem) = resp.extensions_mut().remove::<Problem>() else {
        return (resp, None);
    };
    let mut raw = [0u8; REFERENCE_BYTES];
    rng(&mut raw);
    let reference: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let (parts, _) = resp.into_parts();
    let mut page = render_problem(
        parts.status,
        problem.class,
        &problem.public,
        Some(&reference),
    );
    // Headers set after the page was made (cookies being cleared) stay.
    *page.headers_mut() = parts.headers;
    let line = format!(
        "edgeauth: error {reference} {}: {}\n",
        problem.class,
        one_line(&problem.detail)
    );
    (page, Some(line))
}

/// The detail can hold text from elsewhere (an IdP's answer): control
/// characters are escaped so it stays one line and cannot forge other lines.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
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

/// The gateway cannot serve because its configuration is invalid; `problem`
/// (which variable, which file) is logged only.
pub fn misconfigured(problem: &str) -> Response {
    self::problem(
        StatusCode::INTERNAL_SERVER_ERROR,
        "misconfigured",
        "Gateway misconfigured",
        "The gateway refuses to serve until its configuration is fixed.",
        problem,
        false,
    )
}

/// The identity provider could not be used; `detail` (which endpoint, how it
/// failed) is logged only.
pub fn idp_unavailable(detail: &str, json: bool) -> Response {
    problem(
        StatusCode::BAD_GATEWAY,
        "idp_unavailable",
        "Sign-in is unavailable",
        "The identity provider could not be used. Try again in a moment.",
        &format!("the identity provider could not be used: {detail}"),
        json,
    )
}

/// The origin did not answer usably; `detail` is logged only.
pub fn origin_unavailable(detail: &str, json: bool) -> Response {
    problem(
        StatusCode::BAD_GATEWAY,
        "origin_unavailable",
        "Application unavailable",
        "The application behind this gateway did not answer. Try again in a moment.",
        &format!("origin unavailable: {detail}"),
        json,
    )
}

pub fn storage_unavailable() -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        "Sign-in is unavailable",
        "The gateway's key-value store is not available, so sign-in cannot be completed safely.",
        "the key-value store could not be opened or used",
        false,
    )
}

/// The sign-in chooser: one button per connection, in the tenant's order,
/// and an email field for home-realm discovery. Plain forms (GET to the
/// login endpoint), so it works without JavaScript; `return_to` is already
/// validated and is carried through as `rd`.
pub fn chooser(
    settings: &crate::settings::Settings,
    return_to: &str,
    notice: Option<crate::login::ChooserNotice>,
) -> Response {
    use crate::login::ChooserNotice;
    let rd = escape(return_to);
    let action = crate::routes::LOGIN;
    let (status, message) = match &notice {
        None => (StatusCode::OK, None),
        Some(ChooserNotice::UnknownConnection) => (
            StatusCode::BAD_REQUEST,
            Some("That sign-in option does not exist here. Choose one below.".to_owned()),
        ),
        Some(ChooserNotice::NoConnectionForDomain(d)) => (
            StatusCode::OK,
            Some(format!(
                "No single sign-in is set up for {d}; choose how to sign in."
            )),
        ),
        Some(ChooserNotice::NotAnEmail) => (
            StatusCode::BAD_REQUEST,
            Some("That is not an email address. Enter your work email or choose below.".into()),
        ),
    };
    let mut body = String::new();
    if let Some(m) = message {
        body.push_str(&format!("<p role=\"alert\">{}</p>", escape(&m)));
    }
    for c in &settings.connections {
        body.push_str(&format!(
            "<form method=\"get\" action=\"{action}\"><input type=\"hidden\" name=\"rd\" value=\"{rd}\">\
             <input type=\"hidden\" name=\"connection\" value=\"{id}\">\
             <button type=\"submit\">Continue with {name}</button></form>",
            id = escape(&c.id),
            name = escape(&c.name),
        ));
    }
    if settings
        .connections
        .iter()
        .any(|c| !c.email_domains.is_empty())
    {
        body.push_str(&format!(
            "<form method=\"get\" action=\"{action}\"><input type=\"hidden\" name=\"rd\" value=\"{rd}\">\
             <label for=\"email\">Work email</label> <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\">\
             <button type=\"submit\">Continue</button></form>"
        ));
    }
    base(
        status,
        "text/html; charset=utf-8",
        html_page(&format!("Sign in to {}", settings.display_name()), &body),
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
    fn body(r: &Response) -> String {
        String::from_utf8(r.body().clone()).unwrap()
    }

    /// Hex reference the log line names, found in a rendered page.
    fn reference_in(page: &str) -> String {
        let at = page.find("reference ").expect("page names a reference") + "reference ".len();
        page[at..at + 16].to_owned()
    }

    #[test]
    fn problem_pages_name_the_class_and_keep_the_detail_for_the_log() {
        let detail = "variable `session_keys`: /etc/edgeauth/keys.txt: No such file";
        let page = misconfigured(detail);
        assert_eq!(page.status(), 500);
        assert!(!body(&page).contains("keys.txt"));
        assert_eq!(page.extensions().get::<Problem>().unwrap().detail, detail);

        let mut rng = crate::testutil::counter_rng();
        let (page, line) = finish(page, &mut rng);
        let html = body(&page);
        assert!(html.contains("Gateway misconfigured"), "{html}");
        assert!(
            !html.contains("keys.txt") && !html.contains("session_keys"),
            "{html}"
        );
        let reference = reference_in(&html);
        assert!(
            reference.bytes().all(|b| b.is_ascii_hexdigit()),
            "{reference}"
        );
        assert_eq!(
            line.unwrap(),
            format!("edgeauth: error {reference} misconfigured: {detail}\n")
        );
        assert!(page.extensions().get::<Problem>().is_none());
        assert_eq!(page.headers()["cache-control"], "no-store");
    }

    #[test]
    fn each_finish_draws_a_new_reference() {
        let mut rng = crate::testutil::counter_rng();
        let (a, _) = finish(storage_unavailable(), &mut rng);
        let (b, _) = finish(storage_unavailable(), &mut rng);
        assert_ne!(reference_in(&body(&a)), reference_in(&body(&b)));
    }

    #[test]
    fn json_problems_carry_class_message_and_reference_only() {
        let page = idp_unavailable(
            "its token endpoint: connection refused (os error 111)",
            true,
        );
        let mut rng = crate::testutil::counter_rng();
        let (page, line) = finish(page, &mut rng);
        let json: serde_json::Value = serde_json::from_slice(page.body()).unwrap();
        assert_eq!(page.status(), 502);
        assert_eq!(json["error"], "idp_unavailable");
        let reference = json["reference"].as_str().unwrap();
        assert_eq!(reference.len(), 16);
        assert!(!page.body().windows(7).any(|w| w == b"refused"));
        let line = line.unwrap();
        assert!(line.starts_with(&format!("edgeauth: error {reference} idp_unavailable: ")));
        assert!(line.contains("connection refused (os error 111)"), "{line}");
        assert_eq!(
            json.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["error", "message", "reference"]
        );
    }

    #[test]
    fn finish_keeps_headers_added_later_and_the_link() {
        let mut page = problem_with_link(
            StatusCode::BAD_GATEWAY,
            "verification_failed",
            ("Sign-in could not be verified", "Try again."),
            ("/.edgeauth/login?rd=/", "Sign in again"),
            "signature invalid for kid k1",
        );
        add_cookie(&mut page, "edgeauth_login=; Max-Age=0; Path=/");
        let (page, _) = finish(page, &mut crate::testutil::counter_rng());
        assert_eq!(
            page.headers()[SET_COOKIE],
            "edgeauth_login=; Max-Age=0; Path=/"
        );
        let html = body(&page);
        assert!(html.contains("href=\"/.edgeauth/login?rd=/\""), "{html}");
        assert!(!html.contains("kid k1"), "{html}");
    }

    #[test]
    fn the_log_line_stays_one_line_whatever_the_detail_holds() {
        let page = idp_unavailable("error: x\nedgeauth: error 0000 forged: y\r", false);
        let (_, line) = finish(page, &mut crate::testutil::counter_rng());
        let line = line.unwrap();
        assert_eq!(line.matches('\n').count(), 1);
        assert!(
            line.ends_with("x\\nedgeauth: error 0000 forged: y\\r\n"),
            "{line}"
        );
    }

    #[test]
    fn other_responses_pass_through_finish_unchanged() {
        let before = error(StatusCode::NOT_FOUND, "Not found", "No such page.", false);
        let expected = body(&before);
        let (after, line) = finish(before, &mut crate::testutil::counter_rng());
        assert_eq!(line, None);
        assert_eq!(body(&after), expected);
        assert_eq!(after.status(), 404);
    }
}
