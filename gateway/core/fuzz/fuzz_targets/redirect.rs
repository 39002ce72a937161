//! `redirect::safe_return_path` on arbitrary return URLs. Any `Some(p)` must be
//! a path on the gateway itself: it starts with `/` (not `//` or `/\`), has no
//! control characters or backslashes, and resolves against the public URL to
//! the same origin and to itself (so no browser reads it another way).
#![no_main]

use edgeauth_core::redirect::{return_path_or_root, safe_return_path};
use libfuzzer_sys::fuzz_target;
use url::Url;

const PUBLIC: [&str; 4] = [
    "https://app.example.com",
    "http://127.0.0.1:3000",
    "https://gw.example.com:8443",
    "http://[::1]:8080",
];

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let public = Url::parse(PUBLIC[usize::from(which) % PUBLIC.len()]).unwrap();
    let raw = String::from_utf8_lossy(rest);
    let got = safe_return_path(&raw, &public);
    if let Some(p) = &got {
        assert!(p.starts_with('/'), "{raw:?} -> {p:?}");
        assert!(
            !p.starts_with("//") && !p.starts_with("/\\"),
            "{raw:?} -> {p:?}"
        );
        assert!(
            !p.chars()
                .any(|c| c == '\\' || c.is_control() || c.is_whitespace()),
            "{raw:?} -> {p:?}"
        );
        let resolved = public.join(p).expect("a safe path resolves");
        assert_eq!(resolved.origin(), public.origin(), "{raw:?} -> {p:?}");
        let mut again = resolved.path().to_owned();
        if let Some(q) = resolved.query() {
            again.push('?');
            again.push_str(q);
        }
        assert_eq!(&again, p, "{raw:?} -> {p:?} is not stable");
        // The accepted output is itself accepted, unchanged.
        assert_eq!(
            safe_return_path(p, &public).as_ref(),
            Some(p),
            "{raw:?} -> {p:?}"
        );
    }
    let fallback = return_path_or_root(Some(&raw), &public);
    assert_eq!(fallback, got.unwrap_or_else(|| "/".to_owned()));
});
