//! One normalized request path, used both to match route rules and as the path
//! forwarded to the origin, so the two can never disagree.
//!
//! Decision on ambiguity: anything a server might read two ways is refused
//! with 400 instead of guessed at: encoded `/` `\` `;` `#` `%` and NUL,
//! backslashes, `;` path parameters (Tomcat drops them: `/admin;x/` is
//! `/admin/` there), control characters including tab (raw or `%09`),
//! Unicode blanks that servers trim, invalid UTF-8, NTFS stream names
//! (`admin::$DATA`, `admin:$i30:$INDEX_ALLOCATION` are `admin` on IIS), 8.3
//! short names (`ADMINI~1`), segments made only of dots and spaces, and dot
//! segments that climb above the root. Escapes of unreserved characters
//! (`%41`, `%2e`) are decoded, dot segments resolved, and doubled slashes
//! collapsed.
//!
//! Trailing dots and spaces (`/admin./`, `/admin%20/`, `/admin.%20/`) are
//! legitimate in most servers (`/wiki/Washington,_D.C.`) but dropped by
//! Windows/NTFS-backed ones. They are kept in the forwarded path, and
//! [`trimmed_reading`] gives the path as such servers read it: route rules
//! must govern both readings with the same rule, or the request is refused
//! (`route_rules::governing`), the way policy rules match in any letter case
//! because some servers ignore case.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not origin-form (`/...`).
    NotAbsolute,
    TooLong,
    /// Something servers disagree on; refused rather than interpreted.
    Ambiguous(&'static str),
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathError::NotAbsolute => write!(f, "the path must start with /"),
            PathError::TooLong => write!(f, "the path is too long"),
            PathError::Ambiguous(why) => write!(f, "the path contains {why}"),
        }
    }
}

pub const MAX_PATH_LEN: usize = 8 * 1024;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Characters that NFKC-normalizing servers read as ASCII: fullwidth and
/// halfwidth forms (`．` `／` `Ａ`), small and vertical forms, general
/// punctuation (leaders, fraction slash), division slash, set minus and big
/// solidi, ideographic space and full stop, and letters whose case mapping
/// lands in ASCII (dotless i, long s, Kelvin sign). A path holding one could match a
/// rule here and mean another path at the origin.
fn folds_to_ascii(c: char) -> bool {
    matches!(
        u32::from(c),
        // dotless i, long s and the Kelvin sign change case into ASCII letters
        0x0131 | 0x017F | 0x212A
            | 0x2000..=0x206F
            | 0x2215
            | 0x2216
            | 0x29F5
            | 0x29F8
            | 0x29F9
            | 0x3000
            | 0x3002
            | 0xFE10..=0xFE1F
            | 0xFE30..=0xFE6F
            | 0xFF00..=0xFFEF
    )
}

/// Normalizes the path part of a request target (no query).
pub fn normalize(raw: &str) -> Result<String, PathError> {
    if raw.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    // Pass 1: decode escapes of unreserved characters, keep others encoded
    // (upper-cased), refuse the ambiguous ones.
    let bytes = raw.as_bytes();
    let mut decoded: Vec<u8> = Vec::with_capacity(bytes.len());
    // Fully decoded bytes, only to check that escapes spell valid UTF-8.
    let mut plain: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::Ambiguous("a malformed percent-escape"));
                };
                let v = h << 4 | l;
                plain.push(v);
                match v {
                    b'/' => return Err(PathError::Ambiguous("an encoded slash (%2F)")),
                    b'\\' => return Err(PathError::Ambiguous("an encoded backslash (%5C)")),
                    b';' => return Err(PathError::Ambiguous("an encoded semicolon (%3B)")),
                    b'#' => return Err(PathError::Ambiguous("an encoded fragment mark (%23)")),
                    b'%' => return Err(PathError::Ambiguous("a double-encoded escape (%25)")),
                    0x00..=0x1f | 0x7f => {
                        return Err(PathError::Ambiguous("an encoded control character"));
                    }
                    v if unreserved(v) => decoded.push(v),
                    v => {
                        decoded.push(b'%');
                        decoded.extend_from_slice(format!("{v:02X}").as_bytes());
                    }
                }
                i += 3;
                continue;
            }
            b'\\' => return Err(PathError::Ambiguous("a backslash")),
            b';' => return Err(PathError::Ambiguous("a ; path parameter")),
            b'#' => return Err(PathError::Ambiguous("a fragment mark")),
            b'?' => return Err(PathError::Ambiguous("a query mark in the path")),
            0x00..=0x20 | 0x7f..=0xff => {
                return Err(PathError::Ambiguous("a space, control or non-ASCII byte"));
            }
            _ => {
                decoded.push(b);
                plain.push(b);
            }
        }
        i += 1;
    }
    let Ok(plain) = std::str::from_utf8(&plain) else {
        return Err(PathError::Ambiguous("invalid UTF-8"));
    };
    if plain.chars().any(folds_to_ascii) {
        return Err(PathError::Ambiguous(
            "a character that Unicode normalization turns into ASCII punctuation or letters",
        ));
    }
    if plain.chars().any(trimmed_as_blank) {
        return Err(PathError::Ambiguous(
            "an invisible or blank Unicode character that servers trim",
        ));
    }
    if plain.contains(":$") {
        return Err(PathError::Ambiguous(
            "an NTFS stream name (`:$`), which IIS reads as the segment before it",
        ));
    }
    if plain.split('/').any(is_short_name) {
        return Err(PathError::Ambiguous(
            "a Windows 8.3 short name (`NAME~1`), which NTFS reads as a longer name",
        ));
    }
    let text = String::from_utf8(decoded).map_err(|_| PathError::Ambiguous("invalid UTF-8"))?;

    // Pass 2: segments; empty ones (doubled slashes) and `.` vanish, `..` pops.
    let mut segments: Vec<&str> = Vec::new();
    for seg in text.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::Ambiguous("dot segments above the root"));
                }
            }
            s if trim_windows(s).is_empty() => {
                return Err(PathError::Ambiguous(
                    "a segment made only of dots and spaces",
                ));
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(text.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    // A trailing slash is meaningful (directory vs file); keep it.
    if out.is_empty()
        || (text.ends_with('/') && !segments.is_empty())
        || text.ends_with("/.")
        || text.ends_with("/..")
    {
        out.push('/');
    }
    Ok(out)
}

/// Blanks outside ASCII that `trim()`/`strip()` in common server languages
/// remove (NEL, no-break space, Ogham space, Mongolian vowel separator, BOM);
/// the general-punctuation and ideographic ones are refused by
/// [`folds_to_ascii`] already.
fn trimmed_as_blank(c: char) -> bool {
    matches!(u32::from(c), 0x0085 | 0x00A0 | 0x1680 | 0x180E | 0xFEFF)
}

/// `NAME~1` or `NAME~12.EXT`: how NTFS names a long file for 8.3 clients; IIS
/// serves the long name under it.
fn is_short_name(segment: &str) -> bool {
    let Some((stem, rest)) = segment.split_once('~') else {
        return false;
    };
    let digits = rest.split('.').next().unwrap_or("");
    (1..=6).contains(&stem.len())
        && !digits.is_empty()
        && digits.len() <= 6
        && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A normalized segment without what Win32 path handling drops from its
/// end: dots and spaces (spaces appear as `%20` in a normalized path).
fn trim_windows(segment: &str) -> &str {
    let mut s = segment;
    loop {
        let t = s.trim_end_matches('.');
        let t = t.strip_suffix("%20").unwrap_or(t);
        if t.len() == s.len() {
            return s;
        }
        s = t;
    }
}

/// The normalized `path` as Windows/NTFS-backed servers read it (trailing
/// dots and spaces dropped from each segment); `None` if that is the path.
pub fn trimmed_reading(path: &str) -> Option<String> {
    let trimmed: Vec<&str> = path.split('/').map(trim_windows).collect();
    let out = trimmed.join("/");
    (out != path).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes() {
        for (raw, want) in [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a//b", "/a/b"),
            ("//a", "/a"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/public/../admin", "/admin"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E%2E/admin", "/admin"),
            ("/public/.%2e/admin", "/admin"),
            ("/%61dmin", "/admin"),
            ("/a/", "/a/"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/caf%c3%a9", "/caf%C3%A9"),
            ("/x%20y", "/x%20y"),
            ("/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,="),
        ] {
            assert_eq!(normalize(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn refuses_ambiguous() {
        for raw in [
            "/public%2f..%2fadmin",
            "/public%2F..%2Fadmin",
            "/public%5c..%5cadmin",
            "/public\\..\\admin",
            "/public;/../admin",
            "/admin;jsessionid=1",
            "/public%3b/../admin",
            "/public%23/../admin",
            "/public#/../admin",
            "/%252e%252e/admin",
            "/a%00b",
            "/a%0ab",
            "/a\tb",
            "/a b",
            "/%",
            "/%zz",
            "/%c3",
            "/..",
            "/../admin",
            "/a/../../admin",
            "/é",
            "/public/%EF%BC%8E%EF%BC%8E/private",
            "/public%EF%BC%8F..%EF%BC%8Fadmin/x",
            "/%EF%BC%A1dmin",
            "/a%E2%80%A4%E2%80%A4/b",
            "/a%E2%88%95b",
            "/a%E3%80%82b",
            "/adm%C4%B1n/x",
            "/%C5%BFecret",
            "/%E2%84%AAey",
            "/admin%09/x",
            "/admin%C2%A0/x",
            "/admin%C2%85/x",
            "/admin%E1%9A%80/x",
            "/admin%EF%BB%BF/x",
            "/admin::$DATA/x",
            "/admin:$i30:$INDEX_ALLOCATION/x",
            "/admin%3A%3A%24DATA/x",
            "/admin::%24data",
            "/ADMINI~1/x",
            "/a/PROGRA~12.TXT",
            "/.../x",
            "/a/..%2e/x",
            "/a/.%20/x",
            "/%20/x",
            "/a/%20.%20",
        ] {
            assert!(
                normalize(raw).is_err(),
                "accepted {raw:?} as {:?}",
                normalize(raw)
            );
        }
        assert_eq!(normalize("admin"), Err(PathError::NotAbsolute));
        assert_eq!(
            normalize(&format!("/{}", "a".repeat(MAX_PATH_LEN))),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn keeps_names_that_only_look_windows_like() {
        for raw in [
            "/~alice/x",
            "/a~b/x",
            "/wiki/Washington,_D.C.",
            "/Special:Search",
            "/x$y",
            "/admin%20x/y",
        ] {
            assert!(normalize(raw).is_ok(), "{raw}");
        }
    }

    #[test]
    fn trimmed_readings() {
        for (raw, want) in [
            ("/admin./x", Some("/admin/x")),
            ("/admin%20/x", Some("/admin/x")),
            ("/admin%2e%20./x", Some("/admin/x")),
            ("/admin.%20", Some("/admin")),
            ("/a/b./c../", Some("/a/b/c/")),
            ("/admin/x", None),
            ("/admin%20x/y", None),
            ("/", None),
            ("/a/", None),
        ] {
            let path = normalize(raw).unwrap();
            assert_eq!(trimmed_reading(&path).as_deref(), want, "{raw}");
        }
    }

    #[test]
    fn idempotent() {
        for raw in ["/a//b/../c/", "/%41%42/./x", "/q%20r/%C3%A9"] {
            let once = normalize(raw).unwrap();
            assert_eq!(normalize(&once).unwrap(), once);
        }
    }
}
