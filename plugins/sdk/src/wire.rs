//! Conversions between wit-bindgen's generated types and the contract's
//! (`edgeauth-contract`): the only place the SDK touches the WIT bindings.

use edgeauth_contract::command::RawCommand;
use edgeauth_contract::http::{HttpError, HttpRequest, HttpResponse};

use crate::bindings::edgeauth::plugin::host as wit_host;
use crate::bindings::edgeauth::plugin::types as wit;
use crate::{Command, Connection, ConnectionKind, Json, Level, LinkedIdentity, Login};
use crate::{RequestInfo, Transaction, User};

/// The event as the rule gets it. Its JSON fields keep the gateway's text
/// and are parsed only if the rule reads them ([`Json`]).
pub(crate) fn login(e: wit::Event) -> Login {
    Login {
        tenant_id: e.tenant_id,
        rule_name: e.rule_name,
        config: Json::from_text(e.config),
        user: User {
            sub: e.user.sub,
            email: e.user.email,
            email_verified: e.user.email_verified,
            name: e.user.name,
            picture: e.user.picture,
            groups: e.user.groups,
            identities: e
                .user
                .identities
                .into_iter()
                .map(|i| LinkedIdentity {
                    connection: i.connection,
                    user_id: i.user_id,
                    profile: Json::from_text(i.profile),
                })
                .collect(),
            app_metadata: Json::from_text(e.user.app_metadata),
            user_metadata: Json::from_text(e.user.user_metadata),
        },
        connection: Connection {
            id: e.connection.id,
            kind: match e.connection.kind {
                wit::ConnectionKind::Oidc => ConnectionKind::Oidc,
                wit::ConnectionKind::Oauth2 => ConnectionKind::Oauth2,
                wit::ConnectionKind::Saml => ConnectionKind::Saml,
            },
            display_name: e.connection.display_name,
        },
        request: RequestInfo {
            ip: e.request.ip,
            user_agent: e.request.user_agent,
            host: e.request.host,
            path: e.request.path,
            method: e.request.method,
            accepted_languages: e.request.accepted_languages,
        },
        transaction: Transaction {
            first_login: e.transaction.first_login,
            login_count: e.transaction.login_count,
            return_url: e.transaction.return_url,
            correlation_id: e.transaction.correlation_id,
            reauthenticated: e.transaction.reauthenticated,
            resumed: e.transaction.resumed,
        },
        secrets: e.secrets.into_iter().map(|s| (s.name, s.value)).collect(),
    }
}

pub(crate) fn level(l: Level) -> wit::LogLevel {
    match l {
        Level::Debug => wit::LogLevel::Debug,
        Level::Info => wit::LogLevel::Info,
        Level::Warn => wit::LogLevel::Warn,
        Level::Error => wit::LogLevel::Error,
    }
}

/// A command as it crosses the WIT: the same [`RawCommand`] the gateway
/// validates (and `testing` validates natively).
pub(crate) fn command(c: Command) -> wit::Command {
    match RawCommand::from(c) {
        RawCommand::Deny(reason) => wit::Command::Deny(reason),
        RawCommand::SetClaim { name, value } => wit::Command::SetClaim(wit::Claim { name, value }),
        RawCommand::SetHeader { name, value } => {
            wit::Command::SetHeader(wit::Header { name, value })
        }
        RawCommand::PatchAppMetadata(p) => wit::Command::PatchAppMetadata(p),
        RawCommand::PatchUserMetadata(p) => wit::Command::PatchUserMetadata(p),
        RawCommand::Redirect { url } => wit::Command::Redirect(wit::Redirect { url }),
        RawCommand::RequireReauth {
            prompt_login,
            max_age,
        } => wit::Command::RequireReauth(wit::Reauth {
            prompt_login,
            max_age,
        }),
        RawCommand::Log { level: l, message } => wit::Command::Log(wit::LogEntry {
            level: level(l),
            message,
        }),
    }
}

#[cfg_attr(not(target_family = "wasm"), allow(dead_code))]
pub(crate) fn http_request(r: &HttpRequest) -> wit_host::HttpRequest {
    wit_host::HttpRequest {
        method: r.method.clone(),
        url: r.url.clone(),
        headers: r.headers.clone(),
        body: r.body.clone(),
        timeout_ms: r.timeout_ms,
    }
}

#[cfg_attr(not(target_family = "wasm"), allow(dead_code))]
pub(crate) fn http_result(
    r: Result<wit_host::HttpResponse, wit_host::HttpError>,
) -> Result<HttpResponse, HttpError> {
    r.map(|r| HttpResponse {
        status: r.status,
        headers: r.headers,
        body: r.body,
    })
    .map_err(|e| match e {
        wit_host::HttpError::ForbiddenHost(h) => HttpError::ForbiddenHost(h),
        wit_host::HttpError::InvalidRequest(m) => HttpError::InvalidRequest(m),
        wit_host::HttpError::Timeout => HttpError::Timeout,
        wit_host::HttpError::Unreachable(m) => HttpError::Unreachable(m),
        wit_host::HttpError::TooLarge => HttpError::TooLarge,
        wit_host::HttpError::BudgetExhausted => HttpError::BudgetExhausted,
    })
}
