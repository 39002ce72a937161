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
}
