//! A tenant's chain at sign-in: runs the rules in order through a
//! [`RunRule`] (the embedded runtime in the gateway, a fake in tests),
//! accumulates what they decide ([`Progress`]) and says how the chain ended
//! ([`End`]). No I/O: loading artifacts, the runtime and the log are the
//! runner's.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::command::Command;
use crate::config::{RuleConfig, TenantRules};
use crate::event::{Event, LogLevel};
use crate::failure::Failure;
use crate::merge::merge_patch;

/// Metadata documents larger than this are refused.
pub use edgeauth_core::profiles::MAX_METADATA;

/// Tenant secrets by tenant, then by name (Spin variable `rule_secrets`).
pub type Secrets = BTreeMap<String, BTreeMap<String, String>>;

/// What the chain has accumulated so far.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub claims: Map<String, Value>,
    pub headers: Vec<(String, String)>,
    pub app: Value,
    pub user: Value,
    pub metadata_changed: bool,
}

impl Progress {
    /// Where a chain starts: the person's stored metadata.
    pub fn starting(app: &Value, user: &Value) -> Progress {
        Progress {
            app: app.clone(),
            user: user.clone(),
            ..Progress::default()
        }
    }
}

/// How a chain ended.
#[derive(Debug, Clone, PartialEq)]
pub enum End {
    Done,
    Deny {
        rule: String,
        reason: String,
    },
    /// Paused: the browser goes to `url` and comes back to the continue
    /// endpoint, where the chain resumes at rule `index`.
    Redirect {
        index: usize,
        rule: String,
        url: String,
    },
    /// The rule wants a fresh login, with these authorization parameters.
    Reauth {
        rule: String,
        prompt_login: bool,
        max_age: Option<u32>,
    },
    Failed {
        rule: String,
        failure: Failure,
    },
}

impl End {
    /// The `outcome` of the rule's audit line.
    pub fn outcome(&self) -> &'static str {
        match self {
            End::Deny { .. } => "deny",
            End::Redirect { .. } => "redirect",
            End::Reauth { .. } => "reauth",
            End::Failed { .. } => "failed",
            End::Done => "ok",
        }
    }
}

/// Per-rule timings, for audit lines and the admin dry run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timing {
    pub rule: String,
    /// Read + verify + deserialize.
    pub load_us: u64,
    pub read_us: u64,
    pub verify_us: u64,
    pub deserialize_us: u64,
    pub instantiate_us: u64,
    pub call_us: u64,
    pub fuel: u64,
    /// Linear memory the rule held at the end of a successful call.
    pub memory_bytes: u64,
    pub commands: Vec<Command>,
    /// The call's own log lines (`level: message`): a failed call's go in its
    /// audit line, every call's in the admin dry run's answer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub logs: Vec<String>,
}

/// A line for the platform's log.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// A rule's own `log` command.
    Rule {
        tenant: String,
        rule: String,
        level: LogLevel,
        message: String,
    },
    /// A structured audit record.
    Audit(Value),
}

impl Line {
    pub fn render(&self) -> String {
        match self {
            Line::Rule {
                tenant,
                rule,
                level,
                message,
            } => format!(
                "edgeauth: rule log [{tenant}/{rule}] {}: {message}",
                level.as_str()
            ),
            Line::Audit(fields) => format!("edgeauth-audit: {fields}"),
        }
    }
}

/// What runs one rule and takes the chain's log lines.
pub trait RunRule {
    /// Runs `rule` on `event` (already made for it by [`event_for_rule`]).
    fn run(&mut self, rule: &RuleConfig, event: &Event) -> (Result<Vec<Command>, Failure>, Timing);
    fn log(&mut self, line: Line);
}

/// `event` as `rule` sees it: its name, its config and the tenant secrets
/// granted to it (only those).
pub fn event_for_rule(event: &Event, rule: &RuleConfig, secrets: &Secrets) -> Event {
    let mut event = event.clone();
    event.rule_name = rule.name.clone();
    event.config = rule.config.clone().into();
    let granted = secrets.get(&event.tenant_id);
    event.secrets = rule
        .secrets
        .iter()
        .filter_map(|s| {
            granted
                .and_then(|g| g.get(s))
                .map(|v| (s.clone(), v.clone()))
        })
        .collect();
    event
}

/// Applies one rule's commands to `progress`; `Some` ends the chain.
pub fn apply(
    commands: Vec<Command>,
    progress: &mut Progress,
    index: usize,
    rule: &RuleConfig,
    event: &Event,
    log: &mut dyn FnMut(Line),
) -> Result<Option<End>, Failure> {
    for c in commands {
        match c {
            Command::Log { level, message } => log(Line::Rule {
                tenant: event.tenant_id.clone(),
                rule: rule.name.clone(),
                level,
                message,
            }),
            Command::SetClaim { name, value } => {
                progress.claims.insert(name, value);
            }
            Command::SetHeader { name, value } => {
                progress.headers.retain(|(n, _)| *n != name);
                progress.headers.push((name, value));
            }
            Command::PatchAppMetadata { patch } | Command::PatchUserMetadata { patch }
                if patch.as_object().is_some_and(Map::is_empty) => {}
            Command::PatchAppMetadata { patch } => {
                merge_patch(&mut progress.app, &patch);
                progress.metadata_changed = true;
                if progress.app.to_string().len() > MAX_METADATA {
                    return Err(Failure::Output("app metadata would exceed 16 KiB".into()));
                }
            }
            Command::PatchUserMetadata { patch } => {
                merge_patch(&mut progress.user, &patch);
                progress.metadata_changed = true;
                if progress.user.to_string().len() > MAX_METADATA {
                    return Err(Failure::Output("user metadata would exceed 16 KiB".into()));
                }
            }
            Command::Deny { reason } => {
                return Ok(Some(End::Deny {
                    rule: rule.name.clone(),
                    reason,
                }));
            }
            Command::Redirect { url } => {
                return Ok(Some(End::Redirect {
                    index,
                    rule: rule.name.clone(),
                    url,
                }));
            }
            Command::RequireReauth {
                prompt_login,
                max_age,
            } => {
                if event.transaction.reauthenticated {
                    return Err(Failure::Output(
                        "asked for re-authentication again right after one".into(),
                    ));
                }
                return Ok(Some(End::Reauth {
                    rule: rule.name.clone(),
                    prompt_login,
                    max_age,
                }));
            }
        }
    }
    Ok(None)
}

/// The chain cannot run at all (the runtime did not start): it fails closed
/// at its first rule, whatever that rule's fail-open setting.
pub fn unavailable(tenant: &TenantRules, from: usize, failure: Failure) -> End {
    End::Failed {
        rule: tenant
            .chain
            .get(from)
            .map_or_else(String::new, |r| r.name.clone()),
        failure,
    }
}

/// Runs `tenant`'s chain from rule `from` (the first one sees `resumed`).
/// A rule's commands are applied all or nothing; a failing rule ends the
/// chain unless it is fail-open.
pub fn run_chain(
    runner: &mut dyn RunRule,
    tenant: &TenantRules,
    secrets: &Secrets,
    base: &Event,
    from: usize,
    resumed: Option<Vec<(String, String)>>,
    progress: &mut Progress,
) -> End {
    let mut resumed = resumed;
    for (index, rule) in tenant.chain.iter().enumerate().skip(from) {
        let mut event = base.clone();
        event.user.app_metadata = progress.app.clone().into();
        event.user.user_metadata = progress.user.clone().into();
        event.transaction.resumed = resumed.take();
        let event = event_for_rule(&event, rule, secrets);
        let (result, timing) = runner.run(rule, &event);
        let mut lines = Vec::new();
        let outcome = result.and_then(|commands| {
            let mut attempt = progress.clone();
            let end = apply(commands, &mut attempt, index, rule, &event, &mut |l| {
                lines.push(l)
            })?;
            *progress = attempt;
            Ok(end)
        });
        for l in lines {
            runner.log(l);
        }
        let mut line = json!({
            "event": "rule", "tenant": event.tenant_id, "rule": rule.name,
            "correlation_id": event.transaction.correlation_id,
            "load_us": timing.load_us, "instantiate_us": timing.instantiate_us, "call_us": timing.call_us, "fuel": timing.fuel,
        });
        match outcome {
            Ok(None) => {
                line["outcome"] = json!("ok");
                runner.log(Line::Audit(line));
            }
            Ok(Some(end)) => {
                line["outcome"] = json!(end.outcome());
                runner.log(Line::Audit(line));
                return end;
            }
            Err(failure) => {
                line["outcome"] = json!(if rule.fail_open {
                    "failed-open"
                } else {
                    "failed"
                });
                line["kind"] = json!(failure.kind());
                line["detail"] = json!(failure.to_string());
                if !timing.logs.is_empty() {
                    line["logs"] = json!(timing.logs);
                }
                runner.log(Line::Audit(line));
                if !rule.fail_open {
                    return End::Failed {
                        rule: rule.name.clone(),
                        failure,
                    };
                }
            }
        }
    }
    End::Done
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tenant_rules;

    /// Answers each rule by name from a script, recording what it saw.
    struct Script {
        answers: BTreeMap<String, Result<Vec<Command>, Failure>>,
        seen: Vec<Event>,
        lines: Vec<Line>,
    }

    impl Script {
        fn new(answers: &[(&str, Result<Vec<Command>, Failure>)]) -> Script {
            Script {
                answers: answers
                    .iter()
                    .map(|(n, a)| ((*n).to_owned(), a.clone()))
                    .collect(),
                seen: Vec::new(),
                lines: Vec::new(),
            }
        }

        fn audits(&self) -> Vec<Value> {
            self.lines
                .iter()
                .filter_map(|l| match l {
                    Line::Audit(v) => Some(v.clone()),
                    Line::Rule { .. } => None,
                })
                .collect()
        }
    }

    impl RunRule for Script {
        fn run(
            &mut self,
            rule: &RuleConfig,
            event: &Event,
        ) -> (Result<Vec<Command>, Failure>, Timing) {
            self.seen.push(event.clone());
            let answer = self
                .answers
                .get(&rule.name)
                .cloned()
                .unwrap_or(Ok(Vec::new()));
            (
                answer,
                Timing {
                    rule: rule.name.clone(),
                    ..Timing::default()
                },
            )
        }

        fn log(&mut self, line: Line) {
            self.lines.push(line);
        }
    }

    fn base() -> Event {
        let mut e = Event {
            tenant_id: "acme".into(),
            ..Event::default()
        };
        e.transaction.correlation_id = "cid".into();
        e
    }

    fn claim(name: &str, v: Value) -> Command {
        Command::SetClaim {
            name: name.into(),
            value: v,
        }
    }

    #[test]
    fn rules_run_in_order_and_their_outcomes_accumulate() {
        let tenant = tenant_rules(&["a", "b"], &[]);
        let mut runner = Script::new(&[
            (
                "a",
                Ok(vec![
                    claim("plan", json!("pro")),
                    Command::PatchAppMetadata {
                        patch: json!({"seen": 1}),
                    },
                    Command::Log {
                        level: LogLevel::Info,
                        message: "hello".into(),
                    },
                ]),
            ),
            (
                "b",
                Ok(vec![Command::SetHeader {
                    name: "x-plan".into(),
                    value: "pro".into(),
                }]),
            ),
        ]);
        let mut progress = Progress::starting(&json!({}), &json!({}));
        let end = run_chain(
            &mut runner,
            &tenant,
            &Secrets::new(),
            &base(),
            0,
            None,
            &mut progress,
        );
        assert_eq!(end, End::Done);
        assert_eq!(progress.claims["plan"], "pro");
        assert_eq!(progress.headers, [("x-plan".into(), "pro".into())]);
        assert!(progress.metadata_changed);
        // The second rule sees what the first one wrote.
        assert_eq!(runner.seen[1].user.app_metadata, json!({"seen": 1}));
        assert_eq!(runner.seen[1].rule_name, "b");
        assert_eq!(
            runner.lines[0].render(),
            "edgeauth: rule log [acme/a] info: hello"
        );
        let audits = runner.audits();
        assert_eq!(audits.len(), 2);
        assert_eq!(audits[0]["outcome"], "ok");
        assert_eq!(audits[0]["correlation_id"], "cid");
    }

    #[test]
    fn deny_stops_the_chain_and_a_failed_rule_changes_nothing() {
        let tenant = tenant_rules(&["a", "b", "c"], &[]);
        let mut runner = Script::new(&[
            ("a", Ok(vec![claim("x", json!(1))])),
            (
                "b",
                Ok(vec![
                    claim("y", json!(2)),
                    Command::Deny {
                        reason: "no".into(),
                    },
                ]),
            ),
        ]);
        let mut progress = Progress::default();
        let end = run_chain(
            &mut runner,
            &tenant,
            &Secrets::new(),
            &base(),
            0,
            None,
            &mut progress,
        );
        assert_eq!(
            end,
            End::Deny {
                rule: "b".into(),
                reason: "no".into()
            }
        );
        assert_eq!(runner.seen.len(), 2, "c never ran");
        assert_eq!(runner.audits()[1]["outcome"], "deny");

        // A patch that overflows fails the rule; its earlier commands are not kept.
        let big = "x".repeat(MAX_METADATA);
        let mut runner = Script::new(&[(
            "a",
            Ok(vec![
                claim("z", json!(1)),
                Command::PatchUserMetadata {
                    patch: json!({ "big": big }),
                },
            ]),
        )]);
        let mut progress = Progress::default();
        let end = run_chain(
            &mut runner,
            &tenant,
            &Secrets::new(),
            &base(),
            0,
            None,
            &mut progress,
        );
        assert!(
            matches!(end, End::Failed { ref rule, failure: Failure::Output(_) } if rule == "a")
        );
        assert!(progress.claims.is_empty());
        assert_eq!(runner.audits()[0]["kind"], "bad-output");
    }

    #[test]
    fn a_failed_rule_audit_line_has_what_it_used_and_its_own_logs() {
        struct Crashes(Vec<Line>);
        impl RunRule for Crashes {
            fn run(
                &mut self,
                rule: &RuleConfig,
                _: &Event,
            ) -> (Result<Vec<Command>, Failure>, Timing) {
                let timing = Timing {
                    rule: rule.name.clone(),
                    instantiate_us: 40,
                    call_us: 900,
                    fuel: 123_456,
                    logs: vec![
                        "info: looking up the plan".into(),
                        "error: rule panicked at src/lib.rs:3:5: no plan".into(),
                    ],
                    ..Timing::default()
                };
                let failure = Failure::Trap("rule panicked at src/lib.rs:3:5: no plan".into());
                (Err(failure), timing)
            }
            fn log(&mut self, line: Line) {
                self.0.push(line);
            }
        }
        let tenant = tenant_rules(&["a"], &[]);
        let mut runner = Crashes(Vec::new());
        let end = run_chain(
            &mut runner,
            &tenant,
            &Secrets::new(),
            &base(),
            0,
            None,
            &mut Progress::default(),
        );
        assert!(matches!(end, End::Failed { .. }));
        let Some(Line::Audit(line)) = runner.0.last() else {
            panic!("an audit line");
        };
        assert_eq!(line["fuel"], 123_456);
        assert_eq!(line["call_us"], 900);
        assert_eq!(line["kind"], "trap");
        assert_eq!(
            line["detail"],
            "it crashed (rule panicked at src/lib.rs:3:5: no plan)"
        );
        assert_eq!(
            line["logs"],
            json!([
                "info: looking up the plan",
                "error: rule panicked at src/lib.rs:3:5: no plan"
            ])
        );
    }

    #[test]
    fn fail_open_rules_are_skipped_and_the_chain_goes_on() {
        let tenant = tenant_rules(&["a", "b"], &["a"]);
        let mut runner = Script::new(&[
            ("a", Err(Failure::Fuel)),
            ("b", Ok(vec![claim("b", json!(true))])),
        ]);
        let mut progress = Progress::default();
        let end = run_chain(
            &mut runner,
            &tenant,
            &Secrets::new(),
            &base(),
            0,
            None,
            &mut progress,
        );
        assert_eq!(end, End::Done);
        assert_eq!(progress.claims["b"], true);
        assert_eq!(runner.audits()[0]["outcome"], "failed-open");
        assert_eq!(runner.audits()[0]["kind"], "out-of-fuel");
    }

    #[test]
    fn redirect_pauses_and_the_resumed_rule_sees_the_form() {
        let tenant = tenant_rules(&["a", "b", "c"], &[]);
        let mut runner = Script::new(&[(
            "b",
            Ok(vec![Command::Redirect {
                url: "https://forms.example/p".into(),
            }]),
        )]);
        let mut progress = Progress::default();
        let end = run_chain(
            &mut runner,
            &tenant,
            &Secrets::new(),
            &base(),
            0,
            None,
            &mut progress,
        );
        assert_eq!(
            end,
            End::Redirect {
                index: 1,
                rule: "b".into(),
                url: "https://forms.example/p".into()
            }
        );
        // Resuming at b: b sees the fields, c does not.
        let mut runner = Script::new(&[]);
        let form = vec![("nick".to_owned(), "al".to_owned())];
        let end = run_chain(
            &mut runner,
            &tenant,
            &Secrets::new(),
            &base(),
            1,
            Some(form.clone()),
            &mut progress,
        );
        assert_eq!(end, End::Done);
        assert_eq!(runner.seen.len(), 2);
        assert_eq!(runner.seen[0].transaction.resumed, Some(form));
        assert_eq!(runner.seen[1].transaction.resumed, None);
    }

    #[test]
    fn reauth_is_a_value_and_not_asked_twice() {
        let tenant = tenant_rules(&["a"], &[]);
        let answer = Ok(vec![Command::RequireReauth {
            prompt_login: true,
            max_age: Some(0),
        }]);
        let mut runner = Script::new(&[("a", answer.clone())]);
        let end = run_chain(
            &mut runner,
            &tenant,
            &Secrets::new(),
            &base(),
            0,
            None,
            &mut Progress::default(),
        );
        assert_eq!(
            end,
            End::Reauth {
                rule: "a".into(),
                prompt_login: true,
                max_age: Some(0)
            }
        );
        let mut again = base();
        again.transaction.reauthenticated = true;
        let mut runner = Script::new(&[("a", answer)]);
        let end = run_chain(
            &mut runner,
            &tenant,
            &Secrets::new(),
            &again,
            0,
            None,
            &mut Progress::default(),
        );
        assert!(matches!(
            end,
            End::Failed {
                failure: Failure::Output(_),
                ..
            }
        ));
    }

    #[test]
    fn rules_see_only_the_secrets_granted_to_them() {
        let mut tenant = tenant_rules(&["a", "b"], &[]);
        tenant.chain[0].secrets = vec!["crm".into(), "missing".into()];
        let secrets: Secrets = [(
            "acme".to_owned(),
            [
                ("crm".to_owned(), "k1".to_owned()),
                ("other".to_owned(), "k2".to_owned()),
            ]
            .into_iter()
            .collect(),
        )]
        .into_iter()
        .collect();
        let mut runner = Script::new(&[]);
        run_chain(
            &mut runner,
            &tenant,
            &secrets,
            &base(),
            0,
            None,
            &mut Progress::default(),
        );
        assert_eq!(
            runner.seen[0].secrets.iter().collect::<Vec<_>>(),
            [(&"crm".to_owned(), &"k1".to_owned())]
        );
        assert!(runner.seen[1].secrets.is_empty());
    }

    #[test]
    fn an_unavailable_runtime_fails_closed_at_the_first_rule() {
        let tenant = tenant_rules(&["a", "b"], &["a"]);
        assert_eq!(
            unavailable(&tenant, 1, Failure::Load("x".into())),
            End::Failed {
                rule: "b".into(),
                failure: Failure::Load("x".into())
            }
        );
    }
}
