//! The login chooser page: one button per connection, in the tenant's order,
//! and an optional work-email field for home-realm discovery.
//!
//! Plain HTML forms (`GET /.edgeauth/login`), so it works without JavaScript
//! and the page's CSP forbids scripts anyway. Every string from
//! configuration (the tenant's and the connections' names) or from the
//! request (the return path, the typed email) is escaped: a tenant controls
//! those names, and a name is not markup.

use http::StatusCode;

use crate::chooser::{Ask, Notice};
use crate::connections::Connection;
use crate::pages::{self, escape};
use crate::routes;

/// What the page shows.
pub struct View<'a> {
    /// The tenant's display name, the page's heading.
    pub tenant_name: &'a str,
    /// In the tenant's order; see [`crate::chooser::offered`].
    pub connections: &'a [&'a Connection],
    /// Already validated (`redirect::return_path_or_root`): carried through
    /// every form as `rd`.
    pub return_to: &'a str,
    pub ask: &'a Ask,
}

/// Initials' background colours: white text on each is at least 4.5:1
/// (WCAG 1.4.3), so the letter stays readable.
const AVATAR_COLOURS: [&str; 6] = [
    "#1d4ed8", "#047857", "#6d28d9", "#b45309", "#be123c", "#0e7490",
];

/// By position, so neighbouring buttons never share a colour.
fn avatar_colour(position: usize) -> &'static str {
    AVATAR_COLOURS[position % AVATAR_COLOURS.len()]
}

fn initial(name: &str) -> String {
    name.chars()
        .find(|c| c.is_alphanumeric())
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_else(|| "?".to_owned())
}

const STYLE: &str = "\
:root{color-scheme:light dark;--bg:#f3f4f6;--card:#fff;--text:#111827;--muted:#4b5563;\
--line:#d1d5db;--edge:#6b7280;--hover:#f3f4f6;--accent:#1d4ed8;--accent-text:#fff;\
--focus:#2563eb;--warn-bg:#fef3c7;--warn-text:#78350f;--warn-line:#d97706}\
@media (prefers-color-scheme:dark){:root{--bg:#0b1120;--card:#111827;--text:#f9fafb;\
--muted:#cbd5e1;--line:#374151;--edge:#94a3b8;--hover:#1f2937;--accent:#3b82f6;\
--accent-text:#0b1120;--focus:#93c5fd;--warn-bg:#422006;--warn-text:#fde68a;--warn-line:#f59e0b}}\
*{box-sizing:border-box}\
html{-webkit-text-size-adjust:100%}\
body{margin:0;min-height:100vh;display:flex;flex-direction:column;align-items:center;\
justify-content:center;padding:24px 16px;background:var(--bg);color:var(--text);\
font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,\"Helvetica Neue\",Arial,sans-serif}\
main{width:100%;max-width:440px;background:var(--card);border:1px solid var(--line);\
border-radius:12px;padding:40px 40px 32px;box-shadow:0 1px 2px rgba(0,0,0,.05),0 8px 24px rgba(0,0,0,.08)}\
.brand{width:48px;height:48px;margin:0 auto 16px;border-radius:12px;background:var(--accent);\
color:var(--accent-text);display:flex;align-items:center;justify-content:center;\
font-weight:700;font-size:22px}\
h1{margin:0;text-align:center;font-size:1.5rem;line-height:1.3;font-weight:650;overflow-wrap:anywhere}\
.lead{margin:8px 0 24px;text-align:center;color:var(--muted)}\
.notice{margin:0 0 20px;padding:12px 14px;border-radius:8px;border:1px solid var(--warn-line);\
background:var(--warn-bg);color:var(--warn-text);font-size:.95rem;overflow-wrap:anywhere}\
ul{list-style:none;margin:0;padding:0;display:grid;gap:12px}\
form{margin:0}\
button{font:inherit;cursor:pointer}\
.conn{width:100%;min-height:48px;display:flex;align-items:center;gap:12px;padding:10px 16px;\
border:1px solid var(--edge);border-radius:8px;background:var(--card);color:var(--text);\
text-align:left;font-weight:500}\
.conn:hover{background:var(--hover)}\
.conn .label{flex:1;overflow-wrap:anywhere}\
.avatar{flex:none;width:28px;height:28px;border-radius:50%;color:#fff;display:flex;\
align-items:center;justify-content:center;font-size:.85rem;font-weight:700}\
.or{display:flex;align-items:center;gap:12px;margin:24px 0;color:var(--muted);font-size:.875rem}\
.or::before,.or::after{content:\"\";flex:1;border-top:1px solid var(--line)}\
label{display:block;font-weight:600;margin-bottom:6px}\
input{width:100%;min-height:48px;padding:10px 12px;font:inherit;color:var(--text);\
background:var(--card);border:1px solid var(--edge);border-radius:8px}\
input[aria-invalid=true]{border-color:var(--warn-line);border-width:2px}\
.hint{margin:6px 0 0;color:var(--muted);font-size:.875rem}\
.primary{width:100%;min-height:48px;margin-top:16px;padding:10px 16px;border:0;border-radius:8px;\
background:var(--accent);color:var(--accent-text);font-weight:600}\
.primary:hover{filter:brightness(1.1)}\
:focus-visible{outline:3px solid var(--focus);outline-offset:2px}\
input:focus-visible{outline-offset:0}\
footer{margin-top:24px;color:var(--muted);font-size:.8125rem;text-align:center}\
@media (max-width:480px){body{justify-content:flex-start;padding:0;background:var(--card)}\
main{border:0;border-radius:0;box-shadow:none;padding:32px 20px 24px;max-width:none}}\
@media (prefers-reduced-motion:no-preference){.conn,.primary{transition:background-color .15s}}";

fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape(name),
        escape(value)
    )
}

fn connection_button(position: usize, c: &Connection, return_to: &str, extra: &str) -> String {
    format!(
        "<li><form method=\"get\" action=\"{action}\">{rd}{conn}{extra}\
         <button type=\"submit\" class=\"conn\" id=\"connection-{id}\">\
         <span class=\"avatar\" aria-hidden=\"true\" style=\"background:{colour}\">{initial}</span>\
         <span class=\"label\">Continue with {name}</span></button></form></li>",
        action = routes::LOGIN,
        rd = hidden("rd", return_to),
        conn = hidden("connection", &c.id),
        id = escape(&c.id),
        colour = avatar_colour(position),
        initial = escape(&initial(&c.name)),
        name = escape(&c.name),
    )
}

fn email_form(view: &View<'_>) -> String {
    let notice = view.ask.notice.as_ref();
    let invalid = notice.is_some_and(Notice::about_email);
    let described = if notice.is_some() {
        "email-hint notice"
    } else {
        "email-hint"
    };
    format!(
        "<p class=\"or\">or</p>\
         <form method=\"get\" action=\"{action}\" id=\"email-form\">{rd}\
         <label for=\"email\">Work email</label>\
         <input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"email\" inputmode=\"email\" \
         spellcheck=\"false\" autocapitalize=\"none\" maxlength=\"320\" \
         placeholder=\"name@company.com\" value=\"{value}\" aria-describedby=\"{described}\"{invalid}>\
         <p class=\"hint\" id=\"email-hint\">We\u{2019}ll take you to your organization\u{2019}s sign-in page.</p>\
         <button type=\"submit\" class=\"primary\">Continue</button></form>",
        action = routes::LOGIN,
        rd = hidden("rd", view.return_to),
        value = escape(view.ask.email.as_deref().unwrap_or_default()),
        invalid = if invalid {
            " aria-invalid=\"true\""
        } else {
            ""
        },
    )
}

/// The page as HTML text.
pub fn html(view: &View<'_>) -> String {
    let name = escape(view.tenant_name);
    let notice = view
        .ask
        .notice
        .as_ref()
        .map(|n| {
            format!(
                "<p class=\"notice\" id=\"notice\" role=\"alert\">{}</p>",
                escape(&n.text())
            )
        })
        .unwrap_or_default();
    let buttons: String = view
        .connections
        .iter()
        .enumerate()
        .map(|(i, c)| connection_button(i, c, view.return_to, ""))
        .collect();
    let list = if buttons.is_empty() {
        String::new()
    } else {
        format!("<ul aria-label=\"Sign-in options\">{buttons}</ul>")
    };
    // The field helps only where some connection has email domains; an
    // address nobody's domain matches would just return here.
    let email = if view.connections.iter().any(|c| !c.email_domains.is_empty()) {
        email_form(view)
    } else {
        String::new()
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>Sign in \u{2013} {name}</title><style>{STYLE}</style></head><body>\
         <main aria-labelledby=\"title\">\
         <div class=\"brand\" aria-hidden=\"true\">{initial}</div>\
         <h1 id=\"title\">Sign in to {name}</h1>\
         <p class=\"lead\">Choose how you want to continue.</p>\
         {notice}{list}{email}</main>\
         <footer>Secured by edgeauth</footer></body></html>",
        initial = escape(&initial(view.tenant_name)),
    )
}

/// What the offer to link accounts shows (`crate::linking`).
pub struct LinkView<'a> {
    pub tenant_name: &'a str,
    /// The verified address the two sign-ins share.
    pub email: &'a str,
    /// The name of the connection the person just signed in with.
    pub signed_in_with: &'a str,
    /// The existing profile's connections: one button each.
    pub prove_with: &'a [&'a Connection],
    pub return_to: &'a str,
}

/// The offer to link accounts: the existing account's sign-in options,
/// each starting a sign-in marked as the proof (`link=1`), and a way on
/// without linking. Same look and headers as the chooser.
pub fn link_html(view: &LinkView<'_>) -> String {
    let name = escape(view.tenant_name);
    let buttons: String = view
        .prove_with
        .iter()
        .enumerate()
        .map(|(i, c)| connection_button(i, c, view.return_to, &hidden("link", "1")))
        .collect();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"color-scheme\" content=\"light dark\">\
         <title>Link your accounts \u{2013} {name}</title><style>{STYLE}</style></head><body>\
         <main aria-labelledby=\"title\">\
         <div class=\"brand\" aria-hidden=\"true\">{initial}</div>\
         <h1 id=\"title\">You already have an account</h1>\
         <p class=\"lead\">An account at {name} with <strong>{email}</strong> already exists. \
         Sign in to it once to link it with {this}: from then on either way leads to the same account.</p>\
         <ul aria-label=\"Sign in to your existing account\">{buttons}</ul>\
         <p class=\"or\">or</p>\
         <form method=\"get\" action=\"{link}\">{skip}\
         <button type=\"submit\" class=\"conn\" id=\"skip\"><span class=\"label\">Not now: \
         continue as a separate account</span></button></form></main>\
         <footer>Secured by edgeauth</footer></body></html>",
        initial = escape(&initial(view.tenant_name)),
        email = escape(view.email),
        this = escape(view.signed_in_with),
        link = routes::LINK,
        skip = hidden("skip", "1"),
    )
}

/// The page as a response, with the gateway's page headers (no-store, CSP
/// without scripts, no framing).
pub fn page(view: &View<'_>) -> crate::Response {
    let status = if view.ask.status.is_client_error() || view.ask.status.is_server_error() {
        view.ask.status
    } else {
        StatusCode::OK
    };
    pages::html(status, html(view))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chooser::{self, Asked, Choice};
    use crate::connections;

    fn tenant(names: (&str, &str)) -> Vec<Connection> {
        connections::parse(&format!(
            r#"[{{"id": "social", "name": {}, "kind": "oidc", "issuer": "https://social.example",
                  "client_id": "gw", "client_secret": "s"}},
                {{"id": "enterprise", "name": {}, "kind": "oidc", "issuer": "https://idp.acme.example",
                  "client_id": "gw", "client_secret": "s", "email_domains": ["acme.com"]}}]"#,
            serde_json::to_string(names.0).unwrap(),
            serde_json::to_string(names.1).unwrap(),
        ))
        .unwrap()
    }

    fn render(conns: &[Connection], tenant_name: &str, asked: &Asked, rd: &str) -> crate::Response {
        let Choice::Chooser(ask) = chooser::choose(conns, asked) else {
            panic!("expected the chooser")
        };
        let offered = chooser::offered(conns);
        page(&View {
            tenant_name,
            connections: &offered,
            return_to: rd,
            ask: &ask,
        })
    }

    fn body(r: &crate::Response) -> String {
        String::from_utf8(r.body().clone()).unwrap()
    }

    #[test]
    fn lists_each_connection_in_order_with_the_return_path() {
        let t = tenant(("Social Login", "Acme SSO"));
        let r = render(&t, "Acme Corp", &Asked::default(), "/reports?q=1&x=2");
        assert_eq!(r.status(), 200);
        let html = body(&r);
        assert!(html.starts_with("<!doctype html><html lang=\"en\">"));
        assert!(
            html.contains("<h1 id=\"title\">Sign in to Acme Corp</h1>"),
            "{html}"
        );
        assert!(html.contains("<main"));
        let social = html.find("Continue with Social Login").unwrap();
        let acme = html.find("Continue with Acme SSO").unwrap();
        assert!(social < acme, "the tenant's order");
        assert_eq!(
            html.matches("<button type=\"submit\" class=\"conn\"")
                .count(),
            2
        );
        assert_eq!(
            html.matches("<form method=\"get\" action=\"/.edgeauth/login\"")
                .count(),
            3,
            "a form per connection and the email form"
        );
        assert!(html.contains("<input type=\"hidden\" name=\"connection\" value=\"enterprise\">"));
        assert_eq!(
            html.matches("<input type=\"hidden\" name=\"rd\" value=\"/reports?q=1&amp;x=2\">")
                .count(),
            3
        );
        assert!(html.contains("<label for=\"email\">Work email</label>"));
        assert!(
            !html.contains("role=\"alert\""),
            "no notice on a plain choice"
        );
        assert!(!html.contains("<script"));
    }

    #[test]
    fn has_the_gateway_page_headers() {
        let t = tenant(("A", "B"));
        let r = render(&t, "T", &Asked::default(), "/");
        let h = r.headers();
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(h["referrer-policy"], "no-referrer");
    }

    #[test]
    fn names_from_configuration_are_text_not_markup() {
        let hostile = "<script>alert(1)</script>\"'&";
        let t = tenant((hostile, "<img src=x onerror=alert(2)>"));
        let html = body(&render(
            &t,
            "<script>alert(3)</script>",
            &Asked::default(),
            "/",
        ));
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("Continue with &lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;")
        );
        assert!(html.contains("Sign in to &lt;script&gt;alert(3)&lt;/script&gt;</h1>"));
        assert!(html.contains("<title>Sign in \u{2013} &lt;script&gt;"));
    }

    #[test]
    fn the_typed_email_and_return_path_are_escaped() {
        let t = tenant(("A", "B"));
        let asked = Asked {
            connection: None,
            email: Some("\"><script>x</script>@evil.example".into()),
        };
        let html = body(&render(&t, "T", &asked, "/a?b=\"><script>"));
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("value=\"&quot;&gt;&lt;script&gt;x&lt;/script&gt;@evil.example\""));
        assert!(
            html.contains("aria-invalid=\"true\""),
            "not an address: field marked"
        );
    }

    #[test]
    fn says_why_it_is_shown_again() {
        let t = tenant(("Social", "Acme SSO"));
        let unknown = render(
            &t,
            "T",
            &Asked {
                connection: Some("nope".into()),
                email: None,
            },
            "/",
        );
        assert_eq!(unknown.status(), 400);
        let html = body(&unknown);
        assert!(html.contains("role=\"alert\""));
        assert!(html.contains("does not exist"), "{html}");
        assert_eq!(
            html.matches("class=\"conn\"").count(),
            2,
            "the choice is still offered"
        );

        let domain = render(
            &t,
            "T",
            &Asked {
                connection: None,
                email: Some("someone@Example.com".into()),
            },
            "/x",
        );
        assert_eq!(domain.status(), 200);
        let html = body(&domain);
        assert!(
            html.contains("No single sign-in is set up for example.com; choose how to sign in."),
            "{html}"
        );
        assert!(
            html.contains("value=\"someone@Example.com\""),
            "kept in the field"
        );
        assert!(html.contains("aria-describedby=\"email-hint notice\""));
        assert!(
            !html.contains("aria-invalid=\"true\""),
            "the address itself is fine"
        );
    }

    #[test]
    fn no_email_field_when_no_connection_has_email_domains() {
        let t = connections::parse(
            r#"[{"id": "a", "kind": "oidc", "issuer": "https://a.example", "client_id": "x", "client_secret": "s"},
                {"id": "b", "kind": "oidc", "issuer": "https://b.example", "client_id": "x", "client_secret": "s"}]"#,
        )
        .unwrap();
        let html = body(&render(&t, "T", &Asked::default(), "/"));
        assert!(!html.contains("Work email"));
        assert!(html.contains("Continue with a.example"), "{html}");
    }

    #[test]
    fn initials_and_colours() {
        assert_eq!(initial("acme SSO"), "A");
        assert_eq!(initial("  (Ünicode)"), "Ü");
        assert_eq!(initial("<>"), "?");
        assert_ne!(avatar_colour(0), avatar_colour(1));
    }
}
