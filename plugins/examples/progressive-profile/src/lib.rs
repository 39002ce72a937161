//! Example rule (c): progressive profiling. From the n-th sign-in on, if the
//! person's user metadata lacks a field (e.g. `company`), the browser is sent
//! to a small form; the form sends the answer to the gateway's continue
//! endpoint, and the rule stores it in user metadata.
//!
//! Config: `{"field": "company", "form_url": "/profile-form", "from_login": 2,
//! "max_length": 100}`. `from_login` counts this sign-in: 2 = ask on the
//! second sign-in, never on the first.

use edgeauth_plugin::{Commands, Login, json};
use serde::Deserialize;

#[derive(Deserialize)]
struct Config {
    field: String,
    form_url: String,
    #[serde(default = "two")]
    from_login: u64,
    #[serde(default = "hundred")]
    max_length: usize,
}

fn two() -> u64 {
    2
}

fn hundred() -> usize {
    100
}

fn on_login(login: &Login) -> Result<Commands, String> {
    let config: Config = login.config()?;
    let mut out = Commands::new();
    if login.transaction.resumed.is_some() {
        // Back from the form.
        let answer = login.resumed(&config.field).unwrap_or("").trim();
        if answer.is_empty()
            || answer.chars().count() > config.max_length
            || answer.chars().any(char::is_control)
        {
            // Ask again rather than storing garbage.
            out.redirect(form_url(&config, true));
        } else {
            let mut patch = edgeauth_plugin::serde_json::Map::new();
            patch.insert(config.field.clone(), json!(answer));
            out.patch_user_metadata(patch.into());
        }
        return Ok(out);
    }
    let this_login = login.transaction.login_count + 1;
    let known = login
        .user
        .user_metadata
        .get(&config.field)
        .and_then(|v| v.as_str())
        .is_some_and(|s| !s.is_empty());
    if this_login >= config.from_login && !known {
        out.redirect(form_url(&config, false));
    }
    Ok(out)
}

fn form_url(config: &Config, retry: bool) -> String {
    let sep = if config.form_url.contains('?') {
        '&'
    } else {
        '?'
    };
    format!(
        "{}{sep}field={}{}",
        config.form_url,
        config.field,
        if retry { "&retry=1" } else { "" }
    )
}

edgeauth_plugin::rule!(on_login);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeauth_plugin::Command;

    fn login(
        count: u64,
        metadata: edgeauth_plugin::serde_json::Value,
        resumed: Option<&[(&str, &str)]>,
    ) -> Login {
        Login::from_json(json!({
            "config": {"field": "company", "form_url": "/profile-form"},
            "user": {"sub": "u", "user_metadata": metadata},
            "transaction": {
                "login_count": count,
                "resumed": resumed.map(|r| r.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>())
            }
        }))
    }

    #[test]
    fn first_login_is_not_interrupted() {
        assert!(on_login(&login(0, json!({}), None)).unwrap().0.is_empty());
    }

    #[test]
    fn later_login_without_the_field_asks() {
        let out = on_login(&login(1, json!({}), None)).unwrap();
        assert_eq!(
            out.0,
            vec![Command::Redirect {
                url: "/profile-form?field=company".into()
            }]
        );
        assert!(
            on_login(&login(5, json!({"company": "Acme"}), None))
                .unwrap()
                .0
                .is_empty()
        );
    }

    #[test]
    fn answer_is_stored() {
        let out = on_login(&login(1, json!({}), Some(&[("company", " Acme Corp ")]))).unwrap();
        assert_eq!(
            out.0,
            vec![Command::PatchUserMetadata {
                patch: json!({"company": "Acme Corp"})
            }]
        );
    }

    #[test]
    fn empty_or_oversized_answer_asks_again() {
        for bad in ["", "   ", &"x".repeat(101)] {
            let out = on_login(&login(1, json!({}), Some(&[("company", bad)]))).unwrap();
            assert!(
                matches!(&out.0[0], Command::Redirect { url } if url.ends_with("retry=1")),
                "{bad:?}"
            );
        }
    }
}
