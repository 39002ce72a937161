//! How a tenant chain's ending reads as a login event (`edgeauth_core::events`):
//! the component records it and the gateway pushes it to the tenant's webhooks.

use edgeauth_core::events::{Context, LoginOutcome};

use crate::chain::End;
use crate::outcome::Finish;

/// The outcome of the sign-in `fin` whose chain ended with `end`. The
/// gateway's policy ran before the chain (a denied person runs no rule), so
/// a chain that is done signs the person in; whether it is their first
/// login is the profile's (no login before this one), kept across a pause.
pub fn outcome(fin: &Finish, end: &End) -> LoginOutcome {
    match end {
        End::Done => LoginOutcome::SignedIn {
            first_login: fin.base.transaction.first_login,
        },
        End::Deny { rule, reason } => LoginOutcome::RuleDenied {
            rule: rule.clone(),
            reason: reason.clone(),
        },
        End::Failed { rule, failure } => LoginOutcome::RuleFailed {
            rule: rule.clone(),
            kind: failure.kind().to_owned(),
        },
        End::Redirect { .. } | End::Reauth { .. } => LoginOutcome::Paused,
    }
}

/// Who and where, as the chain's event saw it (the sign-in's own request,
/// also for a chain resumed later).
pub fn context(fin: &Finish) -> Context {
    let b = &fin.base;
    Context {
        tenant: b.tenant_id.clone(),
        subject: fin.identity.sub.clone(),
        profile_id: fin.identity.profile_id.clone(),
        connection: fin.identity.connection_id().to_owned(),
        ip: b.request.ip.clone(),
        user_agent: None,
        correlation_id: b.transaction.correlation_id.clone(),
    }
    .with_user_agent(b.request.user_agent.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Failure;
    use crate::testing::{alice, login_state};

    fn fin(first: bool) -> Finish {
        let mut base = crate::event::Event {
            tenant_id: "acme".into(),
            ..Default::default()
        };
        base.transaction.first_login = first;
        base.transaction.correlation_id = "cid-9".into();
        base.request.ip = Some("192.0.2.1".into());
        base.request.user_agent = Some("UA".into());
        Finish {
            identity: alice(),
            id_token: String::new(),
            session: None,
            login: login_state(),
            base,
            resumed: false,
            pinned: Default::default(),
        }
    }

    #[test]
    fn chain_endings_map_to_event_outcomes() {
        assert_eq!(
            outcome(&fin(true), &End::Done),
            LoginOutcome::SignedIn { first_login: true }
        );
        assert_eq!(
            outcome(&fin(false), &End::Done),
            LoginOutcome::SignedIn { first_login: false }
        );
        let deny = End::Deny {
            rule: "r".into(),
            reason: "no".into(),
        };
        assert_eq!(
            outcome(&fin(false), &deny),
            LoginOutcome::RuleDenied {
                rule: "r".into(),
                reason: "no".into()
            }
        );
        let failed = End::Failed {
            rule: "r".into(),
            failure: Failure::Fuel,
        };
        assert_eq!(
            outcome(&fin(false), &failed),
            LoginOutcome::RuleFailed {
                rule: "r".into(),
                kind: "out-of-fuel".into()
            }
        );
        let paused = End::Redirect {
            index: 0,
            rule: "r".into(),
            url: "https://x".into(),
        };
        assert_eq!(outcome(&fin(true), &paused), LoginOutcome::Paused);
        let c = context(&fin(true));
        assert_eq!(c.tenant, "acme");
        assert_eq!(c.subject, alice().sub);
        assert_eq!(c.correlation_id, "cid-9");
        assert_eq!(c.ip.as_deref(), Some("192.0.2.1"));
        assert_eq!(c.user_agent.as_deref(), Some("UA"));
    }
}
