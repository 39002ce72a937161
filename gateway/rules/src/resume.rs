//! Pausing a sign-in at a rule's redirect and resuming it at
//! `/.edgeauth/continue`.
//!
//! A paused sign-in is stored in KV under a random nonce. The browser gets
//! the nonce twice, sealed: in the link (`state`, bound to this purpose) and
//! in a cookie; both must open and name the same nonce, so a link alone
//! (leaked, or planted by someone else) resumes nothing.

use edgeauth_core::Rng;
use edgeauth_core::cookies::{self, Jar};
use edgeauth_core::encoding::b64url;
use edgeauth_core::seal::Purpose;
use edgeauth_core::settings::Settings;
use http::request::Parts;
use serde::{Deserialize, Serialize};

use crate::config::TenantRules;
use crate::record::Pending;

pub const CONTINUE: &str = "/.edgeauth/continue";
/// How long the browser has to come back from a rule's redirect.
pub const RESUME_TTL_SECS: u64 = 900;
/// Fields accepted at the continue endpoint.
pub const MAX_RESUME_FIELDS: usize = 32;
pub const MAX_RESUME_FIELD: usize = 1024;
pub const MAX_RESUME_FIELD_NAME: usize = 128;

/// The sealed values binding a paused sign-in to the URL and the browser.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResumeToken {
    /// "state" (in the URL) or "cookie".
    k: String,
    n: String,
    e: u64,
}

/// A fresh nonce for a paused sign-in.
pub fn new_nonce(rng: Rng<'_>) -> String {
    let mut b = [0u8; 16];
    rng(&mut b);
    b64url(&b)
}

fn seal(settings: &Settings, kind: &str, nonce: &str, expires: u64, rng: Rng<'_>) -> String {
    let token = ResumeToken {
        k: kind.into(),
        n: nonce.into(),
        e: expires,
    };
    settings.session_keys.seal(
        Purpose::RuleResume,
        &serde_json::to_vec(&token).unwrap_or_default(),
        rng,
    )
}

fn open(settings: &Settings, kind: &str, sealed: &str, now: u64) -> Option<ResumeToken> {
    let plain = settings
        .session_keys
        .open(Purpose::RuleResume, sealed)
        .ok()?;
    let t: ResumeToken = serde_json::from_slice(&plain).ok()?;
    (t.k == kind && t.e > now).then_some(t)
}

/// Where the browser goes when a rule pauses the sign-in: the rule's URL with
/// the sealed `state`, and the `Set-Cookie` for the resume cookie.
pub fn pause_target(
    settings: &Settings,
    url: &str,
    nonce: &str,
    expires: u64,
    rng: Rng<'_>,
) -> (String, String) {
    let state = seal(settings, "state", nonce, expires, rng);
    let sep = if url.contains('?') { '&' } else { '?' };
    let target = format!(
        "{url}{sep}state={}",
        url::form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>()
    );
    let cookie = cookies::set(
        settings,
        Jar::Resume,
        seal(settings, "cookie", nonce, expires, rng),
        RESUME_TTL_SECS,
    );
    (target, cookie)
}

/// Why a continue request cannot resume; each has a sentence for the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeError {
    BadLink,
    OtherBrowser,
    BadFields,
    Used,
    OtherSite,
    NoRules,
    TenantGone,
    RulesChanged,
}

impl ResumeError {
    pub fn detail(self) -> &'static str {
        match self {
            ResumeError::BadLink => {
                "This link does not continue a sign-in in progress, or it expired."
            }
            ResumeError::OtherBrowser => {
                "This sign-in was started in another browser, or cookies are disabled."
            }
            ResumeError::BadFields => "The form sent too many or too long fields.",
            ResumeError::Used => "This sign-in was already completed or it expired.",
            ResumeError::OtherSite => "This sign-in belongs to another site; sign in again.",
            ResumeError::NoRules => "Sign-in rules are no longer configured; sign in again.",
            ResumeError::TenantGone => "Sign-in rules changed; sign in again.",
            ResumeError::RulesChanged => {
                "Sign-in rules changed while you were away; sign in again."
            }
        }
    }
}

/// A continue request whose link and cookie agree.
#[derive(Debug, Clone, PartialEq)]
pub struct Continue {
    pub nonce: String,
    /// When the paused sign-in expires (sealed in the link).
    pub expires: u64,
    /// What the form sent, for the resumed rule.
    pub fields: Vec<(String, String)>,
}

/// Checks a continue request: the sealed link, the cookie of the same
/// browser, and the size of the form.
pub fn parse_continue(
    settings: &Settings,
    parts: &Parts,
    now: u64,
) -> Result<Continue, ResumeError> {
    let pairs: Vec<(String, String)> = parts
        .uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let state = pairs
        .iter()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    let url_token = open(settings, "state", state, now).ok_or(ResumeError::BadLink)?;
    let cookie =
        cookies::values(&parts.headers, &cookies::name(settings, Jar::Resume)).unwrap_or_default();
    let bound = cookie
        .iter()
        .filter_map(|c| open(settings, "cookie", c, now))
        .any(|t| t.n == url_token.n);
    if !bound {
        return Err(ResumeError::OtherBrowser);
    }
    let fields: Vec<(String, String)> = pairs.into_iter().filter(|(k, _)| k != "state").collect();
    if fields.len() > MAX_RESUME_FIELDS
        || fields
            .iter()
            .any(|(k, v)| k.len() > MAX_RESUME_FIELD_NAME || v.len() > MAX_RESUME_FIELD)
    {
        return Err(ResumeError::BadFields);
    }
    Ok(Continue {
        nonce: url_token.n,
        expires: url_token.e,
        fields,
    })
}

/// Whether `pending` may resume under the tenant and rules served now.
pub fn check_pending<'r>(
    pending: &Pending,
    tenant: &str,
    rules: Option<&'r crate::config::RulesConfig>,
) -> Result<&'r TenantRules, ResumeError> {
    if pending.tenant != tenant {
        return Err(ResumeError::OtherSite);
    }
    let rules = rules.ok_or(ResumeError::NoRules)?;
    let chain = rules
        .tenant(&pending.tenant)
        .ok_or(ResumeError::TenantGone)?;
    if chain.chain.get(pending.index).map(|r| r.name.as_str()) != Some(pending.rule.as_str()) {
        return Err(ResumeError::RulesChanged);
    }
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{counter_rng, pending, rules_config, settings};

    fn continue_parts(query: &str, cookie: Option<&str>) -> Parts {
        let mut b = http::Request::get(format!("{CONTINUE}?{query}"));
        if let Some(c) = cookie {
            b = b.header("cookie", c);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn cookie_pair(set_cookie: &str) -> String {
        set_cookie.split(';').next().unwrap().to_owned()
    }

    fn link_state(target: &str) -> String {
        let url = url::Url::parse(target).unwrap();
        let state = url
            .query_pairs()
            .find(|(k, _)| k == "state")
            .unwrap()
            .1
            .into_owned();
        url::form_urlencoded::byte_serialize(state.as_bytes()).collect()
    }

    #[test]
    fn the_link_resumes_only_with_the_cookie_of_its_browser() {
        let s = settings();
        let mut rng = counter_rng();
        let (target, cookie) =
            pause_target(&s, "https://forms.example/p?x=1", "nonce-1", 2000, &mut rng);
        assert!(target.starts_with("https://forms.example/p?x=1&state="));
        let state = link_state(&target);
        let pair = cookie_pair(&cookie);
        let ok = parse_continue(
            &s,
            &continue_parts(&format!("state={state}&nick=al"), Some(&pair)),
            1000,
        )
        .unwrap();
        assert_eq!(ok.nonce, "nonce-1");
        assert_eq!(ok.expires, 2000);
        assert_eq!(ok.fields, [("nick".into(), "al".into())]);

        // Another pause's cookie, no cookie, the cookie as the link, expiry.
        let (_, other) = pause_target(&s, "https://f/", "nonce-2", 2000, &mut rng);
        let q = format!("state={state}");
        assert_eq!(
            parse_continue(&s, &continue_parts(&q, Some(&cookie_pair(&other))), 1000),
            Err(ResumeError::OtherBrowser)
        );
        assert_eq!(
            parse_continue(&s, &continue_parts(&q, None), 1000),
            Err(ResumeError::OtherBrowser)
        );
        let cookie_value = pair.split_once('=').unwrap().1;
        let swapped = format!(
            "state={}",
            url::form_urlencoded::byte_serialize(cookie_value.as_bytes()).collect::<String>()
        );
        assert_eq!(
            parse_continue(&s, &continue_parts(&swapped, Some(&pair)), 1000),
            Err(ResumeError::BadLink)
        );
        assert_eq!(
            parse_continue(&s, &continue_parts(&q, Some(&pair)), 2000),
            Err(ResumeError::BadLink)
        );
        assert_eq!(
            parse_continue(&s, &continue_parts("state=junk", Some(&pair)), 1000),
            Err(ResumeError::BadLink)
        );
    }

    #[test]
    fn oversized_forms_are_refused() {
        let s = settings();
        let mut rng = counter_rng();
        let (target, cookie) = pause_target(&s, "https://f/", "n", 2000, &mut rng);
        let pair = cookie_pair(&cookie);
        let state = link_state(&target);
        let many: String = (0..=MAX_RESUME_FIELDS)
            .map(|i| format!("&f{i}=1"))
            .collect();
        let long = format!("&f={}", "x".repeat(MAX_RESUME_FIELD + 1));
        let long_name = format!("&{}=1", "k".repeat(MAX_RESUME_FIELD_NAME + 1));
        for extra in [many, long, long_name] {
            assert_eq!(
                parse_continue(
                    &s,
                    &continue_parts(&format!("state={state}{extra}"), Some(&pair)),
                    1000
                ),
                Err(ResumeError::BadFields)
            );
        }
    }

    #[test]
    fn a_paused_sign_in_resumes_only_where_its_rule_still_is() {
        let config = rules_config("acme", &["a", "profile"]);
        let p = pending("acme", 1, "profile");
        assert!(check_pending(&p, "acme", Some(&config)).is_ok());
        assert_eq!(
            check_pending(&p, "other", Some(&config)).err(),
            Some(ResumeError::OtherSite)
        );
        assert_eq!(
            check_pending(&p, "acme", None).err(),
            Some(ResumeError::NoRules)
        );
        let moved = rules_config("acme", &["profile", "a"]);
        assert_eq!(
            check_pending(&p, "acme", Some(&moved)).err(),
            Some(ResumeError::RulesChanged)
        );
        let gone = rules_config("other", &["a", "profile"]);
        assert_eq!(
            check_pending(&p, "acme", Some(&gone)).err(),
            Some(ResumeError::TenantGone)
        );
    }
}
