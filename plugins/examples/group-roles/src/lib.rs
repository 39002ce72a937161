//! Example rule (b): maps the provider's groups to application roles, sent
//! to the origin as a namespaced assertion claim and as a header.
//!
//! Config: `{"roles": {"admins": ["admin"], "devs": ["developer", "reader"]},
//! "claim": "https://example.com/roles", "header": "x-roles"}`.

use std::collections::BTreeMap;

use edgeauth_plugin::{Commands, Login};
use serde::Deserialize;

#[derive(Deserialize)]
struct Config {
    roles: BTreeMap<String, Vec<String>>,
    #[serde(default = "default_claim")]
    claim: String,
    #[serde(default)]
    header: Option<String>,
    #[serde(default)]
    default_roles: Vec<String>,
}

fn default_claim() -> String {
    "https://example.com/roles".into()
}

fn on_login(login: &Login) -> Result<Commands, String> {
    let config: Config = login.config()?;
    let mut roles: Vec<String> = Vec::new();
    for group in &login.user.groups {
        for role in config.roles.get(group).into_iter().flatten() {
            if !roles.contains(role) {
                roles.push(role.clone());
            }
        }
    }
    if roles.is_empty() {
        roles = config.default_roles.clone();
    }
    roles.sort();
    let mut out = Commands::new();
    out.claim(config.claim, &roles);
    if let Some(h) = config.header {
        out.header(h, roles.join(","));
    }
    Ok(out)
}

edgeauth_plugin::rule!(on_login);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeauth_plugin::testing::{Failure, Grant, run};
    use edgeauth_plugin::{Command, json};

    fn login(groups: &[&str]) -> Login {
        Login::from_json(json!({
            "config": {"roles": {"admins": ["admin"], "devs": ["developer", "reader"], "users": ["reader"]},
                       "header": "x-roles", "default_roles": ["guest"]},
            "user": {"sub": "u", "groups": groups}
        }))
    }

    #[test]
    fn maps_groups_to_sorted_unique_roles() {
        let out = on_login(&login(&["devs", "admins", "users", "other"])).unwrap();
        assert_eq!(
            out.0,
            vec![
                Command::SetClaim {
                    name: "https://example.com/roles".into(),
                    value: json!(["admin", "developer", "reader"])
                },
                Command::SetHeader {
                    name: "x-roles".into(),
                    value: "admin,developer,reader".into()
                },
            ]
        );
    }

    #[test]
    fn no_matching_group_gets_default_roles() {
        let out = on_login(&login(&[])).unwrap();
        assert_eq!(
            out.0[0],
            Command::SetClaim {
                name: "https://example.com/roles".into(),
                value: json!(["guest"])
            }
        );
    }

    /// The tenant's rule entry for this rule: it may set `x-roles`.
    fn grant() -> Grant {
        Grant::new().header("x-roles")
    }

    fn configured(config: edgeauth_plugin::serde_json::Value, groups: &[&str]) -> Login {
        Login::from_json(json!({"config": config, "user": {"sub": "u", "groups": groups}}))
    }

    #[test]
    fn the_gateway_accepts_its_output() {
        let out = run(on_login, &login(&["admins"]), &grant()).unwrap();
        assert_eq!(
            out[1],
            Command::SetHeader {
                name: "x-roles".into(),
                value: "admin".into()
            }
        );
    }

    #[test]
    fn configurations_the_gateway_would_refuse_fail_the_test() {
        let roles = json!({"admins": ["admin"]});
        // An identity header: reserved, whatever the tenant grants.
        let e = run(
            on_login,
            &configured(
                json!({"roles": roles, "header": "X-Forwarded-User"}),
                &["admins"],
            ),
            &grant(),
        )
        .unwrap_err();
        assert!(
            matches!(&e, Failure::Refused(m) if m.contains("X-Forwarded-User")),
            "{e}"
        );
        // A registered claim name instead of a namespaced one.
        let e = run(
            on_login,
            &configured(json!({"roles": roles, "claim": "roles"}), &["admins"]),
            &grant(),
        )
        .unwrap_err();
        assert!(
            matches!(&e, Failure::Refused(m) if m.contains("claim `roles`")),
            "{e}"
        );
        // Many roles: past the rule's output cap.
        let many: Vec<String> = (0..400).map(|i| format!("group-{i}")).collect();
        let groups: Vec<&str> = many.iter().map(String::as_str).collect();
        let roles: edgeauth_plugin::serde_json::Map<_, _> = many
            .iter()
            .map(|g| (g.clone(), json!([format!("role-{g}")])))
            .collect();
        let e = run(
            on_login,
            &configured(json!({"roles": roles}), &groups),
            &grant().output_bytes(4096),
        )
        .unwrap_err();
        assert!(
            matches!(&e, Failure::Refused(m) if m.contains("output cap")),
            "{e}"
        );
    }
}
