//! The gateway's check of what a rule returned. Nothing a rule says is
//! applied before the whole list passed; the SDK's test helpers run this same
//! function, so a rule's unit test fails where the gateway would refuse.

use serde_json::Value;

use crate::command::{Command, RawCommand};
use crate::names::{claim_name_problem, reserved_header};

pub const MAX_COMMANDS: usize = 64;
const MAX_REASON: usize = 500;
const MAX_LOG: usize = 2000;
const MAX_HEADER_VALUE: usize = 2048;
const MAX_URL: usize = 2048;

/// What the tenant's configuration lets one rule do with its commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant<'a> {
    /// Lower-cased header names the rule may set for the origin.
    pub headers: &'a [String],
    /// Origins (see [`origin_of`]) the rule may redirect the browser to.
    pub allowed_hosts: &'a [String],
    /// Cap on the size of the returned commands ([`RawCommand::size`]).
    pub output_bytes: usize,
}

/// `scheme://host[:port]` of an http(s) URL, lower-cased, default port elided;
/// `None` for anything else, and for URLs with user info.
pub fn origin_of(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return None;
    }
    if !url.username().is_empty() || url.password().is_some() {
        return None;
    }
    Some(url.origin().ascii_serialization())
}

fn clean(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(max)
        .collect()
}

/// The redirect target, if the rule may send the browser there: a path on
/// the gateway or a URL whose origin the rule is allowed to reach.
pub fn redirect_target(url: &str, grant: &Grant<'_>) -> Result<String, String> {
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
        Some(o) if grant.allowed_hosts.contains(&o) => Ok(url.to_owned()),
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

fn header(name: String, value: String, grant: &Grant<'_>) -> Result<Command, String> {
    let lower = name.to_ascii_lowercase();
    // Reserved names cannot be configured; checked again so no configuration
    // path can ever let one through.
    if reserved_header(&lower) || !grant.headers.contains(&lower) {
        return Err(format!(
            "header `{}` is not one the tenant lets this rule set",
            clean(&name, 100)
        ));
    }
    if value.len() > MAX_HEADER_VALUE || !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(format!(
            "header `{lower}` value must be up to 2048 visible ASCII characters"
        ));
    }
    Ok(Command::SetHeader { name: lower, value })
}

fn check(cmd: RawCommand, grant: &Grant<'_>) -> Result<Command, String> {
    Ok(match cmd {
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
        RawCommand::SetHeader { name, value } => header(name, value, grant)?,
        RawCommand::PatchAppMetadata(p) => Command::PatchAppMetadata {
            patch: json_object("app metadata patch", &p)?,
        },
        RawCommand::PatchUserMetadata(p) => Command::PatchUserMetadata {
            patch: json_object("user metadata patch", &p)?,
        },
        RawCommand::Redirect { url } => Command::Redirect {
            url: redirect_target(&url, grant)?,
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
    })
}

/// Checks everything a rule returned against what it was granted; the
/// commands to apply, in order, or why the whole output is refused.
pub fn validate(raw: Vec<RawCommand>, grant: &Grant<'_>) -> Result<Vec<Command>, String> {
    if raw.len() > MAX_COMMANDS {
        return Err(format!(
            "returned {} commands; at most {MAX_COMMANDS} are accepted",
            raw.len()
        ));
    }
    let size: usize = raw.iter().map(RawCommand::size).sum();
    if size > grant.output_bytes {
        return Err(format!(
            "returned {size} bytes of commands; its output cap is {} bytes",
            grant.output_bytes
        ));
    }
    raw.into_iter().map(|c| check(c, grant)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::LogLevel;

    fn with<T>(f: impl FnOnce(&Grant<'_>) -> T) -> T {
        let headers = ["x-roles".to_owned()];
        let hosts = ["https://forms.example".to_owned()];
        f(&Grant {
            headers: &headers,
            allowed_hosts: &hosts,
            output_bytes: 1024,
        })
    }

    #[test]
    fn accepts_well_formed_commands() {
        let cmds = with(|g| {
            validate(
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
                g,
            )
        })
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
            assert!(with(|g| validate(vec![cmd.clone()], g)).is_err(), "{cmd:?}");
        }
    }

    #[test]
    fn reserved_headers_are_refused_even_when_granted() {
        let headers = ["x-forwarded-user".to_owned()];
        let grant = Grant {
            headers: &headers,
            allowed_hosts: &[],
            output_bytes: 1024,
        };
        let e = validate(
            vec![RawCommand::SetHeader {
                name: "X-Forwarded-User".into(),
                value: "admin".into(),
            }],
            &grant,
        )
        .unwrap_err();
        assert!(e.contains("X-Forwarded-User"), "{e}");
    }

    #[test]
    fn output_cap_and_count() {
        let big = RawCommand::Log {
            level: LogLevel::Info,
            message: "x".repeat(2000),
        };
        let e = with(|g| validate(vec![big], g)).unwrap_err();
        assert!(e.contains("output cap"), "{e}");
        let many = vec![RawCommand::Deny(String::new()); MAX_COMMANDS + 1];
        let e = validate(
            many,
            &Grant {
                headers: &[],
                allowed_hosts: &[],
                output_bytes: 1 << 20,
            },
        )
        .unwrap_err();
        assert!(e.contains("at most 64"), "{e}");
    }

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("HTTPS://Forms.Example:443/x").as_deref(),
            Some("https://forms.example")
        );
        for bad in ["ftp://x.example", "https://u:p@x.example", "/path", "nope"] {
            assert_eq!(origin_of(bad), None, "{bad}");
        }
    }
}
