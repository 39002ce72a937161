//! `route_rules::parse` on arbitrary `routes` specs (raw text, and JSON-shaped
//! rules so the per-rule checks run), then `find` for arbitrary request paths
//! through the same normalization the router uses.
#![no_main]

use arbitrary::Arbitrary;
use edgeauth_core::paths::normalize;
use edgeauth_core::route_rules::{find, parse};
use http::Method;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

#[derive(Arbitrary, Debug)]
struct Rule {
    path: String,
    public: bool,
    methods: Vec<String>,
    allowed_groups: Vec<String>,
    allowed_email_domains: Vec<String>,
    api: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    raw: Option<String>,
    rules: Vec<Rule>,
    requests: Vec<(String, String)>,
}

fuzz_target!(|input: Input| {
    let spec = input.raw.unwrap_or_else(|| {
        let rules: Vec<_> = input
            .rules
            .iter()
            .map(|r| {
                json!({"path": r.path, "public": r.public, "methods": r.methods,
                       "allowed_groups": r.allowed_groups,
                       "allowed_email_domains": r.allowed_email_domains, "api": r.api})
            })
            .collect();
        serde_json::to_string(&rules).unwrap()
    });
    let Ok(rules) = parse(&spec) else {
        return;
    };
    assert!(rules.len() <= 64);
    for (path, method) in &input.requests {
        let method = Method::from_bytes(method.as_bytes()).unwrap_or(Method::GET);
        if let Ok(p) = normalize(path)
            && let Some(rule) = find(&rules, &p, &method)
        {
            // Matching is a pure function of the normalized path.
            assert!(std::ptr::eq(
                rule,
                find(&rules, &normalize(&p).unwrap(), &method).unwrap()
            ));
        }
        // `find` is public: it must not panic on a path nobody normalized.
        let _ = find(&rules, path, &method);
    }
});
