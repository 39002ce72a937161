//! `session::read` with arbitrary `Cookie` headers, optionally carrying a
//! genuinely sealed session whose JSON plaintext is arbitrary (as from an older
//! or buggy gateway), so both the cookie parsing and the session checks run.
#![no_main]

use arbitrary::Arbitrary;
use edgeauth_core::cookies::{Jar, name};
use edgeauth_core::seal::Purpose;
use edgeauth_core::session::{self, Session};
use edgeauth_core_fuzz::{NOW, SETTINGS, SETTINGS_HTTPS, cookie_headers, seeded_rng};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    https: bool,
    headers: Vec<Vec<u8>>,
    /// Sealed with the real key and added as `<prefix> <session cookie>=<sealed>`.
    sealed: Option<(Vec<u8>, Vec<u8>)>,
}

fuzz_target!(|input: Input| {
    let settings = if input.https {
        &*SETTINGS_HTTPS
    } else {
        &*SETTINGS
    };
    let mut values = input.headers;
    let genuine = input.sealed.is_some();
    if let Some((prefix, plain)) = input.sealed {
        let mut rng = seeded_rng(plain.len() as u64);
        let sealed = settings
            .session_keys
            .seal(Purpose::Session, &plain, &mut rng);
        let mut v = prefix;
        v.extend_from_slice(format!("{}={sealed}", name(settings, Jar::Session)).as_bytes());
        values.push(v);
    }
    let headers = cookie_headers(&values);
    if let Ok(s) = session::read(settings, &headers, NOW) {
        assert!(genuine, "a session was read from forged cookies: {s:?}");
        assert!(s.expires_at > NOW && s.issued_at <= NOW + 60, "{s:?}");
        // What was read must survive being written again.
        let _: Option<String> = Session::to_cookie(&s, settings, &mut seeded_rng(1));
    }
});
