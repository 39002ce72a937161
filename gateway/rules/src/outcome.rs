//! What the gateway does when a chain ends: the pages, the audit lines and
//! the state to store, as one [`Step`] for the component to carry out.

use edgeauth_core::Response;
use edgeauth_core::Rng;
use edgeauth_core::callback::{self, CallbackStart, Tokens};
use edgeauth_core::cookies::{self, Jar};
use edgeauth_core::identity::Identity;
use edgeauth_core::kv_schema;
use edgeauth_core::login::LoginState;
use edgeauth_core::pages;
use edgeauth_core::routes;
use edgeauth_core::session::Extras;
use edgeauth_core::settings::Settings;
use http::StatusCode;
use serde_json::json;

use crate::chain::{End, Line, Progress};
use crate::deploy::Pinned;
use crate::event::Event;
use crate::failure::Failure;
use crate::record::Pending;
use crate::resume::{self, RESUME_TTL_SECS, ResumeError};

fn clear_login(settings: &Settings, mut resp: Response) -> Response {
    pages::add_cookie(&mut resp, &cookies::clear(settings, Jar::Login));
    resp
}

pub fn denied(settings: &Settings, rule: &str, reason: &str) -> Response {
    let detail = if reason.is_empty() {
        format!("Denied by the sign-in rule \u{201c}{rule}\u{201d}.")
    } else {
        format!("Denied by the sign-in rule \u{201c}{rule}\u{201d}: {reason}")
    };
    clear_login(
        settings,
        pages::error_with_link(
            StatusCode::FORBIDDEN,
            "Access denied",
            &detail,
            routes::LOGOUT,
            "Sign in with another account",
        ),
    )
}

/// The page names the failure's class and the log reference only: the
/// detail (paths, a rule's own error text) goes to the audit line.
pub fn failed(
    settings: &Settings,
    rule: &str,
    failure: &Failure,
    correlation_id: &str,
) -> Response {
    clear_login(
        settings,
        pages::error_with_link(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sign-in failed",
            &format!(
                "The sign-in rule \u{201c}{rule}\u{201d} could not complete: {}. You have not been signed in. \
                 The administrator can find this sign-in in the gateway's log under reference {correlation_id}.",
                failure.summary(),
            ),
            &format!("{}?rd=/", routes::LOGIN),
            "Try again",
        ),
    )
}

/// A continue request that cannot resume. The resume cookie is kept: a
/// forged or foreign link must not cancel the sign-in in progress.
pub fn resume_error(error: ResumeError) -> Response {
    pages::error_with_link(
        StatusCode::BAD_REQUEST,
        "Sign-in expired",
        error.detail(),
        &format!("{}?rd=/", routes::LOGIN),
        "Sign in again",
    )
}

/// The sign-in a chain ran for.
pub struct Finish {
    pub identity: Identity,
    pub id_token: String,
    /// The session grant stored at the callback (`edgeauth_core::refresh`).
    pub session: Option<edgeauth_core::refresh::Handle>,
    pub login: LoginState,
    pub base: Event,
    /// Whether the chain ran at the continue endpoint (the resume cookie
    /// then goes unless the chain paused again).
    pub resumed: bool,
    /// The rule versions the sign-in runs (kept if it pauses).
    pub pinned: Pinned,
}

/// What the component does next.
pub enum Step {
    /// Log `audit`, answer `response`.
    Respond {
        response: Response,
        audit: Option<Line>,
    },
    /// The rules changed the person's metadata: write it into their profile
    /// (`edgeauth_core::profiles::Profile::set_rule_metadata`), then answer
    /// `response`; if the profile cannot be written (or no longer exists),
    /// answer `on_failure`: a rule's change is never lost silently.
    SaveMetadata {
        profile_id: Option<String>,
        app: serde_json::Value,
        user: serde_json::Value,
        response: Response,
        on_failure: Response,
    },
    /// Store the paused sign-in, log `audit`, answer `response` (or
    /// `on_failure` when it cannot be stored).
    Pause {
        key: String,
        value: Vec<u8>,
        expires_at: u64,
        audit: Line,
        response: Response,
        on_failure: Response,
    },
    /// A fresh login with these parameters (carried out by the component).
    Reauth {
        rule: String,
        /// The connection the person signed in with: asked again.
        connection: String,
        prompt_login: bool,
        max_age: Option<u32>,
        return_to: String,
        audit: Line,
    },
}

fn audit(event: &str, fin: &Finish, rule: &str) -> serde_json::Value {
    json!({
        "event": event, "tenant": fin.base.tenant_id, "rule": rule,
        "sub": fin.identity.sub, "correlation_id": fin.base.transaction.correlation_id,
    })
}

/// After a resumed chain that did not pause again, the resume cookie goes.
fn after_resume(settings: &Settings, fin: &Finish, mut resp: Response) -> Response {
    if fin.resumed {
        pages::add_cookie(&mut resp, &cookies::clear(settings, Jar::Resume));
    }
    resp
}

/// The step for a chain that ended with `end`.
pub fn finish(
    settings: &Settings,
    fin: Finish,
    end: End,
    progress: Progress,
    now: u64,
    rng: Rng<'_>,
) -> Step {
    match end {
        End::Done => {
            let extras = Extras {
                claims: progress.claims,
                headers: progress.headers,
            };
            let on_failure = after_resume(settings, &fin, pages::storage_unavailable());
            let resumed = fin.resumed;
            let profile_id = fin.identity.profile_id.clone();
            let start = CallbackStart {
                login: fin.login,
                code: String::new(),
                iss: None,
            };
            let mut response = callback::complete_with_extras(
                settings,
                fin.identity,
                extras,
                Tokens {
                    session: fin.session,
                    ..Tokens::id_token(fin.id_token)
                },
                &start,
                now,
                rng,
            );
            if resumed {
                pages::add_cookie(&mut response, &cookies::clear(settings, Jar::Resume));
            }
            if !progress.metadata_changed {
                return Step::Respond {
                    response,
                    audit: None,
                };
            }
            Step::SaveMetadata {
                profile_id,
                app: progress.app,
                user: progress.user,
                response,
                on_failure,
            }
        }
        End::Deny { rule, reason } => Step::Respond {
            audit: Some(Line::Audit(audit("login-denied", &fin, &rule))),
            response: after_resume(settings, &fin, denied(settings, &rule, &reason)),
        },
        End::Failed { rule, failure } => {
            let mut line = audit("login-failed", &fin, &rule);
            line["kind"] = json!(failure.kind());
            line["detail"] = json!(failure.to_string());
            let page = failed(
                settings,
                &rule,
                &failure,
                &fin.base.transaction.correlation_id,
            );
            Step::Respond {
                audit: Some(Line::Audit(line)),
                response: after_resume(settings, &fin, page),
            }
        }
        End::Redirect { index, rule, url } => {
            let nonce = resume::new_nonce(rng);
            let expires = now + RESUME_TTL_SECS;
            let line = Line::Audit(audit("login-paused", &fin, &rule));
            let on_failure = pages::storage_unavailable();
            let pending = Pending {
                tenant: fin.base.tenant_id.clone(),
                index,
                rule,
                identity: fin.identity,
                login: fin.login,
                id_token: fin.id_token,
                session: fin.session,
                progress,
                base: fin.base,
                expires,
                pinned: Some(fin.pinned),
            };
            let (target, cookie) = resume::pause_target(settings, &url, &nonce, expires, rng);
            let mut response = clear_login(settings, pages::redirect(&target));
            pages::add_cookie(&mut response, &cookie);
            Step::Pause {
                key: kv_schema::rule_resume(&nonce),
                value: pending.encode(),
                expires_at: expires,
                audit: line,
                response,
                on_failure,
            }
        }
        End::Reauth {
            rule,
            prompt_login,
            max_age,
        } => Step::Reauth {
            audit: Line::Audit(audit("login-reauth", &fin, &rule)),
            rule,
            connection: fin.identity.connection_id().to_owned(),
            prompt_login,
            max_age,
            return_to: fin.login.return_to,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{alice, counter_rng, login_state, settings};

    fn fin(resumed: bool) -> Finish {
        let mut base = Event {
            tenant_id: "acme".into(),
            ..Event::default()
        };
        base.transaction.correlation_id = "cid-7".into();
        base.transaction.login_count = 4;
        Finish {
            identity: alice(),
            id_token: "h.p.s".into(),
            session: None,
            login: login_state(),
            base,
            resumed,
            pinned: Pinned::default(),
        }
    }

    fn body(r: &Response) -> String {
        String::from_utf8_lossy(r.body()).into_owned()
    }

    fn set_cookies(r: &Response) -> Vec<String> {
        r.headers()
            .get_all(http::header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The page and audit line of a sign-in whose rule `rule` failed.
    fn failed(rule: &str, failure: Failure) -> (Response, serde_json::Value) {
        let step = finish(
            &settings(),
            fin(false),
            End::Failed {
                rule: rule.into(),
                failure,
            },
            Progress::default(),
            1000,
            &mut counter_rng(),
        );
        let Step::Respond {
            response,
            audit: Some(Line::Audit(line)),
        } = step
        else {
            panic!("a failure answers at once");
        };
        (response, line)
    }

    #[test]
    fn failure_pages_name_the_class_and_reference_not_the_detail() {
        let (response, line) = failed(
            "a",
            Failure::Load("cannot read /srv/secret/rules/a.wasm: No such file".into()),
        );
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let page = body(&response);
        assert!(
            page.contains("could not complete: it could not be loaded."),
            "{page}"
        );
        assert!(page.contains("cid-7"));
        assert!(!page.contains("/srv/secret"), "{page}");
        assert!(line["detail"].as_str().unwrap().contains("/srv/secret"));
        assert_eq!(line["correlation_id"], "cid-7");
        assert!(set_cookies(&response)[0].starts_with("edgeauth_login=;"));
    }

    #[test]
    fn a_crashed_rule_gets_a_generic_page_and_its_panic_goes_to_the_audit_line() {
        let (response, line) = failed(
            "plans",
            Failure::Trap("rule panicked at src/lib.rs:3:5: no plan for `acme`".into()),
        );
        let page = body(&response);
        assert!(page.contains("it crashed."), "{page}");
        assert!(page.contains("under reference cid-7"), "{page}");
        for internal in [
            "wasm",
            "trap",
            "unreachable",
            "panicked",
            "src/lib.rs",
            "acme",
        ] {
            assert!(
                !page.to_lowercase().contains(internal),
                "{internal} in {page}"
            );
        }
        assert_eq!(line["kind"], "trap");
        assert_eq!(
            line["detail"],
            "it crashed (rule panicked at src/lib.rs:3:5: no plan for `acme`)"
        );
    }

    #[test]
    fn done_signs_in_and_saves_changed_metadata_into_the_profile() {
        let s = settings();
        let mut progress = Progress::starting(&json!({"a": 1}), &json!({}));
        progress.claims.insert("plan".into(), json!("pro"));
        let step = finish(
            &s,
            fin(true),
            End::Done,
            progress.clone(),
            1000,
            &mut counter_rng(),
        );
        let Step::Respond { response, audit } = step else {
            panic!("nothing to save when no rule changed metadata");
        };
        assert!(audit.is_none());
        assert_eq!(response.status(), StatusCode::FOUND);

        progress.metadata_changed = true;
        progress.user = json!({"company": "Acme"});
        let mut who = fin(true);
        who.identity.profile_id = Some("p_aaaaaaaaaaaaaaaaaaaaaaaaaa".into());
        let step = finish(&s, who, End::Done, progress, 1000, &mut counter_rng());
        let Step::SaveMetadata {
            profile_id,
            app,
            user,
            response,
            on_failure,
        } = step
        else {
            panic!("changed metadata is saved");
        };
        assert_eq!(profile_id.as_deref(), Some("p_aaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert_eq!((app, user), (json!({"a": 1}), json!({"company": "Acme"})));
        assert_eq!(response.status(), StatusCode::FOUND);
        let cookies = set_cookies(&response);
        assert!(cookies.iter().any(|c| c.starts_with("edgeauth_session=")));
        assert!(cookies.iter().any(|c| c.starts_with("edgeauth_resume=;")));
        assert_eq!(on_failure.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn a_pause_stores_the_sign_in_until_its_link_expires() {
        let s = settings();
        let mut paused = fin(false);
        paused.pinned = Pinned {
            deployment: 7,
            versions: [("profile".to_owned(), "1111111111111111".to_owned())]
                .into_iter()
                .collect(),
        };
        let step = finish(
            &s,
            paused,
            End::Redirect {
                index: 2,
                rule: "profile".into(),
                url: "https://forms.example/p".into(),
            },
            Progress::default(),
            1000,
            &mut counter_rng(),
        );
        let Step::Pause {
            key,
            value,
            expires_at,
            response,
            ..
        } = step
        else {
            panic!("a redirect pauses");
        };
        assert!(key.starts_with("rule-resume:"));
        assert_eq!(expires_at, 1000 + RESUME_TTL_SECS);
        let p = Pending::decode(&value, 1000).unwrap();
        assert_eq!(
            (p.index, p.rule.as_str(), p.tenant.as_str()),
            (2, "profile", "acme")
        );
        // It resumes with the versions it started with.
        assert_eq!(p.pinned.map(|d| d.deployment), Some(7));
        assert!(Pending::decode(&value, expires_at).is_none());
        let location = response.headers()[http::header::LOCATION].to_str().unwrap();
        assert!(location.starts_with("https://forms.example/p?state="));
        let cookies = set_cookies(&response);
        assert!(
            cookies
                .iter()
                .any(|c| c.starts_with("edgeauth_resume=") && !c.starts_with("edgeauth_resume=;"))
        );
        assert!(cookies.iter().any(|c| c.starts_with("edgeauth_login=;")));
    }

    #[test]
    fn deny_and_reauth() {
        let s = settings();
        let Step::Respond { response, .. } = finish(
            &s,
            fin(true),
            End::Deny {
                rule: "r".into(),
                reason: "not <b>you</b>".into(),
            },
            Progress::default(),
            1000,
            &mut counter_rng(),
        ) else {
            panic!()
        };
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(body(&response).contains("not &lt;b&gt;you"));
        assert!(
            set_cookies(&response)
                .iter()
                .any(|c| c.starts_with("edgeauth_resume=;"))
        );
        let Step::Reauth {
            rule,
            prompt_login,
            max_age,
            return_to,
            ..
        } = finish(
            &s,
            fin(false),
            End::Reauth {
                rule: "r".into(),
                prompt_login: true,
                max_age: Some(0),
            },
            Progress::default(),
            1000,
            &mut counter_rng(),
        )
        else {
            panic!()
        };
        assert_eq!(
            (rule.as_str(), prompt_login, max_age, return_to.as_str()),
            ("r", true, Some(0), "/")
        );
    }

    #[test]
    fn resume_errors_explain_and_keep_the_cookie() {
        let r = resume_error(ResumeError::Used);
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert!(body(&r).contains("already completed"));
        assert!(set_cookies(&r).is_empty());
    }
}
