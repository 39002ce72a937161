//! Access policy applied at login and on every request.

use crate::identity::Identity;
use crate::settings::Settings;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The rule's name as an operator configured it.
    pub rule: &'static str,
    pub reason: String,
}

/// Allowed email domains: the email must be verified and its domain must be
/// exactly one of the list (no suffix matching: `example.com` does not admit
/// `evil-example.com` nor `a.example.com`).
pub fn check(settings: &Settings, identity: &Identity) -> Result<(), Denial> {
    if settings.allowed_email_domains.is_empty() {
        return Ok(());
    }
    let Some(domain) = identity.verified_email_domain() else {
        return Err(Denial {
            rule: "allowed email domains",
            reason: "a verified email address is required, and the identity provider did not \
                     confirm yours"
                .into(),
        });
    };
    if settings.allowed_email_domains.iter().any(|d| d == domain) {
        Ok(())
    } else {
        Err(Denial {
            rule: "allowed email domains",
            reason: format!("email addresses at {domain} are not allowed here"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::settings_with;

    fn person(email: &str, verified: bool) -> Identity {
        Identity {
            sub: "x".into(),
            email: crate::identity::normalize_email(email),
            email_verified: verified,
            name: None,
            groups: vec![],
            ..Default::default()
        }
    }

    #[test]
    fn exact_verified_domain_only() {
        let s = settings_with(&[("allowed_email_domains", "example.com")]);
        assert!(check(&s, &person("alice@example.com", true)).is_ok());
        assert!(check(&s, &person("alice@EXAMPLE.com", true)).is_ok());
        for (email, verified) in [
            ("bob@example.com", false),
            ("x@evil-example.com", true),
            ("x@example.com.evil.test", true),
            ("x@a.example.com", true),
            ("x@example.co", true),
            ("x@evil.test@example.com", true),
        ] {
            let d = check(&s, &person(email, verified)).unwrap_err();
            assert_eq!(d.rule, "allowed email domains", "{email}");
        }
    }

    #[test]
    fn no_rule_admits_everyone() {
        let s = settings_with(&[]);
        assert!(check(&s, &person("bob@example.com", false)).is_ok());
    }
}
