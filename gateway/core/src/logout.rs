//! Logout: clear the session here, then end the IdP session too when the IdP
//! supports RP-initiated logout, and come back to a validated path.

use http::StatusCode;
use http::request::Parts;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::connections::Connection;
use crate::cookies::{self, Jar};
use crate::pages;
use crate::provider::ProviderMetadata;
use crate::redirect::safe_return_path;
use crate::routes::{LOGIN, query_param};
use crate::seal::Purpose;
use crate::session;
use crate::settings::Settings;
use crate::{Response, Rng};

const LOGOUT_TTL_SECS: u64 = 600;

/// Carried through the IdP in `state`, sealed so it cannot be forged into an
/// open redirect on the way back.
#[derive(Serialize, Deserialize)]
struct LogoutState {
    #[serde(rename = "r")]
    return_to: Option<String>,
    #[serde(rename = "t")]
    at: u64,
}

fn signed_out_page(return_to: Option<&str>) -> Response {
    pages::info(
        "You are signed out",
        "Your session at this site has ended.",
        &format!(
            "{LOGIN}?rd={}",
            url::form_urlencoded::byte_serialize(return_to.unwrap_or("/").as_bytes())
                .collect::<String>()
        ),
        "Sign in again",
    )
}

/// The OIDC connection whose provider session a logout ends: the one the
/// request's session came from, or without a (valid) session the tenant's
/// only connection (the provider may still have a session the gateway's
/// cookie no longer shows). `None` when that is not an OpenID provider
/// (OAuth2 has no provider logout) or it cannot be told which.
pub fn session_connection<'s>(
    settings: &'s Settings,
    parts: &Parts,
    now: u64,
) -> Option<&'s Connection> {
    let connection = match session::read(settings, &parts.headers, now) {
        Ok(session) => settings.connection(session.identity.connection_id()),
        Err(_) => match settings.connections.as_slice() {
            [only] => Some(only),
            _ => None,
        },
    };
    connection.filter(|c| c.is_oidc())
}

/// `provider` is the session's connection and its provider's metadata;
/// `None` when there is no session or the provider could not be reached: the
/// local session is still cleared, which is what matters most.
pub fn start(
    settings: &Settings,
    provider: Option<(&Connection, &ProviderMetadata)>,
    parts: &Parts,
    now: u64,
    rng: Rng<'_>,
) -> Response {
    let return_to =
        query_param(parts, "rd").and_then(|rd| safe_return_path(&rd, &settings.public_url));
    let id_token = session::read(settings, &parts.headers, now)
        .ok()
        .and_then(|s| s.id_token);
    let end_session = provider.and_then(|(c, m)| {
        let url = Url::parse(m.end_session_endpoint.as_deref()?).ok()?;
        Some((c, url))
    });
    let mut resp = match end_session {
        Some((connection, mut url)) => {
            let state = LogoutState { return_to, at: now };
            let sealed = settings.session_keys.seal(
                Purpose::Logout,
                &serde_json::to_vec(&state).expect("logout state serializes"),
                rng,
            );
            {
                let mut q = url.query_pairs_mut();
                if let Some(t) = &id_token {
                    q.append_pair("id_token_hint", t);
                }
                q.append_pair("client_id", &connection.client_id)
                    .append_pair("post_logout_redirect_uri", &settings.logged_out_url())
                    .append_pair("state", &sealed);
            }
            pages::redirect(url.as_str())
        }
        None => signed_out_page(return_to.as_deref()),
    };
    pages::add_cookie(&mut resp, &cookies::clear(settings, Jar::Session));
    resp
}

/// Where the IdP sends the browser after its logout.
pub fn finish(settings: &Settings, parts: &Parts, now: u64) -> Response {
    let return_to = query_param(parts, "state")
        .and_then(|s| settings.session_keys.open(Purpose::Logout, &s).ok())
        .and_then(|plain| serde_json::from_slice::<LogoutState>(&plain).ok())
        .filter(|st| st.at <= now && now - st.at <= LOGOUT_TTL_SECS)
        .and_then(|st| st.return_to)
        .and_then(|rd| safe_return_path(&rd, &settings.public_url));
    let mut resp = match return_to {
        Some(rd) => pages::redirect(&rd),
        None => signed_out_page(None),
    };
    // Belt and braces: the session cookie is cleared here too, in case the
    // logout started somewhere else (the IdP, another app).
    pages::add_cookie(&mut resp, &cookies::clear(settings, Jar::Session));
    resp
}

pub fn method_not_allowed() -> Response {
    pages::error(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        "Use GET or POST.",
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Identity;
    use crate::session::Session;
    use crate::testutil::{counter_rng, provider_meta, settings_with};
    use http::header::{COOKIE, LOCATION, SET_COOKIE};

    fn parts(uri: &str, cookie: Option<&str>) -> Parts {
        let mut b = http::Request::get(uri);
        if let Some(c) = cookie {
            b = b.header(COOKIE, c);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn ends_idp_session_and_comes_back_to_a_safe_path() {
        let s = settings_with(&[]);
        let mut rng = counter_rng();
        let id = Identity {
            sub: "a".into(),
            ..Default::default()
        };
        let cookie = Session::new(id, Some("the.id.token".into()), &s, 1000)
            .to_cookie(&s, &mut rng)
            .unwrap();
        let pair = cookie.split(';').next().unwrap();
        let r = start(
            &s,
            Some((&s.connections[0], &provider_meta())),
            &parts("/.edgeauth/logout?rd=/bye", Some(pair)),
            1001,
            &mut rng,
        );
        assert_eq!(r.status(), 302);
        let loc = Url::parse(r.headers()[LOCATION].to_str().unwrap()).unwrap();
        assert!(
            loc.as_str()
                .starts_with("http://127.0.0.2:9400/session/end?")
        );
        let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
        assert_eq!(q["id_token_hint"], "the.id.token");
        assert_eq!(
            q["post_logout_redirect_uri"],
            "http://127.0.0.1:3000/.edgeauth/logged-out"
        );
        assert!(
            r.headers()[SET_COOKIE]
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );

        let back = finish(
            &s,
            &parts(&format!("/.edgeauth/logged-out?state={}", q["state"]), None),
            1002,
        );
        assert_eq!(back.headers()[LOCATION], "/bye");
        // Forged or stale state: a page, never a redirect.
        let forged = finish(
            &s,
            &parts("/.edgeauth/logged-out?state=s1.AAAA", None),
            1002,
        );
        assert_eq!(forged.status(), 200);
        let stale = finish(
            &s,
            &parts(&format!("/.edgeauth/logged-out?state={}", q["state"]), None),
            1001 + 601,
        );
        assert_eq!(stale.status(), 200);
    }

    #[test]
    fn hostile_rd_is_dropped_and_no_idp_still_clears() {
        let s = settings_with(&[]);
        let mut rng = counter_rng();
        let r = start(
            &s,
            None,
            &parts("/.edgeauth/logout?rd=//evil.example", None),
            1,
            &mut rng,
        );
        assert_eq!(r.status(), 200);
        assert!(
            !String::from_utf8(r.body().clone())
                .unwrap()
                .contains("evil")
        );
        assert!(
            r.headers()[SET_COOKIE]
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
    }
}
