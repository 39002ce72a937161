//! `paths::normalize` on arbitrary request paths. Properties of any `Ok(p)`:
//! starts with `/`; no empty (`//`), `.` or `..` segment; never `\`, `;`, `#`,
//! `?`, controls, spaces or non-ASCII; no escape of a character that decodes to
//! an unreserved one or to `/`; idempotent. Also routes the path as a request:
//! the router agrees with normalize, except that it also refuses paths whose
//! trimmed reading (trailing dots and spaces) is a reserved path.
#![no_main]

use edgeauth_core::paths::{self, normalize};
use edgeauth_core::routes::{Route, route};
use libfuzzer_sys::fuzz_target;

fn check(raw: &str, p: &str) {
    assert!(p.starts_with('/'), "{raw:?} -> {p:?}");
    for bad in ["//", "/./", "/../"] {
        assert!(!p.contains(bad), "{raw:?} -> {p:?} contains {bad}");
    }
    assert!(
        !p.ends_with("/.") && !p.ends_with("/.."),
        "{raw:?} -> {p:?}"
    );
    assert!(
        p.bytes()
            .all(|b| b.is_ascii_graphic() && !b"\\;#?".contains(&b)),
        "{raw:?} -> {p:?}"
    );
    let b = p.as_bytes();
    for (i, _) in p.match_indices('%') {
        let esc = b.get(i + 1..i + 3).expect("complete escape");
        assert!(
            esc.iter()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()),
            "{raw:?} -> {p:?}"
        );
        let v = u8::from_str_radix(std::str::from_utf8(esc).unwrap(), 16).unwrap();
        assert!(
            !(v.is_ascii_alphanumeric() || b"-._~/\\;#%".contains(&v) || v < 0x20 || v == 0x7f),
            "{raw:?} -> {p:?} keeps an escape of {v:#x}"
        );
    }
    assert_eq!(
        normalize(p).as_deref(),
        Ok(p),
        "not idempotent: {raw:?} -> {p:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    if let Ok(p) = normalize(&raw) {
        check(&raw, &p);
    }
    // The same path as a request target: the router must agree with normalize.
    if let Ok(req) = http::Request::get(&*raw).body(()) {
        let (parts, ()) = req.into_parts();
        match (route(&parts), normalize(parts.uri.path())) {
            (Route::BadPath(_), Err(_)) => {}
            // Beyond normalize, the router refuses a path that servers which
            // trim dots and spaces would read as a reserved one (`/.edgeauth./x`).
            (Route::BadPath(e), Ok(p)) => assert!(
                paths::trimmed_reading(&p.to_ascii_lowercase())
                    .is_some_and(|t| t.starts_with("/.edgeauth/") || t == "/.edgeauth"),
                "{raw:?}: router refused {p:?} ({e})"
            ),
            (Route::Protected(p), n) => {
                assert_eq!(n.as_deref(), Ok(p.as_str()), "{raw:?}");
                let lower = p.to_ascii_lowercase();
                assert!(
                    !lower.starts_with("/.edgeauth/") && lower != "/.edgeauth",
                    "{raw:?} -> {p:?} forwarded"
                );
            }
            (_, n) => assert!(n.is_ok(), "{raw:?}"),
        }
    }
});
