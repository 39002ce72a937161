//! Example rule (d): on a person's first sign-in, POST a lead to a CRM
//! webhook with a secret header. The call has a short timeout and its failure
//! never blocks the sign-in: it is logged and the rule returns normally.
//!
//! Config: `{"webhook": "https://crm.example/hooks/lead", "secret": "crm_token",
//! "header": "x-webhook-secret", "timeout_ms": 1000}`. The tenant must grant
//! the secret and allow the webhook's origin for this rule.

use edgeauth_plugin::host::{self, HttpError};
use edgeauth_plugin::{Commands, Level, Login, json};
use serde::Deserialize;

#[derive(Deserialize)]
struct Config {
    webhook: String,
    #[serde(default = "default_secret")]
    secret: String,
    #[serde(default = "default_header")]
    header: String,
    #[serde(default = "default_timeout")]
    timeout_ms: u32,
}

fn default_secret() -> String {
    "crm_token".into()
}

fn default_header() -> String {
    "x-webhook-secret".into()
}

fn default_timeout() -> u32 {
    1000
}

fn on_login(login: &Login) -> Result<Commands, String> {
    let mut out = Commands::new();
    if !login.transaction.first_login {
        return Ok(out);
    }
    let config: Config = login.config()?;
    let secret = login
        .secret(&config.secret)
        .ok_or_else(|| format!("the tenant did not grant the secret `{}`", config.secret))?;
    let lead = json!({
        "event": "first_login",
        "sub": login.user.sub,
        "email": login.user.email,
        "name": login.user.name,
        "connection": login.connection.id,
        "tenant": login.tenant_id,
        "correlation_id": login.transaction.correlation_id,
        "at_ms": host::now_ms(),
    });
    match host::post_json(
        &config.webhook,
        &lead,
        &[(config.header.as_str(), secret)],
        config.timeout_ms,
    ) {
        Ok(r) if (200..300).contains(&r.status) => {
            out.log(Level::Info, format!("lead created for {}", login.user.sub));
        }
        Ok(r) => {
            out.log(
                Level::Warn,
                format!("CRM webhook answered HTTP {}; sign-in continues", r.status),
            );
        }
        // A host outside the allow list is a configuration error the gateway
        // reports itself; everything else must not block the sign-in.
        Err(HttpError::Timeout) => {
            out.log(Level::Warn, "CRM webhook timed out; sign-in continues");
        }
        Err(e) => {
            out.log(
                Level::Warn,
                format!("CRM webhook failed ({e:?}); sign-in continues"),
            );
        }
    }
    Ok(out)
}

edgeauth_plugin::rule!(on_login);

#[cfg(test)]
mod tests {
    use super::*;
    use edgeauth_plugin::Command;
    use edgeauth_plugin::testing::{ok, on_http, sent};

    fn login(first: bool) -> Login {
        Login::from_json(json!({
            "tenant_id": "default",
            "config": {"webhook": "https://crm.example/hooks/lead"},
            "user": {"sub": "alice", "email": "alice@example.com"},
            "transaction": {"first_login": first, "correlation_id": "c1"},
            "secrets": {"crm_token": "s3cret"}
        }))
    }

    #[test]
    fn posts_a_lead_on_first_login_only() {
        on_http(|_| Ok(ok("{}")));
        let out = on_login(&login(true)).unwrap();
        assert!(!out.is_denied());
        let reqs = sent();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].method, "POST");
        assert_eq!(reqs[0].url, "https://crm.example/hooks/lead");
        assert!(
            reqs[0]
                .headers
                .contains(&("x-webhook-secret".into(), "s3cret".into()))
        );
        let body: edgeauth_plugin::serde_json::Value =
            edgeauth_plugin::serde_json::from_slice(reqs[0].body.as_ref().unwrap()).unwrap();
        assert_eq!(body["sub"], "alice");
        assert_eq!(body["correlation_id"], "c1");
        assert!(on_login(&login(false)).unwrap().0.is_empty());
        assert_eq!(sent().len(), 1);
    }

    #[test]
    fn slow_or_failing_webhook_does_not_block() {
        on_http(|_| Err(HttpError::Timeout));
        let out = on_login(&login(true)).unwrap();
        assert!(matches!(
            &out.0[..],
            [Command::Log {
                level: Level::Warn,
                ..
            }]
        ));
        on_http(|_| {
            Ok(edgeauth_plugin::host::HttpResponse {
                status: 503,
                headers: vec![],
                body: vec![],
            })
        });
        assert!(!on_login(&login(true)).unwrap().is_denied());
    }

    #[test]
    fn missing_secret_is_an_error() {
        let mut l = login(true);
        l.secrets.clear();
        assert!(on_login(&l).is_err());
    }
}
