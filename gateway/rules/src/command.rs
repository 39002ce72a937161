//! Validation of the commands a rule returns. Nothing a rule says is applied
//! before the whole list passed these checks.

use serde::Serialize;
use serde_json::Value;

use crate::config::{RuleConfig, origin_of};
use crate::event::{LogLevel, RawCommand};

pub const MAX_COMMANDS: usize = 64;
const MAX_REASON: usize = 500;
const MAX_LOG: usize = 2000;
const MAX_CLAIM_NAME: usize = 256;
const MAX_HEADER_VALUE: usize = 2048;
const MAX_URL: usize = 2048;

/// A validated command.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Command {
    Deny {
        reason: String,
    },
    SetClaim {
        name: String,
        value: Value,
    },
    SetHeader {
        name: String,
        value: String,
    },
    PatchAppMetadata {
        patch: Value,
    },
    PatchUserMetadata {
        patch: Value,
    },
    Redirect {
        url: String,
    },
    RequireReauth {
        prompt_login: bool,
        max_age: Option<u32>,
    },
    Log {
        level: LogLevel,
        message: String,
    },
}

/// Claims a rule may never set: registered JWT claims, OpenID Connect
/// standard claims and the gateway's own.
const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "azp",
    "nonce",
    "auth_time",
    "acr",
    "amr",
    "at_hash",
    "c_hash",
    "sid",
    "cnf",
    "scope",
    "client_id",
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "email",
    "email_verified",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "phone_number",
    "phone_number_verified",
    "address",
    "updated_at",
    "groups",
    "roles",
    "tenant",
];

/// Why a claim name is refused, if it is.
pub fn claim_name_problem(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if name.is_empty() || name.len() > MAX_CLAIM_NAME || name.chars().any(char::is_control) {
        return Some("must be 1-256 printable characters");
    }
    if RESERVED_CLAIMS.contains(&lower.as_str()) {
        return Some("is a registered or gateway-owned claim");
    }
    if lower.contains("edgeauth") {
        return Some("is in the gateway's own namespace");
    }
    if !name.contains('/') && !name.contains(':') {
        return Some("must be namespaced (for example https://example.com/roles)");
    }
    None
}

fn clean(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect()
}

/// The redirect target, if the rule may send the browser there: a path on
/// the gateway or a URL whose origin the rule is allowed to reach.
pub fn redirect_target(url: &str, rule: &RuleConfig) -> Result<String, String> {
    if url.len() > MAX_URL || url.chars().any(|c| c.is_control() || c == ' ') {
        return Err("redirect URL is too long or has spaces/control characters".into());
    }
    if let Some(rest) = url.strip_prefix('/') {
        if rest.starts_with('/') || rest.starts_with('\\') || url.contains("\\") {
            return Err(format!("redirect path `{url}` could leave the gateway"));
        }
        return Ok(url.to_owned());
    }
    match origin_of(url) {
        Some(o) if rule.allowed_hosts.contains(&o) => Ok(url.to_owned()),
        Some(o) => Err(format!(
            "redirect to {o}, which is not in the rule's allow list"
        )),
        None => Err(format!(
            "redirect URL `{}` is not an http(s) URL or a path",
            clean(url, 200)
        )),
    }
}

fn json_object(kind: &str, text: &str) -> Result<Value, String> {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err(format!("{kind} must be a JSON object")),
        Err(e) => Err(format!("{kind} is not valid JSON: {e}")),
    }
}

/// Checks everything the rule returned against its configuration.
pub fn validate(raw: Vec<RawCommand>, rule: &RuleConfig) -> Result<Vec<Command>, String> {
    if raw.len() > MAX_COMMANDS {
        return Err(format!(
            "returned {} commands; at most {MAX_COMMANDS} are accepted",
            raw.len()
        ));
    }
    let size: usize = raw.iter().map(RawCommand::size).sum();
    if size > rule.output_bytes {
        return Err(format!(
            "returned {size} bytes of commands; its output cap is {} bytes",
            rule.output_bytes
        ));
    }
    let mut out = Vec::with_capacity(raw.len());
    for cmd in raw {
        out.push(match cmd {
            RawCommand::Deny(reason) => Command::Deny {
                reason: clean(&reason, MAX_REASON),
            },
            RawCommand::SetClaim { name, value } => {
                if let Some(p) = claim_name_problem(&name) {
                    return Err(format!("claim `{}` {p}", clean(&name, 100)));
                }
                let value = serde_json::from_str(&value)
                    .map_err(|e| format!("claim `{name}` value is not valid JSON: {e}"))?;
                Command::SetClaim { name, value }
            }
            RawCommand::SetHeader { name, value } => {
                let lower = name.to_ascii_lowercase();
                if !rule.headers.contains(&lower) {
                    return Err(format!(
                        "header `{}` is not one the tenant lets this rule set",
                        clean(&name, 100)
                    ));
                }
                if value.len() > MAX_HEADER_VALUE
                    || !value.bytes().all(|b| (0x20..0x7f).contains(&b))
                {
                    return Err(format!(
                        "header `{lower}` value must be up to 2048 visible ASCII characters"
                    ));
                }
                Command::SetHeader { name: lower, value }
            }
            RawCommand::PatchAppMetadata(p) => Command::PatchAppMetadata {
                patch: json_object("app metadata patch", &p)?,
            },
            RawCommand::PatchUserMetadata(p) => Command::PatchUserMetadata {
                patch: json_object("user metadata patch", &p)?,
            },
            RawCommand::Redirect { url } => Command::Redirect {
                url: redirect_target(&url, rule)?,
            },
            RawCommand::RequireReauth {
                prompt_login,
                max_age,
            } => {
                if !prompt_login && max_age.is_none() {
                    return Err("require-reauth needs prompt-login or max-age".into());
                }
                Command::RequireReauth {
                    prompt_login,
                    max_age,
                }
            }
            RawCommand::Log { level, message } => Command::Log {
                level,
                message: clean(&message, MAX_LOG),
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn rule() -> RuleConfig {
        parse(
            r#"{"tenants": {"default": {"chain": [{"name": "r", "headers": ["x-roles"],
               "allowed_hosts": ["https://forms.example"], "output_bytes": 1024}]}}}"#,
            |_| false,
        )
        .unwrap()
        .tenants["default"]
            .chain[0]
            .clone()
    }

    #[test]
    fn accepts_well_formed_commands() {
        let cmds = validate(
            vec![
                RawCommand::SetClaim {
                    name: "https://example.com/roles".into(),
                    value: r#"["admin"]"#.into(),
                },
                RawCommand::SetHeader {
                    name: "X-Roles".into(),
                    value: "admin".into(),
                },
                RawCommand::PatchUserMetadata(r#"{"company": "Acme"}"#.into()),
                RawCommand::Redirect {
                    url: "https://forms.example/profile?x=1".into(),
                },
                RawCommand::Redirect {
                    url: "/profile".into(),
                },
                RawCommand::Deny("no\nway".into()),
                RawCommand::Log {
                    level: LogLevel::Info,
                    message: "hi".into(),
                },
            ],
            &rule(),
        )
        .unwrap();
        assert_eq!(
            cmds[1],
            Command::SetHeader {
                name: "x-roles".into(),
                value: "admin".into()
            }
        );
        assert_eq!(
            cmds[5],
            Command::Deny {
                reason: "no way".into()
            }
        );
    }

    #[test]
    fn refuses_reserved_and_unlisted() {
        let bad = [
            RawCommand::SetClaim {
                name: "sub".into(),
                value: "\"x\"".into(),
            },
            RawCommand::SetClaim {
                name: "roles".into(),
                value: "1".into(),
            },
            RawCommand::SetClaim {
                name: "email".into(),
                value: "1".into(),
            },
            RawCommand::SetClaim {
                name: "https://edgeauth.dev/x".into(),
                value: "1".into(),
            },
            RawCommand::SetClaim {
                name: "https://example.com/x".into(),
                value: "{nope".into(),
            },
            RawCommand::SetHeader {
                name: "x-other".into(),
                value: "1".into(),
            },
            RawCommand::SetHeader {
                name: "x-roles".into(),
                value: "a\r\nb".into(),
            },
            RawCommand::PatchAppMetadata("[1]".into()),
            RawCommand::Redirect {
                url: "https://evil.example/".into(),
            },
            RawCommand::Redirect {
                url: "//evil.example/".into(),
            },
            RawCommand::Redirect {
                url: "/\\evil.example/".into(),
            },
            RawCommand::Redirect {
                url: "javascript:alert(1)".into(),
            },
            RawCommand::RequireReauth {
                prompt_login: false,
                max_age: None,
            },
        ];
        for cmd in bad {
            assert!(validate(vec![cmd.clone()], &rule()).is_err(), "{cmd:?}");
        }
    }

    #[test]
    fn output_cap_and_count() {
        let big = RawCommand::Log {
            level: LogLevel::Info,
            message: "x".repeat(2000),
        };
        let e = validate(vec![big], &rule()).unwrap_err();
        assert!(e.contains("output cap"), "{e}");
        let many = vec![RawCommand::Deny(String::new()); MAX_COMMANDS + 1];
        assert!(
            validate(
                many,
                &RuleConfig {
                    output_bytes: 1 << 20,
                    ..rule()
                }
            )
            .is_err()
        );
    }
}
