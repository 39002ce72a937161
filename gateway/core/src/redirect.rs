//! Return-URL validation: the gateway only ever redirects to a path on itself.
//!
//! Browsers are lenient about what they treat as "another host" (`//evil`,
//! `/\evil`, tabs and newlines stripped mid-URL, percent-decoding by origin
//! apps), so the rule is an allow list of plain path characters rather than a
//! deny list of known tricks; anything outside it becomes `/`.

use percent_encoding::percent_decode_str;
use url::Url;

pub const MAX_RETURN_LEN: usize = 2048;

fn plain_path_byte(b: u8) -> bool {
    // RFC 3986 pchar plus `/` `?` and `%`; no backslash, no controls, no
    // space, no non-ASCII (look-alike hosts need those).
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b)
}

fn looks_like_other_host(path: &str) -> bool {
    let b = path.as_bytes();
    b.first() != Some(&b'/') || matches!(b.get(1), Some(b'/') | Some(b'\\'))
}

/// Returns the normalized same-origin `path?query` for `raw`, or `None`.
pub fn safe_return_path(raw: &str, public: &Url) -> Option<String> {
    if raw.is_empty() || raw.len() > MAX_RETURN_LEN || !raw.bytes().all(plain_path_byte) {
        return None;
    }
    if looks_like_other_host(raw) || decodes_to_other_host(raw) {
        return None;
    }
    let resolved = public.join(raw).ok()?;
    if resolved.origin() != public.origin() {
        return None;
    }
    let mut out = resolved.path().to_owned();
    if let Some(q) = resolved.query() {
        out.push('?');
        out.push_str(q);
    }
    // Resolving dot segments can bring an escape to the front
    // (`/x/../%2f/evil` → `/%2f/evil`), so the result is checked again.
    if looks_like_other_host(&out) || decodes_to_other_host(&out) {
        return None;
    }
    // Resolving also percent-encodes (`'` in a query becomes `%27`), so the
    // result can outgrow the input: bound it too, so that whatever is
    // accepted is accepted again unchanged (found by the redirect fuzz target).
    if out.len() > MAX_RETURN_LEN {
        return None;
    }
    Some(out)
}

/// Origin apps and some browsers decode again: true for paths that become a
/// host reference, a backslash or a control character after decoding, up to
/// three layers deep (or that do not decode to UTF-8).
fn decodes_to_other_host(path: &str) -> bool {
    let mut layer = path.to_owned();
    for _ in 0..3 {
        let Ok(decoded) = percent_decode_str(&layer).decode_utf8() else {
            return true;
        };
        if decoded == layer {
            break;
        }
        if looks_like_other_host(&decoded) || decoded.chars().any(|c| c == '\\' || c.is_control()) {
            return true;
        }
        layer = decoded.into_owned();
    }
    false
}

/// Same as [`safe_return_path`], falling back to `/`.
pub fn return_path_or_root(raw: Option<&str>, public: &Url) -> String {
    raw.and_then(|r| safe_return_path(r, public))
        .unwrap_or_else(|| "/".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public() -> Url {
        Url::parse("https://app.example.com").unwrap()
    }

    #[test]
    fn accepts_plain_paths() {
        for (raw, want) in [
            ("/", "/"),
            ("/dashboard", "/dashboard"),
            ("/a/b?x=1&y=%2F", "/a/b?x=1&y=%2F"),
            ("/a/./b/../c", "/a/c"),
            ("/search?q=a%20b", "/search?q=a%20b"),
            ("/a:b@c", "/a:b@c"),
        ] {
            assert_eq!(
                safe_return_path(raw, &public()).as_deref(),
                Some(want),
                "{raw}"
            );
        }
    }

    #[test]
    fn rejects_every_off_site_form() {
        let hostile = [
            "//evil.example",
            "///evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\\/evil.example",
            "https://evil.example",
            "http://app.example.com.evil.example/",
            "https://app.example.com@evil.example",
            "//app.example.com@evil.example",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<script>",
            "/\tevil.example",
            "/\t/evil.example",
            "/%09/evil.example",
            "/%0a/evil.example",
            "/%0d/evil.example",
            "/%0b/evil.example",
            "/%2f/evil.example",
            "/%2F%2Fevil.example",
            "/%5cevil.example",
            "/%5C%5Cevil.example",
            "/%252f%252fevil.example",
            "/%25252f%25252fevil.example",
            "/./../\\evil.example",
            "/.//evil.example",
            "/..//evil.example",
            "/a/../..//evil.example",
            "/\u{ff0f}evil.example",
            "/\u{2215}evil.example",
            "/\u{3002}evil",
            "evil.example",
            "",
            "?next=//evil",
            "#//evil",
            "/ok#frag",
            "/%ff%fe",
        ];
        for raw in hostile {
            let got = safe_return_path(raw, &public());
            assert!(
                got.as_deref().is_none_or(|p| !p.starts_with("//")) && got.is_none(),
                "accepted {raw:?} as {got:?}"
            );
        }
        let long = format!("/{}", "a".repeat(MAX_RETURN_LEN));
        assert_eq!(safe_return_path(&long, &public()), None);
    }

    /// Found by fuzzing (redirect target): dot segments resolved after the
    /// decoding check brought an encoded slash to the front of the path.
    #[test]
    fn fuzz_dot_segments_before_an_encoded_slash() {
        for raw in [
            "/psA/../%252f",
            "/x/../%2f/evil.example",
            "/x/../%2F%2Fevil.example",
            "/x/./../%5cevil.example",
            "/x/../%25252f%25252fevil.example",
        ] {
            assert_eq!(safe_return_path(raw, &public()), None, "{raw}");
        }
        assert_eq!(
            safe_return_path("/x/../y%2fz", &public()).as_deref(),
            Some("/y%2fz")
        );
    }

    #[test]
    fn fallback_is_root() {
        assert_eq!(return_path_or_root(Some("//evil"), &public()), "/");
        assert_eq!(return_path_or_root(None, &public()), "/");
        assert_eq!(return_path_or_root(Some("/x?y"), &public()), "/x?y");
    }

    #[test]
    fn accepted_paths_stay_within_the_limit_after_encoding() {
        let public = Url::parse("http://127.0.0.1:3000").unwrap();
        // 1,000 quotes in a query encode to 3,000 bytes.
        let raw = format!("/a?{}", "'".repeat(1000));
        assert!(raw.len() <= MAX_RETURN_LEN);
        assert_eq!(safe_return_path(&raw, &public), None);
        let fits = format!("/a?{}", "'".repeat(600));
        let out = safe_return_path(&fits, &public).unwrap();
        assert_eq!(safe_return_path(&out, &public), Some(out.clone()));
    }
}
