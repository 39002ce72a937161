//! `settings::Settings::from_variables` with arbitrary values overriding a
//! valid configuration (or removing variables). Accepted settings must keep
//! the invariants the rest of the gateway relies on.
#![no_main]

use arbitrary::Arbitrary;
use edgeauth_core::settings::VARIABLES;
use edgeauth_core_fuzz::{settings_from, valid_variables};
use libfuzzer_sys::fuzz_target;
use url::Host;

#[derive(Arbitrary, Debug)]
struct Input {
    overrides: Vec<(u8, Option<String>)>,
}

fn loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fuzz_target!(|input: Input| {
    let mut vars = valid_variables();
    for (i, value) in input.overrides {
        let (name, _) = VARIABLES[usize::from(i) % VARIABLES.len()];
        match value {
            Some(v) => vars.insert(name.to_owned(), v),
            None => vars.remove(name),
        };
    }
    let Ok(s) = settings_from(&vars) else {
        return;
    };
    for url in [&s.public_url, &s.origin] {
        assert!(
            url.scheme() == "https" || (url.scheme() == "http" && loopback(url)),
            "{url}"
        );
        assert_eq!(url.path(), "/");
        assert!(url.query().is_none() && url.fragment().is_none());
        assert!(url.username().is_empty() && url.password().is_none());
    }
    assert_eq!(s.secure_cookies, s.public_url.scheme() == "https");
    assert!(!s.connections.is_empty());
    for c in &s.connections {
        if c.is_oidc() {
            assert!(c.scopes.split(' ').any(|x| x == "openid"));
        }
        assert!(s.callback_url(c).starts_with(&s.public_origin()));
    }
    assert!((60..=30 * 24 * 3600).contains(&s.session_lifetime_secs));
    for d in &s.allowed_email_domains {
        assert!(d.contains('.') && *d == d.to_ascii_lowercase(), "{d:?}");
    }
    for h in s.headers.configured() {
        assert!(!matches!(
            h.as_str(),
            "host" | "cookie" | "content-length" | "connection"
        ));
    }
    let _ = (s.logged_out_url(), format!("{s:?}"));
});
