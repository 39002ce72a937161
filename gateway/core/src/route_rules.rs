//! Per-route rules: public paths (no session needed) and per-route policies
//! (groups, email domains, API behaviour), matched on the normalized path.
//!
//! Rules are tried in order and the first match wins. Public rules match the
//! path exactly as written (case-sensitive), while policy rules match
//! case-insensitively: on a case-insensitive origin `/Admin` must not slip past
//! a rule written for `/admin`, and `/PUBLIC` must not be public by accident.
//! Nothing is public by method, User-Agent or file extension unless a rule says so.

use http::Method;
use serde::Deserialize;

use crate::identity::Identity;
use crate::paths::PathError;
use crate::policy::Denial;
use crate::settings::normalize_domain;

const MAX_RULES: usize = 64;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    path: String,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    allowed_groups: Vec<String>,
    #[serde(default)]
    allowed_email_domains: Vec<String>,
    #[serde(default)]
    api: bool,
    #[serde(default)]
    pass_access_token: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Exact(String),
    /// `/assets/` or `/assets/*`: the prefix itself and everything below it.
    Prefix(String),
}

#[derive(Debug, Clone)]
pub struct RouteRule {
    pattern: Pattern,
    pub public: bool,
    methods: Vec<Method>,
    allowed_groups: Vec<String>,
    allowed_email_domains: Vec<String>,
    /// Unauthenticated requests get 401 JSON instead of a login redirect.
    pub api: bool,
    /// The person's current access token goes to the origin with requests
    /// under this rule (`crate::refresh::ACCESS_TOKEN_HEADER`); never to a
    /// path whose governing rule does not ask for it.
    pub pass_access_token: bool,
}

impl RouteRule {
    fn matches(&self, path: &str, method: &Method) -> bool {
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return false;
        }
        let same = |a: &str, b: &str| {
            if self.public {
                a == b
            } else {
                a.eq_ignore_ascii_case(b)
            }
        };
        match &self.pattern {
            Pattern::Exact(p) => same(path, p),
            Pattern::Prefix(p) => {
                let bare = p.trim_end_matches('/');
                // `get`: a path nobody normalized may split a character there.
                same(path, bare) || path.get(..p.len()).is_some_and(|head| same(head, p))
            }
        }
    }

    /// The rule's own policy (the global one is checked separately).
    pub fn check(&self, identity: &Identity) -> Result<(), Denial> {
        if !self.allowed_groups.is_empty()
            && !identity
                .groups
                .iter()
                .any(|g| self.allowed_groups.contains(g))
        {
            return Err(Denial {
                rule: "allowed groups",
                reason: format!(
                    "this path needs membership in one of: {}",
                    self.allowed_groups.join(", ")
                ),
            });
        }
        if !self.allowed_email_domains.is_empty() {
            match identity.verified_email_domain() {
                Some(d) if self.allowed_email_domains.iter().any(|a| a == d) => {}
                _ => {
                    return Err(Denial {
                        rule: "allowed email domains",
                        reason: "this path needs a verified email address at an allowed domain"
                            .into(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Parses the `routes` variable: a JSON array of
/// `{"path": "/public/", "public": true, "methods": ["GET"], "allowed_groups": [..],
///   "allowed_email_domains": [..], "api": false}`.
pub fn parse(spec: &str) -> Result<Vec<RouteRule>, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Ok(Vec::new());
    }
    let specs: Vec<RuleSpec> =
        serde_json::from_str(spec).map_err(|e| format!("not a JSON array of rules ({e})"))?;
    if specs.len() > MAX_RULES {
        return Err(format!("at most {MAX_RULES} rules are accepted"));
    }
    specs
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            let n = i + 1;
            let normalized = crate::paths::normalize(s.path.trim_end_matches('*'))
                .map_err(|e| format!("rule {n}: path `{}`: {e}", s.path))?;
            if normalized.starts_with(crate::routes::PREFIX) {
                return Err(format!(
                    "rule {n}: `{}` is reserved for the gateway",
                    s.path
                ));
            }
            let pattern = if s.path.ends_with('/') || s.path.ends_with("/*") {
                Pattern::Prefix(normalized)
            } else if s.path.contains('*') {
                return Err(format!("rule {n}: `*` is only allowed as a final `/*`"));
            } else {
                Pattern::Exact(normalized)
            };
            if s.public && s.pass_access_token {
                return Err(format!(
                    "rule {n}: a public path cannot pass the access token (anyone could ask for it)"
                ));
            }
            if s.public && (!s.allowed_groups.is_empty() || !s.allowed_email_domains.is_empty()) {
                return Err(format!(
                    "rule {n}: a public path cannot also require groups or email domains"
                ));
            }
            let methods = s
                .methods
                .iter()
                .map(|m| {
                    Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                        .map_err(|_| format!("rule {n}: `{m}` is not an HTTP method"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let allowed_email_domains = s
                .allowed_email_domains
                .iter()
                .map(|d| {
                    normalize_domain(d).ok_or_else(|| format!("rule {n}: `{d}` is not a domain"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(RouteRule {
                pattern,
                public: s.public,
                methods,
                allowed_groups: s.allowed_groups,
                allowed_email_domains,
                api: s.api,
                pass_access_token: s.pass_access_token,
            })
        })
        .collect()
}

/// Whether any route passes the access token (then sign-ins keep it).
pub fn any_pass_token(settings: &crate::settings::Settings) -> bool {
    settings.routes.iter().any(|r| r.pass_access_token)
}

/// The first rule matching the normalized `path` and `method`.
pub fn find<'a>(rules: &'a [RouteRule], path: &str, method: &Method) -> Option<&'a RouteRule> {
    rules.iter().find(|r| r.matches(path, method))
}

/// The rule governing the normalized `path`, which must be the same whether
/// or not the origin drops trailing dots and spaces from segments
/// ([`crate::paths::trimmed_reading`]): `/admin./x` is `/admin/x` on IIS, so
/// a rule for `/admin/` must see it, while `/wiki/D.C.` under no rule boundary
/// passes unchanged. When the two readings fall under different rules (or
/// one under none) the path is refused rather than guessed at.
pub fn governing<'a>(
    rules: &'a [RouteRule],
    path: &str,
    method: &Method,
) -> Result<Option<&'a RouteRule>, PathError> {
    let rule = find(rules, path, method);
    if let Some(trimmed) = crate::paths::trimmed_reading(path) {
        let other = find(rules, &trimmed, method);
        let same = match (rule, other) {
            (None, None) => true,
            (Some(a), Some(b)) => std::ptr::eq(a, b),
            _ => false,
        };
        if !same {
            return Err(PathError::Ambiguous(
                "a segment ending in dots or spaces, which some servers drop, so it could be \
                 read as a path under another rule",
            ));
        }
    }
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Vec<RouteRule> {
        parse(
            r#"[
              {"path": "/public/", "public": true},
              {"path": "/healthz", "public": true},
              {"path": "/api/preflight/*", "public": true, "methods": ["OPTIONS"]},
              {"path": "/admin/", "allowed_groups": ["admins"]},
              {"path": "/api/", "api": true}
            ]"#,
        )
        .unwrap()
    }

    fn public(path: &str, method: Method) -> bool {
        find(&rules(), path, &method).is_some_and(|r| r.public)
    }

    #[test]
    fn public_paths_match_exactly() {
        assert!(public("/public/", Method::GET));
        assert!(public("/public", Method::GET));
        assert!(public("/public/css/app.css", Method::GET));
        assert!(public("/healthz", Method::POST));
        assert!(!public("/healthz/x", Method::GET));
        assert!(!public("/publicity", Method::GET));
        assert!(!public("/PUBLIC/x", Method::GET));
        assert!(!public("/Healthz", Method::GET));
        assert!(!public("/admin", Method::GET));
        assert!(public("/api/preflight/x", Method::OPTIONS));
        assert!(!public("/api/preflight/x", Method::GET));
        assert!(
            !public("/other", Method::OPTIONS),
            "no method is public by default"
        );
    }

    #[test]
    fn policy_rules_match_any_case() {
        let all = rules();
        let admin = find(&all, "/ADMIN/users", &Method::GET).unwrap();
        let alice = Identity {
            sub: "a".into(),
            email: None,
            email_verified: false,
            name: None,
            groups: vec!["admins".into()],
            ..Default::default()
        };
        let bob = Identity {
            groups: vec!["users".into()],
            ..alice.clone()
        };
        assert!(admin.check(&alice).is_ok());
        assert_eq!(admin.check(&bob).unwrap_err().rule, "allowed groups");
        assert!(find(&rules(), "/api/x", &Method::GET).unwrap().api);
    }

    /// Found by fuzzing (route_rules target): `find` sliced a non-normalized
    /// path inside a multi-byte character and panicked.
    #[test]
    fn fuzz_unnormalized_non_ascii_path_does_not_panic() {
        let all = parse(r#"[{"path": "/t/", "public": true}, {"path": "/*"}]"#).unwrap();
        assert!(find(&all, "\u{40b};[88001", &Method::GET).is_none());
        assert!(find(&all, "/t\u{40b}", &Method::GET).is_some_and(|r| !r.public));
        assert!(find(&all, "/t/x", &Method::GET).is_some_and(|r| r.public));
    }

    #[test]
    fn trimmed_segments_must_fall_under_the_same_rule() {
        let all = parse(
            r#"[{"path": "/public/", "public": true}, {"path": "/admin/", "allowed_groups": ["admins"]},
                {"path": "/reports/q1", "allowed_groups": ["admins"]}]"#,
        )
        .unwrap();
        let get = |p: &str| {
            let path = crate::paths::normalize(p).unwrap();
            governing(&all, &path, &Method::GET)
        };
        for p in [
            "/admin./x",
            "/ADMIN%20/x",
            "/admin.%20",
            "/reports/q1.",
            "/reports%20/q1",
            "/public./x",
        ] {
            assert!(get(p).is_err(), "{p}");
        }
        assert!(get("/admin/notes.").unwrap().is_some_and(|r| !r.public));
        assert!(get("/public/a.").unwrap().is_some_and(|r| r.public));
        assert!(get("/wiki/Washington,_D.C.").unwrap().is_none());
        assert!(get("/admins./x").unwrap().is_none());
    }

    #[test]
    fn bad_rules_are_reported() {
        for (spec, needle) in [
            ("{", "JSON"),
            (r#"[{"path": "/a/*/b", "public": true}]"#, "final"),
            (r#"[{"path": "/.edgeauth/x", "public": true}]"#, "reserved"),
            (r#"[{"path": "/a;b", "public": true}]"#, "rule 1"),
            (
                r#"[{"path": "/a", "public": true, "allowed_groups": ["x"]}]"#,
                "cannot",
            ),
            (r#"[{"path": "/a", "methods": ["G T"]}]"#, "method"),
            (r#"[{"path": "/a", "unknown": 1}]"#, "unknown"),
        ] {
            let e = parse(spec).unwrap_err();
            assert!(e.contains(needle), "{spec}: {e}");
        }
        assert!(parse("").unwrap().is_empty());
    }
}
