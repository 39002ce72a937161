//! OAuth 2.0 connections without OpenID Connect: the presets for known
//! providers. (The sign-in steps for such connections live here too.)

use crate::connections::{ClaimMap, Preset, TokenAuth};

/// What a preset fills in when the connection does not say otherwise.
pub struct PresetDefaults {
    pub authorization_endpoint: &'static str,
    pub token_endpoint: &'static str,
    pub userinfo_endpoint: &'static str,
    pub emails_endpoint: Option<&'static str>,
    pub scopes: &'static str,
    pub pkce: bool,
    pub token_auth: TokenAuth,
    pub claims: ClaimMap,
}

pub fn preset(p: Preset) -> PresetDefaults {
    match p {
        // GitHub OAuth apps: "Authorizing OAuth apps", web application flow
        // (docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps).
        Preset::Github => PresetDefaults {
            authorization_endpoint: "https://github.com/login/oauth/authorize",
            token_endpoint: "https://github.com/login/oauth/access_token",
            userinfo_endpoint: "https://api.github.com/user",
            emails_endpoint: Some("https://api.github.com/user/emails"),
            // `read:user` for the profile, `user:email` for /user/emails.
            scopes: "read:user user:email",
            pkce: true,
            // The docs list client_id and client_secret as parameters of the
            // POST to the token endpoint.
            token_auth: TokenAuth::ClientSecretPost,
            // `/user`: the numeric `id` is stable; `login` can be changed.
            claims: ClaimMap {
                subject: "id".into(),
                email: None,
                email_verified: None,
                name: Some("name".into()),
                picture: Some("avatar_url".into()),
                groups: None,
            },
        },
    }
}
