//! Validation of the commands a rule returns, against the rule's entry in
//! the tenant's configuration. The checks themselves are
//! `edgeauth_contract::validate`, the same ones the SDK's test helpers run.

pub use edgeauth_contract::command::Command;
pub use edgeauth_contract::names::claim_name_problem;
use edgeauth_contract::validate as contract;
pub use edgeauth_contract::validate::{Grant, MAX_COMMANDS};

use crate::config::RuleConfig;
use crate::event::RawCommand;

/// What `rule`'s configuration lets its commands do.
pub fn grant(rule: &RuleConfig) -> Grant<'_> {
    Grant {
        headers: &rule.headers,
        allowed_hosts: &rule.allowed_hosts,
        output_bytes: rule.output_bytes,
    }
}

/// The redirect target, if the rule may send the browser there: a path on
/// the gateway or a URL whose origin the rule is allowed to reach.
pub fn redirect_target(url: &str, rule: &RuleConfig) -> Result<String, String> {
    contract::redirect_target(url, &grant(rule))
}

/// Checks everything the rule returned against its configuration.
pub fn validate(raw: Vec<RawCommand>, rule: &RuleConfig) -> Result<Vec<Command>, String> {
    contract::validate(raw, &grant(rule))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn rule() -> RuleConfig {
        parse(
            r#"{"tenants": {"default": {"chain": [{"name": "r", "headers": ["X-Roles"],
               "allowed_hosts": ["https://Forms.example:443"], "output_bytes": 1024}]}}}"#,
            |_| false,
        )
        .unwrap()
        .tenants["default"]
            .chain[0]
            .clone()
    }

    #[test]
    fn the_rules_configuration_is_what_it_may_do() {
        let ok = validate(
            vec![
                RawCommand::SetHeader {
                    name: "x-roles".into(),
                    value: "admin".into(),
                },
                RawCommand::Redirect {
                    url: "https://forms.example/p".into(),
                },
            ],
            &rule(),
        );
        assert_eq!(ok.unwrap().len(), 2);
        let refused = [
            RawCommand::SetHeader {
                name: "x-other".into(),
                value: "1".into(),
            },
            RawCommand::Redirect {
                url: "https://other.example/".into(),
            },
            RawCommand::Log {
                level: crate::event::LogLevel::Info,
                message: "x".repeat(1024),
            },
        ];
        for cmd in refused {
            assert!(validate(vec![cmd.clone()], &rule()).is_err(), "{cmd:?}");
        }
        assert!(redirect_target("https://other.example/", &rule()).is_err());
    }
}
