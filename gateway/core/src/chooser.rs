//! Which connection a login goes to: the one the link names
//! (`?connection=<id>`), the one whose email domains hold the address the
//! person typed (home-realm discovery, `?email=` or OIDC's `?login_hint=`),
//! the only one there is, or none yet, and then the chooser page asks
//! ([`crate::chooser_page`]).
//!
//! Pure: the query in, a [`Choice`] out, so every branch is a unit test.

use http::StatusCode;
use http::request::Parts;

use crate::connections::{self, Connection};
use crate::identity::normalize_email;
use crate::routes::query_param;

/// Longest address considered (RFC 5321 §4.5.3.1: 64 + 1 + 255); longer
/// input is no address and is neither parsed nor echoed.
const MAX_EMAIL_LEN: usize = 320;

/// Where the login goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice<'a> {
    /// Straight to this connection. `login_hint` is the address the person
    /// typed (domain normalized), for providers that can prefill their own
    /// form with it (OIDC Core 3.1.2.1); `None` when no address was given.
    Connection {
        connection: &'a Connection,
        login_hint: Option<String>,
    },
    /// Show the chooser.
    Chooser(Ask),
}

/// What the chooser page says besides the choice itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// 200 for a plain choice, 400 when the request named something unusable.
    pub status: StatusCode,
    pub notice: Option<Notice>,
    /// What the person typed, shown again in the email field.
    pub email: Option<String>,
}

/// Why the chooser is shown again, in words the person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// `?connection=` names no connection of this tenant.
    UnknownConnection,
    /// The address is fine but no connection serves its domain; holds the
    /// domain as typed (lower case) so the person recognises it.
    NoConnectionForDomain(String),
    /// The email field holds no usable address.
    NotAnEmail,
    /// The tenant has no connection that can be used for signing in.
    NoConnection,
}

impl Notice {
    pub fn text(&self) -> String {
        match self {
            Notice::UnknownConnection => {
                "The sign-in option in your link does not exist. Choose how to sign in.".to_owned()
            }
            Notice::NoConnectionForDomain(domain) => {
                format!("No single sign-in is set up for {domain}; choose how to sign in.")
            }
            Notice::NotAnEmail => {
                "Enter your work email address, like name@company.com, or choose how to sign in."
                    .to_owned()
            }
            Notice::NoConnection => {
                "Sign-in is not set up for this site yet. Contact its administrator.".to_owned()
            }
        }
    }

    /// Whether the notice is about the email field (it is then marked invalid).
    pub fn about_email(&self) -> bool {
        matches!(self, Notice::NotAnEmail)
    }
}

/// Whether people may be sent to this connection. Every kind the
/// configuration accepts is one the gateway runs; a kind it cannot run is
/// refused when the configuration is read, so it never reaches a chooser.
pub fn selectable(connection: &Connection) -> bool {
    match connection.kind {
        connections::Kind::Oidc { .. } | connections::Kind::OAuth2(_) => true,
    }
}

/// The connections the chooser offers, in the tenant's order.
pub fn offered(all: &[Connection]) -> Vec<&Connection> {
    all.iter().filter(|c| selectable(c)).collect()
}

/// What the login request asked for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Asked {
    pub connection: Option<String>,
    pub email: Option<String>,
}

impl Asked {
    /// `connection`, and `email` (the chooser's field) or else `login_hint`
    /// (what OIDC relying parties send); empty values count as absent.
    pub fn from_query(parts: &Parts) -> Asked {
        let non_empty = |name: &str| {
            query_param(parts, name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        Asked {
            connection: non_empty("connection"),
            email: non_empty("email").or_else(|| non_empty("login_hint")),
        }
    }
}

/// The address in the normalized form connections' `email_domains` are
/// compared in (domain IDNA-mapped and lower-cased), or `None` for no address.
fn normalized_email(email: &str) -> Option<String> {
    if email.len() > MAX_EMAIL_LEN {
        return None;
    }
    normalize_email(email)
}

/// The domain as typed, for the message (lower case, trailing dot gone);
/// bounded, since it is shown back.
fn shown_domain(email: &str) -> String {
    email
        .rsplit_once('@')
        .map(|(_, d)| d.trim().trim_end_matches('.').to_lowercase())
        .unwrap_or_default()
        .chars()
        .take(100)
        .collect()
}

/// Decides where a login goes. `all` is the tenant's connections in order.
pub fn choose<'a>(all: &'a [Connection], asked: &Asked) -> Choice<'a> {
    let offered = offered(all);
    let chooser = |status, notice| {
        Choice::Chooser(Ask {
            status,
            notice,
            email: asked
                .email
                .as_deref()
                .filter(|e| e.len() <= MAX_EMAIL_LEN)
                .map(str::to_owned),
        })
    };
    if offered.is_empty() {
        return chooser(StatusCode::SERVICE_UNAVAILABLE, Some(Notice::NoConnection));
    }
    // Absent, not an address, or an address.
    let email: Option<Option<String>> = asked.email.as_deref().map(normalized_email);
    let domain = email.as_ref().map(|e| {
        e.as_deref()
            .and_then(|a| a.rsplit_once('@'))
            .map(|(_, d)| d.to_owned())
    });
    // Only an address that parses is passed on, normalized as compared: the
    // provider's records hold the domain in lower case too.
    let login_hint = email.flatten();
    let go = |connection: &'a Connection| Choice::Connection {
        connection,
        login_hint: login_hint.clone(),
    };

    if let Some(id) = &asked.connection {
        return match offered.iter().find(|c| &c.id == id) {
            Some(c) => go(c),
            None => chooser(StatusCode::BAD_REQUEST, Some(Notice::UnknownConnection)),
        };
    }
    match domain {
        Some(Some(d)) => {
            if let Some(c) = offered.iter().find(|c| c.serves_email_domain(&d)) {
                return go(c);
            }
            if let [only] = offered[..] {
                return go(only);
            }
            let email = asked.email.as_deref().unwrap_or_default();
            chooser(
                StatusCode::OK,
                Some(Notice::NoConnectionForDomain(shown_domain(email))),
            )
        }
        // Today's behaviour with one connection: straight to it, whatever
        // else the link holds.
        _ if offered.len() == 1 => go(offered[0]),
        Some(None) => chooser(StatusCode::BAD_REQUEST, Some(Notice::NotAnEmail)),
        None => chooser(StatusCode::OK, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Vec<Connection> {
        connections::parse(
            r#"[{"id": "social", "name": "Social", "kind": "oidc", "issuer": "https://social.example",
                 "client_id": "gw", "client_secret": "s"},
                {"id": "enterprise", "name": "Acme SSO", "kind": "oidc", "issuer": "https://idp.acme.example",
                 "client_id": "gw", "client_secret": "s", "email_domains": ["acme.com", "bücher.example"]},
                {"id": "github", "kind": "oauth2", "preset": "github", "client_id": "i", "client_secret": "s"}]"#,
        )
        .unwrap()
    }

    fn asked(connection: Option<&str>, email: Option<&str>) -> Asked {
        Asked {
            connection: connection.map(str::to_owned),
            email: email.map(str::to_owned),
        }
    }

    fn goes_to<'a>(choice: &'a Choice<'a>) -> Option<(&'a str, Option<&'a str>)> {
        match choice {
            Choice::Connection {
                connection,
                login_hint,
            } => Some((connection.id.as_str(), login_hint.as_deref())),
            Choice::Chooser(_) => None,
        }
    }

    fn ask(choice: Choice<'_>) -> Ask {
        match choice {
            Choice::Chooser(a) => a,
            other => panic!("expected the chooser, got {other:?}"),
        }
    }

    #[test]
    fn several_connections_and_nothing_asked_show_the_chooser() {
        let t = tenant();
        let a = ask(choose(&t, &Asked::default()));
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.notice, None);
        assert_eq!(offered(&t).len(), 3);
    }

    #[test]
    fn a_named_connection_skips_the_chooser() {
        let t = tenant();
        assert_eq!(
            goes_to(&choose(&t, &asked(Some("github"), None))),
            Some(("github", None))
        );
        // With an address too, the provider gets it as a hint.
        assert_eq!(
            goes_to(&choose(&t, &asked(Some("social"), Some("a@b.example")))),
            Some(("social", Some("a@b.example")))
        );
    }

    #[test]
    fn an_unknown_connection_is_a_400_chooser() {
        let t = tenant();
        for id in [
            "nope",
            "SOCIAL",
            "social ",
            "social|x",
            "../github",
            &"a".repeat(500),
        ] {
            let a = ask(choose(&t, &asked(Some(id), None)));
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{id}");
            assert_eq!(a.notice, Some(Notice::UnknownConnection));
        }
        // Even with one connection: the link is wrong, the person is told.
        let one = &t[..1];
        assert_eq!(
            ask(choose(one, &asked(Some("other"), None))).status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn home_realm_discovery_folds_case_and_idna() {
        let t = tenant();
        for (email, hint) in [
            ("staff@acme.com", "staff@acme.com"),
            ("Staff@ACME.com", "Staff@acme.com"),
            (" staff@Acme.Com. ", "staff@acme.com"),
            ("s@bücher.example", "s@xn--bcher-kva.example"),
            ("s@BÜCHER.example", "s@xn--bcher-kva.example"),
            ("s@xn--bcher-kva.example", "s@xn--bcher-kva.example"),
        ] {
            let c = choose(&t, &asked(None, Some(email)));
            assert_eq!(
                goes_to(&c),
                Some(("enterprise", Some(hint))),
                "{email} should go to the enterprise connection"
            );
        }
    }

    #[test]
    fn a_domain_nobody_serves_returns_to_the_chooser_with_a_message() {
        let t = tenant();
        let a = ask(choose(&t, &asked(None, Some("x@Example.COM"))));
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(
            a.notice,
            Some(Notice::NoConnectionForDomain("example.com".into()))
        );
        assert_eq!(
            a.notice.unwrap().text(),
            "No single sign-in is set up for example.com; choose how to sign in."
        );
        assert_eq!(a.email.as_deref(), Some("x@Example.COM"));
        // Look-alikes and sub/super-domains are other domains.
        for email in [
            "x@acme.com.evil.example",
            "x@evilacme.com",
            "x@sub.acme.com",
            "x@acme.co",
            "x@acme.com@evil.example",
        ] {
            assert!(
                goes_to(&choose(&t, &asked(None, Some(email)))).is_none(),
                "{email}"
            );
        }
    }

    #[test]
    fn something_that_is_no_address_is_a_400_with_the_field_marked() {
        let t = tenant();
        for email in [
            "acme.com",
            "@acme.com",
            "a@",
            "a b@acme.com",
            "a@ex%61mple.com",
        ] {
            let a = ask(choose(&t, &asked(None, Some(email))));
            assert_eq!(a.status, StatusCode::BAD_REQUEST, "{email}");
            assert!(a.notice.as_ref().unwrap().about_email());
        }
        // Absurd input is neither parsed nor shown back.
        let long = format!("{}@acme.com", "a".repeat(5000));
        let a = ask(choose(&t, &asked(None, Some(&long))));
        assert_eq!(a.status, StatusCode::BAD_REQUEST);
        assert_eq!(a.email, None);
    }

    #[test]
    fn one_connection_goes_straight_to_it_as_before() {
        let t = tenant();
        let one = &t[..1];
        assert_eq!(
            goes_to(&choose(one, &Asked::default())),
            Some(("social", None))
        );
        // Whatever address is typed: there is nowhere else to go.
        assert_eq!(
            goes_to(&choose(one, &asked(None, Some("x@other.example")))),
            Some(("social", Some("x@other.example")))
        );
        assert_eq!(
            goes_to(&choose(one, &asked(None, Some("not an address")))),
            Some(("social", None))
        );
        let legacy = [Connection::legacy("https://idp.example", "gw", "s", "openid").unwrap()];
        assert_eq!(
            goes_to(&choose(&legacy, &Asked::default())),
            Some(("default", None))
        );
    }

    #[test]
    fn no_connection_at_all_is_said_plainly() {
        let a = ask(choose(&[], &Asked::default()));
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(a.notice, Some(Notice::NoConnection));
    }

    #[test]
    fn the_query_is_read_with_email_before_login_hint() {
        let parts = |uri: &str| http::Request::get(uri).body(()).unwrap().into_parts().0;
        assert_eq!(
            Asked::from_query(&parts("/.edgeauth/login?rd=/x&connection=&email=")),
            Asked::default()
        );
        assert_eq!(
            Asked::from_query(&parts(
                "/.edgeauth/login?login_hint=a%40b.example&email=c%40d.example&connection=corp"
            )),
            asked(Some("corp"), Some("c@d.example"))
        );
        assert_eq!(
            Asked::from_query(&parts("/.edgeauth/login?login_hint=+a%40b.example+")),
            asked(None, Some("a@b.example"))
        );
    }
}
