//! `callback::begin` with an arbitrary query and `Cookie` headers. Optionally a
//! genuine login cookie (sealed with the real key) is present and the query
//! carries its real `state`, so the checks past the state comparison run too.
//! An accepted callback must carry the matching state and a bounded code.
#![no_main]

use arbitrary::Arbitrary;
use edgeauth_core::callback::begin;
use edgeauth_core::cookies::{Jar, name};
use edgeauth_core::login::LoginState;
use edgeauth_core::routes::query_param;
use edgeauth_core::seal::Purpose;
use edgeauth_core_fuzz::{NOW, SETTINGS, SETTINGS_HTTPS, cookie_headers, seeded_rng};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    https: bool,
    query: String,
    cookies: Vec<Vec<u8>>,
    login: Option<Login>,
}

#[derive(Arbitrary, Debug)]
struct Login {
    /// Prepend `state=<real state>&` to the query.
    real_state: bool,
    started_ago: u16,
    return_to: String,
    /// Seal this instead of a well-formed login state.
    raw_plaintext: Option<Vec<u8>>,
}

fuzz_target!(|input: Input| {
    let settings = if input.https {
        &*SETTINGS_HTTPS
    } else {
        &*SETTINGS
    };
    let mut cookies = input.cookies;
    let mut query = input.query;
    let mut real = None;
    if let Some(l) = input.login {
        let mut rng = seeded_rng(u64::from(l.started_ago));
        let state = LoginState::new(
            &settings.connections[0].id,
            l.return_to,
            NOW - u64::from(l.started_ago),
            &mut rng,
        );
        let plain = l
            .raw_plaintext
            .unwrap_or_else(|| serde_json::to_vec(&state).unwrap());
        let sealed = settings.session_keys.seal(Purpose::Login, &plain, &mut rng);
        cookies.push(format!("{}={sealed}", name(settings, Jar::Login)).into_bytes());
        if l.real_state {
            query = format!("state={}&{query}", state.state);
        }
        real = Some(state);
    }
    let Ok(req) = http::Request::get(format!("/.edgeauth/callback?{query}")).body(()) else {
        return;
    };
    let (mut parts, ()) = req.into_parts();
    parts.headers = cookie_headers(&cookies);
    match begin(settings, &settings.connections[0], &parts, NOW) {
        Ok(start) => {
            let real = real.expect("accepted without a genuine login cookie");
            assert_eq!(start.login, real);
            assert_eq!(
                query_param(&parts, "state").as_deref(),
                Some(real.state.as_str())
            );
            assert!(!start.code.is_empty() && start.code.len() <= 2048);
            assert!(query_param(&parts, "error").is_none());
            assert!(!real.expired(NOW));
        }
        Err(resp) => {
            assert!(resp.status().is_client_error() || resp.status().is_server_error());
            assert!(resp.headers().get(http::header::LOCATION).is_none());
        }
    }
});
