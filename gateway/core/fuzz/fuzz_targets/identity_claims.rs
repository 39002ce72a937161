//! `identity::Identity::from_claims` on arbitrary JSON (and `normalize_email`
//! on arbitrary text). An accepted identity is bounded and well-formed, and
//! survives the session cookie's JSON round trip.
#![no_main]

use edgeauth_core::identity::{Identity, normalize_email};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fn bounded(s: &str) -> bool {
    !s.is_empty() && s.len() <= 512 && !s.chars().any(char::is_control) && s.trim() == s
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(e) = normalize_email(text)
    {
        assert_eq!(e.matches('@').count(), 1, "{text:?} -> {e:?}");
        let (_, domain) = e.split_once('@').unwrap();
        assert!(
            domain.contains('.') && domain.is_ascii() && domain == domain.to_ascii_lowercase(),
            "{e:?}"
        );
        assert_eq!(
            normalize_email(&e).as_ref(),
            Some(&e),
            "not idempotent: {text:?}"
        );
    }
    let Ok(claims) = serde_json::from_slice::<Map<String, Value>>(data) else {
        return;
    };
    let Ok(id) = Identity::from_claims(&claims) else {
        return;
    };
    assert!(bounded(&id.sub), "{id:?}");
    assert!(id.name.as_deref().is_none_or(bounded), "{id:?}");
    assert!(
        id.groups.len() <= 64 && id.groups.iter().all(|g| bounded(g)),
        "{id:?}"
    );
    assert!(!id.email_verified || id.email.is_some(), "{id:?}");
    if let Some(d) = id.verified_email_domain() {
        assert!(!d.is_empty() && !d.contains('@'), "{id:?}");
    }
    let json = serde_json::to_vec(&id).unwrap();
    assert_eq!(serde_json::from_slice::<Identity>(&json).unwrap(), id);
});
