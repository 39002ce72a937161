//! Example rule (a): only people with a verified email at one of the
//! configured domains may sign in.
//!
//! Config: `{"domains": ["example.com"], "message": "optional reason"}`.

use edgeauth_plugin::{Commands, Login};
use serde::Deserialize;

#[derive(Deserialize)]
struct Config {
    domains: Vec<String>,
    #[serde(default)]
    message: Option<String>,
}

fn on_login(login: &Login) -> Result<Commands, String> {
    let config: Config = login.config()?;
    let mut out = Commands::new();
    match login.user.verified_email_domain() {
        None => {
            out.deny("a verified email address is required");
        }
        Some(domain)
            if config
                .domains
                .iter()
                .any(|d| d.eq_ignore_ascii_case(&domain)) => {}
        Some(domain) => {
            let reason = config
                .message
                .unwrap_or_else(|| format!("email addresses at {domain} may not sign in here"));
            out.deny(reason);
        }
    }
    Ok(out)
}

edgeauth_plugin::rule!(on_login);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeauth_plugin::{Command, json};

    fn login(email: &str, verified: bool) -> Login {
        Login::from_json(json!({
            "config": {"domains": ["example.com", "Example.org"]},
            "user": {"sub": "u", "email": email, "email_verified": verified}
        }))
    }

    #[test]
    fn allows_verified_listed_domains() {
        assert!(
            on_login(&login("alice@example.com", true))
                .unwrap()
                .0
                .is_empty()
        );
        assert!(
            on_login(&login("x@EXAMPLE.ORG", true))
                .unwrap()
                .0
                .is_empty()
        );
    }

    #[test]
    fn denies_unverified_and_other_domains() {
        let out = on_login(&login("bob@example.com", false)).unwrap();
        assert_eq!(
            out.0,
            vec![Command::Deny {
                reason: "a verified email address is required".into()
            }]
        );
        for email in [
            "m@evil.test",
            "m@sub.example.com",
            "m@example.com.evil.test",
        ] {
            assert!(
                on_login(&login(email, true)).unwrap().is_denied(),
                "{email}"
            );
        }
    }

    #[test]
    fn missing_config_is_an_error() {
        let l = Login::from_json(json!({"user": {"sub": "u"}}));
        assert!(on_login(&l).is_err());
    }
}
